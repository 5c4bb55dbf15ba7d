//! Token and client-registration files.
//!
//! - One token file per server identity, `tokens/<host>-<hash>.json`; one registration
//!   file per authorization server, `clients/<hash of issuer>.json` (A-ISSUER-KEY).
//! - Files are written atomically (temp file + rename) with mode 0600, in a 0700
//!   directory. No version in the path, so upgrades keep them.
//! - A corrupt file is reported and treated as absent; the next save replaces it.
//! - `lock` takes an OS file lock, so exactly one instance signs in or refreshes.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A secret string: `Debug` and `Display` never show it.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Tokens {
    pub(crate) access_token: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<Secret>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
    /// `Bearer`, or `DPoP` for a token bound to the record's DPoP key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) token_type: Option<String>,
    /// The OpenID Connect ID token, when one was issued (`--use-id-token` presents it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id_token: Option<Secret>,
}

impl Tokens {
    /// Whether the token is presented with the DPoP scheme (RFC 9449 §7.1).
    pub(crate) fn dpop_bound(&self) -> bool {
        self.token_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("dpop"))
    }
}

impl Tokens {
    /// Expired, or expiring within `margin`.
    pub(crate) fn expiring(&self, margin: Duration) -> bool {
        self.expires_at
            .is_some_and(|at| at <= now_secs() + margin.as_secs())
    }

    /// The credential presented to the server, and when it expires: the ID token (by
    /// its own `exp`) for `--use-id-token`, else the access token. `None` for the ID
    /// token when none was issued.
    pub(crate) fn presented(&self, id_token: bool) -> Option<(&Secret, Option<u64>)> {
        if !id_token {
            return Some((&self.access_token, self.expires_at));
        }
        let token = self.id_token.as_ref()?;
        Some((token, jwt_exp(token.expose()).or(self.expires_at)))
    }

    /// Whether the presented credential expires within `margin`.
    pub(crate) fn presented_expiring(&self, id_token: bool, margin: Duration) -> bool {
        match self.presented(id_token) {
            Some((_, at)) => at.is_some_and(|at| at <= now_secs() + margin.as_secs()),
            None => self.expiring(margin),
        }
    }
}

impl Tokens {
    /// Who the tokens are for, from the ID token's claims: the e-mail, else the user
    /// name, else the subject. Read without checking the signature: it is only shown.
    pub(crate) fn account(&self) -> Option<String> {
        let claims = jwt_claims(self.id_token.as_ref()?.expose())?;
        ["email", "preferred_username", "sub"]
            .iter()
            .find_map(|k| claims.get(*k)?.as_str().map(str::to_owned))
    }
}

/// The claims of a JWT, unverified.
fn jwt_claims(jwt: &str) -> Option<serde_json::Value> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The `exp` claim of a JWT, read without checking its signature (it only schedules
/// renewal; the server checks the token).
pub(crate) fn jwt_exp(jwt: &str) -> Option<u64> {
    jwt_claims(jwt)?.get("exp")?.as_u64()
}

/// Everything known about signing in to one server.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ServerRecord {
    pub(crate) server_url: String,
    pub(crate) resource: String,
    pub(crate) issuer: String,
    pub(crate) token_endpoint: String,
    pub(crate) tokens: Tokens,
    /// The client that obtained the tokens: when its registration is dropped, so are they.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client_id: Option<String>,
    /// RFC 7009, from the metadata at sign-in: `logout` revokes the tokens there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) revocation_endpoint: Option<String>,
    /// The DPoP key the tokens are bound to (RFC 9449), kept with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dpop_key: Option<crate::auth::dpop::KeyRecord>,
    /// `--profile`, when the sign-in was made under one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) profile: Option<String>,
    /// Who signed in (e-mail, user name or subject), from the ID token, for `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) account: Option<String>,
}

/// A client registered with (or configured for) one authorization server.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ClientRecord {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client_secret: Option<Secret>,
    /// `none`, `client_secret_post` or `client_secret_basic`.
    pub(crate) auth_method: String,
    pub(crate) redirect_uri: String,
}

pub(crate) struct Store {
    dir: PathBuf,
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A short stable hex digest (not a security boundary: file naming only).
pub(crate) fn digest(parts: &[&str]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p.as_bytes());
        ctx.update(&[0]);
    }
    ctx.finish().as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The platform's config directory for us (overridden by --config-dir).
pub(crate) fn default_dir() -> Option<PathBuf> {
    use etcetera::BaseStrategy;
    etcetera::choose_base_strategy()
        .ok()
        .map(|s| s.config_dir().join("clerk-mcp-server"))
}

impl Store {
    pub(crate) fn new(dir: PathBuf) -> Store {
        Store { dir }
    }

    fn token_path(&self, key: &str) -> PathBuf {
        self.dir.join("tokens").join(format!("{key}.json"))
    }

