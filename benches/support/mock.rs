//! A minimal, fast Streamable HTTP MCP server for the benchmarks, on 127.0.0.1:0, with
//! its own runtime so it serves the same way whatever the driver is doing.
//!
//! | tool       | answer                                                                   |
//! |------------|--------------------------------------------------------------------------|
//! | `echo`     | `structuredContent` echoes `arguments`                                   |
//! | `blob`     | one text content of `n` bytes (a fixed pseudo-random ASCII blob)         |
//! | `stream`   | SSE: `n` `notifications/progress` for the request's `progressToken`, then the result |
//! | `sse_mode` | `{"on": true}`: every later answer of this session is an SSE stream       |
//!
//! `?sse=1` on the URL makes every answer SSE from the start (initialize included).
//! GET is 405 (no standalone stream), DELETE ends a session and is recorded with its time,
//! and an `initialize` whose `clientInfo.name` starts with `bench-` records which session
//! that run got (its first word is the tag), so a run behind a proxy can be found again.
//! Large answers are sent from shared `Bytes` without copying, so the mock costs the same
//! small amount whoever the client is.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use serde::Deserialize;
use serde_json::value::RawValue;

pub const SESSION_ID: &str = "mcp-session-id";

pub struct Mock {
    /// `http://127.0.0.1:PORT/mcp`
    pub url: String,
    pub state: Arc<MockState>,
    runtime: Option<tokio::runtime::Runtime>,
}

pub struct MockState {
    /// The largest blob any `blob` call may ask for.
    pub blob: Bytes,
    next_session: AtomicU64,
    /// Session id → answers as SSE.
    sessions: Mutex<HashMap<String, bool>>,
    /// Run tag → session id.
    tags: Mutex<HashMap<String, String>>,
    /// Session id → when its DELETE arrived.
    deletes: Mutex<HashMap<String, Instant>>,
    pub posts: AtomicU64,
}

impl MockState {
    pub fn session_of(&self, tag: &str) -> Option<String> {
        self.tags.lock().unwrap().get(tag).cloned()
    }
    pub fn deleted_at(&self, session: &str) -> Option<Instant> {
        self.deletes.lock().unwrap().get(session).copied()
    }
}

impl Mock {
    /// Start the server with a blob of `blob_len` bytes available.
    pub fn start(blob_len: usize) -> Mock {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mock-server")
            .enable_all()
            .build()
            .expect("mock runtime");
        let state = Arc::new(MockState {
            blob: Bytes::from(make_blob(blob_len)),
            next_session: AtomicU64::new(1),
            sessions: Mutex::new(HashMap::new()),
            tags: Mutex::new(HashMap::new()),
            deletes: Mutex::new(HashMap::new()),
            posts: AtomicU64::new(0),
        });
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("local addr");
        let app = Router::new()
            .route(
                "/mcp",
                post(on_post)
                    .get(|| async { StatusCode::METHOD_NOT_ALLOWED })
                    .delete(on_delete),
            )
            .with_state(state.clone());
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener)
                .expect("tokio listener")
                .tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
            let _ = axum::serve(listener, app).await;
        });
        Mock {
            url: format!("http://{addr}/mcp"),
            state,
            runtime: Some(runtime),
        }
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Deterministic printable ASCII that needs no JSON escaping (xorshift64 over 64 symbols).
pub fn make_blob(len: usize) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut y = x;
        for _ in 0..10 {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[(y & 63) as usize]);
            y >>= 6;
        }
    }
    out
}

#[derive(Deserialize)]
struct Req<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InitParams<'a> {
    #[serde(rename = "protocolVersion", borrow, default)]
    protocol_version: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "clientInfo", borrow, default)]
    client_info: Option<ClientInfo<'a>>,
}

#[derive(Deserialize)]
struct ClientInfo<'a> {
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
    #[serde(rename = "_meta", borrow, default)]
    meta: Option<Meta<'a>>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(rename = "progressToken", borrow, default)]
    progress_token: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct Args {
    #[serde(default)]
    n: usize,
    #[serde(default)]
    on: bool,
}

const VERSIONS: [&str; 4] = ["2025-03-26", "2025-06-18", "2025-11-25", "2024-11-05"];

