//! The Streamable HTTP client side of one exchange: POST a message, read the JSON or SSE
//! answer, forward every server message in order, and resume a broken stream with GET +
//! `Last-Event-ID` (H-POST, H-ACCEPT, H-CT, H-SSE-POST, H-PRIME, H-POLL, H-RETRY, H-RESUME).

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::config::Config;
use crate::error::RemoteError;
use crate::jsonrpc::{self, Kind};
use crate::remote::{Deliver, sse};

pub(crate) const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub(crate) const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub(crate) const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
const ACCEPT_BOTH: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");
const ACCEPT_SSE: HeaderValue = HeaderValue::from_static("text/event-stream");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// What servers built on the TypeScript SDK answer (400) for a session they do not know,
/// e.g. after a restart, where the spec asks for 404 (H-404-400). Checked against the SDK's
/// own servers: server-everything and the SDK's examples send the first, the SDK's
/// `simpleTaskInteractive` example the second. No other 400 counts as a lost session.
pub(crate) const LOST_SESSION_400: [&str; 2] = [
    "Bad Request: No valid session ID provided",
    "Bad Request: No valid session ID",
];

/// Reconnect attempts in a row without progress before a resumable stream is given up.
const MAX_RESUME_ATTEMPTS: u32 = 5;
/// Delay before resuming when the server gave no `retry:` (H-RETRY).
const DEFAULT_RETRY: Duration = Duration::from_millis(500);
/// The server's `retry:` is honoured up to this bound.
const MAX_RETRY: Duration = Duration::from_secs(30);
/// How much of an error body is read to summarize it.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Redirects followed for one request before giving up.
const MAX_REDIRECTS: usize = 5;

/// The remote endpoint and the pooled client.
pub(crate) struct Http {
    pub(crate) client: reqwest::Client,
    /// The server's URL; a same-origin redirect replaces it for the rest of the process.
    url: std::sync::RwLock<Url>,
    /// The redirect has been reported (once).
    redirect_warned: std::sync::atomic::AtomicBool,
    /// A client certificate is presented (`--tls-cert`).
    client_cert: bool,
    /// `host[:port]`, the only part of the URL that appears in messages.
    pub(crate) host: String,
    pub(crate) user_headers: HeaderMap,
    pub(crate) request_timeout: Duration,
    /// `--headers-timeout`: the wait for response headers; `None` leaves it to the
    /// request's own timeout.
    pub(crate) headers_timeout: Option<Duration>,
    pub(crate) max_message: usize,
    /// Sign-in, when the user did not set an Authorization header themselves.
    pub(crate) auth: Option<std::sync::Arc<crate::auth::Auth>>,
    /// Which transport the handshake is using, for `check`'s summary. Set before the
    /// initialize is sent on it, so it is current when the response is read.
    pub(crate) transport_used: std::sync::Mutex<&'static str>,
}

/// The legacy session a message belongs to (H-SID, H-PROTO-HDR).
#[derive(Clone, Debug, Default)]
pub(crate) struct SessionHeaders {
    pub(crate) session_id: Option<HeaderValue>,
    pub(crate) protocol_version: Option<String>,
}

impl SessionHeaders {
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        if let Some(id) = &self.session_id {
            headers.insert(SESSION_ID, id.clone());
        }
        if let Some(v) = &self.protocol_version
            && let Ok(v) = HeaderValue::from_str(v)
        {
            headers.insert(PROTOCOL_VERSION, v);
        }
    }
}

/// How an exchange ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Every pending request was answered (or the notification/response was accepted).
    Done {
        session_id: Option<HeaderValue>,
    },
    /// 404 on a request that carried a session id: the session is gone (H-404).
    SessionGone,
    /// HTTP error status without a JSON-RPC answer for our request.
    Status {
        status: StatusCode,
        /// A recognized modern JSON-RPC error (M-DETECT).
        modern: bool,
        /// A HeaderMismatch error (M-MISMATCH).
        header_mismatch: bool,
        error: RemoteError,
    },
    Failed(RemoteError),
    /// Stdout is closed: nothing more can be delivered.
    OutputClosed,
    /// A modern request sent with [`Post::probe_era`] was refused the way only a
    /// legacy-only server refuses it (M-BACKPORT); nothing of the answer was delivered.
    LegacyOnly(RemoteError),
    /// 401: sign in (or refresh), then retry.
    Unauthorized {
        challenge: Option<crate::auth::challenge::Challenge>,
        generation: u64,
    },
    /// 403 with `insufficient_scope`: step up, then retry (A-STEPUP).
    InsufficientScope {
        challenge: crate::auth::challenge::Challenge,
        generation: u64,
    },
}

