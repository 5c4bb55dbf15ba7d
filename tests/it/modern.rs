//! The modern revision 2026-07-28 (M-*): stateless POSTs with request metadata headers.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::Proxy;
use crate::support::mock::{Mock, Options};

fn meta() -> Value {
    json!({"io.modelcontextprotocol/protocolVersion":"2026-07-28",
           "io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},
           "io.modelcontextprotocol/clientCapabilities":{}})
}

fn req(id: i64, method: &str, mut params: Value) -> String {
    params["_meta"] = meta();
    json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string()
}

/// M-ERA, M-STATELESS, M-HEADERS, M-PARAM-HDR, M-PARAM-INVALID: headers are built from
/// the body and the learned annotations; invalid tools vanish from tools/list; no
/// session, GET or DELETE.
#[tokio::test]
async fn headers_learned_from_tools_list() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.send(&req(1, "server/discover", json!({}))).await;
    let (d, _) = p.recv_response(1.into()).await;
    assert_eq!(d["result"]["serverInfo"]["name"], "mock-modern");
    p.send(&req(2, "tools/list", json!({}))).await;
    let (list, _) = p.recv_response(2.into()).await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["route", "hang"],
        "M-PARAM-INVALID: `bad` annotates a number"
    );
    p.send(&req(
        3,
        "tools/call",
        json!({"name":"route","arguments":{"region":"Hello, 世界","q":"x"}}),
    ))
    .await;
    let (call, _) = p.recv_response(3.into()).await;
    assert_eq!(
        call["result"]["content"][0]["text"], "routed to Hello, 世界",
        "{call}"
    );
    let (status, stderr) = p.finish().await;
    assert!(status.success());
    assert!(
        stderr.contains("removed tool from tools/list"),
        "a warning names the tool:\n{stderr}"
    );
    let reqs = mock.requests();
    let call_req = reqs
        .iter()
        .find(|r| r.rpc_method() == Some("tools/call"))
        .unwrap();
    assert_eq!(call_req.header("mcp-protocol-version"), Some("2026-07-28"));
    assert_eq!(call_req.header("mcp-method"), Some("tools/call"));
    assert_eq!(call_req.header("mcp-name"), Some("route"));
    assert_eq!(
        call_req.header("mcp-param-region"),
        Some("=?base64?SGVsbG8sIOS4lueVjA==?=")
    );
    assert!(reqs.iter().all(|r| r.header("mcp-session-id").is_none()));
    assert_eq!(
        mock.count(Method::GET),
        0,
        "no GET stream in the modern era"
    );
    assert_eq!(mock.count(Method::DELETE), 0, "no session to DELETE");
}

/// M-MISMATCH: a call before any tools/list lacks Mcp-Param-Region; on -32020 the proxy
/// refreshes tools/list and retries once with the right headers.
#[tokio::test]
async fn header_mismatch_refreshes_and_retries() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.send(&req(
        1,
        "tools/call",
        json!({"name":"route","arguments":{"region":"eu-west-1"}}),
    ))
    .await;
    let (resp, before) = p.recv_response(1.into()).await;
    assert_eq!(
        resp["result"]["content"][0]["text"], "routed to eu-west-1",
        "{resp}"
    );
    assert!(
        before.is_empty(),
        "the refresh's tools/list is not forwarded: {before:?}"
    );
    let methods: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| r.rpc_method().unwrap_or("").to_owned())
        .collect();
    assert_eq!(methods, ["tools/call", "tools/list", "tools/call"]);
    let retry = mock.requests().pop().unwrap();
    assert_eq!(retry.header("mcp-param-region"), Some("eu-west-1"));
    assert_eq!(retry.body["id"], 1, "the retry keeps the client's id");
    p.finish().await;
}

/// M-VERSION: -32022 is forwarded untouched, with its data, for the client to choose.
#[tokio::test]
async fn unsupported_version_is_forwarded() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    let mut body: Value = serde_json::from_str(&req(4, "tools/list", json!({}))).unwrap();
    body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    p.send(&body.to_string()).await;
    let (resp, _) = p.recv_response(4.into()).await;
    assert_eq!(resp["error"]["code"], -32022);
    assert_eq!(resp["error"]["data"]["supported"], json!(["2026-07-28"]));
    let r = &mock.requests()[0];
    assert_eq!(
        r.header("mcp-protocol-version"),
        Some("2099-01-01"),
        "the header follows _meta"
    );
    p.finish().await;
}

/// M-LISTEN: subscriptions/listen outlives --request-timeout, is forwarded event by event
/// (keep-alive comments ignored), and M-CANCEL: the client's cancellation closes the
/// stream instead of being POSTed.
#[tokio::test]
async fn listen_stream_is_long_lived_and_cancel_closes_it() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url, "--request-timeout", "0.5"]);
    p.send(&req(
        9,
        "subscriptions/listen",
        json!({"notifications":{"toolsListChanged":true},"delayMs":1500}),
    ))
    .await;
    assert_eq!(
        p.recv().await["method"],
        "notifications/subscriptions/acknowledged"
    );
    // Arrives after a quiet period three times the request timeout.
    assert_eq!(p.recv().await["method"], "notifications/tools/list_changed");
    p.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":9}}"#)
        .await;
    mock.wait_for("the listen stream closed", |_| {
        !mock.inner.lock().unwrap().closed_streams.is_empty()
    })
    .await;
    assert_eq!(mock.inner.lock().unwrap().closed_streams, vec![json!(9)]);
    p.send(&req(10, "tools/list", json!({}))).await;
    let (resp, before) = p.recv_response(10.into()).await;
    assert!(resp.get("result").is_some());
    assert!(
        before.is_empty(),
        "no error response for the cancelled listen: {before:?}"
    );
    assert!(
        !mock
            .requests()
            .iter()
            .any(|r| r.rpc_method() == Some("notifications/cancelled"))
    );
    p.finish().await;
}

/// M-CANCEL for an ordinary call, and M-STATELESS: a broken modern stream is not resumed
/// and yields an error.
#[tokio::test]
async fn modern_cancel_and_broken_stream() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.send(&req(1, "tools/call", json!({"name":"hang"}))).await;
    assert_eq!(p.recv().await["method"], "notifications/message");
    p.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#)
        .await;
    mock.wait_for("the call's stream closed", |_| {
        !mock.inner.lock().unwrap().closed_streams.is_empty()
    })
    .await;

    p.send(&req(2, "tools/call", json!({"name":"cut"}))).await;
    let (resp, _) = p.recv_response(2.into()).await;
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ended before the response"),
        "{resp}"
    );
    assert_eq!(
        mock.count(Method::GET),
        0,
        "no Last-Event-ID resumption in the modern era"
    );
    p.finish().await;
}

/// A dual-era server: a legacy client (initialize) and a modern client both work.
#[tokio::test]
async fn legacy_client_on_a_dual_era_server() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    p.send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .await;
    let (resp, _) = p.recv_response(1.into()).await;
    assert!(resp.get("result").is_some());
    let list = mock
        .requests()
        .into_iter()
        .find(|r| r.rpc_method() == Some("tools/list"))
        .unwrap();
    assert!(
        list.header("mcp-method").is_none(),
        "legacy requests carry no modern headers"
    );
    assert_eq!(list.header("mcp-session-id"), Some("session-1"));
    p.finish().await;
}
