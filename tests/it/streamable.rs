//! Streamable HTTP, legacy revisions (H-*, L-*).

use reqwest::Method;
use serde_json::json;

use crate::support::mock::{Mock, Options};
use crate::support::{INITIALIZED, Proxy, call, init};

/// H-POST, H-ACCEPT, H-SID, H-PROTO-HDR, H-ORIGIN, L-INIT, H-DELETE, S-SHUTDOWN.
#[tokio::test]
async fn session_headers_and_delete_on_eof() {
    for version in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let mock = Mock::start(Options::default()).await;
        let mut p = Proxy::spawn(&[&mock.url]);
        let init_resp = p.initialize(version).await;
        assert_eq!(init_resp["result"]["protocolVersion"], version);
        p.send(&call(1, "echo", json!({"x": 1}))).await;
        let (resp, _) = p.recv_response(1.into()).await;
        assert_eq!(resp["result"]["content"][0]["text"], r#"{"x":1}"#);
        let (status, _stderr) = p.finish().await;
        assert!(status.success());
        let reqs = mock.requests();
        let posts: Vec<_> = reqs.iter().filter(|r| r.method == Method::POST).collect();
        assert_eq!(posts.len(), 3, "{posts:#?}");
        for r in &posts {
            assert_eq!(
                r.header("accept"),
                Some("application/json, text/event-stream")
            );
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert!(r.header("origin").is_none());
        }
        // initialize carries no session and no version header; later requests carry both.
        assert!(posts[0].header("mcp-session-id").is_none());
        assert!(posts[0].header("mcp-protocol-version").is_none());
        for r in &posts[1..] {
            assert_eq!(r.header("mcp-session-id"), Some("session-1"));
            assert_eq!(r.header("mcp-protocol-version"), Some(version));
        }
        assert_eq!(posts[1].rpc_method(), Some("notifications/initialized"));
        let deletes: Vec<_> = reqs.iter().filter(|r| r.method == Method::DELETE).collect();
        assert_eq!(deletes.len(), 1, "H-DELETE: one DELETE on shutdown");
        assert_eq!(deletes[0].header("mcp-session-id"), Some("session-1"));
    }
}

/// H-CT, H-SSE-POST: progress and log notifications arrive in order before the result.
#[tokio::test]
async fn sse_response_forwards_notifications_in_order() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    let req = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"progress","arguments":{"n":5},"_meta":{"progressToken":"tok"}}});
    p.send(&req.to_string()).await;
    let (resp, before) = p.recv_response(7.into()).await;
    assert_eq!(resp["result"]["content"][0]["text"], "5 steps");
    let progress: Vec<i64> = before
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| m["params"]["progress"].as_i64().unwrap())
        .collect();
    assert_eq!(progress, vec![1, 2, 3, 4, 5]);
    assert_eq!(before.last().unwrap()["method"], "notifications/message");
    p.finish().await;
}

/// Every reply as SSE (H-CT), for the whole session.
#[tokio::test]
async fn all_sse_server() {
    let mock = Mock::start(Options {
        sse_always: true,
        ..Default::default()
    })
    .await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-06-18").await;
    for i in 1..=20 {
        p.send(&call(i, "echo", json!({"i": i}))).await;
    }
    let mut seen = Vec::new();
    for _ in 1..=20 {
        let v = p.recv().await;
        seen.push(v["id"].as_i64().unwrap());
    }
    seen.sort();
    assert_eq!(seen, (1..=20).collect::<Vec<_>>());
    p.finish().await;
}

/// H-SSE-POST, H-202: a server request mid-stream (elicitation) reaches the client, the
/// client's answer is POSTed back (202, nothing forwarded), and the original call completes.
#[tokio::test]
async fn elicitation_round_trip() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    p.send(&call(3, "elicit", json!({}))).await;
    let ask = p.recv().await;
    assert_eq!(ask["method"], "elicitation/create");
    assert_eq!(ask["id"], "srv-1");
    p.send(
        r#"{"jsonrpc":"2.0","id":"srv-1","result":{"action":"accept","content":{"name":"Ada"}}}"#,
    )
    .await;
    let (resp, _) = p.recv_response(3.into()).await;
    assert!(
        resp["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Ada")
    );
    let answer = mock
        .requests()
        .into_iter()
        .find(|r| r.body.get("id") == Some(&json!("srv-1")))
        .expect("the answer was POSTed");
    assert_eq!(answer.header("mcp-session-id"), Some("session-1"));
    p.finish().await;
}

