//! Resolve command-line arguments and the environment into an immutable [`Config`].
//!
//! Everything that can be wrong with flags is found here, before any I/O, and reported
//! as a [`ConfigError`] that names the flag and what to do.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use crate::cli::{RemoteArgs, TransportArg};
use crate::error::ConfigError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportMode {
    /// Streamable HTTP, then HTTP+SSE.
    Auto,
    /// HTTP+SSE, then Streamable HTTP.
    SseFirst,
    StreamableHttp,
    Sse,
}

/// The era spoken to the server (`--protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolMode {
    /// The client's own era, translated only when the server shows it lacks it.
    Auto,
    /// Never translate a legacy client.
    Legacy,
    /// Translate a legacy client from the start.
    Modern,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub url: Url,
    /// User headers. Values are marked sensitive, so their `Debug` is redacted.
    pub headers: HeaderMap,
    pub transport: TransportMode,
    pub protocol: ProtocolMode,
    pub connect_timeout: Duration,
    /// Silence allowed on a request (`--request-timeout`, `--body-timeout`).
    pub request_timeout: Duration,
    /// `--headers-timeout`: the wait for response headers; `None` uses the request
    /// timeout.
    pub headers_timeout: Option<Duration>,
    /// `--ipv4`: connect over IPv4 only.
    pub ipv4: bool,
    /// `--keep-alive`/`--ping-interval`: ping a session quiet for this long.
    pub keep_alive: Option<Duration>,
    /// Keep the server's cookies for this process (off with `--disable-cookies`).
    pub cookies: bool,
    pub ca_file: Option<PathBuf>,
    /// `--tls-cert`/`--tls-key`: the client certificate and key, checked, as one PEM.
    pub tls_identity: Option<ClientIdentity>,
    pub max_message_size: usize,
    /// How long shutdown may spend ending the session (H-DELETE).
    pub shutdown_grace: Duration,
    pub auth: crate::auth::AuthConfig,
    /// `--allow-tool`, `--deny-tool`, `--read-only`.
    pub(crate) tools: crate::layer::policy::ToolPolicy,
    /// `--pin-tools`.
    pub(crate) pin_tools: bool,
}

impl Config {
    pub fn from_args(args: &RemoteArgs) -> Result<Config, ConfigError> {
        Self::resolve(args, &|name| std::env::var(name).ok())
    }

