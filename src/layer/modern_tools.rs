//! Stage: the `x-mcp-header` annotations of the 2026-07-28 revision (M-PARAM-INVALID).
//! Modern `tools/list` results teach the transport which arguments become `Mcp-Param-*`
//! headers; a tool whose annotations are invalid is removed from the result.

use std::sync::Arc;

use serde_json::Value;

use super::{Stage, tools_of};
use crate::remote::modern::ToolHeaders;

pub(crate) struct ModernTools {
    headers: Arc<ToolHeaders>,
}

impl ModernTools {
    pub(crate) fn new(headers: Arc<ToolHeaders>) -> ModernTools {
        ModernTools { headers }
    }
}

impl Stage for ModernTools {
    fn wants_result(&self, method: &str, modern: bool) -> bool {
        modern && method == "tools/list"
    }

    fn on_result(&self, _method: &str, _modern: bool, result: &mut Value) -> bool {
        match tools_of(result) {
            Some(tools) => self.headers.learn(tools),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_modern_tool_lists_are_read() {
        let stage = ModernTools::new(Arc::default());
        assert!(stage.wants_result("tools/list", true));
        assert!(!stage.wants_result("tools/list", false));
        assert!(!stage.wants_result("tools/call", true));
    }

    #[test]
    fn invalid_annotations_remove_the_tool_and_valid_ones_are_learned() {
        let headers = Arc::new(ToolHeaders::default());
        let stage = ModernTools::new(headers.clone());
        let mut result = json!({"tools":[
            {"name":"bad","inputSchema":{"type":"object","properties":{"a":{"type":"number","x-mcp-header":"A"}}}},
            {"name":"good","inputSchema":{"type":"object","properties":{"r":{"type":"string","x-mcp-header":"Region"}}}}
        ],"nextCursor":"c"});
        assert!(stage.on_result("tools/list", true, &mut result));
        assert_eq!(result["tools"].as_array().unwrap().len(), 1);
        assert_eq!(result["nextCursor"], "c");
        let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"good","arguments":{"r":"eu"}}});
        let h = headers.headers_for("2026-07-28", &serde_json::to_vec(&call).unwrap());
        assert_eq!(h["mcp-param-region"], "eu");
        let mut clean = json!({"tools":[{"name":"good","inputSchema":{"type":"object"}}]});
        assert!(!stage.on_result("tools/list", true, &mut clean));
    }
}
