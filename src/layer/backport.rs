//! Era translation for a modern (2026-07-28) client in front of a legacy-only server
//! (M-BACKPORT), the other direction of [`super::translate`]. The proxy opens a legacy
//! session on the client's behalf; this file holds what that translation knows and the
//! pure message rewrites. The proxy loop (`proxy/backport.rs`) drives it.
//!
//! As a stage it completes every result a modern client gets from the legacy server:
//! `resultType`, and `ttlMs`/`cacheScope` on cacheable results, which the 2026-07-28
//! schema requires and a legacy server never writes.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::Stage;
use crate::jsonrpc::IdKey;
use crate::layer::translate::MODERN_VERSION;

/// The legacy revision asked for in the initialize made for the client.
pub(crate) const LEGACY_VERSION: &str = "2025-11-25";
/// The `_meta` prefix of the modern era's own entries, which a legacy server must not see.
const META_PREFIX: &str = "io.modelcontextprotocol/";
const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// Results that carry `ttlMs` and `cacheScope` (the schema's `CacheableResult`).
const CACHEABLE: [&str; 6] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "server/discover",
];

/// What the proxy knows of the legacy server it serves a modern client from.
#[derive(Default, Debug)]
pub(crate) struct Backport {
    /// Set once a modern client is served this way; only then do results need completing.
    active: AtomicBool,
    /// The legacy `initialize` result: server info, capabilities, instructions.
    init: Mutex<Value>,
    /// The level last set with `logging/setLevel`.
    log_level: Mutex<Option<String>>,
    /// Open `subscriptions/listen` requests, by their id, with what each honours.
    listens: Mutex<Vec<(IdKey, Filter)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Backport {
    pub(crate) fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    pub(crate) fn activate(&self) {
        self.active.store(true, Ordering::Relaxed);
    }

    /// Keep the result of the initialize made for the client (`answer`, the response).
    pub(crate) fn initialized(&self, answer: &[u8]) {
        if let Some(result) = serde_json::from_slice::<Value>(answer)
            .ok()
            .and_then(|mut v| v.get_mut("result").map(Value::take))
        {
            *lock(&self.init) = result;
        }
    }

    fn capabilities(&self) -> Value {
        lock(&self.init)
            .get("capabilities")
            .cloned()
            .unwrap_or_default()
    }

    /// Whether the server declared `logging`, so `logging/setLevel` may be sent.
    pub(crate) fn logs(&self) -> bool {
        self.capabilities().get("logging").is_some()
    }

    /// Record `level` as the server's; true when it differs from the one set before.
    pub(crate) fn set_log_level(&self, level: &str) -> bool {
        let mut current = lock(&self.log_level);
        if current.as_deref() == Some(level) {
            return false;
        }
        *current = Some(level.to_owned());
        true
    }

    /// Forget the level (its `logging/setLevel` failed).
    pub(crate) fn unset_log_level(&self) {
        *lock(&self.log_level) = None;
    }

    /// The answer to `server/discover`, from the legacy initialize result.
    pub(crate) fn discover_answer(&self, id: &IdKey) -> Bytes {
        let init = lock(&self.init).clone();
        let mut result = json!({
            "resultType": "complete",
            "supportedVersions": [MODERN_VERSION],
            "capabilities": init.get("capabilities").cloned().unwrap_or_else(|| json!({})),
            "_meta": { META_SERVER_INFO: init.get("serverInfo").cloned()
                .unwrap_or_else(|| json!({"name": "unknown", "version": ""})) },
            "ttlMs": 0,
            "cacheScope": "private",
        });
        if let Some(instructions) = init.get("instructions") {
            result["instructions"] = instructions.clone();
        }
        result_line(id, &result)
    }

    /// What the server can honour of a listen `filter`: list changes it announces, and
    /// resource updates when it supports subscriptions.
    pub(crate) fn honoured(&self, filter: &Filter) -> Filter {
        let caps = self.capabilities();
        let on =
            |kind: &str, flag: &str| caps.pointer(&format!("/{kind}/{flag}")) == Some(&json!(true));
        Filter {
            tools: filter.tools && on("tools", "listChanged"),
            prompts: filter.prompts && on("prompts", "listChanged"),
            resources: filter.resources && on("resources", "listChanged"),
            uris: if on("resources", "subscribe") {
                filter.uris.clone()
            } else {
                BTreeSet::new()
            },
        }
    }

    /// Open a listen. Returns the URIs no listen subscribed to before (to subscribe now).
    pub(crate) fn listen(&self, id: IdKey, filter: Filter) -> Vec<String> {
        let mut listens = lock(&self.listens);
        let fresh = filter
            .uris
            .iter()
            .filter(|u| !listens.iter().any(|(_, f)| f.uris.contains(*u)))
            .cloned()
            .collect();
        listens.push((id, filter));
        fresh
    }

    /// Close a listen. Returns the URIs no listen wants any more (to unsubscribe).
    pub(crate) fn unlisten(&self, id: &IdKey) -> Vec<String> {
        let mut listens = lock(&self.listens);
        let Some(i) = listens.iter().position(|(l, _)| l == id) else {
            return Vec::new();
        };
        let (_, closed) = listens.swap_remove(i);
        closed
            .uris
            .into_iter()
            .filter(|u| !listens.iter().any(|(_, f)| f.uris.contains(u)))
            .collect()
    }

    /// A server notification from the session's GET stream, once for each listen that
    /// asked for it, stamped with that listen's id. Nothing else reaches a modern client
    /// from there: the 2026-07-28 revision has no stream outside a request.
    pub(crate) fn for_listens(&self, notification: &[u8]) -> Vec<Bytes> {
        let Ok(msg) = serde_json::from_slice::<Value>(notification) else {
            return Vec::new();
        };
        let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
        let uri = msg.pointer("/params/uri").and_then(Value::as_str);
        lock(&self.listens)
            .iter()
            .filter(|(_, f)| f.wants(method, uri))
            .filter_map(|(id, _)| stamp_subscription(&msg, id))
            .collect()
    }
}

/// The stage: results a modern client gets from the legacy server carry the fields the
/// 2026-07-28 schema requires.
impl Stage for std::sync::Arc<Backport> {
    fn wants_result(&self, _method: &str, modern: bool) -> bool {
        modern && self.active()
    }