    /// Resolve with an injected environment, for tests.
    pub fn resolve(
        args: &RemoteArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let url = parse_url(&args.url, args.allow_http)?;
        let mut auth = auth_config(&args.auth, env)?;
        if let Some(raw) = &args.callback_port_positional {
            // mcp-remote's `URL PORT`: the callback port, unless --callback-port says.
            let port =
                raw.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| ConfigError::Invalid {
                        flag: "CALLBACK_PORT",
                        why: format!(
                            "{raw:?} after the URL is not a port; only the callback port (1-65535) \
                         may follow the URL"
                        ),
                    })?;
            auth.callback_port = auth.callback_port.or(Some(port));
        }
        let mut headers = HeaderMap::new();
        // Names and values before expansion, for mcp-remote's cache key.
        let mut raw_headers = Vec::new();
        if let Some(path) = &args.header_file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::HeaderFile {
                path: path.clone(),
                why: e.to_string(),
            })?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let origin = format!("{}:{}", path.display(), n + 1);
                raw_headers.extend(crate::auth::compat::header_for_hash(line));
                let (name, value) = parse_header(line, &origin, env)?;
                headers.append(name, value);
            }
        }
        // Read here rather than by clap, so an error names where the header came from.
        let (given, origin) = match env("CLERK_MCP_HEADERS") {
            Some(v) if args.headers.is_empty() => (
                v.split('\n').map(str::to_owned).collect(),
                "CLERK_MCP_HEADERS",
            ),
            _ => (args.headers.clone(), "--header"),
        };
        for raw in &given {
            if raw.trim().is_empty() {
                continue;
            }
            raw_headers.extend(crate::auth::compat::header_for_hash(raw));
            let (name, value) = parse_header(raw, origin, env)?;
            headers.append(name, value);
        }
        auth.mcp_remote = crate::auth::compat::McpRemote {
            hash: crate::auth::compat::hash(&crate::auth::compat::HashInputs {
                url: &args.url,
                resource: auth.resource.as_deref().filter(|_| !auth.no_resource),
                authorize_params: &auth.authorize_params,
                headers: raw_headers,
                client_metadata_url: auth.client_metadata_url.as_deref(),
                token_endpoint: auth.token_endpoint.as_ref().map(Url::as_str),
            }),
            cache_dir: crate::auth::compat::cache_dir(env).filter(|_| !args.auth.no_import),
        };
        if args.enable_proxy {
            tracing::info!(
                "--enable-proxy has no effect here: HTTPS_PROXY, HTTP_PROXY and NO_PROXY are always honoured"
            );
        }
        let ping = match args.ping_interval {
            Some(s) => Some(seconds("--ping-interval", s)?),
            None if args.keep_alive => Some(DEFAULT_PING_INTERVAL),
            None => None,
        };
        Ok(Config {
            url,
            headers,
            transport: match args.transport {
                TransportArg::Auto => TransportMode::Auto,
                TransportArg::SseFirst => TransportMode::SseFirst,
                TransportArg::StreamableHttp => TransportMode::StreamableHttp,
                TransportArg::Sse => TransportMode::Sse,
            },
            protocol: match args.protocol {
                crate::cli::ProtocolArg::Auto => ProtocolMode::Auto,
                crate::cli::ProtocolArg::Legacy => ProtocolMode::Legacy,
                crate::cli::ProtocolArg::Modern => ProtocolMode::Modern,
            },
            connect_timeout: seconds("--connect-timeout", args.connect_timeout)?,
            request_timeout: seconds_or_off("--request-timeout", args.request_timeout)?,
            headers_timeout: args
                .headers_timeout
                .map(|s| seconds_or_off("--headers-timeout", s))
                .transpose()?,
            ipv4: args.ipv4,
            keep_alive: ping,
            cookies: !args.disable_cookies,
            ca_file: args.ca_file.clone(),
            tls_identity: args
                .tls_cert
                .as_deref()
                .map(|cert| client_identity(cert, args.tls_key.as_deref()))
                .transpose()?,
            max_message_size: args.max_message_size.max(1024),
            shutdown_grace: Duration::from_secs(2),
            auth,
            tools: tool_policy(&args.tools)?,
            pin_tools: args.tools.pin_tools,
        })
    }
}

fn tool_policy(
    args: &crate::cli::ToolArgs,
) -> Result<crate::layer::policy::ToolPolicy, ConfigError> {
    use crate::layer::policy::Glob;
    let globs = |flag: &'static str, patterns: &[String]| {
        patterns
            .iter()
            .map(|p| Glob::new(p).map_err(|why| ConfigError::Invalid { flag, why }))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(crate::layer::policy::ToolPolicy {
        allow: globs("--allow-tool", &args.allow)?,
        deny: globs("--deny-tool", &args.deny)?,
        read_only: args.read_only,
    })
}

