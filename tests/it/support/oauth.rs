//! A mock OAuth 2.1 authorization server in front of a tiny protected MCP endpoint, on
//! 127.0.0.1:0. Options pick the discovery path, registration kind, client auth method,
//! token lifetime and misbehaviours; every request is recorded for assertions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Prm {
    /// `resource_metadata` in the 401 challenge, at a custom path.
    #[default]
    Header,
    /// Only at `/.well-known/oauth-protected-resource/mcp`.
    WellKnownPath,
    /// Only at the root `/.well-known/oauth-protected-resource`.
    WellKnownRoot,
    /// 2025-03-26 style: no PRM at all.
    None,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum AsMeta {
    /// RFC 8414 at the issuer (`/.well-known/oauth-authorization-server/as`).
    #[default]
    OAuth,
    /// OpenID discovery only (`/.well-known/openid-configuration/as`).
    Oidc,
    /// No metadata document at all (A-03 defaults).
    None,
}

#[derive(Clone, Debug)]
pub struct OAuthOptions {
    pub prm: Prm,
    pub meta: AsMeta,
    pub dcr: bool,
    pub cimd: bool,
    /// `token_endpoint_auth_methods_supported`.
    pub auth_methods: Vec<&'static str>,
    /// Pre-registered client (id, secret).
    pub preregistered: Option<(&'static str, &'static str)>,
    pub expires_in: u64,
    pub prm_resource: Option<String>,
    pub iss: Iss,
    pub authorization_endpoint: Option<String>,
    pub scopes_supported: Option<Vec<&'static str>>,
    pub dpop: Dpop,
    /// Token responses carry an OpenID Connect `id_token`, which the MCP endpoint also
    /// accepts as a credential.
    pub id_tokens: bool,
    /// Every endpoint sets a cookie of its own (`mcp=1` from the MCP endpoint, `as=1`
    /// from the authorization server's).
    pub cookies: bool,
    /// `/mcp` answers 307 to `/mcp/`, where the MCP endpoint is (a Starlette mount).
    pub redirect_mcp: bool,
    /// Access and refresh tokens of 3,000 characters each, as some identity providers
    /// issue: a token set then exceeds one Windows Credential Manager entry.
    pub long_tokens: bool,
}

/// DPoP (RFC 9449): off, or advertised (ES256) with tokens bound to the proof's key,
/// optionally with nonces required by both the token endpoint and the MCP endpoint.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Dpop {
    #[default]
    Off,
    On,
    Nonces,
}

/// The nonces the mock hands out when [`Dpop::Nonces`] is set.
pub const AS_NONCE: &str = "as-nonce-1";
pub const RS_NONCE: &str = "rs-nonce-1";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Iss {
    Correct,
    Wrong,
    Omitted,
}

impl Default for OAuthOptions {
    fn default() -> Self {
        OAuthOptions {
            prm: Prm::Header,
            meta: AsMeta::OAuth,
            dcr: true,
            cimd: false,
            auth_methods: vec!["none", "client_secret_basic", "client_secret_post"],
            preregistered: None,
            expires_in: 3600,
            prm_resource: None,
            iss: Iss::Correct,
            authorization_endpoint: None,
            scopes_supported: None,
            dpop: Dpop::Off,
            id_tokens: false,
            long_tokens: false,
            cookies: false,
            redirect_mcp: false,
        }
    }
}

