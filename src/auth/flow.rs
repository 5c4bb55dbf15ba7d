//! The authorization code flow with PKCE on a loopback redirect, client registration,
//! token requests, refresh and the device authorization grant (RFC 6749, 7636, 7591,
//! 8628, 8707, 9207; A-PKCE, A-STATE, A-RESOURCE, A-REG, A-CIMD, A-ISS, A-APPTYPE).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

use crate::auth::discover::{AsMetadata, Discovered, check_endpoint};
use crate::auth::dpop::{self, DpopKey, Nonce};
use crate::auth::store::{ClientRecord, Secret, Tokens, now_secs};
use crate::auth::{AuthConfig, AuthError};
use crate::error::{OAuthEndpoint, OAuthError};

/// Parameters the flow sets itself; `--authorize-param` may not override them.
pub(crate) const RESERVED_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "code_challenge",
    "code_challenge_method",
    "state",
    "resource",
    "scope",
];

pub(crate) fn random_token(bytes: usize) -> String {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("the OS random source works");
    URL_SAFE_NO_PAD.encode(buf)
}

/// PKCE S256 (RFC 7636 §4.2): a 43-character verifier and its challenge.
pub(crate) fn pkce() -> (String, String) {
    let verifier = random_token(32);
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest.as_ref()))
}

/// A-PKCE: the server must advertise S256. Only the A-03 defaults (no metadata at all)
/// go ahead without the advertisement.
pub(crate) fn check_pkce(d: &Discovered) -> Result<(), AuthError> {
    match &d.meta.code_challenge_methods_supported {
        Some(m) if m.iter().any(|m| m == "S256") => Ok(()),
        None if !d.from_document => Ok(()),
        _ => Err(AuthError::Unsupported(
            "the authorization server does not advertise PKCE with S256 (code_challenge_methods_supported); \
             signing in without it is refused"
                .into(),
        )),
    }
}

/// A-SCOPE: --scope, else the challenge's scope, else all of the PRM's scopes_supported,
/// else none. `offline_access` is added when the server offers it, for a refresh token.
pub(crate) fn select_scope(
    cfg: &AuthConfig,
    challenge_scope: Option<&str>,
    d: &Discovered,
) -> Option<String> {
    let mut scope = cfg
        .scope
        .clone()
        .or_else(|| challenge_scope.map(str::to_owned))
        .or_else(|| {
            d.prm
                .as_ref()
                .and_then(|p| p.scopes_supported.as_ref())
                .filter(|s| !s.is_empty())
                .map(|s| s.join(" "))
        })
        .or_else(|| cfg.static_scope.clone())?;
    let offers_offline = d
        .meta
        .scopes_supported
        .as_ref()
        .is_some_and(|s| s.iter().any(|s| s == "offline_access"));
    if offers_offline && cfg.scope.is_none() && !scope.split(' ').any(|s| s == "offline_access") {
        scope.push_str(" offline_access");
    }
    Some(scope)
}

/// The loopback redirect listener (A-REDIRECT): 127.0.0.1 only, on a port that is
/// stable per server so a registered redirect URI keeps working.
pub(crate) struct Callback {
    listener: TcpListener,
    pub(crate) redirect_uri: String,
    path: String,
}

/// Where the browser is sent back to: `http://{host}:{port}{path}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Redirect {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) path: String,
    /// The URI was registered as it is: another port would not be accepted.
    pub(crate) strict: bool,
}

impl Redirect {
    /// Ours: 127.0.0.1, a port stable per server, `/callback`; flags win.
    pub(crate) fn ours(cfg: &AuthConfig, stable_port: u16) -> Redirect {
        Redirect {
            host: cfg.callback_host.clone().unwrap_or("127.0.0.1".into()),
            port: cfg.callback_port.unwrap_or(stable_port),
            path: cfg.callback_path.clone().unwrap_or("/callback".into()),
            strict: cfg.callback_port.is_some(),
        }
    }

    /// mcp-remote 0.15.1's, for a client registered with it: `localhost` (127.0.0.1 on
    /// Windows), the port derived from its cache key, `/oauth/callback`; flags win.
    pub(crate) fn mcp_remote(cfg: &AuthConfig) -> Redirect {
        use crate::auth::compat;
        Redirect {
            host: cfg
                .callback_host
                .clone()
                .unwrap_or(compat::default_host().into()),
            port: cfg
                .callback_port
                .unwrap_or_else(|| compat::port(&cfg.mcp_remote.hash)),
            path: cfg
                .callback_path
                .clone()
                .unwrap_or(compat::CALLBACK_PATH.into()),
            strict: true,
        }
    }