fn auth_config(
    args: &crate::cli::AuthArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<crate::auth::AuthConfig, ConfigError> {
    let invalid = |flag: &'static str, why: String| ConfigError::Invalid { flag, why };
    let mut authorize_params = Vec::new();
    for raw in &args.authorize_params {
        let (k, v) = raw
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| invalid("--authorize-param", format!("{raw:?} is not key=value")))?;
        let k = k.trim();
        if crate::auth::flow::RESERVED_PARAMS.contains(&k) {
            return Err(invalid(
                "--authorize-param",
                format!("{k:?} is set by the sign-in flow itself and cannot be overridden"),
            ));
        }
        authorize_params.push((k.to_owned(), v.to_owned()));
    }
    if let Some(path) = &args.callback_path
        && !path.starts_with('/')
    {
        return Err(invalid("--callback-path", "it must start with /".into()));
    }
    if let Some(host) = &args.host
        && (host.is_empty() || host.contains(['/', '?', '#', '@', ' ']))
    {
        return Err(invalid(
            "--host",
            format!("{host:?} is not a host name (e.g. localhost or 127.0.0.1)"),
        ));
    }
    let client_metadata_url = args.client_metadata_url.as_deref().map(str::trim);
    if let Some(u) = client_metadata_url {
        let url = Url::parse(u).map_err(|e| invalid("--client-metadata-url", e.to_string()))?;
        if url.scheme() != "https" && !is_loopback(&url) || url.path() == "/" {
            return Err(invalid(
                "--client-metadata-url",
                "a client metadata document URL must be https and have a path".into(),
            ));
        }
    }
    let success_url = args
        .auth_success_url
        .as_deref()
        .map(success_url)
        .transpose()?;
    let info = args
        .static_oauth_client_info
        .as_deref()
        .map(|v| static_client_info(v, env))
        .transpose()?;
    let client_metadata = args
        .static_oauth_client_metadata
        .as_deref()
        .map(|v| static_json("--static-oauth-client-metadata", v, None))
        .transpose()?;
    // The static client stands in for --client-id and --client-secret.
    let mut args = args.clone();
    if let Some(info) = &info {
        if args.client_id.is_some() {
            return Err(invalid(
                "--static-oauth-client-info",
                "it names the client; leave out --client-id".into(),
            ));
        }
        args.client_id = Some(info.client_id.clone());
        args.client_secret = args.client_secret.or_else(|| info.client_secret.clone());
    }
    let args = &args;
    let grant = grant(args)?;
    let token_endpoint = args
        .token_endpoint
        .as_deref()
        .map(|u| token_endpoint(u, &grant))
        .transpose()?;
    // mcp-remote: an empty --resource is the same as --disable-resource-parameter.
    let resource = args.resource.as_deref().map(str::trim);
    let no_resource = args.disable_resource_parameter || resource == Some("");
    if args.disable_resource_parameter && resource.is_some_and(|r| !r.is_empty()) {
        tracing::warn!("--disable-resource-parameter wins over --resource: no resource is sent");
    }
    let config_dir = match &args.config_dir {
        Some(d) => d.clone(),
        None => crate::auth::store::default_dir().ok_or_else(|| {
            invalid(
                "--config-dir",
                "no home directory to keep sign-in tokens in; pass --config-dir".into(),
            )
        })?,
    };
    let scope = args.scope.clone().or_else(|| {
        client_metadata
            .as_ref()
            .and_then(|m| m.get("scope")?.as_str())
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned)
    });
    Ok(crate::auth::AuthConfig {
        client_id: args.client_id.clone(),
        client_secret: args
            .client_secret
            .clone()
            .map(crate::auth::store::Secret::new),
        client_metadata_url: client_metadata_url.map(str::to_owned),
        scope,
        resource: resource.filter(|r| !r.is_empty()).map(str::to_owned),
        authorize_params,
        callback_path: args.callback_path.clone(),
        callback_port: args.callback_port,
        callback_host: args.host.clone(),
        success_url,
        static_client: info.is_some(),
        static_auth_method: info.as_ref().and_then(|i| i.auth_method.clone()),
        static_scope: info.and_then(|i| i.scope),
        client_metadata,
        token_endpoint,
        use_id_token: args.use_id_token,
        no_resource,
        mcp_remote: Default::default(),
        profile: args.profile.as_deref().map(profile).transpose()?,
        token_store: args.store.token_store.into(),
        no_browser: args.no_browser,
        browser: env("BROWSER").filter(|b| !b.is_empty()),
        device_code: args.device_code,
        timeout: seconds("--auth-timeout", args.auth_timeout)?,
        config_dir,
        interactive: false,
        grant,
        dpop: !args.no_dpop,
    })
}

/// `--profile`: a short name (letters, digits, `.`, `_`, `-`).
fn profile(name: &str) -> Result<String, ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(ConfigError::Invalid {
            flag: "--profile",
            why: format!(
                "{name:?} is not a profile name (letters, digits, '.', '_', '-'; at most 64)"
            ),
        });
    }
    Ok(name.to_owned())
}

/// `--auth-success-url`: https, or http on loopback; nothing that could carry a secret
/// or be appended to (no credentials, query or fragment).
fn success_url(raw: &str) -> Result<Url, ConfigError> {
    let invalid = |why: &str| ConfigError::Invalid {
        flag: "--auth-success-url",
        why: format!("{raw:?} {why}"),
    };
    let url = Url::parse(raw.trim()).map_err(|e| invalid(&format!("is not a URL ({e})")))?;
    if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(&url)) {
        return Err(invalid("must be https (or http on loopback)"));
    }
    if !url.username().is_empty() || url.password().is_some() || raw.contains(['?', '#']) {
        return Err(invalid("must have no credentials, query or fragment"));
    }
    Ok(url)
}

