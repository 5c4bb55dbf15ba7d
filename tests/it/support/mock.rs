//! A scriptable mock MCP server on 127.0.0.1:0. Tools choose the behaviour under test:
//!
//! | tool         | behaviour                                                          |
//! |--------------|--------------------------------------------------------------------|
//! | echo         | JSON reply echoing `arguments`                                     |
//! | progress     | SSE: `n` progress notifications, a log message, then the result    |
//! | slow         | waits `ms` milliseconds, then replies                              |
//! | elicit       | SSE: asks the client (elicitation/create), waits for its answer    |
//! | cut          | SSE: priming event + `retry:`, closes; the result comes on resume  |
//! | cut_noresume | SSE: closes before the result with no event id                     |
//! | expire       | forgets every session (the next request gets 404) and ends the GET |
//! | status       | answers HTTP `code` with `body` and `content_type`                 |
//! | garbage      | 200 application/json with a body that is not JSON                  |
//! | hang         | never answers                                                      |
//!
//! Every request is recorded (method, headers, body) so tests assert how they were called.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn rpc_method(&self) -> Option<&str> {
        self.body.get("method").and_then(Value::as_str)
    }
}

#[derive(Clone, Default)]
pub struct Options {
    /// Answer every request as an SSE stream instead of JSON.
    pub sse_always: bool,
    /// Offer a GET stream that sends one notification; otherwise GET is 405.
    pub get_stream: bool,
    /// Answer the initialize POST like a server without Streamable HTTP (for B-DETECT).
    pub legacy_only: bool,
    /// Issue no session id.
    pub stateless: bool,
    /// The HTTP+SSE `endpoint` event names another origin (B-SSE must refuse it).
    pub foreign_endpoint: bool,
    /// Keep the GET stream open and send server requests on it (tool `elicit_get`).
    pub get_requests: bool,
    /// Advertise Protected Resource Metadata while not requiring any token.
    pub prm: bool,
    /// Speak only 2026-07-28: a legacy initialize gets 400 with -32022 (M-DETECT).
    pub modern_only: bool,
    /// Hold every initialize answer until this gate is opened (`add_permits`).
    pub hold_initialize: Option<Arc<tokio::sync::Semaphore>>,
    /// Speak only the legacy era, like a TypeScript SDK 1.x server: a modern request
    /// outside a session gets 400 "Server not initialized"; inside one, it is served as
    /// legacy (M-BACKPORT). Announces list changes, subscriptions and logging.
    pub legacy_sessions: bool,
    /// With `modern_only`: refuse a legacy initialize as the conformance suite's
    /// 2026-07-28 servers do, 400 "Missing MCP-Protocol-Version header" (no -32022).
    pub refuse_by_header: bool,
    /// Answer an unknown session as a TypeScript-SDK server does (server-everything):
    /// 400 "Bad Request: No valid session ID provided", not 404. On GET too.
    pub ts_lost_session: bool,
    /// Answer every request to `/mcp` with this redirect status to `/mcp/` (a Starlette
    /// mount does, with 307), where the server is.
    pub slash_redirect: Option<u16>,
}

#[derive(Default)]
pub struct Inner {
    pub requests: Vec<Recorded>,
    sessions: Vec<String>,
    next_session: u64,
    /// Results parked for a resumed stream, by event id.
    parked: HashMap<String, Value>,
    /// Waiters for the client's answers to server requests, by id.
    answers: HashMap<String, oneshot::Sender<Value>>,
    /// Legacy HTTP+SSE connections: session → sender of events.
    legacy: HashMap<String, mpsc::UnboundedSender<(String, String)>>,
    /// Ids of requests whose response stream the client closed (M-CANCEL).
    pub closed_streams: Vec<Value>,
    /// The open GET stream, when `get_requests` is on.
    get_tx: Option<mpsc::UnboundedSender<String>>,
    /// When set, `tools/list` (every transport and era) serves these pages, cursor
    /// "page-N"; tests change them to play a server that changes its tools.
    pub tool_pages: Option<Vec<Vec<Value>>>,
    /// When set, modern `tools/list` results say they may be reused for this long.
    pub list_ttl_ms: Option<u64>,
    /// The methods of the requests answered with `slash_redirect`.
    pub redirected: Vec<Method>,
}

