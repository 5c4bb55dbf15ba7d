//! A modern (2026-07-28) client in front of a legacy-only server (M-BACKPORT): the
//! proxy opens a legacy session on the client's behalf and speaks it. Each modern
//! request loses the era's `_meta` and goes out on the session; `server/discover` is
//! answered from the session's initialize; `subscriptions/listen` becomes the GET
//! stream and `resources/subscribe`; `_meta` logLevel becomes `logging/setLevel`.
//!
//! A legacy server asks the client things (elicitation, sampling, roots) in the middle
//! of a request, on that request's stream. A modern client knows no such requests: the
//! proxy answers its request with `input_required`, keeps the server's stream open
//! (parked, under a `requestState` only the proxy reads), and when the client sends
//! the request again with `inputResponses`, answers the server and reads on.

use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};

use super::exchange::AuthBudget;
use super::*;
use crate::layer::backport::{self, Filter, Legacy};
use crate::remote::{Closed, Deliver};
use crate::stdio::one_line;

/// Requests that may wait for the client's input at once.
const MAX_PARKED: usize = 64;
/// Messages of a parked stream held while the client thinks.
const RELAY_DEPTH: usize = 32;

impl Proxy {
    /// Whether a modern client message goes to a legacy session: forced by `--protocol
    /// legacy`, or learned from the server.
    pub(super) fn backports(&self) -> bool {
        self.ctx.protocol == ProtocolMode::Legacy || self.ctx.backport.active()
    }

    /// A modern client message for the legacy server: the session is opened for the
    /// client first, and messages wait for it in order.
    pub(super) fn backport(&mut self, msg: Outgoing) {
        self.ctx.backport.activate();
        match &mut self.conn {
            Conn::Fresh | Conn::Translated(_) => {
                let body = backport::initialize_request(OWN_INIT_ID, &msg.body);
                tracing::info!(host = %self.ctx.http.host, "opening a legacy session for this 2026-07-28 client");
                self.init_body = Some(body.clone());
                let init = self.own_initialize(body);
                self.start_initialize(init, Opening::ForModernClient);
                if let Conn::Initializing { queued, .. } = &mut self.conn {
                    queued.push_back(msg);
                }
            }
            Conn::Initializing { queued, .. } | Conn::Starting { queued, .. } => {
                queued.push_back(msg)
            }
            Conn::Ready(s) => {
                let session = (s.headers.clone(), s.generation);
                self.backport_on(msg, session);
            }
            Conn::Sse(_) => self.backport_over_sse(msg),
        }
    }

    /// On a Streamable HTTP session: answered here, or forwarded.
    fn backport_on(&mut self, msg: Outgoing, session: (SessionHeaders, u64)) {
        let Some(legacy) = backport::strip(&msg.body) else {
            let error = RemoteError::Other("could not read this message".into());
            return self.spawn_attempt(msg.unit, msg.ids(), async move {
                Event::Finished {
                    unit: msg.unit,
                    unanswered: msg.ids(),
                    error: Some(error),
                }
            });
        };
        let unit = msg.unit;
        let ids = msg.ids();
        match (legacy.method.as_str(), ids.first()) {
            ("server/discover", Some(id)) => {
                let line = self.ctx.backport.discover_answer(id);
                self.reply_here(unit, ids, line);
            }
            ("subscriptions/listen", Some(id)) => {
                let (ctx, id) = (self.ctx.clone(), id.clone());
                self.spawn_attempt(unit, ids, async move {
                    listen(ctx, unit, id, legacy, session.0).await
                });
            }
            _ => {
                let ctx = self.ctx.clone();
                let idle = self.config.request_timeout;
                self.spawn_attempt(unit, ids, async move {
                    forward(ctx, msg, legacy, session, idle).await
                });
            }
        }
    }

    /// Over HTTP+SSE (2024-11-05) the requests go out stripped and their results are
    /// completed by the stage, but a server's questions reach the client as requests.
    fn backport_over_sse(&mut self, mut msg: Outgoing) {
        let Some(legacy) = backport::strip(&msg.body) else {
            return self.dispatch_legacy(msg);
        };
        if let ("server/discover", Some(id)) = (legacy.method.as_str(), msg.expects.first()) {
            let line = self.ctx.backport.discover_answer(&id.id);
            return self.reply_here(msg.unit, msg.ids(), line);
        }
        msg.body = legacy.body;
        msg.era = Era::Legacy;
        self.dispatch_legacy(msg);
    }
}