/// `--token-endpoint`: only for the client credentials grant; https, or http on
/// loopback; no credentials or fragment.
fn token_endpoint(raw: &str, grant: &crate::auth::Grant) -> Result<Url, ConfigError> {
    let invalid = |why: String| ConfigError::Invalid {
        flag: "--token-endpoint",
        why,
    };
    if !matches!(grant, crate::auth::Grant::ClientCredentials { .. }) {
        return Err(invalid(
            "it is for --client-credentials (a machine's grant); pass that too".into(),
        ));
    }
    let url = Url::parse(raw.trim()).map_err(|e| invalid(format!("{raw:?}: {e}")))?;
    if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(&url)) {
        return Err(invalid(format!(
            "{raw:?} must be https (or http on loopback)"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(invalid(format!(
            "{raw:?} must have no credentials or fragment"
        )));
    }
    Ok(url)
}

/// A view of the environment (injected in tests).
type Env<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// What `--static-oauth-client-info` gives.
struct StaticClient {
    client_id: String,
    client_secret: Option<String>,
    auth_method: Option<String>,
    scope: Option<String>,
}

/// `--static-oauth-client-info`: JSON inline or `@FILE`, `${VAR}` expanded first (an
/// unset variable is an error, not sent as text as mcp-remote does).
fn static_client_info(
    value: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<StaticClient, ConfigError> {
    const FLAG: &str = "--static-oauth-client-info";
    let json = static_json(FLAG, value, Some(env))?;
    let text = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let client_id =
        text("client_id")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ConfigError::Invalid {
                flag: FLAG,
                why: "it has no \"client_id\"".into(),
            })?;
    Ok(StaticClient {
        client_id,
        client_secret: text("client_secret").filter(|s| !s.is_empty()),
        auth_method: text("token_endpoint_auth_method"),
        scope: text("scope").filter(|s| !s.trim().is_empty()),
    })
}

/// A JSON object given inline or as `@FILE`; with `env`, `${VAR}` expands in the text.
fn static_json(
    flag: &'static str,
    value: &str,
    env: Option<&Env<'_>>,
) -> Result<serde_json::Map<String, serde_json::Value>, ConfigError> {
    let invalid = |why: String| ConfigError::Invalid { flag, why };
    let (text, path) = crate::auth::compat::json_arg(value).map_err(invalid)?;
    let from = match &path {
        Some(p) => format!("{} ", p.display()),
        None => String::new(),
    };
    let text = match env {
        Some(env) => expand_env(&text, env).map_err(|var| {
            invalid(format!(
                "{from}uses ${{{var}}}, which is not set in the environment"
            ))
        })?,
        None => text,
    };
    match serde_json::from_str(&text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid(format!("{from}is not a JSON object"))),
        Err(e) => Err(invalid(format!(
            "{from}is not JSON ({e}); give a JSON object, or @FILE"
        ))),
    }
}

/// `--grant id-jag` and everything it needs, checked before the start.
fn id_jag(args: &crate::cli::AuthArgs) -> Result<crate::auth::Grant, ConfigError> {
    let need = |flag: &'static str, value: &Option<String>| {
        value.clone().ok_or(ConfigError::Invalid {
            flag,
            why: "--grant id-jag needs it".into(),
        })
    };
    let token_endpoint = need("--idp-token-endpoint", &args.idp_token_endpoint)?;
    Url::parse(&token_endpoint).map_err(|e| ConfigError::Invalid {
        flag: "--idp-token-endpoint",
        why: e.to_string(),
    })?;
    let client_id = need("--idp-client-id", &args.idp_client_id)?;
    need("--client-id", &args.client_id)?;
    let id_token = match (&args.id_token_file, &args.id_token_command) {
        (Some(f), None) => crate::auth::IdToken::File(f.clone()),
        (None, Some(c)) => {
            let argv = split_command(c).map_err(|why| ConfigError::Invalid {
                flag: "--id-token-command",
                why,
            })?;
            crate::auth::IdToken::Command(argv)
        }
        _ => {
            return Err(ConfigError::Invalid {
                flag: "--id-token-file",
                why: "--grant id-jag needs the user's ID token: --id-token-file FILE or \
                      --id-token-command \"PROGRAM ARGS\" (one of them)"
                    .into(),
            });
        }
    };
    Ok(crate::auth::Grant::IdJag(std::sync::Arc::new(
        crate::auth::IdJag {
            token_endpoint,
            client_id,
            client_secret: args
                .idp_client_secret
                .clone()
                .map(crate::auth::store::Secret::new),
            id_token,
        },
    )))
}