#[derive(Default, Debug)]
pub struct Seen {
    pub registrations: Vec<Value>,
    pub authorizations: Vec<HashMap<String, String>>,
    pub token_requests: Vec<(HashMap<String, String>, Option<String>)>,
    /// Authorization headers on MCP requests.
    pub mcp_auth: Vec<Option<String>>,
    /// The Cookie header of each request, by endpoint ("mcp", "token", "register").
    pub cookies: Vec<(&'static str, Option<String>)>,
    /// Requests to `/signed-in` (the --auth-success-url of the tests).
    pub success_pages: usize,
    /// The claims of the DPoP proofs on requests `redirect_mcp` redirected.
    pub redirected_proofs: Vec<Value>,
    codes: HashMap<String, (String, String, String)>, // code → (challenge, client, scope)
    /// Device codes → approved yet?
    devices: HashMap<String, bool>,
    pub device_polls: usize,
    /// (token_type_hint, token) of each revocation request (RFC 7009).
    pub revocations: Vec<(String, String)>,
    /// The claims of every DPoP proof accepted, at the token endpoint and at /mcp.
    pub dpop_token_proofs: Vec<Value>,
    pub dpop_mcp_proofs: Vec<Value>,
    /// Why a proof was refused (a nonce challenge included).
    pub dpop_refusals: Vec<String>,
    /// Access and refresh token → the JWK of the key it is bound to.
    bound: HashMap<String, String>,
    clients: HashMap<String, (Option<String>, String)>, // id → (secret, redirect)
    access: HashMap<String, String>,                    // token → scope
    refresh: HashMap<String, String>,
    next: u64,
}

impl Seen {
    pub fn clients_known(&self, id: &str) -> bool {
        self.clients.contains_key(id)
    }
}

#[derive(Clone)]
pub struct OAuthMock {
    pub opts: OAuthOptions,
    pub seen: Arc<Mutex<Seen>>,
    pub base: String,
    pub url: String,
    pub changed: Arc<tokio::sync::Notify>,
}

impl OAuthMock {
    /// The credential the MCP endpoint saw last (the Authorization value's token).
    pub fn last_credential(&self) -> String {
        let seen = self.seen.lock().unwrap();
        seen.mcp_auth
            .last()
            .cloned()
            .flatten()
            .expect("an authorized MCP request")
    }

    pub async fn start(opts: OAuthOptions) -> OAuthMock {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let m = OAuthMock {
            opts,
            seen: Arc::default(),
            base: format!("http://{addr}"),
            url: format!("http://{addr}/mcp"),
            changed: Arc::default(),
        };
        if let Some((id, secret)) = m.opts.preregistered {
            m.seen
                .lock()
                .unwrap()
                .clients
                .insert(id.into(), (Some(secret.into()), String::new()));
        }
        let app = Router::new()
            .route("/mcp", post(mcp).get(mcp_get).delete(mcp_get))
            .route("/mcp/", post(mcp).get(mcp_get).delete(mcp_get))
            .route("/custom/prm", get(prm))
            .route("/.well-known/oauth-protected-resource/mcp", get(prm_path))
            .route("/.well-known/oauth-protected-resource", get(prm_root))
            .route(
                "/.well-known/oauth-authorization-server/as",
                get(meta_oauth),
            )
            .route("/.well-known/openid-configuration/as", get(meta_oidc))
            .route("/.well-known/oauth-authorization-server", get(meta_root))
            .route("/as/authorize", get(authorize))
            .route("/authorize", get(authorize))
            .route("/as/token", post(token))
            .route("/token", post(token))
            .route("/as/register", post(register))
            .route("/as/revoke", post(revoke))
            .route("/as/device", post(device))
            .route("/as/device/approve", get(device_approve))
            .route("/register", post(register))
            .route("/signed-in", get(signed_in))
            .layer(axum::middleware::from_fn_with_state(m.clone(), cookie_jar))
            .with_state(m.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        m
    }

    pub fn issuer(&self) -> String {
        match self.opts.prm {
            Prm::None => self.base.clone(),
            _ => format!("{}/as", self.base),
        }
    }

    fn endpoint(&self, name: &str) -> String {
        match self.opts.prm {
            Prm::None => format!("{}/{name}", self.base),
            _ => format!("{}/as/{name}", self.base),
        }
    }

    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Seen) -> bool) {
        let fut = async {
            loop {
                let notified = self.changed.notified();
                if pred(&self.seen.lock().unwrap()) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(super::WAIT, fut)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "authorization server never saw: {what}; {:#?}",
                    self.seen.lock().unwrap()
                )
            });
    }

    fn touch(&self) {
        self.changed.notify_waiters();
    }

    /// Know a client, and tokens it obtained, as if issued before (an mcp-remote sign-in
    /// being imported).
    pub fn preload(&self, client_id: &str, redirect: &str, access: &str, refresh: &str) {
        let mut seen = self.seen.lock().unwrap();
        seen.clients
            .insert(client_id.into(), (None, redirect.into()));
        seen.access.insert(access.into(), "mcp.read".into());
        seen.refresh.insert(refresh.into(), "mcp.read".into());
    }

    /// Revoke every access token (the next MCP request gets 401).
    pub fn revoke_access(&self) {
        self.seen.lock().unwrap().access.clear();
    }

    /// Play an authorization server that restarted with in-memory state: it forgets
    /// every registered client and every token it issued.
    pub fn forget_clients(&self) {
        let mut seen = self.seen.lock().unwrap();
        seen.clients.retain(|id, _| !id.starts_with("dyn-client-"));
        seen.access.clear();
        seen.refresh.clear();
    }
}

