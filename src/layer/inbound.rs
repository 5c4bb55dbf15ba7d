//! The receiving end of the transport. Each server message is checked (UTF-8, JSON-RPC),
//! routed to the request it answers, run through the chain when a stage reads its
//! result, and written to stdout. [`Inbound`] serves one exchange (a POST's answer, or
//! the GET stream); [`Router`] serves the single HTTP+SSE stream, where the responses of
//! every request arrive and wake the request that waits for them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{Chain, Expect, Hook};
use crate::error::RemoteError;
use crate::jsonrpc::{self, IdKey, Kind, Message, Parsed};
use crate::layer::translate::Translation;
use crate::remote::http::with_idle;
use crate::remote::legacy_sse::{LegacySse, StreamEnd};
use crate::remote::{Closed, Deliver};
use crate::stdio::{Out, one_line};

/// Everything on the way to stdout, shared by every task.
pub(crate) struct Downstream {
    pub(crate) out: Out,
    pub(crate) chain: Arc<Chain>,
    /// `host[:port]`, for log lines.
    pub(crate) host: String,
}

impl Downstream {
    async fn send(&self, line: Bytes) -> Result<(), Closed> {
        self.out.send(line).await.map_err(|_| Closed)
    }

    /// A response rewritten by the stages that read it; `None` when none changed it.
    fn response_line(&self, hook: Option<&Hook>, raw: &str) -> Option<Bytes> {
        let hook = hook?;
        self.chain
            .on_response(&hook.method, hook.modern, raw.as_bytes())
            .map(Bytes::from)
    }

    /// Write one checked server message. `answered` gives each response's hook; batches
    /// are rebuilt only when a stage changed one of their elements.
    async fn write(
        &self,
        data: Bytes,
        parsed: &Parsed<'_>,
        hooks: &[Option<Hook>],
    ) -> Result<(), Closed> {
        let line = match parsed {
            Parsed::Single(m) => self
                .response_line(hooks.first().and_then(Option::as_ref), m.raw)
                .unwrap_or_else(|| one_line(data)),
            Parsed::Batch(ms) => self.batch_line(data, ms, hooks),
        };
        self.send(line).await
    }

    /// Write an answer that was held back (a translated request's final result), through
    /// the stages that read it.
    pub(crate) async fn write_answer(
        &self,
        data: Bytes,
        hook: Option<&Hook>,
    ) -> Result<(), Closed> {
        let line = std::str::from_utf8(&data)
            .ok()
            .and_then(|raw| self.response_line(hook, raw))
            .unwrap_or_else(|| one_line(data));
        self.send(line).await
    }

    fn batch_line(&self, data: Bytes, ms: &[Message<'_>], hooks: &[Option<Hook>]) -> Bytes {
        if hooks.iter().all(Option::is_none) {
            return one_line(data);
        }
        let mut changed = false;
        let mut parts: Vec<std::borrow::Cow<'_, [u8]>> = Vec::with_capacity(ms.len());
        for (m, hook) in ms.iter().zip(hooks) {
            match hook.as_ref().and_then(|h| {
                self.chain
                    .on_response(&h.method, h.modern, m.raw.as_bytes())
            }) {
                Some(new) => {
                    changed = true;
                    parts.push(new.into());
                }
                None => parts.push(m.raw.as_bytes().into()),
            }
        }
        if !changed {
            return one_line(data);
        }
        let mut line = Vec::with_capacity(data.len());
        line.push(b'[');
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            line.extend_from_slice(p);
        }
        line.push(b']');
        one_line(Bytes::from(line))
    }
}

/// Check a server message. `Err` is why it is refused.
fn check(data: &Bytes) -> Result<Parsed<'_>, String> {
    let text = jsonrpc::as_utf8(data).map_err(|e| e.to_string())?;
    jsonrpc::parse(text).map_err(|e| e.to_string())
}