    fn client_path(&self, issuer: &str) -> PathBuf {
        self.dir
            .join("clients")
            .join(format!("{}.json", digest(&[issuer])))
    }

    pub(crate) fn load_tokens(&self, key: &str) -> Option<ServerRecord> {
        read_json(&self.token_path(key))
    }

    pub(crate) fn save_tokens(&self, key: &str, record: &ServerRecord) -> std::io::Result<()> {
        write_json(&self.token_path(key), record)
    }

    pub(crate) fn delete_tokens(&self, key: &str) -> std::io::Result<bool> {
        match std::fs::remove_file(self.token_path(key)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn load_client(&self, issuer: &str) -> Option<ClientRecord> {
        read_json::<ClientRecord>(&self.client_path(issuer)).filter(|c| c.issuer == issuer)
    }

    pub(crate) fn save_client(&self, record: &ClientRecord) -> std::io::Result<()> {
        write_json(&self.client_path(&record.issuer), record)
    }

    /// Drop the stored registration with `issuer`, if it is `client_id`'s.
    pub(crate) fn delete_client(&self, issuer: &str, client_id: &str) -> std::io::Result<()> {
        if self
            .load_client(issuer)
            .is_some_and(|c| c.client_id == client_id)
        {
            match std::fs::remove_file(self.client_path(issuer)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Every stored server record, with its key.
    pub(crate) fn list(&self) -> Vec<(String, ServerRecord)> {
        let Ok(dir) = std::fs::read_dir(self.dir.join("tokens")) else {
            return Vec::new();
        };
        let mut out: Vec<(String, ServerRecord)> = dir
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let key = name.strip_suffix(".json")?.to_owned();
                Some((key.clone(), self.load_tokens(&key)?))
            })
            .collect();
        out.sort_by(|a, b| a.1.server_url.cmp(&b.1.server_url));
        out
    }

    /// Take the OS lock for `key`, waiting at most `wait`. Released on drop, and by the
    /// OS if this process dies.
    pub(crate) async fn lock(&self, key: &str, wait: Duration) -> std::io::Result<std::fs::File> {
        let path = self.dir.join("tokens").join(format!("{key}.lock"));
        ensure_dir(path.parent().expect("has a parent"))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        let locking = tokio::task::spawn_blocking(move || file.lock().map(|()| file));
        match tokio::time::timeout(wait, locking).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "another clerk-mcp-server is signing in to this server; timed out waiting for it",
            )),
        }
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), "cannot read {e}; ignoring it");
            return None;
        }
    };
    match serde_json::from_str(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(path = %path.display(), "corrupt file ({e}); it will be replaced");
            None
        }
    }
}

fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Only the user may list or enter the token directories.
        for d in [dir, dir.parent().unwrap_or(dir)] {
            let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700));
        }
    }
    Ok(())
}

/// Write atomically: a 0600 temp file in the same directory, then rename over.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let dir = path.parent().expect("has a parent");
    ensure_dir(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    serde_json::to_writer_pretty(&mut tmp, value)?;
    tmp.write_all(b"\n")?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ServerRecord {
        ServerRecord {
            server_url: "https://x.test/mcp".into(),
            resource: "https://x.test/mcp".into(),
            issuer: "https://auth.test".into(),
            token_endpoint: "https://auth.test/token".into(),
            tokens: Tokens {
                access_token: Secret::new("at-secret"),
                refresh_token: Some(Secret::new("rt-secret")),
                expires_at: Some(now_secs() + 3600),
                scope: None,
                token_type: Some("DPoP".into()),
                id_token: None,
            },
            client_id: Some("c1".into()),
            revocation_endpoint: None,
            profile: None,
            account: None,
            dpop_key: Some(crate::auth::dpop::KeyRecord {
                alg: "ES256".into(),
                pkcs8: Secret::new("dpop-key-secret"),
            }),
        }
    }

    #[test]
    fn round_trip_mode_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("cfg"));
        store.save_tokens("k", &record()).unwrap();
        let back = store.load_tokens("k").unwrap();
        assert_eq!(back.tokens.access_token.expose(), "at-secret");
        assert!(!format!("{back:?}").contains("secret"), "{back:?}");
        assert!(back.tokens.dpop_bound());
        assert_eq!(back.dpop_key.unwrap().pkcs8.expose(), "dpop-key-secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&store.token_path("k")), 0o600);
            assert_eq!(mode(&dir.path().join("cfg").join("tokens")), 0o700);
        }
        std::fs::write(store.token_path("k"), "{not json").unwrap();
        assert!(
            store.load_tokens("k").is_none(),
            "corrupt is absent, not a crash"
        );
        store.save_tokens("k", &record()).unwrap();
        assert!(
            store.load_tokens("k").is_some(),
            "and replaced on the next save"
        );
        assert_eq!(store.list().len(), 1);
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(format!("{:?}", Secret::new("x")), "(redacted)");
    }
}