/// Split a command line into words as a POSIX shell would (quotes and backslashes),
/// expanding nothing: the words are run without a shell.
fn split_command(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("an unclosed single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("an unclosed double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("an unclosed double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("a trailing backslash".into()),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err("it is empty".into());
    }
    Ok(words)
}

/// `--grant` (or `--client-credentials`) with what it needs: a machine grant names its
/// client, and a key file is read and checked here, so a bad one stops the start.
fn grant(args: &crate::cli::AuthArgs) -> Result<crate::auth::Grant, ConfigError> {
    use crate::cli::GrantArg;
    let chosen = if args.client_credentials {
        GrantArg::ClientCredentials
    } else {
        args.grant
    };
    if chosen != GrantArg::JwtBearer && args.assertion_file.is_some() {
        return Err(ConfigError::Invalid {
            flag: "--assertion-file",
            why: "it is the assertion of --grant jwt-bearer; pass that too".into(),
        });
    }
    if chosen == GrantArg::IdJag {
        return id_jag(args);
    }
    if chosen == GrantArg::JwtBearer {
        let Some(path) = &args.assertion_file else {
            return Err(ConfigError::Invalid {
                flag: "--assertion-file",
                why: "--grant jwt-bearer needs the workload's JWT in a file (CLERK_MCP_ASSERTION_FILE)"
                    .into(),
            });
        };
        // Read now so a wrong path stops the start; read again at each renewal.
        crate::auth::read_assertion(path).map_err(|why| ConfigError::Invalid {
            flag: "--assertion-file",
            why,
        })?;
        return Ok(crate::auth::Grant::JwtBearer {
            assertion_file: path.clone(),
        });
    }
    if chosen == GrantArg::Browser {
        if args.client_key.is_some() {
            return Err(ConfigError::Invalid {
                flag: "--client-key",
                why: "it signs the client assertion of --grant client-credentials; pass that too"
                    .into(),
            });
        }
        return Ok(crate::auth::Grant::Browser);
    }
    if args.client_id.is_none() {
        return Err(ConfigError::Invalid {
            flag: "--client-id",
            why: "--grant client-credentials needs the client's id (CLERK_MCP_CLIENT_ID)".into(),
        });
    }
    let key = match (&args.client_key, &args.client_secret) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Invalid {
                flag: "--client-key",
                why: "give --client-secret or --client-key, not both".into(),
            });
        }
        (None, None) => {
            return Err(ConfigError::Invalid {
                flag: "--client-secret",
                why: "--grant client-credentials needs --client-secret (CLERK_MCP_CLIENT_SECRET) \
                      or --client-key FILE"
                    .into(),
            });
        }
        (Some(path), None) => {
            let invalid = |why: String| ConfigError::Invalid {
                flag: "--client-key",
                why: format!("{}: {why}", path.display()),
            };
            let pem = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
            Some(crate::auth::assertion::SigningKey::from_pem(&pem).map_err(invalid)?)
        }
        (None, Some(_)) => None,
    };
    Ok(crate::auth::Grant::ClientCredentials { key })
}

/// mcp-remote's keep-alive period.
const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);

/// A timeout that `0` turns off: so long that it never fires.
pub(crate) const OFF: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn seconds_or_off(flag: &'static str, value: f64) -> Result<Duration, ConfigError> {
    if value == 0.0 {
        return Ok(OFF);
    }
    seconds(flag, value)
}

fn seconds(flag: &'static str, value: f64) -> Result<Duration, ConfigError> {
    if value.is_finite() && value > 0.0 && value < 1e9 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(ConfigError::Invalid {
            flag,
            why: format!("{value} is not a positive number of seconds"),
        })
    }
}

