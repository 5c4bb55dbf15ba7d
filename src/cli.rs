//! The command line (clap derive only). Resolution into a [`crate::config::Config`]
//! happens in `config.rs`, so this file stays a plain description of flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const DEFAULT_URL: &str = "https://mcp.clerk.com/mcp";

const EXAMPLES: &str = "\
Examples:
  # In an MCP client's config: {\"command\": \"clerk-mcp-server\"}
  clerk-mcp-server
  clerk-mcp-server https://example.com/mcp --header 'Authorization: Bearer ${API_TOKEN}'
  clerk-mcp-server http://127.0.0.1:3000/mcp --log-level debug --log-file /tmp/mcp.log
  clerk-mcp-server https://old.example.com/sse --transport sse

  # Is my setup working?
  clerk-mcp-server check https://example.com/mcp";

#[derive(Parser, Debug)]
#[command(
    name = "clerk-mcp-server",
    version,
    about = "Use a remote MCP server from any stdio MCP client (Claude Desktop, Cursor, Claude Code, VS Code...)",
    long_about = "Bridges a stdio MCP client to a remote MCP server over Streamable HTTP, or the older \
HTTP+SSE transport. The client spawns this program and speaks newline-delimited JSON-RPC on stdin and \
stdout; every message is forwarded to the server and every server message is written back. Logs go to \
stderr (or --log-file), never to stdout.",
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Connect, initialize, list the server's tools, print a summary and end the session.
    Check(RemoteArgs),
}

#[derive(Args, Debug, Clone)]
pub struct RemoteArgs {
    /// The remote MCP server's URL.
    #[arg(env = "CLERK_MCP_URL", default_value = DEFAULT_URL)]
    pub url: String,

    /// Extra HTTP header "Name: value" for every request (repeatable). ${VAR} in the value
    /// expands from the environment. Values are never logged.
    #[arg(
        long = "header",
        short = 'H',
        value_name = "NAME: VALUE",
        env = "CLERK_MCP_HEADERS",
        value_delimiter = '\n'
    )]
    pub headers: Vec<String>,

    /// A file of "Name: value" lines (blank lines and # comments ignored), expanded like --header.
    #[arg(long, value_name = "PATH", env = "CLERK_MCP_HEADER_FILE")]
    pub header_file: Option<PathBuf>,

    /// Which HTTP transport to use. `auto` tries Streamable HTTP, then falls back to HTTP+SSE.
    #[arg(long, value_enum, default_value_t = TransportArg::Auto, env = "CLERK_MCP_TRANSPORT")]
    pub transport: TransportArg,

    /// Allow plain http:// to a host that is not loopback.
    #[arg(long, env = "CLERK_MCP_ALLOW_HTTP")]
    pub allow_http: bool,

    /// Log filter: error, warn, info, debug, trace, or a tracing directive. RUST_LOG also works.
    #[arg(long, value_name = "LEVEL", env = "CLERK_MCP_LOG_LEVEL")]
    pub log_level: Option<String>,

    /// Also append logs to this file (clients often hide stderr).
    #[arg(long, value_name = "PATH", env = "CLERK_MCP_LOG_FILE")]
    pub log_file: Option<PathBuf>,

    /// Seconds allowed to open a connection to the server.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10.0,
        env = "CLERK_MCP_CONNECT_TIMEOUT"
    )]
    pub connect_timeout: f64,

    /// Seconds a request may go without any sign of life from the server. Each streamed
    /// event (progress, logs) restarts the clock, so long tool calls that report progress
    /// are not cut off. `subscriptions/listen` streams are exempt.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 300.0,
        env = "CLERK_MCP_REQUEST_TIMEOUT"
    )]
    pub request_timeout: f64,

    /// Extra PEM certificate roots to trust (e.g. a corporate TLS-intercepting proxy).
    #[arg(long, value_name = "PATH", env = "CLERK_MCP_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// Largest message accepted from stdin or in one SSE event, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024 * 1024, env = "CLERK_MCP_MAX_MESSAGE_SIZE")]
    pub max_message_size: usize,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportArg {
    Auto,
    StreamableHttp,
    Sse,
}