/// H-PRIME, H-POLL, H-RETRY, H-RESUME: a stream closed after a priming event is resumed
/// with GET + Last-Event-ID, and the response arrives on the resumed stream.
#[tokio::test]
async fn resume_after_stream_cut() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    p.send(&call(4, "cut", json!({}))).await;
    let (resp, _) = p.recv_response(4.into()).await;
    assert_eq!(resp["result"]["content"][0]["text"], "resumed");
    let resume = mock
        .requests()
        .into_iter()
        .find(|r| r.method == Method::GET && r.header("last-event-id").is_some())
        .expect("a resuming GET");
    assert_eq!(resume.header("last-event-id"), Some("ev-4"));
    assert_eq!(resume.header("mcp-session-id"), Some("session-1"));
    assert_eq!(resume.header("accept"), Some("text/event-stream"));
    p.finish().await;
}

/// A stream that ends without a response or an event id: one JSON-RPC error, named.
#[tokio::test]
async fn stream_end_without_response_is_an_error() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    p.send(&call(5, "cut_noresume", json!({}))).await;
    let (resp, before) = p.recv_response(5.into()).await;
    assert_eq!(before[0]["method"], "notifications/message");
    let msg = resp["error"]["message"].as_str().unwrap();
    assert!(msg.contains("ended before the response"), "{msg}");
    // The proxy keeps serving.
    p.send(&call(6, "echo", json!({}))).await;
    assert!(p.recv_response(6.into()).await.0.get("result").is_some());
    p.finish().await;
}

/// H-404: the session expires; the proxy opens a new one (initialize without session id,
/// then initialized) and retries the request once. The client sees no error.
#[tokio::test]
async fn session_expiry_is_transparent() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    p.send(&call(1, "expire", json!({}))).await;
    p.recv_response(1.into()).await;
    p.send(&call(2, "echo", json!({"after": "expiry"}))).await;
    let (resp, before) = p.recv_response(2.into()).await;
    assert!(
        before.is_empty(),
        "the renewed initialize must not reach the client: {before:?}"
    );
    assert_eq!(
        resp["result"]["content"][0]["text"],
        r#"{"after":"expiry"}"#
    );
    let posts: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::POST)
        .collect();
    let methods: Vec<_> = posts
        .iter()
        .map(|r| r.rpc_method().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        methods,
        [
            "initialize",
            "notifications/initialized",
            "tools/call",
            "tools/call",
            "initialize",
            "notifications/initialized",
            "tools/call"
        ]
    );
    assert!(posts[4].header("mcp-session-id").is_none());
    assert_eq!(posts[4].body["params"]["protocolVersion"], "2025-11-25");
    assert_eq!(posts[5].header("mcp-session-id"), Some("session-2"));
    assert_eq!(posts[6].header("mcp-session-id"), Some("session-2"));
    p.finish().await;
    mock.wait_for("DELETE of the new session", |r| {
        r.iter()
            .any(|r| r.method == Method::DELETE && r.header("mcp-session-id") == Some("session-2"))
    })
    .await;
}

/// H-GET: the optional GET stream delivers server notifications; with 405 nothing breaks.
#[tokio::test]
async fn get_stream_delivers_server_messages() {
    let mock = Mock::start(Options {
        get_stream: true,
        ..Default::default()
    })
    .await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    let note = p.recv().await;
    assert_eq!(note["method"], "notifications/tools/list_changed");
    let get = mock
        .requests()
        .into_iter()
        .find(|r| r.method == Method::GET)
        .unwrap();
    assert_eq!(get.header("accept"), Some("text/event-stream"));
    assert_eq!(get.header("mcp-session-id"), Some("session-1"));
    p.finish().await;

    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    mock.wait_for("a GET answered 405", |r| {
        r.iter().any(|r| r.method == Method::GET)
    })
    .await;
    p.send(&call(1, "echo", json!({}))).await;
    assert!(p.recv_response(1.into()).await.0.get("result").is_some());
    let (status, _) = p.finish().await;
    assert!(status.success());
    assert_eq!(mock.count(Method::GET), 1, "405 is final: no retry loop");
}

