//! Request metadata headers of the modern revision 2026-07-28 (M-HEADERS, M-PARAM-HDR,
//! M-PARAM-INVALID): `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`, and the base64 sentinel
//! encoding. The `x-mcp-header` annotations are learned from the `tools/list` results
//! the proxy forwards; invalid tools are removed from those results.

use std::collections::HashMap;
use std::sync::RwLock;

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::remote::http::PROTOCOL_VERSION;

const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
const ANNOTATION: &str = "x-mcp-header";

/// Encode a value for a header: as-is when it is plain visible ASCII (inner spaces and
/// tabs allowed) without edge whitespace and not sentinel-shaped, else the sentinel form.
pub(crate) fn encode_value(value: &str) -> HeaderValue {
    let visible = value
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) || b == b' ' || b == b'\t');
    let edge_space = value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']);
    let sentinel_shaped = value.starts_with("=?base64?") && value.ends_with("?=");
    let plain = visible && !edge_space && !sentinel_shaped;
    let text = if plain {
        value.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
        )
    };
    HeaderValue::from_str(&text).expect("encoded header values are visible ASCII")
}

/// One annotated tool argument.
#[derive(Clone, Debug)]
struct ParamHeader {
    header: HeaderName,
    path: Vec<String>,
}

/// What the proxy has learned about tools' `x-mcp-header` annotations.
#[derive(Default)]
pub(crate) struct ToolHeaders {
    tools: RwLock<HashMap<String, Vec<ParamHeader>>>,
}

impl ToolHeaders {
    /// Headers for one modern request: protocol version, method, name, params.
    pub(crate) fn headers_for(&self, version: &str, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(PROTOCOL_VERSION, encode_value(version));
        #[derive(serde::Deserialize)]
        struct Req<'a> {
            #[serde(borrow, default)]
            method: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow, default)]
            params: Option<&'a RawValue>,
        }
        let Ok(req) = serde_json::from_slice::<Req<'_>>(body) else {
            return headers;
        };
        let Some(method) = req.method else {
            return headers;
        };
        headers.insert(MCP_METHOD, encode_value(&method));
        let params = crate::jsonrpc::ParamsProbe::of(req.params);
        let name = match &*method {
            "tools/call" | "prompts/get" => params.name.as_deref(),
            "resources/read" => params.uri.as_deref(),
            _ => None,
        };
        if let Some(name) = name {
            headers.insert(MCP_NAME, encode_value(name));
        }
        if method == "tools/call"
            && let Some(name) = params.name.as_deref()
        {
            let tools = self.tools.read().unwrap_or_else(|p| p.into_inner());
            if let Some(params_headers) = tools.get(name) {
                let args: Option<Value> = params
                    .arguments
                    .and_then(|a| serde_json::from_str(a.get()).ok());
                for p in params_headers {
                    let mut v = args.as_ref();
                    for key in &p.path {
                        v = v.and_then(|v| v.get(key));
                    }
                    let text = match v {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Bool(b)) => b.to_string(),
                        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
                        _ => continue, // absent or null: omitted
                    };
                    headers.insert(p.header.clone(), encode_value(&text));
                }
            }
        }
        headers
    }

    /// Learn the annotations of one `tools/list` page and remove the tools whose
    /// annotations are invalid (M-PARAM-INVALID). Returns whether any was removed.
    pub(crate) fn learn(&self, tools: &mut Vec<Value>) -> bool {
        let mut removed = false;
        let mut learned = Vec::new();
        tools.retain(|tool| {
            let name = tool.get("name").and_then(Value::as_str).unwrap_or("");
            match tool
                .get("inputSchema")
                .map(annotations)
                .unwrap_or(Ok(Vec::new()))
            {
                Ok(headers) => {
                    learned.push((name.to_owned(), headers));
                    true
                }
                Err(why) => {
                    tracing::warn!(
                        tool = name,
                        "removed tool from tools/list: invalid x-mcp-header: {why}"
                    );
                    removed = true;
                    false
                }
            }
        });
        let mut map = self.tools.write().unwrap_or_else(|p| p.into_inner());
        for (name, headers) in learned {
            if headers.is_empty() {
                map.remove(&name);
            } else {
                map.insert(name, headers);
            }
        }
        removed
    }
}

/// Collect and validate a tool's `x-mcp-header` annotations (M-PARAM-INVALID).
fn annotations(schema: &Value) -> Result<Vec<ParamHeader>, String> {
    let mut out = Vec::new();
    walk(schema, Some(&mut Vec::new()), true, &mut out)?;
    let mut seen = std::collections::HashSet::new();
    for p in &out {
        if !seen.insert(p.header.as_str().to_owned()) {
            return Err(format!("duplicate header name {}", p.header));
        }
    }
    Ok(out)
}

