//! Sign-in (A-*, SEC-URL) against the mock authorization server.

use md5::Digest;
use serde_json::json;

use crate::support::oauth::{
    AS_NONCE, AsMeta, Dpop, Iss, OAuthMock, OAuthOptions, Prm, SignInEnv, whoami,
};
use crate::support::{Proxy, call};

/// Each test's own directories and stand-in browser.
type Env = SignInEnv;

/// A-401, A-PRM (header), A-ASMETA, A-REG (DCR), A-APPTYPE, A-PKCE, A-STATE, A-RESOURCE,
/// A-ISS, A-REDIRECT, H-BEARER, and storage: the whole browser flow on the first 401,
/// then the token is reused by the next process without a new sign-in.
#[tokio::test]
async fn browser_flow_on_401_then_reuse() {
    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let env = Env::new();
    let mut p = env.spawn(&as_.url, &[], &[]);
    p.initialize("2025-11-25").await;
    p.send(&call(1, "whoami", json!({}))).await;
    let (resp, _) = p.recv_response(1.into()).await;
    assert!(
        resp["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("ok:whoami"),
        "{resp}"
    );
    let (status, stderr) = p.finish().await;
    assert!(status.success());
    {
        let seen = as_.seen.lock().unwrap();
        assert_eq!(seen.registrations.len(), 1);
        let reg = &seen.registrations[0];
        assert_eq!(reg["application_type"], "native");
        assert_eq!(reg["token_endpoint_auth_method"], "none");
        let redirect = reg["redirect_uris"][0].as_str().unwrap();
        assert!(
            redirect.starts_with("http://127.0.0.1:") && redirect.ends_with("/callback"),
            "{redirect}"
        );
        assert_eq!(seen.authorizations.len(), 1);
        let a = &seen.authorizations[0];
        assert_eq!(a["code_challenge_method"], "S256");
        assert_eq!(a["resource"], as_.url);
        assert!(a["state"].len() >= 20);
        let (form, _) = &seen.token_requests[0];
        assert_eq!(form["grant_type"], "authorization_code");
        assert_eq!(form["resource"], as_.url);
        assert!(form["code_verifier"].len() >= 43);
        let last = seen.mcp_auth.last().unwrap().as_deref().unwrap();
        assert!(last.starts_with("Bearer at-"), "{last}");
    }
    assert_eq!(env.opened().len(), 1, "one browser open");
    assert!(
        stderr.contains("sign in at this URL"),
        "the URL is printed to stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("at-") && !stderr.contains("rt-"),
        "no token in logs:\n{stderr}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let tokens = std::path::Path::new(&env.config()).join("tokens");
        assert_eq!(
            std::fs::metadata(&tokens).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for f in std::fs::read_dir(&tokens).unwrap() {
            let f = f.unwrap();
            if f.file_name().to_string_lossy().ends_with(".json") {
                assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
            }
        }
    }

    // A second process: the stored token is used at once.
    let mut p = env.spawn(&as_.url, &[], &[]);
    p.initialize("2025-11-25").await;
    p.finish().await;
    let seen = as_.seen.lock().unwrap();
    assert_eq!(seen.authorizations.len(), 1, "no second sign-in");
    assert_eq!(seen.registrations.len(), 1, "no second registration");
}

/// Sign-in starts at startup when the server advertises PRM and no token is cached,
/// before the client sends anything (no MCP session is opened for the probe).
#[tokio::test]
async fn sign_in_starts_at_startup() {
    let as_ = OAuthMock::start(OAuthOptions {
        prm: Prm::WellKnownPath,
        ..Default::default()
    })
    .await;
    let env = Env::new();
    let mut p = env.spawn(&as_.url, &[], &[]);
    as_.wait_for("a token request", |s| !s.token_requests.is_empty())
        .await;
    assert!(
        as_.seen.lock().unwrap().mcp_auth.is_empty(),
        "no MCP request was needed"
    );
    p.initialize("2025-11-25").await;
    p.finish().await;
    let seen = as_.seen.lock().unwrap();
    // An initialize racing the end of the startup sign-in may get one 401, then waits
    // for that same sign-in: still exactly one.
    assert_eq!(seen.authorizations.len(), 1);
    assert!(
        seen.mcp_auth
            .last()
            .unwrap()
            .as_deref()
            .unwrap()
            .starts_with("Bearer ")
    );
}

/// Several instances at once: exactly one registration and one sign-in; all work.
#[tokio::test]
async fn instances_share_one_sign_in() {
    let as_ = OAuthMock::start(OAuthOptions {
        prm: Prm::WellKnownRoot,
        ..Default::default()
    })
    .await;
    let env = Env::new();
    let mut procs: Vec<Proxy> = (0..3).map(|_| env.spawn(&as_.url, &[], &[])).collect();
    for p in &mut procs {
        p.initialize("2025-11-25").await;
    }
    for p in procs {
        let (status, _) = p.finish().await;
        assert!(status.success());
    }
    let seen = as_.seen.lock().unwrap();
    assert_eq!(seen.registrations.len(), 1, "{:#?}", seen.registrations);
    assert_eq!(seen.authorizations.len(), 1);
    assert_eq!(env.opened().len(), 1, "one browser tab");
}

/// A-REFRESH: a short-lived token is refreshed before expiry, with `resource`; the
/// rotated refresh token is stored; a revoked token (401) is refreshed too.
#[tokio::test]
async fn refresh_with_rotation() {
    let as_ = OAuthMock::start(OAuthOptions {
        expires_in: 30,
        ..Default::default()
    })
    .await;
    let env = Env::new();
    let mut p = env.spawn(&as_.url, &[], &[]);
    p.initialize("2025-11-25").await;
    // expires_in 30 s is inside the 60 s refresh margin: the next request refreshes first.
    p.send(&call(1, "whoami", json!({}))).await;
    p.recv_response(1.into()).await;
    as_.revoke_access();
    whoami(&mut p, 2).await;
    p.finish().await;
    let seen = as_.seen.lock().unwrap();
    let refreshes: Vec<_> = seen
        .token_requests
        .iter()
        .filter(|(f, _)| f["grant_type"] == "refresh_token")
        .collect();
    assert!(refreshes.len() >= 2, "{refreshes:#?}");
    for (f, _) in &refreshes {
        assert_eq!(f["resource"], as_.url);
    }
    // Each refresh used the token issued by the previous one (rotation stored).
    assert_ne!(
        refreshes[0].0["refresh_token"],
        refreshes[1].0["refresh_token"]
    );
    assert_eq!(seen.authorizations.len(), 1, "refresh, not a new sign-in");
}

/// A-STEPUP: 403 insufficient_scope re-authorizes with the challenge's scope (keeping
/// the granted ones), then retries; an unobtainable scope gives up after three tries.
#[tokio::test]
async fn step_up_and_its_cap() {
    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let env = Env::new();
    let mut p = env.spawn(&as_.url, &[], &[]);
    p.initialize("2025-11-25").await;
    p.send(&call(1, "admin", json!({}))).await;
    let (resp, _) = p.recv_response(1.into()).await;
    let text = resp["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{resp}\n{}", p.stderr()));
    assert!(text.contains("admin"), "{resp}");
    let before = as_.seen.lock().unwrap().authorizations.len();
    p.send(&call(2, "never", json!({}))).await;
    let (resp, _) = p.recv_response(2.into()).await;
    let msg = resp["error"]["message"].as_str().unwrap();
    assert!(msg.contains("insufficient_scope"), "{msg}");
    p.finish().await;
    let seen = as_.seen.lock().unwrap();
    assert_eq!(seen.authorizations[1]["scope"], "admin");
    assert_eq!(
        seen.authorizations.len() - before,
        3,
        "three step-ups at most"
    );
}

/// A-PRM-VALIDATE: a PRM for another resource is refused; nothing is authorized.
#[tokio::test]
async fn resource_mismatch_is_refused() {
    let as_ = OAuthMock::start(OAuthOptions {
        prm_resource: Some("https://other.test/mcp".into()),
        ..Default::default()
    })
    .await;
    let env = Env::new();
    let mut p = env.spawn(&as_.url, &[], &[]);
    let msg = p.initialize_error("2025-11-25").await;
    assert!(msg.contains("does not match"), "{msg}");
    p.finish().await;
    assert!(as_.seen.lock().unwrap().authorizations.is_empty());
    assert!(env.opened().is_empty());
}

/// A-ISS: a wrong `iss` in the authorization response is refused (mix-up defence).
#[tokio::test]
async fn iss_mismatch_is_refused() {
    let as_ = OAuthMock::start(OAuthOptions {
        iss: Iss::Wrong,
        ..Default::default()
    })
    .await;
    let env = Env::new();
    let mut p = env.spawn(&as_.url, &[], &[]);
    let msg = p.initialize_error("2025-11-25").await;
    assert!(msg.contains("issuer"), "{msg}");
    p.finish().await;
    assert!(
        as_.seen.lock().unwrap().token_requests.is_empty(),
        "no code was redeemed"
    );
}

/// A-REDIRECT and SEC-URL: an http authorization endpoint on a non-loopback host, or a
/// javascript: one, is refused and never opened.
#[tokio::test]
async fn unsafe_authorization_endpoints_are_never_opened() {
    for endpoint in [
        "http://auth.example.test/authorize",
        "javascript:alert(1)",
        "file:///etc/passwd",
    ] {
        let as_ = OAuthMock::start(OAuthOptions {
            authorization_endpoint: Some(endpoint.into()),
            ..Default::default()
        })
        .await;
        let env = Env::new();
        let mut p = env.spawn(&as_.url, &[], &[]);
        let msg = p.initialize_error("2025-11-25").await;
        assert!(
            msg.contains("refusing") || msg.contains("not https"),
            "{endpoint}: {msg}"
        );
        p.finish().await;
        assert!(env.opened().is_empty(), "{endpoint} was opened");
    }
}

/// A-REG step 1 with the token endpoint auth methods: a pre-registered client with a
/// secret from CLERK_MCP_CLIENT_SECRET uses client_secret_basic, or client_secret_post
/// when that is all the server supports; no registration happens.
#[tokio::test]
async fn preregistered_client_auth_methods() {
    for (methods, basic) in [
        (vec!["client_secret_basic", "client_secret_post"], true),
        (vec!["client_secret_post"], false),
    ] {
        let as_ = OAuthMock::start(OAuthOptions {
            preregistered: Some(("pre-1", "s3cr3t-value")),
            auth_methods: methods,
            ..Default::default()
        })
        .await;
        let env = Env::new();
        let mut p = env.spawn(
            &as_.url,
            &["--client-id", "pre-1"],
            &[("CLERK_MCP_CLIENT_SECRET", "s3cr3t-value")],
        );
        p.initialize("2025-11-25").await;
        let (_, stderr) = p.finish().await;
        assert!(
            !stderr.contains("s3cr3t"),
            "the client secret leaked:\n{stderr}"
        );
        let seen = as_.seen.lock().unwrap();
        assert!(seen.registrations.is_empty());
        let (form, header) = &seen.token_requests[0];
        if basic {
            assert!(header.as_deref().unwrap().starts_with("Basic "));
            assert!(!form.contains_key("client_secret"));
        } else {
            assert!(header.is_none());
            assert_eq!(form["client_secret"], "s3cr3t-value");
        }
    }
}

/// A-CIMD: with --client-metadata-url and server support, the URL is the client_id.
#[tokio::test]
async fn client_id_metadata_document() {
    let as_ = OAuthMock::start(OAuthOptions {
        cimd: true,
        ..Default::default()
    })
    .await;
    let env = Env::new();
    // A document written for mcp-remote lists its redirect URI: the one it would build
    // (CLI-MCPREMOTE), localhost and the port derived from its MD5 cache key, which
    // covers the document's URL. The URL is picked so that port is below the ephemeral
    // range (no connection of this machine can hold it) and free now.
    let (cimd, port) = (0..)
        .map(|i| {
            let cimd = format!("https://app.example.test/oauth/client-{i}.json");
            let hash: String = md5::Md5::digest(format!("{}|{cimd}", as_.url).as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            (
                cimd,
                3335 + u16::from_str_radix(&hash[..4], 16).unwrap() % 45816,
            )
        })
        .find(|(_, port)| {
            *port < 32768 && std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok()
        })
        .unwrap();
    let mut p = env.spawn(&as_.url, &["--client-metadata-url", &cimd], &[]);
    p.initialize("2025-11-25").await;
    p.finish().await;
    let seen = as_.seen.lock().unwrap();
    assert!(
        seen.registrations.is_empty(),
        "no DCR when CIMD is supported"
    );
    assert_eq!(seen.authorizations[0]["client_id"], cimd);
    assert_eq!(
        seen.authorizations[0]["redirect_uri"],
        format!("http://localhost:{port}/oauth/callback")
    );
}

/// A-03 and A-ASMETA variants: no PRM with root metadata; no metadata at all (default
/// endpoints); OIDC discovery for an issuer with a path.
#[tokio::test]
async fn discovery_variants() {
    for (prm, meta) in [
        (Prm::None, AsMeta::OAuth),
        (Prm::None, AsMeta::None),
        (Prm::Header, AsMeta::Oidc),
    ] {
        let as_ = OAuthMock::start(OAuthOptions {
            prm,
            meta,
            ..Default::default()
        })
        .await;
        let env = Env::new();
        let mut p = env.spawn(&as_.url, &[], &[]);
        p.initialize("2025-03-26").await;
        p.finish().await;
        assert_eq!(
            as_.seen.lock().unwrap().authorizations.len(),
            1,
            "{prm:?}/{meta:?}"
        );
    }
}

/// A-SCOPE: the PRM's scopes_supported are requested when the challenge names none,
/// and offline_access is added when the server offers it; --scope overrides.
#[tokio::test]
async fn scope_selection() {
    let as_ = OAuthMock::start(OAuthOptions {
        scopes_supported: Some(vec!["mcp:read", "offline_access"]),
        ..Default::default()
    })
    .await;
    let env = Env::new();
    let mut p = env.spawn(&as_.url, &[], &[]);
    p.initialize("2025-11-25").await;
    p.finish().await;
    assert_eq!(
        as_.seen.lock().unwrap().authorizations[0]["scope"],
        "mcp:read offline_access"
    );

    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let env = Env::new();
    let mut p = env.spawn(&as_.url, &[], &[]);
    p.initialize("2025-11-25").await;
    p.finish().await;
    assert!(
        !as_.seen.lock().unwrap().authorizations[0].contains_key("scope"),
        "omitted when undefined"
    );
}

/// login / status / logout, and --authorize-param refusing reserved keys.
#[tokio::test]
async fn login_status_logout() {
    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let env = Env::new();
    let config = env.config();
    // Async: the mock servers run on this test's runtime and must keep answering.
    let run = async |args: Vec<&str>| run_cli(&env, &args, &[]).await;
    let out = run(vec![
        "login",
        &as_.url,
        "--config-dir",
        &config,
        "--authorize-param",
        "prompt=consent",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        as_.seen.lock().unwrap().authorizations[0]["prompt"],
        "consent"
    );
    let out = run(vec!["status", "--config-dir", &config]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&as_.url) && text.contains("expires in"),
        "{text}"
    );
    assert!(!text.contains("at-"), "status never prints a token: {text}");
    // The extra authorization parameters are part of what the sign-in is for.
    let out = run(vec!["logout", &as_.url, "--config-dir", &config]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("No sign-in stored"));
    let out = run(vec![
        "logout",
        &as_.url,
        "--config-dir",
        &config,
        "--authorize-param",
        "prompt=consent",
    ])
    .await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("Signed out"));
    let out = run(vec!["status", "--config-dir", &config]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("No sign-ins"));
    let out = run(vec![&as_.url, "--authorize-param", "state=x"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be overridden"));
}

/// RFC 8628 device code (--device-code): the code and URL go to stderr, the proxy polls
/// until the user approves, and the request then goes through. No browser is opened.
#[tokio::test]
async fn device_code_flow() {
    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let env = Env::new();
    let mut p = env.spawn(&as_.url, &["--device-code"], &[]);
    p.send(&crate::support::init("2025-11-25")).await;
    as_.wait_for("a device authorization", |s| s.device_polls >= 1)
        .await;
    let stderr = p.stderr();
    assert!(
        stderr.contains("WDJB-MJHT"),
        "the user code is shown:\n{stderr}"
    );
    let approve = stderr
        .split_whitespace()
        .find(|w| w.contains("/as/device/approve?code="))
        .expect("the verification URL is shown")
        .to_owned();
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::get(&approve).await.unwrap(); // the user approves on another device
    let (resp, _) = p.recv_response(0.into()).await;
    assert!(resp.get("result").is_some(), "{resp}");
    p.finish().await;
    assert!(env.opened().is_empty(), "no browser with --device-code");
}

/// --no-browser prints the URL and opens nothing; stdin EOF abandons the pending sign-in
/// promptly and cleanly.
#[tokio::test]
async fn no_browser_and_eof_during_sign_in() {
    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let env = Env::new();
    let mut p = env.spawn(&as_.url, &["--no-browser"], &[]);
    p.send(&crate::support::init("2025-11-25")).await;
    as_.wait_for("a registration", |s| !s.registrations.is_empty())
        .await;
    let started = std::time::Instant::now();
    let (status, stderr) = p.finish().await;
    assert!(status.success());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains("/as/authorize?"),
        "the URL is printed:\n{stderr}"
    );
    assert!(env.opened().is_empty());
}

/// The callback port is stable per server; when it is taken, another is used and the
/// client registers again for the new redirect URI.
#[tokio::test]
async fn taken_callback_port_re_registers() {
    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let env = Env::new();
    let mut p = env.spawn(&as_.url, &[], &[]);
    p.initialize("2025-11-25").await;
    p.finish().await;
    let first = as_.seen.lock().unwrap().registrations[0]["redirect_uris"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let port: u16 = first
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // Sign out (the registration is kept), then hold the usual port.
    let out = tokio::process::Command::new(crate::support::BIN)
        .args(["logout", &as_.url, "--config-dir", &env.config()])
        .env_clear()
        .env("HOME", env.dir.path())
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let _hold = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut p = env.spawn(&as_.url, &[], &[]);
    p.initialize("2025-11-25").await;
    p.finish().await;
    let seen = as_.seen.lock().unwrap();
    assert_eq!(
        seen.registrations.len(),
        2,
        "registered again for the new redirect URI"
    );
    let second = seen.registrations[1]["redirect_uris"][0].as_str().unwrap();
    assert_ne!(second, first);
    assert_eq!(seen.authorizations[1]["redirect_uri"], second);
}

/// The whole flow in real headless Chromium: the success page renders and the proxy
/// then works. Needs the Debian `chromium` package; `.ci/run` installs it and runs this.
#[tokio::test]
#[ignore = "needs headless Chromium; run by .ci/run with --ignored"]
async fn real_browser_chromium() {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("chromium is installed (apt-get install chromium)");
    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let env = Env::new();
    let page = env.dir.path().join("page.html");
    let profile = env.dir.path().join("profile");
    let script = env.dir.path().join("chromium.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec {chromium} --headless --no-sandbox --disable-gpu --no-first-run \
             --disable-background-networking --disable-component-update --disable-sync \
             --user-data-dir='{}' --virtual-time-budget=5000 --dump-dom \"$1\" > '{}' 2>/dev/null\n",
            profile.display(),
            page.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let config = env.config();
    let mut p = Proxy::spawn_env(
        &[&as_.url, "--config-dir", &config],
        &[("BROWSER", script.to_str().unwrap())],
    );
    p.initialize("2025-11-25").await;
    whoami(&mut p, 1).await;
    p.finish().await;
    // Chromium writes the DOM once the page has loaded.
    let mut dom = String::new();
    for _ in 0..100 {
        dom = std::fs::read_to_string(&page).unwrap_or_default();
        if dom.contains("</html>") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        dom.contains("You are signed in"),
        "the success page rendered:\n{dom}"
    );
}

/// A-ISSUER-KEY: registrations are kept per authorization server and never reused with
/// another one: a second server with its own issuer gets its own registration.
#[tokio::test]
async fn registrations_are_per_issuer() {
    let env = Env::new();
    let a = OAuthMock::start(OAuthOptions::default()).await;
    let b = OAuthMock::start(OAuthOptions::default()).await;
    for as_ in [&a, &b] {
        let mut p = env.spawn(&as_.url, &[], &[]);
        p.initialize("2025-11-25").await;
        p.finish().await;
    }
    for as_ in [&a, &b] {
        let seen = as_.seen.lock().unwrap();
        assert_eq!(seen.registrations.len(), 1);
        let client = &seen.authorizations[0]["client_id"];
        assert!(
            seen.clients_known(client),
            "{client} was registered with this server"
        );
    }
}

/// A crashed instance that held the sign-in lock never blocks the next: the OS releases
/// the lock with the process.
#[tokio::test]
async fn crashed_lock_holder_does_not_block() {
    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let env = Env::new();
    let mut stuck = env.spawn(&as_.url, &["--no-browser"], &[]);
    stuck.send(&crate::support::init("2025-11-25")).await;
    as_.wait_for("the first instance's registration", |s| {
        !s.registrations.is_empty()
    })
    .await;
    stuck.child.start_kill().unwrap(); // SIGKILL while it waits for the callback
    stuck.child.wait().await.unwrap();
    let mut p = env.spawn(&as_.url, &[], &[]);
    p.initialize("2025-11-25").await;
    let (status, _) = p.finish().await;
    assert!(status.success());
    assert_eq!(as_.seen.lock().unwrap().token_requests.len(), 1);
}

/// A server that advertises PRM but answers without a token needs no sign-in: the
/// startup probe leaves it to the first request, which succeeds, and nothing is opened.
#[tokio::test]
async fn optional_auth_server_opens_nothing() {
    use crate::support::mock::{Mock, Options};
    let mock = Mock::start(Options {
        prm: true,
        ..Default::default()
    })
    .await;
    let env = Env::new();
    let mut p = env.spawn(&mock.url, &[], &[]);
    p.initialize("2025-11-25").await;
    p.wait_stderr("startup sign-in left to the first request")
        .await;
    p.finish().await;
    assert!(
        env.opened().is_empty(),
        "no browser for a server that needs no sign-in"
    );
}

/// Runs the binary with `args` in `env`'s home (a subcommand), with the test browser.
pub(crate) async fn run_cli(
    env: &Env,
    args: &[&str],
    extra_env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(crate::support::BIN);
    cmd.args(args)
        .env_clear()
        .env("HOME", env.dir.path())
        .env("BROWSER", &env.browser);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    tokio::time::timeout(crate::support::WAIT, cmd.output())
        .await
        .unwrap()
        .unwrap()
}

/// `login URL`, which must succeed.
async fn login(env: &Env, as_: &OAuthMock) {
    let out = run_cli(
        env,
        &["login", &as_.url, "--config-dir", &env.config()],
        &[],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A-STALE: the authorization server restarted and forgot its clients. The refresh
/// answers invalid_client; the proxy drops that registration and the tokens it got,
/// registers again and signs in once: the browser never sees the dead client id.
#[tokio::test]
async fn a_forgotten_registration_is_made_again() {
    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let env = Env::new();
    login(&env, &as_).await;
    as_.forget_clients();
    let mut p = env.spawn(&as_.url, &[], &[]);
    p.initialize("2025-11-25").await;
    whoami(&mut p, 1).await;
    let (_, stderr) = p.finish().await;
    assert!(stderr.contains("registering again"), "{stderr}");
    let seen = as_.seen.lock().unwrap();
    assert_eq!(seen.registrations.len(), 2, "registered again, once");
    let clients: Vec<&str> = seen
        .authorizations
        .iter()
        .map(|a| a["client_id"].as_str())
        .collect();
    assert_eq!(clients.len(), 2, "one sign-in after the first: {clients:?}");
    assert_eq!(clients[0], "dyn-client-1");
    assert_ne!(clients[1], "dyn-client-1", "never the forgotten client");
    let refresh = seen
        .token_requests
        .iter()
        .find(|(f, _)| f["grant_type"] == "refresh_token")
        .expect("a refresh was tried first");
    assert_eq!(refresh.0["client_id"], "dyn-client-1");
}

/// A client given by flags that the server refuses (a wrong secret) is one error
/// naming the flags, for the browser and the machine grant alike; no registration,
/// browser or other grant is tried.
#[tokio::test]
async fn a_rejected_flag_client_names_the_flags() {
    for grant in ["browser", "client-credentials"] {
        let as_ = OAuthMock::start(OAuthOptions {
            preregistered: Some(("pre-1", "right")),
            ..Default::default()
        })
        .await;
        let env = Env::new();
        let mut p = env.spawn(
            &as_.url,
            &["--client-id", "pre-1", "--grant", grant],
            &[("CLERK_MCP_CLIENT_SECRET", "wrong")],
        );
        p.send(&crate::support::init("2025-11-25")).await;
        let (resp, _) = p.recv_response(0.into()).await;
        let msg = resp["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("--client-id and --client-secret"),
            "{grant}: {resp}"
        );
        assert!(
            !msg.contains("wrong"),
            "the secret stays out of errors: {msg}"
        );
        p.finish().await;
        let seen = as_.seen.lock().unwrap();
        assert!(seen.registrations.is_empty(), "{grant}");
        let grants: Vec<&str> = seen
            .token_requests
            .iter()
            .map(|(f, _)| f["grant_type"].as_str())
            .collect();
        assert_eq!(
            grants.len(),
            1,
            "{grant}: one token request, no other grant: {grants:?}"
        );
    }
}

/// A-REVOKE, RFC 7009 at logout: the refresh token, then the access token, are revoked at the
/// advertised endpoint; the tokens and the registration no other server uses are gone.
#[tokio::test]
async fn logout_revokes_and_drops_the_registration() {
    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let env = Env::new();
    let config = env.config();
    login(&env, &as_).await;
    let out = run_cli(&env, &["logout", &as_.url, "--config-dir", &config], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("its tokens were revoked"), "{text}");
    let hints: Vec<String> = as_
        .seen
        .lock()
        .unwrap()
        .revocations
        .iter()
        .map(|(h, _)| h.clone())
        .collect();
    assert_eq!(hints, ["refresh_token", "access_token"]);
    let clients = std::path::Path::new(&config).join("clients");
    let left = std::fs::read_dir(&clients).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "the registration is dropped");
    // Signing in again registers anew and works.
    login(&env, &as_).await;
    assert_eq!(as_.seen.lock().unwrap().registrations.len(), 2);
}

/// The browser brake stops a runaway client, never a person: `login` opens the browser
/// however many sign-ins started within the minute.
#[tokio::test]
async fn login_is_not_braked() {
    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let env = Env::new();
    let config = env.config();
    // A browser that records the URL and never completes the sign-in.
    let idle = env.dir.path().join("idle-browser.sh");
    let log = env.dir.path().join("idle-opened");
    std::fs::write(
        &idle,
        format!("#!/bin/sh\necho \"$1\" >> {}\n", log.display()),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&idle, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let browser = idle.to_str().unwrap();
    for _ in 0..4 {
        let out = run_cli(
            &env,
            &[
                "login",
                &as_.url,
                "--config-dir",
                &config,
                "--auth-timeout",
                "1",
            ],
            &[("BROWSER", browser)],
        )
        .await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("login {}", as_.url)),
            "the hint names the URL: {text}"
        );
    }
    let opened = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(opened.lines().count(), 4, "every login opened the browser");
}

/// A-CC: --grant client-credentials signs a machine in with its secret: no browser, no
/// registration, and renewal before expiry runs the grant again (there is no refresh
/// token). `--client-credentials` is the same.
#[tokio::test]
async fn client_credentials_sign_a_machine_in() {
    for flag in [
        &["--grant", "client-credentials"][..],
        &["--client-credentials"][..],
    ] {
        let as_ = OAuthMock::start(OAuthOptions {
            preregistered: Some(("pre-1", "s3cr3t-value")),
            expires_in: 30,
            ..Default::default()
        })
        .await;
        let env = Env::new();
        let mut args = vec!["--client-id", "pre-1", "--scope", "mcp:tools"];
        args.extend_from_slice(flag);
        let mut p = env.spawn(
            &as_.url,
            &args,
            &[("CLERK_MCP_CLIENT_SECRET", "s3cr3t-value")],
        );
        p.initialize("2025-11-25").await;
        // expires_in 30 s is inside the refresh margin: this request renews first.
        p.send(&call(1, "whoami", json!({}))).await;
        let (resp, _) = p.recv_response(1.into()).await;
        assert_eq!(
            resp["result"]["content"][0]["text"], "ok:whoami:mcp:tools",
            "{resp}"
        );
        let (_, stderr) = p.finish().await;
        assert!(!stderr.contains("s3cr3t"), "{stderr}");
        assert!(env.opened().is_empty(), "no browser for a machine");
        let seen = as_.seen.lock().unwrap();
        assert!(seen.registrations.is_empty() && seen.authorizations.is_empty());
        let grants: Vec<&str> = seen
            .token_requests
            .iter()
            .map(|(f, _)| f["grant_type"].as_str())
            .collect();
        assert!(grants.len() >= 2, "renewed by the grant again: {grants:?}");
        assert!(
            grants.iter().all(|g| *g == "client_credentials"),
            "{grants:?}"
        );
        let (form, basic) = &seen.token_requests[0];
        assert!(basic.as_deref().unwrap().starts_with("Basic "));
        assert_eq!(form["resource"], as_.url);
        assert_eq!(form["scope"], "mcp:tools");
    }
}

/// Bad machine sign-in configuration stops the start (exit 2) with the flag named: a
/// key that is no private key, an unreadable key file, a missing secret or client id.
#[tokio::test]
async fn bad_client_credentials_config_is_refused() {
    let env = Env::new();
    let cert = env.dir.path().join("cert.pem");
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let missing = env.dir.path().join("missing.pem");
    let (cert, missing) = (cert.to_str().unwrap(), missing.to_str().unwrap());
    let url = "http://127.0.0.1:9/mcp";
    for (args, want) in [
        (
            vec![
                url,
                "--grant",
                "client-credentials",
                "--client-id",
                "c",
                "--client-key",
                cert,
            ],
            "not a private key",
        ),
        (
            vec![
                url,
                "--grant",
                "client-credentials",
                "--client-id",
                "c",
                "--client-key",
                missing,
            ],
            "missing.pem",
        ),
        (
            vec![url, "--grant", "client-credentials", "--client-id", "c"],
            "--client-secret",
        ),
        (
            vec![url, "--client-credentials", "--client-secret", "s"],
            "--client-id",
        ),
        (
            vec![url, "--client-key", cert],
            "--grant client-credentials",
        ),
    ] {
        let out = run_cli(&env, &args, &[]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

/// A-WIF: --grant jwt-bearer presents the workload's JWT from --assertion-file, and reads
/// the file again at each renewal (platforms rotate it). No browser, no registration.
#[tokio::test]
async fn a_workload_signs_in_with_its_platform_jwt() {
    let as_ = OAuthMock::start(OAuthOptions {
        expires_in: 30,
        ..Default::default()
    })
    .await;
    let env = Env::new();
    let jwt = env.dir.path().join("token.jwt");
    std::fs::write(&jwt, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ3MSJ9.first\n").unwrap();
    let mut p = env.spawn(
        &as_.url,
        &[
            "--grant",
            "jwt-bearer",
            "--assertion-file",
            jwt.to_str().unwrap(),
        ],
        &[],
    );
    p.initialize("2025-11-25").await;
    std::fs::write(&jwt, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ3MSJ9.rotated").unwrap();
    // expires_in 30 s is inside the refresh margin: this request renews first.
    whoami(&mut p, 1).await;
    p.finish().await;
    assert!(env.opened().is_empty());
    let seen = as_.seen.lock().unwrap();
    assert!(seen.registrations.is_empty() && seen.authorizations.is_empty());
    let assertions: Vec<&str> = seen
        .token_requests
        .iter()
        .map(|(f, _)| {
            assert!(f["grant_type"].ends_with(":jwt-bearer"), "{f:?}");
            assert!(!f.contains_key("client_id"), "no client was given: {f:?}");
            f["assertion"].rsplit('.').next().unwrap()
        })
        .collect();
    assert_eq!(assertions.first(), Some(&"first"));
    assert_eq!(assertions.last(), Some(&"rotated"), "{assertions:?}");
}

/// A workload's assertion file that is missing or holds no JWT stops the start, naming
/// the flag.
#[tokio::test]
async fn a_bad_assertion_file_is_refused() {
    let env = Env::new();
    let not_jwt = env.dir.path().join("not.jwt");
    std::fs::write(&not_jwt, "hello").unwrap();
    let missing = env.dir.path().join("missing.jwt");
    let url = "http://127.0.0.1:9/mcp";
    for (path, want) in [(&not_jwt, "not a JWT"), (&missing, "missing.jwt")] {
        let args = [
            url,
            "--grant",
            "jwt-bearer",
            "--assertion-file",
            path.to_str().unwrap(),
        ];
        let out = run_cli(&env, &args, &[]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("--assertion-file") && stderr.contains(want),
            "{stderr}"
        );
    }
    let out = run_cli(&env, &[url, "--grant", "jwt-bearer"], &[]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("--assertion-file"));
}

/// A-IDJAG: --grant id-jag exchanges the user's ID token (here printed by a program, its
/// command line split with quotes honoured and run without a shell) at the IdP for an
/// ID-JAG addressed to the authorization server, then presents it as the jwt-bearer grant.
#[tokio::test]
async fn enterprise_sso_exchanges_the_id_token() {
    let as_ = OAuthMock::start(OAuthOptions {
        preregistered: Some(("pre-1", "s3cr3t-value")),
        ..Default::default()
    })
    .await;
    let env = Env::new();
    let idp = format!("{}/as/token", as_.base);
    let mut p = env.spawn(
        &as_.url,
        &[
            "--grant",
            "id-jag",
            "--idp-token-endpoint",
            &idp,
            "--idp-client-id",
            "idp-client",
            "--client-id",
            "pre-1",
            "--id-token-command",
            "/bin/sh -c 'printf \"%s\" id.token.\"with space\"'",
        ],
        &[("CLERK_MCP_CLIENT_SECRET", "s3cr3t-value")],
    );
    p.initialize("2025-11-25").await;
    whoami(&mut p, 1).await;
    p.finish().await;
    assert!(env.opened().is_empty());
    let seen = as_.seen.lock().unwrap();
    let (exchange, _) = &seen.token_requests[0];
    assert_eq!(exchange["subject_token"], "id.token.with space");
    assert_eq!(
        exchange["subject_token_type"],
        "urn:ietf:params:oauth:token-type:id_token"
    );
    assert_eq!(exchange["audience"], as_.issuer());
    assert_eq!(exchange["client_id"], "idp-client");
    let (grant, basic) = &seen.token_requests[1];
    assert!(grant["grant_type"].ends_with(":jwt-bearer"));
    assert_eq!(grant["assertion"], "jag.id_token_with space.sig");
    assert!(
        basic.as_deref().unwrap().starts_with("Basic "),
        "the MCP AS's client"
    );
}

/// An ID token program that fails ends the request with an error naming the flag; a
/// command line that cannot be split, or a missing IdP flag, stops the start.
#[tokio::test]
async fn bad_id_jag_inputs() {
    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let env = Env::new();
    let idp = format!("{}/as/token", as_.base);
    let base = [
        "--grant",
        "id-jag",
        "--idp-token-endpoint",
        &idp,
        "--idp-client-id",
        "i",
        "--client-id",
        "c",
    ];
    let mut args = base.to_vec();
    args.extend(["--id-token-command", "/bin/false"]);
    let mut p = env.spawn(&as_.url, &args, &[]);
    p.send(&crate::support::init("2025-11-25")).await;
    let (resp, _) = p.recv_response(0.into()).await;
    let msg = resp["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("--id-token-command") && msg.contains("failed"),
        "{resp}"
    );
    p.finish().await;
    let url = as_.url.as_str();
    let mut unbalanced = vec![url];
    unbalanced.extend(base);
    unbalanced.extend(["--id-token-command", "'oops"]);
    let mut no_token = vec![url];
    no_token.extend(base);
    for (args, want) in [
        (unbalanced, "unclosed single quote"),
        (no_token, "--id-token-file"),
        (
            vec![url, "--grant", "id-jag", "--client-id", "c"],
            "--idp-token-endpoint",
        ),
    ] {
        let out = run_cli(&env, &args, &[]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

/// A-DPOP: where the authorization server offers DPoP, tokens are bound to a key the
/// proxy makes and keeps with them; every token request and every MCP request carries a
/// fresh proof (jti, htm, htu, ath); each server's nonce is honoured with one retry; a
/// refresh proves the same key; and the next process reuses the stored key.
#[tokio::test]
async fn dpop_binds_tokens_to_our_key() {
    let as_ = OAuthMock::start(OAuthOptions {
        dpop: Dpop::Nonces,
        ..Default::default()
    })
    .await;
    let env = Env::new();
    let mut p = env.spawn(&as_.url, &[], &[]);
    p.initialize("2025-11-25").await;
    for id in 1..=2 {
        whoami(&mut p, id).await;
    }
    // A 401 for the access token: the bound refresh token is refreshed with a proof.
    as_.revoke_access();
    whoami(&mut p, 3).await;
    let (_, stderr) = p.finish().await;
    let stored = std::fs::read_dir(std::path::Path::new(&env.config()).join("tokens"))
        .unwrap()
        .map(|f| f.unwrap().path())
        .find(|f| f.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(stored).unwrap()).unwrap();
    assert_eq!(stored["dpop_key"]["alg"], "ES256", "{stored}");
    assert_eq!(stored["tokens"]["token_type"], "DPoP");
    let private = stored["dpop_key"]["pkcs8"].as_str().unwrap();
    for secret in ["at-", "rt-", private] {
        assert!(!stderr.contains(secret), "{secret} in the logs:\n{stderr}");
    }
    let tokens_before = {
        let seen = as_.seen.lock().unwrap();
        let grants: Vec<&str> = seen
            .token_requests
            .iter()
            .map(|(f, _)| f["grant_type"].as_str())
            .collect();
        // The code exchange twice (the first answered use_dpop_nonce), then the refresh.
        assert_eq!(
            grants,
            ["authorization_code", "authorization_code", "refresh_token"]
        );
        assert_eq!(seen.dpop_token_proofs.len(), 2, "{:?}", seen.dpop_refusals);
        assert!(
            seen.dpop_token_proofs
                .iter()
                .all(|c| c["nonce"] == AS_NONCE && c.get("ath").is_none())
        );
        assert_eq!(
            seen.dpop_refusals,
            ["token: nonce", "mcp: nonce"],
            "one retry at each server"
        );
        let schemes: Vec<&str> = seen
            .mcp_auth
            .iter()
            .flatten()
            .map(|a| a.split(' ').next().unwrap())
            .collect();
        assert!(schemes.iter().all(|s| *s == "DPoP"), "{schemes:?}");
        let jtis: std::collections::HashSet<&str> = seen
            .dpop_mcp_proofs
            .iter()
            .map(|c| c["jti"].as_str().unwrap())
            .collect();
        assert_eq!(jtis.len(), seen.dpop_mcp_proofs.len(), "a fresh jti each");
        assert!(
            seen.dpop_mcp_proofs.len() >= 4,
            "initialize, initialized, 3 calls"
        );
        seen.token_requests.len()
    };

    // The next process proves the stored key: no new sign-in, the token still works.
    let mut p = env.spawn(&as_.url, &[], &[]);
    p.initialize("2025-11-25").await;
    whoami(&mut p, 4).await;
    p.finish().await;
    assert_eq!(as_.seen.lock().unwrap().token_requests.len(), tokens_before);
    let out = run_cli(&env, &["status", "--config-dir", &env.config()], &[]).await;
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("DPoP-bound"), "{out}");
}

/// `--no-dpop` (here from its environment variable): plain bearer tokens, no proofs.
#[tokio::test]
async fn no_dpop_keeps_bearer_tokens() {
    let as_ = OAuthMock::start(OAuthOptions {
        dpop: Dpop::On,
        ..Default::default()
    })
    .await;
    let env = Env::new();
    let mut p = env.spawn(&as_.url, &[], &[("CLERK_MCP_NO_DPOP", "1")]);
    p.initialize("2025-11-25").await;
    whoami(&mut p, 1).await;
    p.finish().await;
    let seen = as_.seen.lock().unwrap();
    assert!(seen.dpop_token_proofs.is_empty() && seen.dpop_mcp_proofs.is_empty());
    let last = seen.mcp_auth.last().unwrap().as_deref().unwrap();
    assert!(last.starts_with("Bearer at-"), "{last}");
}

/// A program found on the test's PATH, by absolute path: the proxy under test runs with
/// an empty environment.
fn program(name: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{name} is on PATH"))
}

fn fifo(path: &std::path::Path) {
    let made = std::process::Command::new(program("mkfifo"))
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

fn script(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// A-REDIRECT: the callback listener serves connections side by side, so connections that
/// send nothing (a browser's preconnects) cannot hold up the real redirect. Served one at
/// a time, each would cost its 10 s read timeout, and three outlast the test's wait.
#[tokio::test]
async fn silent_connections_do_not_hold_up_the_callback() {
    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (url_fifo, go_fifo) = (dir.path().join("url"), dir.path().join("go"));
    fifo(&url_fifo);
    fifo(&go_fifo);
    // The "browser" hands the URL to the test and follows it once the test says so.
    let browser = dir.path().join("browser.sh");
    script(
        &browser,
        &format!(
            "#!/bin/sh\necho \"$1\" > '{}'\nread go < '{}'\nexec '{}' -fsSL -o /dev/null \"$1\"\n",
            url_fifo.display(),
            go_fifo.display(),
            program("curl").display()
        ),
    );
    let config = dir.path().join("config");
    let mut p = Proxy::spawn_env(
        &[&as_.url, "--config-dir", config.to_str().unwrap()],
        &[("BROWSER", browser.to_str().unwrap())],
    );
    p.send(&crate::support::init("2025-11-25")).await;
    let opened = tokio::task::spawn_blocking(move || std::fs::read_to_string(url_fifo).unwrap())
        .await
        .unwrap();
    let authorize = url::Url::parse(opened.trim()).unwrap();
    let redirect = authorize
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1
        .into_owned();
    let port = url::Url::parse(&redirect).unwrap().port().unwrap();
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
    }
    tokio::task::spawn_blocking(move || std::fs::write(go_fifo, "go\n").unwrap())
        .await
        .unwrap();
    let (resp, _) = p.recv_response(0.into()).await;
    assert!(resp.get("result").is_some(), "{resp}");
    drop(silent);
    p.finish().await;
}

/// The browser is opened off the runtime's one thread: an opener that never returns
/// (here webbrowser's `xdg-settings` query) cannot stall the proxy, and the user can
/// still sign in at the printed URL.
#[tokio::test]
async fn a_stuck_browser_opener_does_not_stall_the_proxy() {
    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release");
    fifo(&release);
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    script(
        &bin.join("xdg-settings"),
        &format!("#!/bin/sh\nread x < '{}'\n", release.display()),
    );
    let config = dir.path().join("config");
    let mut p = Proxy::spawn_env(
        &[&as_.url, "--config-dir", config.to_str().unwrap()],
        &[("PATH", bin.to_str().unwrap())],
    );
    p.send(&crate::support::init("2025-11-25")).await;
    p.wait_stderr("sign in at this URL").await;
    let stderr = p.stderr();
    let url = stderr
        .lines()
        .skip_while(|l| !l.contains("sign in at this URL"))
        .find_map(|l| {
            l.trim()
                .strip_prefix("http")
                .map(|rest| format!("http{rest}"))
        })
        .unwrap();
    // The user opens the printed URL themselves.
    let follow = tokio::process::Command::new(program("curl"))
        .args(["-fsSL", "-o", "/dev/null", &url])
        .status();
    let followed = tokio::time::timeout(crate::support::WAIT, follow)
        .await
        .expect("the callback is served while the opener is stuck")
        .unwrap();
    assert!(followed.success());
    let (resp, _) = p.recv_response(0.into()).await;
    assert!(resp.get("result").is_some(), "{resp}");
    tokio::task::spawn_blocking(move || std::fs::write(release, "go\n").unwrap())
        .await
        .unwrap();
    p.finish().await;
}

/// H-REDIRECT with A-DPOP: each hop of a redirect carries a proof signed for its own URL
/// (htu), with its own jti; the token and the proof go only to the server's origin.
#[tokio::test]
async fn dpop_proofs_are_signed_for_each_hop() {
    let as_ = OAuthMock::start(OAuthOptions {
        dpop: Dpop::On,
        redirect_mcp: true,
        ..Default::default()
    })
    .await;
    let env = Env::new();
    // The first process signs in; the second starts with a DPoP-bound token, so its first
    // request carries a proof to /mcp and is redirected.
    for _ in 0..2 {
        let mut p = env.spawn(&as_.url, &[], &[]);
        p.initialize("2025-11-25").await;
        whoami(&mut p, 1).await;
        p.finish().await;
    }
    let seen = as_.seen.lock().unwrap();
    let redirected = &seen.redirected_proofs;
    assert!(!redirected.is_empty(), "a proof went to /mcp first");
    assert!(
        redirected.iter().all(|c| c["htu"] == as_.url),
        "{redirected:?}"
    );
    let followed = &seen.dpop_mcp_proofs;
    assert!(
        followed.iter().all(|c| c["htu"] == format!("{}/", as_.url)),
        "{followed:?}"
    );
    assert!(
        followed
            .iter()
            .all(|f| redirected.iter().all(|r| r["jti"] != f["jti"])),
        "a fresh proof for each hop"
    );
    assert!(seen.dpop_refusals.is_empty(), "{:?}", seen.dpop_refusals);
}

/// A-PROFILE: two profiles signed in to one URL at once, each answering with its own
/// token; `status` shows each profile and its account, and `status --json` the same for
/// scripts, never a token.
#[tokio::test]
async fn two_profiles_on_one_server() {
    let as_ = OAuthMock::start(OAuthOptions {
        id_tokens: true,
        ..Default::default()
    })
    .await;
    let env = Env::new();
    let mut work = env.spawn(&as_.url, &["--profile", "work"], &[]);
    work.initialize("2025-11-25").await;
    whoami(&mut work, 1).await;
    let work_token = as_.last_credential();
    let mut personal = env.spawn(&as_.url, &["--profile", "personal"], &[]);
    personal.initialize("2025-11-25").await;
    whoami(&mut personal, 1).await;
    let personal_token = as_.last_credential();
    assert_ne!(work_token, personal_token, "a sign-in of its own");
    for id in 2..=3 {
        whoami(&mut work, id).await;
        assert_eq!(as_.last_credential(), work_token);
        whoami(&mut personal, id).await;
        assert_eq!(as_.last_credential(), personal_token);
    }
    work.finish().await;
    personal.finish().await;
    assert_eq!(as_.seen.lock().unwrap().authorizations.len(), 2);

    let config = env.config();
    let out = run_cli(&env, &["status", "--config-dir", &config], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    for want in ["[profile work]", "[profile personal]", "as user-1;"] {
        assert!(text.contains(want), "{want}: {text}");
    }
    let out = run_cli(&env, &["status", "--json", "--config-dir", &config], &[]).await;
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let mut profiles: Vec<&str> = list
        .iter()
        .map(|e| e["profile"].as_str().unwrap())
        .collect();
    profiles.sort();
    assert_eq!(profiles, ["personal", "work"]);
    for e in list {
        assert_eq!(e["server"], as_.url);
        assert_eq!(e["account"], "user-1");
        assert_eq!(e["can_refresh"], true);
        assert_eq!(e["expired"], false);
    }
    let raw = String::from_utf8_lossy(&out.stdout);
    assert!(
        !raw.contains("at-") && !raw.contains("rt-") && !raw.contains("eyJ"),
        "{raw}"
    );
}