    fn on_result(&self, method: &str, _modern: bool, result: &mut Value) -> bool {
        complete(method, result)
    }
}

/// Fill in `resultType` ("complete"), and on cacheable results `ttlMs` 0 and
/// `cacheScope` "private": "do not reuse", the narrowest meaning. Returns whether
/// anything was added.
pub(crate) fn complete(method: &str, result: &mut Value) -> bool {
    let Some(obj) = result.as_object_mut() else {
        return false;
    };
    let mut changed = false;
    let mut fill = |key: &str, value: Value| {
        if !obj.contains_key(key) {
            obj.insert(key.to_owned(), value);
            changed = true;
        }
    };
    fill("resultType", json!("complete"));
    if CACHEABLE.contains(&method) {
        fill("ttlMs", json!(0));
        fill("cacheScope", json!("private"));
    }
    changed
}

/// The `initialize` the proxy sends for a modern client, with id `id` (JSON), made from
/// the client info and capabilities in the `_meta` of its first request.
pub(crate) fn initialize_request(id: &str, first: &[u8]) -> Bytes {
    let meta = serde_json::from_slice::<Value>(first)
        .ok()
        .and_then(|mut v| v.pointer_mut("/params/_meta").map(Value::take))
        .unwrap_or_default();
    let client_info = meta
        .get(META_CLIENT_INFO)
        .filter(|v| v.get("name").is_some())
        .cloned()
        .unwrap_or_else(
            || json!({"name": "clerk-mcp-server", "version": env!("CARGO_PKG_VERSION")}),
        );
    let capabilities = meta
        .get(META_CLIENT_CAPABILITIES)
        .filter(|v| v.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}));
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"initialize","params":{}}}"#,
        json!({"protocolVersion": LEGACY_VERSION, "capabilities": capabilities, "clientInfo": client_info})
    );
    Bytes::from(body)
}

/// A modern client message made legacy, with what was taken out of it.
#[derive(Debug)]
pub(crate) struct Legacy {
    /// The message without the modern era's `_meta` entries and MRTR fields.
    pub(crate) body: Bytes,
    pub(crate) method: String,
    /// `_meta` logLevel: the log messages this request wants, and their level.
    pub(crate) log_level: Option<String>,
    /// The client capabilities it declared.
    pub(crate) capabilities: Value,
    /// A re-issued request: the `requestState` the proxy gave, and the client's answers.
    pub(crate) resume: Option<(String, Map<String, Value>)>,
    /// `subscriptions/listen`'s filter.
    pub(crate) params: Value,
}

