//! The message layer, between stdio and the transport.
//!
//! ```text
//! stdin ─► proxy loop ─► [policy] ─► [pinning] ─► [modern tools] ─► remote (transport)
//! stdout ◄─ inbound ◄──  results pass the same stages in reverse  ◄────────┘
//! ```
//!
//! - [`table`]: one record per in-flight client request (its attempt task, era, whether it
//!   is long-lived, whether it was cancelled), with an id index. The proxy loop owns it.
//! - [`inbound`]: the receiving end of the transport. It checks each server message,
//!   routes responses to the requests that wait for them, runs results through the chain
//!   and writes stdout. [`inbound::Router`] does the same for the one HTTP+SSE stream.
//! - The stages, each a file with its own state and tests, knowing nothing of the others:
//!   [`policy`] (`--allow-tool`, `--deny-tool`, `--read-only`), [`pinning`]
//!   (`--pin-tools`), [`modern_tools`] (the 2026-07-28 `x-mcp-header` annotations).
//!
//! - [`translate`]: era translation for a legacy client before a modern-only server
//!   (M-BRIDGE); the proxy loop applies it to a translated session's messages.
//! - [`backport`]: the other direction, a modern client before a legacy-only server
//!   (M-BACKPORT). Its stage completes the results; `proxy/backport.rs` drives it.
//!
//! To add a stage: write a file with a type that implements [`Stage`], and add one line
//! to [`Chain::new`], where the order lives.

pub(crate) mod backport;
pub(crate) mod inbound;
pub(crate) mod modern_tools;
pub(crate) mod pinning;
pub(crate) mod policy;
pub(crate) mod table;
pub(crate) mod translate;

use std::sync::Arc;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::config::Config;
use crate::jsonrpc::IdKey;
use crate::remote::modern::ToolHeaders;

/// The era a message belongs to (M-ERA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Era {
    /// Initialize-based revisions, 2025-11-25 and earlier.
    Legacy,
    /// Per-request metadata (2026-07-28): the version comes from `_meta`.
    Modern { version: String },
}

impl Era {
    pub(crate) fn is_modern(&self) -> bool {
        matches!(self, Era::Modern { .. })
    }
}

/// A client request on its way to the server, as a stage sees it.
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) params: Option<&'a RawValue>,
    /// The `tools/call` tool name, read from the params once for every stage that asks.
    tool: std::cell::OnceCell<Option<std::borrow::Cow<'a, str>>>,
}

impl<'a> Request<'a> {
    pub(crate) fn new(method: &'a str, params: Option<&'a RawValue>) -> Request<'a> {
        Request {
            method,
            params,
            tool: std::cell::OnceCell::new(),
        }
    }

    /// The tool a `tools/call` names (`""` when it names none); `None` for other methods.
    pub(crate) fn tool_name(&self) -> Option<&str> {
        if self.method != "tools/call" {
            return None;
        }
        let name = self
            .tool
            .get_or_init(|| crate::jsonrpc::ParamsProbe::of(self.params).name);
        Some(name.as_deref().unwrap_or(""))
    }
}

/// A stage's local answer to a client request: a JSON-RPC error, and the server never
/// sees the request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: i64,
    pub(crate) message: String,
}

/// One step of the chain. Every hook has a pass-through default, so a stage implements
/// only the directions it cares about. Hooks take `&self`: results arrive from many
/// request tasks at once, so a stage with state keeps it behind its own lock.
pub(crate) trait Stage: Send + Sync {
    /// A client request on its way out. `Err` answers it here instead.
    fn on_request(&self, _req: &Request<'_>) -> Result<(), Refusal> {
        Ok(())
    }
    /// Whether the result of a `method` request must pass through [`Stage::on_result`].
    /// Asked for every request, so it must be cheap.
    fn wants_result(&self, _method: &str, _modern: bool) -> bool {
        false
    }
    /// A successful result on its way to the client, parsed once for every stage that
    /// wants it. Returns whether it changed anything.
    fn on_result(&self, _method: &str, _modern: bool, _result: &mut Value) -> bool {
        false
    }
}

