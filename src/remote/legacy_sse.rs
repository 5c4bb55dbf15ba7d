//! The deprecated 2024-11-05 HTTP+SSE transport (B-SSE): one long GET stream whose first
//! event names the POST endpoint; every server message, responses included, arrives on
//! that stream as a `message` event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use tokio::sync::{mpsc, oneshot};
use url::Url;

use crate::error::RemoteError;
use crate::jsonrpc::{self, IdKey, Kind};
use crate::remote::http::{Http, with_idle};
use crate::remote::sse;
use crate::stdio::{Out, one_line};

/// Pending responses by id, with whether each goes to the client (a renewed session's
/// initialize is the proxy's own). `None` once the stream has ended.
type Waiters = Arc<Mutex<Option<HashMap<IdKey, Waiter>>>>;

struct Waiter {
    done: oneshot::Sender<()>,
    forward: bool,
}

/// A message waiting for its POST and its responses (see [`LegacySse::enqueue`]).
pub struct Pending {
    ids: Vec<IdKey>,
    receivers: Vec<(IdKey, oneshot::Receiver<()>)>,
    /// The POST's outcome: `None` when the server accepted it.
    posted: oneshot::Receiver<Option<RemoteError>>,
}

struct PostJob {
    body: Bytes,
    done: oneshot::Sender<Option<RemoteError>>,
}

pub struct LegacySse {
    http: Arc<Http>,
    posts: mpsc::UnboundedSender<PostJob>,
    /// `None` once the stream has ended: nothing more can be answered.
    waiters: Waiters,
    reader: tokio::task::JoinHandle<()>,
    sender: tokio::task::JoinHandle<()>,
}

impl Drop for LegacySse {
    fn drop(&mut self) {
        self.reader.abort();
        self.sender.abort();
    }
}

impl LegacySse {
    /// Open the SSE stream and wait for its `endpoint` event.
    pub async fn connect(http: Arc<Http>, out: Out) -> Result<LegacySse, RemoteError> {
        let req = http.request(
            Method::GET,
            &http.url,
            HeaderValue::from_static("text/event-stream"),
        );
        let host = http.host.clone();
        let mut resp = match with_idle(Some(http.request_timeout), req.send()).await {
            None => {
                return Err(RemoteError::Timeout {
                    host,
                    secs: http.request_timeout.as_secs_f64(),
                });
            }
            Some(Err(e)) => {
                return Err(RemoteError::from_reqwest(
                    &host,
                    &e,
                    http.request_timeout.as_secs_f64(),
                ));
            }
            Some(Ok(r)) => r,
        };
        if !resp.status().is_success() {
            return Err(RemoteError::NotMcp {
                host,
                why: format!(
                    "Streamable HTTP failed and the HTTP+SSE stream was refused (HTTP {})",
                    resp.status().as_u16()
                ),
            });
        }
        let is_sse = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        if !is_sse {
            return Err(RemoteError::NotMcp {
                host,
                why: "neither Streamable HTTP nor an HTTP+SSE stream answered".into(),
            });
        }
        let mut parser = sse::Parser::new(http.max_message);
        let mut events = Vec::new();
        let endpoint = 'found: loop {
            let chunk = match with_idle(Some(http.request_timeout), resp.chunk()).await {
                Some(Ok(Some(c))) => c,
                _ => {
                    return Err(RemoteError::NotMcp {
                        host,
                        why: "the HTTP+SSE stream ended before its `endpoint` event".into(),
                    });
                }
            };
            parser
                .feed(&chunk, &mut events)
                .map_err(|e| RemoteError::Malformed {
                    host: host.clone(),
                    why: e.to_string(),
                })?;
            let mut drained = events.drain(..);
            if let Some(ev) = drained.next() {
                if ev.event.as_deref() != Some("endpoint") {
                    return Err(RemoteError::NotMcp {
                        host,
                        why: "the first SSE event was not `endpoint`".into(),
                    });
                }
                let endpoint = std::str::from_utf8(&ev.data).map_err(|_| RemoteError::NotMcp {
                    host: host.clone(),
                    why: "the `endpoint` event was not UTF-8".into(),
                })?;
                let endpoint = http
                    .url
                    .join(endpoint.trim())
                    .map_err(|e| RemoteError::NotMcp {
                        host: host.clone(),
                        why: format!("bad endpoint URI: {e}"),
                    })?;
                // Messages (and credentials) go only to the server's own origin (B-SSE).
                if endpoint.origin() != http.url.origin() {
                    return Err(RemoteError::NotMcp {
                        host,
                        why: "the server's endpoint is on another origin; refused".into(),
                    });
                }
                let rest: Vec<sse::Event> = drained.collect();
                events = rest;
                break 'found endpoint;
            }
        };
        tracing::info!(host = %host, "using the HTTP+SSE transport (2024-11-05)");
        let waiters: Waiters = Arc::new(Mutex::new(Some(HashMap::new())));
        let reader = tokio::spawn(read_stream(
            resp,
            parser,
            events,
            waiters.clone(),
            out,
            host,
        ));
        let (posts, jobs) = mpsc::unbounded_channel();
        let sender = tokio::spawn(post_in_order(http.clone(), endpoint, jobs));
        Ok(LegacySse {
            http,
            posts,
            waiters,
            reader,
            sender,
        })
    }

    /// Register the responses `ids` awaits and queue the POST. Called in the client's
    /// order: one sender task POSTs them one after another, so the server sees them in
    /// that order (`initialized` before the requests that follow it).
    pub fn enqueue(&self, body: Bytes, ids: Vec<IdKey>) -> Pending {
        self.enqueue_with(body, ids, true)
    }

    /// Like [`enqueue`](Self::enqueue); `forward: false` keeps the responses from the client.
    pub fn enqueue_with(&self, body: Bytes, ids: Vec<IdKey>, forward: bool) -> Pending {
        let mut receivers = Vec::with_capacity(ids.len());
        let (posted_tx, posted) = oneshot::channel();
        {
            let mut guard = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(map) = guard.as_mut() {
                for id in &ids {
                    let (done, rx) = oneshot::channel();
                    map.insert(id.clone(), Waiter { done, forward });
                    receivers.push((id.clone(), rx));
                }
                let _ = self.posts.send(PostJob {
                    body,
                    done: posted_tx,
                });
            }
            // Stream closed: `posted_tx` is dropped here and `wait` reports it.
        }
        Pending {
            ids,
            receivers,
            posted,
        }
    }

    /// Wait for the POST and then for every response. Returns the ids left
    /// unanswered with the reason.
    pub async fn wait(
        &self,
        pending: Pending,
        idle: Option<Duration>,
    ) -> Result<(), (Vec<IdKey>, RemoteError)> {
        let host = self.http.host.clone();
        let closed = || RemoteError::StreamEnded {
            host: host.clone(),
            why: " (the HTTP+SSE stream is closed)".into(),
        };
        let failure = match pending.posted.await {
            Ok(result) => result,
            Err(_) => Some(closed()),
        };
        if let Some(err) = failure {
            self.forget(&pending.ids);
            return Err((pending.ids, err));
        }
        let mut unanswered = Vec::new();
        let mut reason = None;
        for (id, rx) in pending.receivers {
            match with_idle(idle, rx).await {
                Some(Ok(())) => {}
                Some(Err(_)) => {
                    unanswered.push(id);
                    reason = Some(closed());
                }
                None => {
                    unanswered.push(id);
                    reason = Some(RemoteError::Timeout {
                        host: host.clone(),
                        secs: self.http.request_timeout.as_secs_f64(),
                    });
                }
            }
        }
        self.forget(&unanswered);
        match reason {
            None => Ok(()),
            Some(r) => Err((unanswered, r)),
        }
    }

    /// The stream has ended: nothing more can be answered on this connection.
    pub fn is_closed(&self) -> bool {
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    fn forget(&self, ids: &[IdKey]) {
        if let Some(map) = self
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            for id in ids {
                map.remove(id);
            }
        }
    }
}

