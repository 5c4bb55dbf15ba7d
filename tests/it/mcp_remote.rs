//! mcp-remote 0.15.1's command line (CLI-MCPREMOTE): every flag is accepted with its
//! meaning, a sign-in is imported from its cache, and clients registered with it get its
//! redirect URI.

use md5::{Digest, Md5};
use reqwest::Method;
use serde_json::json;

use crate::support::mock::{Mock, Options};
use crate::support::oauth::{OAuthMock, OAuthOptions, Prm, SignInEnv, whoami};
use crate::support::{INITIALIZED, Proxy, call, init};

/// mcp-remote's cache key for what it hashes (the server URL, then `|` and each option
/// that changes the tokens), and the callback port it derives from it.
fn mcp_remote_hash(key: &str) -> (String, u16) {
    let hash: String = Md5::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let port = 3335 + u16::from_str_radix(&hash[..4], 16).unwrap() % 45816;
    (hash, port)
}

/// A `--header` that steers mcp-remote's cache key for `url` so that the callback port it
/// derives is below the ephemeral range (where no connection of this machine can be
/// holding it) and free now: that port must be bound exactly, as mcp-remote binds it.
struct Steered {
    header: String,
    /// What mcp-remote hashes for `url` with this header.
    key: String,
    port: u16,
}

fn steer(url: &str) -> Steered {
    (0..)
        .map(|i| Steered {
            header: format!("X-Port-Steer: {i}"),
            key: format!("{url}|{{\"X-Port-Steer\":\"{i}\"}}"),
            port: 0,
        })
        .map(|s| Steered {
            port: mcp_remote_hash(&s.key).1,
            ..s
        })
        .find(|s| s.port < 32768 && std::net::TcpListener::bind(("127.0.0.1", s.port)).is_ok())
        .unwrap()
}

type Env = SignInEnv;

