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
use crate::remote::http::Http;

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
    println!(
        "✓ transport: {}",
        *http
            .transport_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    );
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
