//! Stage: the tool policy (`--allow-tool`, `--deny-tool`, `--read-only`). Hidden tools are
//! removed from every `tools/list` page, in both eras, and a `tools/call` for one is
//! answered here with an error that names the policy: the server never sees it (P-POLICY).
//!
//! `--read-only` trusts the server's own `readOnlyHint` annotations: a convenience, not a
//! security boundary.

use std::collections::HashSet;
use std::sync::Mutex;

use serde_json::Value;

use super::{Refusal, Request, Stage, tool_name, tools_of};

/// JSON-RPC "invalid params": what servers answer for a tool they do not have.
const INVALID_PARAMS: i64 = -32602;

/// A tool-name pattern: the whole name, case-insensitively, `*` the only wildcard (as
/// mcp-remote's `--ignore-tool` matches).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Glob {
    pattern: String,
    /// The literal pieces between the `*`s, lowercased.
    parts: Vec<String>,
}

impl Glob {
    /// `Err` names what is wrong with the pattern.
    pub(crate) fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.trim().is_empty() {
            return Err("an empty pattern matches no tool".into());
        }
        if pattern.chars().any(char::is_control) {
            return Err(format!("{pattern:?} contains a control character"));
        }
        Ok(Glob {
            pattern: pattern.to_owned(),
            parts: pattern
                .to_lowercase()
                .split('*')
                .map(str::to_owned)
                .collect(),
        })
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        let (first, rest) = self.parts.split_first().expect("split yields one part");
        let Some(mut tail) = name.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return tail.is_empty(); // no `*`: the whole name
        };
        for part in middle {
            match tail.find(part.as_str()) {
                Some(i) => tail = &tail[i + part.len()..],
                None => return false,
            }
        }
        tail.ends_with(last.as_str())
    }
}

impl std::fmt::Display for Glob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.pattern)
    }
}

/// The policy as configured.
#[derive(Clone, Debug, Default)]
pub(crate) struct ToolPolicy {
    pub(crate) allow: Vec<Glob>,
    pub(crate) deny: Vec<Glob>,
    pub(crate) read_only: bool,
}

impl ToolPolicy {
    pub(crate) fn is_active(&self) -> bool {
        !self.allow.is_empty() || !self.deny.is_empty() || self.read_only
    }

    /// Why the policy hides a tool, judged by its name alone; `None` when the name passes.
    fn by_name(&self, name: &str) -> Option<String> {
        if let Some(g) = self.deny.iter().find(|g| g.matches(name)) {
            return Some(format!("--deny-tool {g:?}", g = g.pattern));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|g| g.matches(name)) {
            return Some("no --allow-tool pattern matches it".into());
        }
        None
    }

    /// Why the policy hides this tool definition; `None` when it is offered.
    pub(crate) fn hides(&self, tool: &Value) -> Option<String> {
        if let Some(why) = self.by_name(tool_name(tool)) {
            return Some(why);
        }
        if self.read_only && !read_only_hint(tool) {
            return Some("--read-only, and it is not annotated readOnlyHint: true".into());
        }
        None
    }
}

fn read_only_hint(tool: &Value) -> bool {
    tool.pointer("/annotations/readOnlyHint") == Some(&Value::Bool(true))
}

pub(crate) struct Policy {
    policy: ToolPolicy,
    /// Under `--read-only`: the tools a listing showed to be read-only. A call for any
    /// other tool is refused, so a client that calls before it lists fails closed.
    read_only_seen: Mutex<HashSet<String>>,
}

impl Policy {
    pub(crate) fn from_config(policy: &ToolPolicy) -> Option<Policy> {
        policy.is_active().then(|| Policy {
            policy: policy.clone(),
            read_only_seen: Mutex::default(),
        })
    }

    fn refusal(name: &str, why: &str) -> Refusal {
        Refusal {
            code: INVALID_PARAMS,
            message: format!(
                "tool {name:?} is hidden by clerk-mcp-server's tool policy ({why}); \
                 the server was not called"
            ),
        }
    }
}

impl Stage for Policy {
    fn on_request(&self, req: &Request<'_>) -> Result<(), Refusal> {
        let Some(name) = req.tool_name() else {
            return Ok(());
        };
        if let Some(why) = self.policy.by_name(name) {
            return Err(Policy::refusal(name, &why));
        }
        if self.policy.read_only
            && !self
                .read_only_seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(name)
        {
            return Err(Policy::refusal(
                name,
                "--read-only, and no tools/list showed it annotated readOnlyHint: true",
            ));
        }
        Ok(())
    }

    fn wants_result(&self, method: &str, _modern: bool) -> bool {
        method == "tools/list"
    }

