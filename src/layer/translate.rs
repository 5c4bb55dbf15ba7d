//! Era translation for a legacy (initialize-based) client in front of a modern-only
//! (2026-07-28) server (M-BRIDGE). The client's `initialize` is answered here from the
//! server's `server/discover`; every later request is stamped with the per-request
//! `_meta` the modern era requires; `notifications/initialized` and `ping` are answered
//! here. Pure functions over messages: the proxy loop decides when they apply.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::jsonrpc::{IdKey, META_PROTOCOL_VERSION, Message};

const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
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
        let obj = msg.as_object_mut()?;
        let params = obj.entry("params").or_insert_with(|| json!({}));
        let meta = params
            .as_object_mut()?
            .entry("_meta")
            .or_insert_with(|| json!({}));
        let meta = meta.as_object_mut()?;
        for (k, v) in &self.meta {
            meta.insert(k.clone(), v.clone());
        }
        serde_json::to_vec(&msg).ok().map(Bytes::from)
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
}

pub(crate) fn local(m: &Message<'_>) -> Local {
    match (m.method(), &m.id) {
        ("notifications/initialized", _) => Local::Drop,
        ("ping", Some(id)) => Local::Reply(result_line(id, &json!({}))),
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
        "serverInfo": discover.get("serverInfo").cloned()
            .unwrap_or_else(|| json!({"name": "unknown", "version": ""})),
    });
    if let Some(instructions) = discover.get("instructions") {
        result["instructions"] = instructions.clone();
    }
    result_line(id, &result)
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
    fn initialized_and_ping_are_answered_here() {
        assert_eq!(
            local(&single(
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
            )),
            Local::Drop
        );
        assert_eq!(
            local(&single(r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#)),
            Local::Reply(Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":"p","result":{}}"#
            ))
        );
        assert_eq!(
            local(&single(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)),
            Local::Forward
        );
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
}