/// Write mcp-remote's two cache files for `url` from the fixture (the shape CI checks
/// against the real package), naming `issuer`, with `expires_at` in ms.
fn write_cache(env: &Env, key: &str, issuer: &str, expires_at_ms: u64) -> Vec<std::path::PathBuf> {
    let (hash, port) = mcp_remote_hash(key);
    let dir = env.dir.path().join("mcp-auth").join("mcp-remote-v1");
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mcp-remote-v1");
    let mut written = Vec::new();
    for name in ["client_info.json", "tokens.json"] {
        let text = std::fs::read_to_string(format!("{fixtures}/{name}"))
            .unwrap()
            .replace("{{ISSUER}}", issuer)
            .replace("{{PORT}}", &port.to_string())
            .replace("4102444800000", &expires_at_ms.to_string());
        let path = dir.join(format!("{hash}_{name}"));
        std::fs::write(&path, text).unwrap();
        written.push(path);
    }
    written
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A user who swaps `npx mcp-remote` for us keeps every argument: each of mcp-remote
/// 0.15.1's flags, in turn, starts a working proxy (CLI-MCPREMOTE).
#[tokio::test]
async fn every_mcp_remote_flag_is_accepted() {
    let mock = Mock::start(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers.txt");
    std::fs::write(&headers, "X-From-File: 1\n").unwrap();
    let headers = format!("{}", headers.display());
    let info = r#"{"client_id":"static-1","client_secret":"${SECRET}"}"#;
    let flags: Vec<Vec<&str>> = vec![
        vec!["--header", "X-Tenant: acme"],
        vec!["--header-file", &headers],
        vec!["--allow-http"],
        vec!["--transport", "http-first"],
        vec!["--transport", "sse-first"],
        vec!["--transport", "http-only"],
        vec!["--host", "127.0.0.1"],
        vec!["--resource", "https://tenant.example/"],
        vec!["--disable-resource-parameter"],
        vec!["--ignore-tool", "delete*"],
        vec!["--auth-timeout", "60"],
        vec!["--callback-path", "/oauth/callback"],
        vec!["--authorize-param", "prompt=consent"],
        vec!["--client-metadata-url", "https://client.example/meta.json"],
        vec!["--device-code"],
        vec!["--static-oauth-client-info", info],
        vec!["--static-oauth-client-metadata", r#"{"client_name":"x"}"#],
        vec!["--client-credentials", "--static-oauth-client-info", info],
        vec![
            "--client-credentials",
            "--static-oauth-client-info",
            info,
            "--token-endpoint",
            "https://auth.example/token",
        ],
        vec!["--use-id-token"],
        vec!["--auth-success-url", "https://example.com/done"],
        vec!["--enable-proxy"],
        vec!["--keep-alive"],
        vec!["--ping-interval", "45"],
        vec!["--disable-cookies"],
        vec!["--ipv4"],
        vec!["--connect-timeout", "5"],
        vec!["--headers-timeout", "30"],
        vec!["--body-timeout", "0"],
        vec!["--protocol", "legacy"],
        vec!["--protocol", "auto"],
        vec!["--debug"],
        vec!["--silent"],
        // The callback port, positional after the URL.
        vec!["9696"],
    ];
    for flag in &flags {
        let config = dir.path().join("config");
        let mut args = vec![mock.url.as_str()];
        args.extend(flag.iter().copied());
        args.extend(["--config-dir", config.to_str().unwrap()]);
        let mut p = Proxy::spawn_env(&args, &[("SECRET", "s3cr3t")]);
        p.send(&init("2025-11-25")).await;
        let (resp, _) = p.recv_response(0.into()).await;
        assert!(resp.get("result").is_some(), "{flag:?}: {resp}");
        p.send(INITIALIZED).await;
        p.send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
            .await;
        let (resp, _) = p.recv_response(1.into()).await;
        assert!(resp.get("result").is_some(), "{flag:?}: {resp}");
        let (status, stderr) = p.finish().await;
        assert!(status.success(), "{flag:?}:\n{stderr}");
        assert!(!stderr.contains("s3cr3t"), "{flag:?}:\n{stderr}");
    }
    // --help and --version are mcp-remote's too.
    for flag in ["--help", "-h", "--version"] {
        let out = crate::support::run_in(dir.path(), &[flag]).await;
        assert!(out.status.success(), "{flag}");
    }
}

/// Flags whose value is wrong stop the start with one line naming the flag (exit 2).
#[tokio::test]
async fn bad_mcp_remote_flag_values_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let url = "https://mcp.example.test/mcp";
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--static-oauth-client-info",
                r#"{"client_id":"c","client_secret":"${UNSET_SECRET}"}"#,
            ],
            "--static-oauth-client-info: uses ${UNSET_SECRET}, which is not set",
        ),
        (
            &["--static-oauth-client-info", "@/nonexistent/info.json"],
            "--static-oauth-client-info: cannot read /nonexistent/info.json",
        ),
        (
            &["--static-oauth-client-info", "{not json"],
            "--static-oauth-client-info: is not JSON",
        ),
        (
            &["--static-oauth-client-metadata", "[1]"],
            "--static-oauth-client-metadata: is not a JSON object",
        ),
        (
            &["--token-endpoint", "https://auth.example/token"],
            "--token-endpoint: it is for --client-credentials",
        ),
        (
            &[
                "--client-credentials",
                "--client-id",
                "c",
                "--client-secret",
                "s",
                "--token-endpoint",
                "http://auth.example/token",
            ],
            "must be https (or http on loopback)",
        ),
        (
            &["--auth-success-url", "https://example.com/done?x=1"],
            "--auth-success-url: \"https://example.com/done?x=1\" must have no credentials, query or fragment",
        ),
        (
            &["--auth-success-url", "http://example.com/done"],
            "must be https (or http on loopback)",
        ),
        (&["--ping-interval", "0"], "--ping-interval"),
        (&["--headers-timeout", "x"], "--headers-timeout"),
        (&["--transport", "sse-last"], "sse-first"),
    ];
    for (args, expected) in cases {
        let mut all = vec![url];
        all.extend_from_slice(args);
        let out = crate::support::run_in(dir.path(), &all).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
}