/// Concurrency, H-MULTI: several POST streams open at once; a slow call does not hold up
/// a ping or a fast call behind it.
#[tokio::test]
async fn slow_call_does_not_block_others() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    p.send(&call(1, "slow", json!({"ms": 3000}))).await;
    p.send(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#).await;
    p.send(&call(3, "echo", json!({}))).await;
    let first = p.recv().await;
    let second = p.recv().await;
    let third = p.recv().await;
    let order: Vec<i64> = [first, second, third]
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(order[2], 1, "the slow call finishes last: {order:?}");
    p.finish().await;
}

/// S-BATCH-03: under 2025-03-26 a batch is POSTed whole; under later revisions its
/// messages are sent one by one (H-BODY).
#[tokio::test]
async fn batches_by_revision() {
    let batch = r#"[{"jsonrpc":"2.0","id":10,"method":"ping"},{"jsonrpc":"2.0","id":11,"method":"tools/list"}]"#;
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-03-26").await;
    p.send(batch).await;
    let v = p.recv().await;
    assert!(v.is_array() || v.get("id").is_some());
    let arr = v.as_array().expect("a batch answer stays a batch");
    assert_eq!(arr.len(), 2);
    assert!(mock.requests().iter().any(|r| r.body.is_array()));
    p.finish().await;

    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-06-18").await;
    p.send(batch).await;
    let mut ids = vec![
        p.recv().await["id"].as_i64().unwrap(),
        p.recv().await["id"].as_i64().unwrap(),
    ];
    ids.sort();
    assert_eq!(ids, vec![10, 11]);
    assert!(
        !mock.requests().iter().any(|r| r.body.is_array()),
        "no batch POST after 2025-03-26"
    );
    p.finish().await;
}

/// L-CANCEL: a legacy cancellation is forwarded to the server as a notification.
#[tokio::test]
async fn legacy_cancel_is_forwarded() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    p.send(&call(9, "hang", json!({}))).await;
    mock.wait_for("the hanging call", |r| {
        r.iter().any(|r| r.body["params"]["name"] == "hang")
    })
    .await;
    p.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":9,"reason":"user"}}"#).await;
    mock.wait_for("the cancellation", |r| {
        r.iter()
            .any(|r| r.rpc_method() == Some("notifications/cancelled"))
    })
    .await;
    p.send(&call(10, "echo", json!({}))).await;
    let (resp, before) = p.recv_response(10.into()).await;
    assert!(resp.get("result").is_some());
    assert!(
        before.is_empty(),
        "no error for the cancelled request: {before:?}"
    );
    p.finish().await;
}

/// The initialize handshake queues later messages until the session exists (L-INIT).
#[tokio::test]
async fn messages_wait_for_the_session() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    // Written back to back, before the initialize response can have arrived.
    p.send(&format!(
        "{}\n{}\n{}",
        init("2025-11-25"),
        INITIALIZED,
        call(1, "echo", json!({}))
    ))
    .await;
    let (resp, _) = p.recv_response(1.into()).await;
    assert!(resp.get("result").is_some(), "{resp}");
    for r in mock
        .requests()
        .iter()
        .filter(|r| r.rpc_method() != Some("initialize") && r.method == Method::POST)
    {
        assert_eq!(r.header("mcp-session-id"), Some("session-1"));
    }
    p.finish().await;
}

/// H-GET, L-INIT: right after the handshake the GET stream is open before the next
/// request goes out, so a server request sent on it (as the TypeScript SDK does for
/// requests unrelated to a POST) reaches the client, and its answer comes back.
#[tokio::test]
async fn get_stream_is_open_before_the_first_request() {
    let mock = Mock::start(Options {
        get_requests: true,
        ..Default::default()
    })
    .await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.send(&format!(
        "{}\n{}\n{}",
        init("2025-11-25"),
        INITIALIZED,
        call(1, "elicit_get", json!({}))
    ))
    .await;
    p.recv_response(0.into()).await;
    let ask = p.recv().await;
    assert_eq!(ask["method"], "elicitation/create", "{ask}");
    p.send(r#"{"jsonrpc":"2.0","id":"srv-get","result":{"action":"decline"}}"#)
        .await;
    let (resp, _) = p.recv_response(1.into()).await;
    assert_eq!(resp["result"]["content"][0]["text"], "\"decline\"");
    p.finish().await;
}