#[derive(Clone)]
pub struct Mock {
    pub inner: Arc<Mutex<Inner>>,
    pub opts: Options,
    pub changed: Arc<Notify>,
    pub url: String,
    pub base: String,
    /// `host:port` the server listens on.
    pub addr: String,
    /// Ends the server ([`Mock::stop`]).
    stop: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    server: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Mock {
    pub async fn start(opts: Options) -> Mock {
        Self::start_on("127.0.0.1:0", opts).await
    }

    /// Listen on `addr` (`127.0.0.1:0`, or the address of a stopped mock to play a
    /// server that restarted on its port).
    pub async fn start_on(addr: &str, opts: Options) -> Mock {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let mock = Mock {
            inner: Arc::default(),
            opts,
            changed: Arc::new(Notify::new()),
            url: format!("http://{addr}/mcp"),
            base: format!("http://{addr}"),
            addr: addr.to_string(),
            stop: Arc::new(Mutex::new(Some(stop))),
            server: Arc::default(),
        };
        let app = Router::new()
            .route("/mcp", post(mcp_post).get(mcp_get).delete(mcp_delete))
            .route("/mcp/", post(mcp_post).get(mcp_get).delete(mcp_delete))
            .route("/sse", get(legacy_get).post(legacy_refuse))
            .route("/.well-known/oauth-protected-resource/mcp", get(prm))
            .route("/messages", post(legacy_post))
            .layer(axum::middleware::from_fn_with_state(
                mock.clone(),
                slash_redirect,
            ))
            .with_state(mock.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        *mock.server.lock().unwrap() = Some(server);
        mock
    }

    /// Go away like a server process that exits: stop listening (new connections are
    /// refused) and close the idle keep-alive connections. Returns once that is done,
    /// so call it with no request in flight.
    pub async fn stop(&self) {
        if let Some(stop) = self.stop.lock().unwrap().take() {
            let _ = stop.send(());
        }
        let server = self.server.lock().unwrap().take();
        if let Some(server) = server {
            tokio::time::timeout(super::WAIT, server)
                .await
                .expect("the mock server stops in time")
                .unwrap();
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    pub fn count(&self, method: Method) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method)
            .count()
    }

    /// Wait until `pred` holds for the recorded requests (no sleeps: woken on each record).
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[Recorded]) -> bool) {
        let fut = async {
            loop {
                let notified = self.changed.notified();
                if pred(&self.requests()) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(super::WAIT, fut)
            .await
            .unwrap_or_else(|_| {
                panic!("mock server never saw: {what}; got {:#?}", self.requests())
            });
    }

    fn record(&self, method: Method, path: &str, headers: &HeaderMap, body: Value) {
        self.inner.lock().unwrap().requests.push(Recorded {
            method,
            path: path.into(),
            headers: headers.clone(),
            body,
        });
        self.changed.notify_waiters();
    }
}

fn json_response(v: Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

fn sse_frame(id: Option<&str>, data: &Value) -> String {
    match id {
        Some(id) => format!("id: {id}\nevent: message\ndata: {data}\n\n"),
        None => format!("event: message\ndata: {data}\n\n"),
    }
}

fn sse_response(chunks: mpsc::UnboundedReceiver<String>) -> Response {
    let stream = futures_stream(chunks);
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn futures_stream(
    rx: mpsc::UnboundedReceiver<String>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    tokio_stream::wrappers::UnboundedReceiverStream::new(rx).map_ok()
}

trait MapOk {
    fn map_ok(self) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>>;
}
impl<S: futures_util::Stream<Item = String>> MapOk for S {
    fn map_ok(self) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
        use futures_util::StreamExt;
        self.map(|s| Ok(Bytes::from(s)))
    }
}

/// The `tools/list` result for `req` when the test set [`Inner::tool_pages`].
fn paged_tools(m: &Mock, req: &Value) -> Option<Value> {
    let pages = m.inner.lock().unwrap().tool_pages.clone()?;
    let page: usize = req["params"]["cursor"]
        .as_str()
        .and_then(|c| c.strip_prefix("page-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut list = json!({"tools": pages.get(page).cloned().unwrap_or_default()});
    if page + 1 < pages.len() {
        list["nextCursor"] = json!(format!("page-{}", page + 1));
    }
    Some(list)
}

fn result(id: &Value, content: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"result":content})
}

fn text(t: impl Into<String>) -> Value {
    json!({"content":[{"type":"text","text":t.into()}]})
}

async fn mcp_post(State(m): State<Mock>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    m.record(Method::POST, "/mcp", &headers, parsed.clone());
    if m.opts.legacy_only {
        return (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed").into_response();
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(accept.contains("application/json") && accept.contains("text/event-stream")) {
        return (StatusCode::NOT_ACCEPTABLE, "Not Acceptable").into_response();
    }
    if parsed.is_array() {
        // 2025-03-26 batch: answer every request in one JSON array.
        let answers: Vec<Value> = parsed
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m.get("id").is_some() && m.get("method").is_some())
            .map(|m| {
                result(
                    &m["id"],
                    text(format!("batch:{}", m["method"].as_str().unwrap_or(""))),
                )
            })
            .collect();
        return json_response(Value::Array(answers));
    }
    let method = parsed
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let id = parsed.get("id").cloned();
    let session = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if m.opts.legacy_sessions && method != "initialize" && session.is_none() {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: Server not initialized"},"id":null}"#,
        )
            .into_response();
    }
    if let Some(version) =
        parsed["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"].as_str()
        && !m.opts.legacy_sessions
    {
        return modern(m, &headers, &parsed, version.to_owned()).await;
    }
    if method == "initialize" && m.opts.modern_only && m.opts.refuse_by_header {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Missing MCP-Protocol-Version header"}}"#,
        )
            .into_response();
    }
    if method == "initialize" && m.opts.modern_only {
        return modern_error(
            StatusCode::BAD_REQUEST,
            id.as_ref().unwrap(),
            -32022,
            "Unsupported protocol version",
            json!({"supported":["2026-07-28"]}),
        );
    }
    if method == "initialize" {
        if let Some(gate) = &m.opts.hold_initialize {
            gate.acquire().await.unwrap().forget();
        }
        let version = parsed["params"]["protocolVersion"]
            .as_str()
            .unwrap_or("2025-03-26")
            .to_owned();
        let answer = if m.opts.legacy_sessions {
            json!({"protocolVersion": version, "instructions": "Ask the mock.",
                   "capabilities": {"tools": {"listChanged": true}, "logging": {},
                                    "resources": {"subscribe": true, "listChanged": true}},
                   "serverInfo": {"name": "mock-legacy", "version": "1.0"}})
        } else {
            json!({"protocolVersion": version, "capabilities": {"tools": {}, "logging": {}},
                   "serverInfo": {"name": "mock", "version": "1.0"}})
        };
        let mut resp = json_response(result(id.as_ref().unwrap(), answer));
        if !m.opts.stateless {
            let sid = {
                let mut inner = m.inner.lock().unwrap();
                inner.next_session += 1;
                let sid = format!("session-{}", inner.next_session);
                inner.sessions.push(sid.clone());
                sid
            };
            resp.headers_mut()
                .insert("mcp-session-id", sid.parse().unwrap());
        }
        return resp;
    }
    if !m.opts.stateless {
        let known = session
            .as_ref()
            .is_some_and(|s| m.inner.lock().unwrap().sessions.contains(s));
        if !known {
            return lost_session(&m);
        }
    }
    let Some(id) = id else {
        // A notification, or the client's answer to one of our requests.
        if parsed.get("result").is_some() || parsed.get("error").is_some() {
            let key = parsed["id"].to_string();
            if let Some(tx) = m.inner.lock().unwrap().answers.remove(&key) {
                let _ = tx.send(parsed.clone());
            }
        }
        return StatusCode::ACCEPTED.into_response();
    };
    if parsed.get("method").is_none() {
        let key = id.to_string();
        if let Some(tx) = m.inner.lock().unwrap().answers.remove(&key) {
            let _ = tx.send(parsed.clone());
        }
        return StatusCode::ACCEPTED.into_response();
    }
    match method.as_str() {
        "ping" => json_response(result(&id, json!({}))),
        "tools/list" => json_response(result(
            &id,
            paged_tools(&m, &parsed).unwrap_or_else(|| json!({"tools": [{"name":"echo","inputSchema":{"type":"object"}}, {"name":"slow","inputSchema":{"type":"object"}}]})),
        )),
        "tools/call" => tool_call(m, id, &parsed).await,
        "logging/setLevel" | "resources/subscribe" | "resources/unsubscribe" => {
            json_response(result(&id, json!({})))
        }
        "resources/read" => json_response(result(
            &id,
            json!({"contents":[{"uri": parsed["params"]["uri"], "text": "hello"}]}),
        )),
        _ => json_response(
            json!({"jsonrpc":"2.0","id":id,"error":{"code":-32601,"message":"Method not found"}}),
        ),
    }
}

async fn tool_call(m: Mock, id: Value, req: &Value) -> Response {
    let name = req["params"]["name"].as_str().unwrap_or("");
    let args = req["params"]["arguments"].clone();
    let reply = |v: Value| {
        if m.opts.sse_always {
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = tx.send(sse_frame(None, &v));
            sse_response(rx)
        } else {
            json_response(v)
        }
    };
    match name {
        "echo" => reply(result(&id, text(args.to_string()))),
        "slow" => {
            let ms = args["ms"].as_u64().unwrap_or(500);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            reply(result(&id, text(format!("slept {ms}"))))
        }
        "progress" => {
            let n = args["n"].as_u64().unwrap_or(3);
            let token = req["params"]["_meta"]["progressToken"].clone();
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                for i in 1..=n {
                    let note = json!({"jsonrpc":"2.0","method":"notifications/progress",
                        "params":{"progressToken":token,"progress":i,"total":n}});
                    let _ = tx.send(sse_frame(None, &note));
                    tokio::task::yield_now().await;
                }
                let log = json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"done"}});
                let _ = tx.send(sse_frame(None, &log));
                let _ = tx.send(sse_frame(None, &result(&id, text(format!("{n} steps")))));
            });
            sse_response(rx)
        }
        "elicit" => {
            let (tx, rx) = mpsc::unbounded_channel();
            let (atx, arx) = oneshot::channel();
            m.inner
                .lock()
                .unwrap()
                .answers
                .insert("\"srv-1\"".into(), atx);
            let ask = json!({"jsonrpc":"2.0","id":"srv-1","method":"elicitation/create",
                "params":{"message":"Name?","requestedSchema":{"type":"object","properties":{"name":{"type":"string"}}}}});
            let _ = tx.send(sse_frame(None, &ask));
            tokio::spawn(async move {
                if let Ok(answer) = arx.await {
                    let _ = tx.send(sse_frame(
                        None,
                        &result(&id, text(answer["result"].to_string())),
                    ));
                }
            });
            sse_response(rx)
        }
        "ask_twice" => {
            // Two rounds of questions on one stream, as a legacy server asks in a tool:
            // an elicitation, then a sampling request; the answers are echoed.
            let (tx, rx) = mpsc::unbounded_channel();
            let inner = m.inner.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                for (n, (method, params)) in [
                    ("elicitation/create", json!({"message":"Name?","requestedSchema":{"type":"object","properties":{"name":{"type":"string"}}}})),
                    ("sampling/createMessage", json!({"messages":[],"maxTokens":5})),
                ]
                .into_iter()
                .enumerate()
                {
                    let (atx, arx) = oneshot::channel();
                    let sid = format!("srv-q{n}");
                    inner.lock().unwrap().answers.insert(format!("{sid:?}"), atx);
                    let note = json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":n}});
                    let _ = tx.send(sse_frame(None, &note));
                    let ask = json!({"jsonrpc":"2.0","id":sid,"method":method,"params":params});
                    let _ = tx.send(sse_frame(None, &ask));
                    match arx.await {
                        Ok(answer) => got.push(answer),
                        Err(_) => return,
                    }
                }
                let _ = tx.send(sse_frame(
                    None,
                    &result(&id, text(Value::Array(got).to_string())),
                ));
            });
            sse_response(rx)
        }
        "ask_forever" => {
            // A server that never stops asking (the proxy bounds the rounds).
            let (tx, rx) = mpsc::unbounded_channel();
            let inner = m.inner.clone();
            tokio::spawn(async move {
                for n in 0.. {
                    let (atx, arx) = oneshot::channel();
                    let sid = format!("srv-f{n}");
                    inner
                        .lock()
                        .unwrap()
                        .answers
                        .insert(format!("{sid:?}"), atx);
                    let ask = json!({"jsonrpc":"2.0","id":sid,"method":"elicitation/create","params":{"message":"Again?","requestedSchema":{"type":"object","properties":{}}}});
                    if tx.send(sse_frame(None, &ask)).is_err() || arx.await.is_err() {
                        return;
                    }
                }
            });
            sse_response(rx)
        }
        "log" => {
            let (tx, rx) = mpsc::unbounded_channel();
            let log = json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hello log"}});
            let _ = tx.send(sse_frame(None, &log));
            let _ = tx.send(sse_frame(None, &result(&id, text("logged"))));
            sse_response(rx)
        }
        "poke" => {
            // Server notifications with no request to go with them: on the GET stream.
            let sent = m.inner.lock().unwrap().get_tx.as_ref().is_some_and(|tx| {
                [
                    json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"session log"}}),
                    json!({"jsonrpc":"2.0","method":"notifications/prompts/list_changed"}),
                    json!({"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///other"}}),
                    json!({"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///a"}}),
                    json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"}),
                ]
                .iter()
                .all(|n| tx.send(sse_frame(None, n)).is_ok())
            });
            reply(result(
                &id,
                text(if sent { "poked" } else { "no GET stream" }),
            ))
        }
        "elicit_get" => {
            // Like the TypeScript SDK: a server request with no related stream goes on the
            // standalone GET stream, and is lost when none is open.
            let (atx, arx) = oneshot::channel();
            m.inner
                .lock()
                .unwrap()
                .answers
                .insert("\"srv-get\"".into(), atx);
            let ask = json!({"jsonrpc":"2.0","id":"srv-get","method":"elicitation/create",
                "params":{"message":"Name?","requestedSchema":{"type":"object","properties":{}}}});
            let sent = m
                .inner
                .lock()
                .unwrap()
                .get_tx
                .as_ref()
                .is_some_and(|tx| tx.send(sse_frame(None, &ask)).is_ok());
            if !sent {
                return reply(result(&id, text("no GET stream was open")));
            }
            match tokio::time::timeout(Duration::from_secs(10), arx).await {
                Ok(Ok(answer)) => reply(result(&id, text(answer["result"]["action"].to_string()))),
                _ => reply(result(&id, text("no answer"))),
            }
        }
        "cut" => {
            let event_id = format!("ev-{}", id);
            m.inner
                .lock()
                .unwrap()
                .parked
                .insert(event_id.clone(), result(&id, text("resumed")));
            let (tx, rx) = mpsc::unbounded_channel();
            // H-PRIME: an id with empty data; H-RETRY: reconnect after 50 ms; then close.
            let _ = tx.send(format!("id: {event_id}\nretry: 50\ndata:\n\n"));
            drop(tx);
            sse_response(rx)
        }
        "cut_noresume" => {
            let (tx, rx) = mpsc::unbounded_channel();
            let note = json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"partial"}});
            let _ = tx.send(sse_frame(None, &note));
            drop(tx);
            sse_response(rx)
        }
        "expire" => {
            // As a restart does: sessions forgotten, and an open GET stream closed.
            let mut inner = m.inner.lock().unwrap();
            inner.sessions.clear();
            inner.get_tx = None;
            drop(inner);
            reply(result(&id, text("expired")))
        }
        "status" => {
            let code = StatusCode::from_u16(args["code"].as_u64().unwrap_or(500) as u16).unwrap();
            let ct = args["content_type"]
                .as_str()
                .unwrap_or("text/plain")
                .to_owned();
            let body = match &args["body"] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                v => v.to_string().replace("\"$ID\"", &id.to_string()),
            };
            let mut resp = (code, [(header::CONTENT_TYPE, ct)], body).into_response();
            if let Some(location) = args["location"].as_str() {
                resp.headers_mut()
                    .insert(header::LOCATION, location.parse().unwrap());
            }
            if let Some(ra) = args["retry_after"].as_str() {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, ra.parse().unwrap());
            }
            resp
        }
        "garbage" => ([(header::CONTENT_TYPE, "application/json")], "<html>oops").into_response(),
        "bad_utf8" => (
            [(header::CONTENT_TYPE, "application/json")],
            Bytes::from_static(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"\xff\xfe\"}"),
        )
            .into_response(),
        "stranger" => {
            // An answer for an id never asked, then nothing for ours: the first must not
            // reach the client, ours must still get exactly one (error) response.
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = tx.send(sse_frame(None, &result(&json!("never-asked"), text("?"))));
            drop(tx);
            sse_response(rx)
        }
        "huge_event" => {
            let (tx, rx) = mpsc::unbounded_channel();
            let n = args["bytes"].as_u64().unwrap_or(1 << 20) as usize;
            let _ = tx.send(format!("data: {}\n\n", "x".repeat(n)));
            drop(tx);
            sse_response(rx)
        }
        "endless" => {
            // Notifications forever, never a response. Each event restarts the idle
            // timeout, so only the client's cancellation (or exit) ends it.
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                loop {
                    let note = json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"debug","data":"tick"}});
                    if tx.send(sse_frame(None, &note)).is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
            sse_response(rx)
        }
        "hang" => std::future::pending().await,
        _ => json_response(
            json!({"jsonrpc":"2.0","id":id,"error":{"code":-32602,"message":"unknown tool"}}),
        ),
    }
}