/// The stages in order. Client requests run through them first to last; results run
/// through them last to first.
pub(crate) struct Chain {
    stages: Vec<Box<dyn Stage>>,
}

impl Chain {
    /// The one place the order is written.
    pub(crate) fn new(
        config: &Config,
        tools: Arc<ToolHeaders>,
        backport: Arc<backport::Backport>,
    ) -> Chain {
        // First, so results pass it last: what the client finally sees is complete.
        let mut stages: Vec<Box<dyn Stage>> = vec![Box::new(backport)];
        if let Some(policy) = policy::Policy::from_config(&config.tools) {
            stages.push(Box::new(policy));
        }
        if let Some(pins) = pinning::Pinning::from_config(config) {
            stages.push(Box::new(pins));
        }
        stages.push(Box::new(modern_tools::ModernTools::new(tools)));
        Chain { stages }
    }

    #[cfg(test)]
    pub(crate) fn of(stages: Vec<Box<dyn Stage>>) -> Chain {
        Chain { stages }
    }

    pub(crate) fn on_request(&self, req: &Request<'_>) -> Result<(), Refusal> {
        self.stages.iter().try_for_each(|s| s.on_request(req))
    }

    pub(crate) fn wants_result(&self, method: &str, modern: bool) -> bool {
        self.stages.iter().any(|s| s.wants_result(method, modern))
    }

    /// Run one response through the stages that want it. `None`: nothing changed, so
    /// the original bytes go out as they came.
    pub(crate) fn on_response(&self, method: &str, modern: bool, data: &[u8]) -> Option<Vec<u8>> {
        let mut msg: Value = serde_json::from_slice(data).ok()?;
        let result = msg.get_mut("result")?;
        let mut changed = false;
        for stage in self.stages.iter().rev() {
            if stage.wants_result(method, modern) {
                changed |= stage.on_result(method, modern, result);
            }
        }
        if !changed {
            return None;
        }
        serde_json::to_vec(&msg).ok()
    }
}

/// What a request expects back: its id, and its method when a stage reads its result.
#[derive(Clone, Debug)]
pub(crate) struct Expect {
    pub(crate) id: IdKey,
    pub(crate) hook: Option<Hook>,
}

/// The method (and era) whose result passes through the chain.
#[derive(Clone, Debug)]
pub(crate) struct Hook {
    pub(crate) method: Box<str>,
    pub(crate) modern: bool,
}

impl Expect {
    pub(crate) fn new(chain: &Chain, id: IdKey, method: &str, modern: bool) -> Expect {
        let hook = chain.wants_result(method, modern).then(|| Hook {
            method: method.into(),
            modern,
        });
        Expect { id, hook }
    }

    /// A request whose result no stage reads (the proxy's own, or an opaque batch).
    pub(crate) fn plain(id: IdKey) -> Expect {
        Expect { id, hook: None }
    }
}

/// The `params._meta` object of a message, made if missing; `None` when the message or
/// its params are not objects.
pub(crate) fn meta_mut(msg: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    let params = msg
        .as_object_mut()?
        .entry("params")
        .or_insert_with(|| Value::Object(Default::default()));
    params
        .as_object_mut()?
        .entry("_meta")
        .or_insert_with(|| Value::Object(Default::default()))
        .as_object_mut()
}

/// The `tools` array of a `tools/list` result, for the stages that filter it.
pub(crate) fn tools_of(result: &mut Value) -> Option<&mut Vec<Value>> {
    result.get_mut("tools").and_then(Value::as_array_mut)
}

/// The `name` of a tool definition.
pub(crate) fn tool_name(tool: &Value) -> &str {
    tool.get("name").and_then(Value::as_str).unwrap_or("")
}

/// What stage tests share: a `tools/call` for `name`, as a client would send it.
#[cfg(test)]
pub(crate) fn call_tool(stage: &dyn Stage, name: &str) -> Result<(), Refusal> {
    let params =
        RawValue::from_string(serde_json::json!({ "name": name }).to_string()).expect("valid JSON");
    stage.on_request(&Request::new("tools/call", Some(&params)))
}
