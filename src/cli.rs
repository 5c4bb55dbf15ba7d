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
    /// Sign in to a server ahead of time.
    Login(RemoteArgs),
    /// Show the server's tools against their pinned definitions (--pin-tools), with what
    /// changed; --accept takes the changes.
    Tools(ToolsArgs),
    /// Forget the tokens of a server (or of every server with --all).
    Logout(LogoutArgs),
    /// List the servers that have tokens and when they expire (never the tokens).
    Status(StatusArgs),
    /// Replace this binary with the latest release (checksum-verified).
    SelfUpdate(SelfUpdateArgs),
}

#[derive(Args, Debug, Clone)]
pub struct SelfUpdateArgs {
    /// Only report whether a newer version exists.
    #[arg(long)]
    pub check: bool,
    /// Install this version instead of the latest (e.g. 0.3.1).
    #[arg(long, value_name = "X.Y.Z")]
    pub version: Option<String>,
    /// The GitHub API base URL (for GitHub Enterprise mirrors, and tests).
    #[arg(
        long,
        value_name = "URL",
        env = "CLERK_MCP_UPDATE_API_URL",
        hide = true
    )]
    pub api_url: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ToolsArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Accept the server's current definitions: of TOOL, or of every tool when no name
    /// is given.
    #[arg(long, value_name = "TOOL", num_args = 0..=1, default_missing_value = "*")]
    pub accept: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct LogoutArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Forget every server's tokens and registrations.
    #[arg(long)]
    pub all: bool,
}

#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// Where tokens are kept (default: the platform's config directory).
    #[arg(long, value_name = "DIR", env = "CLERK_MCP_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArg,
    /// Print the sign-ins as JSON, for scripts (never a token).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct RemoteArgs {
    /// The remote MCP server's URL.
    #[arg(env = "CLERK_MCP_URL", default_value = DEFAULT_URL)]
    pub url: String,

    /// mcp-remote's callback port, given after the URL: the same as --callback-port.
    #[arg(value_name = "CALLBACK_PORT", hide = true)]
    pub callback_port_positional: Option<String>,

    /// Extra HTTP header "Name: value" for every request (repeatable). ${VAR} in the value
    /// expands from the environment. Values are never logged. Without --header, the
    /// CLERK_MCP_HEADERS environment variable gives them, one per line.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// A file of "Name: value" lines (blank lines and # comments ignored), expanded like --header.
    #[arg(long, value_name = "PATH", env = "CLERK_MCP_HEADER_FILE")]
    pub header_file: Option<PathBuf>,

    /// Which HTTP transport to use. `auto` tries Streamable HTTP, then falls back to HTTP+SSE.
    #[arg(long, value_enum, default_value_t = TransportArg::Auto, env = "CLERK_MCP_TRANSPORT")]
    pub transport: TransportArg,

    /// The protocol era spoken to the server. `auto` speaks the client's own era and
    /// translates only when the server shows it does not speak it; `legacy` and `modern`
    /// force one. mcp-remote's `--protocol legacy|auto` mean the same here.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Auto, env = "CLERK_MCP_PROTOCOL")]
    pub protocol: ProtocolArg,

    /// Allow plain http:// to a host that is not loopback.
    #[arg(long, env = "CLERK_MCP_ALLOW_HTTP", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0, default_missing_value = "true")]
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
    /// are not cut off. `subscriptions/listen` streams are exempt. 0 turns it off.
    /// mcp-remote's --body-timeout is the same flag.
    #[arg(
        long,
        visible_alias = "body-timeout",
        value_name = "SECS",
        default_value_t = 300.0,
        env = "CLERK_MCP_REQUEST_TIMEOUT"
    )]
    pub request_timeout: f64,

    /// Seconds to wait for the response headers of a request (default: --request-timeout).
    /// 0 turns it off.
    #[arg(long, value_name = "SECS", env = "CLERK_MCP_HEADERS_TIMEOUT")]
    pub headers_timeout: Option<f64>,

    /// Connect over IPv4 only.
    #[arg(long, env = "CLERK_MCP_IPV4", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0, default_missing_value = "true")]
    pub ipv4: bool,

    /// Send a `ping` on a session that has been quiet for --ping-interval seconds, so
    /// load balancers and servers do not drop it.
    #[arg(long, env = "CLERK_MCP_KEEP_ALIVE", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0, default_missing_value = "true")]
    pub keep_alive: bool,

    /// Seconds of quiet before a keep-alive ping (default 30). Turns --keep-alive on.
    #[arg(long, value_name = "SECS", env = "CLERK_MCP_PING_INTERVAL")]
    pub ping_interval: Option<f64>,

    /// Keep no cookies. By default the server's cookies (sticky load balancers) are kept
    /// in memory for this process and sent back only to the origin that set them, never
    /// to an authorization server.
    #[arg(long, env = "CLERK_MCP_DISABLE_COOKIES", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0, default_missing_value = "true")]
    pub disable_cookies: bool,

    /// Log at debug level, also to debug.log in the config directory (the path is
    /// printed on stderr).
    #[arg(long)]
    pub debug: bool,

    /// Log only errors (the same as --log-level error); --debug wins over it.
    #[arg(long)]
    pub silent: bool,

    /// Accepted for mcp-remote's sake: the proxy variables (HTTPS_PROXY, HTTP_PROXY,
    /// NO_PROXY) are always honoured.
    #[arg(long, hide = true)]
    pub enable_proxy: bool,

    /// A client certificate (PEM, with its chain) presented on every TLS connection to the
    /// server and the authorization server (mutual TLS). The file may hold the key too.
    #[arg(long, value_name = "FILE", env = "CLERK_MCP_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert, when it is not in the same file.
    #[arg(
        long,
        value_name = "FILE",
        env = "CLERK_MCP_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Extra PEM certificate roots to trust (e.g. a corporate TLS-intercepting proxy).
    #[arg(long, value_name = "PATH", env = "CLERK_MCP_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// Largest message accepted from stdin or in one SSE event, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024 * 1024, env = "CLERK_MCP_MAX_MESSAGE_SIZE")]
    pub max_message_size: usize,

    #[command(flatten)]
    pub tools: ToolArgs,

    #[command(flatten)]
    pub auth: AuthArgs,
}

