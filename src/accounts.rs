//! `login`, `logout` and `status`: manage sign-ins without running the proxy.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::auth::Logout;
use crate::auth::probe::{Probe, Reach, probe};
use crate::auth::store::{Store, now_secs};
use crate::cli::{LogoutArgs, RemoteArgs, StatusArgs};
use crate::config::{Config, redact_url};
use crate::error::{ConfigError, hint};

/// Sign in ahead of time: discover, register, open the browser, store the tokens.
pub(crate) async fn login(args: &RemoteArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::from_args(args)?;
    config.auth.interactive = true;
    let http = crate::connect::connect(&config)?;
    let Some(auth) = &http.auth else {
        println!("{}", hint::NOTHING_TO_SIGN_IN);
        return Ok(ExitCode::SUCCESS);
    };
    if auth.has_token() {
        println!("Already signed in to {}.", redact_url(&config.url));
        return Ok(ExitCode::SUCCESS);
    }
    // Ask the server itself: its 401 carries the challenge (resource_metadata, scope).
    let challenge = match probe(&http, Reach::Initialize).await? {
        Probe::SignIn(challenge) => challenge,
        Probe::Unknown => None,
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

pub(crate) async fn logout(args: &LogoutArgs) -> anyhow::Result<ExitCode> {
    if args.all {
        let dir = config_dir(args.remote.auth.config_dir.as_ref())?;
        let store = Store::open(dir, args.remote.auth.store.token_store.into())?;
        store.clear()?;
        elsewhere(&store);
        println!("Signed out of every server.");
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::from_args(&args.remote)?;
    let auth = crate::auth::Auth::new(
        crate::remote::build_client(&config, None)?,
        config.url.clone(),
        config.auth.clone(),
    )?;
    let url = redact_url(&config.url);
    match auth.logout().await? {
        Logout::NothingStored => println!("No sign-in stored for {url}."),
        Logout::SignedOut { revoked: None } => println!("Signed out of {url}."),
        Logout::SignedOut {
            revoked: Some(Ok(())),
        } => println!("Signed out of {url}; its tokens were revoked."),
        Logout::SignedOut {
            revoked: Some(Err(why)),
        } => println!(
            "Signed out of {url} (its tokens are forgotten here, but revoking them failed: {why})."
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let dir = config_dir(args.config_dir.as_ref())?;
    let store = Store::open(dir.clone(), args.store.token_store.into())?;
    let records = store.list();
    let now = now_secs();
    if args.json {
        // What a script needs to know of each sign-in; never a token or a key.
        let list: Vec<serde_json::Value> = records
            .iter()
            .map(|(_, r)| {
                serde_json::json!({
                    "server": r.server_url,
                    "profile": r.profile,
                    "account": r.account,
                    "issuer": r.issuer,
                    "scope": r.tokens.scope,
                    "expires_at": r.tokens.expires_at,
                    "expired": r.tokens.expires_at.is_some_and(|at| at <= now),
                    "can_refresh": r.tokens.refresh_token.is_some(),
                    "dpop_bound": r.tokens.dpop_bound() && r.dpop_key.is_some(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    elsewhere(&store);
    if records.is_empty() {
        println!("No sign-ins stored (in {}).", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
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
        let bound = if r.tokens.dpop_bound() && r.dpop_key.is_some() {
            ", DPoP-bound"
        } else {
            ""
        };
        let profile = r
            .profile
            .as_deref()
            .map(|p| format!(" [profile {p}]"))
            .unwrap_or_default();
        let account = r
            .account
            .as_deref()
            .map(|a| format!("as {a}; "))
            .unwrap_or_default();
        println!(
            "{}{profile}  ({account}issuer {}; {expiry}{refresh}{bound})",
            r.server_url, r.issuer
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// --config-dir, else the platform's config directory.
fn config_dir(flag: Option<&PathBuf>) -> Result<PathBuf, ConfigError> {
    match flag {
        Some(d) => Ok(d.clone()),
        None => crate::auth::store::default_dir().ok_or(ConfigError::Invalid {
            flag: "--config-dir",
            why: "no home directory".into(),
        }),
    }
}

/// A note on stderr when, with files chosen, sign-ins are kept in the keychain: they are
/// neither listed nor removed without `--token-store keychain`.
fn elsewhere(store: &Store) {
    match store.in_keychain_count() {
        0 => {}
        n => eprintln!(
            "clerk-mcp-server: {n} sign-in{} kept in the OS keychain: add --token-store \
             keychain to see or remove {}",
            if n == 1 { " is" } else { "s are" },
            if n == 1 { "it" } else { "them" },
        ),
    }
}

fn human(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}
