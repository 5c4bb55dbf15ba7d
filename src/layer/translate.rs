//! Era translation for a legacy (initialize-based) client in front of a modern-only
//! (2026-07-28) server (M-BRIDGE). The client's `initialize` is answered here from the
//! server's `server/discover`; every later request is stamped with the per-request
//! `_meta` the modern era requires; `notifications/initialized` and `ping` are answered
//! here. Pure functions over messages: the proxy loop decides when they apply.

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::jsonrpc::{IdKey, META_PROTOCOL_VERSION, Message};

const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// Where a modern request asks for log messages, in place of `logging/setLevel`.
const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// The modern revision this proxy speaks.
pub(crate) const MODERN_VERSION: &str = "2026-07-28";
/// Legacy revisions a client may ask for and be answered in.
const LEGACY_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The JSON-RPC error of a server that does not speak the requested version.
const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// What a translated session adds to each request.
#[derive(Debug)]
pub(crate) struct Translation {
    /// The modern version spoken to the server.
    pub version: String,
    /// The `_meta` entries every request carries: version, client info, capabilities.
    pub meta: Map<String, Value>,
    /// The level the client set with `logging/setLevel`, sent with every later request.
    log_level: std::sync::Mutex<Option<Value>>,
    /// The server's capabilities, from `server/discover`: which list changes to listen to.
    server_capabilities: std::sync::Mutex<Value>,
    /// Resource URIs the client subscribed to (`resources/subscribe`).
    subscriptions: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// List results the server said may be reused (`ttlMs`), by method and cursor.
    cache: std::sync::Mutex<std::collections::HashMap<(String, String), Cached>>,
}

/// A list result and until when it may be reused.
#[derive(Debug)]
struct Cached {
    until: std::time::Instant,
    result: Value,
}

/// The list methods whose results carry `ttlMs` and `cacheScope`, with the notification
/// that makes them stale.
const LISTS: [(&str, &str); 4] = [
    ("tools/list", "notifications/tools/list_changed"),
    ("prompts/list", "notifications/prompts/list_changed"),
    ("resources/list", "notifications/resources/list_changed"),
    (
        "resources/templates/list",
        "notifications/resources/list_changed",
    ),
];

/// The cache key of a list request: its method and cursor.
fn list_key(method: &str, raw: &str) -> Option<(String, String)> {
    LISTS.iter().find(|(m, _)| *m == method)?;
    let msg: Value = serde_json::from_str(raw).ok()?;
    let cursor = msg
        .pointer("/params/cursor")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some((method.to_owned(), cursor.to_owned()))
}

impl Translation {
    /// From the client's `initialize` request; `None` when it is not one.
    pub(crate) fn from_initialize(body: &[u8], version: &str) -> Option<Translation> {
        let init: Value = serde_json::from_slice(body).ok()?;
        let params = init.get("params")?;
        let mut meta = Map::new();
        meta.insert(META_PROTOCOL_VERSION.into(), json!(version));
        meta.insert(
            META_CLIENT_INFO.into(),
            params
                .get("clientInfo")
                .cloned()
                .unwrap_or_else(|| json!({})),
        );
        meta.insert(
            META_CLIENT_CAPABILITIES.into(),
            params
                .get("capabilities")
                .cloned()
                .unwrap_or_else(|| json!({})),
        );
        Some(Translation {
            version: version.to_owned(),
            meta,
            log_level: std::sync::Mutex::default(),
            server_capabilities: std::sync::Mutex::new(Value::Null),
            subscriptions: std::sync::Mutex::default(),
            cache: std::sync::Mutex::default(),
        })
    }

    /// The `server/discover` request the proxy sends on the client's behalf, with the
    /// string id `id`.
    pub(crate) fn discover(&self, id: &str) -> Bytes {
        let body = json!({"jsonrpc":"2.0","id":id,"method":"server/discover",
                          "params":{"_meta": self.meta}});
        Bytes::from(body.to_string())
    }