/// Which of the server's tools the client sees.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Tools")]
pub struct ToolArgs {
    /// Offer only tools whose name matches GLOB (repeatable). Whole name, case-insensitive,
    /// `*` is the only wildcard.
    #[arg(
        long = "allow-tool",
        value_name = "GLOB",
        env = "CLERK_MCP_ALLOW_TOOLS",
        value_delimiter = ','
    )]
    pub allow: Vec<String>,

    /// Hide tools whose name matches GLOB (repeatable); wins over --allow-tool. Calls to a
    /// hidden tool are refused without reaching the server. mcp-remote's --ignore-tool is
    /// the same flag.
    #[arg(
        long = "deny-tool",
        alias = "ignore-tool",
        value_name = "GLOB",
        env = "CLERK_MCP_DENY_TOOLS",
        value_delimiter = ','
    )]
    pub deny: Vec<String>,

    /// Offer only tools the server annotates `readOnlyHint: true`. The annotation is the
    /// server's own claim: a convenience, not a security boundary.
    #[arg(long, env = "CLERK_MCP_READ_ONLY", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0, default_missing_value = "true")]
    pub read_only: bool,

    /// Pin each tool's definition on first sight; hide a tool whose definition later
    /// changes until it is accepted with `clerk-mcp-server tools URL --accept`.
    #[arg(long, env = "CLERK_MCP_PIN_TOOLS", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0, default_missing_value = "true")]
    pub pin_tools: bool,
}

/// Sign-in (OAuth) options.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Sign-in")]
pub struct AuthArgs {
    /// A client id registered with the authorization server (skips registration).
    #[arg(long, value_name = "ID", env = "CLERK_MCP_CLIENT_ID")]
    pub client_id: Option<String>,

    /// The secret of --client-id. Prefer the environment variable: it stays out of `ps`.
    #[arg(
        long,
        value_name = "SECRET",
        env = "CLERK_MCP_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<String>,

    /// An https URL of a Client ID Metadata Document to use as the client id (CIMD).
    #[arg(long, value_name = "URL", env = "CLERK_MCP_CLIENT_METADATA_URL")]
    pub client_metadata_url: Option<String>,

    /// Scopes to request, space-separated (default: what the server asks for).
    #[arg(long, value_name = "SCOPES", env = "CLERK_MCP_SCOPE")]
    pub scope: Option<String>,

    /// The resource indicator to request tokens for (default: the server's).
    #[arg(long, value_name = "URL", env = "CLERK_MCP_RESOURCE")]
    pub resource: Option<String>,