/// The id of the initialize the proxy makes for a modern client.
pub(super) const OWN_INIT_ID: &str = "\"clerk-mcp-server/initialize\"";

/// One backported request: its log level set first if it changed, then the POST read
/// through [`drive`]; sign-in rounds and a lost session as for any request.
async fn forward(
    ctx: Arc<Ctx>,
    msg: Outgoing,
    legacy: Legacy,
    (session, generation): (SessionHeaders, u64),
    idle: Duration,
) -> Event {
    let unit = msg.unit;
    let finished = |error: Option<RemoteError>| Event::Finished {
        unit,
        unanswered: msg.ids(),
        error,
    };
    let Some(expect) = msg.expects.first().cloned() else {
        // A notification (a cancellation is handled before this) or a response.
        let mut sink = Inbound::new(&ctx.down, Vec::new());
        let post = post(legacy.body.clone(), &session, Some(idle));
        let error = match ctx.http.exchange(post, &mut sink).await {
            Outcome::Done { .. } | Outcome::OutputClosed => None,
            Outcome::SessionGone => {
                return Event::SessionGone {
                    unit,
                    generation,
                    msg,
                };
            }
            other => Some(failure(other)),
        };
        if let Some(e) = &error {
            tracing::warn!(method = %legacy.method, "a notification was not delivered: {e}");
        }
        return Event::Finished {
            unit,
            unanswered: Vec::new(),
            error: None,
        };
    };
    if let Some((state, answers)) = &legacy.resume {
        let Some(parked) = ctx.parking.take(state) else {
            return finished(Some(RemoteError::Other(
                "this request's requestState is unknown or expired: the server stopped waiting \
                 (--request-timeout) or this proxy was restarted; send the request again without \
                 requestState and inputResponses"
                    .into(),
            )));
        };
        answer_server(&ctx, &parked.flight.session, &parked.asked, answers).await;
        return match drive(&ctx, parked.flight, &expect, &legacy, parked.rounds).await {
            Driven::Answered | Driven::Parked => finished_ok(unit),
            Driven::Ended(outcome) => finished(Some(ended(outcome))),
        };
    }
    if let Some(level) = &legacy.log_level {
        set_log_level(&ctx, &session, level).await;
    }
    let mut budget = AuthBudget::default();
    loop {
        let flight = Flight::start(&ctx, &legacy.body, &session, &expect.id, idle);
        let outcome = match drive(&ctx, flight, &expect, &legacy, 0).await {
            Driven::Answered | Driven::Parked => return finished_ok(unit),
            Driven::Ended(outcome) => outcome,
        };
        match outcome {
            o @ (Outcome::Unauthorized { .. } | Outcome::InsufficientScope { .. }) => {
                if let Err(e) = budget.handle(&ctx.http, o).await {
                    return finished(Some(e));
                }
            }
            Outcome::SessionGone => {
                return Event::SessionGone {
                    unit,
                    generation,
                    msg,
                };
            }
            other => return finished(Some(ended(other))),
        }
    }
}

fn finished_ok(unit: UnitId) -> Event {
    Event::Finished {
        unit,
        unanswered: Vec::new(),
        error: None,
    }
}

/// Why an exchange that ended without the answer failed.
fn ended(outcome: Outcome) -> RemoteError {
    match outcome {
        Outcome::Done { .. } => {
            RemoteError::Other("the server ended the response stream without answering".into())
        }
        other => failure(other),
    }
}

fn failure(outcome: Outcome) -> RemoteError {
    match outcome {
        Outcome::Status { error, .. } | Outcome::Failed(error) | Outcome::LegacyOnly(error) => {
            error
        }
        Outcome::OutputClosed => RemoteError::Other("the client's stdout is closed".into()),
        other => RemoteError::Other(format!("the exchange ended: {other:?}")),
    }
}

fn post(body: Bytes, session: &SessionHeaders, idle: Option<Duration>) -> Post<'_> {
    let mut headers = HeaderMap::new();
    session.apply(&mut headers);
    Post {
        body,
        headers,
        session: Some(session),
        idle,
        resumable: true,
        probe_era: false,
    }
}