/// The first start imports mcp-remote's sign-in (read, never modified), says so once
/// with the rotation warning, and signs in with nobody; `--no-import` leaves it alone.
#[tokio::test]
async fn an_mcp_remote_sign_in_is_imported() {
    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let env = Env::new();
    let (_, port) = mcp_remote_hash(&as_.url);
    let redirect = format!("http://localhost:{port}/oauth/callback");
    as_.preload("imported-client", &redirect, "imported-at", "imported-rt");
    let files = write_cache(&env, &as_.url, &as_.issuer(), 4102444800000);
    let before: Vec<_> = files
        .iter()
        .map(|f| {
            (
                std::fs::read(f).unwrap(),
                f.metadata().unwrap().modified().unwrap(),
            )
        })
        .collect();

    let mut p = env.spawn(&as_.url, &[], &[]);
    p.initialize("2025-11-25").await;
    p.send(&call(1, "whoami", json!({}))).await;
    let (resp, _) = p.recv_response(1.into()).await;
    assert_eq!(
        resp["result"]["content"][0]["text"], "ok:whoami:mcp.read",
        "{resp}"
    );
    let (_, stderr) = p.finish().await;
    assert_eq!(
        stderr.matches("imported mcp-remote's sign-in").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("rotates the refresh token"), "{stderr}");
    assert!(
        !stderr.contains("imported-at") && !stderr.contains("imported-rt"),
        "{stderr}"
    );
    {
        let seen = as_.seen.lock().unwrap();
        assert!(seen.registrations.is_empty() && seen.authorizations.is_empty());
        assert_eq!(
            seen.mcp_auth.last().unwrap().as_deref(),
            Some("Bearer imported-at")
        );
    }
    let after: Vec<_> = files
        .iter()
        .map(|f| {
            (
                std::fs::read(f).unwrap(),
                f.metadata().unwrap().modified().unwrap(),
            )
        })
        .collect();
    assert_eq!(before, after, "mcp-remote's files are never modified");

    // Kept as ours now: the next start neither imports nor signs in.
    let mut p = env.spawn(&as_.url, &[], &[]);
    p.initialize("2025-11-25").await;
    let (_, stderr) = p.finish().await;
    assert!(!stderr.contains("imported"), "{stderr}");

    // --no-import: a sign-in of our own.
    let env = Env::new();
    write_cache(&env, &as_.url, &as_.issuer(), 4102444800000);
    let mut p = env.spawn(&as_.url, &["--no-import"], &[]);
    p.initialize("2025-11-25").await;
    let (_, stderr) = p.finish().await;
    assert!(!stderr.contains("imported"), "{stderr}");
    assert_eq!(as_.seen.lock().unwrap().registrations.len(), 1);
}

/// Expired imported tokens are refreshed with the imported registration; when that
/// fails, the browser sign-in uses that registration with mcp-remote's redirect URI.
#[tokio::test]
async fn an_imported_registration_keeps_mcp_remote_redirect_uri() {
    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let env = Env::new();
    let steered = steer(&as_.url);
    let redirect = format!("http://localhost:{}/oauth/callback", steered.port);
    as_.preload("imported-client", &redirect, "imported-at", "imported-rt");
    write_cache(&env, &steered.key, &as_.issuer(), now_ms() - 1000);
    let header = ["--header", steered.header.as_str()];
    let mut p = env.spawn(&as_.url, &header, &[]);
    p.initialize("2025-11-25").await;
    p.finish().await;
    {
        let seen = as_.seen.lock().unwrap();
        let (form, _) = &seen.token_requests[0];
        assert_eq!(form["grant_type"], "refresh_token");
        assert_eq!(form["refresh_token"], "imported-rt");
        assert_eq!(form["client_id"], "imported-client");
        assert!(seen.authorizations.is_empty());
    }

    // The refresh token is gone (mcp-remote rotated it): sign in with the imported
    // client, at mcp-remote's redirect URI.
    let env = Env::new();
    write_cache(&env, &steered.key, &as_.issuer(), now_ms() - 1000);
    let mut p = env.spawn(&as_.url, &header, &[]);
    p.initialize("2025-11-25").await;
    p.finish().await;
    let seen = as_.seen.lock().unwrap();
    let a = seen.authorizations.last().unwrap();
    assert_eq!(a["client_id"], "imported-client");
    assert_eq!(a["redirect_uri"], redirect);
    assert!(seen.registrations.is_empty());
}

