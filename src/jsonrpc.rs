//! JSON-RPC 2.0 message probing without building a full `serde_json::Value` tree.
//!
//! The forwarding path only needs a message's kind, id and method, so it deserializes
//! into borrowed fields and keeps the original bytes for forwarding. The scan still
//! validates the whole text, so nothing malformed reaches either side (S-FRAME).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

/// JSON-RPC error codes used by the proxy itself.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    /// Implementation-defined server error range: used for transport failures.
    pub const TRANSPORT_ERROR: i64 = -32000;
    /// 2026-07-28: the HTTP headers do not match the body.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// 2026-07-28: a capability the request needs was not declared.
    pub const MISSING_CLIENT_CAPABILITY: i64 = -32021;
    /// 2026-07-28: the server does not implement the requested protocol version.
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
}

/// The `_meta` key that marks a modern (2026-07-28+) request (M-ERA).
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
}

/// A request id in its exact JSON spelling, so `1` and `"1"` stay distinct.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdKey(Box<str>);

impl IdKey {
    pub fn from_raw(raw: &RawValue) -> Self {
        IdKey(raw.get().into())
    }
    /// The id as JSON text, ready to splice into a response.
    pub fn as_json(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for IdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(default)]
    result: Option<IgnoredAny>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// One probed JSON-RPC message, borrowing from the line it came from.
#[derive(Debug)]
pub struct Message<'a> {
    /// The message's own text (one element of a batch, or the whole line).
    pub raw: &'a str,
    pub kind: Kind,
    pub id: Option<IdKey>,
    pub method: Option<Cow<'a, str>>,
    pub params: Option<&'a RawValue>,
    /// Raw `error` member of a response.
    pub error: Option<&'a RawValue>,
}

impl Message<'_> {
    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("")
    }
}

/// Why a line is not a JSON-RPC message. Carries the id when it could be read, so the
/// error response can name the request (S-FRAME).
#[derive(Debug)]
pub enum Invalid {
    /// Not UTF-8 or not JSON: -32700 with `id: null`.
    Parse(String),
    /// JSON, but not a JSON-RPC 2.0 message: -32600.
    NotJsonRpc { id: Option<IdKey>, why: String },
}

impl Invalid {
    pub fn code(&self) -> i64 {
        match self {
            Invalid::Parse(_) => code::PARSE_ERROR,
            Invalid::NotJsonRpc { .. } => code::INVALID_REQUEST,
        }
    }
    pub fn id(&self) -> Option<&IdKey> {
        match self {
            Invalid::Parse(_) => None,
            Invalid::NotJsonRpc { id, .. } => id.as_ref(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Parse(why) => write!(f, "parse error: {why}"),
            Invalid::NotJsonRpc { why, .. } => write!(f, "invalid JSON-RPC message: {why}"),
        }
    }
}

/// The shape of one line: a single message or a batch (2025-03-26 only, S-BATCH-03).
pub enum Parsed<'a> {
    Single(Message<'a>),
    Batch(Vec<Message<'a>>),
}

/// Probe a line of text. The text must already be UTF-8 (see [`as_utf8`]).
pub fn parse(text: &str) -> Result<Parsed<'_>, Invalid> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<&RawValue> =
            serde_json::from_str(text).map_err(|e| Invalid::Parse(e.to_string()))?;
        if items.is_empty() {
            return Err(Invalid::NotJsonRpc {
                id: None,
                why: "empty batch".into(),
            });
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(parse_one(item.get())?);
        }
        return Ok(Parsed::Batch(out));
    }
    parse_one(text).map(Parsed::Single)
}