async fn read_stream(
    mut resp: reqwest::Response,
    mut parser: sse::Parser,
    mut events: Vec<sse::Event>,
    waiters: Waiters,
    out: Out,
    host: String,
) {
    'stream: loop {
        for ev in events.drain(..) {
            if ev.event.as_deref().is_some_and(|e| e != "message") {
                continue;
            }
            let data = Bytes::from(ev.data);
            let Ok(parsed) = jsonrpc::as_utf8(&data).and_then(jsonrpc::parse) else {
                tracing::warn!(%host, "dropped a malformed message from the HTTP+SSE stream");
                continue;
            };
            if let jsonrpc::Parsed::Single(m) = &parsed
                && m.kind == Kind::Response
            {
                let waiter = m.id.as_ref().and_then(|id| {
                    waiters
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .as_mut()
                        .and_then(|map| map.remove(id))
                });
                let Some(waiter) = waiter else {
                    tracing::warn!(%host, "dropped a response that answers no pending request");
                    continue;
                };
                // Forward first, then release the waiter: "answered" means written.
                if waiter.forward && out.send(one_line(data.clone())).await.is_err() {
                    break 'stream;
                }
                let _ = waiter.done.send(());
                continue;
            }
            if out.send(one_line(data.clone())).await.is_err() {
                break 'stream;
            }
        }
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if let Err(e) = parser.feed(&chunk, &mut events) {
                    tracing::warn!(%host, "HTTP+SSE stream: {e}");
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(%host, "HTTP+SSE stream failed: {e}", e = e.without_url());
                break;
            }
        }
    }
    tracing::warn!(%host, "the HTTP+SSE stream ended; pending requests fail");
    // Dropping every waiter wakes each pending request with an error.
    waiters.lock().unwrap_or_else(|p| p.into_inner()).take();
}

/// POST queued messages one at a time, in the order the client sent them.
async fn post_in_order(http: Arc<Http>, endpoint: Url, mut jobs: mpsc::UnboundedReceiver<PostJob>) {
    let secs = http.request_timeout.as_secs_f64();
    while let Some(job) = jobs.recv().await {
        let req = http
            .request(
                Method::POST,
                &endpoint,
                HeaderValue::from_static("application/json, text/event-stream"),
            )
            .header(CONTENT_TYPE, "application/json")
            .body(job.body);
        let failure = match with_idle(Some(http.request_timeout), req.send()).await {
            None => Some(RemoteError::Timeout {
                host: http.host.clone(),
                secs,
            }),
            Some(Err(e)) => Some(RemoteError::from_reqwest(&http.host, &e, secs)),
            Some(Ok(r)) if !r.status().is_success() => Some(RemoteError::Status {
                host: http.host.clone(),
                status: r.status().as_u16(),
                detail: String::new(),
            }),
            Some(Ok(_)) => None,
        };
        let _ = job.done.send(failure);
    }
}