/// `_meta` logLevel, as the legacy session's `logging/setLevel`, when it changed and
/// the server logs at all.
async fn set_log_level(ctx: &Ctx, session: &SessionHeaders, level: &str) {
    let b = &ctx.backport;
    if !b.logs() || !b.set_log_level(level) {
        return;
    }
    if own_request(ctx, session, "logging/setLevel", json!({ "level": level }))
        .await
        .is_none()
    {
        b.unset_log_level();
    }
}

fn own_id(what: &str, n: u64) -> IdKey {
    let raw = serde_json::value::RawValue::from_string(format!("\"clerk-mcp-server/{what}/{n}\""))
        .expect("a JSON string");
    IdKey::from_raw(&raw)
}

/// A backported request's POST, read in a task of its own so it can outlive the
/// client's request while the client answers the server's questions.
struct Flight {
    rx: mpsc::Receiver<Bytes>,
    task: tokio::task::JoinHandle<Outcome>,
    /// The id the server answers: the one it was sent with.
    sent_as: IdKey,
    session: SessionHeaders,
    http: Arc<Http>,
    /// Answered: nothing to cancel when dropped.
    done: bool,
}

impl Flight {
    fn start(
        ctx: &Ctx,
        body: &Bytes,
        session: &SessionHeaders,
        id: &IdKey,
        idle: Duration,
    ) -> Flight {
        let (tx, rx) = mpsc::channel(RELAY_DEPTH);
        let relay = Relay {
            tx,
            id: id.clone(),
            done: false,
        };
        let (http, body, headers) = (ctx.http.clone(), body.clone(), session.clone());
        let task = tokio::spawn(async move {
            let mut relay = relay;
            http.exchange(post(body, &headers, Some(idle)), &mut relay)
                .await
        });
        Flight {
            rx,
            task,
            sent_as: id.clone(),
            session: session.clone(),
            http: ctx.http.clone(),
            done: false,
        }
    }
}

impl Drop for Flight {
    /// A request given up (cancelled by the client, or its question never answered):
    /// the stream is closed and, as the legacy era asks (L-CANCEL), the server told.
    fn drop(&mut self) {
        self.task.abort();
        if self.done {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let body = Bytes::from(format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{},"reason":"cancelled by the client"}}}}"#,
            self.sent_as.as_json()
        ));
        let (http, session) = (self.http.clone(), self.session.clone());
        rt.spawn(async move {
            let mut sink = Discard;
            let _ = http
                .exchange(post(body, &session, Some(http.request_timeout)), &mut sink)
                .await;
        });
    }
}

/// What the server sends on a flight's stream, passed to [`drive`] in order.
struct Relay {
    tx: mpsc::Sender<Bytes>,
    id: IdKey,
    done: bool,
}

impl Deliver for Relay {
    async fn deliver(&mut self, data: Bytes) -> Result<(), Closed> {
        if let Ok(text) = std::str::from_utf8(&data)
            && let Ok(jsonrpc::Parsed::Single(m)) = jsonrpc::parse(text)
            && m.kind == Kind::Response
            && m.id.as_ref() == Some(&self.id)
        {
            self.done = true;
        }
        self.tx.send(data).await.map_err(|_| Closed)
    }

    fn complete(&self) -> bool {
        self.done
    }
}

/// Answers nobody reads: what the server says to a notification or a response (202).
pub(super) struct Discard;

impl Deliver for Discard {
    async fn deliver(&mut self, _data: Bytes) -> Result<(), Closed> {
        Ok(())
    }

    /// A notification or a response waits for nothing: 202 is the whole answer.
    fn complete(&self) -> bool {
        true
    }
}

enum Driven {
    /// The final answer went to the client.
    Answered,
    /// The client was asked for input; the flight waits in the parking.
    Parked,
    /// The exchange ended without the answer.
    Ended(Outcome),
}

