//! Tokens and client registrations, as JSON records in a [`Vault`]: files, or the OS
//! keychain (`--token-store`).
//!
//! - One token record per server identity, `tokens/<host>-<hash>`; one registration
//!   per authorization server, `clients/<hash of issuer>` (A-ISSUER-KEY). A DPoP key is
//!   kept in the token record it is bound to.
//! - Files are written atomically (temp file + rename) with mode 0600, in a 0700
//!   directory. No version in the path, so upgrades keep them.
//! - A corrupt record is reported and treated as absent; the next save replaces it.
//! - `lock` takes an OS file lock, so exactly one instance signs in or refreshes,
//!   whichever vault holds the records.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::auth::vault::{Files, Keychain, Unreachable, Vault, ensure_dir, write_private};
use crate::error::ConfigError;

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

/// Where `--token-store` keeps records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Kind {
    #[default]
    File,
    Keychain,
}

pub(crate) struct Store {
    dir: PathBuf,
    vault: Box<dyn Vault>,
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
    /// Records in files under `dir`.
    pub(crate) fn new(dir: PathBuf) -> Store {
        Store {
            vault: Box::new(Files::new(dir.clone())),
            dir,
        }
    }

    /// Records where `--token-store` says. The keychain must answer now: a proxy that
    /// could not keep a sign-in would only fail later, and we never fall back to files.
    pub(crate) fn open(dir: PathBuf, kind: Kind) -> Result<Store, ConfigError> {
        match kind {
            Kind::File => Ok(Store::new(dir)),
            Kind::Keychain => match Keychain::open(dir.clone()) {
                Ok(keychain) => Ok(Store {
                    dir,
                    vault: Box::new(keychain),
                }),
                Err(Unreachable(why)) => Err(ConfigError::Keychain { why }),
            },
        }
    }

    fn load<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Option<T> {
        let bytes = match self.vault.get(name) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(record = name, "{e}; ignoring it");
                return None;
            }
        };
        match serde_json::from_slice(&bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(record = name, "corrupt record ({e}); it will be replaced");
                None
            }
        }
    }

    fn save<T: Serialize>(&self, name: &str, value: &T) -> std::io::Result<()> {
        let bytes = if self.vault.pretty() {
            let mut text = serde_json::to_vec_pretty(value)?;
            text.push(b'\n');
            text
        } else {
            serde_json::to_vec(value)?
        };
        self.vault.put(name, &bytes)
    }

    fn client_name(issuer: &str) -> String {
        format!("clients/{}", digest(&[issuer]))
    }

    pub(crate) fn load_tokens(&self, key: &str) -> Option<ServerRecord> {
        let found = self.load(&format!("tokens/{key}"));
        if found.is_none() && self.vault.elsewhere().iter().any(|k| k == key) {
            tracing::warn!(
                "this server's sign-in is kept in the OS keychain: pass --token-store keychain \
                 to use it (otherwise you sign in again, into a file)"
            );
        }
        found
    }

    /// With files chosen: how many sign-ins are kept in the keychain instead, for a note.
    pub(crate) fn in_keychain_count(&self) -> usize {
        self.vault.elsewhere().len()
    }

    pub(crate) fn save_tokens(&self, key: &str, record: &ServerRecord) -> std::io::Result<()> {
        self.save(&format!("tokens/{key}"), record)
    }

    pub(crate) fn delete_tokens(&self, key: &str) -> std::io::Result<bool> {
        self.vault.remove(&format!("tokens/{key}"))
    }

    pub(crate) fn load_client(&self, issuer: &str) -> Option<ClientRecord> {
        self.load::<ClientRecord>(&Self::client_name(issuer))
            .filter(|c| c.issuer == issuer)
    }

    pub(crate) fn save_client(&self, record: &ClientRecord) -> std::io::Result<()> {
        self.save(&Self::client_name(&record.issuer), record)
    }

    /// Drop the stored registration with `issuer`, if it is `client_id`'s.
    pub(crate) fn delete_client(&self, issuer: &str, client_id: &str) -> std::io::Result<()> {
        if self
            .load_client(issuer)
            .is_some_and(|c| c.client_id == client_id)
        {
            self.vault.remove(&Self::client_name(issuer))?;
        }
        Ok(())
    }

    /// Every stored server record, with its key.
    pub(crate) fn list(&self) -> Vec<(String, ServerRecord)> {
        let mut out: Vec<(String, ServerRecord)> = self
            .vault
            .names("tokens")
            .into_iter()
            .filter_map(|key| Some((key.clone(), self.load_tokens(&key)?)))
            .collect();
        out.sort_by(|a, b| a.1.server_url.cmp(&b.1.server_url));
        out
    }

    /// Forget every record this store holds: tokens and registrations. Records in the
    /// other store (the keychain's markers, with files chosen) stay.
    pub(crate) fn clear(&self) -> std::io::Result<()> {
        for kind in ["tokens", "clients"] {
            for name in self.vault.names(kind) {
                self.vault.remove(&format!("{kind}/{name}"))?;
            }
            // Empty but for lock files: the directory goes.
            let dir = self.dir.join(kind);
            let left = std::fs::read_dir(&dir).into_iter().flatten().flatten();
            let only_locks = left
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .all(|name| name.ends_with(".lock") || name.starts_with(".tmp-"));
            if only_locks {
                match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(std::io::Error::new(
                            e.kind(),
                            format!("cannot remove {}: {e}", dir.display()),
                        ));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
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

/// A value as a private file, written atomically (the pinning file uses it too).
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_private(path, &bytes)
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

    fn token_path(dir: &tempfile::TempDir, key: &str) -> PathBuf {
        dir.path()
            .join("cfg")
            .join("tokens")
            .join(format!("{key}.json"))
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
            assert_eq!(mode(&token_path(&dir, "k")), 0o600);
            assert_eq!(mode(&dir.path().join("cfg").join("tokens")), 0o700);
        }
        std::fs::write(token_path(&dir, "k"), "{not json").unwrap();
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