    /// A legacy client message, made modern: its own `_meta` (a progress token, say) is
    /// kept, and the era's entries are added. `None` when it cannot be read.
    pub(crate) fn stamp(&self, raw: &str) -> Option<Bytes> {
        let mut msg: Value = serde_json::from_str(raw).ok()?;
        let meta = super::meta_mut(&mut msg)?;
        for (k, v) in &self.meta {
            meta.insert(k.clone(), v.clone());
        }
        if let Some(level) = self
            .log_level
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            meta.insert(META_LOG_LEVEL.into(), level);
        }
        serde_json::to_vec(&msg).ok().map(Bytes::from)
    }

    fn cache(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(String, String), Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh cached result for this list request (`raw`, the client's message).
    pub(crate) fn cached(&self, method: &str, raw: &str) -> Option<Value> {
        let key = list_key(method, raw)?;
        let mut cache = self.cache();
        match cache.get(&key) {
            Some(c) if c.until > std::time::Instant::now() => Some(c.result.clone()),
            Some(_) => {
                cache.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Keep a list result for as long as its `ttlMs` allows (0 or absent: not at all).
    pub(crate) fn remember(&self, method: &str, raw: &str, answer: &[u8]) {
        let Some(key) = list_key(method, raw) else {
            return;
        };
        let Some(result) = serde_json::from_slice::<Value>(answer)
            .ok()
            .and_then(|mut v| v.get_mut("result").map(Value::take))
        else {
            return;
        };
        let ttl = result.get("ttlMs").and_then(Value::as_u64).unwrap_or(0);
        if ttl == 0 {
            return;
        }
        // Bounded: a day at most, and a few hundred pages.
        let ttl = std::time::Duration::from_millis(ttl.min(86_400_000));
        let mut cache = self.cache();
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.insert(
            key,
            Cached {
                until: std::time::Instant::now() + ttl,
                result,
            },
        );
    }

    /// A server notification passing to the client: a list change makes that list stale.
    pub(crate) fn notified(&self, method: &str) {
        if !method.ends_with("/list_changed") {
            return;
        }
        self.cache()
            .retain(|(list, _), _| !LISTS.iter().any(|(l, n)| l == list && *n == method));
    }

    /// Keep the server's capabilities from its `server/discover` result.
    pub(crate) fn set_server_capabilities(&self, capabilities: Value) {
        *self
            .server_capabilities
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = capabilities;
    }

    /// Subscribe to (`on`) or unsubscribe from a resource. Returns whether the set changed.
    pub(crate) fn subscribe(&self, uri: &str, on: bool) -> bool {
        let mut set = self.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
        if on {
            set.insert(uri.to_owned())
        } else {
            set.remove(uri)
        }
    }

    /// The `subscriptions/listen` that carries what a legacy client would hear on its GET
    /// stream: the list changes the server announces, and the subscribed resources.
    /// `None` when there is nothing to listen to.
    pub(crate) fn listen_request(&self, id: &str) -> Option<Bytes> {
        let caps = self
            .server_capabilities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut filter = Map::new();
        for (kind, flag) in [
            ("tools", "toolsListChanged"),
            ("prompts", "promptsListChanged"),
            ("resources", "resourcesListChanged"),
        ] {
            if caps.pointer(&format!("/{kind}/listChanged")) == Some(&Value::Bool(true)) {
                filter.insert(flag.into(), Value::Bool(true));
            }
        }
        let uris: Vec<Value> = self
            .subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|u| Value::String(u.clone()))
            .collect();
        if !uris.is_empty() {
            filter.insert("resourceSubscriptions".into(), Value::Array(uris));
        }
        if filter.is_empty() {
            return None;
        }
        let request = json!({"jsonrpc":"2.0","id":id,"method":"subscriptions/listen",
                             "params":{"notifications": filter}});
        self.stamp(&request.to_string())
    }

    /// `logging/setLevel`: the modern era asks per request, so the level is kept and sent
    /// in every later request's `_meta`.
    pub(crate) fn set_log_level(&self, level: Value) {
        *self.log_level.lock().unwrap_or_else(|p| p.into_inner()) = Some(level);
    }
}

/// What becomes of a legacy client message in a translated session.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Local {
    /// Send it on, stamped.
    Forward,
    /// Answer it here with this line.
    Reply(Bytes),
    /// Nothing to send: the modern era has no such message.
    Drop,
    /// `resources/subscribe` (`on`) or `unsubscribe`: answered with this line, and the
    /// listen stream follows the new set.
    Subscribe { reply: Bytes, uri: String, on: bool },
}

pub(crate) fn local(m: &Message<'_>, t: &Translation) -> Local {
    if m.kind == crate::jsonrpc::Kind::Response {
        // A modern server asks nothing over the wire: the only requests the client
        // answers are the proxy's own (MRTR), taken before this. Anything else is late.
        tracing::debug!("dropped a client response that answers no pending request");
        return Local::Drop;
    }
    match (m.method(), &m.id) {
        ("notifications/initialized", _) => Local::Drop,
        ("ping", Some(id)) => Local::Reply(result_line(id, &json!({}))),
        ("logging/setLevel", Some(id)) => {
            let level = m
                .params
                .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
                .and_then(|p| p.get("level").cloned());
            match level {
                Some(level @ Value::String(_)) => {
                    t.set_log_level(level);
                    Local::Reply(result_line(id, &json!({})))
                }
                _ => Local::Reply(Bytes::from(crate::jsonrpc::error_response(
                    Some(id),
                    -32602,
                    "logging/setLevel needs params.level, a string",
                ))),
            }
        }
        (method @ ("resources/subscribe" | "resources/unsubscribe"), Some(id)) => {
            let uri = m
                .params
                .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
                .and_then(|p| p.get("uri").and_then(Value::as_str).map(str::to_owned));
            match uri {
                Some(uri) => Local::Subscribe {
                    reply: result_line(id, &json!({})),
                    uri,
                    on: method == "resources/subscribe",
                },
                None => Local::Reply(Bytes::from(crate::jsonrpc::error_response(
                    Some(id),
                    -32602,
                    &format!("{method} needs params.uri, a string"),
                ))),
            }
        }
        _ => Local::Forward,
    }
}

fn result_line(id: &IdKey, result: &Value) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{}}}"#,
        id.as_json(),
        result
    ))
}