/// The messages of `parsed` that are responses, in order.
fn responses<'p, 'a>(parsed: &'p Parsed<'a>) -> Vec<&'p Message<'a>> {
    match parsed {
        Parsed::Single(m) => vec![m]
            .into_iter()
            .filter(|m| m.kind == Kind::Response)
            .collect(),
        Parsed::Batch(ms) => ms.iter().filter(|m| m.kind == Kind::Response).collect(),
    }
}

fn message_count(parsed: &Parsed<'_>) -> usize {
    match parsed {
        Parsed::Single(_) => 1,
        Parsed::Batch(ms) => ms.len(),
    }
}

/// The receiver of one exchange: the responses it waits for, and what else the server
/// sends on the way (progress, logs, requests), all forwarded in order.
pub(crate) struct Inbound<'a> {
    down: &'a Downstream,
    pending: Vec<Expect>,
    /// False while re-initializing a session behind the client's back: that initialize
    /// response is ours, not the client's.
    forward_responses: bool,
    /// The first response, kept (the initialize result is read for its version).
    pub(crate) capture: Option<Bytes>,
    malformed: Option<String>,
    /// A translated session's legacy client: modern-only notifications are not for it,
    /// and list changes make its cached lists stale.
    legacy_client: Option<Arc<Translation>>,
}

impl<'a> Inbound<'a> {
    pub(crate) fn new(down: &'a Downstream, pending: Vec<Expect>) -> Inbound<'a> {
        Inbound {
            down,
            pending,
            forward_responses: true,
            capture: None,
            malformed: None,
            legacy_client: None,
        }
    }

    /// For a legacy client in a translated session (M-BRIDGE): the modern era's own
    /// notifications (a listen stream's acknowledgement) are not forwarded.
    pub(crate) fn for_legacy_client(mut self, t: Arc<Translation>) -> Self {
        self.legacy_client = Some(t);
        self
    }

    /// Keep the responses from the client (the proxy's own requests).
    pub(crate) fn quiet(mut self) -> Self {
        self.forward_responses = false;
        self
    }

    /// The requests still waiting for their response.
    pub(crate) fn unanswered(self) -> Vec<IdKey> {
        self.pending.into_iter().map(|e| e.id).collect()
    }

    fn refuse(&mut self, why: String) {
        tracing::warn!(host = %self.down.host, "dropped a malformed message from the server: {why}");
        self.malformed = Some(why);
    }

    /// Take the waiting request `id` answers, if any.
    fn take(&mut self, id: Option<&IdKey>) -> Option<Expect> {
        let id = id?;
        let i = self.pending.iter().position(|p| &p.id == id)?;
        Some(self.pending.swap_remove(i))
    }
}

impl Deliver for Inbound<'_> {
    async fn deliver(&mut self, data: Bytes) -> Result<(), Closed> {
        let parsed = match check(&data) {
            Ok(p) => p,
            Err(why) => {
                self.refuse(why);
                return Ok(());
            }
        };
        if let (Some(t), Parsed::Single(m)) = (&self.legacy_client, &parsed)
            && m.kind == Kind::Notification
        {
            if m.method() == "notifications/subscriptions/acknowledged" {
                return Ok(());
            }
            t.notified(m.method());
        }
        let responses = responses(&parsed);
        let mut hooks = Vec::with_capacity(responses.len());
        let mut answered = false;
        for m in &responses {
            let expect = self.take(m.id.as_ref());
            answered |= expect.is_some();
            hooks.push(expect.and_then(|e| e.hook));
        }
        if !answered && responses.len() == message_count(&parsed) {
            tracing::warn!(host = %self.down.host, "dropped a response from the server that answers no pending request");
            return Ok(());
        }
        if answered {
            if self.capture.is_none() {
                self.capture = Some(data.clone()); // a reference count, not a copy
            }
            if !self.forward_responses {
                return Ok(());
            }
        }
        if matches!(parsed, Parsed::Batch(_)) {
            // Hooks line up with the batch's elements, responses or not.
            hooks = align(&parsed, hooks);
        }
        self.down.write(data.clone(), &parsed, &hooks).await
    }

