//! `login`, `logout` and `status`: manage sign-ins without running the proxy.

use std::process::ExitCode;

use crate::auth::store::{Store, now_secs};
use crate::cli::{LogoutArgs, RemoteArgs, StatusArgs};
use crate::config::{Config, redact_url};
use crate::error::ConfigError;

/// Sign in ahead of time: discover, register, open the browser, store the tokens.
pub async fn login(args: &RemoteArgs) -> anyhow::Result<ExitCode> {
    let config = Config::from_args(args)?;
    let http = crate::connect::connect(&config)?;
    let Some(auth) = &http.auth else {
        println!("An Authorization header was given with --header: nothing to sign in to.");
        return Ok(ExitCode::SUCCESS);
    };
    if auth.has_token() {
        println!("Already signed in to {}.", redact_url(&config.url));
        return Ok(ExitCode::SUCCESS);
    }
    // Ask the server itself: its 401 carries the challenge (resource_metadata, scope).
    let challenge = match probe(&http).await? {
        Probe::Challenge(c) => c,
        Probe::Open => {
            println!("{} does not require sign-in.", redact_url(&config.url));
            return Ok(ExitCode::SUCCESS);
        }
    };
    match auth.sign_in_if_needed(challenge).await {
        Ok(()) => {
            println!("Signed in to {}.", redact_url(&config.url));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("Sign-in failed: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

enum Probe {
    Challenge(Option<crate::auth::challenge::Challenge>),
    Open,
}

/// An unauthenticated initialize: 401 gives the challenge; success means no sign-in is
/// needed (that session is ended at once).
async fn probe(http: &crate::remote::http::Http) -> anyhow::Result<Probe> {
    use reqwest::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
    let body = serde_json::json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},
        "clientInfo":{"name":"clerk-mcp-server login","version":env!("CARGO_PKG_VERSION")}}});
    let resp = http
        .client
        .post(http.url.clone())
        .headers(http.user_headers.clone())
        .header(ACCEPT, "application/json, text/event-stream")
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| crate::error::RemoteError::from_reqwest(&http.host, &e, 30.0))?;
    if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
        return Ok(Probe::Challenge(crate::auth::challenge::Challenge::parse(
            resp.headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        )));
    }
    if resp.status().is_success() {
        let session = resp.headers().get(crate::remote::http::SESSION_ID).cloned();
        http.delete_session(&crate::remote::http::SessionHeaders {
            session_id: session,
            protocol_version: Some("2025-11-25".into()),
        })
        .await;
        return Ok(Probe::Open);
    }
    // Anything else: try the metadata-based sign-in anyway.
    Ok(Probe::Challenge(None))
}

pub fn logout(args: &LogoutArgs) -> anyhow::Result<ExitCode> {
    if args.all {
        let dir = match &args.remote.auth.config_dir {
            Some(d) => d.clone(),
            None => crate::auth::store::default_dir().ok_or(ConfigError::Invalid {
                flag: "--config-dir",
                why: "no home directory".into(),
            })?,
        };
        for sub in ["tokens", "clients"] {
            match std::fs::remove_dir_all(dir.join(sub)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => anyhow::bail!("cannot remove {}: {e}", dir.join(sub).display()),
            }
        }
        println!("Signed out of every server.");
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::from_args(&args.remote)?;
    let auth = crate::auth::Auth::new(
        crate::remote::build_client(&config)?,
        config.url.clone(),
        config.auth.clone(),
    );
    if auth.forget()? {
        println!("Signed out of {}.", redact_url(&config.url));
    } else {
        println!("No sign-in stored for {}.", redact_url(&config.url));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let dir = match &args.config_dir {
        Some(d) => d.clone(),
        None => crate::auth::store::default_dir().ok_or(ConfigError::Invalid {
            flag: "--config-dir",
            why: "no home directory".into(),
        })?,
    };
    let records = Store::new(dir.clone()).list();
    if records.is_empty() {
        println!("No sign-ins stored (in {}).", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_secs();
    for (_, r) in records {
        let expiry = match r.tokens.expires_at {
            Some(at) if at <= now => "expired".to_owned(),
            Some(at) => format!("expires in {}", human(at - now)),
            None => "no expiry given".to_owned(),
        };
        let refresh = if r.tokens.refresh_token.is_some() {
            ", can refresh"
        } else {
            ""
        };
        println!("{}  (issuer {}; {expiry}{refresh})", r.server_url, r.issuer);
    }
    Ok(ExitCode::SUCCESS)
}

fn human(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}
