//! Sign-in: the MCP authorization flow (checklist A-*, SEC-URL).
//!
//! - `challenge` parses `WWW-Authenticate`; `discover` finds the metadata;
//!   `flow` runs registration, the browser or device flow, and token requests;
//!   `assertion` signs the `private_key_jwt` of a machine's client credentials grant;
//!   `dpop` binds tokens to a key of ours and signs the proof each request carries;
//!   `store` keeps tokens and registrations in a `vault`: files, or the OS keychain;
//!   `browser` opens URLs safely;
//!   `compat` speaks mcp-remote's redirect URI and imports its token cache.
//! - [`Auth`] is the runtime face: the HTTP side asks it for the current bearer, and
//!   calls it on 401 or 403 `insufficient_scope`. One sign-in or refresh at a time, in
//!   this process (a mutex) and across processes (an OS file lock).

pub(crate) mod assertion;
pub(crate) mod browser;
pub mod challenge;
pub(crate) mod compat;
pub(crate) mod discover;
pub(crate) mod dpop;
pub(crate) mod flow;
pub(crate) mod probe;
pub(crate) mod store;
pub(crate) mod vault;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::header::HeaderValue;
use url::Url;

use crate::auth::challenge::Challenge;
use crate::auth::discover::Discovered;
use crate::auth::store::{ClientRecord, Secret, ServerRecord, Store, Tokens};
pub(crate) use crate::error::AuthError;

/// Refresh this long before the access token expires (A-REFRESH).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret: Option<Secret>,
    pub(crate) client_metadata_url: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) resource: Option<String>,
    pub(crate) authorize_params: Vec<(String, String)>,
    /// `--callback-path`, `--callback-port` (or the port after the URL) and `--host`;
    /// unset ones depend on whose redirect URI is used (see [`Redirect`]).
    pub(crate) callback_path: Option<String>,
    pub(crate) callback_port: Option<u16>,
    pub(crate) callback_host: Option<String>,
    /// `--auth-success-url`: where the browser goes once the sign-in completed.
    pub(crate) success_url: Option<Url>,
    /// The client came from `--static-oauth-client-info` (registered for mcp-remote).
    pub(crate) static_client: bool,
    /// Its `token_endpoint_auth_method`, honoured where the server allows it.
    pub(crate) static_auth_method: Option<String>,
    /// Its `scope`: requested when nothing better says which scopes to ask for.
    pub(crate) static_scope: Option<String>,
    /// `--static-oauth-client-metadata`: merged into the registration request.
    pub(crate) client_metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// `--token-endpoint`: a machine grant goes straight there, without discovery.
    pub(crate) token_endpoint: Option<Url>,
    /// `--use-id-token`: the ID token is the credential presented to the server.
    pub(crate) use_id_token: bool,
    /// `--disable-resource-parameter`: no RFC 8707 `resource` anywhere.
    pub(crate) no_resource: bool,
    /// mcp-remote's name for this server and its cache (import, redirect URI).
    pub(crate) mcp_remote: compat::McpRemote,
    /// `--profile`: a sign-in of its own for the same server (another account).
    pub(crate) profile: Option<String>,
    /// Files or the OS keychain (`--token-store`).
    pub(crate) token_store: store::Kind,
    pub(crate) no_browser: bool,
    /// `BROWSER`: a program run with the URL as its one argument.
    pub(crate) browser: Option<String>,
    pub(crate) device_code: bool,
    pub(crate) timeout: Duration,
    pub(crate) config_dir: PathBuf,
    /// A person asked for this sign-in (`login`): the browser brake does not apply.
    pub(crate) interactive: bool,
    pub(crate) grant: Grant,
    /// Bind tokens to a DPoP key where the authorization server offers it (`--no-dpop`
    /// turns this off).
    pub(crate) dpop: bool,
}

/// How tokens are obtained.
#[derive(Clone, Debug)]
pub(crate) enum Grant {
    /// A person signs in: the authorization code flow in a browser, or the device flow.
    Browser,
    /// A machine (RFC 6749 §4.4) with `--client-id` and a secret, or a key that signs a
    /// `private_key_jwt` assertion. No refresh token: renewal runs the grant again.
    ClientCredentials { key: Option<assertion::SigningKey> },
    /// A workload (RFC 7523 §2.1): a JWT the platform issued, read from a file at each
    /// grant (platforms rotate it), is the grant itself.
    JwtBearer { assertion_file: PathBuf },
    /// Enterprise-managed authorization: the user's ID token is exchanged at the IdP for
    /// an ID-JAG (RFC 8693), which is the jwt-bearer grant at the MCP authorization server.
    IdJag(Arc<IdJag>),
}

/// Where `--grant id-jag` gets its identity.
#[derive(Debug)]
pub(crate) struct IdJag {
    pub(crate) token_endpoint: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<Secret>,
    pub(crate) id_token: IdToken,
}

/// The user's ID token: a file, or a program that prints it.
#[derive(Debug)]
pub(crate) enum IdToken {
    File(PathBuf),
    /// The program and its arguments, split as a shell would; run without one.
    Command(Vec<String>),
}