/// `slash_redirect`: `/mcp` is answered with a redirect to `/mcp/`.
async fn slash_redirect(
    State(m): State<Mock>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match m.opts.slash_redirect {
        Some(code) if req.uri().path() == "/mcp" => {
            m.inner
                .lock()
                .unwrap()
                .redirected
                .push(req.method().clone());
            m.changed.notify_waiters();
            let status = StatusCode::from_u16(code).unwrap();
            (status, [(header::LOCATION, "/mcp/")]).into_response()
        }
        _ => next.run(req).await,
    }
}

/// The answer to a request on a session this server does not know.
fn lost_session(m: &Mock) -> Response {
    if m.opts.ts_lost_session {
        let body = json!({"jsonrpc": "2.0", "id": null,
            "error": {"code": -32000, "message": "Bad Request: No valid session ID provided"}});
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    (StatusCode::NOT_FOUND, "session not found").into_response()
}

async fn mcp_get(State(m): State<Mock>, headers: HeaderMap) -> Response {
    m.record(Method::GET, "/mcp", &headers, Value::Null);
    let session = headers.get("mcp-session-id").and_then(|v| v.to_str().ok());
    if let Some(s) = session
        && !m.opts.stateless
        && !m.opts.legacy_only
        && !m.inner.lock().unwrap().sessions.iter().any(|k| k == s)
    {
        return lost_session(&m);
    }
    if let Some(last) = headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        let parked = m.inner.lock().unwrap().parked.remove(last);
        return match parked {
            Some(v) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let _ = tx.send(sse_frame(Some(&format!("{last}-1")), &v));
                sse_response(rx)
            }
            // Nothing to replay: this stream is over (405 stops the client's GET).
            None => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        };
    }
    if m.opts.get_requests || m.opts.legacy_sessions {
        let (tx, rx) = mpsc::unbounded_channel();
        m.inner.lock().unwrap().get_tx = Some(tx);
        return sse_response(rx);
    }
    if !m.opts.get_stream {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let note = json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"});
    let _ = tx.send(sse_frame(Some("g-1"), &note));
    // Park a follow-up for the reconnection, then end this stream (H-GET reconnects).
    let follow = json!({"jsonrpc":"2.0","method":"notifications/resources/list_changed"});
    m.inner.lock().unwrap().parked.insert("g-1".into(), follow);
    drop(tx);
    sse_response(rx)
}