/// Read a flight until it answers the client's request (`expect`) or asks it for
/// input. Progress goes to the client as it comes; log messages only when the request
/// asked for them (`_meta` logLevel), as the 2026-07-28 revision has it.
async fn drive(
    ctx: &Arc<Ctx>,
    mut flight: Flight,
    expect: &Expect,
    legacy: &Legacy,
    rounds: u32,
) -> Driven {
    loop {
        let Some(data) = flight.rx.recv().await else {
            flight.done = true;
            let outcome = (&mut flight.task)
                .await
                .unwrap_or_else(|e| Outcome::Failed(RemoteError::Other(format!("{e}"))));
            return Driven::Ended(outcome);
        };
        let value: Value = match serde_json::from_slice(&data) {
            Ok(v) => v,
            Err(_) => continue,
        };
        let method = value.get("method").and_then(Value::as_str);
        let is_request = method.is_some() && value.get("id").is_some();
        match method {
            // The answer (the relay ends the stream on it).
            None => return answer(ctx, &mut flight, expect, data).await,
            Some(_) if is_request => {
                let mut asked = vec![value];
                // Questions sent together are asked together.
                while let Ok(more) = flight.rx.try_recv() {
                    let v: Value = serde_json::from_slice(&more).unwrap_or_default();
                    match (v.get("method").and_then(Value::as_str), v.get("id")) {
                        (Some(_), Some(_)) => asked.push(v),
                        (Some(m), None) => forward_notification(ctx, m, &more, legacy).await,
                        // Not while the server waits for the questions' answers; were it
                        // to come, it is the answer all the same.
                        (None, _) => return answer(ctx, &mut flight, expect, more).await,
                    }
                }
                if let Some(questions) = questions(ctx, &flight.session, asked, legacy).await {
                    return park(ctx, flight, expect, questions, rounds + 1).await;
                }
            }
            Some(m) => forward_notification(ctx, m, &data, legacy).await,
        }
    }
}

/// The final answer, under the client's latest id, through the stages.
async fn answer(ctx: &Ctx, flight: &mut Flight, expect: &Expect, data: Bytes) -> Driven {
    flight.done = true;
    let line = backport::with_id(&data, &expect.id).unwrap_or(data);
    let _ = ctx.down.write_answer(line, expect.hook.as_ref()).await;
    Driven::Answered
}

async fn forward_notification(ctx: &Ctx, method: &str, data: &Bytes, legacy: &Legacy) {
    if method == "notifications/message" && legacy.log_level.is_none() {
        return;
    }
    let _ = ctx.down.out.send(one_line(data.clone())).await;
}

/// The server's questions the client can answer, by key, with the server's request
/// ids. The others are answered here: `ping`, and errors for what the client did not
/// declare. `None` when nothing is left to ask.
async fn questions(
    ctx: &Ctx,
    session: &SessionHeaders,
    asked: Vec<Value>,
    legacy: &Legacy,
) -> Option<Vec<(String, Value, Value)>> {
    let mut keep = Vec::new();
    for (i, request) in asked.into_iter().enumerate() {
        let method = request["method"].as_str().unwrap_or_default().to_owned();
        let id = request["id"].clone();
        let reply = match backport::input_capability(&method) {
            _ if method == "ping" => json!({"jsonrpc":"2.0","id":id,"result":{}}),
            Some(cap) if legacy.capabilities.get(cap).is_some() => {
                let entry = json!({"method": method, "params": request.get("params").cloned().unwrap_or_else(|| json!({}))});
                keep.push((format!("input-{}", i + 1), id, entry));
                continue;
            }
            Some(cap) => error_reply(
                &id,
                jsonrpc::code::MISSING_CLIENT_CAPABILITY,
                &format!("the client did not declare the {cap:?} capability"),
            ),
            None => error_reply(
                &id,
                jsonrpc::code::METHOD_NOT_FOUND,
                &format!("a 2026-07-28 client cannot be asked {method:?} (clerk-mcp-server)"),
            ),
        };
        send_to_server(ctx, session, reply).await;
    }
    (!keep.is_empty()).then_some(keep)
}

fn error_reply(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"error":{"code":code,"message":message}})
}

async fn send_to_server(ctx: &Ctx, session: &SessionHeaders, message: Value) {
    let body = Bytes::from(message.to_string());
    let outcome = ctx
        .http
        .exchange(
            post(body, session, Some(ctx.http.request_timeout)),
            &mut Discard,
        )
        .await;
    if !matches!(outcome, Outcome::Done { .. }) {
        tracing::warn!("an answer to the server's request was not delivered: {outcome:?}");
    }
}