/// A static client (registered for mcp-remote) signs in at mcp-remote's redirect URI,
/// with its secret from `${VAR}` and its own auth method; --host and --callback-path
/// change it as in mcp-remote. Static metadata goes into the registration request.
#[tokio::test]
async fn static_clients_use_mcp_remote_redirect_uri() {
    let as_ = OAuthMock::start(OAuthOptions {
        preregistered: Some(("pre-static", "s3cr3t-static")),
        ..Default::default()
    })
    .await;
    let steered = steer(&as_.url);
    let port = steered.port;
    let env = Env::new();
    let info_file = env.path("info.json");
    std::fs::write(
        &info_file,
        r#"{"client_id":"pre-static","client_secret":"${STATIC_SECRET}","token_endpoint_auth_method":"client_secret_post"}"#,
    )
    .unwrap();
    let info_arg = format!("@{info_file}");
    let mut p = env.spawn(
        &as_.url,
        &[
            "--static-oauth-client-info",
            &info_arg,
            "--header",
            &steered.header,
        ],
        &[("STATIC_SECRET", "s3cr3t-static")],
    );
    p.initialize("2025-11-25").await;
    let (_, stderr) = p.finish().await;
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
    {
        let seen = as_.seen.lock().unwrap();
        let a = &seen.authorizations[0];
        assert_eq!(a["client_id"], "pre-static");
        assert_eq!(
            a["redirect_uri"],
            format!("http://localhost:{port}/oauth/callback")
        );
        let (form, basic) = &seen.token_requests[0];
        assert_eq!(form["client_secret"], "s3cr3t-static", "client_secret_post");
        assert!(basic.is_none());
        assert!(seen.registrations.is_empty());
    }

    let env = Env::new();
    let mut p = env.spawn(
        &as_.url,
        &[
            "--static-oauth-client-info",
            r#"{"client_id":"pre-static","client_secret":"s3cr3t-static"}"#,
            "--host",
            "127.0.0.1",
            "--callback-path",
            "/cb",
            "--header",
            &steered.header,
        ],
        &[],
    );
    p.initialize("2025-11-25").await;
    p.finish().await;
    {
        let seen = as_.seen.lock().unwrap();
        let a = seen.authorizations.last().unwrap();
        assert_eq!(a["redirect_uri"], format!("http://127.0.0.1:{port}/cb"));
    }

    // Static metadata: merged into our registration; its scope is the one asked for.
    let env = Env::new();
    let mut p = env.spawn(
        &as_.url,
        &[
            "--static-oauth-client-metadata",
            r#"{"client_name":"Corp MCP","scope":"mcp.read","logo_uri":"https://corp.example/logo.png"}"#,
        ],
        &[],
    );
    p.initialize("2025-11-25").await;
    p.finish().await;
    let seen = as_.seen.lock().unwrap();
    let reg = seen.registrations.last().unwrap();
    assert_eq!(reg["client_name"], "Corp MCP");
    assert_eq!(reg["logo_uri"], "https://corp.example/logo.png");
    assert_eq!(reg["scope"], "mcp.read");
    assert_eq!(seen.authorizations.last().unwrap()["scope"], "mcp.read");
    let redirect = reg["redirect_uris"][0].as_str().unwrap();
    assert!(
        redirect.starts_with("http://127.0.0.1:") && redirect.ends_with("/callback"),
        "our own registration keeps our URI: {redirect}"
    );
}

/// --auth-success-url: the browser is sent there (303) once the sign-in completed.
#[tokio::test]
async fn the_browser_goes_to_the_success_url() {
    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let env = Env::new();
    let done = format!("{}/signed-in", as_.base);
    let mut p = env.spawn(&as_.url, &["--auth-success-url", &done], &[]);
    p.initialize("2025-11-25").await;
    as_.wait_for("the success page", |s| s.success_pages == 1)
        .await;
    p.finish().await;
    assert_eq!(as_.seen.lock().unwrap().token_requests.len(), 1);
}

/// --use-id-token: the ID token is the credential; without one, the access token is
/// sent and a warning says why.
#[tokio::test]
async fn the_id_token_can_be_the_credential() {
    let as_ = OAuthMock::start(OAuthOptions {
        id_tokens: true,
        ..Default::default()
    })
    .await;
    let env = Env::new();
    let mut p = env.spawn(&as_.url, &["--use-id-token"], &[]);
    p.initialize("2025-11-25").await;
    whoami(&mut p, 1).await;
    p.finish().await;
    {
        let seen = as_.seen.lock().unwrap();
        let last = seen.mcp_auth.last().unwrap().as_deref().unwrap();
        assert!(last.starts_with("Bearer eyJhbGciOiJub25lIn0."), "{last}");
    }

    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let env = Env::new();
    let mut p = env.spawn(&as_.url, &["--use-id-token"], &[]);
    p.initialize("2025-11-25").await;
    p.send(&call(1, "whoami", json!({}))).await;
    p.recv_response(1.into()).await;
    let (_, stderr) = p.finish().await;
    assert_eq!(stderr.matches("issued no ID token").count(), 1, "{stderr}");
    let seen = as_.seen.lock().unwrap();
    assert!(
        seen.mcp_auth
            .last()
            .unwrap()
            .as_deref()
            .unwrap()
            .starts_with("Bearer at-")
    );
}

