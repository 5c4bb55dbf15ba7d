//! The proxy loop. It alone owns the connection state ([`Conn`]); request tasks talk to
//! it over a channel. Stdin lines come in, each message becomes a task that POSTs it and
//! forwards the answer, and every request gets exactly one response: the server's, or a
//! JSON-RPC error that says what failed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::config::{Config, ProtocolMode, TransportMode};
use crate::error::RemoteError;
use crate::jsonrpc::{self, IdKey, Kind, ParamsProbe};
use crate::layer::backport::Backport;
use crate::layer::inbound::{Downstream, Inbound, SseSession};
use crate::layer::table::{Cancelled, Table, UnitId};
use crate::layer::translate::{self, Local, Translation};
use crate::layer::{Chain, Era, Expect, Request};
use crate::remote::http::{Http, Listened, Outcome, Post, SessionHeaders};
use crate::remote::modern::ToolHeaders;
use crate::stdio::{Frame, LineReader, Out, spawn_writer};

mod backport;
mod exchange;
mod mrtr;
use exchange::{forward, initialize, unit};

/// The id prefix of the keep-alive's pings (P-KEEPALIVE); with --keep-alive, refused to
/// clients so that a ping's answer can only be the ping's.
const KEEPALIVE_ID: &str = "clerk-mcp-server-keepalive-";
/// How long a new session waits for its GET stream before sending on.
const LISTEN_READY_WAIT: Duration = Duration::from_secs(2);
/// How long stdin EOF waits for in-flight requests before ending the session.
const EOF_DRAIN: Duration = Duration::from_secs(3);
/// Messages in flight (POSTs running, or waiting for the handshake) at which stdin stops
/// being read until some end. Without it a client writing faster than the server takes
/// (100,000 notifications) made the proxy hold a task, and often a connection, for every
/// message at once: memory grew with the flood. Now the pipe pushes back instead, as
/// stdout does. Far above what clients keep in flight; every such message ends (answer,
/// error or --request-timeout), so reading always resumes. `subscriptions/listen`
/// streams never end on their own and are not counted.
const MAX_IN_FLIGHT: usize = 256;
/// Pages of `tools/list` fetched to refresh annotations (M-MISMATCH).
const MAX_TOOLS_PAGES: usize = 20;

/// One unit of client traffic: a message, or a 2025-03-26 batch sent whole.
#[derive(Clone, Debug)]
struct Outgoing {
    body: Bytes,
    /// Requests in it that wait for a response.
    expects: Vec<Expect>,
    method: String,
    era: Era,
    /// Already retried after a lost session or a header mismatch.
    retried: bool,
    /// Its record in the request table.
    unit: UnitId,
    /// Made modern for a legacy client (M-BRIDGE): its answers may ask for input.
    translated: Option<Arc<Translation>>,
}

impl Outgoing {
    fn long_lived(&self) -> bool {
        self.method == "subscriptions/listen"
    }

    fn ids(&self) -> Vec<IdKey> {
        self.expects.iter().map(|e| e.id.clone()).collect()
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
        unit: UnitId,
        queued: VecDeque<Outgoing>,
        opening: Opening,
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
    Sse(Arc<SseSession>),
    /// A legacy client before a modern-only server: its messages are made modern
    /// (M-BRIDGE).
    Translated(Arc<Translation>),
}

/// Whose initialize opens a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opening {
    /// The client's own: its answer goes to the client.
    Client,
    /// The kept initialize again, the old session being gone (H-404, B-SSE reconnect).
    Renewal,
    /// The proxy's, for a modern client before a legacy-only server (M-BACKPORT).
    ForModernClient,
}

/// Why a new session still holds messages back.
#[derive(Debug, PartialEq, Eq)]
enum Stage {
    /// The client's `notifications/initialized` is being POSTed: the server must see it
    /// before anything else (L-INIT).
    Confirming { unit: UnitId },
    /// The GET stream is being opened, so server requests sent while the next messages
    /// run (elicitation, sampling) have a stream to arrive on (H-GET).
    Listening,
}