fn challenge(m: &OAuthMock, extra: &str) -> String {
    let mut c = "Bearer".to_owned();
    if m.opts.prm == Prm::Header {
        c.push_str(&format!(" resource_metadata=\"{}/custom/prm\"", m.base));
    }
    if !extra.is_empty() {
        c.push_str(if m.opts.prm == Prm::Header { ", " } else { " " });
        c.push_str(extra);
    }
    c
}

async fn mcp(
    State(m): State<OAuthMock>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    m.seen.lock().unwrap().mcp_auth.push(auth.clone());
    m.touch();
    let mut token = auth.as_deref().and_then(|a| a.strip_prefix("Bearer "));
    if let Some(t) = auth.as_deref().and_then(|a| a.strip_prefix("DPoP ")) {
        let htu = format!("{}{}", m.base, uri.path());
        let nonce = (m.opts.dpop == Dpop::Nonces).then_some(RS_NONCE);
        let bound = m.seen.lock().unwrap().bound.get(t).cloned();
        match check_proof(&headers, "POST", &htu, Some(t), nonce) {
            Ok((jwk, claims)) if Some(&jwk) == bound.as_ref() => {
                m.seen.lock().unwrap().dpop_mcp_proofs.push(claims);
                token = Some(t);
            }
            refused => {
                let why = match refused {
                    Err(why) => why,
                    Ok(_) => "the proof's key is not the token's".into(),
                };
                m.seen
                    .lock()
                    .unwrap()
                    .dpop_refusals
                    .push(format!("mcp: {why}"));
                m.touch();
                let error = dpop_error(&why);
                return (
                    StatusCode::UNAUTHORIZED,
                    [
                        (header::WWW_AUTHENTICATE, format!("DPoP error=\"{error}\"")),
                        (
                            header::HeaderName::from_static("dpop-nonce"),
                            RS_NONCE.into(),
                        ),
                    ],
                    "",
                )
                    .into_response();
            }
        }
    } else if token.is_some_and(|t| m.seen.lock().unwrap().bound.contains_key(t)) {
        // A DPoP-bound token presented as a bearer token is refused (RFC 9449 §7.2).
        token = None;
    }
    let scope = token.and_then(|t| m.seen.lock().unwrap().access.get(t).cloned());
    let Some(scope) = scope else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge(&m, ""))],
            "",
        )
            .into_response();
    };
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(id) = req.get("id").cloned() else {
        return StatusCode::ACCEPTED.into_response();
    };
    let method = req["method"].as_str().unwrap_or("");
    let tool = req["params"]["name"].as_str().unwrap_or("");
    let needed = match tool {
        "admin" => Some("admin"),
        "never" => Some("unobtainable"),
        _ => None,
    };
    if let Some(needed) = needed
        && !scope.split(' ').any(|s| s == needed)
    {
        let c = challenge(
            &m,
            &format!("error=\"insufficient_scope\", scope=\"{needed}\""),
        );
        return (StatusCode::FORBIDDEN, [(header::WWW_AUTHENTICATE, c)], "").into_response();
    }
    let result = match method {
        "initialize" => {
            json!({"protocolVersion": req["params"]["protocolVersion"], "capabilities": {"tools": {}},
            "serverInfo": {"name": "protected", "version": "1"}})
        }
        "tools/list" => json!({"tools": [{"name": "whoami", "inputSchema": {"type": "object"}}]}),
        _ => json!({"content": [{"type": "text", "text": format!("ok:{tool}:{scope}")}]}),
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
    )
        .into_response()
}

