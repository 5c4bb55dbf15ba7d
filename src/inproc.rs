//! A client conversation with the proxy itself, in process: the subcommands that talk to
//! a server (`check`, `tools`) run the real proxy loop over an in-memory pipe, so they see the
//! server exactly as an MCP client would.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};

use crate::config::Config;
use crate::remote::http::Http;

/// The protocol version the subcommands speak.
pub(crate) const PROTOCOL_VERSION: &str = "2025-11-25";
/// Pages of a list fetched at most.
const MAX_PAGES: usize = 100;

pub(crate) struct InProcess {
    write: WriteHalf<DuplexStream>,
    lines: tokio::io::Lines<BufReader<ReadHalf<DuplexStream>>>,
    deadline: Duration,
    next_id: u64,
    shutdown: tokio::sync::oneshot::Sender<()>,
    proxy: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    pub(crate) fn start(config: Arc<Config>, http: Arc<Http>) -> InProcess {
        let (client_io, proxy_io) = tokio::io::duplex(1 << 20);
        let (proxy_in, proxy_out) = tokio::io::split(proxy_io);
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let deadline = config.request_timeout + Duration::from_secs(5);
        let proxy = tokio::spawn(crate::proxy::run(
            config,
            http,
            proxy_in,
            proxy_out,
            async {
                let _ = shutdown_rx.await;
            },
        ));
        let (read, write) = tokio::io::split(client_io);
        InProcess {
            write,
            lines: BufReader::new(read).lines(),
            deadline,
            next_id: 0,
            shutdown,
            proxy,
        }
    }

    /// Send a request and wait for its response, skipping everything else. The outer
    /// error is the conversation failing; the inner one, the server's JSON-RPC error
    /// message.
    pub(crate) async fn request(
        &mut self,
        method: &str,
        params: Value,
    ) -> anyhow::Result<Result<Value, String>> {
        self.next_id += 1;
        let id = json!(self.next_id);
        let request = json!({"jsonrpc":"2.0","id":id,"method":method,"params":params});
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
                return Ok(match msg.get("error") {
                    Some(err) => Err(err["message"]
                        .as_str()
                        .unwrap_or("unknown error")
                        .to_owned()),
                    None => Ok(msg["result"].clone()),
                });
            }
        }
    }

    /// [`InProcess::request`], with the server's error as an error.
    pub(crate) async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.request(method, params)
            .await?
            .map_err(|why| anyhow::anyhow!("{method} failed: {why}"))
    }

    /// The handshake: `initialize`, then `notifications/initialized`. Returns the result,
    /// or the server's error message (see [`InProcess::request`]).
    pub(crate) async fn initialize(
        &mut self,
        client: &str,
    ) -> anyhow::Result<Result<Value, String>> {
        let result = self
            .request(
                "initialize",
                json!({"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                       "clientInfo": {"name": client, "version": env!("CARGO_PKG_VERSION")}}),
            )
            .await?;
        if result.is_ok() {
            self.write
                .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
                .await?;
        }
        Ok(result)
    }

    /// Every page of `tools/list`, bounded.
    pub(crate) async fn list_tools(&mut self) -> anyhow::Result<Vec<Value>> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let page = self.call("tools/list", params).await?;
            if let Some(list) = page["tools"].as_array() {
                tools.extend(list.iter().cloned());
            }
            cursor = page["nextCursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                return Ok(tools);
            }
        }
        anyhow::bail!("tools/list had more than {MAX_PAGES} pages")
    }

    /// End the session: closing "stdin" sends the DELETE (H-DELETE); bounded.
    pub(crate) async fn finish(mut self) {
        let _ = self.write.shutdown().await;
        drop(self.write);
        if tokio::time::timeout(Duration::from_secs(5), &mut self.proxy)
            .await
            .is_err()
        {
            let _ = self.shutdown.send(());
        }
    }
}