impl IdToken {
    async fn read(&self) -> Result<String, AuthError> {
        let fail = AuthError::Token;
        let text = match self {
            IdToken::File(path) => std::fs::read_to_string(path)
                .map_err(|e| fail(format!("--id-token-file {}: {e}", path.display())))?,
            IdToken::Command(argv) => {
                let run = tokio::process::Command::new(&argv[0])
                    .args(&argv[1..])
                    .stdin(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .output();
                let out = tokio::time::timeout(Duration::from_secs(60), run)
                    .await
                    .map_err(|_| fail("--id-token-command did not finish within 60 s".into()))?
                    .map_err(|e| fail(format!("--id-token-command {:?}: {e}", argv[0])))?;
                if !out.status.success() {
                    return Err(fail(format!(
                        "--id-token-command {:?} failed ({})",
                        argv[0], out.status
                    )));
                }
                String::from_utf8(out.stdout)
                    .map_err(|_| fail("--id-token-command printed no UTF-8 text".into()))?
            }
        };
        let token = text.trim();
        if token.is_empty() {
            return Err(fail(
                "the ID token is empty (--id-token-file, --id-token-command)".into(),
            ));
        }
        Ok(token.to_owned())
    }
}

impl Grant {
    /// A grant without a person: renewed by running it again, never a browser.
    fn machine(&self) -> bool {
        !matches!(self, Grant::Browser)
    }
}

/// The JWT in an assertion file (surrounding whitespace trimmed). `Err` says what is wrong.
pub(crate) fn read_assertion(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let jwt = text.trim();
    if jwt.split('.').count() != 3 || jwt.chars().any(char::is_whitespace) {
        return Err(format!(
            "{}: not a JWT (three dot-separated parts)",
            path.display()
        ));
    }
    Ok(jwt.to_owned())
}

pub struct Auth {
    http: reqwest::Client,
    server: Url,
    cfg: AuthConfig,
    store: Store,
    key: String,
    current: RwLock<Option<ServerRecord>>,
    /// The DPoP key of the current tokens, or of the sign-in under way.
    dpop: RwLock<Option<Arc<dpop::DpopKey>>>,
    /// The latest DPoP nonces of the authorization server and the MCP server.
    as_nonce: dpop::Nonce,
    rs_nonce: dpop::Nonce,
    /// Bumped whenever the token changes, so callers can tell whether a 401 was for
    /// the token they used or an older one.
    generation: AtomicU64,
    flight: tokio::sync::Mutex<()>,
    /// A request has met a 401/403: its challenge is better information than the
    /// startup probe's, so the probe leaves the sign-in to it.
    challenged: std::sync::atomic::AtomicBool,
    challenged_notify: tokio::sync::Notify,
    /// The server answered a request made without a token: it does not insist on sign-in.
    served_anonymously: std::sync::atomic::AtomicBool,
    /// `--use-id-token` without an ID token has been warned about.
    no_id_token_warned: std::sync::atomic::AtomicBool,
    /// Where the server redirected its URL to: discovery and the resource follow it
    /// (the stored sign-in stays keyed by the configured URL).
    moved: RwLock<Option<Url>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The file name for a server identity: everything that changes which tokens apply.
fn server_key(server: &Url, cfg: &AuthConfig) -> String {
    let host: String = server
        .host_str()
        .unwrap_or("server")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut parts = vec![
        server.as_str().to_owned(),
        cfg.resource.clone().unwrap_or_default(),
        cfg.client_id.clone().unwrap_or_default(),
        cfg.scope.clone().unwrap_or_default(),
    ];
    // Added only when set, so sign-ins stored before they counted keep their key.
    if !cfg.authorize_params.is_empty() {
        let mut params: Vec<String> = cfg
            .authorize_params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        params.sort();
        parts.push(format!("authorize-params:{}", params.join("&")));
    }
    if let Some(profile) = &cfg.profile {
        parts.push(format!("profile:{profile}"));
    }
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let hash = store::digest(&parts);
    format!("{host}-{hash}")
}

impl Auth {
    /// Fails only when `--token-store keychain` finds no keychain.
    pub(crate) fn new(
        http: reqwest::Client,
        server: Url,
        cfg: AuthConfig,
    ) -> Result<Auth, crate::error::ConfigError> {
        let store = Store::open(cfg.config_dir.clone(), cfg.token_store)?;
        let key = server_key(&server, &cfg);
        let current = store
            .load_tokens(&key)
            .filter(|r| r.server_url == server.as_str());
        let dpop = current.as_ref().and_then(record_key);
        Ok(Auth {
            http,
            server,
            cfg,
            store,
            key,
            current: RwLock::new(current),
            dpop: RwLock::new(dpop),
            as_nonce: dpop::Nonce::default(),
            rs_nonce: dpop::Nonce::default(),
            generation: AtomicU64::new(0),
            flight: tokio::sync::Mutex::new(()),
            challenged: std::sync::atomic::AtomicBool::new(false),
            challenged_notify: tokio::sync::Notify::new(),
            served_anonymously: std::sync::atomic::AtomicBool::new(false),
            no_id_token_warned: std::sync::atomic::AtomicBool::new(false),
            moved: RwLock::new(None),
        })
    }

    /// The server's URL moved (a same-origin redirect).
    pub(crate) fn moved_to(&self, url: &Url) {
        *self.moved.write().unwrap_or_else(|p| p.into_inner()) = Some(url.clone());
    }

    /// The server's URL now: its protected resource must match this one.
    fn server_now(&self) -> Url {
        self.moved
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| self.server.clone())
    }