    fn on_result(&self, _method: &str, _modern: bool, result: &mut Value) -> bool {
        let Some(tools) = tools_of(result) else {
            return false;
        };
        let before = tools.len();
        let mut seen = Vec::new();
        tools.retain(|tool| match self.policy.hides(tool) {
            Some(why) => {
                tracing::debug!(tool = tool_name(tool), "tool hidden by the policy: {why}");
                false
            }
            None => {
                seen.push(tool_name(tool).to_owned());
                true
            }
        });
        if self.policy.read_only {
            self.read_only_seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(seen);
        }
        tools.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn globs(ps: &[&str]) -> Vec<Glob> {
        ps.iter().map(|p| Glob::new(p).unwrap()).collect()
    }

    #[test]
    fn globs_match_the_whole_name_case_insensitively() {
        let g = |p: &str, n: &str| Glob::new(p).unwrap().matches(n);
        assert!(g("delete_*", "delete_user"));
        assert!(g("DELETE_*", "delete_user"));
        assert!(!g("delete_*", "undelete_user"));
        assert!(g("*_user", "delete_user"));
        assert!(!g("*_user", "delete_users"));
        assert!(g("*", "anything"));
        assert!(g("a*b*c", "aXbYc"));
        assert!(g("a*b*c", "abc"));
        assert!(!g("a*b*c", "acb"));
        assert!(!g("a*a", "a")); // the two `a`s may not overlap
        assert!(g("echo", "Echo"));
        assert!(!g("echo", "echo2"));
        assert!(g("**", ""));
        assert!(Glob::new("").is_err());
        assert!(Glob::new("a\nb").is_err());
    }

    fn stage(allow: &[&str], deny: &[&str], read_only: bool) -> Policy {
        Policy::from_config(&ToolPolicy {
            allow: globs(allow),
            deny: globs(deny),
            read_only,
        })
        .unwrap()
    }

    fn call(stage: &Policy, name: &str) -> Result<(), Refusal> {
        crate::layer::call_tool(stage, name)
    }

    #[test]
    fn an_empty_policy_is_no_stage() {
        assert!(Policy::from_config(&ToolPolicy::default()).is_none());
    }

    #[test]
    fn deny_wins_over_allow() {
        let p = stage(&["*"], &["delete_*"], false);
        assert!(call(&p, "read_user").is_ok());
        let r = call(&p, "delete_user").unwrap_err();
        assert_eq!(r.code, INVALID_PARAMS);
        assert!(
            r.message.contains("--deny-tool \"delete_*\""),
            "{}",
            r.message
        );
    }

    #[test]
    fn allow_list_hides_everything_else() {
        let p = stage(&["get_*", "echo"], &[], false);
        assert!(call(&p, "echo").is_ok());
        assert!(call(&p, "GET_thing").is_ok());
        let r = call(&p, "set_thing").unwrap_err();
        assert!(r.message.contains("no --allow-tool pattern matches it"));
    }

    #[test]
    fn other_methods_pass() {
        let p = stage(&[], &["*"], false);
        assert!(p.on_request(&Request::new("tools/list", None)).is_ok());
    }

    #[test]
    fn listing_removes_hidden_tools_and_keeps_the_cursor() {
        let p = stage(&[], &["secret*"], false);
        let mut page = json!({"tools":[{"name":"secret_a"},{"name":"SECRET_b"}],"nextCursor":"2"});
        assert!(p.on_result("tools/list", false, &mut page));
        assert_eq!(page, json!({"tools":[],"nextCursor":"2"}));
        let mut clean = json!({"tools":[{"name":"ok"}]});
        assert!(!p.on_result("tools/list", true, &mut clean));
    }

    #[test]
    fn read_only_offers_annotated_tools_and_fails_closed_before_a_listing() {
        let p = stage(&[], &[], true);
        assert!(call(&p, "get").is_err(), "unknown before any listing");
        let mut page = json!({"tools":[
            {"name":"get","annotations":{"readOnlyHint":true}},
            {"name":"put","annotations":{"readOnlyHint":false}},
            {"name":"bare"}
        ]});
        assert!(p.on_result("tools/list", false, &mut page));
        assert_eq!(page["tools"].as_array().unwrap().len(), 1);
        assert!(call(&p, "get").is_ok());
        let r = call(&p, "put").unwrap_err();
        assert!(r.message.contains("--read-only"), "{}", r.message);
    }

    #[test]
    fn hides_explains_why() {
        let policy = ToolPolicy {
            allow: globs(&["a*"]),
            deny: globs(&["ab"]),
            read_only: true,
        };
        assert_eq!(
            policy.hides(&json!({"name":"ab"})).unwrap(),
            "--deny-tool \"ab\""
        );
        assert!(
            policy
                .hides(&json!({"name":"b"}))
                .unwrap()
                .contains("--allow-tool")
        );
        assert!(
            policy
                .hides(&json!({"name":"ac"}))
                .unwrap()
                .contains("readOnlyHint")
        );
        assert!(
            policy
                .hides(&json!({"name":"ac","annotations":{"readOnlyHint":true}}))
                .is_none()
        );
    }
}