/// The client's `initialize` answered from the server's `server/discover` result: its
/// server info, capabilities and instructions, in the version the client asked for when
/// this proxy knows it, else the latest legacy one.
pub(crate) fn initialize_answer(id: &IdKey, requested: Option<&str>, discover: &Value) -> Bytes {
    let version = requested
        .filter(|v| LEGACY_VERSIONS.contains(v))
        .unwrap_or(LEGACY_VERSIONS[LEGACY_VERSIONS.len() - 1]);
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": discover.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        "serverInfo": server_info(discover),
    });
    if let Some(instructions) = discover.get("instructions") {
        result["instructions"] = instructions.clone();
    }
    result_line(id, &result)
}

/// Where a 2026-07-28 result names its server: `_meta`'s serverInfo entry (a top-level
/// `serverInfo` is read too).
fn server_info(discover: &Value) -> Value {
    discover
        .pointer("/_meta/io.modelcontextprotocol~1serverInfo")
        .or_else(|| discover.get("serverInfo"))
        .cloned()
        .unwrap_or_else(|| json!({"name": "unknown", "version": ""}))
}

/// The versions a server named when it refused a legacy `initialize` with
/// UnsupportedProtocolVersion; `None` when the answer is something else.
pub(crate) fn refused_versions(answer: &[u8]) -> Option<Vec<String>> {
    let v: Value = serde_json::from_slice(answer).ok()?;
    let error = v.get("error")?;
    if error.get("code")?.as_i64()? != UNSUPPORTED_PROTOCOL_VERSION {
        return None;
    }
    Some(
        error
            .pointer("/data/supported")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    )
}