    pub(crate) fn uri(&self) -> String {
        format!("http://{}:{}{}", self.host, self.port, self.path)
    }
}

impl Callback {
    /// Listen on 127.0.0.1 (whatever the redirect's host says) for `redirect`. When the
    /// port is taken and the URI is not strict, another port is used.
    pub(crate) async fn bind(mut redirect: Redirect) -> Result<Callback, AuthError> {
        let wanted = redirect.port;
        let listener = match TcpListener::bind(("127.0.0.1", wanted)).await {
            Ok(l) => l,
            Err(e) if redirect.strict => {
                return Err(AuthError::Callback(format!(
                    "cannot listen on 127.0.0.1:{wanted} for the sign-in callback, the port of \
                     the registered redirect URI {}: {e}",
                    redirect.uri()
                )));
            }
            Err(_) => {
                tracing::info!(
                    port = wanted,
                    "the usual callback port is taken; using another one"
                );
                TcpListener::bind(("127.0.0.1", 0))
                    .await
                    .map_err(|e| AuthError::Callback(format!("cannot listen on 127.0.0.1: {e}")))?
            }
        };
        redirect.port = listener
            .local_addr()
            .map_err(|e| AuthError::Callback(e.to_string()))?
            .port();
        Ok(Callback {
            listener,
            redirect_uri: redirect.uri(),
            path: redirect.path,
        })
    }

    /// Serve until the redirect with our `state` arrives. Connections are served side
    /// by side (a browser's preconnect that sends nothing cannot hold up the real
    /// redirect), at most [`MAX_CALLBACK_CONNECTIONS`] at once. Other requests get a small
    /// page; the redirect's own browser tab is held until the sign-in ends
    /// ([`Held::finish`]), so it tells the truth about the outcome.
    pub(crate) async fn wait(self, state: &str) -> Result<(CallbackParams, Held), AuthError> {
        type Verdict = (tokio::net::TcpStream, Result<CallbackParams, AuthError>);
        let (done_tx, mut done) = tokio::sync::mpsc::channel::<Verdict>(4);
        // Dropped on return: connections still being read are closed with it.
        let mut serving = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (mut stream, _) =
                        accepted.map_err(|e| AuthError::Callback(e.to_string()))?;
                    while serving.try_join_next().is_some() {}
                    if serving.len() >= MAX_CALLBACK_CONNECTIONS {
                        continue; // dropped: closed without an answer
                    }
                    let (path, state, done_tx) =
                        (self.path.clone(), state.to_owned(), done_tx.clone());
                    serving.spawn(async move {
                        let head = read_head(&mut stream).await;
                        let (page, outcome) = judge(&path, &head, &state);
                        // Our redirect is answered when the sign-in ends (Held).
                        if !matches!(outcome, Some(Ok(_))) {
                            respond(&mut stream, page.status, page.title, &page.message).await;
                        }
                        if let Some(outcome) = outcome {
                            let _ = done_tx.send((stream, outcome)).await;
                        }
                    });
                }
                Some((stream, outcome)) = done.recv() => {
                    return outcome.map(|params| (params, Held { stream }));
                }
            }
        }
    }
}

/// Connections the callback listener serves at once; more are closed unanswered.
const MAX_CALLBACK_CONNECTIONS: usize = 16;

