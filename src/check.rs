//! `clerk-mcp-server check [URL]`: run a real handshake through the proxy itself and
//! print a short human summary, or a diagnosis and a non-zero exit.

use std::process::ExitCode;
use std::sync::Arc;

use serde_json::Value;

use crate::cli::RemoteArgs;
use crate::config::{Config, redact_url};
use crate::inproc::InProcess;
use crate::layer::policy::ToolPolicy;
use crate::layer::tool_name;
use crate::layer::translate::MODERN_VERSION;
use crate::remote::http::{Http, Outcome, Post};
use crate::remote::modern::ToolHeaders;
use crate::remote::{Closed, Deliver};

pub(crate) async fn run(args: &RemoteArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::from_args(args)?;
    // The server's whole list: the policy is applied below, so what it hides can be shown.
    let policy = std::mem::take(&mut config.tools);
    let config = Arc::new(config);
    let http = crate::connect::connect(&config)?;
    println!("Checking {}", redact_url(&config.url));
    let mut session = InProcess::start(config.clone(), http.clone());
    let code = match session.initialize("clerk-mcp-server check").await {
        Ok(Ok(result)) => report(&mut session, &http, &policy, &result).await,
        Ok(Err(why)) => {
            println!("✗ initialize failed: {why}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e),
    };
    session.finish().await;
    code
}

/// Which protocol eras the server speaks, and so what the proxy translates (M-BRIDGE,
/// M-BACKPORT). The legacy handshake just ran; a `server/discover` tells whether the
/// server speaks 2026-07-28 too.
async fn eras(http: &Http, transport: &str) -> &'static str {
    if transport.contains("translated for a legacy client") {
        return "2026-07-28 only: legacy clients (initialize-based) are translated";
    }
    if transport.starts_with("HTTP+SSE") {
        return "legacy only (HTTP+SSE, 2024-11-05): 2026-07-28 clients are translated onto a legacy session";
    }
    if speaks_modern(http).await {
        "legacy and 2026-07-28: every client passes through in its own era, untranslated"
    } else {
        "legacy only: 2026-07-28 clients are translated onto a legacy session"
    }
}

async fn speaks_modern(http: &Http) -> bool {
    let body = serde_json::json!({"jsonrpc":"2.0","id":"clerk-mcp-server/check","method":"server/discover",
        "params":{"_meta":{
            crate::jsonrpc::META_PROTOCOL_VERSION: MODERN_VERSION,
            "io.modelcontextprotocol/clientInfo": {"name": "clerk-mcp-server check", "version": env!("CARGO_PKG_VERSION")},
            "io.modelcontextprotocol/clientCapabilities": {}}}});
    let body = bytes::Bytes::from(body.to_string());
    let post = Post {
        headers: ToolHeaders::default().headers_for(MODERN_VERSION, &body),
        body,
        session: None,
        idle: Some(http.request_timeout),
        resumable: false,
        probe_era: true,
    };
    let mut answer = Answer(None);
    let done = matches!(http.exchange(post, &mut answer).await, Outcome::Done { .. });
    done && answer
        .0
        .and_then(|a| serde_json::from_slice::<Value>(&a).ok())
        .is_some_and(|v| v.get("result").is_some())
}

/// The one answer of the era probe.
struct Answer(Option<bytes::Bytes>);

impl Deliver for Answer {
    async fn deliver(&mut self, data: bytes::Bytes) -> Result<(), Closed> {
        self.0.get_or_insert(data);
        Ok(())
    }

    fn complete(&self) -> bool {
        self.0.is_some()
    }
}

/// After a successful initialize: print the server, protocol, transport and tools.
async fn report(
    session: &mut InProcess,
    http: &Http,
    policy: &ToolPolicy,
    result: &Value,
) -> anyhow::Result<ExitCode> {
    let info = &result["serverInfo"];
    println!(
        "✓ server:    {} {}",
        info["name"].as_str().unwrap_or("(unnamed)"),
        info["version"].as_str().unwrap_or("")
    );
    println!(
        "✓ protocol:  {}",
        result["protocolVersion"].as_str().unwrap_or("(unknown)")
    );
    let transport = *http
        .transport_used
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    println!("✓ transport: {transport}");
    println!("✓ eras:      {}", eras(http, transport).await);
    if result["capabilities"].get("tools").is_none() {
        println!("✓ tools:     (the server offers none)");
        return Ok(ExitCode::SUCCESS);
    }
    let tools = match session.list_tools().await {
        Ok(tools) => tools,
        Err(e) => {
            println!("✗ {e:#}");
            return Ok(ExitCode::from(1));
        }
    };
    let (offered, hidden): (Vec<&Value>, Vec<&Value>) =
        tools.iter().partition(|t| policy.hides(t).is_none());
    let names: Vec<&str> = offered.iter().map(|t| tool_name(t)).collect();
    println!("✓ tools ({}): {}", names.len(), names.join(", "));
    if !hidden.is_empty() {
        println!("  hidden by the tool policy ({}):", hidden.len());
        for t in hidden {
            let why = policy.hides(t).unwrap_or_default();
            println!("    {}: {why}", tool_name(t));
        }
    }
    Ok(ExitCode::SUCCESS)
}