/// The modern version to speak, given what the server said it supports (empty: it did
/// not say).
pub(crate) fn modern_version(supported: &[String]) -> Option<&'static str> {
    (supported.is_empty() || supported.iter().any(|v| v == MODERN_VERSION))
        .then_some(MODERN_VERSION)
}

/// A 2026-07-28 `input_required` result (MRTR): what the server needs from the client
/// before it can answer the original request.
#[derive(Debug)]
pub(crate) struct InputRequired {
    /// Server-assigned key → the request to put to the client (`method`, `params`).
    pub requests: Vec<(String, Value)>,
    /// Opaque state to echo back exactly, as its JSON text.
    pub state: Option<Box<RawValue>>,
}

/// Why an `input_required` result cannot be carried out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InputError {
    /// The result is not shaped as the 2026-07-28 schema says.
    Malformed(String),
    /// The client did not declare the capability an input request needs.
    Missing {
        method: String,
        capability: &'static str,
    },
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputError::Malformed(why) => {
                write!(f, "the server asked for input in a malformed way: {why}")
            }
            InputError::Missing { method, capability } => write!(
                f,
                "the server asked the client for {method}, but the client did not declare the \
                 {capability:?} capability"
            ),
        }
    }
}

/// The result of a response, when it is an `input_required` one. `max_state` bounds the
/// `requestState` echoed back. `Some(Err)` ends the client's request with that error.
pub(crate) fn input_required(
    answer: &[u8],
    capabilities: &Value,
    max_state: usize,
) -> Option<Result<InputRequired, InputError>> {
    #[derive(serde::Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        result: Option<&'a RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Interim {
        #[serde(rename = "resultType")]
        result_type: Option<String>,
        #[serde(rename = "inputRequests")]
        input_requests: Option<Value>,
        #[serde(rename = "requestState")]
        request_state: Option<Box<RawValue>>,
    }
    let answer: Answer<'_> = serde_json::from_slice(answer).ok()?;
    let interim: Interim = serde_json::from_str(answer.result?.get()).ok()?;
    if interim.result_type.as_deref() != Some("input_required") {
        return None;
    }
    Some(read_interim(
        interim.input_requests,
        interim.request_state,
        capabilities,
        max_state,
    ))
}

fn read_interim(
    requests: Option<Value>,
    state: Option<Box<RawValue>>,
    capabilities: &Value,
    max_state: usize,
) -> Result<InputRequired, InputError> {
    let bad = |why: &str| InputError::Malformed(why.to_owned());
    if let Some(s) = &state {
        if !s.get().starts_with('"') {
            return Err(bad("requestState is not a string"));
        }
        if s.get().len() > max_state {
            return Err(bad(&format!(
                "its requestState of {} bytes is over the {max_state}-byte limit (--max-message-size)",
                s.get().len()
            )));
        }
    }
    let requests = match requests {
        None => Vec::new(),
        Some(Value::Object(map)) => map.into_iter().collect(),
        Some(_) => return Err(bad("inputRequests is not an object")),
    };
    if requests.is_empty() && state.is_none() {
        return Err(bad("neither inputRequests nor requestState"));
    }
    for (key, request) in &requests {
        let method = request
            .get("method")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(&format!("input request {key:?} has no method")))?;
        let capability = match method {
            "elicitation/create" => "elicitation",
            "sampling/createMessage" => "sampling",
            "roots/list" => "roots",
            other => return Err(bad(&format!("input request {key:?} asks for {other:?}"))),
        };
        if capabilities.get(capability).is_none() {
            return Err(InputError::Missing {
                method: method.to_owned(),
                capability,
            });
        }
    }
    Ok(InputRequired { requests, state })
}

impl Translation {
    /// The client capabilities the client declared in its `initialize`.
    pub(crate) fn capabilities(&self) -> &Value {
        self.meta
            .get(META_CLIENT_CAPABILITIES)
            .unwrap_or(&Value::Null)
    }
}