    fn complete(&self) -> bool {
        self.pending.is_empty()
    }

    fn take_malformed(&mut self) -> Option<String> {
        self.malformed.take()
    }
}

/// Spread the hooks of a batch's responses over all its elements.
fn align(parsed: &Parsed<'_>, hooks: Vec<Option<Hook>>) -> Vec<Option<Hook>> {
    let Parsed::Batch(ms) = parsed else {
        return hooks;
    };
    let mut hooks = hooks.into_iter();
    ms.iter()
        .map(|m| {
            if m.kind == Kind::Response {
                hooks.next().flatten()
            } else {
                None
            }
        })
        .collect()
}

/// A request waiting on the HTTP+SSE stream.
struct Waiter {
    /// Woken with the response when it is kept from the client (`forward: false`).
    done: oneshot::Sender<Option<Bytes>>,
    forward: bool,
    hook: Option<Hook>,
}

/// Pending responses by id; `None` once the stream has ended.
type Waiters = Option<HashMap<IdKey, Waiter>>;

/// The HTTP+SSE (2024-11-05) stream's side of the layer: every server message arrives on
/// one stream, and each response wakes the request that waits for it.
pub(crate) struct Router {
    down: Arc<Downstream>,
    waiters: Mutex<Waiters>,
}

impl Router {
    fn waiters(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn forget(&self, ids: &[IdKey]) {
        if let Some(map) = self.waiters().as_mut() {
            for id in ids {
                map.remove(id);
            }
        }
    }
}

/// The reader task's handle on the [`Router`].
struct Inbox(Arc<Router>);

impl Deliver for Inbox {
    async fn deliver(&mut self, data: Bytes) -> Result<(), Closed> {
        let router = &self.0;
        let parsed = match check(&data) {
            Ok(p) => p,
            Err(why) => {
                tracing::warn!(host = %router.down.host, "dropped a malformed message from the HTTP+SSE stream: {why}");
                return Ok(());
            }
        };
        let responses = responses(&parsed);
        let mut woken = Vec::with_capacity(responses.len());
        let mut hooks = Vec::with_capacity(responses.len());
        {
            let mut guard = router.waiters();
            for m in &responses {
                let w =
                    m.id.as_ref()
                        .and_then(|id| guard.as_mut().and_then(|map| map.remove(id)));
                hooks.push(w.as_ref().and_then(|w| w.hook.clone()));
                woken.extend(w);
            }
        }
        if woken.is_empty() && responses.len() == message_count(&parsed) {
            tracing::warn!(host = %router.down.host, "dropped a response that answers no pending request");
            return Ok(());
        }
        // A batch answered as one array wakes every request in it (P-SSE-BATCH).
        let forward = woken.is_empty() || woken.iter().any(|w| w.forward);
        let hooks = align(&parsed, hooks);
        // Forward first, then release the waiters: "answered" means written.
        let sent = if forward {
            router.down.write(data.clone(), &parsed, &hooks).await
        } else {
            Ok(())
        };
        for w in woken {
            let kept = (!w.forward).then(|| data.clone());
            let _ = w.done.send(kept);
        }
        sent
    }
}

impl StreamEnd for Inbox {
    fn ended(&mut self) {
        // Dropping every waiter wakes each pending request with an error.
        self.0.waiters().take();
    }
}

/// One HTTP+SSE session: the transport and the routing of its stream.
pub(crate) struct SseSession {
    transport: LegacySse,
    router: Arc<Router>,
    host: String,
    request_timeout: Duration,
}

impl SseSession {
    pub(crate) async fn connect(
        http: Arc<crate::remote::http::Http>,
        down: Arc<Downstream>,
    ) -> Result<SseSession, RemoteError> {
        let router = Arc::new(Router {
            down,
            waiters: Mutex::new(Some(HashMap::new())),
        });
        let (host, request_timeout) = (http.host.clone(), http.request_timeout);
        let transport = LegacySse::connect(http, Inbox(router.clone())).await?;
        Ok(SseSession {
            transport,
            router,
            host,
            request_timeout,
        })
    }