fn parse_one(text: &str) -> Result<Message<'_>, Invalid> {
    let probe: Probe<'_> = match serde_json::from_str(text) {
        Ok(p) => p,
        Err(e) if e.is_syntax() || e.is_eof() => return Err(Invalid::Parse(e.to_string())),
        Err(e) => {
            return Err(Invalid::NotJsonRpc {
                id: None,
                why: e.to_string(),
            });
        }
    };
    let id = probe.id.map(IdKey::from_raw);
    let bad = |why: &str| Invalid::NotJsonRpc {
        id: id.clone(),
        why: why.into(),
    };
    if probe.jsonrpc.as_deref() != Some("2.0") {
        return Err(bad("\"jsonrpc\" must be \"2.0\""));
    }
    if let Some(raw) = probe.id {
        let first = raw.get().as_bytes().first().copied();
        if !matches!(first, Some(b'"' | b'-' | b'0'..=b'9')) {
            return Err(bad("\"id\" must be a string or a number"));
        }
    }
    let kind = match (&probe.method, &probe.id) {
        (Some(_), Some(_)) => Kind::Request,
        (Some(_), None) => Kind::Notification,
        (None, Some(_)) if probe.result.is_some() || probe.error.is_some() => Kind::Response,
        (None, None) if probe.error.is_some() => Kind::Response,
        _ => {
            return Err(bad(
                "a message needs \"method\", or \"result\"/\"error\" with \"id\"",
            ));
        }
    };
    Ok(Message {
        raw: text,
        kind,
        id,
        method: probe.method,
        params: probe.params,
        error: probe.error,
    })
}

/// UTF-8 validation with a JSON-RPC flavoured error (S-UTF8).
pub fn as_utf8(bytes: &[u8]) -> Result<&str, Invalid> {
    std::str::from_utf8(bytes).map_err(|e| Invalid::Parse(format!("invalid UTF-8: {e}")))
}

/// Build an error response line. `id` is JSON text (`null` when unknown).
pub fn error_response(id: Option<&IdKey>, code: i64, message: &str) -> String {
    let id = id.map(IdKey::as_json).unwrap_or("null");
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".into());
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message}}}}}"#)
}

/// The pieces of `params` the proxy looks at: `_meta` for the era, `name`/`uri` for the
/// modern `Mcp-Name` header, `arguments` for `Mcp-Param-*`, `requestId` for cancellation.
#[derive(Deserialize, Default)]
pub struct ParamsProbe<'a> {
    #[serde(rename = "_meta", borrow, default)]
    pub meta: Option<MetaProbe<'a>>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub uri: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub arguments: Option<&'a RawValue>,
    #[serde(rename = "requestId", borrow, default)]
    pub request_id: Option<&'a RawValue>,
    #[serde(rename = "protocolVersion", borrow, default)]
    pub protocol_version: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
pub struct MetaProbe<'a> {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, default)]
    pub protocol_version: Option<Cow<'a, str>>,
}

