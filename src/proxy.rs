//! The proxy loop. It alone owns the connection state ([`Conn`]); request tasks talk to
//! it over a channel. Stdin lines come in, each message becomes a task that POSTs it and
//! forwards the answer, and every request gets exactly one response: the server's, or a
//! JSON-RPC error that says what failed.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::config::{Config, TransportMode};
use crate::error::RemoteError;
use crate::jsonrpc::{self, IdKey, Kind, ParamsProbe};
use crate::remote::http::{Http, Outcome, Post, SessionHeaders, Sink};
use crate::remote::legacy_sse::LegacySse;
use crate::remote::modern::ToolHeaders;
use crate::stdio::{Frame, LineReader, Out, spawn_writer};

mod exchange;
use exchange::{forward, initialize, unit};

/// How long a new session waits for its GET stream before sending on.
const LISTEN_READY_WAIT: Duration = Duration::from_secs(2);
/// How long stdin EOF waits for in-flight requests before ending the session.
const EOF_DRAIN: Duration = Duration::from_secs(3);
/// Messages in flight (POSTs running, or waiting for the handshake) at which stdin stops
/// being read until some end. Without it a client writing faster than the server takes
/// (issue 6: 100,000 notifications) made the proxy hold a task, and often a connection,
/// for every message at once: memory grew with the flood (150 MB for 100k). Now the pipe
/// pushes back instead, as stdout does. Far above what clients keep in flight; every such
/// message ends (answer, error or --request-timeout), so reading always resumes.
/// `subscriptions/listen` streams never end on their own and are not counted.
const MAX_IN_FLIGHT: usize = 256;
/// Pages of `tools/list` fetched to refresh annotations (M-MISMATCH).
const MAX_TOOLS_PAGES: usize = 20;

/// The era a message belongs to (M-ERA).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Era {
    /// Initialize-based revisions, 2025-11-25 and earlier.
    Legacy,
    /// Per-request metadata (2026-07-28): the version comes from `_meta`.
    Modern { version: String },
}

/// One unit of client traffic: a message, or a 2025-03-26 batch.
#[derive(Clone, Debug)]
struct Outgoing {
    body: Bytes,
    /// Requests in it that wait for a response.
    ids: Vec<IdKey>,
    method: String,
    era: Era,
    /// Already retried after a lost session or a header mismatch.
    retried: bool,
}

impl Outgoing {
    fn long_lived(&self) -> bool {
        self.method == "subscriptions/listen"
    }
}

/// A legacy Streamable HTTP session (L-INIT, H-SID).
#[derive(Debug)]
struct Session {
    headers: SessionHeaders,
    generation: u64,
    /// The standalone GET stream (H-GET), once started.
    listener: Option<AbortHandle>,
}

/// The connection state, owned by the loop alone.
enum Conn {
    /// No legacy handshake yet (a modern client never makes one).
    Fresh,
    /// An initialize is in flight; later legacy messages wait, in order (L-INIT).
    Initializing {
        task: u64,
        queued: VecDeque<Outgoing>,
        reinit: bool,
    },
    /// The session exists but is not ready for traffic yet (see [`Stage`]); later
    /// messages wait, in order.
    Starting {
        session: Session,
        stage: Stage,
        queued: VecDeque<Outgoing>,
    },
    /// A Streamable HTTP session is up.
    Ready(Session),
    /// The server speaks the 2024-11-05 HTTP+SSE transport (B-SSE).
    Sse(Arc<LegacySse>),
}

/// Why a new session still holds messages back.
#[derive(Debug, PartialEq, Eq)]
enum Stage {
    /// The client's `notifications/initialized` is being POSTed: the server must see it
    /// before anything else (L-INIT).
    Confirming { task: u64 },
    /// The GET stream is being opened, so server requests sent while the next messages
    /// run (elicitation, sampling) have a stream to arrive on (H-GET).
    Listening,
}

/// What tasks report to the loop.
enum Event {
    /// A task finished; `unanswered` requests get `error`.
    Finished {
        task: u64,
        unanswered: Vec<IdKey>,
        error: Option<RemoteError>,
    },
    /// A message hit 404 on its session (H-404); re-initialize and retry it once.
    SessionGone {
        task: u64,
        generation: u64,
        msg: Outgoing,
    },
    /// The GET stream of session `generation` got its answer (or the wait was bounded).
    ListenerReady { generation: u64 },
    /// The initialize exchange ended.
    Initialized { task: u64, result: InitResult },
}