/// --token-endpoint with --client-credentials goes straight to the endpoint; with
/// --disable-resource-parameter no `resource` is sent anywhere.
#[tokio::test]
async fn token_endpoint_and_no_resource() {
    let as_ = OAuthMock::start(OAuthOptions {
        prm: Prm::None,
        preregistered: Some(("pre-m", "s3cr3t-m")),
        ..Default::default()
    })
    .await;
    let env = Env::new();
    let endpoint = format!("{}/token", as_.base);
    let mut p = env.spawn(
        &as_.url,
        &[
            "--client-credentials",
            "--static-oauth-client-info",
            r#"{"client_id":"pre-m","client_secret":"s3cr3t-m"}"#,
            "--token-endpoint",
            &endpoint,
        ],
        &[],
    );
    p.initialize("2025-11-25").await;
    p.finish().await;
    {
        let seen = as_.seen.lock().unwrap();
        let (form, basic) = &seen.token_requests[0];
        assert_eq!(form["grant_type"], "client_credentials");
        assert!(!form.contains_key("resource"), "{form:?}");
        assert!(basic.is_some());
    }

    let as_ = OAuthMock::start(OAuthOptions::default()).await;
    let env = Env::new();
    let mut p = env.spawn(&as_.url, &["--disable-resource-parameter"], &[]);
    p.initialize("2025-11-25").await;
    p.finish().await;
    let seen = as_.seen.lock().unwrap();
    assert!(!seen.authorizations[0].contains_key("resource"));
    assert!(
        seen.token_requests
            .iter()
            .all(|(f, _)| !f.contains_key("resource"))
    );
}

/// Cookies the MCP server sets go back to it, and never to the authorization server,
/// even on the same origin; --disable-cookies keeps none.
#[tokio::test]
async fn cookies_go_back_to_the_mcp_server_only() {
    for disabled in [false, true] {
        let as_ = OAuthMock::start(OAuthOptions {
            cookies: true,
            expires_in: 30, // inside the refresh margin: every request refreshes first
            ..Default::default()
        })
        .await;
        let env = Env::new();
        let args: &[&str] = if disabled {
            &["--disable-cookies"]
        } else {
            &[]
        };
        let mut p = env.spawn(&as_.url, args, &[]);
        p.initialize("2025-11-25").await;
        for id in 1..=2 {
            p.send(&call(id, "whoami", json!({}))).await;
            p.recv_response(id.into()).await;
        }
        p.finish().await;
        let seen = as_.seen.lock().unwrap();
        let mcp: Vec<_> = seen.cookies.iter().filter(|(e, _)| *e == "mcp").collect();
        assert!(mcp.len() >= 3, "{:?}", seen.cookies);
        let with_cookie = mcp
            .iter()
            .filter(|(_, c)| c.as_deref() == Some("mcp=1"))
            .count();
        if disabled {
            assert_eq!(with_cookie, 0, "{:?}", seen.cookies);
        } else {
            assert!(with_cookie >= 2, "{:?}", seen.cookies);
        }
        assert!(
            seen.cookies
                .iter()
                .all(|(_, c)| !c.as_deref().unwrap_or("").contains("as=1")),
            "the AS's cookie goes nowhere: {:?}",
            seen.cookies
        );
        let to_as: Vec<_> = seen.cookies.iter().filter(|(e, _)| *e != "mcp").collect();
        assert!(
            !to_as.is_empty() && to_as.iter().all(|(_, c)| c.is_none()),
            "{to_as:?}"
        );
    }
}

