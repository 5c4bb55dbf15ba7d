//! mcp-remote 0.15.1 compatibility: its cache key (an MD5 hash over the server URL and
//! the options that change the tokens), the redirect URI it registers, and its token
//! cache, which a user's first start imports (read-only).
//!
//! Registrations made for mcp-remote (a static client, a Client ID Metadata Document,
//! an imported registration) list mcp-remote's redirect URI, so a sign-in with them must
//! use exactly that URI. The recipe was read from mcp-remote 0.15.1's source and checked
//! against its own output (docs/mcp-remote-0.15.1.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde::Deserialize;

use crate::auth::store::{Secret, Tokens};

/// mcp-remote's callback port range: `3335 + (first 16 bits of the hash) % 45816`.
const PORT_BASE: u16 = 3335;
const PORT_SPAN: u16 = 45816;

/// What mcp-remote would call this server, and where its cache is.
#[derive(Clone, Debug, Default)]
pub(crate) struct McpRemote {
    /// The cache key: 32 lowercase hex digits.
    pub(crate) hash: String,
    /// `~/.mcp-auth/mcp-remote-v1` (or under `MCP_REMOTE_CONFIG_DIR`); `None` turns the
    /// import off (`--no-import`, or no home directory).
    pub(crate) cache_dir: Option<PathBuf>,
}

/// The inputs of mcp-remote's `getServerUrlHash`, as the user wrote them.
#[derive(Default)]
pub(crate) struct HashInputs<'a> {
    /// The URL argument exactly as given (mcp-remote does not normalise it).
    pub(crate) url: &'a str,
    /// The trimmed `--resource`, unless the resource parameter is disabled.
    pub(crate) resource: Option<&'a str>,
    pub(crate) authorize_params: &'a [(String, String)],
    /// Header names and values before `${VAR}` expansion.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) client_metadata_url: Option<&'a str>,
    /// Already normalised as `new URL(v).toString()` does.
    pub(crate) token_endpoint: Option<&'a str>,
}

/// mcp-remote's `getServerUrlHash`: the parts joined by `|`, absent ones skipped, maps
/// as compact JSON with sorted keys (a later duplicate key wins).
pub(crate) fn hash(inputs: &HashInputs<'_>) -> String {
    let mut parts = vec![inputs.url.to_owned()];
    if let Some(r) = inputs.resource.filter(|r| !r.is_empty()) {
        parts.push(r.to_owned());
    }
    let params: BTreeMap<&str, &str> = inputs
        .authorize_params
        .iter()
        .map(|(k, v)| (k.trim(), v.as_str()))
        .collect();
    if !params.is_empty() {
        parts.push(serde_json::to_string(&params).unwrap_or_default());
    }
    let headers: BTreeMap<&str, &str> = inputs
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if !headers.is_empty() {
        parts.push(serde_json::to_string(&headers).unwrap_or_default());
    }
    parts.extend(inputs.client_metadata_url.map(str::to_owned));
    parts.extend(inputs.token_endpoint.map(str::to_owned));
    Md5::digest(parts.join("|").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// mcp-remote's `--header` syntax, `^([A-Za-z0-9_-]+):\s*(.*)$`, for the hash only.
pub(crate) fn header_for_hash(raw: &str) -> Option<(String, String)> {
    let (name, value) = raw.split_once(':')?;
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    valid.then(|| (name.to_owned(), value.trim_start().to_owned()))
}

/// The port mcp-remote derives for a hash.
pub(crate) fn port(hash: &str) -> u16 {
    let n = u16::from_str_radix(hash.get(..4).unwrap_or("0"), 16).unwrap_or(0);
    PORT_BASE + n % PORT_SPAN
}

/// mcp-remote's default redirect host: `localhost`, but `127.0.0.1` on Windows.
pub(crate) fn default_host() -> &'static str {
    if cfg!(windows) {
        "127.0.0.1"
    } else {
        "localhost"
    }
}

/// mcp-remote's default callback path.
pub(crate) const CALLBACK_PATH: &str = "/oauth/callback";

/// `~/.mcp-auth/mcp-remote-v1`, or `$MCP_REMOTE_CONFIG_DIR/mcp-remote-v1` when set.
pub(crate) fn cache_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let base = match env("MCP_REMOTE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env("HOME").filter(|h| !h.is_empty()).or_else(|| {
            etcetera::home_dir()
                .ok()
                .map(|h| h.to_string_lossy().into_owned())
        })?)
        .join(".mcp-auth"),
    };
    Some(base.join("mcp-remote-v1"))
}

/// A sign-in found in mcp-remote's cache.
#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) tokens: Tokens,
    /// The issuer the tokens were stamped with, when they were.
    pub(crate) issuer: Option<String>,
    /// The dynamic registration that obtained them, when mcp-remote made one.
    pub(crate) client: Option<CachedClient>,
    /// The tokens file, for the notice.
    pub(crate) path: PathBuf,
}