    /// The stream has ended: nothing more can be answered on this connection.
    pub(crate) fn is_closed(&self) -> bool {
        self.router.waiters().is_none()
    }

    /// POST a message whose answers arrive on the stream; `forward: false` keeps the
    /// responses from the client and returns them instead. Registers the waiters and
    /// queues the POST at once (so the POSTs keep the client's order); the returned
    /// future waits for them.
    pub(crate) fn send(
        &self,
        body: Bytes,
        expects: Vec<Expect>,
        forward: bool,
        idle: Option<Duration>,
    ) -> impl Future<Output = Result<Vec<Bytes>, (Vec<IdKey>, RemoteError)>> + Send + 'static {
        let mut receivers = Vec::with_capacity(expects.len());
        let posted = {
            let mut guard = self.router.waiters();
            match guard.as_mut() {
                Some(map) => {
                    for e in expects {
                        let (done, rx) = oneshot::channel();
                        map.insert(
                            e.id.clone(),
                            Waiter {
                                done,
                                forward,
                                hook: e.hook,
                            },
                        );
                        receivers.push((e.id, rx));
                    }
                    Some(self.transport.post(body))
                }
                None => {
                    receivers.extend(expects.into_iter().map(|e| (e.id, oneshot::channel().1)));
                    None
                }
            }
        };
        let router = self.router.clone();
        let (host, secs) = (self.host.clone(), self.request_timeout.as_secs_f64());
        async move {
            let closed = || RemoteError::StreamEnded {
                host: host.clone(),
                why: " (the HTTP+SSE stream is closed)".into(),
            };
            let ids = || {
                receivers
                    .iter()
                    .map(|(id, _)| id.clone())
                    .collect::<Vec<_>>()
            };
            let failure = match posted {
                Some(p) => p.await.unwrap_or_else(|_| Some(closed())),
                None => Some(closed()),
            };
            if let Some(err) = failure {
                let ids = ids();
                router.forget(&ids);
                return Err((ids, err));
            }
            let mut unanswered = Vec::new();
            let mut reason = None;
            let mut kept = Vec::new();
            for (id, rx) in receivers {
                match with_idle(idle, rx).await {
                    Some(Ok(answer)) => kept.extend(answer),
                    Some(Err(_)) => {
                        unanswered.push(id);
                        reason = Some(closed());
                    }
                    None => {
                        unanswered.push(id);
                        reason = Some(RemoteError::Timeout {
                            host: host.clone(),
                            secs,
                            flag: "--request-timeout",
                        });
                    }
                }
            }
            router.forget(&unanswered);
            match reason {
                None => Ok(kept),
                Some(r) => Err((unanswered, r)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{Refusal, Request, Stage};
    use serde_json::{Value, json};
    use tokio::sync::mpsc;

    fn id(s: &str) -> IdKey {
        IdKey::from_raw(&serde_json::value::RawValue::from_string(s.to_owned()).unwrap())
    }

    /// A stage that renames every listed tool, to see where results pass the chain.
    struct Rename;
    impl Stage for Rename {
        fn on_request(&self, _: &Request<'_>) -> Result<(), Refusal> {
            Ok(())
        }
        fn wants_result(&self, method: &str, _: bool) -> bool {
            method == "tools/list"
        }
        fn on_result(&self, _: &str, _: bool, result: &mut Value) -> bool {
            result["tools"] = json!(["renamed"]);
            true
        }
    }

    fn downstream() -> (Downstream, mpsc::Receiver<Bytes>) {
        let (out, rx) = mpsc::channel(16);
        let down = Downstream {
            out,
            chain: Arc::new(Chain::of(vec![Box::new(Rename)])),
            host: "test".into(),
        };
        (down, rx)
    }

    fn expect(down: &Downstream, i: &str, method: &str) -> Expect {
        Expect::new(&down.chain, id(i), method, false)
    }

    #[tokio::test]
    async fn routes_responses_and_forwards_the_rest_in_order() {
        let (down, mut rx) = downstream();
        let mut inbound = Inbound::new(&down, vec![expect(&down, "1", "tools/call")]);
        let progress = br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#;
        inbound.deliver(Bytes::from_static(progress)).await.unwrap();
        assert!(!inbound.complete());
        inbound
            .deliver(Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":7,"result":{}}"#,
            ))
            .await
            .unwrap();
        inbound
            .deliver(Bytes::from_static(
                b"{\"jsonrpc\":\"2.0\",\n\"id\":1,\"result\":{}}",
            ))
            .await
            .unwrap();
        assert!(inbound.complete());
        assert_eq!(&rx.recv().await.unwrap()[..], progress);
        // The unsolicited id 7 was dropped; the answer arrives on one line.
        assert_eq!(
            &rx.recv().await.unwrap()[..],
            br#"{"jsonrpc":"2.0","id":1,"result":{}}"#
        );
        assert!(inbound.capture.is_some());
    }

    #[tokio::test]
    async fn results_a_stage_reads_pass_the_chain() {
        let (down, mut rx) = downstream();
        let mut inbound = Inbound::new(&down, vec![expect(&down, "1", "tools/list")]);
        inbound
            .deliver(Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#,
            ))
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&rx.recv().await.unwrap()).unwrap();
        assert_eq!(v["result"]["tools"], json!(["renamed"]));
    }