async fn mcp_delete(State(m): State<Mock>, headers: HeaderMap) -> Response {
    m.record(Method::DELETE, "/mcp", &headers, Value::Null);
    StatusCode::OK.into_response()
}

async fn legacy_refuse(State(m): State<Mock>, headers: HeaderMap, body: Bytes) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    m.record(Method::POST, "/sse", &headers, parsed);
    (StatusCode::NOT_FOUND, "Cannot POST /sse").into_response()
}

async fn legacy_get(State(m): State<Mock>, headers: HeaderMap) -> Response {
    m.record(Method::GET, "/sse", &headers, Value::Null);
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    let (etx, mut erx) = mpsc::unbounded_channel::<(String, String)>();
    let sid = {
        let mut inner = m.inner.lock().unwrap();
        inner.next_session += 1;
        let sid = format!("legacy-{}", inner.next_session);
        inner.legacy.insert(sid.clone(), etx);
        sid
    };
    let endpoint = if m.opts.foreign_endpoint {
        format!("http://evil.invalid/messages?sessionId={sid}")
    } else {
        format!("/messages?sessionId={sid}")
    };
    let _ = tx.send(format!("event: endpoint\ndata: {endpoint}\n\n"));
    tokio::spawn(async move {
        while let Some((event, data)) = erx.recv().await {
            if tx
                .send(format!("event: {event}\ndata: {data}\n\n"))
                .is_err()
            {
                break;
            }
        }
    });
    sse_response(rx)
}

