//! The command line: flags, environment, startup errors, `check`.

use std::process::Output;

use reqwest::Method;

use crate::support::mock::{Mock, Options};
use crate::support::{BIN, Proxy};

async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    // A HOME of its own: nothing of another test's (or mcp-remote's) is found there.
    let home = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("HOME", home.path())
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null());
    tokio::time::timeout(crate::support::WAIT, cmd.output())
        .await
        .unwrap()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn version_and_help() {
    let out = run(&["--version"], &[]).await;
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("clerk-mcp-server {}", env!("CARGO_PKG_VERSION"))
    );
    let out = run(&["--help"], &[]).await;
    let help = text(&out.stdout);
    for needle in [
        "Examples:",
        "--header",
        "--transport",
        "--ca-file",
        "check",
        "https://mcp.clerk.com/mcp",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}

/// --header with ${VAR} expansion reaches the server on every request, GET and DELETE
/// included (H-BEARER); the value never reaches the logs, even at trace level (S-STDOUT:
/// logs go to stderr and the log file only).
#[tokio::test]
async fn headers_expand_and_stay_out_of_logs() {
    let mock = Mock::start(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("headers");
    std::fs::write(&file, "# team headers\n\nX-Team: ${TEAM}\n").unwrap();
    let log = dir.path().join("proxy.log");
    let mut p = Proxy::spawn_env(
        &[
            &mock.url,
            "--header",
            "Authorization: Bearer ${TOKEN}",
            "--header-file",
            file.to_str().unwrap(),
            "--log-file",
            log.to_str().unwrap(),
            "--log-level",
            "trace",
        ],
        &[("TOKEN", "tok-SECRET-123"), ("TEAM", "team-SECRET-456")],
    );
    p.initialize("2025-11-25").await;
    let (status, stderr) = p.finish().await;
    assert!(status.success());
    for r in mock.requests() {
        assert_eq!(
            r.header("authorization"),
            Some("Bearer tok-SECRET-123"),
            "{:?} {}",
            r.method,
            r.path
        );
        assert_eq!(r.header("x-team"), Some("team-SECRET-456"));
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("session initialized"),
        "--log-file gets the logs:\n{logged}"
    );
    for secret in ["SECRET", "session-1"] {
        assert!(
            !stderr.contains(secret),
            "{secret} leaked to stderr:\n{stderr}"
        );
        assert!(!logged.contains(secret), "{secret} leaked to the log file");
    }
}

#[tokio::test]
async fn startup_errors_are_clear() {
    let out = run(
        &[
            "http://127.0.0.1:1/mcp",
            "--header",
            "X-Key: ${MISSING_VAR}",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("MISSING_VAR") && err.contains("not set"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout");

    let out = run(&["http://example.com/mcp"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--allow-http"));

    let out = run(&["not a url"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("invalid server URL"));

    let out = run(
        &[
            "https://example.com/mcp",
            "--ca-file",
            "/nonexistent/ca.pem",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--ca-file"));

    let out = run(&["https://example.com/mcp", "--request-timeout", "-1"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
}

/// The URL can come from CLERK_MCP_URL.
#[tokio::test]
async fn url_from_environment() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn_env(&[], &[("CLERK_MCP_URL", &mock.url)]);
    p.initialize("2025-11-25").await;
    p.finish().await;
    assert!(mock.count(Method::POST) >= 2);
}

#[tokio::test]
async fn check_summarizes_a_working_server() {
    let mock = Mock::start(Options::default()).await;
    let out = run(&["check", &mock.url], &[]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for needle in [
        "mock 1.0",
        "2025-11-25",
        "Streamable HTTP",
        "tools (2): echo, slow",
    ] {
        assert!(
            stdout.contains(needle),
            "check output lacks {needle}:\n{stdout}"
        );
    }
    assert_eq!(mock.count(Method::DELETE), 1, "check ends its session");

    let mock = Mock::start(Options::default()).await;
    let out = run(&["check", &format!("{}/sse", mock.base)], &[]).await;
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("HTTP+SSE"),
        "{}",
        text(&out.stdout)
    );
}

/// `check` names the eras the server speaks and what the proxy will translate
/// (M-BRIDGE, M-BACKPORT).
#[tokio::test]
async fn check_reports_the_servers_eras() {
    for (opts, want) in [
        (
            Options::default(),
            "eras:      legacy and 2026-07-28: every client passes through",
        ),
        (
            Options {
                legacy_sessions: true,
                ..Default::default()
            },
            "eras:      legacy only: 2026-07-28 clients are translated",
        ),
        (
            Options {
                modern_only: true,
                ..Default::default()
            },
            "eras:      2026-07-28 only: legacy clients (initialize-based) are translated",
        ),
    ] {
        let mock = Mock::start(opts).await;
        let out = run(&["check", &mock.url], &[]).await;
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
        assert!(
            stdout.contains(want),
            "check output lacks {want:?}:\n{stdout}"
        );
    }
}

#[tokio::test]
async fn check_diagnoses_failures() {
    let refused = crate::support::RefusedPort::new();
    let out = run(&["check", &refused.url()], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("connection refused"),
        "{}",
        text(&out.stdout)
    );

    let mock = Mock::start(Options {
        legacy_only: true,
        ..Default::default()
    })
    .await;
    let out = run(&["check", &mock.url], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("HTTP 405"),
        "{}",
        text(&out.stdout)
    );
}

/// Environment switches take the usual spellings (1/0, true/false, yes/no).
#[tokio::test]
async fn boolean_environment_switches() {
    for value in ["1", "true", "yes"] {
        let out = run(
            &["http://example.test/mcp"],
            &[
                ("CLERK_MCP_ALLOW_HTTP", value),
                ("CLERK_MCP_NO_BROWSER", value),
                ("CLERK_MCP_DEVICE_CODE", value),
            ],
        )
        .await;
        assert!(out.status.success(), "{value}: {}", text(&out.stderr));
    }
    let out = run(
        &["http://example.test/mcp"],
        &[("CLERK_MCP_ALLOW_HTTP", "0")],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "0 means off: plain http is refused again"
    );
}

/// The first ten minutes: each mistake a new user makes gets one line on stderr that
/// says what to do, with exit code 2 for usage errors and 1 for the rest.
#[tokio::test]
async fn first_mistakes_get_one_clear_line() {
    let usage = [
        (
            vec!["mcp.clerk.com/mcp"],
            vec![],
            "invalid server URL \"mcp.clerk.com/mcp\": it has no scheme; add https:// \
             (https://mcp.clerk.com/mcp)",
        ),
        (
            vec!["chek", "https://x.test/mcp"],
            vec![],
            "unknown command \"chek\": did you mean `clerk-mcp-server check`? (see --help)",
        ),
        (
            vec!["https://x.test/mcp", "96x6"],
            vec![],
            "invalid CALLBACK_PORT: \"96x6\" after the URL is not a port; only the callback \
             port (1-65535) may follow the URL",
        ),
        (
            vec!["https://x.test/mcp", "--log-level", "loud"],
            vec![],
            "invalid --log-level: \"loud\" is not a level; use one of off, error, warn, info, \
             debug, trace",
        ),
        (
            vec!["https://x.test/mcp"],
            vec![("CLERK_MCP_HEADERS", "X-Team: ${UNSET_TEAM}")],
            "invalid header (CLERK_MCP_HEADERS): the environment variable UNSET_TEAM is not \
             set (used by header X-Team); set it or remove the header",
        ),
    ];
    for (args, env, line) in usage {
        let out = run(&args, &env).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            text(&out.stderr),
            format!("clerk-mcp-server: {line}\n"),
            "{args:?}"
        );
        assert!(out.stdout.is_empty());
    }

    // Not a usage error: 1, and the updater's error said once, without its layers.
    let out = run(
        &["self-update", "--check"],
        &[("CLERK_MCP_UPDATE_API_URL", "http://127.0.0.1:1")],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "clerk-mcp-server: cannot look up the latest release: cannot connect to 127.0.0.1: \
         connection refused (is the server running?); check your network and proxy settings \
         (HTTPS_PROXY), or download a release from https://github.com/clerk/mcp-server/releases\n"
    );

    // A plain-HTTP server behind an https:// URL, and HTTP+SSE forced on a Streamable
    // HTTP endpoint: `check` says so once, on stdout, with nothing repeated on stderr.
    let mock = Mock::start(Options::default()).await;
    let https = mock.url.replacen("http://", "https://", 1);
    let host = https
        .trim_start_matches("https://")
        .trim_end_matches("/mcp");
    let out = run(&["check", &https], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        format!(
            "Checking {https}\n✗ initialize failed: {host} answered the TLS handshake in plain \
             HTTP: the server speaks http://, not https://, on this port; use an http:// URL\n"
        )
    );
    assert_eq!(text(&out.stderr), "");
    let out = run(&["check", &mock.url, "--transport", "sse"], &[]).await;
    let said = text(&out.stdout);
    assert!(
        said.contains("its HTTP+SSE stream (GET) was refused (HTTP 405) (--transport sse; leave it out if the server speaks Streamable HTTP)")
            && !said.contains("Streamable HTTP failed"),
        "{said}"
    );
    assert_eq!(text(&out.stderr), "");
}

/// Started by hand in a terminal, the proxy says it waits for an MCP client and how to
/// try the server; a host it cannot reach is reported at once, not at the first request.
#[tokio::test]
async fn a_person_at_a_terminal_is_told_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    // `script` gives the proxy a terminal; its stdin at EOF hangs the terminal up.
    let command = format!(
        "{BIN} http://127.0.0.1:1/mcp --config-dir {}",
        config.display()
    );
    let mut cmd = tokio::process::Command::new("script");
    cmd.args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("HOME", dir.path())
        .stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(crate::support::WAIT, cmd.output())
        .await
        .unwrap()
        .expect("`script` (util-linux) runs the proxy in a terminal");
    let said = text(&out.stdout);
    assert!(
        said.contains(
            "waiting for an MCP client on stdin; an MCP client (Claude Desktop, Cursor...) \
             starts this program itself. To try the server by hand, run \
             `clerk-mcp-server check http://127.0.0.1:1/mcp`"
        ),
        "{said}"
    );

    let p = Proxy::spawn(&[
        "http://127.0.0.1:1/mcp",
        "--config-dir",
        config.to_str().unwrap(),
    ]);
    p.wait_stderr(
        "cannot connect to 127.0.0.1:1: connection refused (is the server running?); requests \
         will fail until it answers (try `clerk-mcp-server check http://127.0.0.1:1/mcp`)",
    )
    .await;
    assert!(
        !p.stderr().contains("waiting for an MCP client"),
        "not said to an MCP client"
    );
}