/// What one request to the callback listener (at `path`) means: the page to answer it
/// with, and the end of the wait when it is our redirect (`None`: keep waiting).
fn judge(path: &str, head: &str, state: &str) -> (Page, Option<Result<CallbackParams, AuthError>>) {
    const NOT_A_CALLBACK: &str = "This is not a sign-in callback.";
    let target = head
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("GET "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or("");
    let Ok(url) = Url::parse(&format!("http://127.0.0.1{target}")) else {
        return (Page::new(400, "Bad request", NOT_A_CALLBACK), None);
    };
    if url.path() != path {
        return (Page::new(404, "Not found", NOT_A_CALLBACK), None);
    }
    let params = CallbackParams::from_url(&url);
    if params.state.as_deref() != Some(state) {
        // A-STATE: not our request (stale tab, or forged); keep waiting.
        tracing::warn!("ignored a sign-in callback with a wrong state parameter");
        let page = Page::new(
            400,
            "Sign-in failed",
            "This sign-in link is stale or invalid. Start again from your MCP client.",
        );
        return (page, None);
    }
    if let Some(err) = &params.error {
        let desc = params.error_description.clone().unwrap_or_default();
        let page = Page::new(
            400,
            "Sign-in failed",
            format!("The authorization server said: {err} {desc}. You can close this tab."),
        );
        let denied = AuthError::Denied(format!("{err} {desc}").trim().to_owned());
        return (page, Some(Err(denied)));
    }
    if params.code.is_none() {
        let page = Page::new(
            400,
            "Sign-in failed",
            "The callback carried no authorization code.",
        );
        let denied = AuthError::Denied("the callback carried no authorization code".into());
        return (page, Some(Err(denied)));
    }
    // Not sent: the tab is held until the sign-in ends (Held::finish).
    let page = Page::new(200, "Signed in", "");
    (page, Some(Ok(params)))
}

/// The browser tab of the redirect, waiting for the outcome of the sign-in.
pub(crate) struct Held {
    stream: tokio::net::TcpStream,
}

impl Held {
    /// Tell the browser how the sign-in ended: `--auth-success-url` (303, nothing
    /// appended) or our page on success, our error page otherwise.
    pub(crate) async fn finish<T>(mut self, outcome: &Result<T, AuthError>, success: Option<&Url>) {
        match (outcome, success) {
            (Ok(_), Some(url)) => {
                let head = format!(
                    "HTTP/1.1 303 See Other\r\nlocation: {url}\r\ncontent-length: 0\r\ncache-control: no-store\r\nconnection: close\r\n\r\n"
                );
                let _ = self.stream.write_all(head.as_bytes()).await;
                let _ = self.stream.shutdown().await;
            }
            (Ok(_), None) => {
                let message =
                    "You are signed in. You can close this tab and return to your MCP client.";
                respond(&mut self.stream, 200, "Signed in", message).await;
            }
            (Err(e), _) => {
                let message =
                    format!("{e}. You can close this tab and try again from your MCP client.");
                respond(&mut self.stream, 502, "Sign-in failed", &message).await;
            }
        }
    }
}

/// The small HTML page that answers a request to the callback listener.
struct Page {
    status: u16,
    title: &'static str,
    message: String,
}

impl Page {
    fn new(status: u16, title: &'static str, message: impl Into<String>) -> Page {
        Page {
            status,
            title,
            message: message.into(),
        }
    }
}

/// The request head only, bounded: 16 KiB, and 10 s for each read.
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    let mut buf = vec![0u8; 16 * 1024];
    let mut len = 0;
    while len < buf.len() {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf[len..])).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                len += n;
                if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

#[derive(Debug, Default)]
pub(crate) struct CallbackParams {
    pub(crate) code: Option<Secret>,
    pub(crate) state: Option<String>,
    pub(crate) iss: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) error_description: Option<String>,
}

impl CallbackParams {
    fn from_url(url: &Url) -> Self {
        let mut p = CallbackParams::default();
        for (k, v) in url.query_pairs() {
            match &*k {
                "code" => p.code = Some(Secret::new(v.into_owned())),
                "state" => p.state = Some(v.into_owned()),
                "iss" => p.iss = Some(v.into_owned()),
                "error" => p.error = Some(v.into_owned()),
                "error_description" => p.error_description = Some(v.into_owned()),
                _ => {}
            }
        }
        p
    }
}