#[derive(Debug)]
pub(crate) struct CachedClient {
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<Secret>,
    pub(crate) auth_method: Option<String>,
    pub(crate) redirect_uri: String,
}

/// `<hash>_tokens.json` as mcp-remote 0.15.1 writes it (the SDK's token schema plus
/// `issuer`, `expires_at` in milliseconds and `requested_scope`).
#[derive(Deserialize)]
struct TokensFile {
    access_token: String,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    expires_at: Option<u64>,
}

/// `<hash>_client_info.json`: the registration response plus `issuer`.
#[derive(Deserialize)]
struct ClientFile {
    client_id: String,
    redirect_uris: Vec<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

/// Read (never write) mcp-remote's entry for `hash`. A missing or unreadable entry is
/// `None`; a malformed one is logged and skipped.
pub(crate) fn read(dir: &Path, hash: &str) -> Option<Cached> {
    let tokens_path = dir.join(format!("{hash}_tokens.json"));
    let text = std::fs::read_to_string(&tokens_path).ok()?;
    let file: TokensFile = match serde_json::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            tracing::info!(path = %tokens_path.display(), "mcp-remote's token file cannot be read ({e}); not imported");
            return None;
        }
    };
    let client = std::fs::read_to_string(dir.join(format!("{hash}_client_info.json")))
        .ok()
        .and_then(|t| serde_json::from_str::<ClientFile>(&t).ok())
        .and_then(|c| {
            Some(CachedClient {
                redirect_uri: c.redirect_uris.into_iter().next()?,
                client_id: c.client_id,
                client_secret: c.client_secret.map(Secret::new),
                auth_method: c.token_endpoint_auth_method,
            })
        });
    Some(Cached {
        tokens: Tokens {
            access_token: Secret::new(file.access_token),
            refresh_token: file.refresh_token.map(Secret::new),
            expires_at: file.expires_at.map(|ms| ms / 1000),
            scope: file.scope,
            token_type: file.token_type,
            id_token: file.id_token.map(Secret::new),
        },
        issuer: file.issuer,
        client,
        path: tokens_path,
    })
}

/// `JSON` or `@FILE`, as mcp-remote reads --static-oauth-client-info and -metadata.
pub(crate) fn json_arg(value: &str) -> Result<(String, Option<PathBuf>), String> {
    match value.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map(|t| (t, Some(PathBuf::from(path))))
            .map_err(|e| format!("cannot read {path}: {e}")),
        None => Ok((value.to_owned(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_only(url: &str) -> String {
        hash(&HashInputs {
            url,
            ..Default::default()
        })
    }

    /// Vectors computed by mcp-remote 0.15.1's own `parseCommandLineArgs`.
    #[test]
    fn hash_and_port_match_mcp_remote() {
        let h = url_only("https://mcp.example.com/mcp");
        assert_eq!(h, "94baabe3c3fadb285b26c035e4e86046");
        assert_eq!(port(&h), 41409);
        assert_eq!(port(&url_only("https://mcp.atlassian.com/v1/sse")), 5598);
        assert_eq!(
            url_only("http://localhost:8080/sse"),
            "4f9e15cb6d1c9bac9123df0228adddd1"
        );
        assert_eq!(port(&url_only("http://localhost:8080/sse")), 23717);
        let with_resource = hash(&HashInputs {
            url: "https://mcp.atlassian.com/v1/sse",
            resource: Some("https://tenant1.atlassian.net/"),
            ..Default::default()
        });
        assert_eq!(with_resource, "224d1023ed8b747f99479d42f28f0bb6");
        assert_eq!(port(&with_resource), 12116);
        let params = [
            ("prompt".to_owned(), "consent".to_owned()),
            ("access_type".to_owned(), "offline".to_owned()),
        ];
        let full = hash(&HashInputs {
            url: "https://mcp.example.com/mcp",
            authorize_params: &params,
            headers: ["X-Tenant: acme", "Authorization: Bearer ${AUTH_TOKEN}"]
                .iter()
                .filter_map(|h| header_for_hash(h))
                .collect(),
            ..Default::default()
        });
        assert_eq!(full, "dcd2ead9682e7de47de738264dc4cdb0");
        assert_eq!(port(&full), 14049);
        let machine = hash(&HashInputs {
            url: "https://api.example.com/mcp",
            resource: Some("https://api.example.com/"),
            client_metadata_url: Some("https://client.example.com/meta.json"),
            token_endpoint: Some("https://auth.example.com/"),
            ..Default::default()
        });
        assert_eq!(machine, "c52dd41dc6e3916d64053e7762f0d6a7");
        assert_eq!(port(&machine), 7996);
    }
}