/// --keep-alive pings a quiet session; the answer never reaches the client.
#[tokio::test]
async fn a_quiet_session_is_pinged() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url, "--ping-interval", "0.2"]);
    p.initialize("2025-11-25").await;
    mock.wait_for("two keep-alive pings", |r| {
        r.iter().filter(|r| r.rpc_method() == Some("ping")).count() >= 2
    })
    .await;
    let ping = mock
        .requests()
        .into_iter()
        .find(|r| r.rpc_method() == Some("ping"))
        .unwrap();
    assert_eq!(ping.body["id"], "clerk-mcp-server-keepalive-1");
    assert!(ping.header("mcp-session-id").is_some(), "on the session");
    // Those ids are the proxy's: a client request under one is refused, not forwarded.
    p.send(r#"{"jsonrpc":"2.0","id":"clerk-mcp-server-keepalive-9","method":"tools/list"}"#)
        .await;
    let refused = p.recv().await;
    assert_eq!(refused["id"], "clerk-mcp-server-keepalive-9", "{refused}");
    assert_eq!(refused["error"]["code"], -32600, "{refused}");
    let listed = mock.requests();
    assert!(
        !listed
            .iter()
            .any(|r| r.body["id"] == "clerk-mcp-server-keepalive-9")
    );
    // The next line the client reads is the answer to its own request.
    p.send(r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#)
        .await;
    let next = p.recv().await;
    assert_eq!(next["id"], 7, "{next}");
    p.finish().await;
    // On an HTTP+SSE session too: the answer comes on the stream and stays there.
    let legacy = Mock::start(Options {
        legacy_only: true,
        ..Default::default()
    })
    .await;
    let url = format!("{}/sse", legacy.base);
    let mut p = Proxy::spawn(&[
        &url,
        "--transport",
        "sse",
        "--keep-alive",
        "--ping-interval",
        "0.2",
    ]);
    p.initialize("2024-11-05").await;
    legacy
        .wait_for("two keep-alive pings", |r| {
            r.iter().filter(|r| r.rpc_method() == Some("ping")).count() >= 2
        })
        .await;
    p.send(r#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#)
        .await;
    let next = p.recv().await;
    assert_eq!(next["id"], 7, "{next}");
    p.finish().await;
}

/// --headers-timeout bounds the wait for the response headers, and says so.
#[tokio::test]
async fn headers_timeout_names_itself() {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let mock = Mock::start(Options {
        hold_initialize: Some(gate.clone()),
        ..Default::default()
    })
    .await;
    let mut p = Proxy::spawn(&[&mock.url, "--headers-timeout", "0.3"]);
    let error = p.initialize_error("2025-11-25").await;
    assert!(
        error.contains("within 0.3 s (--headers-timeout)"),
        "{error}"
    );
    gate.add_permits(10);
    p.finish().await;
}

/// --ipv4: an IPv6-only server cannot be reached, and the error says so.
#[tokio::test]
async fn ipv4_only() {
    let mock = Mock::start_on("[::1]:0", Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    p.finish().await;
    let mut p = Proxy::spawn(&[&mock.url, "--ipv4"]);
    let error = p.initialize_error("2025-11-25").await;
    assert!(error.contains("cannot connect"), "{error}");
    p.finish().await;
}

/// --transport sse-first: HTTP+SSE first, then Streamable HTTP when it is refused.
#[tokio::test]
async fn sse_first() {
    let legacy = Mock::start(Options {
        legacy_only: true,
        ..Default::default()
    })
    .await;
    let url = format!("{}/sse", legacy.base);
    let mut p = Proxy::spawn(&[&url, "--transport", "sse-first"]);
    p.initialize("2024-11-05").await;
    p.finish().await;
    let first = &legacy.requests()[0];
    assert_eq!(
        (first.method.clone(), first.path.as_str()),
        (Method::GET, "/sse")
    );

    let modern = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&modern.url, "--transport", "sse-first"]);
    p.initialize("2025-11-25").await;
    let (_, stderr) = p.finish().await;
    assert!(stderr.contains("trying Streamable HTTP"), "{stderr}");
    assert_eq!(modern.requests()[0].method, Method::GET);
    assert!(modern.count(Method::POST) >= 1);
}

/// --debug logs at debug level, also to debug.log in the config directory, and says
/// where; --silent leaves only errors; --enable-proxy names what we do instead.
#[tokio::test]
async fn debug_silent_and_enable_proxy() {
    let mock = Mock::start(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let config = config.to_str().unwrap();
    let mut p = Proxy::spawn_untraced(
        &[&mock.url, "--debug", "--config-dir", config],
        &[("RUST_LOG", "")],
    );
    p.initialize("2025-11-25").await;
    let (_, stderr) = p.finish().await;
    let log = format!("{config}/debug.log");
    assert!(stderr.contains(&format!("debug log: {log}")), "{stderr}");
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(written.contains("DEBUG"), "{written}");

    let mut p = Proxy::spawn_untraced(&[&mock.url, "--silent", "--enable-proxy"], &[]);
    p.initialize("2025-11-25").await;
    let (_, stderr) = p.finish().await;
    assert!(stderr.trim().is_empty(), "{stderr}");

    let mut p = Proxy::spawn_untraced(&[&mock.url, "--enable-proxy"], &[("RUST_LOG", "")]);
    p.initialize("2025-11-25").await;
    let (_, stderr) = p.finish().await;
    assert_eq!(
        stderr.matches("--enable-proxy has no effect").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("HTTPS_PROXY"), "{stderr}");
}