    pub(crate) fn has_token(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The `Authorization` header to send now with `method` to `url`, and the DPoP
    /// proof that goes with it when the token is bound to our key (RFC 9449 §7.1): a
    /// fresh one for every request, never reused.
    pub(crate) fn authorization(
        &self,
        method: &reqwest::Method,
        url: &Url,
    ) -> Option<(HeaderValue, Option<HeaderValue>)> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        let tokens = &guard.as_ref()?.tokens;
        let token = match tokens.presented(self.cfg.use_id_token) {
            Some((t, _)) => t.expose(),
            None => {
                if !self.no_id_token_warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "--use-id-token: the authorization server issued no ID token; sending the access token"
                    );
                }
                tokens.access_token.expose()
            }
        };
        let key = self.held_key().filter(|_| tokens.dpop_bound());
        let (scheme, proof) = match key {
            Some(key) => {
                let nonce = self.rs_nonce.get();
                match key.proof(method.as_str(), url, Some(token), nonce.as_deref()) {
                    Ok(p) => ("DPoP", HeaderValue::from_str(&p).ok()),
                    Err(e) => {
                        tracing::warn!("cannot sign a DPoP proof: {e}");
                        ("DPoP", None)
                    }
                }
            }
            None => ("Bearer", None),
        };
        let mut v = HeaderValue::from_str(&format!("{scheme} {token}")).ok()?;
        v.set_sensitive(true);
        Some((v, proof))
    }

    /// Every answer of the MCP server may carry its next DPoP nonce (RFC 9449 §9).
    pub(crate) fn observe(&self, headers: &reqwest::header::HeaderMap) {
        self.rs_nonce.observe(headers);
    }

    /// A 401 on a request that cannot go through [`Auth::unauthorized`] (a GET stream):
    /// whether it only asks for a new DPoP nonce, which the retry will carry.
    pub(crate) fn nonce_retry(&self, headers: &reqwest::header::HeaderMap) -> bool {
        self.observe(headers);
        Challenge::from_headers(headers)
            .is_some_and(|c| c.error.as_deref() == Some(dpop::USE_NONCE))
            && self.rs_nonce.take_fresh()
    }

    /// Which token is current: taken before a request, so a 401 can be matched to the
    /// token it was sent with (an older one is simply retried with the newer).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Refresh ahead of expiry (A-REFRESH). Best effort: a failure here is retried on 401.
    pub(crate) async fn ensure_fresh(&self) {
        let expiring = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|r| {
                // A machine grant has no refresh token: it runs the grant again.
                r.tokens
                    .presented_expiring(self.cfg.use_id_token, REFRESH_MARGIN)
                    && (r.tokens.refresh_token.is_some() || self.cfg.grant.machine())
            });
        if expiring {
            let generation = self.generation.load(Ordering::Acquire);
            let _ = self.renew(generation, None, false).await;
        }
    }

    /// The server answered 401 to a request sent with `generation`'s token.
    pub(crate) async fn unauthorized(
        &self,
        generation: u64,
        challenge: Option<Challenge>,
    ) -> Result<(), AuthError> {
        self.mark_challenged();
        if challenge
            .as_ref()
            .is_some_and(|c| c.error.as_deref() == Some(dpop::USE_NONCE))
        {
            // RFC 9449 §9: retry once with the nonce the 401 carried; a server that
            // refuses the nonce it just gave is not asked again.
            return if self.rs_nonce.take_fresh() {
                Ok(())
            } else {
                Err(AuthError::StillRefused(
                    "HTTP 401 use_dpop_nonce with no new DPoP-Nonce to use".into(),
                ))
            };
        }
        self.renew(generation, challenge, false).await
    }

    /// 403 `insufficient_scope` (A-STEPUP): sign in again with the scopes asked for.
    pub(crate) async fn step_up(
        &self,
        generation: u64,
        challenge: Challenge,
    ) -> Result<(), AuthError> {
        self.mark_challenged();
        // Asking again for scopes the token already has can only loop: give up now.
        let granted = self.granted_scope();
        if let (Some(wanted), Some(granted)) = (challenge.scope.as_deref(), granted.as_deref())
            && self.generation.load(Ordering::Acquire) == generation
            && !wanted.trim().is_empty()
            && wanted
                .split(' ')
                .all(|w| granted.split(' ').any(|g| g == w))
        {
            return Err(AuthError::StillRefused(format!(
                "HTTP 403 insufficient_scope for {wanted:?}, which this sign-in already grants"
            )));
        }
        self.renew(generation, Some(challenge), true).await
    }

    /// A request without a token succeeded (see `served_anonymously`).
    pub(crate) fn mark_served_anonymously(&self) {
        if !self.has_token() {
            self.served_anonymously.store(true, Ordering::Release);
            self.challenged_notify.notify_waiters();
        }
    }

    /// Whether the startup probe should leave sign-in alone: a request met a challenge
    /// (it drives the sign-in) or succeeded without a token (none is needed), within `wait`.
    pub(crate) async fn startup_sign_in_unneeded(&self, wait: Duration) -> bool {
        let settled = || {
            self.challenged.load(Ordering::Acquire)
                || self.served_anonymously.load(Ordering::Acquire)
        };
        let notified = self.challenged_notify.notified();
        if settled() {
            return true;
        }
        let _ = tokio::time::timeout(wait, notified).await;
        settled()
    }

    fn mark_challenged(&self) {
        self.challenged.store(true, Ordering::Release);
        self.challenged_notify.notify_waiters();
    }

    /// Sign in now (startup or `login`), unless a token is already there.
    pub(crate) async fn sign_in_if_needed(
        &self,
        challenge: Option<Challenge>,
    ) -> Result<(), AuthError> {
        if self.has_token() {
            return Ok(());
        }
        let generation = self.generation.load(Ordering::Acquire);
        self.renew(generation, challenge, false).await
    }

    /// One renewal at a time: within this process by `flight`, across processes by the
    /// file lock. Whoever waited reuses what the winner obtained.
    async fn renew(
        &self,
        generation: u64,
        challenge: Option<Challenge>,
        step_up: bool,
    ) -> Result<(), AuthError> {
        let _flight = self.flight.lock().await;
        if self.generation.load(Ordering::Acquire) != generation {
            return Ok(()); // someone in this process already renewed it
        }
        let _lock = self
            .store
            .lock(&self.key, self.cfg.timeout + Duration::from_secs(30))
            .await
            .map_err(|e| AuthError::Store(e.to_string()))?;
        let used = self.current_access_token();
        // Another instance may have signed in or refreshed while we waited for the lock.
        if !step_up
            && let Some(stored) = self.store.load_tokens(&self.key)
            && stored.server_url == self.server.as_str()
            && Some(stored.tokens.access_token.expose()) != used.as_deref()
            && !stored
                .tokens
                .presented_expiring(self.cfg.use_id_token, Duration::ZERO)
        {
            tracing::info!("using credentials another clerk-mcp-server instance just obtained");
            self.adopt(stored);
            return Ok(());
        }
        let mut record = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if record.is_none()
            && !step_up
            && let Some(imported) = self.import(challenge.as_ref()).await
        {
            let fresh = !imported
                .tokens
                .presented_expiring(self.cfg.use_id_token, REFRESH_MARGIN);
            self.save(imported.clone())?;
            if fresh {
                return Ok(());
            }
            record = Some(imported);
        }
        // A 401 that points at metadata: see whether the authorization server changed.
        // If it did, the old one's refresh token is useless and must not be sent on; the
        // new issuer's own registration signs in (A-ISSUER-KEY).
        let mut discovered = None;
        if let (Some(record), Some(c)) = (&record, &challenge)
            && c.resource_metadata.is_some()
            && let Ok(d) = self.discover(Some(c)).await
        {
            if d.issuer != record.issuer {
                tracing::info!(old = %record.issuer, new = %d.issuer, "the server names a new authorization server; signing in there");
            }
            discovered = Some(d);
        }
        let moved = matches!((&record, &discovered), (Some(r), Some(d)) if d.issuer != r.issuer);
        // A machine grant renews by running itself again: no other grant is tried.
        let machine = self.cfg.grant.machine();
        if !step_up
            && !moved
            && !machine
            && let Some(record) = record
        {
            match self.refresh(&record).await {
                Ok(()) => return Ok(()),
                // A client given by flags that the server does not know: signing in
                // with it cannot work either.
                Err(e @ AuthError::ClientRejected { .. }) => return Err(e),
                Err(e) => tracing::info!("refresh failed ({e}); signing in again"),
            }
        }
        let timed_out = || AuthError::TimedOut {
            url: self.server.to_string(),
        };
        let record = tokio::time::timeout(
            self.cfg.timeout,
            self.sign_in(challenge.as_ref(), step_up, discovered),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| match e {
            AuthError::TimedOut { .. } => timed_out(),
            e => e,
        })?;
        self.save(record)
    }

    /// The first sign-in for this server: mcp-remote's sign-in for it, when its cache
    /// has one (read, never modified). `None`: sign in as usual.
    async fn import(&self, challenge: Option<&Challenge>) -> Option<ServerRecord> {
        let dir = self.cfg.mcp_remote.cache_dir.as_ref()?;
        if self.cfg.grant.machine() {
            return None; // a machine's grant runs again at no cost to anyone
        }
        let cached = compat::read(dir, &self.cfg.mcp_remote.hash)?;
        let d = match self.discover(challenge).await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!("mcp-remote's sign-in not imported: {e}");
                return None;
            }
        };
        let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
        if let Some(issuer) = &cached.issuer
            && !same(issuer, &d.issuer)
        {
            tracing::info!(%issuer, "mcp-remote's sign-in is for another authorization server; not imported");
            return None;
        }
        let client_id = match (&cached.client, &self.cfg.client_id) {
            (_, Some(id)) => id.clone(),
            (Some(c), None) => {
                let kept = self.store.load_client(&d.issuer);
                if kept.as_ref().is_some_and(|k| k.client_id != c.client_id) {
                    tracing::info!(
                        "mcp-remote's sign-in was made by another client than ours; not imported"
                    );
                    return None;
                }
                let client = ClientRecord {
                    issuer: d.issuer.clone(),
                    client_id: c.client_id.clone(),
                    client_secret: c.client_secret.clone(),
                    auth_method: match (&c.auth_method, &c.client_secret) {
                        (Some(m), _) => m.clone(),
                        (None, Some(_)) => flow::secret_method(&d.meta).to_owned(),
                        (None, None) => "none".to_owned(),
                    },
                    redirect_uri: c.redirect_uri.clone(),
                };
                if let Err(e) = self.store.save_client(&client) {
                    tracing::warn!("cannot keep mcp-remote's registration: {e}");
                    return None;
                }
                c.client_id.clone()
            }
            (None, None) => return None,
        };
        let account = cached.tokens.account();
        tracing::warn!(
            file = %cached.path.display(),
            "imported mcp-remote's sign-in for {}; its files are left as they are (--no-import \
             turns this off). Note: a refresh rotates the refresh token, which signs out an \
             mcp-remote still running against this server",
            crate::config::redact_url(&self.server)
        );
        Some(ServerRecord {
            server_url: self.server.to_string(),
            resource: d.resource.clone(),
            issuer: d.issuer.clone(),
            token_endpoint: d.meta.token_endpoint.clone(),
            tokens: cached.tokens,
            client_id: Some(client_id),
            revocation_endpoint: d.meta.revocation_endpoint.clone(),
            dpop_key: None,
            profile: self.cfg.profile.clone(),
            account,
        })
    }

    fn current_access_token(&self) -> Option<String> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|r| r.tokens.access_token.expose().to_owned())
    }

    fn adopt(&self, record: ServerRecord) {
        *self.dpop.write().unwrap_or_else(|p| p.into_inner()) = record_key(&record);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(record);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn save(&self, record: ServerRecord) -> Result<(), AuthError> {
        self.store
            .save_tokens(&self.key, &record)
            .map_err(|e| AuthError::Store(e.to_string()))?;
        self.adopt(record);
        Ok(())
    }

    /// A-REFRESH: use the refresh token; keep the old one unless a new one is issued.
    async fn refresh(&self, record: &ServerRecord) -> Result<(), AuthError> {
        let Some(refresh) = &record.tokens.refresh_token else {
            return Err(AuthError::Token("no refresh token was issued".into()));
        };
        let client = self
            .store
            .load_client(&record.issuer)
            .or_else(|| self.preregistered(&record.issuer, ""))
            .ok_or_else(|| AuthError::Token("the client registration is gone".into()))?;
        let meta = discover::AsMetadata {
            token_endpoint: record.token_endpoint.clone(),
            ..Default::default()
        };
        let params = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh.expose().to_owned()),
            ("resource", record.resource.clone()),
        ];
        let mut tokens = self
            .token_request(&meta, &client, params)
            .await
            .map_err(|e| self.rejected(&client, e))?;
        if tokens.refresh_token.is_none() {
            tokens.refresh_token = record.tokens.refresh_token.clone();
        }
        if tokens.scope.is_none() {
            tokens.scope = record.tokens.scope.clone();
        }
        if tokens.token_type.is_none() {
            tokens.token_type = record.tokens.token_type.clone();
        }
        tracing::info!("access token refreshed");
        self.save(ServerRecord {
            tokens,
            ..record.clone()
        })
    }

    fn preregistered(&self, issuer: &str, redirect_uri: &str) -> Option<ClientRecord> {
        let id = self.cfg.client_id.clone()?;
        Some(ClientRecord {
            issuer: issuer.to_owned(),
            client_id: id,
            client_secret: self.cfg.client_secret.clone(),
            auth_method: String::new(), // chosen against the metadata in `client_for`
            redirect_uri: redirect_uri.to_owned(),
        })
    }

    /// How a pre-registered client authenticates: the static client's own method where
    /// the server takes it, else by its secret.
    fn preregistered_method(&self, c: &ClientRecord, meta: &discover::AsMetadata) -> String {
        const KNOWN: [&str; 3] = ["none", "client_secret_post", "client_secret_basic"];
        if let Some(m) = &self.cfg.static_auth_method
            && KNOWN.contains(&m.as_str())
            && (m == "none") == c.client_secret.is_none()
            && meta
                .token_endpoint_auth_methods_supported
                .as_ref()
                .is_none_or(|s| s.is_empty() || s.contains(m))
        {
            return m.clone();
        }
        match &c.client_secret {
            Some(_) => flow::secret_method(meta).to_owned(),
            None => "none".to_owned(),
        }
    }

    /// A-REG: pre-registered, then CIMD, then a stored or new dynamic registration.
    async fn client_for(
        &self,
        d: &Discovered,
        redirect_uri: &str,
        scope: Option<&str>,
    ) -> Result<ClientRecord, AuthError> {
        if let Some(mut c) = self.preregistered(&d.issuer, redirect_uri) {
            c.auth_method = self.preregistered_method(&c, &d.meta);
            return Ok(c);
        }
        if let Some(url) = &self.cfg.client_metadata_url
            && d.meta.client_id_metadata_document_supported == Some(true)
        {
            // A-CIMD: the URL is the client_id; the document lists our redirect URIs.
            return Ok(ClientRecord {
                issuer: d.issuer.clone(),
                client_id: url.clone(),
                client_secret: None,
                auth_method: "none".into(),
                redirect_uri: redirect_uri.to_owned(),
            });
        }
        // A-ISSUER-KEY: registrations are per issuer and per redirect URI.
        if let Some(c) = self.store.load_client(&d.issuer)
            && c.redirect_uri == redirect_uri
        {
            return Ok(c);
        }
        if d.meta.registration_endpoint.is_none() {
            return Err(AuthError::NoRegistration);
        }
        let c = flow::register(
            &self.http,
            d,
            redirect_uri,
            scope,
            self.cfg.client_metadata.as_ref(),
        )
        .await?;
        tracing::info!(issuer = %d.issuer, "registered this client with the authorization server");
        self.store
            .save_client(&c)
            .map_err(|e| AuthError::Store(e.to_string()))?;
        Ok(c)
    }

    /// The full interactive sign-in.
    async fn sign_in(
        &self,
        challenge: Option<&Challenge>,
        step_up: bool,
        discovered: Option<Discovered>,
    ) -> Result<ServerRecord, AuthError> {
        let d = match discovered {
            Some(d) => d,
            None => self.discover(challenge).await?,
        };
        flow::check_pkce(&d)?;
        let dpop_key = self.dpop_key_for(&d);
        let mut scope =
            flow::select_scope(&self.cfg, challenge.and_then(|c| c.scope.as_deref()), &d);
        if step_up && let Some(had) = self.granted_scope() {
            // Ask for the new scopes without losing the ones already granted.
            scope = Some(merge_scopes(&had, scope.as_deref()));
        }
        // A registration the server forgot (it answers invalid_client) is dropped and
        // made again, once.
        let mut attempts = 0;
        let (tokens, client) = loop {
            match &self.cfg.grant {
                Grant::ClientCredentials { key } => {
                    break self
                        .client_credentials(&d, scope.as_deref(), key.as_ref())
                        .await?;
                }
                Grant::JwtBearer { assertion_file } => {
                    let assertion = read_assertion(assertion_file)
                        .map_err(|e| AuthError::Token(format!("--assertion-file: {e}")))?;
                    let check = "the JWT in --assertion-file (its audience must be the \
                                 authorization server)";
                    break self
                        .jwt_bearer(&d, scope.as_deref(), assertion, check)
                        .await?;
                }
                Grant::IdJag(idp) => {
                    break self.id_jag(&d, scope.as_deref(), idp).await?;
                }
                Grant::Browser => {}
            }
            attempts += 1;
            let attempt = if self.cfg.device_code {
                self.device_sign_in(&d, scope.as_deref()).await
            } else {
                self.browser_sign_in(&d, scope.as_deref()).await
            };
            match attempt {
                Ok(done) => break done,
                Err((e, Some(client))) => match self.rejected(&client, e) {
                    AuthError::RegistrationDropped if attempts == 1 => continue,
                    e => return Err(e),
                },
                Err((e, None)) => return Err(e),
            }
        };
        let account = tokens.account();
        tracing::info!(issuer = %d.issuer, "signed in");
        Ok(ServerRecord {
            server_url: self.server.to_string(),
            resource: d.resource.clone(),
            issuer: d.issuer.clone(),
            token_endpoint: d.meta.token_endpoint.clone(),
            // The server's statement of what it granted wins over what we asked for.
            tokens: Tokens {
                scope: tokens.scope.clone().or(scope),
                ..tokens
            },
            client_id: Some(client.client_id),
            revocation_endpoint: d.meta.revocation_endpoint.clone(),
            dpop_key: dpop_key.map(|k| k.record().clone()),
            profile: self.cfg.profile.clone(),
            account,
        })
    }

    /// The DPoP key for a sign-in at `d`'s authorization server: the one we hold if the
    /// server takes its algorithm, else a new one; none if the server offers no DPoP we
    /// can make a key for (or `--no-dpop`). Token requests of this sign-in use it.
    fn dpop_key_for(&self, d: &Discovered) -> Option<Arc<dpop::DpopKey>> {
        let supported = d
            .meta
            .dpop_signing_alg_values_supported
            .as_deref()
            .filter(|s| self.cfg.dpop && !s.is_empty());
        let key = match (supported, self.held_key()) {
            (None, _) => None,
            (Some(s), Some(k)) if k.usable_with(s) => Some(k),
            (Some(s), _) => {
                let made = dpop::DpopKey::generate(s).map(Arc::new);
                if made.is_none() {
                    tracing::warn!(algs = ?s, "the authorization server offers DPoP only with algorithms this proxy cannot make keys for; its tokens will be bearer tokens");
                }
                made
            }
        };
        *self.dpop.write().unwrap_or_else(|p| p.into_inner()) = key.clone();
        key
    }

    fn held_key(&self) -> Option<Arc<dpop::DpopKey>> {
        self.dpop.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Proofs for the authorization server: `key` and the nonce it last gave.
    fn proof_with<'a>(&'a self, key: &'a dpop::DpopKey) -> flow::Proof<'a> {
        flow::Proof {
            key,
            nonce: &self.as_nonce,
        }
    }

    /// A token request at our authorization server, with a DPoP proof when we hold a key.
    async fn token_request(
        &self,
        meta: &discover::AsMetadata,
        client: &ClientRecord,
        params: Vec<(&'static str, String)>,
    ) -> Result<Tokens, AuthError> {
        let key = self.held_key();
        let proof = key.as_deref().map(|key| self.proof_with(key));
        flow::token_request(&self.http, meta, client, params, proof).await
    }

    async fn discover(&self, challenge: Option<&Challenge>) -> Result<Discovered, AuthError> {
        if let Some(endpoint) = &self.cfg.token_endpoint {
            // --token-endpoint: a machine grant goes straight there (no metadata).
            let issuer = endpoint.origin().ascii_serialization();
            return Ok(Discovered {
                resource: self.cfg.resource.clone().unwrap_or_default(),
                prm: None,
                meta: discover::AsMetadata {
                    issuer: Some(issuer.clone()),
                    token_endpoint: endpoint.to_string(),
                    ..Default::default()
                },
                issuer,
                from_document: false,
            });
        }
        let mut d = discover::discover(
            &self.http,
            &self.server_now(),
            challenge,
            self.cfg.resource.as_deref(),
        )
        .await?;
        if self.cfg.no_resource {
            d.resource.clear(); // an empty resource is never sent
        }
        Ok(d)
    }

    /// RFC 6749 §4.4, for a machine: the client authenticates with its secret, or with
    /// a `private_key_jwt` assertion (RFC 7523) whose audience is the issuer. Errors name
    /// the flags to check; no other grant is tried.
    async fn client_credentials(
        &self,
        d: &Discovered,
        scope: Option<&str>,
        key: Option<&assertion::SigningKey>,
    ) -> Result<(Tokens, ClientRecord), AuthError> {
        let client_id = self.cfg.client_id.clone().unwrap_or_default();
        let client = ClientRecord {
            issuer: d.issuer.clone(),
            client_id: client_id.clone(),
            client_secret: self.cfg.client_secret.clone(),
            auth_method: String::new(),
            redirect_uri: String::new(),
        };
        let client = ClientRecord {
            auth_method: match key {
                Some(_) => "private_key_jwt".to_owned(),
                None => self.preregistered_method(&client, &d.meta),
            },
            ..client
        };
        let mut params = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("resource", d.resource.clone()),
        ];
        if let Some(s) = scope {
            params.push(("scope", s.to_owned()));
        }
        if let Some(key) = key {
            let now = store::now_secs();
            let claims = serde_json::json!({
                "iss": client_id, "sub": client_id, "aud": d.issuer,
                "jti": flow::random_token(16), "iat": now, "exp": now + 300,
            });
            let alg = key.alg(
                d.meta
                    .token_endpoint_auth_signing_alg_values_supported
                    .as_deref(),
            );
            let jwt = key
                .sign(alg, &claims)
                .map_err(|e| AuthError::Token(format!("signing the client assertion: {e}")))?;
            params.push((
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
            ));
            params.push(("client_assertion", jwt));
        }
        match self.token_request(&d.meta, &client, params).await {
            Ok(tokens) => Ok((tokens, client)),
            Err(e) => Err(match self.rejected(&client, e) {
                e @ AuthError::ClientRejected { .. } => e,
                e => AuthError::Token(format!(
                    "the client_credentials grant failed ({e}); check --client-id, \
                     --client-secret or --client-key, and --scope"
                )),
            }),
        }
    }

    /// RFC 7523 §2.1, for a workload: the platform's JWT is the grant. The client (if
    /// any) authenticates as configured; an error is surfaced as it is, never retried
    /// with another grant.
    async fn jwt_bearer(
        &self,
        d: &Discovered,
        scope: Option<&str>,
        assertion: String,
        check: &str,
    ) -> Result<(Tokens, ClientRecord), AuthError> {
        let client = ClientRecord {
            issuer: d.issuer.clone(),
            client_id: self.cfg.client_id.clone().unwrap_or_default(),
            client_secret: self.cfg.client_secret.clone(),
            auth_method: match &self.cfg.client_secret {
                Some(_) => flow::secret_method(&d.meta).to_owned(),
                None => "none".to_owned(),
            },
            redirect_uri: String::new(),
        };
        let mut params = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
            ),
            ("assertion", assertion),
            ("resource", d.resource.clone()),
        ];
        if let Some(s) = scope {
            params.push(("scope", s.to_owned()));
        }
        match self.token_request(&d.meta, &client, params).await {
            Ok(tokens) => Ok((tokens, client)),
            Err(e) => Err(AuthError::Token(format!(
                "the jwt-bearer grant failed ({e}); check {check}, --client-id and --scope"
            ))),
        }
    }

    /// Enterprise-managed authorization: exchange the user's ID token at the IdP for an
    /// ID-JAG addressed to this authorization server (RFC 8693), then present it as the
    /// jwt-bearer grant.
    async fn id_jag(
        &self,
        d: &Discovered,
        scope: Option<&str>,
        idp: &IdJag,
    ) -> Result<(Tokens, ClientRecord), AuthError> {
        let id_token = idp.id_token.read().await?;
        let meta = discover::AsMetadata {
            token_endpoint: idp.token_endpoint.clone(),
            ..Default::default()
        };
        let client = ClientRecord {
            issuer: String::new(),
            client_id: idp.client_id.clone(),
            client_secret: idp.client_secret.clone(),
            auth_method: match &idp.client_secret {
                Some(_) => "client_secret_basic".to_owned(),
                None => "none".to_owned(),
            },
            redirect_uri: String::new(),
        };
        let mut params = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange".to_owned(),
            ),
            ("subject_token", id_token),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:id_token".to_owned(),
            ),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:id-jag".to_owned(),
            ),
            ("audience", d.issuer.clone()),
            ("resource", d.resource.clone()),
        ];
        if let Some(s) = scope {
            params.push(("scope", s.to_owned()));
        }
        // At the IdP: no DPoP, the ID-JAG is not an access token.
        let jag = flow::token_request(&self.http, &meta, &client, params, None)
            .await
            .map_err(|e| {
                AuthError::Token(format!(
                    "the token exchange at the IdP failed ({e}); check --idp-token-endpoint, \
                     --idp-client-id, --idp-client-secret and the ID token"
                ))
            })?;
        self.jwt_bearer(
            d,
            scope,
            jag.access_token.expose().to_owned(),
            "--client-id and --client-secret (the MCP authorization server's client)",
        )
        .await
    }

    /// Whether `client` is a registration this proxy made (and may drop and make again).
    fn registered(&self, client: &ClientRecord) -> bool {
        self.store
            .load_client(&client.issuer)
            .is_some_and(|c| c.client_id == client.client_id)
    }

    /// Read a token endpoint error for `client`. `invalid_client` for a registration of
    /// ours drops it (and the tokens it obtained): the next sign-in registers again. For
    /// a client given by flags it names the flags to check. Anything else is `e`.
    fn rejected(&self, client: &ClientRecord, e: AuthError) -> AuthError {
        let AuthError::OAuth { error, .. } = &e else {
            return e;
        };
        if error.code != "invalid_client" {
            return e;
        }
        if self.registered(client) {
            tracing::warn!(issuer = %client.issuer, "the authorization server no longer knows this client ({error}); registering again");
            self.drop_registration(client);
            return AuthError::RegistrationDropped;
        }
        if self.cfg.client_id.as_deref() == Some(client.client_id.as_str()) {
            return AuthError::ClientRejected {
                client_id: client.client_id.clone(),
                error: error.to_string(),
            };
        }
        e
    }

    /// Forget a registration and every stored token it obtained, for every server of
    /// that issuer: each signs in again when next used.
    fn drop_registration(&self, client: &ClientRecord) {
        if let Err(e) = self.store.delete_client(&client.issuer, &client.client_id) {
            tracing::warn!("cannot remove the stale registration: {e}");
        }
        for (key, record) in self.store.list() {
            let obtained_by = record.client_id.as_deref();
            if record.issuer == client.issuer && obtained_by.is_none_or(|id| id == client.client_id)
            {
                let _ = self.store.delete_tokens(&key);
            }
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The scopes the current token was granted.
    fn granted_scope(&self) -> Option<String> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|r| r.tokens.scope.clone())
    }

    /// RFC 8628: the user enters a code elsewhere while this process polls.
    async fn device_sign_in(&self, d: &Discovered, scope: Option<&str>) -> SignIn {
        let client = self
            .client_for(d, "urn:ietf:wg:oauth:2.0:oob", scope)
            .await
            .map_err(|e| (e, None))?;
        let key = self.held_key();
        let proof = key.as_deref().map(|key| self.proof_with(key));
        match flow::device_flow(&self.http, d, &client, scope, self.cfg.timeout, proof).await {
            Ok(tokens) => Ok((tokens, client)),
            Err(e) => Err((e, Some(client))),
        }
    }

    /// The authorization code flow: the browser, the loopback callback, the token request.
    async fn browser_sign_in(&self, d: &Discovered, scope: Option<&str>) -> SignIn {
        let callback = flow::Callback::bind(self.redirect_for(d))
            .await
            .map_err(|e| (e, None))?;
        let client = self
            .client_for(d, &callback.redirect_uri, scope)
            .await
            .map_err(|e| (e, None))?;
        match self.authorize(d, scope, callback, &client).await {
            Ok(tokens) => Ok((tokens, client)),
            Err(e) => Err((e, Some(client))),
        }
    }

    /// The redirect URI of a browser sign-in at `d`. A client registered for mcp-remote
    /// (a static client, a Client ID Metadata Document, an imported registration) lists
    /// mcp-remote's URI, so it gets exactly that one; a registration of ours gets ours.
    fn redirect_for(&self, d: &Discovered) -> flow::Redirect {
        let theirs = flow::Redirect::mcp_remote(&self.cfg);
        let cimd = self.cfg.client_metadata_url.is_some()
            && d.meta.client_id_metadata_document_supported == Some(true);
        let imported = self.cfg.client_id.is_none()
            && self
                .store
                .load_client(&d.issuer)
                .is_some_and(|c| c.redirect_uri == theirs.uri());
        if self.cfg.static_client || cimd || imported {
            theirs
        } else {
            flow::Redirect::ours(&self.cfg, stable_port(&self.key))
        }
    }

    /// The browser, the loopback callback and the code exchange, for `client`.
    async fn authorize(
        &self,
        d: &Discovered,
        scope: Option<&str>,
        callback: flow::Callback,
        client: &ClientRecord,
    ) -> Result<Tokens, AuthError> {
        let (verifier, code_challenge) = flow::pkce();
        let state = flow::random_token(24);
        let url = flow::authorize_url(
            d,
            client,
            &code_challenge,
            &state,
            scope,
            &self.cfg.authorize_params,
        )?;
        browser::open(&url, &self.cfg)?;
        let (params, held) = callback.wait(&state).await?;
        browser::completed(&self.cfg.config_dir);
        let exchange = async {
            flow::check_iss(&params, d)?;
            let code = params.code.as_ref().expect("checked by the callback");
            let token_params = vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code.expose().to_owned()),
                ("redirect_uri", client.redirect_uri.clone()),
                ("code_verifier", verifier),
                ("resource", d.resource.clone()),
            ];
            self.token_request(&d.meta, client, token_params).await
        };
        let outcome = exchange.await;
        held.finish(&outcome, self.cfg.success_url.as_ref()).await;
        outcome
    }

    /// `logout`: revoke this server's tokens where the authorization server offers
    /// revocation (RFC 7009), forget them, and drop the registration unless another
    /// stored server still uses it. Returns what was done, for the user.
    pub(crate) async fn logout(&self) -> Result<Logout, AuthError> {
        let record = self
            .store
            .load_tokens(&self.key)
            .filter(|r| r.server_url == self.server.as_str());
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = None;
        let Some(record) = record else {
            return Ok(Logout::NothingStored);
        };
        let client = self
            .store
            .load_client(&record.issuer)
            .or_else(|| self.preregistered(&record.issuer, ""));
        let mut revoked = None;
        if let (Some(endpoint), Some(client)) = (&record.revocation_endpoint, &client) {
            // The refresh token first: revoking it may take the access token with it.
            let tokens = &record.tokens;
            let mut result = Ok(());
            for (token, hint) in [
                (tokens.refresh_token.as_ref(), "refresh_token"),
                (Some(&tokens.access_token), "access_token"),
            ] {
                if let Some(token) = token {
                    result =
                        result.and(flow::revoke(&self.http, endpoint, client, token, hint).await);
                }
            }
            revoked = Some(result.map_err(|e| e.to_string()));
        }
        self.store
            .delete_tokens(&self.key)
            .map_err(|e| AuthError::Store(e.to_string()))?;
        let shared = self
            .store
            .list()
            .iter()
            .any(|(_, r)| r.issuer == record.issuer);
        if let Some(client) = client.filter(|c| !shared && self.registered(c)) {
            self.store
                .delete_client(&client.issuer, &client.client_id)
                .map_err(|e| AuthError::Store(e.to_string()))?;
        }
        Ok(Logout::SignedOut { revoked })
    }
}