/// Answer the client's request with `input_required` and keep the flight until the
/// client sends the request again.
async fn park(
    ctx: &Arc<Ctx>,
    flight: Flight,
    expect: &Expect,
    questions: Vec<(String, Value, Value)>,
    rounds: u32,
) -> Driven {
    if rounds > mrtr::MAX_ROUNDS {
        // Dropping the flight cancels the server's request.
        let line = jsonrpc::error_response(
            Some(&expect.id),
            jsonrpc::code::TRANSPORT_ERROR,
            &format!(
                "{} asked for input more than {} times for one request; gave up",
                ctx.http.host,
                mrtr::MAX_ROUNDS
            ),
        );
        let _ = ctx.down.out.send(Bytes::from(line)).await;
        return Driven::Parked;
    }
    let mut requests = Map::new();
    let mut asked = Vec::with_capacity(questions.len());
    for (key, server_id, entry) in questions {
        requests.insert(key.clone(), entry);
        asked.push((key, server_id));
    }
    let Some(state) = ctx.parking.park(
        Parked {
            flight,
            asked,
            rounds,
        },
        Arc::downgrade(ctx),
    ) else {
        let line = jsonrpc::error_response(
            Some(&expect.id),
            jsonrpc::code::TRANSPORT_ERROR,
            &format!("{MAX_PARKED} requests already wait for the client's input; try again later"),
        );
        let _ = ctx.down.out.send(Bytes::from(line)).await;
        return Driven::Parked;
    };
    let line = backport::input_required(&expect.id, requests, &state);
    let _ = ctx.down.out.send(line).await;
    Driven::Parked
}

/// The client's answers go to the server's waiting requests, one POST each; a question
/// it left unanswered gets an error, so the server never waits forever.
async fn answer_server(
    ctx: &Ctx,
    session: &SessionHeaders,
    asked: &[(String, Value)],
    answers: &Map<String, Value>,
) {
    for (key, server_id) in asked {
        let reply = match answers.get(key) {
            Some(result) => json!({"jsonrpc":"2.0","id":server_id,"result":result}),
            None => error_reply(
                server_id,
                jsonrpc::code::INVALID_PARAMS,
                &format!("the client sent no inputResponses entry {key:?}"),
            ),
        };
        send_to_server(ctx, session, reply).await;
    }
}

/// A flight waiting for the client's input.
pub(super) struct Parked {
    flight: Flight,
    /// The `inputRequests` keys and the server request ids they answer.
    asked: Vec<(String, Value)>,
    /// Rounds of input so far (bounded, as for a modern server's).
    rounds: u32,
}

/// The flights waiting for input, by the `requestState` the client was given.
pub(super) struct Parking {
    parked: std::sync::Mutex<HashMap<String, Parked>>,
    next: AtomicU64,
    /// For `requestState`: unguessable enough that a stale state never matches.
    salt: u64,
    /// How long a question waits for the client (--request-timeout).
    wait: Duration,
}