impl<'a> ParamsProbe<'a> {
    /// Probe `params`; anything that is not an object yields the empty probe.
    pub fn of(params: Option<&'a RawValue>) -> ParamsProbe<'a> {
        params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default()
    }
    /// The modern protocol version from `_meta` (M-ERA).
    pub fn modern_version(&self) -> Option<&str> {
        self.meta.as_ref()?.protocol_version.as_deref()
    }
}

/// The `code` of a JSON-RPC error object, if it has one.
pub fn error_code(error: &RawValue) -> Option<i64> {
    #[derive(Deserialize)]
    struct E {
        code: i64,
    }
    serde_json::from_str::<E>(error.get()).ok().map(|e| e.code)
}

/// The id of a message from only its first bytes: for a line too long to read whole
/// (over `--max-message-size`), so its request still gets its error under its own id
/// instead of `id: null`, which would leave the client waiting. Finds a top-level `"id"`
/// whose value (a number or string) ends within `head`; `None` otherwise.
pub fn id_from_prefix(head: &[u8]) -> Option<IdKey> {
    let mut s = Scan { b: head, i: 0 };
    s.ws();
    s.eat(b'{')?;
    loop {
        s.ws();
        let key = s.string()?;
        s.ws();
        s.eat(b':')?;
        s.ws();
        let start = s.i;
        s.value()?;
        if key == b"\"id\"" {
            let raw = std::str::from_utf8(&head[start..s.i]).ok()?;
            let raw: Box<RawValue> = serde_json::from_str(raw).ok()?;
            let first = raw.get().as_bytes()[0];
            return (first == b'"' || first == b'-' || first.is_ascii_digit())
                .then(|| IdKey::from_raw(&raw));
        }
        s.ws();
        // Anything but `,` is `}` (no id here) or the end of what we have.
        s.eat(b',')?;
    }
}

/// A forward-only scanner over possibly truncated JSON: every step fails (`None`) when
/// the input ends first.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> Option<()> {
        (*self.b.get(self.i)? == c).then(|| self.i += 1)
    }
    /// A string, quotes included.
    fn string(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        self.eat(b'"')?;
        loop {
            match *self.b.get(self.i)? {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return Some(&self.b[start..self.i]);
                }
                _ => self.i += 1,
            }
        }
    }
    /// Skip one value of any kind.
    fn value(&mut self) -> Option<()> {
        match *self.b.get(self.i)? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match *self.b.get(self.i)? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => depth -= 1,
                        _ => {}
                    }
                    self.i += 1;
                    if depth == 0 {
                        return Some(());
                    }
                }
            }
            _ => {
                // A scalar ends at a delimiter, which must be there to know it is whole.
                let start = self.i;
                while !matches!(*self.b.get(self.i)?, b',' | b'}' | b']')
                    && !self.b[self.i].is_ascii_whitespace()
                {
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_from_the_first_bytes_of_a_long_line() {
        let id = |s: &str| id_from_prefix(s.as_bytes()).map(|k| k.as_json().to_owned());
        let full = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"x":"#;
        assert_eq!(id(full).as_deref(), Some("42"));
        // The id after a nested value, and string ids with escapes.
        let late = r#"{ "params": {"a":[1,{"id":7}],"s":"}\""}, "id" : "a\"b", "m":1"#;
        assert_eq!(id(late).as_deref(), Some(r#""a\"b""#));
        // Cut inside the id, or before it: not known.
        assert_eq!(id(r#"{"jsonrpc":"2.0","id":12"#), None);
        assert_eq!(id(r#"{"jsonrpc":"2.0","params":{"id":3,"#), None);
        // null, objects and non-objects are no id.
        assert_eq!(id(r#"{"id":null,"#), None);
        assert_eq!(id(r#"{"id":{"x":1},"#), None);
        assert_eq!(id(r#"[{"id":1},"#), None);
        assert_eq!(id(""), None);
    }

    fn single(text: &str) -> Message<'_> {
        match parse(text).unwrap() {
            Parsed::Single(m) => m,
            Parsed::Batch(_) => panic!("batch"),
        }
    }

    #[test]
    fn kinds() {
        let m = single(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
        assert_eq!(m.kind, Kind::Request);
        assert_eq!(m.id.unwrap().as_json(), "1");
        let m = single(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(m.kind, Kind::Notification);
        let m = single(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#);
        assert_eq!(m.kind, Kind::Response);
        assert_eq!(m.id.unwrap().as_json(), "\"a\"");
        let m = single(r#"{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"x"}}"#);
        assert_eq!(m.kind, Kind::Response);
    }

    #[test]
    fn invalid_lines_keep_their_id() {
        assert!(matches!(parse("{nope"), Err(Invalid::Parse(_))));
        let err = parse(r#"{"id":7,"method":"x"}"#).err().unwrap();
        assert_eq!(err.code(), code::INVALID_REQUEST);
        assert_eq!(err.id().unwrap().as_json(), "7");
        let err = parse(r#"{"jsonrpc":"2.0","id":{"a":1},"method":"x"}"#)
            .err()
            .unwrap();
        assert_eq!(err.code(), code::INVALID_REQUEST);
        assert_eq!(parse("42").err().unwrap().code(), code::INVALID_REQUEST);
    }

    #[test]
    fn batches() {
        let Parsed::Batch(items) =
            parse(r#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]"#)
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(items.len(), 2);
        assert!(parse("[]").is_err());
    }

    #[test]
    fn modern_meta() {
        let m = single(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        );
        let p = ParamsProbe::of(m.params);
        assert_eq!(p.modern_version(), Some("2026-07-28"));
        assert_eq!(p.name.as_deref(), Some("t"));
    }

    #[test]
    fn error_response_escapes() {
        let line = error_response(None, -32700, "bad \"x\"\n");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["error"]["message"], "bad \"x\"\n");
        assert!(!line.contains('\n'));
    }
}
