//! Fallback to the 2024-11-05 HTTP+SSE transport (B-DETECT, B-SSE, M-DETECT).

use reqwest::Method;
use serde_json::json;

use crate::support::mock::{Mock, Options};
use crate::support::{Proxy, call};

/// B-DETECT: the initialize POST is refused (405, a plain body), so the proxy GETs the
/// URL, follows the `endpoint` event, and carries the session over HTTP+SSE (B-SSE).
#[tokio::test]
async fn auto_falls_back_to_http_sse() {
    let mock = Mock::start(Options::default()).await;
    let url = format!("{}/sse", mock.base);
    let mut p = Proxy::spawn(&[&url]);
    let init = p.initialize("2025-03-26").await;
    assert_eq!(init["result"]["serverInfo"]["name"], "legacy-mock");
    p.send(&call(1, "echo", json!({"via": "sse"}))).await;
    let (resp, _) = p.recv_response(1.into()).await;
    assert_eq!(resp["result"]["content"][0]["text"], r#"{"via":"sse"}"#);
    let (status, _) = p.finish().await;
    assert!(status.success());
    let reqs = mock.requests();
    assert_eq!(
        reqs[0].method,
        Method::POST,
        "Streamable HTTP is tried first"
    );
    assert_eq!(reqs[0].path, "/sse");
    assert_eq!(reqs[1].method, Method::GET);
    assert_eq!(reqs[1].header("accept"), Some("text/event-stream"));
    let posted: Vec<_> = reqs
        .iter()
        .filter(|r| r.path == "/messages")
        .map(|r| r.rpc_method().unwrap_or(""))
        .collect();
    assert_eq!(
        posted,
        ["initialize", "notifications/initialized", "tools/call"]
    );
}

/// --transport sse skips detection; --transport streamable-http never falls back.
#[tokio::test]
async fn forced_transports() {
    let mock = Mock::start(Options::default()).await;
    let url = format!("{}/sse", mock.base);
    let mut p = Proxy::spawn(&[&url, "--transport", "sse"]);
    p.initialize("2025-06-18").await;
    p.finish().await;
    assert!(
        mock.requests()
            .iter()
            .all(|r| r.path != "/sse" || r.method == Method::GET),
        "no POST probe"
    );

    let mock = Mock::start(Options::default()).await;
    let url = format!("{}/sse", mock.base);
    let mut p = Proxy::spawn(&[&url, "--transport", "streamable-http"]);
    let msg = p.initialize_error("2025-06-18").await;
    assert!(msg.contains("HTTP 404"), "{msg}");
    p.finish().await;
    assert_eq!(mock.count(Method::GET), 0);
}

/// M-DETECT: a recognized modern error on initialize means a modern server: no
/// fallback to HTTP+SSE, and the error reaches the client untouched.
#[tokio::test]
async fn modern_error_is_not_a_fallback_trigger() {
    let mock = Mock::start(Options {
        modern_only: true,
        ..Default::default()
    })
    .await;
    // With --protocol legacy the refusal reaches the client untouched (M-VERSION); the
    // default translates instead (tests/it/translate.rs).
    let mut p = Proxy::spawn(&[&mock.url, "--protocol", "legacy"]);
    p.send(&crate::support::init("2025-11-25")).await;
    let (resp, _) = p.recv_response(0.into()).await;
    assert_eq!(resp["error"]["code"], -32022, "{resp}");
    assert_eq!(resp["error"]["data"]["supported"], json!(["2026-07-28"]));
    p.finish().await;
    assert_eq!(mock.count(Method::GET), 0, "no HTTP+SSE probe");
}

/// A server that is neither: a clear error, not a hang.
#[tokio::test]
async fn neither_transport_is_a_clear_error() {
    let mock = Mock::start(Options {
        legacy_only: true,
        ..Default::default()
    })
    .await;
    let mut p = Proxy::spawn(&[&mock.url]);
    let msg = p.initialize_error("2025-11-25").await;
    assert!(
        msg.contains("HTTP 405") && msg.contains("HTTP+SSE"),
        "{msg}"
    );
    p.finish().await;
}

/// B-SSE: an `endpoint` on another origin is refused, so messages (and credentials)
/// never go there.
#[tokio::test]
async fn foreign_endpoint_is_refused() {
    let mock = Mock::start(Options {
        foreign_endpoint: true,
        ..Default::default()
    })
    .await;
    let mut p = Proxy::spawn(&[&format!("{}/sse", mock.base), "--transport", "sse"]);
    p.send(&crate::support::init("2025-03-26")).await;
    let (resp, _) = p.recv_response(0.into()).await;
    let msg = resp["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{resp}"));
    assert!(msg.contains("another origin"), "{msg}");
    p.finish().await;
}

/// B-SSE: when the HTTP+SSE stream ends, the request it strands gets an error, and the
/// next message reconnects and renews the session behind the client's back.
#[tokio::test]
async fn sse_stream_loss_reconnects() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&format!("{}/sse", mock.base), "--transport", "sse"]);
    p.initialize("2025-03-26").await;
    p.send(&call(1, "drop_stream", json!({}))).await;
    let (resp, _) = p.recv_response(1.into()).await;
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stream"),
        "{resp}"
    );
    p.send(&call(2, "echo", json!({"after": "reconnect"})))
        .await;
    let (resp, before) = p.recv_response(2.into()).await;
    assert!(
        before.is_empty(),
        "the renewed initialize stays with the proxy: {before:?}"
    );
    assert_eq!(
        resp["result"]["content"][0]["text"],
        r#"{"after":"reconnect"}"#
    );
    p.finish().await;
    let reqs = mock.requests();
    assert_eq!(reqs.iter().filter(|r| r.method == Method::GET).count(), 2);
    let posted: Vec<_> = reqs
        .iter()
        .filter(|r| r.path == "/messages")
        .map(|r| r.rpc_method().unwrap_or(""))
        .collect();
    assert_eq!(
        posted,
        [
            "initialize",
            "notifications/initialized",
            "tools/call",
            "initialize",
            "notifications/initialized",
            "tools/call"
        ]
    );
}