async fn legacy_post(
    State(m): State<Mock>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    m.record(Method::POST, "/messages", &headers, parsed.clone());
    let sid = q.get("sessionId").cloned().unwrap_or_default();
    let Some(tx) = m.inner.lock().unwrap().legacy.get(&sid).cloned() else {
        return (StatusCode::NOT_FOUND, "no session").into_response();
    };
    if parsed["params"]["name"] == "drop_stream" {
        // The server loses the connection: the SSE stream ends, the call is never answered.
        m.inner.lock().unwrap().legacy.remove(&sid);
        return StatusCode::ACCEPTED.into_response();
    }
    if let Some(batch) = parsed.as_array() {
        // A batch is answered as one JSON array event, as 2024-11-05 servers may.
        let answers: Vec<Value> = batch.iter().filter_map(|r| legacy_answer(&m, r)).collect();
        if !answers.is_empty() {
            let _ = tx.send(("message".into(), Value::Array(answers).to_string()));
        }
        return StatusCode::ACCEPTED.into_response();
    }
    if let Some(answer) = legacy_answer(&m, &parsed) {
        let _ = tx.send(("message".into(), answer.to_string()));
    }
    StatusCode::ACCEPTED.into_response()
}

/// The answer of the HTTP+SSE mock to one request (`None` for anything else).
fn legacy_answer(m: &Mock, parsed: &Value) -> Option<Value> {
    {
        let (id, method) = (parsed.get("id")?, parsed.get("method")?.as_str()?);
        let answer = match method {
            "initialize" => result(
                id,
                json!({"protocolVersion":"2024-11-05","capabilities":{"tools":{}},
                "serverInfo":{"name":"legacy-mock","version":"0.1"}}),
            ),
            "tools/list" => result(
                id,
                paged_tools(m, parsed).unwrap_or_else(
                    || json!({"tools":[{"name":"echo","inputSchema":{"type":"object"}}]}),
                ),
            ),
            "tools/call" => result(id, text(parsed["params"]["arguments"].to_string())),
            "ping" => result(id, json!({})),
            _ => {
                json!({"jsonrpc":"2.0","id":id,"error":{"code":-32601,"message":"Method not found"}})
            }
        };
        Some(answer)
    }
}