    /// Extra authorization request parameter key=value (repeatable), for provider quirks.
    #[arg(long = "authorize-param", value_name = "KEY=VALUE")]
    pub authorize_params: Vec<String>,

    /// Path of the loopback redirect URI (default /callback; /oauth/callback where
    /// mcp-remote's redirect URI is used).
    #[arg(long, value_name = "PATH", env = "CLERK_MCP_CALLBACK_PATH")]
    pub callback_path: Option<String>,

    /// Host of the loopback redirect URI (default 127.0.0.1; localhost where mcp-remote's
    /// redirect URI is used). The listener always binds 127.0.0.1.
    #[arg(long, value_name = "HOST", env = "CLERK_MCP_HOST")]
    pub host: Option<String>,

    /// Send the browser to this URL (303) once the sign-in completed, instead of our page.
    #[arg(long, value_name = "URL", env = "CLERK_MCP_AUTH_SUCCESS_URL")]
    pub auth_success_url: Option<String>,

    /// A registered client as JSON, inline or @FILE: client_id, client_secret,
    /// token_endpoint_auth_method, scope (as mcp-remote takes it). ${VAR} expands from
    /// the environment.
    #[arg(
        long,
        value_name = "JSON|@FILE",
        env = "CLERK_MCP_STATIC_OAUTH_CLIENT_INFO",
        hide_env_values = true
    )]
    pub static_oauth_client_info: Option<String>,

    /// Fields merged into the registration request, as JSON inline or @FILE (as
    /// mcp-remote takes it). Its `scope` is the one requested.
    #[arg(
        long,
        value_name = "JSON|@FILE",
        env = "CLERK_MCP_STATIC_OAUTH_CLIENT_METADATA"
    )]
    pub static_oauth_client_metadata: Option<String>,

    /// The token endpoint for --client-credentials: discovery is skipped. https, or http
    /// on loopback.
    #[arg(long, value_name = "URL", env = "CLERK_MCP_TOKEN_ENDPOINT")]
    pub token_endpoint: Option<String>,

    /// Present the ID token, not the access token, to the server (renewed by the ID
    /// token's own expiry).
    #[arg(long, env = "CLERK_MCP_USE_ID_TOKEN", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0, default_missing_value = "true")]
    pub use_id_token: bool,

    /// Send no RFC 8707 `resource` parameter (for authorization servers that refuse it).
    #[arg(long, env = "CLERK_MCP_DISABLE_RESOURCE_PARAMETER", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0, default_missing_value = "true")]
    pub disable_resource_parameter: bool,

    /// Do not import a sign-in from mcp-remote's cache (~/.mcp-auth, or
    /// MCP_REMOTE_CONFIG_DIR) on the first start for a server.
    #[arg(long, env = "CLERK_MCP_NO_IMPORT", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0, default_missing_value = "true")]
    pub no_import: bool,

    /// Port of the loopback redirect URI (default: a stable port chosen per server).
    #[arg(long, value_name = "PORT", env = "CLERK_MCP_CALLBACK_PORT")]
    pub callback_port: Option<u16>,

    /// Print the sign-in URL instead of opening a browser.
    #[arg(long, env = "CLERK_MCP_NO_BROWSER", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0, default_missing_value = "true")]
    pub no_browser: bool,

    /// Sign in with a code shown on stderr (RFC 8628), for containers and SSH sessions.
    #[arg(long, env = "CLERK_MCP_DEVICE_CODE", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0, default_missing_value = "true")]
    pub device_code: bool,

    /// Seconds a sign-in may take before it is abandoned.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 300.0,
        env = "CLERK_MCP_AUTH_TIMEOUT"
    )]
    pub auth_timeout: f64,

    /// Where tokens and registrations are kept (default: the platform's config directory).
    #[arg(long, value_name = "DIR", env = "CLERK_MCP_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,

    /// A separate sign-in for the same server, e.g. `work` and `personal` accounts.
    #[arg(long, value_name = "NAME", env = "CLERK_MCP_PROFILE")]
    pub profile: Option<String>,

    #[command(flatten)]
    pub store: StoreArg,

    /// How to sign in: `browser` (a person: the browser, or --device-code),
    /// `client-credentials` (a machine: --client-id with --client-secret or --client-key),
    /// `jwt-bearer` (a workload: a platform-issued JWT from --assertion-file), or `id-jag`
    /// (enterprise SSO: the user's ID token exchanged at the IdP). Only `browser` opens a
    /// browser.
    #[arg(
        long,
        value_enum,
        value_name = "GRANT",
        default_value = "browser",
        env = "CLERK_MCP_GRANT"
    )]
    pub grant: GrantArg,

    /// Same as --grant client-credentials (as mcp-remote spells it).
    #[arg(long, env = "CLERK_MCP_CLIENT_CREDENTIALS", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0, default_missing_value = "true")]
    pub client_credentials: bool,

    /// A PEM private key (PKCS#8: EC P-256 or P-384, Ed25519, RSA) that signs the
    /// private_key_jwt client assertion of --grant client-credentials (RFC 7523).
    #[arg(long, value_name = "FILE", env = "CLERK_MCP_CLIENT_KEY")]
    pub client_key: Option<PathBuf>,

    /// The workload's JWT for --grant jwt-bearer (RFC 7523): a Kubernetes service-account
    /// token, a SPIFFE JWT-SVID, a CI OIDC token. Read again at each renewal, because
    /// platforms rotate it.
    #[arg(long, value_name = "FILE", env = "CLERK_MCP_ASSERTION_FILE")]
    pub assertion_file: Option<PathBuf>,

    /// --grant id-jag: the enterprise IdP's token endpoint (RFC 8693 token exchange).
    #[arg(long, value_name = "URL", env = "CLERK_MCP_IDP_TOKEN_ENDPOINT")]
    pub idp_token_endpoint: Option<String>,

    /// --grant id-jag: this client's id at the IdP.
    #[arg(long, value_name = "ID", env = "CLERK_MCP_IDP_CLIENT_ID")]
    pub idp_client_id: Option<String>,

    /// --grant id-jag: this client's secret at the IdP. Prefer the environment variable.
    #[arg(
        long,
        value_name = "SECRET",
        env = "CLERK_MCP_IDP_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub idp_client_secret: Option<String>,

    /// --grant id-jag: a file holding the user's ID token.
    #[arg(long, value_name = "FILE", env = "CLERK_MCP_ID_TOKEN_FILE")]
    pub id_token_file: Option<PathBuf>,

    /// --grant id-jag: a program that prints the user's ID token, split into words as a
    /// shell would (quotes honoured) but run without a shell.
    #[arg(
        long,
        value_name = "\"PROGRAM ARGS\"",
        env = "CLERK_MCP_ID_TOKEN_COMMAND"
    )]
    pub id_token_command: Option<String>,

    /// Never bind tokens to a DPoP key (RFC 9449), even where the authorization server
    /// offers it: tokens are then plain bearer tokens.
    #[arg(long, env = "CLERK_MCP_NO_DPOP", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0, default_missing_value = "true")]
    pub no_dpop: bool,
}