/// One POST and everything that answers it.
pub(crate) struct Post<'a> {
    pub(crate) body: Bytes,
    pub(crate) headers: HeaderMap,
    /// The legacy session, used again to resume the stream (H-RESUME).
    pub(crate) session: Option<&'a SessionHeaders>,
    /// Idle timeout; `None` for long-lived streams (M-LISTEN).
    pub(crate) idle: Option<Duration>,
    /// Whether a broken stream may be resumed with GET (not in the modern era).
    pub(crate) resumable: bool,
    /// A modern request to a server whose era is not known yet: a 400 that is not a
    /// modern error and says the server wants a session ends as [`Outcome::LegacyOnly`]
    /// and is not delivered, so the request can be sent again in the legacy era.
    pub(crate) probe_era: bool,
}

impl Http {
    pub(crate) fn new(client: reqwest::Client, config: &Config) -> Http {
        let host = match (config.url.host_str(), config.url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => "server".to_owned(),
        };
        Http {
            client,
            url: std::sync::RwLock::new(config.url.clone()),
            redirect_warned: std::sync::atomic::AtomicBool::new(false),
            client_cert: config.tls_identity.is_some(),
            host,
            user_headers: config.headers.clone(),
            request_timeout: config.request_timeout,
            headers_timeout: config.headers_timeout,
            max_message: config.max_message_size,
            transport_used: std::sync::Mutex::new("unknown"),
            auth: None,
        }
    }

    pub(crate) fn request(
        &self,
        method: Method,
        url: &Url,
        accept: HeaderValue,
    ) -> reqwest::RequestBuilder {
        let mut headers = self.user_headers.clone();
        // H-BEARER: the token goes on every request of the session, in the header only;
        // a DPoP-bound one with a proof made for this method and URL (A-DPOP).
        if let Some(auth) = &self.auth
            && !headers.contains_key(reqwest::header::AUTHORIZATION)
            && let Some((authorization, proof)) = auth.authorization(&method, url)
        {
            headers.insert(reqwest::header::AUTHORIZATION, authorization);
            if let Some(proof) = proof {
                headers.insert(crate::auth::dpop::DPOP, proof);
            }
        }
        headers.insert(ACCEPT, accept);
        self.client.request(method, url.clone()).headers(headers)
    }