async fn respond(stream: &mut tokio::net::TcpStream, status: u16, title: &str, message: &str) {
    let ok = status == 200;
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title} – clerk-mcp-server</title>\
<style>body{{font:16px system-ui,sans-serif;display:flex;min-height:90vh;align-items:center;justify-content:center;background:#f6f6f8}}\
main{{background:#fff;padding:2rem 2.5rem;border-radius:12px;box-shadow:0 2px 12px #0001;max-width:32rem}}\
h1{{font-size:1.4rem;color:{color}}}</style></head><body><main><h1 id=\"status\">{title}</h1><p>{message}</p></main></body></html>",
        color = if ok { "#0a7d32" } else { "#b3261e" },
        message = html_escape(message),
    );
    let reason = if ok { "OK" } else { "Error" };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A-ISS (RFC 9207): an `iss` must equal the issuer exactly; and it must be there when
/// the server says it sends one.
pub(crate) fn check_iss(params: &CallbackParams, d: &Discovered) -> Result<(), AuthError> {
    let expected = d.meta.issuer.as_deref().unwrap_or(&d.issuer);
    match &params.iss {
        Some(iss) if iss != expected => Err(AuthError::Denied(format!(
            "the authorization response came from issuer {iss:?}, not {expected:?} (possible mix-up attack); refused"
        ))),
        None if d.meta.authorization_response_iss_parameter_supported == Some(true) => {
            Err(AuthError::Denied(
                "the authorization response lacks the `iss` parameter the server promised; refused"
                    .into(),
            ))
        }
        _ => Ok(()),
    }
}

/// Build the authorization URL (A-PKCE, A-STATE, A-RESOURCE).
pub(crate) fn authorize_url(
    d: &Discovered,
    client: &ClientRecord,
    challenge: &str,
    state: &str,
    scope: Option<&str>,
    extra: &[(String, String)],
) -> Result<Url, AuthError> {
    let mut url = check_endpoint("authorization_endpoint", &d.meta.authorization_endpoint)?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &client.client_id)
            .append_pair("redirect_uri", &client.redirect_uri)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", state);
        if !d.resource.is_empty() {
            q.append_pair("resource", &d.resource);
        }
        if let Some(s) = scope {
            q.append_pair("scope", s);
        }
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    Ok(url)
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
}

/// A DPoP key and the authorization server's latest nonce, for a token request.
#[derive(Clone, Copy)]
pub(crate) struct Proof<'a> {
    pub(crate) key: &'a DpopKey,
    pub(crate) nonce: &'a Nonce,
}

/// POST to the token endpoint with the client's authentication method, and with a DPoP
/// proof when `proof` is given: a `use_dpop_nonce` answer is retried once with the
/// nonce the server sent (RFC 9449 §8).
pub(crate) async fn token_request(
    http: &reqwest::Client,
    meta: &AsMetadata,
    client: &ClientRecord,
    params: Vec<(&'static str, String)>,
    proof: Option<Proof<'_>>,
) -> Result<Tokens, AuthError> {
    let endpoint = check_endpoint("token_endpoint", &meta.token_endpoint)?;
    let mut retried = false;
    let t: TokenResponse = loop {
        // An empty resource is one not to send (--disable-resource-parameter).
        let mut params: Vec<_> = params
            .iter()
            .filter(|(k, v)| !(*k == "resource" && v.is_empty()))
            .cloned()
            .collect();
        let mut req = authenticated(http.post(endpoint.clone()), client, &mut params)
            .header(ACCEPT, "application/json");
        if let Some(p) = proof {
            let jwt = p
                .key
                .proof("POST", &endpoint, None, p.nonce.get().as_deref())
                .map_err(|e| AuthError::Token(format!("signing the DPoP proof: {e}")))?;
            req = req.header(dpop::DPOP, jwt);
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let req = req
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        match call(req, OAuthEndpoint::Token, proof.map(|p| p.nonce)).await {
            Err(AuthError::OAuth { error, .. })
                if error.code == dpop::USE_NONCE
                    && !retried
                    && proof.is_some_and(|p| p.nonce.take_fresh()) =>
            {
                retried = true;
            }
            r => break r?,
        }
    };
    Ok(Tokens {
        access_token: Secret::new(t.access_token),
        refresh_token: t.refresh_token.map(Secret::new),
        expires_at: t.expires_in.map(|s| now_secs() + s),
        scope: t.scope,
        token_type: t.token_type,
        id_token: t.id_token.map(Secret::new),
    })
}

/// RFC 7009: revoke `token` (its kind in `hint`) at `endpoint`, as `client`.
pub(crate) async fn revoke(
    http: &reqwest::Client,
    endpoint: &str,
    client: &ClientRecord,
    token: &Secret,
    hint: &str,
) -> Result<(), AuthError> {
    let endpoint = check_endpoint("revocation_endpoint", endpoint)?;
    let mut params = vec![
        ("token", token.expose().to_owned()),
        ("token_type_hint", hint.to_owned()),
    ];
    let public = client.auth_method == "none";
    let mut retried = false;
    loop {
        let mut form = params.clone();
        let req = authenticated(http.post(endpoint.clone()), client, &mut form);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let resp = req
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                AuthError::Token(format!(
                    "cannot reach the revocation endpoint: {}",
                    no_answer(e)
                ))
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        // RFC 7009 §2.2.1: an error answer is an OAuth error; say which.
        let error = resp
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<OAuthError>(&b).ok());
        // The MCP Python SDK's revocation endpoint (FastMCP's too) insists on a
        // `client_secret` field even from a public client, whose secret it then ignores:
        // an empty one is sent once on that complaint.
        if public
            && !retried
            && error.as_ref().is_some_and(|e| {
                e.code == "invalid_request"
                    && e.description
                        .as_deref()
                        .is_some_and(|d| d.contains("client_secret"))
            })
        {
            retried = true;
            params.push(("client_secret", String::new()));
            continue;
        }
        let said = error.map(|e| format!(": {e}")).unwrap_or_default();
        return Err(AuthError::Token(format!(
            "the revocation endpoint answered HTTP {status}{said}"
        )));
    }
}

/// Client authentication on a token or revocation request (RFC 6749 §2.3): HTTP Basic,
/// the secret in the form, or only the client id for a public client.
fn authenticated(
    mut req: reqwest::RequestBuilder,
    client: &ClientRecord,
    params: &mut Vec<(&'static str, String)>,
) -> reqwest::RequestBuilder {
    match (client.auth_method.as_str(), &client.client_secret) {
        ("client_secret_basic", Some(secret)) => {
            // RFC 6749 §2.3.1: form-urlencode each part before joining.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let basic = STANDARD.encode(format!(
                "{}:{}",
                enc(&client.client_id),
                enc(secret.expose())
            ));
            req = req.header(AUTHORIZATION, format!("Basic {basic}"));
        }
        ("client_secret_post", Some(secret)) => {
            params.push(("client_id", client.client_id.clone()));
            params.push(("client_secret", secret.expose().to_owned()));
        }
        // A workload's jwt-bearer grant may name no client at all.
        _ if client.client_id.is_empty() => {}
        _ => params.push(("client_id", client.client_id.clone())),
    }
    req
}

/// Pick the token endpoint auth method for a client with a secret: basic unless the
/// server lists only post (RFC 8414's default is basic).
pub(crate) fn secret_method(meta: &AsMetadata) -> &'static str {
    match &meta.token_endpoint_auth_methods_supported {
        Some(m)
            if !m.iter().any(|m| m == "client_secret_basic")
                && m.iter().any(|m| m == "client_secret_post") =>
        {
            "client_secret_post"
        }
        _ => "client_secret_basic",
    }
}