/// The subcommand a mistyped word was most likely meant to be (two edits at most).
fn suggest_command(word: &str) -> Option<&'static str> {
    const COMMANDS: [&str; 7] = [
        "check",
        "login",
        "logout",
        "tools",
        "status",
        "self-update",
        "help",
    ];
    let word = word.trim().to_ascii_lowercase();
    if word.contains(['.', '/', ':']) {
        return None;
    }
    COMMANDS
        .into_iter()
        .map(|c| (edit_distance(&word, c), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance (short ASCII words only).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

pub fn parse_url(raw: &str, allow_http: bool) -> Result<Url, ConfigError> {
    let url = Url::parse(raw.trim()).map_err(|e| {
        if e != url::ParseError::RelativeUrlWithoutBase {
            return ConfigError::Url {
                url: raw.to_owned(),
                why: e.to_string(),
            };
        }
        // No scheme: a subcommand with a typo, or a host written without https://.
        if let Some(suggestion) = suggest_command(raw) {
            return ConfigError::UnknownCommand {
                given: raw.to_owned(),
                suggestion,
            };
        }
        let with = format!("https://{}", raw.trim());
        let why = match Url::parse(&with) {
            Ok(u)
                if u.host_str()
                    .is_some_and(|h| h.contains('.') || h == "localhost") =>
            {
                format!("it has no scheme; add https:// ({with})")
            }
            _ => "not a URL; give the server's full URL, such as https://example.com/mcp".into(),
        };
        ConfigError::Url {
            url: raw.to_owned(),
            why,
        }
    })?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http || is_loopback(&url) => {}
        "http" => {
            return Err(ConfigError::Url {
                url: redact_url(&url),
                why: "plain http:// is refused for a host that is not loopback, because tokens \
                      and messages would travel unencrypted; use https://, or pass --allow-http \
                      if you really mean it"
                    .into(),
            });
        }
        other => {
            return Err(ConfigError::Url {
                url: redact_url(&url),
                why: format!("unsupported scheme {other:?}; use https:// (or http:// on loopback)"),
            });
        }
    }
    if url.host_str().is_none() {
        return Err(ConfigError::Url {
            url: raw.to_owned(),
            why: "the URL has no host".into(),
        });
    }
    Ok(url)
}

pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The URL without credentials or query, for messages and logs.
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        u.set_query(Some("…"));
    }
    u.to_string()
}

/// One `Name: value` header (from --header or --header-file), with `${VAR}` expanded.
/// The value is marked sensitive, so it never shows in `Debug` output.
pub fn parse_header(
    raw: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(HeaderName, HeaderValue), ConfigError> {
    let bad = |why: String| ConfigError::Header {
        origin: origin.to_owned(),
        why,
    };
    let (name, value) = raw
        .split_once(':')
        .ok_or_else(|| bad("expected \"Name: value\"".into()))?;
    let name = name.trim();
    let header = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| bad(format!("{name:?} is not a valid header name")))?;
    let value = expand_env(value.trim(), env).map_err(|var| {
        bad(format!(
            "the environment variable {var} is not set (used by header {name}); set it or remove the header"
        ))
    })?;
    let mut value = HeaderValue::from_str(&value).map_err(|_| {
        // The value itself is never shown: it is usually a secret.
        bad(format!(
            "the value of header {name} contains characters not allowed in HTTP headers"
        ))
    })?;
    value.set_sensitive(true);
    Ok((header, value))
}