enum InitResult {
    /// Streamable HTTP session (possibly without a session id).
    Streamable { headers: SessionHeaders },
    /// Fell back to HTTP+SSE; the initialize was sent there.
    Sse(Arc<LegacySse>),
    /// The initialize failed; its error was already reported.
    Failed,
}

struct InFlight {
    task: u64,
    abort: AbortHandle,
    modern: bool,
    cancelled: bool,
    long_lived: bool,
}

/// Shared, read-only context for request tasks.
struct Ctx {
    http: Arc<Http>,
    out: Out,
    events: mpsc::UnboundedSender<Event>,
    tools: ToolHeaders,
    transport: TransportMode,
}

/// Run the proxy until stdin ends, `shutdown` fires, or stdout closes.
pub async fn run<R, W, S>(
    config: Arc<Config>,
    http: Arc<Http>,
    input: R,
    output: W,
    shutdown: S,
) -> anyhow::Result<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
    S: Future<Output = ()>,
{
    let (out, writer) = spawn_writer(output);
    let (events_tx, events) = mpsc::unbounded_channel();
    let (lines_tx, lines) = mpsc::channel::<std::io::Result<Frame>>(64);
    let max = config.max_message_size;
    let reader = tokio::spawn(async move {
        let mut reader =
            LineReader::new(tokio::io::BufReader::with_capacity(64 * 1024, input), max);
        loop {
            match reader.next().await {
                Ok(Some(frame)) => {
                    if lines_tx.send(Ok(frame)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = lines_tx.send(Err(e)).await;
                    return;
                }
            }
        }
    });
    let ctx = Arc::new(Ctx {
        http,
        out: out.clone(),
        events: events_tx,
        tools: ToolHeaders::default(),
        transport: config.transport,
    });
    let mut proxy = Proxy {
        ctx,
        conn: Conn::Fresh,
        init_body: None,
        in_flight: HashMap::new(),
        tasks: HashMap::new(),
        next_task: 0,
        generation: 0,
        config,
    };
    let result = proxy.run_loop(lines, events, shutdown).await;
    reader.abort();
    proxy.shutdown().await;
    drop(proxy);
    drop(out);
    // The writer ends once every sender is gone; bound the wait for a stuck stdout.
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    result
}

struct Proxy {
    ctx: Arc<Ctx>,
    conn: Conn,
    /// The client's initialize, kept to open a new session later (H-404).
    init_body: Option<Bytes>,
    in_flight: HashMap<IdKey, InFlight>,
    tasks: HashMap<u64, AbortHandle>,
    next_task: u64,
    generation: u64,
    config: Arc<Config>,
}

impl Proxy {
    async fn run_loop<S: Future<Output = ()>>(
        &mut self,
        mut lines: mpsc::Receiver<std::io::Result<Frame>>,
        mut events: mpsc::UnboundedReceiver<Event>,
        shutdown: S,
    ) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        loop {
            if drain_deadline.is_some() && self.drained() {
                return Ok(());
            }
            let deadline = async {
                match drain_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = &mut shutdown => {
                    tracing::debug!("shutdown signal");
                    return Ok(());
                }
                Some(ev) = events.recv() => self.on_event(ev).await,
                frame = lines.recv(), if drain_deadline.is_none() && !self.saturated() => match frame {
                    Some(Ok(Frame::Line(line))) => self.on_line(line).await,
                    Some(Ok(Frame::TooLong { len, head })) => {
                        tracing::warn!(len, "stdin line over --max-message-size; rejected");
                        let msg = format!(
                            "message of {len} bytes exceeds the {}-byte limit (--max-message-size)",
                            self.config.max_message_size
                        );
                        // Its own id when the line starts with it, so the request is answered.
                        let id = jsonrpc::id_from_prefix(&head);
                        self.reply_error(id.as_ref(), jsonrpc::code::INVALID_REQUEST, &msg).await;
                    }
                    Some(Err(e)) => {
                        tracing::warn!("reading stdin failed: {e}");
                        drain_deadline = Some(tokio::time::Instant::now() + EOF_DRAIN);
                    }
                    None => {
                        tracing::debug!("stdin closed");
                        // Long-lived streams never finish on their own.
                        let listens: Vec<IdKey> = self.in_flight.iter()
                            .filter(|(_, f)| f.long_lived).map(|(k, _)| k.clone()).collect();
                        for id in listens {
                            if let Some(f) = self.in_flight.remove(&id) { f.abort.abort(); }
                        }
                        drain_deadline = Some(tokio::time::Instant::now() + EOF_DRAIN);
                    }
                },
                _ = deadline => return Ok(()),
                _ = self.ctx.out.closed() => {
                    tracing::debug!("stdout closed; exiting");
                    return Ok(());
                }
            }
        }
    }

    /// Whether stdin should wait: [`MAX_IN_FLIGHT`] messages are already in flight.
    fn saturated(&self) -> bool {
        let queued = match &self.conn {
            Conn::Initializing { queued, .. } | Conn::Starting { queued, .. } => queued.len(),
            _ => 0,
        };
        let busy = self.tasks.len() + queued;
        // Checked before every stdin read: scan for the long-lived streams only when the
        // count is near the bound, not on every message.
        busy >= MAX_IN_FLIGHT
            && busy >= MAX_IN_FLIGHT + self.in_flight.values().filter(|f| f.long_lived).count()
    }

    fn drained(&self) -> bool {
        self.tasks.is_empty()
            && !matches!(self.conn, Conn::Initializing { .. } | Conn::Starting { .. })
    }

    /// The `initialized` POST (task) ended: open the GET stream next (H-GET).
    fn confirmed(&mut self, task: u64) {
        if let Conn::Starting { session, stage, .. } = &mut self.conn
            && *stage == (Stage::Confirming { task })
        {
            *stage = Stage::Listening;
            let (headers, generation) = (session.headers.clone(), session.generation);
            let listener = self.start_listener(headers, generation);
            if let Conn::Starting { session, .. } = &mut self.conn {
                session.listener = Some(listener);
            }
        }
    }

    /// The GET stream is up (or refused): the session is ready and the messages that
    /// waited go out in order.
    fn listening(&mut self, generation: u64) {
        if !matches!(&self.conn, Conn::Starting { session, stage: Stage::Listening, .. } if session.generation == generation)
        {
            return;
        }
        let Conn::Starting {
            session, queued, ..
        } = std::mem::replace(&mut self.conn, Conn::Fresh)
        else {
            unreachable!("checked above");
        };
        self.conn = Conn::Ready(session);
        for m in queued {
            self.dispatch(m);
        }
    }

    async fn shutdown(&mut self) {
        for (_, t) in self.tasks.drain() {
            t.abort();
        }
        let conn = std::mem::replace(&mut self.conn, Conn::Fresh);
        if let Conn::Ready(session) | Conn::Starting { session, .. } = conn {
            if let Some(l) = &session.listener {
                l.abort();
            }
            // H-DELETE, bounded so exit stays prompt.
            let http = self.ctx.http.clone();
            let _ = tokio::time::timeout(
                self.config.shutdown_grace,
                http.delete_session(&session.headers),
            )
            .await;
        }
    }

    async fn reply_error(&self, id: Option<&IdKey>, code: i64, message: &str) {
        let line = jsonrpc::error_response(id, code, message);
        let _ = self.ctx.out.send(Bytes::from(line)).await;
    }

    async fn on_line(&mut self, line: Vec<u8>) {
        let body = Bytes::from(line);
        let text = match jsonrpc::as_utf8(&body) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("stdin: {e}");
                return self.reply_error(None, e.code(), &e.to_string()).await;
            }
        };
        let parsed = match jsonrpc::parse(text) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("stdin: {e}");
                return self.reply_error(e.id(), e.code(), &e.to_string()).await;
            }
        };
        let units: Vec<Outgoing> = match parsed {
            jsonrpc::Parsed::Single(m) => vec![unit(&body, &m)],
            jsonrpc::Parsed::Batch(ms) => {
                let batch_version = match &self.conn {
                    Conn::Ready(session) | Conn::Starting { session, .. } => {
                        session.headers.protocol_version.as_deref()
                    }
                    _ => None,
                };
                if batch_version == Some("2025-03-26") || matches!(self.conn, Conn::Sse(_)) {
                    // S-BATCH-03: forwarded whole.
                    vec![Outgoing {
                        body: body.clone(),
                        ids: ms
                            .iter()
                            .filter(|m| m.kind == Kind::Request)
                            .filter_map(|m| m.id.clone())
                            .collect(),
                        method: String::new(),
                        era: Era::Legacy,
                        retried: false,
                    }]
                } else {
                    // Later revisions have no batches (H-BODY): send each message alone.
                    ms.iter()
                        .map(|m| {
                            let raw = Bytes::copy_from_slice(m.raw.as_bytes());
                            unit(&raw, m)
                        })
                        .collect()
                }
            }
        };
        for u in units {
            self.dispatch_new(u).await;
        }
    }

    async fn dispatch_new(&mut self, msg: Outgoing) {
        for id in &msg.ids {
            if self.in_flight.contains_key(id) || self.is_queued(id) {
                tracing::warn!(%id, "stdin: duplicate request id while the first is in flight");
                return self
                    .reply_error(
                        Some(id),
                        jsonrpc::code::INVALID_REQUEST,
                        "duplicate request id: a request with this id is still in flight",
                    )
                    .await;
            }
        }
        if msg.method == "notifications/cancelled" && self.cancel(&msg) {
            return;
        }
        // A second initialize while one is in flight waits its turn in the queue.
        if msg.method == "initialize"
            && msg.era == Era::Legacy
            && !matches!(self.conn, Conn::Initializing { .. })
        {
            return self.start_initialize(msg, false);
        }
        self.dispatch(msg);
    }

    /// Whether a request with this id waits in the handshake queue: it is in flight as far
    /// as the client can tell, even though no task has it yet.
    fn is_queued(&self, id: &IdKey) -> bool {
        match &self.conn {
            Conn::Initializing { queued, .. } | Conn::Starting { queued, .. } => {
                queued.iter().any(|m| m.ids.contains(id))
            }
            _ => false,
        }
    }

    /// L-CANCEL / M-CANCEL. Returns true when the notification must not be forwarded.
    fn cancel(&mut self, msg: &Outgoing) -> bool {
        let Ok(text) = std::str::from_utf8(&msg.body) else {
            return false;
        };
        let Ok(jsonrpc::Parsed::Single(m)) = jsonrpc::parse(text) else {
            return false;
        };
        let Some(target) = ParamsProbe::of(m.params).request_id.map(IdKey::from_raw) else {
            return false;
        };
        let Some(f) = self.in_flight.get_mut(&target) else {
            return false;
        };
        f.cancelled = true;
        if f.modern {
            // On modern HTTP, closing the response stream is the cancellation.
            f.abort.abort();
            let task = f.task;
            self.in_flight.remove(&target);
            self.tasks.remove(&task);
            return true;
        }
        false
    }

    fn start_initialize(&mut self, msg: Outgoing, reinit: bool) {
        if !reinit {
            self.init_body = Some(msg.body.clone());
        }
        if let Conn::Ready(s) = &self.conn
            && let Some(l) = &s.listener
        {
            l.abort();
        }
        let task = self.next_task();
        self.conn = Conn::Initializing {
            task,
            queued: VecDeque::new(),
            reinit,
        };
        let ctx = self.ctx.clone();
        let ids = if reinit { Vec::new() } else { msg.ids.clone() };
        let abort = self.spawn_guarded(task, ids.clone(), async move {
            Event::Initialized {
                task,
                result: initialize(&ctx, msg, reinit).await,
            }
        });
        self.track(task, abort, &ids, false, false);
    }

    /// Open a new session with the kept initialize (H-404, B-SSE reconnect). False when
    /// the client never initialized.
    fn renew_session(&mut self) -> bool {
        let Some(body) = self.init_body.clone() else {
            return false;
        };
        let init = Outgoing {
            body,
            ids: Vec::new(),
            method: "initialize".into(),
            era: Era::Legacy,
            retried: false,
        };
        self.start_initialize(init, true);
        true
    }

    fn next_task(&mut self) -> u64 {
        self.next_task += 1;
        self.next_task
    }

    fn track(
        &mut self,
        task: u64,
        abort: AbortHandle,
        ids: &[IdKey],
        modern: bool,
        long_lived: bool,
    ) {
        for id in ids {
            self.in_flight.insert(
                id.clone(),
                InFlight {
                    task,
                    abort: abort.clone(),
                    modern,
                    cancelled: false,
                    long_lived,
                },
            );
        }
        self.tasks.insert(task, abort);
    }

    /// Send a message according to the current state.
    fn dispatch(&mut self, msg: Outgoing) {
        if let Era::Modern { .. } = msg.era {
            // Modern messages are stateless (M-STATELESS): no session, no queue.
            self.spawn_streamable(msg, None);
            return;
        }
        match &mut self.conn {
            Conn::Initializing { queued, .. } | Conn::Starting { queued, .. } => {
                queued.push_back(msg)
            }
            Conn::Fresh => {
                self.spawn_streamable(msg, None);
            }
            Conn::Ready(s) => {
                let session = Some((s.headers.clone(), s.generation));
                let confirm = msg.method == "notifications/initialized" && s.listener.is_none();
                let task = self.spawn_streamable(msg, session);
                if confirm
                    && let Conn::Ready(session) = std::mem::replace(&mut self.conn, Conn::Fresh)
                {
                    self.conn = Conn::Starting {
                        session,
                        stage: Stage::Confirming { task },
                        queued: VecDeque::new(),
                    };
                }
            }
            Conn::Sse(sse) if sse.is_closed() => {
                // The HTTP+SSE stream ended: connect again and renew the session with the
                // kept initialize, then send this message on it.
                tracing::info!("the HTTP+SSE stream had ended; reconnecting");
                if !self.renew_session() {
                    self.conn = Conn::Fresh;
                }
                self.dispatch(msg);
            }
            Conn::Sse(sse) => {
                let sse = sse.clone();
                let task = self.next_task();
                let ids = msg.ids.clone();
                let idle = (!msg.long_lived()).then_some(self.config.request_timeout);
                let pending = sse.enqueue(msg.body, msg.ids);
                let abort = self.spawn_guarded(task, ids.clone(), async move {
                    let (unanswered, error) = match sse.wait(pending, idle).await {
                        Ok(()) => (Vec::new(), None),
                        Err((ids, e)) => (ids, Some(e)),
                    };
                    Event::Finished {
                        task,
                        unanswered,
                        error,
                    }
                });
                self.track(task, abort, &ids, false, false);
            }
        }
    }

    /// Open the GET stream; `ListenerReady` follows once it has its answer, or after
    /// `LISTEN_READY_WAIT` at most (a slow optional stream must not stall the session).
    fn start_listener(&self, headers: SessionHeaders, generation: u64) -> AbortHandle {
        let http = self.ctx.http.clone();
        let out = self.ctx.out.clone();
        let events = self.ctx.events.clone();
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(LISTEN_READY_WAIT, ready).await;
            let _ = events.send(Event::ListenerReady { generation });
        });
        tokio::spawn(async move { http.listen(headers, out, Some(ready_tx)).await }).abort_handle()
    }

    fn spawn_streamable(&mut self, msg: Outgoing, session: Option<(SessionHeaders, u64)>) -> u64 {
        let task = self.next_task();
        let ctx = self.ctx.clone();
        let ids = msg.ids.clone();
        let modern = matches!(msg.era, Era::Modern { .. });
        let long_lived = msg.long_lived();
        let idle = (!long_lived).then_some(self.config.request_timeout);
        let abort = self.spawn_guarded(task, ids.clone(), async move {
            forward(&ctx, msg, session, idle, task).await
        });
        self.track(task, abort, &ids, modern, long_lived);
        task
    }

    /// Spawn a request task. Should it panic (a bug), its requests are still answered
    /// with an error, and an initialize in progress is released: nothing is lost.
    fn spawn_guarded<F>(&self, task: u64, ids: Vec<IdKey>, work: F) -> AbortHandle
    where
        F: Future<Output = Event> + Send + 'static,
    {
        let events = self.ctx.events.clone();
        tokio::spawn(async move {
            use futures_util::FutureExt;
            match std::panic::AssertUnwindSafe(work).catch_unwind().await {
                Ok(event) => {
                    let _ = events.send(event);
                }
                Err(_) => {
                    let error = RemoteError::Other(
                        "internal error in clerk-mcp-server while forwarding this request \
                         (a bug: please report it with the --log-file output)"
                            .into(),
                    );
                    let _ = events.send(Event::Finished {
                        task,
                        unanswered: ids,
                        error: Some(error),
                    });
                    let _ = events.send(Event::Initialized {
                        task,
                        result: InitResult::Failed,
                    });
                }
            }
        })
        .abort_handle()
    }

    async fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Finished {
                task,
                unanswered,
                error,
            } => {
                self.tasks.remove(&task);
                let error = error.map(|e| e.to_string());
                for id in unanswered {
                    let Some(f) = self.in_flight.remove(&id) else {
                        continue;
                    };
                    if f.cancelled {
                        continue;
                    }
                    let msg = error.as_deref().unwrap_or("the server sent no response");
                    tracing::warn!(%id, "request failed: {msg}");
                    self.reply_error(Some(&id), jsonrpc::code::TRANSPORT_ERROR, msg)
                        .await;
                }
                self.in_flight.retain(|_, f| f.task != task);
                self.confirmed(task);
            }
            Event::SessionGone {
                task,
                generation,
                mut msg,
            } => {
                self.tasks.remove(&task);
                self.confirmed(task);
                for id in &msg.ids {
                    self.in_flight.remove(id);
                }
                if msg.retried {
                    let ids = std::mem::take(&mut msg.ids);
                    for id in ids {
                        self.reply_error(
                            Some(&id),
                            jsonrpc::code::TRANSPORT_ERROR,
                            &format!(
                                "{} lost the session again right after it was renewed (HTTP 404)",
                                self.ctx.http.host
                            ),
                        )
                        .await;
                    }
                    return;
                }
                msg.retried = true;
                let current = matches!(&self.conn, Conn::Ready(s) if s.generation == generation);
                if current {
                    tracing::info!("session expired (HTTP 404); opening a new one");
                    self.renew_session();
                }
                // Either queued behind the new initialize, or sent on the newer session.
                self.dispatch(msg);
            }
            Event::ListenerReady { generation } => self.listening(generation),
            Event::Initialized { task, result } => {
                self.tasks.remove(&task);
                self.in_flight.retain(|_, f| f.task != task);
                // Only the initialize the state is waiting for may change it.
                if !matches!(&self.conn, Conn::Initializing { task: t, .. } if *t == task) {
                    return;
                }
                let Conn::Initializing { queued, reinit, .. } =
                    std::mem::replace(&mut self.conn, Conn::Fresh)
                else {
                    unreachable!("checked above");
                };
                if reinit && let InitResult::Failed = result {
                    // The renewed session failed: queued requests fail now.
                    for m in &queued {
                        for id in &m.ids {
                            self.reply_error(
                                Some(id),
                                jsonrpc::code::TRANSPORT_ERROR,
                                "the session expired and a new one could not be opened",
                            )
                            .await;
                        }
                    }
                    return;
                }
                match result {
                    InitResult::Streamable { headers } => {
                        self.generation += 1;
                        let mut session = Session {
                            headers,
                            generation: self.generation,
                            listener: None,
                        };
                        if reinit {
                            // The replayed `initialized` was sent by the init task: open
                            // the GET stream before the retried messages go out.
                            session.listener = Some(
                                self.start_listener(session.headers.clone(), session.generation),
                            );
                            self.conn = Conn::Starting {
                                session,
                                stage: Stage::Listening,
                                queued,
                            };
                            return;
                        }
                        self.conn = Conn::Ready(session);
                    }
                    InitResult::Sse(sse) => self.conn = Conn::Sse(sse),
                    InitResult::Failed => self.conn = Conn::Fresh,
                }
                for m in queued {
                    self.dispatch(m);
                }
            }
        }
    }
}