/// `--token-store`, shared by the proxy, `login`, `logout` and `status`.
#[derive(Args, Debug, Clone)]
pub struct StoreArg {
    /// Where tokens, registrations and DPoP keys are kept: `file` (in the config
    /// directory, mode 0600) or `keychain` (the macOS Keychain, the Windows Credential
    /// Manager, or the Secret Service on Linux). A keychain that does not answer is an
    /// error, never a quiet fall-back to files.
    #[arg(
        long = "token-store",
        value_enum,
        value_name = "WHERE",
        default_value = "file",
        env = "CLERK_MCP_TOKEN_STORE"
    )]
    pub token_store: TokenStoreArg,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenStoreArg {
    File,
    Keychain,
}

impl From<TokenStoreArg> for crate::auth::store::Kind {
    fn from(arg: TokenStoreArg) -> Self {
        match arg {
            TokenStoreArg::File => Self::File,
            TokenStoreArg::Keychain => Self::Keychain,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantArg {
    Browser,
    ClientCredentials,
    JwtBearer,
    IdJag,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolArg {
    Auto,
    Legacy,
    Modern,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportArg {
    /// Streamable HTTP, then HTTP+SSE on 404 or 405 (mcp-remote's http-first).
    #[value(alias = "http-first")]
    Auto,
    /// HTTP+SSE, then Streamable HTTP on 404 or 405 (as mcp-remote's sse-first).
    SseFirst,
    #[value(alias = "http-only")]
    StreamableHttp,
    #[value(alias = "sse-only")]
    Sse,
}