/// What `logout` did.
#[derive(Debug)]
pub(crate) enum Logout {
    NothingStored,
    /// `revoked`: `None` when the server offers no revocation; `Err` says why it failed
    /// (the tokens are forgotten here all the same).
    SignedOut {
        revoked: Option<Result<(), String>>,
    },
}

/// A sign-in's tokens and the client that obtained them; or its error, with the client
/// when one was chosen.
type SignIn = Result<(Tokens, ClientRecord), (AuthError, Option<ClientRecord>)>;

/// The DPoP key kept in a token record, if it can be read.
fn record_key(record: &ServerRecord) -> Option<Arc<dpop::DpopKey>> {
    let kept = record.dpop_key.as_ref()?;
    let key = dpop::DpopKey::from_record(kept).map(Arc::new);
    if key.is_none() {
        tracing::warn!("the stored DPoP key cannot be read; the next sign-in makes a new one");
    }
    key
}

/// A callback port derived from the server identity, so the redirect URI is stable.
fn stable_port(key: &str) -> u16 {
    let h = store::digest(&[key]);
    let n = u16::from_str_radix(&h[..4], 16).unwrap_or(0);
    33_000 + n % 2_000
}

/// The scopes in `had`, then those of `wanted` not among them.
fn merge_scopes(had: &str, wanted: Option<&str>) -> String {
    let mut all: Vec<&str> = had.split(' ').filter(|s| !s.is_empty()).collect();
    for s in wanted.unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
        if !all.contains(&s) {
            all.push(s);
        }
    }
    all.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_up_keeps_granted_scopes() {
        assert_eq!(merge_scopes("a b", Some("b c")), "a b c");
        assert_eq!(merge_scopes(" a  b ", None), "a b");
        assert_eq!(merge_scopes("", Some("c")), "c");
    }
}