fn modern_error(status: StatusCode, id: &Value, code: i64, message: &str, data: Value) -> Response {
    let body = json!({"jsonrpc":"2.0","id":id,"error":{"code":code,"message":message,"data":data}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Decode the base64 sentinel form of a header value.
fn decode_header(v: &str) -> String {
    use base64::Engine;
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b) => {
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap()).unwrap()
        }
        None => v.to_owned(),
    }
}

/// The 2026-07-28 revision: stateless, headers validated against the body.
async fn modern(m: Mock, headers: &HeaderMap, req: &Value, version: String) -> Response {
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(decode_header)
    };
    if version != "2026-07-28" {
        return modern_error(
            StatusCode::BAD_REQUEST,
            &id,
            -32022,
            "Unsupported protocol version",
            json!({"supported":["2026-07-28"],"requested":version}),
        );
    }
    let method = req["method"].as_str().unwrap_or("");
    let mut mismatch = Vec::new();
    if h("mcp-protocol-version").as_deref() != Some(&version) {
        mismatch.push("MCP-Protocol-Version");
    }
    if h("mcp-method").as_deref() != Some(method) {
        mismatch.push("Mcp-Method");
    }
    let name = match method {
        "tools/call" | "prompts/get" => req["params"]["name"].as_str(),
        "resources/read" => req["params"]["uri"].as_str(),
        _ => None,
    };
    if h("mcp-name").as_deref() != name {
        mismatch.push("Mcp-Name");
    }
    if method == "tools/call" && name == Some("route") {
        let want = req["params"]["arguments"]["region"]
            .as_str()
            .map(str::to_owned);
        if h("mcp-param-region") != want {
            mismatch.push("Mcp-Param-Region");
        }
    }
    if headers.contains_key("mcp-session-id") {
        mismatch.push("Mcp-Session-Id (none in this revision)");
    }
    if !mismatch.is_empty() {
        return modern_error(
            StatusCode::BAD_REQUEST,
            &id,
            -32020,
            &format!("Header mismatch: {}", mismatch.join(", ")),
            Value::Null,
        );
    }
    if method == "tools/list"
        && let Some(list) = paged_tools(&m, req)
    {
        return json_response(result(&id, list));
    }
    let ttl = m.inner.lock().unwrap().list_ttl_ms;
    if method == "tools/list"
        && let Some(ttl) = ttl
    {
        return json_response(result(
            &id,
            json!({"tools":[{"name":"route","inputSchema":{"type":"object"}}],
                   "ttlMs": ttl, "cacheScope": "private", "resultType": "complete"}),
        ));
    }
    match method {
        "server/discover" => json_response(result(
            &id,
            json!({"supportedVersions":["2026-07-28"],
            "capabilities":{"tools":{}},"serverInfo":{"name":"mock-modern","version":"2"}}),
        )),
        "tools/list" => json_response(result(
            &id,
            json!({"tools":[
                {"name":"route","inputSchema":{"type":"object","properties":{
                    "region":{"type":"string","x-mcp-header":"Region"},"q":{"type":"string"}}}},
                {"name":"bad","inputSchema":{"type":"object","properties":{
                    "n":{"type":"number","x-mcp-header":"N"}}}},
                {"name":"hang","inputSchema":{"type":"object"}}
            ]}),
        )),
        "tools/call" if name == Some("hang") || name == Some("cut") => {
            let (tx, rx) = mpsc::unbounded_channel::<String>();
            let note = json!({"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"started"}});
            let _ = tx.send(sse_frame(None, &note));
            if name == Some("cut") {
                // A modern stream is not resumable: even with an event id, closing loses it.
                let _ = tx.send("id: x-1\ndata:\n\n".to_owned());
                drop(tx);
            } else {
                watch_close(m, id, tx);
            }
            sse_response(rx)
        }
        "tools/call" if name.is_some_and(|n| n.starts_with("ask") || n == "wait_state") => {
            json_response(mrtr_tool(&id, name.unwrap_or(""), &req["params"]))
        }
        "tools/call" => json_response(result(
            &id,
            text(format!(
                "routed to {}",
                req["params"]["arguments"]["region"].as_str().unwrap_or("?")
            )),
        )),
        "subscriptions/listen" => {
            let (tx, rx) = mpsc::unbounded_channel::<String>();
            let ack = json!({"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{}});
            let _ = tx.send(sse_frame(None, &ack));
            let tx2 = tx.clone();
            let delay = req["params"]["delayMs"].as_u64().unwrap_or(0);
            tokio::spawn(async move {
                // A quiet period longer than the proxy's --request-timeout in the test.
                tokio::time::sleep(Duration::from_millis(delay)).await;
                let _ = tx2.send(":keep-alive\n\n".to_owned());
                let note = json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"});
                let _ = tx2.send(sse_frame(None, &note));
            });
            watch_close(m, id, tx);
            sse_response(rx)
        }
        _ => modern_error(
            StatusCode::NOT_FOUND,
            &id,
            -32601,
            "Method not found",
            Value::Null,
        ),
    }
}

/// Multi-round tools (MRTR) of the modern mock:
/// - `ask`: asks the client's name, then (state "r2") its age, then answers with both;
/// - `ask_sampling`: asks for a sampling/createMessage;
/// - `wait_state`: answers twice with state only ("not ready"), then "ready".
fn mrtr_tool(id: &Value, name: &str, params: &Value) -> Value {
    let interim = |requests: Value, state: &str| {
        let mut r = json!({"resultType":"input_required","requestState":state});
        if !requests.is_null() {
            r["inputRequests"] = requests;
        }
        result(id, r)
    };
    let elicit = |message: &str| {
        json!({"method":"elicitation/create","params":{"message":message,
            "requestedSchema":{"type":"object","properties":{"v":{"type":"string"}}}}})
    };
    let state = params["requestState"].as_str();
    let answers = &params["inputResponses"];
    match (name, state) {
        ("ask", None) => interim(json!({"name": elicit("Name?")}), "r1-\u{e9}"),
        ("ask", Some("r1-\u{e9}")) if answers["name"].is_object() => {
            interim(json!({"age": elicit("Age?")}), "r2")
        }
        ("ask", Some("r2")) => result(
            id,
            json!({"resultType":"complete","content":[{"type":"text",
                "text":format!("age answer: {}", answers["age"])}]}),
        ),
        ("ask_sampling", _) => interim(
            json!({"s":{"method":"sampling/createMessage","params":{"messages":[],"maxTokens":5}}}),
            "s1",
        ),
        ("wait_state", None) => interim(Value::Null, "w1"),
        ("wait_state", Some("w1")) => interim(Value::Null, "w2"),
        ("wait_state", Some("w2")) => result(id, text("ready")),
        _ => json!({"jsonrpc":"2.0","id":id,"error":{"code":-32602,"message":"bad MRTR round"}}),
    }
}

/// Record when the client closes the response stream of request `id`.
fn watch_close(m: Mock, id: Value, tx: mpsc::UnboundedSender<String>) {
    tokio::spawn(async move {
        tx.closed().await;
        m.inner.lock().unwrap().closed_streams.push(id);
        m.changed.notify_waiters();
    });
}

async fn prm(State(m): State<Mock>) -> Response {
    if !m.opts.prm {
        return StatusCode::NOT_FOUND.into_response();
    }
    json_response(json!({"resource": m.url, "authorization_servers": ["http://127.0.0.1:9/as"]}))
}
