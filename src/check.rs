//! `clerk-mcp-server check [URL]`: run a real handshake through the proxy itself and
//! print a short human summary, or a diagnosis and a non-zero exit.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::cli::RemoteArgs;
use crate::config::{Config, redact_url};
use crate::remote::http::Http;

const PROTOCOL_VERSION: &str = "2025-11-25";

pub(crate) async fn run(args: &RemoteArgs) -> anyhow::Result<ExitCode> {
    let config = Arc::new(Config::from_args(args)?);
    let http = crate::connect::connect(&config)?;
    let (client_io, proxy_io) = tokio::io::duplex(1 << 20);
    let (proxy_in, proxy_out) = tokio::io::split(proxy_io);
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let proxy = tokio::spawn(crate::proxy::run(
        config.clone(),
        http.clone(),
        proxy_in,
        proxy_out,
        async {
            let _ = shutdown_rx.await;
        },
    ));
    let (read, write) = tokio::io::split(client_io);
    let url = redact_url(&config.url);
    println!("Checking {url}");
    let mut conv = Conversation {
        write,
        lines: BufReader::new(read).lines(),
        deadline: config.request_timeout + Duration::from_secs(5),
    };
    let init = conv
        .call(
            json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion": PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name":"clerk-mcp-server check","version":env!("CARGO_PKG_VERSION")}}}),
        )
        .await?;
    let code = match init.get("error") {
        Some(err) => {
            println!("✗ initialize failed: {}", error_text(err));
            ExitCode::from(1)
        }
        None => report(&mut conv, &http, &init["result"]).await?,
    };
    finish(conv.write, shutdown_tx, proxy, code).await
}

/// After a successful initialize: print the server, protocol, transport and tools.
async fn report<R: tokio::io::AsyncRead + Unpin, W: AsyncWriteExt + Unpin>(
    conv: &mut Conversation<R, W>,
    http: &Http,
    result: &Value,
) -> anyhow::Result<ExitCode> {
    conv.write
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
        .await?;
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
    let tools = conv
        .call(json!({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}))
        .await?;
    if let Some(err) = tools.get("error") {
        println!("✗ tools/list failed: {}", error_text(err));
        return Ok(ExitCode::from(1));
    }
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    println!("✓ tools ({}): {}", names.len(), names.join(", "));
    Ok(ExitCode::SUCCESS)
}

struct Conversation<R, W> {
    write: W,
    lines: tokio::io::Lines<BufReader<R>>,
    deadline: Duration,
}

impl<R: tokio::io::AsyncRead + Unpin, W: AsyncWriteExt + Unpin> Conversation<R, W> {
    /// Send a request and wait for its response, skipping notifications.
    async fn call(&mut self, request: Value) -> anyhow::Result<Value> {
        let id = request["id"].clone();
        self.write
            .write_all(format!("{request}\n").as_bytes())
            .await?;
        loop {
            let line = tokio::time::timeout(self.deadline, self.lines.next_line())
                .await
                .context("no answer in time")??
                .context("the proxy ended unexpectedly")?;
            let msg: Value = serde_json::from_str(&line)?;
            if msg.get("id") == Some(&id) && msg.get("method").is_none() {
                return Ok(msg);
            }
        }
    }
}

async fn finish<W: AsyncWriteExt + Unpin>(
    mut write: W,
    shutdown: tokio::sync::oneshot::Sender<()>,
    proxy: tokio::task::JoinHandle<anyhow::Result<()>>,
    code: ExitCode,
) -> anyhow::Result<ExitCode> {
    // Closing "stdin" ends the session with a DELETE (H-DELETE).
    let _ = write.shutdown().await;
    drop(write);
    if tokio::time::timeout(Duration::from_secs(5), proxy)
        .await
        .is_err()
    {
        let _ = shutdown.send(());
    }
    Ok(code)
}

fn error_text(err: &Value) -> String {
    err["message"]
        .as_str()
        .unwrap_or("unknown error")
        .to_owned()
}