async fn on_post(
    State(st): State<Arc<MockState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.posts.fetch_add(1, Ordering::Relaxed);
    let Ok(req) = serde_json::from_slice::<Req<'_>>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON-RPC").into_response();
    };
    let (Some(method), Some(id)) = (req.method.as_deref(), req.id) else {
        // A notification or a response from the client.
        return StatusCode::ACCEPTED.into_response();
    };
    let id = id.get();
    let global_sse = query.as_deref().is_some_and(|q| q.contains("sse=1"));
    if method == "initialize" {
        let p: Option<InitParams<'_>> = req.params.and_then(|p| serde_json::from_str(p.get()).ok());
        let requested = p.as_ref().and_then(|p| p.protocol_version.as_deref());
        let version = VERSIONS
            .iter()
            .find(|v| Some(**v) == requested)
            .copied()
            .unwrap_or("2025-06-18");
        let sid = format!(
            "bench-session-{}",
            st.next_session.fetch_add(1, Ordering::Relaxed)
        );
        st.sessions.lock().unwrap().insert(sid.clone(), false);
        if let Some(name) = p
            .as_ref()
            .and_then(|p| p.client_info.as_ref())
            .and_then(|c| c.name.as_deref())
            && name.starts_with("bench-")
        {
            let tag = name.split_whitespace().next().unwrap_or(name).to_owned();
            st.tags.lock().unwrap().insert(tag, sid.clone());
        }
        let result = format!(
            r#"{{"protocolVersion":"{version}","capabilities":{{"tools":{{}}}},"serverInfo":{{"name":"bench-mock","version":"1.0.0"}}}}"#
        );
        let mut resp = respond(id, &result, global_sse);
        resp.headers_mut()
            .insert(SESSION_ID, HeaderValue::from_str(&sid).expect("ascii"));
        return resp;
    }
    let Some(sid) = headers.get(SESSION_ID).and_then(|v| v.to_str().ok()) else {
        return (StatusCode::BAD_REQUEST, "Mcp-Session-Id required").into_response();
    };
    let Some(session_sse) = st.sessions.lock().unwrap().get(sid).copied() else {
        return (StatusCode::NOT_FOUND, "unknown session").into_response();
    };
    let sse = global_sse || session_sse;
    match method {
        "ping" => respond(id, "{}", sse),
        "tools/list" => respond(id, TOOLS, sse),
        "tools/call" => {
            let Some(call) = req
                .params
                .and_then(|p| serde_json::from_str::<CallParams<'_>>(p.get()).ok())
            else {
                return error(id, -32602, "bad tools/call params", sse);
            };
            let args: Args = call
                .arguments
                .and_then(|a| serde_json::from_str(a.get()).ok())
                .unwrap_or_default();
            match call.name.as_ref() {
                "echo" => {
                    let echoed = call.arguments.map(RawValue::get).unwrap_or("{}");
                    let result = format!(
                        r#"{{"content":[{{"type":"text","text":"ok"}}],"structuredContent":{echoed}}}"#
                    );
                    respond(id, &result, sse)
                }
                "blob" => blob(&st, id, args.n, sse),
                "stream" => {
                    let token = call
                        .meta
                        .as_ref()
                        .and_then(|m| m.progress_token)
                        .map(RawValue::get)
                        .unwrap_or("null");
                    stream(id, token, args.n)
                }
                "sse_mode" => {
                    st.sessions.lock().unwrap().insert(sid.to_owned(), args.on);
                    let result = format!(
                        r#"{{"content":[{{"type":"text","text":"sse {}"}}]}}"#,
                        if args.on { "on" } else { "off" }
                    );
                    // This answer already uses the new mode.
                    respond(id, &result, global_sse || args.on)
                }
                other => error(id, -32602, &format!("unknown tool {other}"), sse),
            }
        }
        _ => error(id, -32601, "method not found", sse),
    }
}

async fn on_delete(State(st): State<Arc<MockState>>, headers: HeaderMap) -> StatusCode {
    let now = Instant::now();
    let Some(sid) = headers.get(SESSION_ID).and_then(|v| v.to_str().ok()) else {
        return StatusCode::BAD_REQUEST;
    };
    st.deletes.lock().unwrap().insert(sid.to_owned(), now);
    if st.sessions.lock().unwrap().remove(sid).is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    }
}

const TOOLS: &str = r#"{"tools":[{"name":"echo","inputSchema":{"type":"object"}},{"name":"blob","inputSchema":{"type":"object","properties":{"n":{"type":"integer"}}}},{"name":"stream","inputSchema":{"type":"object","properties":{"n":{"type":"integer"}}}},{"name":"sse_mode","inputSchema":{"type":"object","properties":{"on":{"type":"boolean"}}}}]}"#;

fn respond(id: &str, result: &str, sse: bool) -> Response {
    one_message(
        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#),
        sse,
    )
}

fn error(id: &str, code: i64, message: &str, sse: bool) -> Response {
    let message = serde_json::to_string(message).expect("string");
    one_message(
        format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message}}}}}"#),
        sse,
    )
}

/// One JSON-RPC message as the whole answer: a JSON body, or one SSE event.
fn one_message(json: String, sse: bool) -> Response {
    if sse {
        with_body(
            vec![Bytes::from(format!("event: message\ndata: {json}\n\n"))],
            true,
        )
    } else {
        with_body(vec![Bytes::from(json)], false)
    }
}

fn blob(st: &MockState, id: &str, n: usize, sse: bool) -> Response {
    let n = n.min(st.blob.len());
    let mut head = String::new();
    if sse {
        head.push_str("event: message\ndata: ");
    }
    head.push_str(r#"{"jsonrpc":"2.0","id":"#);
    head.push_str(id);
    head.push_str(r#","result":{"content":[{"type":"text","text":""#);
    let tail: &'static str = if sse { "\"}]}}\n\n" } else { "\"}]}}" };
    with_body(
        vec![
            Bytes::from(head),
            st.blob.slice(..n),
            Bytes::from_static(tail.as_bytes()),
        ],
        sse,
    )
}

fn stream(id: &str, token: &str, n: usize) -> Response {
    let mut chunks = Vec::with_capacity(n + 1);
    for i in 1..=n {
        chunks.push(Bytes::from(format!(
            "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":{token},\"progress\":{i},\"total\":{n}}}}}\n\n"
        )));
    }
    chunks.push(Bytes::from(format!(
        "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"content\":[{{\"type\":\"text\",\"text\":\"streamed {n}\"}}]}}}}\n\n"
    )));
    with_body(chunks, true)
}

/// A body of shared chunks, without copying. JSON carries its exact length; SSE is sent
/// chunked, as event streams are.
fn with_body(chunks: Vec<Bytes>, sse: bool) -> Response {
    let len: usize = chunks.iter().map(Bytes::len).sum();
    let body = if chunks.len() == 1 && !sse {
        Body::from(chunks.into_iter().next().expect("one chunk"))
    } else {
        Body::from_stream(futures_util::stream::iter(
            chunks.into_iter().map(Ok::<_, Infallible>),
        ))
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if sse {
            "text/event-stream"
        } else {
            "application/json"
        }),
    );
    if sse {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    } else {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    resp
}