/// What attempt tasks report to the loop.
enum Event {
    /// A unit's attempt finished; `unanswered` requests get `error`.
    Finished {
        unit: UnitId,
        unanswered: Vec<IdKey>,
        error: Option<RemoteError>,
    },
    /// A message hit 404 on its session (H-404); re-initialize and retry it once.
    SessionGone {
        unit: UnitId,
        generation: u64,
        msg: Outgoing,
    },
    /// The GET stream of session `generation` got its answer (or the wait was bounded).
    ListenerReady { generation: u64 },
    /// The GET stream of session `generation` found the session gone (H-404).
    StreamSessionGone { generation: u64 },
    /// The initialize exchange ended.
    Initialized { unit: UnitId, result: InitResult },
    /// A modern message met a legacy-only server (M-BACKPORT): send it again on a
    /// legacy session opened for the client.
    LegacyOnly { msg: Outgoing },
}

enum InitResult {
    /// Streamable HTTP session (possibly without a session id), with the initialize's
    /// answer when it was the proxy's own.
    Streamable {
        headers: SessionHeaders,
        answer: Option<Bytes>,
    },
    /// Fell back to HTTP+SSE; the initialize was sent there (its answer, when it was
    /// the proxy's own).
    Sse {
        session: Arc<SseSession>,
        answer: Option<Bytes>,
    },
    /// The server is modern-only: the initialize was answered from `server/discover`.
    Translated(Arc<Translation>),
    /// The initialize failed; its error was already reported to the client when the
    /// initialize was the client's.
    Failed(Option<RemoteError>),
}

/// Shared, read-only context for attempt tasks.
struct Ctx {
    http: Arc<Http>,
    /// The message layer's way to stdout.
    down: Arc<Downstream>,
    events: mpsc::UnboundedSender<Event>,
    tools: Arc<ToolHeaders>,
    transport: TransportMode,
    protocol: ProtocolMode,
    /// Client answers to the proxy's own requests (MRTR input).
    answers: mrtr::Answers,
    /// The server refused a legacy initialize as an unsupported version once: later ones
    /// (a client that initializes again) are translated at once, without another try.
    modern_only: std::sync::atomic::AtomicBool,
    /// A modern client served from a legacy session (M-BACKPORT); also a stage.
    backport: Arc<Backport>,
    /// Backported requests waiting for the client's input.
    parking: backport::Parking,
}

/// Run the proxy until stdin ends, `shutdown` fires, or stdout closes.
pub(crate) async fn run<R, W, S>(
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
    // Read by the loop itself (the reader is cancel-safe): no task and no channel
    // between stdin and the loop.
    let mut reader = LineReader::new(
        tokio::io::BufReader::with_capacity(64 * 1024, input),
        config.max_message_size,
    );
    let tools = Arc::new(ToolHeaders::default());
    let backport = Arc::new(Backport::default());
    let down = Arc::new(Downstream {
        out: out.clone(),
        chain: Arc::new(Chain::new(&config, tools.clone(), backport.clone())),
        host: http.host.clone(),
    });
    let ctx = Arc::new(Ctx {
        http,
        down,
        events: events_tx,
        tools,
        transport: config.transport,
        protocol: config.protocol,
        answers: mrtr::Answers::default(),
        modern_only: std::sync::atomic::AtomicBool::new(false),
        backport,
        parking: backport::Parking::new(config.request_timeout),
    });
    let mut proxy = Proxy {
        ctx,
        out: out.clone(),
        conn: Conn::Fresh,
        init_body: None,
        table: Table::default(),
        listen: None,
        listens: 0,
        generation: 0,
        config,
        last_activity: tokio::time::Instant::now(),
        pings: 0,
        stream_renewed: None,
    };
    let result = proxy.run_loop(&mut reader, events, shutdown).await;
    proxy.shutdown().await;
    drop(proxy);
    drop(out);
    // The writer ends once every sender is gone; bound the wait for a stuck stdout.
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    result
}

struct Proxy {
    ctx: Arc<Ctx>,
    out: Out,
    conn: Conn,
    /// The client's initialize, kept to open a new session later (H-404).
    init_body: Option<Bytes>,
    /// Every unit of client traffic in flight, queued or running.
    table: Table,
    /// A translated session's `subscriptions/listen`, by the proxy's own id.
    listen: Option<IdKey>,
    /// Listen streams opened so far, for their ids.
    listens: u64,
    generation: u64,
    config: Arc<Config>,
    /// When the client or the server last did something, for the keep-alive ping.
    last_activity: tokio::time::Instant,
    /// Keep-alive pings sent, for their ids.
    pings: u64,
    /// The session whose GET stream last found it gone and renewed it.
    stream_renewed: Option<u64>,
}