    /// The server's URL now (after any redirect).
    pub(crate) fn url(&self) -> Url {
        self.url.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Send `method` to the server, following its same-origin redirects (at most
    /// [`MAX_REDIRECTS`]): 307 and 308 with the method and body kept, 301 to 303 for GET
    /// only. Each hop is a new request, so the credentials (and a DPoP proof) are made
    /// for that URL; a redirect to another origin is refused, so they never leave the
    /// origin they are for. `wait` bounds each hop's wait for the response headers.
    pub(crate) async fn send(
        &self,
        method: Method,
        accept: HeaderValue,
        headers: HeaderMap,
        body: Option<Bytes>,
        wait: Option<Duration>,
    ) -> Result<reqwest::Response, SendError> {
        let mut url = self.url();
        let mut hops = 0;
        loop {
            let mut req = self
                .request(method.clone(), &url, accept.clone())
                .headers(headers.clone());
            if let Some(body) = &body {
                req = req.body(body.clone());
            }
            let resp = match with_idle(wait, req.send()).await {
                None => return Err(SendError::TimedOut),
                Some(Err(e)) => return Err(SendError::Failed(e)),
                Some(Ok(r)) => r,
            };
            let Some(location) = redirect_location(&resp) else {
                return Ok(resp);
            };
            let refused = |why: String| {
                SendError::Refused(RemoteError::Redirect {
                    host: self.host.clone(),
                    why,
                })
            };
            let target = follow(&method, resp.status(), &url, &location).map_err(refused)?;
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(refused(format!(
                    "redirected more than {MAX_REDIRECTS} times (last to {})",
                    crate::config::redact_url(&target)
                )));
            }
            self.moved(&url, &target);
            url = target;
        }
    }

    /// A same-origin redirect: the new URL is the server's from now on.
    fn moved(&self, from: &Url, to: &Url) {
        *self.url.write().unwrap_or_else(|p| p.into_inner()) = to.clone();
        if let Some(auth) = &self.auth {
            auth.moved_to(to);
        }
        if !self
            .redirect_warned
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                "{} redirects to {}; using that from now on. Put {} in the client's config",
                crate::config::redact_url(from),
                crate::config::redact_url(to),
                crate::config::redact_url(to)
            );
        }
    }

    pub(crate) fn set_transport(&self, name: &'static str) {
        *self
            .transport_used
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = name;
    }

    pub(crate) fn remote_err(&self, e: &reqwest::Error) -> RemoteError {
        self.remote_err_after(e, self.request_timeout.as_secs_f64())
    }

    /// [`Http::remote_err`] for a request whose wait was `secs`.
    pub(crate) fn remote_err_after(&self, e: &reqwest::Error, secs: f64) -> RemoteError {
        RemoteError::from_reqwest(&self.host, e, secs).with_client_cert(self.client_cert)
    }

    fn timeout_err(&self) -> RemoteError {
        RemoteError::Timeout {
            host: self.host.clone(),
            secs: self.request_timeout.as_secs_f64(),
            flag: "--request-timeout",
        }
    }

    /// How long to wait for the response headers of a request whose silence is bounded
    /// by `idle` (`None`: a stream that may stay quiet).
    pub(crate) fn headers_wait(&self, idle: Option<Duration>) -> Option<Duration> {
        self.headers_timeout.or(idle)
    }

    /// The error when [`Http::headers_wait`] ran out.
    pub(crate) fn headers_timeout_err(&self, idle: Option<Duration>) -> RemoteError {
        match self.headers_timeout {
            Some(t) => RemoteError::Timeout {
                host: self.host.clone(),
                secs: t.as_secs_f64(),
                flag: "--headers-timeout",
            },
            None => RemoteError::Timeout {
                host: self.host.clone(),
                secs: idle.unwrap_or(self.request_timeout).as_secs_f64(),
                flag: "--request-timeout",
            },
        }
    }

    /// POST one message and forward everything that answers it into `sink`.
    pub(crate) async fn exchange<D: Deliver>(&self, post: Post<'_>, sink: &mut D) -> Outcome {
        let sent_session = post.session.is_some_and(|s| s.session_id.is_some());
        let generation = match &self.auth {
            Some(auth) => {
                auth.ensure_fresh().await;
                auth.generation()
            }
            None => 0,
        };
        let mut headers = post.headers;
        headers.insert(CONTENT_TYPE, JSON);
        let wait = self.headers_wait(post.idle);
        let sent = self
            .send(Method::POST, ACCEPT_BOTH, headers, Some(post.body), wait)
            .await;
        let resp = match sent {
            Err(SendError::TimedOut) => {
                return Outcome::Failed(self.headers_timeout_err(post.idle));
            }
            Err(SendError::Failed(e)) => return Outcome::Failed(self.remote_err(&e)),
            Err(SendError::Refused(e)) => return Outcome::Failed(e),
            Ok(r) => r,
        };
        if let Some(refused) = self.refused(&resp, sent_session, generation) {
            return refused;
        }
        if !resp.status().is_success() {
            return self
                .error_status(resp, sink, post.idle, post.probe_era, sent_session)
                .await;
        }
        if let Some(auth) = &self.auth {
            auth.mark_served_anonymously();
        }
        let resume = post.resumable.then_some(post.session).flatten();
        self.answer(resp, sink, post.idle, resume).await
    }

    /// The answers that end an exchange before its body is read: a lost session (H-404),
    /// and sign-in or step-up (A-401, A-STEPUP).
    fn refused(
        &self,
        resp: &reqwest::Response,
        sent_session: bool,
        generation: u64,
    ) -> Option<Outcome> {
        let status = resp.status();
        if let Some(auth) = &self.auth {
            auth.observe(resp.headers());
        }
        if status == StatusCode::NOT_FOUND && sent_session {
            return Some(Outcome::SessionGone);
        }
        if self.auth.is_none()
            || !(status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN)
        {
            return None;
        }
        let challenge = crate::auth::challenge::Challenge::parse(
            resp.headers()
                .get_all(reqwest::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        match (status, challenge) {
            (StatusCode::UNAUTHORIZED, challenge) => Some(Outcome::Unauthorized {
                challenge,
                generation,
            }),
            (_, Some(challenge)) if challenge.insufficient_scope() => {
                Some(Outcome::InsufficientScope {
                    challenge,
                    generation,
                })
            }
            _ => None,
        }
    }

    /// A 2xx answer: an SSE stream, or a JSON body (or none: 202, H-202).
    async fn answer<D: Deliver>(
        &self,
        resp: reqwest::Response,
        sink: &mut D,
        idle: Option<Duration>,
        resume: Option<&SessionHeaders>,
    ) -> Outcome {
        let status = resp.status();
        let session_id = resp.headers().get(SESSION_ID).cloned().map(|mut v| {
            v.set_sensitive(true);
            v
        });
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("text/event-stream") {
            return match self.stream(resp, sink, idle, resume).await {
                Ok(()) => Outcome::Done { session_id },
                Err(o) => o,
            };
        }
        let body = match self.read_body(resp, idle).await {
            Ok(b) => b,
            Err(e) => return Outcome::Failed(e),
        };
        let empty = body.iter().all(u8::is_ascii_whitespace);
        if !empty && !sink.complete() {
            if sink.deliver(Bytes::from(body)).await.is_err() {
                return Outcome::OutputClosed;
            }
        } else if !empty {
            tracing::debug!(host = %self.host, %status, "ignored the body of an accepted notification or response");
        }
        if sink.complete() {
            Outcome::Done { session_id }
        } else if let Some(why) = sink.take_malformed() {
            Outcome::Failed(RemoteError::Malformed {
                host: self.host.clone(),
                why,
            })
        } else if !content_type.is_empty() && !content_type.starts_with("application/json") {
            Outcome::Failed(RemoteError::NotMcp {
                host: self.host.clone(),
                why: format!("it answered HTTP {status} with content type {content_type:?}"),
            })
        } else {
            Outcome::Failed(RemoteError::Malformed {
                host: self.host.clone(),
                why: format!("HTTP {status} without a response to the request"),
            })
        }
    }

    /// Read a whole body, bounded in size and by the idle timeout per chunk.
    async fn read_body(
        &self,
        mut resp: reqwest::Response,
        idle: Option<Duration>,
    ) -> Result<Vec<u8>, RemoteError> {
        // Sized once from Content-Length (within the bound) instead of growing by
        // doubling: a 16 MiB answer is then one allocation, never copied while read.
        let expected = resp.content_length().unwrap_or(0);
        let mut body = Vec::with_capacity(
            usize::try_from(expected).map_or(0, |n| if n > self.max_message { 0 } else { n }),
        );
        loop {
            match with_idle(idle, resp.chunk()).await {
                None => return Err(self.timeout_err()),
                Some(Err(e)) => return Err(self.remote_err(&e)),
                Some(Ok(None)) => return Ok(body),
                Some(Ok(Some(chunk))) => {
                    if body.len() + chunk.len() > self.max_message {
                        return Err(RemoteError::Malformed {
                            host: self.host.clone(),
                            why: crate::error::over_limit("a response", self.max_message),
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
            }
        }
    }

    /// A non-2xx answer. A JSON-RPC error for our request is forwarded as the response
    /// (M-VERSION); anything else is summarized.
    async fn error_status<D: Deliver>(
        &self,
        resp: reqwest::Response,
        sink: &mut D,
        idle: Option<Duration>,
        probe_era: bool,
        sent_session: bool,
    ) -> Outcome {
        let status = resp.status();
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header(reqwest::header::RETRY_AFTER);
        let is_json = header(CONTENT_TYPE).is_some_and(|c| c.contains("json"));
        let body = self.error_body(resp, idle).await;
        let error = ErrorBody::read(status, &body);
        if sent_session && error.lost_session(status) {
            return Outcome::SessionGone;
        }
        if probe_era && error.legacy {
            let why = error.message.as_deref().unwrap_or("no JSON-RPC error");
            return Outcome::LegacyOnly(RemoteError::Status {
                host: self.host.clone(),
                status: status.as_u16(),
                detail: format!(": {}", truncate(why, 300)),
            });
        }
        if let Some(answer) = error.answer.filter(|_| !sink.complete()) {
            // The server may have answered our request with an error status: the
            // receiver forwards it if it does.
            if sink.deliver(answer).await.is_err() {
                return Outcome::OutputClosed;
            }
            if sink.complete() {
                return Outcome::Done { session_id: None };
            }
        }
        let mut detail = String::new();
        if let Some(m) = error.message {
            detail = format!(": {}", truncate(&m, 300));
        } else if !body.is_empty() {
            detail = format!(": {}", summarize_body(&body, is_json));
        }
        if status == StatusCode::UNAUTHORIZED {
            detail.push_str(&crate::error::unauthorized_detail());
        }
        if let Some(ra) = retry_after {
            detail.push_str(&format!(" (retry after {})", truncate(&ra, 40)));
        }
        Outcome::Status {
            status,
            modern: error.modern,
            header_mismatch: error.header_mismatch,
            error: RemoteError::Status {
                host: self.host.clone(),
                status: status.as_u16(),
                detail,
            },
        }
    }

    /// The start of an error body, bounded: enough to summarize it.
    async fn error_body(&self, mut resp: reqwest::Response, idle: Option<Duration>) -> Vec<u8> {
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_LIMIT {
            match with_idle(idle.or(Some(self.request_timeout)), resp.chunk()).await {
                Some(Ok(Some(c))) => body.extend_from_slice(&c),
                _ => break,
            }
        }
        body
    }

    /// Read an SSE response, resuming it with GET + Last-Event-ID when it breaks before
    /// every pending response arrived (H-POLL, H-RESUME).
    async fn stream<D: Deliver>(
        &self,
        mut resp: reqwest::Response,
        sink: &mut D,
        idle: Option<Duration>,
        resume: Option<&SessionHeaders>,
    ) -> Result<(), Outcome> {
        let mut parser = sse::Parser::new(self.max_message);
        let mut events = Vec::new();
        let mut attempts = 0u32;
        let mut replays = sse::Replays::default();
        loop {
            let ended = loop {
                match with_idle(idle, resp.chunk()).await {
                    None => return Err(Outcome::Failed(self.timeout_err())),
                    Some(Err(e)) => break format!(" ({})", self.remote_err(&e)),
                    Some(Ok(None)) => break String::new(),
                    Some(Ok(Some(chunk))) => {
                        if let Err(e) = parser.feed(&chunk, &mut events) {
                            return Err(Outcome::Failed(RemoteError::Malformed {
                                host: self.host.clone(),
                                why: e.to_string(),
                            }));
                        }
                        for ev in events.drain(..) {
                            attempts = 0;
                            if ev.event.as_deref().is_some_and(|e| e != "message")
                                || !replays.fresh(ev.id.as_deref())
                            {
                                continue;
                            }
                            if sink.deliver(Bytes::from(ev.data)).await.is_err() {
                                return Err(Outcome::OutputClosed);
                            }
                        }
                        if sink.complete() {
                            // The final response normally ends the stream; stop reading.
                            return Ok(());
                        }
                    }
                }
            };
            if sink.complete() {
                return Ok(());
            }
            let (Some(session), Some(last_id)) = (resume, parser.last_event_id()) else {
                let why = match sink.take_malformed() {
                    Some(m) => format!(" (a malformed message was dropped: {m})"),
                    None => ended,
                };
                return Err(Outcome::Failed(RemoteError::StreamEnded {
                    host: self.host.clone(),
                    why,
                }));
            };
            attempts += 1;
            if attempts > MAX_RESUME_ATTEMPTS {
                return Err(Outcome::Failed(RemoteError::StreamEnded {
                    host: self.host.clone(),
                    why: format!(" and {MAX_RESUME_ATTEMPTS} attempts to resume it failed"),
                }));
            }
            let delay = parser
                .retry_ms()
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_RETRY)
                .min(MAX_RETRY);
            tracing::debug!(host = %self.host, ?delay, "resuming an SSE stream with Last-Event-ID");
            tokio::time::sleep(delay).await;
            replays.resume();
            resp = match self.resume_get(session, last_id).await {
                Ok(r) => r,
                Err(ResumeError::Fatal(e)) => return Err(Outcome::Failed(e)),
                Err(ResumeError::Retry) => {
                    // Keep the same parser state; try again after the delay.
                    continue;
                }
            };
        }
    }

    async fn resume_get(
        &self,
        session: &SessionHeaders,
        last_id: &str,
    ) -> Result<reqwest::Response, ResumeError> {
        let mut headers = HeaderMap::new();
        session.apply(&mut headers);
        if let Ok(v) = HeaderValue::from_str(last_id) {
            headers.insert(LAST_EVENT_ID, v);
        }
        let wait = self.headers_wait(Some(self.request_timeout));
        match self
            .send(Method::GET, ACCEPT_SSE, headers, None, wait)
            .await
        {
            Err(SendError::TimedOut) => Err(ResumeError::Retry),
            Err(SendError::Failed(e)) if e.is_connect() || e.is_timeout() => {
                Err(ResumeError::Retry)
            }
            Err(SendError::Failed(e)) => Err(ResumeError::Fatal(self.remote_err(&e))),
            Err(SendError::Refused(e)) => Err(ResumeError::Fatal(e)),
            Ok(r) if r.status().is_success() => Ok(r),
            Ok(r) if r.status().is_server_error() => Err(ResumeError::Retry),
            Ok(r) => Err(ResumeError::Fatal(RemoteError::StreamEnded {
                host: self.host.clone(),
                why: format!(
                    " and the server refused to resume it (HTTP {})",
                    r.status().as_u16()
                ),
            })),
        }
    }

    /// DELETE the session (H-DELETE). 405 is a fine answer.
    pub(crate) async fn delete_session(&self, session: &SessionHeaders) {
        if session.session_id.is_none() {
            return;
        }
        let mut headers = HeaderMap::new();
        session.apply(&mut headers);
        match self
            .send(Method::DELETE, ACCEPT_BOTH, headers, None, None)
            .await
        {
            Ok(r) => tracing::debug!(host = %self.host, status = %r.status(), "session ended"),
            Err(SendError::Failed(e)) => {
                tracing::debug!(host = %self.host, "DELETE failed: {}", self.remote_err(&e))
            }
            Err(SendError::Refused(e)) => tracing::debug!("DELETE failed: {e}"),
            Err(SendError::TimedOut) => {}
        }
    }

    /// The optional standalone GET stream for server-initiated messages (H-GET). Runs
    /// until aborted; reconnects with backoff and Last-Event-ID; 405 means "none".
    pub(crate) async fn listen<D: Deliver>(
        &self,
        session: SessionHeaders,
        mut sink: D,
        mut ready: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Listened {
        let mut last_id: Option<String> = None;
        let mut backoff = Duration::from_millis(500);
        let mut failures = 0u32;
        let mut replays = sse::Replays::default();
        loop {
            let mut headers = HeaderMap::new();
            session.apply(&mut headers);
            if let Some(id) = &last_id
                && let Ok(v) = HeaderValue::from_str(id)
            {
                headers.insert(LAST_EVENT_ID, v);
                replays.resume();
            }
            let mut retry = None;
            let sent = self
                .send(Method::GET, ACCEPT_SSE, headers, None, self.headers_timeout)
                .await;
            let answer = match sent {
                Ok(r) => Ok(r),
                Err(SendError::Failed(e)) => Err(e),
                Err(SendError::Refused(e)) => {
                    tracing::warn!("GET stream: {e}");
                    return Listened::Ended;
                }
                Err(SendError::TimedOut) => {
                    tracing::debug!(host = %self.host, "no answer to the GET stream within --headers-timeout; trying again");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            // The first answer, whatever it is, tells the session it may go on.
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
            if let (Ok(r), Some(auth)) = (&answer, &self.auth)
                && r.status() == StatusCode::UNAUTHORIZED
                && auth.nonce_retry(r.headers())
            {
                continue;
            }
            match answer {
                Ok(r) if r.status() == StatusCode::METHOD_NOT_ALLOWED => {
                    tracing::debug!(host = %self.host, "the server offers no GET stream (405)");
                    return Listened::Ended;
                }
                Ok(r) if r.status().is_client_error() => {
                    let status = r.status();
                    let body = self.error_body(r, Some(self.request_timeout)).await;
                    let gone = status == StatusCode::NOT_FOUND
                        || ErrorBody::read(status, &body).lost_session(status);
                    if gone && session.session_id.is_some() {
                        return Listened::SessionGone;
                    }
                    tracing::debug!(host = %self.host, %status, "GET stream refused; not retrying");
                    return Listened::Ended;
                }
                Ok(r) if r.status().is_success() => {
                    let mut parser = sse::Parser::new(self.max_message);
                    let mut events = Vec::new();
                    let mut resp = r;
                    while let Ok(Some(chunk)) = resp.chunk().await {
                        if let Err(e) = parser.feed(&chunk, &mut events) {
                            tracing::warn!(host = %self.host, "GET stream: {e}");
                            break;
                        }
                        for ev in events.drain(..) {
                            failures = 0;
                            backoff = Duration::from_millis(500);
                            if ev.event.as_deref().is_some_and(|e| e != "message")
                                || !replays.fresh(ev.id.as_deref())
                            {
                                continue;
                            }
                            if sink.deliver(Bytes::from(ev.data)).await.is_err() {
                                return Listened::Ended;
                            }
                        }
                        last_id = parser.last_event_id().map(str::to_owned).or(last_id);
                    }
                    retry = parser.retry_ms().map(Duration::from_millis);
                }
                Ok(r) => {
                    tracing::debug!(host = %self.host, status = %r.status(), "GET stream failed")
                }
                Err(e) => tracing::debug!(host = %self.host, "GET stream: {}", self.remote_err(&e)),
            }
            failures += 1;
            if failures > 20 {
                tracing::warn!(host = %self.host, "giving up on the GET stream after repeated failures");
                return Listened::Ended;
            }
            let delay = retry.unwrap_or(backoff).min(MAX_RETRY);
            backoff = (backoff * 2).min(MAX_RETRY);
            tokio::time::sleep(delay).await;
        }
    }
}

/// Why [`Http::send`] got no response.
pub(crate) enum SendError {
    /// No response headers within the wait.
    TimedOut,
    Failed(reqwest::Error),
    /// A redirect that is not followed.
    Refused(RemoteError),
}

/// The `Location` of a redirect answer.
fn redirect_location(resp: &reqwest::Response) -> Option<String> {
    if !matches!(resp.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    resp.headers()
        .get(reqwest::header::LOCATION)?
        .to_str()
        .ok()
        .map(str::to_owned)
}

/// Where a redirect from `from` leads, or why it is not followed (the message goes after
/// the host: "HOST redirected ...").
fn follow(method: &Method, status: StatusCode, from: &Url, location: &str) -> Result<Url, String> {
    let target = from
        .join(location)
        .map_err(|e| format!("redirected to an invalid Location {location:?} ({e})"))?;
    let shown = crate::config::redact_url(&target);
    let keeps_method = matches!(status.as_u16(), 307 | 308);
    if !keeps_method && method != Method::GET && method != Method::HEAD {
        return Err(format!(
            "answered a {method} with HTTP {} to {shown}, which would turn it into a GET; \
             put {shown} in the client's config",
            status.as_u16()
        ));
    }
    if target.origin() != from.origin() {
        let upgrade = from.scheme() == "http"
            && target.scheme() == "https"
            && from.host_str() == target.host_str();
        return Err(if upgrade {
            format!(
                "redirected to {shown}: the server wants https; put {shown} in the client's config"
            )
        } else {
            format!(
                "redirected to {shown}, another origin; not followed, so credentials stay with \
                 the server they are for. If that server is the right one, put its URL in the \
                 client's config"
            )
        });
    }
    Ok(target)
}

/// How a GET stream ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Listened {
    /// No stream (405), refused, given up, or nowhere to deliver.
    Ended,
    /// The server does not know the session any more (404, or a TypeScript-SDK 400).
    SessionGone,
}

/// What a JSON-RPC error body of a non-2xx answer says.
#[derive(Default)]
struct ErrorBody {
    /// A recognized modern JSON-RPC error (M-DETECT).
    modern: bool,
    /// A HeaderMismatch error (M-MISMATCH).
    header_mismatch: bool,
    /// A 400 that is no modern error and asks for a session or a known version: what
    /// a legacy-only server answers a modern request (M-BACKPORT).
    legacy: bool,
    /// Its `message`.
    message: Option<String>,
    /// The error as a response to hand to the receiver (never a HeaderMismatch, which
    /// the caller retries, and never one without an id).
    answer: Option<Bytes>,
}

impl ErrorBody {
    /// A 400 that is a TypeScript-SDK server's way of saying the session is unknown.
    fn lost_session(&self, status: StatusCode) -> bool {
        status == StatusCode::BAD_REQUEST
            && self
                .message
                .as_deref()
                .is_some_and(|m| LOST_SESSION_400.contains(&m))
    }

    fn read(status: StatusCode, body: &[u8]) -> ErrorBody {
        // Without a JSON-RPC error, a bare 400 is what the spec says identifies a legacy
        // server too.
        let bare = ErrorBody {
            legacy: status == StatusCode::BAD_REQUEST,
            ..ErrorBody::default()
        };
        let Ok(text) = std::str::from_utf8(body) else {
            return bare;
        };
        let Ok(jsonrpc::Parsed::Single(m)) = jsonrpc::parse(text.trim()) else {
            return bare;
        };
        let Some(err) = m.error.filter(|_| m.kind == Kind::Response) else {
            return bare;
        };
        let code = jsonrpc::error_code(err);
        let header_mismatch = code == Some(jsonrpc::code::HEADER_MISMATCH);
        let modern = matches!(
            (status.as_u16(), code),
            (400, Some(jsonrpc::code::HEADER_MISMATCH))
                | (400, Some(jsonrpc::code::MISSING_CLIENT_CAPABILITY))
                | (400, Some(jsonrpc::code::UNSUPPORTED_PROTOCOL_VERSION))
                | (404, Some(jsonrpc::code::METHOD_NOT_FOUND))
        );
        let message = serde_json::from_str::<serde_json::Value>(err.get())
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned));
        ErrorBody {
            modern,
            header_mismatch,
            legacy: status == StatusCode::BAD_REQUEST
                && !modern
                && message.as_deref().is_some_and(wants_session),
            message,
            answer: (!header_mismatch && m.id.is_some())
                .then(|| Bytes::copy_from_slice(text.trim().as_bytes())),
        }
    }
}

/// Whether an error message is a legacy server's refusal of a request outside a
/// session: "Server not initialized", "No valid session ID provided", "Missing session
/// ID", or an unsupported protocol version header (the TypeScript and Python SDKs').
/// A modern server's own 400s (invalid params, say) never read like this.
fn wants_session(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "not initialized",
        "session id",
        "session-id",
        "protocol version",
    ]
    .iter()
    .any(|k| m.contains(k))
}

enum ResumeError {
    Retry,
    Fatal(RemoteError),
}

/// Await `fut`, giving up after `idle` (None: no limit).
pub(crate) async fn with_idle<F: std::future::Future>(
    idle: Option<Duration>,
    fut: F,
) -> Option<F::Output> {
    match idle {
        Some(d) => tokio::time::timeout(d, fut).await.ok(),
        None => Some(fut.await),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// A short, single-line description of an error body (HTML pages are summarized).
pub(crate) fn summarize_body(body: &[u8], is_json: bool) -> String {
    let text = String::from_utf8_lossy(body);
    let lower = text.to_ascii_lowercase();
    if !is_json && (lower.contains("<html") || lower.contains("<!doctype")) {
        if let (Some(a), Some(b)) = (lower.find("<title>"), lower.find("</title>"))
            && b > a + 7
        {
            return format!(
                "an HTML page titled {:?}",
                truncate(text[a + 7..b].trim(), 100)
            );
        }
        return "an HTML page".into();
    }
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate(&flat, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn which_redirects_are_followed() {
        let from = url("https://mcp.test/mcp");
        let go = |m: Method, code: u16, loc: &str| {
            follow(&m, StatusCode::from_u16(code).unwrap(), &from, loc)
        };
        for code in [307, 308] {
            for m in [Method::POST, Method::GET, Method::DELETE] {
                assert_eq!(
                    go(m, code, "/mcp/").unwrap().as_str(),
                    "https://mcp.test/mcp/"
                );
            }
        }
        for code in [301, 302, 303] {
            assert_eq!(
                go(Method::GET, code, "/v2/mcp").unwrap().as_str(),
                "https://mcp.test/v2/mcp"
            );
            let refused = go(Method::POST, code, "/v2/mcp").unwrap_err();
            assert!(refused.contains("turn it into a GET"), "{refused}");
        }
        // Another origin: host, port or scheme (https → http included).
        for target in [
            "https://evil.test/mcp",
            "https://mcp.test:8443/mcp",
            "http://mcp.test/mcp",
        ] {
            let refused = go(Method::POST, 307, target).unwrap_err();
            assert!(refused.contains("another origin"), "{target}: {refused}");
        }
        // http → https on the same host: say which URL to configure.
        let up = follow(
            &Method::POST,
            StatusCode::PERMANENT_REDIRECT,
            &url("http://mcp.test/mcp"),
            "https://mcp.test/mcp",
        )
        .unwrap_err();
        assert!(
            up.contains("put https://mcp.test/mcp in the client's config"),
            "{up}"
        );
    }
}