#[derive(Deserialize)]
struct RegistrationResponse {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

/// A-REG step 3: Dynamic Client Registration (RFC 7591), as a native app (A-APPTYPE).
pub(crate) async fn register(
    http: &reqwest::Client,
    d: &Discovered,
    redirect_uri: &str,
    scope: Option<&str>,
    extra: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<ClientRecord, AuthError> {
    let endpoint = d
        .meta
        .registration_endpoint
        .as_deref()
        .ok_or(AuthError::NoRegistration)?;
    let endpoint = check_endpoint("registration_endpoint", endpoint)?;
    let mut body = serde_json::json!({
        "client_name": "clerk-mcp-server",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
    });
    // --static-oauth-client-metadata goes over our defaults, as in mcp-remote.
    for (k, v) in extra.into_iter().flatten() {
        body[k] = v.clone();
    }
    if let Some(s) = scope {
        body["scope"] = serde_json::Value::String(s.to_owned());
    }
    let req = http
        .post(endpoint)
        .header(ACCEPT, "application/json")
        .json_body(&body);
    let r: RegistrationResponse = call(req, OAuthEndpoint::Registration, None).await?;
    let auth_method = match (&r.token_endpoint_auth_method, &r.client_secret) {
        (Some(m), _) => m.clone(),
        (None, Some(_)) => secret_method(&d.meta).to_owned(),
        (None, None) => "none".to_owned(),
    };
    Ok(ClientRecord {
        issuer: d.issuer.clone(),
        client_id: r.client_id,
        client_secret: r.client_secret.map(Secret::new),
        auth_method,
        redirect_uri: redirect_uri.to_owned(),
    })
}

trait JsonBody {
    fn json_body(self, v: &serde_json::Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, v: &serde_json::Value) -> Self {
        self.header(CONTENT_TYPE, "application/json")
            .body(v.to_string())
    }
}

#[derive(Deserialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    interval: Option<u64>,
}

/// RFC 8628: print a code for the user to enter elsewhere, then poll for the tokens.
pub(crate) async fn device_flow(
    http: &reqwest::Client,
    d: &Discovered,
    client: &ClientRecord,
    scope: Option<&str>,
    deadline: Duration,
    proof: Option<Proof<'_>>,
) -> Result<Tokens, AuthError> {
    let endpoint = d
        .meta
        .device_authorization_endpoint
        .as_deref()
        .ok_or_else(|| {
            AuthError::Unsupported(
                "the authorization server offers no device authorization endpoint (--device-code)"
                    .into(),
            )
        })?;
    let endpoint = check_endpoint("device_authorization_endpoint", endpoint)?;
    let mut params = vec![
        ("client_id", client.client_id.clone()),
        ("resource", d.resource.clone()),
    ];
    if let Some(s) = scope {
        params.push(("scope", s.to_owned()));
    }
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let req = http
        .post(endpoint)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .body(body);
    let da: DeviceAuthorization = call(req, OAuthEndpoint::DeviceAuthorization, None).await?;
    let shown = da
        .verification_uri_complete
        .as_deref()
        .unwrap_or(&da.verification_uri);
    eprintln!(
        "\nclerk-mcp-server: to sign in, open {shown}\n                  and enter the code: {}\n",
        da.user_code
    );
    tracing::info!(url = %da.verification_uri, code = %da.user_code, "waiting for device sign-in");
    let mut interval = Duration::from_secs(da.interval.unwrap_or(5).max(1));
    let until = tokio::time::Instant::now()
        + deadline.min(Duration::from_secs(da.expires_in.unwrap_or(900)));
    loop {
        if tokio::time::Instant::now() + interval > until {
            return Err(AuthError::TimedOut { url: String::new() });
        }
        tokio::time::sleep(interval).await;
        let params = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:device_code".to_owned(),
            ),
            ("device_code", da.device_code.clone()),
            ("resource", d.resource.clone()),
        ];
        match token_request(http, &d.meta, client, params, proof).await {
            Ok(t) => return Ok(t),
            // RFC 8628 §3.5: not yet, and not so fast.
            Err(AuthError::OAuth { error, .. }) if error.code == "authorization_pending" => {}
            Err(AuthError::OAuth { error, .. }) if error.code == "slow_down" => {
                interval += Duration::from_secs(5)
            }
            Err(e) => return Err(e),
        }
    }
}