/// Expand `${VAR}`; return the first unset variable's name as the error.
pub fn expand_env(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let var = &after[..end];
        out.push_str(&env(var).ok_or_else(|| var.to_owned())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A client certificate with its key, checked at startup (mutual TLS).
#[derive(Clone)]
pub struct ClientIdentity {
    /// The certificate chain, then the key, as PEM (what reqwest takes).
    pem: Vec<u8>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientIdentity(redacted)")
    }
}

impl ClientIdentity {
    pub(crate) fn identity(&self) -> Result<reqwest::Identity, ConfigError> {
        reqwest::Identity::from_pem(&self.pem).map_err(|e| ConfigError::Client(e.to_string()))
    }
}

/// `--tls-cert` and `--tls-key` (or the key in the certificate's file): readable PEM, a
/// key that matches the certificate, and a certificate valid now. Errors name the file.
fn client_identity(
    cert_path: &Path,
    key_path: Option<&Path>,
) -> Result<ClientIdentity, ConfigError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |flag: &'static str, path: &Path, why: String| ConfigError::Invalid {
        flag,
        why: format!("{}: {why}", path.display()),
    };
    let cert_pem =
        std::fs::read(cert_path).map_err(|e| bad("--tls-cert", cert_path, e.to_string()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad("--tls-cert", cert_path, format!("not PEM ({e})")))?;
    if certs.is_empty() {
        return Err(bad(
            "--tls-cert",
            cert_path,
            "no PEM certificate in it".into(),
        ));
    }
    let (key_flag, key_path) = match key_path {
        Some(p) => ("--tls-key", p),
        None => ("--tls-cert", cert_path),
    };
    let key_pem = match key_path {
        p if p == cert_path => cert_pem.clone(),
        p => std::fs::read(p).map_err(|e| bad(key_flag, p, e.to_string()))?,
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        let why = match key_flag {
            "--tls-key" => format!("no PEM private key in it ({e})"),
            _ => format!("no PEM private key in it ({e}); give it with --tls-key FILE"),
        };
        bad(key_flag, key_path, why)
    })?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| bad(key_flag, key_path, format!("an unusable private key ({e})")))?;
    rustls::sign::CertifiedKey::new(certs.clone(), signer)
        .keys_match()
        .map_err(|_| {
            bad(
                key_flag,
                key_path,
                format!(
                    "this key does not belong to the certificate in {}",
                    cert_path.display()
                ),
            )
        })?;
    let (_, leaf) = x509_parser::parse_x509_certificate(&certs[0]).map_err(|e| {
        bad(
            "--tls-cert",
            cert_path,
            format!("not an X.509 certificate ({e})"),
        )
    })?;
    let validity = leaf.validity();
    if !validity.is_valid() {
        return Err(bad(
            "--tls-cert",
            cert_path,
            format!(
                "the certificate is not valid now (valid from {} to {})",
                validity.not_before, validity.not_after
            ),
        ));
    }
    // reqwest takes the chain and the key as one PEM.
    let mut pem = Vec::new();
    for cert in &certs {
        pem.extend_from_slice(pem_block("CERTIFICATE", cert).as_bytes());
    }
    let label = match &key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    pem.extend_from_slice(pem_block(label, key.secret_der()).as_bytes());
    Ok(ClientIdentity { pem })
}

/// One PEM block.
fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Read extra PEM roots (--ca-file).
pub fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, ConfigError> {
    let bad = |why: String| ConfigError::CaFile {
        path: path.to_owned(),
        why,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificates found in it".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::split_command;

    #[test]
    fn commands_split_as_a_shell_would_without_expanding() {
        let w = |s: &str| split_command(s).unwrap();
        assert_eq!(
            w("gcloud auth print-identity-token"),
            ["gcloud", "auth", "print-identity-token"]
        );
        assert_eq!(
            w(r#"sh -c 'echo "$TOKEN"' x"y z"\ w"#),
            ["sh", "-c", r#"echo "$TOKEN""#, "xy z w"]
        );
        assert_eq!(w(r#""a\"b" '' c"#), [r#"a"b"#, "", "c"]);
        for bad in ["'open", "\"open", "trail\\", "  "] {
            assert!(split_command(bad).is_err(), "{bad:?}");
        }
    }

    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_owned())
    }

    #[test]
    fn expansion() {
        assert_eq!(
            expand_env("Bearer ${TOKEN}", &env).unwrap(),
            "Bearer s3cret"
        );
        assert_eq!(expand_env("a$b${", &env).unwrap(), "a$b${");
        assert_eq!(expand_env("${NOPE}", &env).unwrap_err(), "NOPE");
    }

    #[test]
    fn header_errors_name_the_variable_not_the_value() {
        let err = parse_header("X-Key: ${MISSING}", "--header", &env).unwrap_err();
        assert!(err.to_string().contains("MISSING"), "{err}");
        let (_, v) = parse_header("Authorization: Bearer ${TOKEN}", "--header", &env).unwrap();
        assert!(v.is_sensitive());
        assert!(!format!("{v:?}").contains("s3cret"));
    }

    #[test]
    fn http_only_on_loopback() {
        assert!(parse_url("http://127.0.0.1:3/mcp", false).is_ok());
        assert!(parse_url("http://localhost/mcp", false).is_ok());
        assert!(parse_url("http://[::1]:8/mcp", false).is_ok());
        assert!(parse_url("http://example.com/mcp", false).is_err());
        assert!(parse_url("http://example.com/mcp", true).is_ok());
        assert!(parse_url("ftp://example.com/", true).is_err());
    }
}