async fn mcp_get() -> Response {
    StatusCode::METHOD_NOT_ALLOWED.into_response()
}

fn prm_doc(m: &OAuthMock) -> Response {
    let mut doc = json!({
        "resource": m.opts.prm_resource.clone().unwrap_or_else(|| m.url.clone()),
        "authorization_servers": [m.issuer()],
    });
    if let Some(s) = &m.opts.scopes_supported {
        doc["scopes_supported"] = json!(s);
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}

async fn prm(State(m): State<OAuthMock>) -> Response {
    if m.opts.prm == Prm::Header {
        prm_doc(&m)
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}
async fn prm_path(State(m): State<OAuthMock>) -> Response {
    if m.opts.prm == Prm::WellKnownPath {
        prm_doc(&m)
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}
async fn prm_root(State(m): State<OAuthMock>) -> Response {
    if m.opts.prm == Prm::WellKnownRoot {
        prm_doc(&m)
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

fn meta_doc(m: &OAuthMock) -> Response {
    let mut doc = json!({
        "issuer": m.issuer(),
        "authorization_endpoint": m.opts.authorization_endpoint.clone().unwrap_or_else(|| m.endpoint("authorize")),
        "token_endpoint": m.endpoint("token"),
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": m.opts.auth_methods,
        "authorization_response_iss_parameter_supported": m.opts.iss != Iss::Omitted,
    });
    if m.opts.dcr {
        doc["registration_endpoint"] = json!(m.endpoint("register"));
    }
    doc["device_authorization_endpoint"] = json!(m.endpoint("device"));
    doc["revocation_endpoint"] = json!(m.endpoint("revoke"));
    if m.opts.cimd {
        doc["client_id_metadata_document_supported"] = json!(true);
    }
    if m.opts.dpop != Dpop::Off {
        doc["dpop_signing_alg_values_supported"] = json!(["ES256"]);
    }
    if let Some(s) = &m.opts.scopes_supported {
        doc["scopes_supported"] = json!(s);
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}

async fn meta_oauth(State(m): State<OAuthMock>) -> Response {
    if m.opts.meta == AsMeta::OAuth && m.opts.prm != Prm::None {
        meta_doc(&m)
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}
async fn meta_oidc(State(m): State<OAuthMock>) -> Response {
    if m.opts.meta == AsMeta::Oidc {
        meta_doc(&m)
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}
async fn meta_root(State(m): State<OAuthMock>) -> Response {
    if m.opts.prm == Prm::None && m.opts.meta == AsMeta::OAuth {
        meta_doc(&m)
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn register(State(m): State<OAuthMock>, body: Bytes) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut seen = m.seen.lock().unwrap();
    seen.next += 1;
    let id = format!("dyn-client-{}", seen.next);
    let redirect = req["redirect_uris"][0].as_str().unwrap_or("").to_owned();
    seen.clients.insert(id.clone(), (None, redirect));
    seen.registrations.push(req);
    drop(seen);
    m.touch();
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"client_id": id, "token_endpoint_auth_method": "none"}).to_string(),
    )
        .into_response()
}

async fn authorize(
    State(m): State<OAuthMock>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut seen = m.seen.lock().unwrap();
    seen.authorizations.push(q.clone());
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    let client = q.get("client_id").cloned().unwrap_or_default();
    let known = seen.clients.contains_key(&client) || client.starts_with("https://");
    if q.get("code_challenge_method").map(String::as_str) != Some("S256")
        || !known
        || !q.contains_key("state")
    {
        drop(seen);
        m.touch();
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    seen.next += 1;
    let code = format!("code-{}", seen.next);
    // "unobtainable" is never granted: step-up for it can only fail (A-STEPUP cap).
    let scope = q
        .get("scope")
        .map(|s| {
            s.split(' ')
                .filter(|s| *s != "unobtainable")
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    seen.codes
        .insert(code.clone(), (q["code_challenge"].clone(), client, scope));
    drop(seen);
    m.touch();
    let iss = match m.opts.iss {
        Iss::Correct => format!("&iss={}", url_encode(&m.issuer())),
        Iss::Wrong => "&iss=https%3A%2F%2Fevil.test".to_owned(),
        Iss::Omitted => String::new(),
    };
    Redirect::to(&format!(
        "{redirect}?code={code}&state={}{iss}",
        url_encode(&q["state"])
    ))
    .into_response()
}

async fn signed_in(State(m): State<OAuthMock>) -> Response {
    m.seen.lock().unwrap().success_pages += 1;
    m.touch();
    (StatusCode::OK, "signed in").into_response()
}

/// Record the Cookie header of the MCP, token and registration endpoints, and set
/// each one's own cookie when `cookies` is on.
async fn cookie_jar(
    State(m): State<OAuthMock>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path().to_owned();
    if m.opts.redirect_mcp && path == "/mcp" {
        if let Some(claims) = req
            .headers()
            .get("dpop")
            .and_then(|v| v.to_str().ok())
            .and_then(|jwt| jwt.split('.').nth(1))
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        {
            m.seen.lock().unwrap().redirected_proofs.push(claims);
        }
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, "/mcp/")],
        )
            .into_response();
    }
    let endpoint = match path.as_str() {
        "/mcp" | "/mcp/" => "mcp",
        p if p.ends_with("/token") => "token",
        p if p.ends_with("/register") => "register",
        _ => return next.run(req).await,
    };
    let cookie = req
        .headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    m.seen.lock().unwrap().cookies.push((endpoint, cookie));
    let mut resp = next.run(req).await;
    if m.opts.cookies {
        let set = if endpoint == "mcp" {
            "mcp=1; Path=/"
        } else {
            "as=1; Path=/"
        };
        resp.headers_mut()
            .append(header::SET_COOKIE, header::HeaderValue::from_static(set));
    }
    resp
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn token(State(m): State<OAuthMock>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut seen = m.seen.lock().unwrap();
    seen.token_requests.push((form.clone(), basic.clone()));
    // RFC 9449 §5: a proof binds the tokens; without one they are bearer tokens.
    let mut bind_to = None;
    if m.opts.dpop != Dpop::Off && headers.contains_key("dpop") {
        let nonce = (m.opts.dpop == Dpop::Nonces).then_some(AS_NONCE);
        match check_proof(&headers, "POST", &m.endpoint("token"), None, nonce) {
            Ok((jwk, claims)) => {
                seen.dpop_token_proofs.push(claims);
                bind_to = Some(jwk);
            }
            Err(why) => {
                seen.dpop_refusals.push(format!("token: {why}"));
                drop(seen);
                m.touch();
                let error = dpop_error(&why);
                return (
                    StatusCode::BAD_REQUEST,
                    [
                        (header::CONTENT_TYPE, "application/json".to_owned()),
                        (
                            header::HeaderName::from_static("dpop-nonce"),
                            AS_NONCE.into(),
                        ),
                    ],
                    json!({"error": error}).to_string(),
                )
                    .into_response();
            }
        }
    }
    let bad = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": "invalid_grant", "error_description": why}).to_string(),
        )
            .into_response()
    };
    // Client authentication.
    let (client_id, secret) = match &basic {
        Some(b) => {
            let raw = String::from_utf8(STANDARD.decode(b.trim_start_matches("Basic ")).unwrap())
                .unwrap();
            let (i, s) = raw.split_once(':').unwrap();
            (i.to_owned(), Some(s.to_owned()))
        }
        None => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned(),
        ),
    };
    let known = match seen.clients.get(&client_id) {
        Some((Some(want), _)) => secret.as_deref() == Some(want.as_str()),
        Some((None, _)) => true,
        // Clients this server never registered or forgot (CIMD URLs are fetched).
        None => !client_id.starts_with("dyn-client-") && !client_id.starts_with("pre-"),
    };
    if !known {
        drop(seen);
        m.touch();
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": "invalid_client", "error_description": "Client authentication failed"})
                .to_string(),
        )
            .into_response();
    }
    let scope = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some((challenge, client, scope)) = seen
                .codes
                .remove(form.get("code").map(String::as_str).unwrap_or(""))
            else {
                drop(seen);
                m.touch();
                return bad("unknown code");
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
            if URL_SAFE_NO_PAD.encode(digest.as_ref()) != challenge || client != client_id {
                drop(seen);
                m.touch();
                return bad("PKCE or client mismatch");
            }
            scope
        }
        Some("urn:ietf:params:oauth:grant-type:device_code") => {
            seen.device_polls += 1;
            match seen
                .devices
                .get(form.get("device_code").map(String::as_str).unwrap_or(""))
            {
                Some(true) => String::new(),
                Some(false) => {
                    drop(seen);
                    m.touch();
                    return (
                        StatusCode::BAD_REQUEST,
                        [(header::CONTENT_TYPE, "application/json")],
                        json!({"error": "authorization_pending"}).to_string(),
                    )
                        .into_response();
                }
                None => {
                    drop(seen);
                    m.touch();
                    return bad("unknown device code");
                }
            }
        }
        // A machine: the client authenticated above is all it takes (RFC 6749 §4.4).
        Some("client_credentials") if seen.clients.contains_key(&client_id) => {
            form.get("scope").cloned().unwrap_or_default()
        }
        // Playing the enterprise IdP too (RFC 8693): an ID token for an ID-JAG, handed out
        // below as the access token (a JWT-shaped string naming the subject).
        Some("urn:ietf:params:oauth:grant-type:token-exchange")
            if form.get("requested_token_type").map(String::as_str)
                == Some("urn:ietf:params:oauth:token-type:id-jag") =>
        {
            let jag = format!(
                "jag.{}.sig",
                form.get("subject_token")
                    .cloned()
                    .unwrap_or_default()
                    .replace('.', "_")
            );
            drop(seen);
            m.touch();
            return (
                [(header::CONTENT_TYPE, "application/json")],
                json!({"access_token": jag, "token_type": "N_A",
                       "issued_token_type": "urn:ietf:params:oauth:token-type:id-jag"})
                .to_string(),
            )
                .into_response();
        }
        // A workload's JWT is the grant (RFC 7523 §2.1); its scope is what it asks for.
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
            if form
                .get("assertion")
                .is_some_and(|a| a.split('.').count() == 3) =>
        {
            form.get("scope").cloned().unwrap_or_default()
        }
        // A bound refresh token needs a proof by the same key (RFC 9449 §5).
        Some("refresh_token")
            if seen
                .bound
                .get(form.get("refresh_token").map(String::as_str).unwrap_or(""))
                .is_some_and(|k| Some(k) != bind_to.as_ref()) =>
        {
            drop(seen);
            m.touch();
            return bad("the refresh token is bound to another DPoP key");
        }
        Some("refresh_token") => match seen
            .refresh
            .remove(form.get("refresh_token").map(String::as_str).unwrap_or(""))
        {
            Some(scope) => scope,
            None => {
                drop(seen);
                m.touch();
                return bad("unknown refresh token");
            }
        },
        _ => {
            drop(seen);
            m.touch();
            return bad("unsupported grant");
        }
    };
    seen.next += 1;
    let n = seen.next;
    let (mut access, mut refresh) = (format!("at-{n}"), format!("rt-{n}"));
    if m.opts.long_tokens {
        for token in [&mut access, &mut refresh] {
            token.push('.');
            token.extend(std::iter::repeat_n('x', 3000 - token.len()));
        }
    }
    seen.access.insert(access.clone(), scope.clone());
    seen.refresh.insert(refresh.clone(), scope.clone());
    if let Some(jwk) = &bind_to {
        seen.bound.insert(access.clone(), jwk.clone());
        seen.bound.insert(refresh.clone(), jwk.clone());
    }
    drop(seen);
    m.touch();
    let token_type = if bind_to.is_some() { "DPoP" } else { "Bearer" };
    let mut answer = json!({
        "access_token": access, "token_type": token_type, "expires_in": m.opts.expires_in,
        "refresh_token": refresh, "scope": scope,
    });
    if m.opts.id_tokens {
        // An unsigned JWT whose exp is the access token's; the MCP endpoint takes it.
        let claims = json!({"sub": "user-1", "n": n, "exp": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + m.opts.expires_in});
        let id_token = format!(
            "eyJhbGciOiJub25lIn0.{}.",
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        m.seen
            .lock()
            .unwrap()
            .access
            .insert(id_token.clone(), scope.clone());
        answer["id_token"] = json!(id_token);
    }
    if form
        .get("grant_type")
        .is_some_and(|g| g == "client_credentials" || g.ends_with(":jwt-bearer"))
    {
        // RFC 6749 §4.4.3: no refresh token for a machine.
        answer.as_object_mut().unwrap().remove("refresh_token");
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}

/// The OAuth error for a refused proof: a missing nonce asks for one.
fn dpop_error(why: &str) -> &'static str {
    if why == "nonce" {
        "use_dpop_nonce"
    } else {
        "invalid_dpop_proof"
    }
}

/// Check the request's DPoP proof (RFC 9449 §4.3) for `htm` and `htu`, with `ath` when
/// a token is presented and `nonce` when one is required: the key's JWK (as text) and
/// the claims, or why it is refused ("nonce" for a missing or stale nonce).
fn check_proof(
    headers: &HeaderMap,
    htm: &str,
    htu: &str,
    token: Option<&str>,
    nonce: Option<&str>,
) -> Result<(String, Value), String> {
    let all: Vec<_> = headers.get_all("dpop").iter().collect();
    let [proof] = all[..] else {
        return Err(format!("{} DPoP headers", all.len()));
    };
    let proof = proof.to_str().map_err(|_| "not text")?;
    let parts: Vec<&str> = proof.split('.').collect();
    let [h, c, sig] = parts[..] else {
        return Err("not a JWS".into());
    };
    let decode = |p: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(p).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let (header, claims) = (decode(h)?, decode(c)?);
    let jwk = &header["jwk"];
    if header["typ"] != "dpop+jwt" || header["alg"] != "ES256" || jwk["crv"] != "P-256" {
        return Err(format!("header {header}"));
    }
    if jwk.get("d").is_some() {
        return Err("a private key in the proof".into());
    }
    let coord = |k: &str| {
        URL_SAFE_NO_PAD
            .decode(jwk[k].as_str().unwrap_or(""))
            .unwrap_or_default()
    };
    let point = [vec![4u8], coord("x"), coord("y")].concat();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(
            format!("{h}.{c}").as_bytes(),
            &URL_SAFE_NO_PAD.decode(sig).unwrap_or_default(),
        )
        .map_err(|_| "bad signature")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if claims["htm"] != htm || claims["htu"] != htu || !claims["jti"].is_string() {
        return Err(format!("claims {claims}"));
    }
    if claims["iat"]
        .as_u64()
        .is_none_or(|iat| iat.abs_diff(now) > 300)
    {
        return Err("iat".into());
    }
    if let Some(token) = token {
        let hash = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        if claims["ath"] != URL_SAFE_NO_PAD.encode(hash.as_ref()) {
            return Err("ath".into());
        }
    }
    if nonce.is_some() && claims["nonce"].as_str() != nonce {
        return Err("nonce".into());
    }
    Ok((jwk.to_string(), claims))
}

/// RFC 7009: record the revocation and forget the token.
async fn revoke(State(m): State<OAuthMock>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let token = form.get("token").cloned().unwrap_or_default();
    let hint = form.get("token_type_hint").cloned().unwrap_or_default();
    let mut seen = m.seen.lock().unwrap();
    seen.access.remove(&token);
    seen.refresh.remove(&token);
    seen.revocations.push((hint, token));
    drop(seen);
    m.touch();
    StatusCode::OK.into_response()
}

/// A "browser": a script that follows the redirects with curl, like a user's click.
/// curl is named by its absolute path: the proxy under test runs with an empty
/// environment, and in a Nix build curl is not in /usr/bin.
pub fn browser_script(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("browser.sh");
    let marker = dir.join("browser-opened");
    let curl = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("curl"))
                .find(|p| p.is_file())
        })
        .expect("curl is on PATH (the tests' stand-in browser)");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$1\" >> '{}'\nexec '{}' -fsSL -o /dev/null \"$1\"\n",
            marker.display(),
            curl.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}