/// Why a request to an authorization server got no answer, named as the MCP server's
/// would be (DNS, refused, TLS, a client certificate the server wants: --tls-cert), not
/// reqwest's bare "error sending request". In TLS 1.3 a server refuses a client
/// certificate (or its absence) after the handshake, so this is not only for connect
/// errors. A timeout is said without a flag: its wait is not --request-timeout's.
pub(crate) fn no_answer(e: reqwest::Error) -> String {
    let Some(url) = e.url() else {
        return e.to_string();
    };
    let host = host_port(url);
    if e.is_timeout() {
        return format!("{host} did not answer in time");
    }
    crate::error::RemoteError::from_reqwest(&host, &e, 0.0).to_string()
}

/// `host[:port]`: what messages name of a URL.
fn host_port(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (h, _) => h.unwrap_or("server").to_owned(),
    }
}

/// Send an OAuth request and read its JSON answer; an error answer becomes
/// [`AuthError::OAuth`] (RFC 6749 §5.2), never anything that carries a token.
async fn call<T: for<'de> Deserialize<'de>>(
    req: reqwest::RequestBuilder,
    endpoint: OAuthEndpoint,
    nonce: Option<&Nonce>,
) -> Result<T, AuthError> {
    let what = endpoint.name();
    let resp = req
        .send()
        .await
        .map_err(|e| endpoint.failed(format!("cannot reach {what}: {}", no_answer(e))))?;
    if let Some(nonce) = nonce {
        nonce.observe(resp.headers());
    }
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| {
        endpoint.failed(format!("reading the answer of {what}: {}", e.without_url()))
    })?;
    if !status.is_success() {
        return Err(match serde_json::from_slice::<OAuthError>(&bytes) {
            Ok(error) => AuthError::OAuth { endpoint, error },
            Err(_) => endpoint.failed(format!("{what} answered HTTP {status}")),
        });
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| endpoint.failed(format!("unreadable answer from {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256() {
        let (v, c) = pkce();
        assert_eq!(v.len(), 43);
        let d = ring::digest::digest(&ring::digest::SHA256, v.as_bytes());
        assert_eq!(c, URL_SAFE_NO_PAD.encode(d.as_ref()));
        // RFC 7636 appendix B.
        let d = ring::digest::digest(
            &ring::digest::SHA256,
            b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        );
        assert_eq!(
            URL_SAFE_NO_PAD.encode(d.as_ref()),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