/// `path` is `Some` while the node is statically reachable through `properties` alone.
fn walk(
    node: &Value,
    path: Option<&mut Vec<String>>,
    root: bool,
    out: &mut Vec<ParamHeader>,
) -> Result<(), String> {
    let Value::Object(map) = node else {
        if let Value::Array(items) = node {
            for item in items {
                walk(item, None, false, out)?;
            }
        }
        return Ok(());
    };
    let mut path = path;
    if let Some(annotation) = map.get(ANNOTATION) {
        let Some(p) = path.as_deref().filter(|_| !root) else {
            return Err("annotation on a schema not reachable through properties".into());
        };
        let name = annotation
            .as_str()
            .ok_or("the annotation is not a string")?;
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(format!("{name:?} is not a header token"));
        }
        if !primitive(map.get("type")) {
            return Err(format!(
                "{name:?} is on a property that is not a string, integer or boolean"
            ));
        }
        let header = HeaderName::from_bytes(format!("mcp-param-{name}").as_bytes())
            .map_err(|_| format!("{name:?} is not a header token"))?;
        out.push(ParamHeader {
            header,
            path: p.clone(),
        });
    }
    for (key, value) in map {
        match (key.as_str(), value) {
            (ANNOTATION, _) => {}
            ("properties", Value::Object(props)) => {
                for (prop, schema) in props {
                    match path.as_deref_mut() {
                        Some(p) => {
                            p.push(prop.clone());
                            walk(schema, Some(p), false, out)?;
                            p.pop();
                        }
                        None => walk(schema, None, false, out)?,
                    }
                }
            }
            (
                "$defs" | "definitions" | "patternProperties" | "dependentSchemas",
                Value::Object(m),
            ) => {
                for schema in m.values() {
                    walk(schema, None, false, out)?;
                }
            }
            ("enum" | "const" | "default" | "examples", _) => {}
            (_, v) => walk(v, None, false, out)?,
        }
    }
    Ok(())
}

fn primitive(ty: Option<&Value>) -> bool {
    let ok = |t: &str| matches!(t, "string" | "integer" | "boolean");
    match ty {
        Some(Value::String(t)) => ok(t),
        Some(Value::Array(ts)) => {
            let named: Vec<&str> = ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            !named.is_empty() && named.iter().all(|t| ok(t))
        }
        _ => false,
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sentinel_encoding_examples_from_the_spec() {
        // M-HEADERS: the table in the 2026-07-28 transport's "Value Encoding".
        assert_eq!(encode_value("us-west1"), "us-west1");
        assert_eq!(
            encode_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(encode_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(encode_value("line1\nline2"), "=?base64?bGluZTEKbGluZTI=?=");
        assert_eq!(
            encode_value("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
    }

    fn learn(th: &ToolHeaders, tools: Value) -> Vec<Value> {
        let mut tools = tools.as_array().unwrap().clone();
        th.learn(&mut tools);
        tools
    }

    #[test]
    fn invalid_annotations_remove_the_tool() {
        let th = ToolHeaders::default();
        let bad = |schema: Value| learn(&th, json!([{"name":"t","inputSchema":schema}])).is_empty();
        let prop = |p: Value| json!({"type":"object","properties":{"a":p}});
        assert!(bad(prop(json!({"type":"string","x-mcp-header":""}))));
        assert!(bad(prop(json!({"type":"string","x-mcp-header":"a b"}))));
        assert!(bad(prop(json!({"type":"number","x-mcp-header":"A"}))));
        assert!(bad(prop(json!({"type":"object","x-mcp-header":"A"}))));
        assert!(bad(json!({"type":"object","properties":{
            "a":{"type":"string","x-mcp-header":"Dup"},"b":{"type":"string","x-mcp-header":"dup"}}})));
        assert!(bad(
            json!({"type":"object","properties":{"a":{"type":"array","items":{"type":"string","x-mcp-header":"I"}}}})
        ));
        assert!(bad(
            json!({"type":"object","anyOf":[{"properties":{"a":{"type":"string","x-mcp-header":"A"}}}]})
        ));
        assert!(!bad(prop(json!({"type":"string","x-mcp-header":"Region"}))));
        assert!(!bad(
            json!({"type":"object","properties":{"o":{"type":"object","properties":{"n":{"type":"integer","x-mcp-header":"N"}}}}})
        ));
    }

    #[test]
    fn param_headers_follow_the_learned_paths() {
        let th = ToolHeaders::default();
        learn(
            &th,
            json!([{"name":"q","inputSchema":{"type":"object","properties":{
            "region":{"type":"string","x-mcp-header":"Region"},
            "o":{"type":"object","properties":{"n":{"type":"integer","x-mcp-header":"N"},"f":{"type":"boolean","x-mcp-header":"F"}}},
            "gone":{"type":"string","x-mcp-header":"Gone"}}}}]),
        );
        let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"q",
            "arguments":{"region":"Hello, 世界","o":{"n":-7,"f":true},"gone":null},
            "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}});
        let h = th.headers_for("2026-07-28", &serde_json::to_vec(&body).unwrap());
        assert_eq!(h["mcp-protocol-version"], "2026-07-28");
        assert_eq!(h["mcp-method"], "tools/call");
        assert_eq!(h["mcp-name"], "q");
        assert_eq!(h["mcp-param-region"], "=?base64?SGVsbG8sIOS4lueVjA==?=");
        assert_eq!(h["mcp-param-n"], "-7");
        assert_eq!(h["mcp-param-f"], "true");
        assert!(h.get("mcp-param-gone").is_none());
    }
}