/// The original request again, with the client's answers and the server's state (echoed
/// as the server wrote it). Earlier rounds' `inputResponses` and `requestState` are
/// replaced.
pub(crate) fn reissue(
    original: &[u8],
    responses: Map<String, Value>,
    state: Option<&RawValue>,
) -> Option<Bytes> {
    let mut msg: Value = serde_json::from_slice(original).ok()?;
    let params = msg.get_mut("params")?.as_object_mut()?;
    params.remove("requestState");
    params.remove("inputResponses");
    if !responses.is_empty() {
        params.insert("inputResponses".into(), Value::Object(responses));
    }
    let mut text = serde_json::to_string(&msg).ok()?;
    if let Some(state) = state {
        // Spliced in as raw text, so the state goes back exactly as it came.
        let params_end = params_close(&text)?;
        let sep = if text[..params_end].ends_with('{') {
            ""
        } else {
            ","
        };
        text.insert_str(
            params_end,
            &format!("{sep}\"requestState\":{}", state.get()),
        );
    }
    Some(Bytes::from(text))
}

/// The byte offset of the `}` that closes the top-level `params` object in compact JSON.
fn params_close(text: &str) -> Option<usize> {
    let start = text.find("\"params\":{")? + "\"params\":".len();
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for (i, c) in text[start..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_str => escaped = true,
            '"' => in_str = !in_str,
            '{' | '[' if !in_str => depth += 1,
            '}' | ']' if !in_str => {
                depth -= 1;
                if depth == 0 {
                    return Some(start + i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::{Parsed, parse};

    const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"elicitation":{}},"clientInfo":{"name":"c","version":"1"}}}"#;

    fn id(s: &str) -> IdKey {
        IdKey::from_raw(&serde_json::value::RawValue::from_string(s.to_owned()).unwrap())
    }

    fn single(text: &str) -> Message<'_> {
        match parse(text).unwrap() {
            Parsed::Single(m) => m,
            Parsed::Batch(_) => panic!("not a batch"),
        }
    }

    #[test]
    fn meta_comes_from_the_clients_initialize() {
        let t = Translation::from_initialize(INIT.as_bytes(), MODERN_VERSION).unwrap();
        assert_eq!(t.meta[META_PROTOCOL_VERSION], "2026-07-28");
        assert_eq!(t.meta[META_CLIENT_INFO], json!({"name":"c","version":"1"}));
        assert_eq!(t.meta[META_CLIENT_CAPABILITIES], json!({"elicitation":{}}));
        let discover: Value = serde_json::from_slice(&t.discover("d")).unwrap();
        assert_eq!(discover["id"], "d");
        assert_eq!(discover["method"], "server/discover");
        assert_eq!(
            discover["params"]["_meta"][META_PROTOCOL_VERSION],
            "2026-07-28"
        );
    }

    #[test]
    fn stamping_keeps_the_clients_own_meta() {
        let t = Translation::from_initialize(INIT.as_bytes(), MODERN_VERSION).unwrap();
        let stamped = t
            .stamp(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":7}}}"#)
            .unwrap();
        let v: Value = serde_json::from_slice(&stamped).unwrap();
        assert_eq!(v["params"]["_meta"]["progressToken"], 7);
        assert_eq!(v["params"]["_meta"][META_PROTOCOL_VERSION], "2026-07-28");
        assert_eq!(v["params"]["name"], "x");
        let bare = t
            .stamp(r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#)
            .unwrap();
        let v: Value = serde_json::from_slice(&bare).unwrap();
        assert_eq!(v["params"]["_meta"][META_CLIENT_INFO]["name"], "c");
    }

    #[test]
    fn initialized_ping_and_set_level_are_answered_here() {
        let t = Translation::from_initialize(INIT.as_bytes(), MODERN_VERSION).unwrap();
        let local = |text: &str| local(&single(text), &t);
        assert_eq!(
            local(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Local::Drop
        );
        assert_eq!(
            local(r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#),
            Local::Reply(Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":"p","result":{}}"#
            ))
        );
        assert_eq!(
            local(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            Local::Forward
        );
        assert_eq!(
            local(
                r#"{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"debug"}}"#
            ),
            Local::Reply(Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":2,"result":{}}"#
            ))
        );
        let stamped = t
            .stamp(r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#)
            .unwrap();
        let v: Value = serde_json::from_slice(&stamped).unwrap();
        assert_eq!(v["params"]["_meta"][META_LOG_LEVEL], "debug");
        assert_eq!(
            local(r#"{"jsonrpc":"2.0","id":"late","result":{}}"#),
            Local::Drop
        );
        let bad = local(r#"{"jsonrpc":"2.0","id":4,"method":"logging/setLevel","params":{}}"#);
        assert!(
            matches!(bad, Local::Reply(l) if l.starts_with(br#"{"jsonrpc":"2.0","id":4,"error""#))
        );
    }

    #[test]
    fn the_listen_follows_the_announced_changes_and_the_subscriptions() {
        let t = Translation::from_initialize(INIT.as_bytes(), MODERN_VERSION).unwrap();
        assert!(t.listen_request("l").is_none(), "nothing to listen to");
        t.set_server_capabilities(json!({"tools":{"listChanged":true},"prompts":{}}));
        let v: Value = serde_json::from_slice(&t.listen_request("l").unwrap()).unwrap();
        assert_eq!(v["method"], "subscriptions/listen");
        assert_eq!(
            v["params"]["notifications"],
            json!({"toolsListChanged":true})
        );
        assert_eq!(v["params"]["_meta"][META_PROTOCOL_VERSION], "2026-07-28");
        assert!(t.subscribe("file:///a", true));
        assert!(!t.subscribe("file:///a", true));
        let v: Value = serde_json::from_slice(&t.listen_request("l").unwrap()).unwrap();
        assert_eq!(
            v["params"]["notifications"]["resourceSubscriptions"],
            json!(["file:///a"])
        );
        assert!(t.subscribe("file:///a", false));
        let sub = r#"{"jsonrpc":"2.0","id":5,"method":"resources/subscribe","params":{"uri":"u"}}"#;
        assert!(
            matches!(local(&single(sub), &t), Local::Subscribe { on: true, ref uri, .. } if uri == "u")
        );
    }

    #[test]
    fn list_results_are_reused_while_fresh_and_dropped_on_change() {
        let t = Translation::from_initialize(INIT.as_bytes(), MODERN_VERSION).unwrap();
        let first = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
        let page2 = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"cursor":"c"}}"#;
        assert!(t.cached("tools/list", first).is_none());
        t.remember("tools/list", first, br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[],"ttlMs":60000,"cacheScope":"private"}}"#);
        assert_eq!(t.cached("tools/list", first).unwrap()["ttlMs"], 60000);
        assert!(t.cached("tools/list", page2).is_none(), "per cursor");
        t.remember(
            "tools/list",
            page2,
            br#"{"jsonrpc":"2.0","id":2,"result":{"tools":[],"ttlMs":0}}"#,
        );
        assert!(
            t.cached("tools/list", page2).is_none(),
            "ttlMs 0: not cached"
        );
        t.remember(
            "prompts/list",
            first,
            br#"{"jsonrpc":"2.0","id":1,"result":{"prompts":[],"ttlMs":60000}}"#,
        );
        t.notified("notifications/tools/list_changed");
        assert!(t.cached("tools/list", first).is_none());
        assert!(
            t.cached("prompts/list", first).is_some(),
            "other lists stay"
        );
        assert!(t.cached("tools/call", first).is_none());
    }

    #[test]
    fn the_initialize_answer_uses_discover_and_the_requested_version() {
        let discover = json!({"supportedVersions":["2026-07-28"],"capabilities":{"tools":{}},
            "serverInfo":{"name":"s","version":"2"},"instructions":"Be nice"});
        let v: Value =
            serde_json::from_slice(&initialize_answer(&id("0"), Some("2025-06-18"), &discover))
                .unwrap();
        assert_eq!(v["id"], 0);
        assert_eq!(v["result"]["protocolVersion"], "2025-06-18");
        assert_eq!(v["result"]["serverInfo"]["name"], "s");
        assert_eq!(v["result"]["capabilities"], json!({"tools":{}}));
        assert_eq!(v["result"]["instructions"], "Be nice");
        let v: Value =
            serde_json::from_slice(&initialize_answer(&id("0"), Some("1999-01-01"), &discover))
                .unwrap();
        assert_eq!(v["result"]["protocolVersion"], "2025-11-25");
        // As the Python SDK's server answers: the server info in `_meta`.
        let sdk = json!({"capabilities":{},"resultType":"complete","supportedVersions":["2026-07-28"],
            "_meta":{"io.modelcontextprotocol/serverInfo":{"name":"py","version":"1.0.0"}}});
        let v: Value = serde_json::from_slice(&initialize_answer(&id("0"), None, &sdk)).unwrap();
        assert_eq!(
            v["result"]["serverInfo"],
            json!({"name":"py","version":"1.0.0"})
        );
    }

    #[test]
    fn a_refusal_names_the_versions() {
        let refusal = br#"{"jsonrpc":"2.0","id":0,"error":{"code":-32022,"message":"Unsupported protocol version","data":{"supported":["2026-07-28"]}}}"#;
        assert_eq!(
            refused_versions(refusal),
            Some(vec!["2026-07-28".to_owned()])
        );
        assert_eq!(
            refused_versions(br#"{"jsonrpc":"2.0","id":0,"result":{}}"#),
            None
        );
        assert_eq!(
            modern_version(&["2026-07-28".to_owned()]),
            Some(MODERN_VERSION)
        );
        assert_eq!(modern_version(&[]), Some(MODERN_VERSION));
        assert_eq!(modern_version(&["2030-01-01".to_owned()]), None);
    }

    #[test]
    fn input_required_results_are_read_and_checked() {
        let caps = json!({"elicitation":{}});
        let ok = br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required","inputRequests":{"name":{"method":"elicitation/create","params":{"message":"Name?"}}},"requestState":"s\u00e9-1"}}"#;
        let ir = input_required(ok, &caps, 1000).unwrap().unwrap();
        assert_eq!(ir.requests[0].0, "name");
        assert_eq!(ir.state.unwrap().get(), r#""s\u00e9-1""#);
        assert!(
            input_required(
                br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete"}}"#,
                &caps,
                1000
            )
            .is_none()
        );
        assert!(input_required(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#, &caps, 1000).is_none());
        let sampling = br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required","inputRequests":{"s":{"method":"sampling/createMessage","params":{}}}}}"#;
        let e = input_required(sampling, &caps, 1000).unwrap().unwrap_err();
        assert_eq!(
            e,
            InputError::Missing {
                method: "sampling/createMessage".into(),
                capability: "sampling"
            }
        );
        assert!(e.to_string().contains("\"sampling\" capability"));
        for bad in [
            &br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required"}}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required","inputRequests":[1]}}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required","inputRequests":{"k":{"params":{}}}}}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required","requestState":7}}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required","requestState":"0123456789"}}"#,
        ] {
            assert!(matches!(input_required(bad, &caps, 8), Some(Err(InputError::Malformed(_)))), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn reissue_carries_the_answers_and_echoes_the_state_exactly() {
        let original = br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"ask","arguments":{"q":"}"},"requestState":"old"}}"#;
        let state = RawValue::from_string(r#""s\u00e9\/1""#.to_owned()).unwrap();
        let mut answers = Map::new();
        answers.insert(
            "name".into(),
            json!({"action":"accept","content":{"name":"Ada"}}),
        );
        let body = reissue(original, answers, Some(&state)).unwrap();
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.contains(r#""requestState":"s\u00e9\/1""#), "{text}");
        let v: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            v["params"]["inputResponses"]["name"]["content"]["name"],
            "Ada"
        );
        assert_eq!(v["params"]["arguments"]["q"], "}");
        assert_eq!(v["id"], 3);
        let bare = br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{}}"#;
        let body = reissue(bare, Map::new(), Some(&state)).unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"id":3,"jsonrpc":"2.0","method":"tools/call","params":{"requestState":"s\u00e9\/1"}}"#
        );
    }
}
