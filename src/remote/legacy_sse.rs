//! The deprecated 2024-11-05 HTTP+SSE transport (B-SSE): one long GET stream whose first
//! event names the POST endpoint; every server message, responses included, arrives on
//! that stream as a `message` event.

use std::sync::Arc;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use tokio::sync::{mpsc, oneshot};
use url::Url;

use crate::error::RemoteError;
use crate::remote::http::{Http, SendError, with_idle};
use crate::remote::{Deliver, sse};

/// A POST's outcome: `None` when the server accepted the message. The sender is dropped
/// unanswered once the connection is gone.
pub(crate) type Posted = oneshot::Receiver<Option<RemoteError>>;

struct PostJob {
    body: Bytes,
    done: oneshot::Sender<Option<RemoteError>>,
}

/// One HTTP+SSE connection: the stream's reader and the ordered POST sender.
pub(crate) struct LegacySse {
    posts: mpsc::UnboundedSender<PostJob>,
    reader: tokio::task::JoinHandle<()>,
    sender: tokio::task::JoinHandle<()>,
}

impl Drop for LegacySse {
    fn drop(&mut self) {
        self.reader.abort();
        self.sender.abort();
    }
}

/// What the stream reader tells its receiver besides messages.
pub(crate) trait StreamEnd {
    /// The stream ended: nothing more will arrive on this connection.
    fn ended(&mut self);
}

impl LegacySse {
    /// Open the SSE stream and wait for its `endpoint` event. Every later event goes to
    /// `sink`, in order, until the stream ends.
    pub(crate) async fn connect<D>(http: Arc<Http>, sink: D) -> Result<LegacySse, RemoteError>
    where
        D: Deliver + StreamEnd + 'static,
    {
        let host = http.host.clone();
        let wait = Some(http.request_timeout);
        let sent = http
            .send(
                Method::GET,
                HeaderValue::from_static("text/event-stream"),
                reqwest::header::HeaderMap::new(),
                None,
                http.headers_wait(wait),
            )
            .await;
        let mut resp = match sent {
            Err(SendError::TimedOut) => return Err(http.headers_timeout_err(wait)),
            Err(SendError::Failed(e)) => return Err(http.remote_err(&e)),
            Err(SendError::Refused(e)) => return Err(e),
            Ok(r) => r,
        };
        if !resp.status().is_success() {
            return Err(RemoteError::NotMcp {
                host,
                why: format!(
                    "its HTTP+SSE stream (GET) was refused (HTTP {})",
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
                why: "its answer to the HTTP+SSE GET is not an event stream".into(),
            });
        }
        let mut parser = sse::Parser::new(http.max_message);
        let (endpoint, events) = endpoint(&http, &mut resp, &mut parser).await?;
        tracing::info!(host = %host, "using the HTTP+SSE transport (2024-11-05)");
        let reader = tokio::spawn(read_stream(resp, parser, events, sink, host));
        let (posts, jobs) = mpsc::unbounded_channel();
        let sender = tokio::spawn(post_in_order(http, endpoint, jobs));
        Ok(LegacySse {
            posts,
            reader,
            sender,
        })
    }

    /// Queue a POST. Called in the client's order: one sender task POSTs them one after
    /// another, so the server sees them in that order (`initialized` before the requests
    /// that follow it).
    pub(crate) fn post(&self, body: Bytes) -> Posted {
        let (done, posted) = oneshot::channel();
        // A closed sender drops `done`: the caller sees the connection is gone.
        let _ = self.posts.send(PostJob { body, done });
        posted
    }
}

/// Read the stream up to its first event, which must be `endpoint` and name a URL on the
/// server's own origin (B-SSE). Returns it and any events that came in the same chunk.
async fn endpoint(
    http: &Http,
    resp: &mut reqwest::Response,
    parser: &mut sse::Parser,
) -> Result<(Url, Vec<sse::Event>), RemoteError> {
    let refuse = |why: &str| RemoteError::NotMcp {
        host: http.host.clone(),
        why: why.to_owned(),
    };
    let mut events = Vec::new();
    loop {
        let chunk = match with_idle(Some(http.request_timeout), resp.chunk()).await {
            Some(Ok(Some(c))) => c,
            _ => {
                return Err(refuse(
                    "the HTTP+SSE stream ended before its `endpoint` event",
                ));
            }
        };
        parser
            .feed(&chunk, &mut events)
            .map_err(|e| RemoteError::Malformed {
                host: http.host.clone(),
                why: e.to_string(),
            })?;
        if events.is_empty() {
            continue;
        }
        let first = events.remove(0);
        if first.event.as_deref() != Some("endpoint") {
            return Err(refuse("the first SSE event was not `endpoint`"));
        }
        let endpoint = std::str::from_utf8(&first.data)
            .map_err(|_| refuse("the `endpoint` event was not UTF-8"))?;
        let endpoint = http
            .url()
            .join(endpoint.trim())
            .map_err(|e| refuse(&format!("bad endpoint URI: {e}")))?;
        // Messages (and credentials) go only to the server's own origin (B-SSE).
        if endpoint.origin() != http.url().origin() {
            return Err(refuse(
                "the server's endpoint is on another origin; refused",
            ));
        }
        return Ok((endpoint, events));
    }
}

async fn read_stream<D: Deliver + StreamEnd>(
    mut resp: reqwest::Response,
    mut parser: sse::Parser,
    mut events: Vec<sse::Event>,
    mut sink: D,
    host: String,
) {
    'stream: loop {
        for ev in events.drain(..) {
            if ev.event.as_deref().is_some_and(|e| e != "message") {
                continue;
            }
            if sink.deliver(Bytes::from(ev.data)).await.is_err() {
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
    sink.ended();
}

/// POST queued messages one at a time, in the order the client sent them.
async fn post_in_order(http: Arc<Http>, endpoint: Url, mut jobs: mpsc::UnboundedReceiver<PostJob>) {
    while let Some(job) = jobs.recv().await {
        let req = http
            .request(
                Method::POST,
                &endpoint,
                HeaderValue::from_static("application/json, text/event-stream"),
            )
            .header(CONTENT_TYPE, "application/json")
            .body(job.body);
        let wait = Some(http.request_timeout);
        let failure = match with_idle(http.headers_wait(wait), req.send()).await {
            None => Some(http.headers_timeout_err(wait)),
            Some(Err(e)) => Some(http.remote_err(&e)),
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
