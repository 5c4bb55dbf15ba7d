//! Whether the server wants a sign-in, asked without a token: one probe for the
//! proxy's startup and for `login`.
//!
//! The protected resource metadata (RFC 9728) says whether the server speaks OAuth;
//! then a bare GET, which opens no MCP session, usually gets the 401 challenge, whose
//! scope is the one to ask for (A-SCOPE). `login` may go one step further: an
//! unauthenticated initialize, whose session is ended at once.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use crate::auth::challenge::Challenge;
use crate::auth::{Auth, discover};
use crate::error::RemoteError;
use crate::remote::http::{Http, SESSION_ID, SessionHeaders};

/// What the server said about sign-in.
pub(crate) enum Probe {
    /// It wants a sign-in (or may): with its challenge when it sent one.
    SignIn(Option<Challenge>),
    /// It answered an initialize without a token: no sign-in is needed.
    Open,
    /// It publishes no protected resource metadata: a sign-in, if any, waits for a 401.
    Unknown,
}

/// How far the probe may go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// The metadata and a bare GET only: no MCP session is opened (the proxy's startup).
    Quiet,
    /// Unless those got a challenge, an unauthenticated initialize too (`login`).
    Initialize,
}

/// Ask the server, as far as `reach` allows. Only the initialize can fail: the quiet
/// steps are best effort.
pub(crate) async fn probe(http: &Http, reach: Reach) -> Result<Probe, RemoteError> {
    let quiet = match discover::protected_resource(&http.client, &http.url(), None).await {
        Ok(Some(_)) => Probe::SignIn(bare_get_challenge(http).await),
        Ok(None) => Probe::Unknown,
        // Said at once: otherwise the user learns it only when a request fails.
        Err(crate::auth::AuthError::Unreachable { why, .. }) => {
            tracing::warn!(
                "{why}; requests will fail until it answers (try `clerk-mcp-server check {}`)",
                crate::config::redact_url(&http.url())
            );
            Probe::Unknown
        }
        Err(e) => {
            tracing::debug!("sign-in probe: {e}");
            Probe::Unknown
        }
    };
    match (reach, quiet) {
        (Reach::Quiet, quiet) => Ok(quiet),
        (Reach::Initialize, challenged @ Probe::SignIn(Some(_))) => Ok(challenged),
        (Reach::Initialize, _) => initialize(http).await,
    }
}

/// The challenge of a GET without a token, when the server answers it with 401.
async fn bare_get_challenge(http: &Http) -> Option<Challenge> {
    http.client
        .get(http.url())
        .header(ACCEPT, "text/event-stream")
        .send()
        .await
        .ok()
        .filter(|r| r.status() == StatusCode::UNAUTHORIZED)
        .and_then(|r| Challenge::from_headers(r.headers()))
}

/// An unauthenticated initialize: 401 gives the challenge; success means no sign-in is
/// needed (that session is ended at once); anything else leaves the metadata-based
/// sign-in to try.
async fn initialize(http: &Http) -> Result<Probe, RemoteError> {
    const VERSION: &str = "2025-11-25";
    let body = serde_json::json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":VERSION,"capabilities":{},
        "clientInfo":{"name":"clerk-mcp-server login","version":env!("CARGO_PKG_VERSION")}}});
    let resp = http
        .client
        .post(http.url())
        .headers(http.user_headers.clone())
        .header(ACCEPT, "application/json, text/event-stream")
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| http.remote_err_after(&e, 30.0))?;
    if resp.status() == StatusCode::UNAUTHORIZED {
        return Ok(Probe::SignIn(Challenge::from_headers(resp.headers())));
    }
    if resp.status().is_success() {
        let session = resp.headers().get(SESSION_ID).cloned();
        http.delete_session(&SessionHeaders {
            session_id: session,
            protocol_version: Some(VERSION.into()),
        })
        .await;
        return Ok(Probe::Open);
    }
    Ok(Probe::SignIn(None))
}

/// At the proxy's startup: sign in right away when the server needs it and no token is
/// cached, so the browser opens while the client is still starting.
pub(crate) async fn sign_in_at_startup(http: Arc<Http>, auth: Arc<Auth>) {
    if auth.has_token() {
        return;
    }
    let Ok(Probe::SignIn(challenge)) = probe(&http, Reach::Quiet).await else {
        return;
    };
    // Without a challenge, give the client's first request a moment: its 401 names the
    // scope to ask for, and then it drives the sign-in.
    if challenge.is_none() && auth.startup_sign_in_unneeded(Duration::from_secs(1)).await {
        tracing::debug!("startup sign-in left to the first request");
        return;
    }
    if let Err(e) = auth.sign_in_if_needed(challenge).await {
        tracing::warn!("sign-in failed: {e}");
    }
}