/// Take a modern message apart for the legacy server. `None` when it is not a JSON
/// object (the proxy checked it is JSON-RPC already).
pub(crate) fn strip(raw: &[u8]) -> Option<Legacy> {
    let mut msg: Value = serde_json::from_slice(raw).ok()?;
    let method = msg.get("method").and_then(Value::as_str)?.to_owned();
    let mut log_level = None;
    let mut capabilities = json!({});
    let mut resume = None;
    let mut params_copy = Value::Null;
    if let Some(params) = msg.get_mut("params").and_then(Value::as_object_mut) {
        if let Some(Value::Object(meta)) = params.get_mut("_meta") {
            log_level = meta
                .get(META_LOG_LEVEL)
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(c) = meta.get(META_CLIENT_CAPABILITIES) {
                capabilities = c.clone();
            }
            meta.retain(|k, _| !k.starts_with(META_PREFIX));
            if meta.is_empty() {
                params.remove("_meta");
            }
        }
        let responses = params.remove("inputResponses");
        if let Some(state) = params.remove("requestState") {
            let state = state.as_str().unwrap_or_default().to_owned();
            let responses = match responses {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            resume = Some((state, responses));
        }
        if method == "subscriptions/listen" {
            params_copy = Value::Object(params.clone());
        }
    }
    Some(Legacy {
        body: Bytes::from(serde_json::to_vec(&msg).ok()?),
        method,
        log_level,
        capabilities,
        resume,
        params: params_copy,
    })
}

/// What a `subscriptions/listen` asks to hear.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    pub(crate) tools: bool,
    pub(crate) prompts: bool,
    pub(crate) resources: bool,
    pub(crate) uris: BTreeSet<String>,
}

impl Filter {
    /// From the listen's params; `Err` names what is wrong.
    pub(crate) fn from_params(params: &Value) -> Result<Filter, String> {
        let n = params
            .get("notifications")
            .ok_or("subscriptions/listen needs params.notifications")?;
        let flag = |k: &str| n.get(k).and_then(Value::as_bool).unwrap_or(false);
        let uris = match n.get("resourceSubscriptions") {
            None => BTreeSet::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|u| u.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or("resourceSubscriptions must be an array of strings")?,
            Some(_) => return Err("resourceSubscriptions must be an array of strings".into()),
        };
        Ok(Filter {
            tools: flag("toolsListChanged"),
            prompts: flag("promptsListChanged"),
            resources: flag("resourcesListChanged"),
            uris,
        })
    }

    fn wants(&self, method: &str, uri: Option<&str>) -> bool {
        match method {
            "notifications/tools/list_changed" => self.tools,
            "notifications/prompts/list_changed" => self.prompts,
            "notifications/resources/list_changed" => self.resources,
            "notifications/resources/updated" => uri.is_some_and(|u| self.uris.contains(u)),
            _ => false,
        }
    }

    fn to_json(&self) -> Value {
        let mut n = Map::new();
        for (on, key) in [
            (self.tools, "toolsListChanged"),
            (self.prompts, "promptsListChanged"),
            (self.resources, "resourcesListChanged"),
        ] {
            if on {
                n.insert(key.into(), json!(true));
            }
        }
        if !self.uris.is_empty() {
            n.insert("resourceSubscriptions".into(), json!(self.uris));
        }
        Value::Object(n)
    }
}

/// The acknowledgement a listen opens with: what is honoured, under the listen's id.
pub(crate) fn acknowledged(id: &IdKey, honoured: &Filter) -> Bytes {
    let id: Value = serde_json::from_str(id.as_json()).unwrap_or_default();
    let msg = json!({"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged",
        "params":{"_meta":{META_SUBSCRIPTION_ID: id},"notifications": honoured.to_json()}});
    Bytes::from(msg.to_string())
}

fn stamp_subscription(msg: &Value, id: &IdKey) -> Option<Bytes> {
    let mut msg = msg.clone();
    let id: Value = serde_json::from_str(id.as_json()).ok()?;
    super::meta_mut(&mut msg)?.insert(META_SUBSCRIPTION_ID.into(), id);
    serde_json::to_vec(&msg).ok().map(Bytes::from)
}