    #[tokio::test]
    async fn a_batch_answer_is_rewritten_element_by_element() {
        let (down, mut rx) = downstream();
        let mut inbound = Inbound::new(
            &down,
            vec![expect(&down, "1", "tools/list"), expect(&down, "2", "ping")],
        );
        inbound
            .deliver(Bytes::from_static(
                br#"[{"jsonrpc":"2.0","id":2,"result":{}},{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}]"#,
            ))
            .await
            .unwrap();
        assert!(inbound.complete());
        let v: Value = serde_json::from_slice(&rx.recv().await.unwrap()).unwrap();
        assert_eq!(v[0], json!({"jsonrpc":"2.0","id":2,"result":{}}));
        assert_eq!(v[1]["result"]["tools"], json!(["renamed"]));
    }

    #[tokio::test]
    async fn malformed_messages_are_refused_with_a_reason() {
        let (down, _rx) = downstream();
        let mut inbound = Inbound::new(&down, vec![expect(&down, "1", "ping")]);
        inbound
            .deliver(Bytes::from_static(b"not json"))
            .await
            .unwrap();
        assert!(inbound.take_malformed().unwrap().contains("parse error"));
        assert_eq!(inbound.unanswered(), vec![id("1")]);
    }

    #[tokio::test]
    async fn quiet_exchanges_capture_but_do_not_forward() {
        let (down, mut rx) = downstream();
        let mut inbound = Inbound::new(&down, vec![expect(&down, "1", "initialize")]).quiet();
        inbound
            .deliver(Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            ))
            .await
            .unwrap();
        assert!(inbound.complete() && inbound.capture.is_some());
        drop(inbound);
        drop(down);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn the_sse_router_releases_every_id_of_a_batch_array() {
        let (down, mut rx) = downstream();
        let router = Arc::new(Router {
            down: Arc::new(down),
            waiters: Mutex::new(Some(HashMap::new())),
        });
        let mut rxs = Vec::new();
        for i in ["1", "2"] {
            let (done, r) = oneshot::channel();
            router.waiters().as_mut().unwrap().insert(
                id(i),
                Waiter {
                    done,
                    forward: true,
                    hook: None,
                },
            );
            rxs.push(r);
        }
        let mut inbox = Inbox(router.clone());
        inbox
            .deliver(Bytes::from_static(
                br#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"result":{}}]"#,
            ))
            .await
            .unwrap();
        for r in rxs {
            r.await.expect("released");
        }
        assert!(rx.recv().await.unwrap().starts_with(b"["));
        assert!(router.waiters().as_ref().unwrap().is_empty());
        inbox.ended();
        assert!(router.waiters().is_none());
    }
}