impl Proxy {
    async fn run_loop<R: tokio::io::AsyncBufRead + Unpin, S: Future<Output = ()>>(
        &mut self,
        lines: &mut LineReader<R>,
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
            let quiet = self.keep_alive_due();
            tokio::select! {
                biased;
                _ = &mut shutdown => {
                    tracing::debug!("shutdown signal");
                    return Ok(());
                }
                Some(ev) = events.recv() => {
                    self.last_activity = tokio::time::Instant::now();
                    self.on_event(ev).await;
                }
                frame = lines.next(), if drain_deadline.is_none() && !self.saturated() => match frame {
                    Ok(Some(Frame::Line(line))) => {
                        self.last_activity = tokio::time::Instant::now();
                        self.on_line(line).await;
                    }
                    Ok(Some(Frame::TooLong { len, head })) => {
                        tracing::warn!(len, "stdin line over --max-message-size; rejected");
                        let msg = crate::error::over_limit(
                            &format!("a message of {len} bytes"),
                            self.config.max_message_size,
                        );
                        // Its own id when the line starts with it, so the request is answered.
                        let id = jsonrpc::id_from_prefix(&head);
                        self.reply_error(id.as_ref(), jsonrpc::code::INVALID_REQUEST, &msg).await;
                    }
                    Err(e) => {
                        tracing::warn!("reading stdin failed: {e}");
                        drain_deadline = Some(tokio::time::Instant::now() + EOF_DRAIN);
                    }
                    Ok(None) => {
                        tracing::debug!("stdin closed");
                        self.table.abort_long_lived();
                        drain_deadline = Some(tokio::time::Instant::now() + EOF_DRAIN);
                    }
                },
                _ = deadline => return Ok(()),
                _ = quiet => self.ping(),
                _ = self.out.closed() => {
                    tracing::debug!("stdout closed; exiting");
                    return Ok(());
                }
            }
        }
    }

    /// Fires when the session has been quiet for the keep-alive interval (never without
    /// `--keep-alive`, before a session is up, or while requests are in flight).
    fn keep_alive_due(&self) -> impl Future<Output = ()> + use<> {
        let due = match (self.config.keep_alive, &self.conn) {
            (Some(every), Conn::Ready(_) | Conn::Sse(_)) if self.table.is_empty() => {
                Some(self.last_activity + every)
            }
            _ => None,
        };
        async move {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        }
    }

    /// A keep-alive `ping` on the session (as mcp-remote's --keep-alive sends): its
    /// answer, or its failure, goes nowhere but the log.
    fn ping(&mut self) {
        self.last_activity = tokio::time::Instant::now();
        self.pings += 1;
        let id = format!("{KEEPALIVE_ID}{}", self.pings);
        let body = Bytes::from(format!(
            r#"{{"jsonrpc":"2.0","id":"{id}","method":"ping"}}"#
        ));
        let session = match &self.conn {
            Conn::Ready(session) => session,
            Conn::Sse(sse) => {
                // The answer comes on the stream; kept from the client (forward: false).
                let raw = serde_json::value::RawValue::from_string(format!("\"{id}\""))
                    .expect("a JSON string");
                let expect = crate::layer::Expect::plain(IdKey::from_raw(&raw));
                let answered =
                    sse.send(body, vec![expect], false, Some(self.config.request_timeout));
                tokio::spawn(async move {
                    match answered.await {
                        Ok(_) => tracing::debug!("keep-alive ping answered"),
                        Err((_, e)) => tracing::info!("keep-alive ping failed: {e}"),
                    }
                });
                return;
            }
            _ => return,
        };
        let http = self.ctx.http.clone();
        let session = session.headers.clone();
        tokio::spawn(async move {
            let mut headers = HeaderMap::new();
            session.apply(&mut headers);
            let post = Post {
                body,
                headers,
                session: Some(&session),
                idle: Some(http.request_timeout),
                resumable: false,
                probe_era: false,
            };
            match http.exchange(post, &mut backport::Discard).await {
                Outcome::Done { .. } => tracing::debug!("keep-alive ping answered"),
                other => tracing::info!("keep-alive ping failed: {}", outcome_summary(&other)),
            }
        });
    }

    /// Whether stdin should wait: [`MAX_IN_FLIGHT`] messages are already in flight.
    fn saturated(&self) -> bool {
        self.table.busy() >= MAX_IN_FLIGHT
    }

    fn drained(&self) -> bool {
        self.table.is_empty()
            && !matches!(self.conn, Conn::Initializing { .. } | Conn::Starting { .. })
    }

    /// The `initialized` POST (unit) ended: open the GET stream next (H-GET).
    fn confirmed(&mut self, unit: UnitId) {
        if let Conn::Starting { session, stage, .. } = &mut self.conn
            && *stage == (Stage::Confirming { unit })
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
        self.table.abort_all();
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
        let _ = self.out.send(Bytes::from(line)).await;
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
        match parsed {
            jsonrpc::Parsed::Single(m)
                if m.kind == Kind::Response
                    && m.id
                        .as_ref()
                        .is_some_and(|id| self.ctx.answers.take(id, body.clone())) =>
            {
                // The client's answer to a request the proxy put to it (MRTR input).
            }
            jsonrpc::Parsed::Single(m) => {
                if self.admit(&m, &mut HashSet::new()).await {
                    let u = unit(&body, &m, &self.ctx.down.chain);
                    self.dispatch_new(u);
                }
            }
            jsonrpc::Parsed::Batch(ms) if self.batches_whole() => {
                // S-BATCH-03: forwarded whole, less the requests answered here.
                let mut kept = Vec::with_capacity(ms.len());
                let mut seen = HashSet::new();
                for m in &ms {
                    if self.admit(m, &mut seen).await {
                        kept.push(m);
                    }
                }
                if kept.is_empty() {
                    return;
                }
                let body = if kept.len() == ms.len() {
                    body.clone()
                } else {
                    rebatch(&kept)
                };
                let chain = &self.ctx.down.chain;
                let expects = kept
                    .iter()
                    .filter(|m| m.kind == Kind::Request)
                    .filter_map(|m| {
                        let id = m.id.clone()?;
                        Some(Expect::new(chain, id, m.method(), false))
                    })
                    .collect();
                self.dispatch_new(Outgoing {
                    body,
                    expects,
                    method: String::new(),
                    era: Era::Legacy,
                    retried: false,
                    unit: 0,
                    translated: None,
                });
            }
            jsonrpc::Parsed::Batch(ms) => {
                // Later revisions have no batches (H-BODY): send each message alone.
                for m in &ms {
                    if self.admit(m, &mut HashSet::new()).await {
                        let raw = Bytes::copy_from_slice(m.raw.as_bytes());
                        let u = unit(&raw, m, &self.ctx.down.chain);
                        self.dispatch_new(u);
                    }
                }
            }
        }
    }

    /// Whether a client batch goes to the server as one body: on a 2025-03-26 session,
    /// and over HTTP+SSE.
    fn batches_whole(&self) -> bool {
        match &self.conn {
            Conn::Ready(session) | Conn::Starting { session, .. } => {
                session.headers.protocol_version.as_deref() == Some("2025-03-26")
            }
            Conn::Sse(_) => true,
            _ => false,
        }
    }

    /// Whether a client message goes on to the server. A request that reuses the id of
    /// one still in flight (or of an earlier element of the same batch, `seen`) is
    /// refused, and so is one a stage answers; each gets its error here, and only that
    /// message is held back (P-BATCH-DUP).
    async fn admit(&mut self, m: &jsonrpc::Message<'_>, seen: &mut HashSet<IdKey>) -> bool {
        if m.kind != Kind::Request {
            return true;
        }
        let Some(id) = &m.id else {
            return true;
        };
        if self.table.contains(id) || !seen.insert(id.clone()) {
            tracing::warn!(%id, "stdin: duplicate request id while the first is in flight");
            self.reply_error(
                Some(id),
                jsonrpc::code::INVALID_REQUEST,
                "duplicate request id: a request with this id is still in flight",
            )
            .await;
            return false;
        }
        // The keep-alive's ids are ours: a client request under one would take its answer.
        let ours = || {
            let text = id.as_json().strip_prefix('"');
            text.is_some_and(|s| s.starts_with(KEEPALIVE_ID))
        };
        if self.config.keep_alive.is_some() && ours() {
            let why = format!("request ids starting with {KEEPALIVE_ID} are the proxy's own");
            self.reply_error(Some(id), jsonrpc::code::INVALID_REQUEST, &why)
                .await;
            return false;
        }
        let request = Request::new(m.method(), m.params);
        if let Err(refusal) = self.ctx.down.chain.on_request(&request) {
            tracing::info!(%id, method = m.method(), "answered here: {}", refusal.message);
            self.reply_error(Some(id), refusal.code, &refusal.message)
                .await;
            return false;
        }
        true
    }

    /// Record a new unit in the table and send it on its way.
    fn dispatch_new(&mut self, mut msg: Outgoing) {
        if msg.method == "notifications/cancelled" && self.cancel(&msg) {
            return;
        }
        let ids = msg.ids();
        // A translated session is modern on the wire: closing a stream cancels there too.
        let modern = msg.era.is_modern() || matches!(self.conn, Conn::Translated(_));
        msg.unit = self.table.insert(&ids, modern, msg.long_lived());
        // A second initialize while one is in flight waits its turn in the queue.
        if msg.method == "initialize"
            && msg.era == Era::Legacy
            && !matches!(self.conn, Conn::Initializing { .. })
        {
            return self.start_initialize(msg, Opening::Client);
        }
        self.dispatch(msg);
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
        // On modern HTTP, closing the response stream is the cancellation.
        self.table.cancel(&target) == Cancelled::Aborted
    }

    fn start_initialize(&mut self, msg: Outgoing, opening: Opening) {
        if opening == Opening::Client {
            self.init_body = Some(msg.body.clone());
        }
        if let Conn::Ready(s) = &self.conn
            && let Some(l) = &s.listener
        {
            l.abort();
        }
        let unit = msg.unit;
        self.conn = Conn::Initializing {
            unit,
            queued: VecDeque::new(),
            opening,
        };
        let ctx = self.ctx.clone();
        let reinit = opening != Opening::Client;
        let ids = if reinit { Vec::new() } else { msg.ids() };
        self.spawn_attempt(unit, ids, async move {
            Event::Initialized {
                unit,
                result: initialize(&ctx, msg, reinit).await,
            }
        });
    }

    /// Open a new session with the kept initialize (H-404, B-SSE reconnect). False when
    /// the client never initialized.
    fn renew_session(&mut self) -> bool {
        let Some(body) = self.init_body.clone() else {
            return false;
        };
        let init = self.own_initialize(body);
        let opening = if self.ctx.backport.active() {
            Opening::ForModernClient
        } else {
            Opening::Renewal
        };
        self.start_initialize(init, opening);
        true
    }

    /// An initialize of the proxy's own (`body`), recorded in the table; no client
    /// waits for its answer.
    fn own_initialize(&mut self, body: Bytes) -> Outgoing {
        Outgoing {
            body,
            expects: Vec::new(),
            method: "initialize".into(),
            era: Era::Legacy,
            retried: false,
            unit: self.table.insert(&[], false, false),
            translated: None,
        }
    }

    /// Send a message according to the current state.
    fn dispatch(&mut self, msg: Outgoing) {
        if msg.era.is_modern() {
            if self.backports() {
                return self.backport(msg);
            }
            // Modern messages are stateless (M-STATELESS): no session, no queue.
            self.spawn_streamable(msg, None);
            return;
        }
        self.dispatch_legacy(msg);
    }

    /// Send a legacy message according to the current state.
    fn dispatch_legacy(&mut self, msg: Outgoing) {
        match &mut self.conn {
            Conn::Initializing { queued, .. } | Conn::Starting { queued, .. } => {
                queued.push_back(msg)
            }
            Conn::Fresh => self.spawn_streamable(msg, None),
            Conn::Translated(t) => {
                let t = t.clone();
                self.translate(&t, msg);
            }
            Conn::Ready(s) => {
                let session = Some((s.headers.clone(), s.generation));
                let confirm = msg.method == "notifications/initialized" && s.listener.is_none();
                let unit = msg.unit;
                self.spawn_streamable(msg, session);
                if confirm
                    && let Conn::Ready(session) = std::mem::replace(&mut self.conn, Conn::Fresh)
                {
                    self.conn = Conn::Starting {
                        session,
                        stage: Stage::Confirming { unit },
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
                let idle = (!msg.long_lived()).then_some(self.config.request_timeout);
                let unit = msg.unit;
                let ids = msg.ids();
                // Queued now, so the POSTs keep the client's order.
                let answered = sse.send(msg.body, msg.expects, true, idle);
                self.spawn_attempt(unit, ids, async move {
                    let (unanswered, error) = match answered.await {
                        Ok(_) => (Vec::new(), None),
                        Err((ids, e)) => (ids, Some(e)),
                    };
                    Event::Finished {
                        unit,
                        unanswered,
                        error,
                    }
                });
            }
        }
    }

    /// A legacy message in a translated session (M-BRIDGE): answered here, or stamped
    /// with the modern `_meta` and sent statelessly.
    fn translate(&mut self, t: &Arc<Translation>, mut msg: Outgoing) {
        let text = std::str::from_utf8(&msg.body).unwrap_or_default();
        let local = match jsonrpc::parse(text) {
            Ok(jsonrpc::Parsed::Single(m)) => translate::local(&m, t),
            _ => Local::Forward,
        };
        let unit = msg.unit;
        let cached = match (&local, msg.expects.as_slice()) {
            (Local::Forward, [e]) => t.cached(&msg.method, text).map(|r| (e.id.clone(), r)),
            _ => None,
        };
        if let Some((id, result)) = cached {
            // A list the server said may be reused (`ttlMs`), still fresh: it passes the
            // stages again, as the server's answer would.
            let line = Bytes::from(format!(
                r#"{{"jsonrpc":"2.0","id":{},"result":{}}}"#,
                id.as_json(),
                result
            ));
            let hook = Expect::new(&self.ctx.down.chain, id, &msg.method, true).hook;
            let down = self.ctx.down.clone();
            return self.spawn_attempt(unit, msg.ids(), async move {
                let _ = down.write_answer(line, hook.as_ref()).await;
                Event::Finished {
                    unit,
                    unanswered: Vec::new(),
                    error: None,
                }
            });
        }
        match local {
            Local::Drop => {
                self.table.finish(unit, Vec::new());
            }
            Local::Reply(line) => self.reply_here(unit, msg.ids(), line),
            Local::Subscribe { reply, uri, on } => {
                self.reply_here(unit, msg.ids(), reply);
                if t.subscribe(&uri, on) {
                    self.relisten(t);
                }
            }
            Local::Forward => {
                if let Some(stamped) = t.stamp(text) {
                    msg.body = stamped;
                    msg.era = Era::Modern {
                        version: t.version.clone(),
                    };
                    msg.translated = Some(t.clone());
                    // Its results are modern ones now, for the stages too.
                    let chain = &self.ctx.down.chain;
                    msg.expects = std::mem::take(&mut msg.expects)
                        .into_iter()
                        .map(|e| Expect::new(chain, e.id, &msg.method, true))
                        .collect();
                }
                self.spawn_streamable(msg, None);
            }
        }
    }

    /// Answer a unit here with `line`, in order with everything else written to stdout.
    fn reply_here(&mut self, unit: UnitId, ids: Vec<IdKey>, line: Bytes) {
        let out = self.out.clone();
        self.spawn_attempt(unit, ids, async move {
            let _ = out.send(line).await;
            Event::Finished {
                unit,
                unanswered: Vec::new(),
                error: None,
            }
        });
    }

    /// (Re)open the translated session's `subscriptions/listen`, which carries what a
    /// legacy client hears on its GET stream: the list changes the server announces and
    /// the resources the client subscribed to. The previous one is closed first.
    fn relisten(&mut self, t: &Arc<Translation>) {
        if let Some(old) = self.listen.take() {
            self.table.cancel(&old);
        }
        self.listens += 1;
        let id = format!("clerk-mcp-server/listen/{}", self.listens);
        let Some(body) = t.listen_request(&id) else {
            return;
        };
        let raw = serde_json::value::RawValue::from_string(format!("{id:?}")).expect("valid id");
        let id = IdKey::from_raw(&raw);
        let msg = Outgoing {
            body,
            expects: vec![Expect::plain(id.clone())],
            method: "subscriptions/listen".into(),
            era: Era::Modern {
                version: t.version.clone(),
            },
            retried: false,
            unit: self.table.insert(std::slice::from_ref(&id), true, true),
            translated: Some(t.clone()),
        };
        self.listen = Some(id);
        self.spawn_streamable(msg, None);
    }

    /// Open the GET stream; `ListenerReady` follows once it has its answer, or after
    /// `LISTEN_READY_WAIT` at most (a slow optional stream must not stall the session).
    fn start_listener(&self, headers: SessionHeaders, generation: u64) -> AbortHandle {
        let http = self.ctx.http.clone();
        let down = self.ctx.down.clone();
        let events = self.ctx.events.clone();
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let ready_events = events.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(LISTEN_READY_WAIT, ready).await;
            let _ = ready_events.send(Event::ListenerReady { generation });
        });
        let relay = self.ctx.backport.active().then(|| backport::ListenRelay {
            ctx: self.ctx.clone(),
            session: headers.clone(),
        });
        tokio::spawn(async move {
            let ended = match relay {
                Some(relay) => http.listen(headers, relay, Some(ready_tx)).await,
                None => {
                    let inbound = Inbound::new(&down, Vec::new());
                    http.listen(headers, inbound, Some(ready_tx)).await
                }
            };
            if ended == Listened::SessionGone {
                let _ = events.send(Event::StreamSessionGone { generation });
            }
        })
        .abort_handle()
    }

    fn spawn_streamable(&mut self, msg: Outgoing, session: Option<(SessionHeaders, u64)>) {
        let ctx = self.ctx.clone();
        let unit = msg.unit;
        let ids = msg.ids();
        let idle = (!msg.long_lived()).then_some(self.config.request_timeout);
        self.spawn_attempt(
            unit,
            ids,
            async move { forward(&ctx, msg, session, idle).await },
        );
    }

    /// Spawn a unit's attempt and record it. Should it panic (a bug), its requests are
    /// still answered with an error, and an initialize in progress is released: nothing
    /// is lost.
    fn spawn_attempt<F>(&mut self, unit: UnitId, ids: Vec<IdKey>, work: F)
    where
        F: Future<Output = Event> + Send + 'static,
    {
        let events = self.ctx.events.clone();
        let attempt = tokio::spawn(async move {
            use futures_util::FutureExt;
            match std::panic::AssertUnwindSafe(work).catch_unwind().await {
                Ok(event) => {
                    let _ = events.send(event);
                }
                Err(_) => {
                    let error = RemoteError::Other(format!(
                        "internal error in clerk-mcp-server while forwarding this request ({})",
                        crate::error::hint::REPORT_BUG
                    ));
                    let _ = events.send(Event::Finished {
                        unit,
                        unanswered: ids,
                        error: Some(error),
                    });
                    let _ = events.send(Event::Initialized {
                        unit,
                        result: InitResult::Failed(None),
                    });
                }
            }
        })
        .abort_handle();
        self.table.running(unit, attempt);
    }

    async fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Finished {
                unit,
                unanswered,
                error,
            } => self.finished(unit, unanswered, error).await,
            Event::SessionGone {
                unit,
                generation,
                msg,
            } => self.session_gone(unit, generation, msg).await,
            Event::ListenerReady { generation } => self.listening(generation),
            Event::StreamSessionGone { generation } => self.stream_session_gone(generation),
            Event::Initialized { unit, result } => self.initialized(unit, result).await,
            Event::LegacyOnly { mut msg } => {
                if !self.ctx.backport.active() {
                    tracing::info!(host = %self.ctx.http.host, "the server speaks only the legacy protocol era; translating for this 2026-07-28 client");
                    self.ctx.backport.activate();
                    self.ctx.http.set_transport(
                        "Streamable HTTP (legacy session, translated for a 2026-07-28 client)",
                    );
                }
                // Its result is completed for the modern client now: its hooks anew.
                let chain = &self.ctx.down.chain;
                msg.expects = std::mem::take(&mut msg.expects)
                    .into_iter()
                    .map(|e| Expect::new(chain, e.id, &msg.method, true))
                    .collect();
                self.dispatch(msg);
            }
        }
    }

    async fn finished(&mut self, unit: UnitId, unanswered: Vec<IdKey>, error: Option<RemoteError>) {
        let mut report = self.table.finish(unit, unanswered);
        // The proxy's own requests (a translated session's listen) have no client waiting.
        report.retain(|id| {
            let own = id.as_json().starts_with("\"clerk-mcp-server/");
            if own {
                tracing::debug!(%id, "the proxy's own request ended: {error:?}");
            }
            !own
        });
        if !report.is_empty() {
            let error = error.map(|e| e.to_string());
            let msg = error.as_deref().unwrap_or("the server sent no response");
            for id in report {
                tracing::warn!(%id, "request failed: {msg}");
                self.reply_error(Some(&id), jsonrpc::code::TRANSPORT_ERROR, msg)
                    .await;
            }
        }
        self.confirmed(unit);
    }

    /// The GET stream met a lost session: open a new one (with its own GET stream), as
    /// a request would. Once: a session renewed for this reason and lost again at once
    /// is left to the next request.
    fn stream_session_gone(&mut self, generation: u64) {
        let current = matches!(&self.conn, Conn::Ready(s) if s.generation == generation);
        if !current {
            return;
        }
        if self.stream_renewed == Some(generation.saturating_sub(1)) {
            tracing::warn!(
                "the GET stream lost the session again right after it was renewed; leaving it to the next request"
            );
            return;
        }
        self.stream_renewed = Some(generation);
        tracing::info!("session expired (seen on the GET stream); opening a new one");
        self.renew_session();
    }

    async fn session_gone(&mut self, unit: UnitId, generation: u64, mut msg: Outgoing) {
        self.confirmed(unit);
        if msg.retried {
            let error = RemoteError::Other(format!(
                "{} lost the session again right after it was renewed (HTTP 404)",
                self.ctx.http.host
            ));
            return self.finished(unit, msg.ids(), Some(error)).await;
        }
        msg.retried = true;
        let current = matches!(&self.conn, Conn::Ready(s) if s.generation == generation);
        if current {
            tracing::info!("session expired (the server no longer knows it); opening a new one");
            self.renew_session();
        }
        // Either queued behind the new initialize, or sent on the newer session. The
        // unit keeps its record: its requests are still in flight.
        self.dispatch(msg);
    }

    async fn initialized(&mut self, unit: UnitId, result: InitResult) {
        // Its failures were reported by the attempt itself.
        self.table.finish(unit, Vec::new());
        // Only the initialize the state is waiting for may change it.
        if !matches!(&self.conn, Conn::Initializing { unit: u, .. } if *u == unit) {
            return;
        }
        let Conn::Initializing {
            queued, opening, ..
        } = std::mem::replace(&mut self.conn, Conn::Fresh)
        else {
            unreachable!("checked above");
        };
        let reinit = opening != Opening::Client;
        if let (true, InitResult::Failed(why)) = (reinit, &result) {
            // The session could not be opened: the requests that waited fail now.
            let why = why.as_ref().map(|e| format!(": {e}")).unwrap_or_default();
            let what = match opening {
                Opening::ForModernClient => format!(
                    "opening a legacy session on {} for this 2026-07-28 client failed",
                    self.ctx.http.host
                ),
                _ => "the session expired and a new one could not be opened".into(),
            };
            for m in queued {
                let error = RemoteError::Other(format!("{what}{why}"));
                self.finished(m.unit, m.ids(), Some(error)).await;
            }
            return;
        }
        match result {
            InitResult::Streamable { headers, answer } => {
                if let (Opening::ForModernClient, Some(answer)) = (opening, &answer) {
                    self.ctx.backport.initialized(answer);
                }
                self.generation += 1;
                let mut session = Session {
                    headers,
                    generation: self.generation,
                    listener: None,
                };
                if reinit {
                    // The replayed `initialized` was sent by the init attempt: open the
                    // GET stream before the retried messages go out.
                    session.listener =
                        Some(self.start_listener(session.headers.clone(), session.generation));
                    self.conn = Conn::Starting {
                        session,
                        stage: Stage::Listening,
                        queued,
                    };
                    return;
                }
                self.conn = Conn::Ready(session);
            }
            InitResult::Sse { session, answer } => {
                if let (Opening::ForModernClient, Some(answer)) = (opening, &answer) {
                    self.ctx.backport.initialized(answer);
                }
                self.conn = Conn::Sse(session);
            }
            InitResult::Translated(t) => {
                self.relisten(&t);
                self.conn = Conn::Translated(t);
            }
            InitResult::Failed(_) => self.conn = Conn::Fresh,
        }
        for m in queued {
            self.dispatch(m);
        }
    }
}

/// A batch of the kept elements, in their order.
fn rebatch(kept: &[&jsonrpc::Message<'_>]) -> Bytes {
    let mut body = Vec::with_capacity(kept.iter().map(|m| m.raw.len() + 1).sum::<usize>() + 1);
    body.push(b'[');
    for (i, m) in kept.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(m.raw.as_bytes());
    }
    body.push(b']');
    Bytes::from(body)
}

/// A short description of an exchange that did not end well, for the log.
fn outcome_summary(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Status { error, .. } | Outcome::Failed(error) | Outcome::LegacyOnly(error) => {
            error.to_string()
        }
        Outcome::SessionGone => "the session is gone (HTTP 404)".into(),
        Outcome::Unauthorized { .. } => "HTTP 401".into(),
        Outcome::InsufficientScope { .. } => "HTTP 403".into(),
        Outcome::OutputClosed | Outcome::Done { .. } => "ended".into(),
    }
}