/// The capability a client must have declared for a server request of `method`, when
/// it is one the 2026-07-28 revision asks through `inputRequests`.
pub(crate) fn input_capability(method: &str) -> Option<&'static str> {
    match method {
        "elicitation/create" => Some("elicitation"),
        "sampling/createMessage" => Some("sampling"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

/// An `input_required` result for `id`: the server's questions, and the proxy's state.
pub(crate) fn input_required(id: &IdKey, requests: Map<String, Value>, state: &str) -> Bytes {
    result_line(
        id,
        &json!({"resultType":"input_required","inputRequests": requests,"requestState": state}),
    )
}

/// The server's final answer under the id the client used last (a re-issued request
/// has an id of its own).
pub(crate) fn with_id(answer: &[u8], id: &IdKey) -> Option<Bytes> {
    let mut msg: Value = serde_json::from_slice(answer).ok()?;
    msg["id"] = serde_json::from_str(id.as_json()).ok()?;
    serde_json::to_vec(&msg).ok().map(Bytes::from)
}

fn result_line(id: &IdKey, result: &Value) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{}}}"#,
        id.as_json(),
        result
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> IdKey {
        IdKey::from_raw(&serde_json::value::RawValue::from_string(s.to_owned()).unwrap())
    }

    const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","arguments":{"a":1},"_meta":{"progressToken":"p","io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"py","version":"2"},"io.modelcontextprotocol/clientCapabilities":{"elicitation":{}},"io.modelcontextprotocol/logLevel":"debug"}}}"#;

    #[test]
    fn stripping_keeps_the_clients_own_meta_and_takes_the_eras() {
        let l = strip(CALL.as_bytes()).unwrap();
        let v: Value = serde_json::from_slice(&l.body).unwrap();
        assert_eq!(v["params"]["_meta"], json!({"progressToken":"p"}));
        assert_eq!(v["params"]["arguments"], json!({"a":1}));
        assert_eq!(v["id"], 7);
        assert_eq!(l.log_level.as_deref(), Some("debug"));
        assert_eq!(l.capabilities, json!({"elicitation":{}}));
        assert!(l.resume.is_none());
        let bare = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        let v: Value = serde_json::from_slice(&strip(bare.as_bytes()).unwrap().body).unwrap();
        assert_eq!(v["params"], json!({}), "an emptied _meta goes");
        let again = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","inputResponses":{"k":{"action":"decline"}},"requestState":"s1"}}"#;
        let l = strip(again.as_bytes()).unwrap();
        let (state, answers) = l.resume.unwrap();
        assert_eq!(state, "s1");
        assert_eq!(answers["k"]["action"], "decline");
        let v: Value = serde_json::from_slice(&l.body).unwrap();
        assert_eq!(v["params"], json!({"name":"x"}));
    }

    #[test]
    fn the_initialize_comes_from_the_first_requests_meta() {
        let v: Value =
            serde_json::from_slice(&initialize_request("\"i\"", CALL.as_bytes())).unwrap();
        assert_eq!(v["id"], "i");
        assert_eq!(v["method"], "initialize");
        assert_eq!(v["params"]["protocolVersion"], LEGACY_VERSION);
        assert_eq!(
            v["params"]["clientInfo"],
            json!({"name":"py","version":"2"})
        );
        assert_eq!(v["params"]["capabilities"], json!({"elicitation":{}}));
        let v: Value = serde_json::from_slice(&initialize_request(
            "1",
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        ))
        .unwrap();
        assert_eq!(v["params"]["clientInfo"]["name"], "clerk-mcp-server");
        assert_eq!(v["params"]["capabilities"], json!({}));
    }

    #[test]
    fn discover_is_answered_from_the_initialize_result() {
        let b = Backport::default();
        b.initialized(br#"{"jsonrpc":"2.0","id":"i","result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{"listChanged":true},"logging":{}},"serverInfo":{"name":"everything","version":"2"},"instructions":"Hi"}}"#);
        let v: Value = serde_json::from_slice(&b.discover_answer(&id("3"))).unwrap();
        let r = &v["result"];
        assert_eq!(v["id"], 3);
        assert_eq!(r["resultType"], "complete");
        assert_eq!(r["supportedVersions"], json!(["2026-07-28"]));
        assert_eq!(r["capabilities"]["tools"]["listChanged"], true);
        assert_eq!(r["_meta"][META_SERVER_INFO]["name"], "everything");
        assert_eq!(r["instructions"], "Hi");
        assert_eq!(
            (r["ttlMs"].clone(), r["cacheScope"].clone()),
            (json!(0), json!("private"))
        );
        assert!(b.logs());
    }

    #[test]
    fn results_are_completed_only_where_fields_are_missing() {
        let mut list = json!({"tools":[]});
        assert!(complete("tools/list", &mut list));
        assert_eq!(
            list,
            json!({"tools":[],"resultType":"complete","ttlMs":0,"cacheScope":"private"})
        );
        let mut call = json!({"content":[]});
        assert!(complete("tools/call", &mut call));
        assert_eq!(call, json!({"content":[],"resultType":"complete"}));
        let mut done =
            json!({"resultType":"complete","contents":[],"ttlMs":5,"cacheScope":"public"});
        assert!(!complete("resources/read", &mut done));
        let b = std::sync::Arc::new(Backport::default());
        assert!(
            !b.wants_result("tools/list", true),
            "inactive: nothing to do"
        );
        b.activate();
        assert!(b.wants_result("tools/list", true));
        assert!(
            !b.wants_result("tools/list", false),
            "a legacy client's results stay"
        );
    }

    #[test]
    fn listens_hear_what_they_asked_for_and_the_server_honours() {
        let b = Backport::default();
        b.initialized(br#"{"jsonrpc":"2.0","id":1,"result":{"capabilities":{"tools":{"listChanged":true},"resources":{"subscribe":true}}}}"#);
        let asked = Filter::from_params(&json!({"notifications":{"toolsListChanged":true,"promptsListChanged":true,"resourceSubscriptions":["a://1"]}})).unwrap();
        let honoured = b.honoured(&asked);
        assert!(honoured.tools && !honoured.prompts);
        assert_eq!(
            b.listen(id("\"l1\""), honoured.clone()),
            vec!["a://1".to_owned()]
        );
        assert!(b.listen(id("2"), honoured).is_empty(), "already subscribed");
        let ack: Value =
            serde_json::from_slice(&acknowledged(&id("\"l1\""), &b.honoured(&asked))).unwrap();
        assert_eq!(
            ack["params"]["notifications"],
            json!({"toolsListChanged":true,"resourceSubscriptions":["a://1"]})
        );
        assert_eq!(ack["params"]["_meta"][META_SUBSCRIPTION_ID], "l1");
        let out = b.for_listens(br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"a://1"}}"#);
        assert_eq!(out.len(), 2);
        let v: Value = serde_json::from_slice(&out[0]).unwrap();
        assert_eq!(v["params"]["_meta"][META_SUBSCRIPTION_ID], "l1");
        assert!(
            b.for_listens(br#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#)
                .is_empty()
        );
        assert!(b.for_listens(br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"a://2"}}"#).is_empty());
        assert!(
            b.unlisten(&id("\"l1\"")).is_empty(),
            "the other listen still wants a://1"
        );
        assert_eq!(b.unlisten(&id("2")), vec!["a://1".to_owned()]);
        assert!(Filter::from_params(&json!({})).is_err());
        assert!(
            Filter::from_params(&json!({"notifications":{"resourceSubscriptions":[1]}})).is_err()
        );
    }

    #[test]
    fn answers_take_the_latest_id_and_questions_become_input_required() {
        let a = with_id(
            br#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#,
            &id("\"b\""),
        )
        .unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&a).unwrap()["id"], "b");
        let mut q = Map::new();
        q.insert(
            "input-1".into(),
            json!({"method":"elicitation/create","params":{"message":"?"}}),
        );
        let v: Value = serde_json::from_slice(&input_required(&id("9"), q, "st")).unwrap();
        assert_eq!(v["result"]["resultType"], "input_required");
        assert_eq!(v["result"]["requestState"], "st");
        assert_eq!(
            v["result"]["inputRequests"]["input-1"]["method"],
            "elicitation/create"
        );
        assert_eq!(input_capability("roots/list"), Some("roots"));
        assert_eq!(input_capability("ping"), None);
    }
}