impl Parking {
    pub(super) fn new(wait: Duration) -> Parking {
        let salt = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 32;
        Parking {
            parked: Default::default(),
            next: AtomicU64::new(0),
            salt,
            wait,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parked>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Keep `p`; it is dropped (and the server's request cancelled) when the client has
    /// not come back within `wait`. `None` when too many wait already.
    fn park(&self, p: Parked, me: Weak<Ctx>) -> Option<String> {
        let mut parked = self.lock();
        if parked.len() >= MAX_PARKED {
            return None;
        }
        let state = format!("clerk-mcp-server/{:x}-{}", self.salt, self.next());
        parked.insert(state.clone(), p);
        let (key, wait) = (state.clone(), self.wait);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if let Some(ctx) = me.upgrade()
                && ctx.parking.take(&key).is_some()
            {
                tracing::warn!(
                    "the client did not send its input within {} s; the server's request was cancelled",
                    wait.as_secs_f64()
                );
            }
        });
        Some(state)
    }

    fn take(&self, state: &str) -> Option<Parked> {
        self.lock().remove(state)
    }
}

/// `subscriptions/listen` on a legacy session: the resources are subscribed, the
/// acknowledgement written, and the GET stream's notifications reach the client
/// (see [`ListenRelay`]) until it cancels the listen or stdin ends.
async fn listen(
    ctx: Arc<Ctx>,
    unit: UnitId,
    id: IdKey,
    legacy: Legacy,
    session: SessionHeaders,
) -> Event {
    let filter = match Filter::from_params(&legacy.params) {
        Ok(f) => f,
        Err(why) => {
            let line = jsonrpc::error_response(Some(&id), jsonrpc::code::INVALID_PARAMS, &why);
            let _ = ctx.down.out.send(Bytes::from(line)).await;
            return finished_ok(unit);
        }
    };
    let honoured = ctx.backport.honoured(&filter);
    let _guard = Listening {
        ctx: ctx.clone(),
        id: id.clone(),
        session: session.clone(),
    };
    for uri in ctx.backport.listen(id.clone(), honoured.clone()) {
        subscribe(&ctx, &session, "resources/subscribe", &uri).await;
    }
    let _ = ctx
        .down
        .out
        .send(backport::acknowledged(&id, &honoured))
        .await;
    // Open until aborted: a cancellation, or the end of stdin.
    std::future::pending::<Event>().await
}

async fn subscribe(ctx: &Ctx, session: &SessionHeaders, method: &str, uri: &str) {
    own_request(ctx, session, method, json!({ "uri": uri })).await;
}

/// A request of the proxy's own on the session; its result, or `None` (and a warning)
/// when it failed.
async fn own_request(
    ctx: &Ctx,
    session: &SessionHeaders,
    method: &str,
    params: Value,
) -> Option<Value> {
    let id = own_id(method, ctx.parking.next());
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":{},"method":{},"params":{}}}"#,
        id.as_json(),
        json!(method),
        params
    );
    let mut sink = Inbound::new(&ctx.down, vec![Expect::plain(id)]).quiet();
    let post = post(Bytes::from(body), session, Some(ctx.http.request_timeout));
    let outcome = ctx.http.exchange(post, &mut sink).await;
    let result = sink
        .capture
        .as_deref()
        .and_then(|c| serde_json::from_slice::<Value>(c).ok())
        .and_then(|mut v| v.get_mut("result").map(Value::take));
    if result.is_none() {
        tracing::warn!(%params, "the proxy's {method} failed: {outcome:?}");
    }
    result
}

/// An open listen; closing it unsubscribes what no other listen wants.
struct Listening {
    ctx: Arc<Ctx>,
    id: IdKey,
    session: SessionHeaders,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let gone = self.ctx.backport.unlisten(&self.id);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if gone.is_empty() {
            return;
        }
        let (ctx, session) = (self.ctx.clone(), self.session.clone());
        rt.spawn(async move {
            for uri in gone {
                subscribe(&ctx, &session, "resources/unsubscribe", &uri).await;
            }
        });
    }
}

/// The GET stream of a session held for a modern client: notifications go to the
/// listens that asked for them; a request (no client request to attach it to) is
/// answered with an error, so the server does not wait.
pub(super) struct ListenRelay {
    pub(super) ctx: Arc<Ctx>,
    pub(super) session: SessionHeaders,
}

impl Deliver for ListenRelay {
    async fn deliver(&mut self, data: Bytes) -> Result<(), Closed> {
        let Ok(value) = serde_json::from_slice::<Value>(&data) else {
            tracing::warn!("dropped a malformed message on the GET stream");
            return Ok(());
        };
        match (value.get("method"), value.get("id")) {
            (Some(_), Some(id)) => {
                let method = value["method"].as_str().unwrap_or_default();
                tracing::info!(
                    method,
                    "the server asked outside any request; a 2026-07-28 client cannot answer there"
                );
                let reply = if method == "ping" {
                    json!({"jsonrpc":"2.0","id":id,"result":{}})
                } else {
                    error_reply(
                        id,
                        jsonrpc::code::METHOD_NOT_FOUND,
                        &format!(
                            "{method} outside a request cannot reach a 2026-07-28 client (clerk-mcp-server)"
                        ),
                    )
                };
                let (ctx, session) = (self.ctx.clone(), self.session.clone());
                tokio::spawn(async move { send_to_server(&ctx, &session, reply).await });
            }
            (Some(_), None) => {
                for line in self.ctx.backport.for_listens(&data) {
                    self.ctx.down.out.send(line).await.map_err(|_| Closed)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