/// RFC 8628 device authorization: the user code is approved by a GET on `approve`.
async fn device(State(m): State<OAuthMock>) -> Response {
    let mut seen = m.seen.lock().unwrap();
    seen.next += 1;
    let code = format!("dev-{}", seen.next);
    seen.devices.insert(code.clone(), false);
    drop(seen);
    m.touch();
    (
        [(header::CONTENT_TYPE, "application/json")],
        json!({
            "device_code": code, "user_code": "WDJB-MJHT",
            "verification_uri": format!("{}/as/device/approve", m.base),
            "verification_uri_complete": format!("{}/as/device/approve?code={code}", m.base),
            "expires_in": 60, "interval": 1,
        })
        .to_string(),
    )
        .into_response()
}

async fn device_approve(
    State(m): State<OAuthMock>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(code) = q.get("code")
        && let Some(ok) = m.seen.lock().unwrap().devices.get_mut(code)
    {
        *ok = true;
    }
    m.touch();
    "approved".into_response()
}

/// A sign-in test's own directory: the config directory, mcp-remote's cache directory and
/// the stand-in browser, for proxies started with it.
pub struct SignInEnv {
    pub dir: tempfile::TempDir,
    pub browser: std::path::PathBuf,
}

impl SignInEnv {
    pub fn new() -> SignInEnv {
        let dir = tempfile::tempdir().unwrap();
        let browser = browser_script(dir.path());
        SignInEnv { dir, browser }
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    pub fn config(&self) -> String {
        self.path("config")
    }

    /// The proxy for `url`, with this test's config and mcp-remote cache directories.
    pub fn spawn(&self, url: &str, extra: &[&str], env: &[(&str, &str)]) -> super::Proxy {
        let config = self.config();
        let mut args = vec![url, "--config-dir", &config];
        args.extend_from_slice(extra);
        let cache = self.path("mcp-auth");
        let mut envs = vec![
            ("BROWSER", self.browser.to_str().unwrap()),
            ("MCP_REMOTE_CONFIG_DIR", cache.as_str()),
        ];
        envs.extend_from_slice(env);
        super::Proxy::spawn_env(&args, &envs)
    }

    /// The URLs the stand-in browser was asked to open.
    pub fn opened(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("browser-opened"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Call the mock's `whoami` tool through `p`: its answer names the token's scope. An
/// error answer fails the test, with the proxy's stderr.
pub async fn whoami(p: &mut super::Proxy, id: i64) -> String {
    p.send(&super::call(id, "whoami", json!({}))).await;
    let (resp, _) = p.recv_response(id.into()).await;
    match resp["result"]["content"][0]["text"].as_str() {
        Some(text) => text.to_owned(),
        None => panic!("whoami failed: {resp}\n{}", p.stderr()),
    }
}
