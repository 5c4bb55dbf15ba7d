//! Nothing lost, nothing hung: every failure of a request becomes exactly one JSON-RPC
//! error with that request's id and a message naming the fault; the proxy goes on.

use serde_json::{Value, json};

use crate::support::mock::{Mock, Options};
use crate::support::{Proxy, call, init};

async fn error_of(p: &mut Proxy, id: i64, line: &str) -> String {
    p.send(line).await;
    let (resp, _) = p.recv_response(id.into()).await;
    assert!(resp.get("result").is_none(), "expected an error: {resp}");
    resp["error"]["message"].as_str().unwrap().to_owned()
}

/// 4xx/5xx with JSON-RPC bodies (forwarded), HTML bodies (summarized), Retry-After,
/// garbage bodies; the session keeps working after each.
#[tokio::test]
async fn error_statuses_and_bad_bodies() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;

    // A JSON-RPC error for our request, with a 4xx status: forwarded as the response.
    p.send(&call(
        1,
        "status",
        json!({"code": 400, "content_type": "application/json",
        "body": {"jsonrpc":"2.0","id":"$ID","error":{"code":-32602,"message":"bad arguments"}}}),
    ))
    .await;
    let (resp, _) = p.recv_response(1.into()).await;
    assert_eq!(
        resp["error"],
        json!({"code":-32602,"message":"bad arguments"})
    );

    let msg = error_of(&mut p, 2, &call(2, "status", json!({"code": 502, "content_type": "text/html",
        "body": "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"}))).await;
    assert!(
        msg.contains("HTTP 502") && msg.contains("502 Bad Gateway") && !msg.contains("<html"),
        "{msg}"
    );

    let msg = error_of(
        &mut p,
        3,
        &call(
            3,
            "status",
            json!({"code": 503, "retry_after": "5", "body": "overloaded"}),
        ),
    )
    .await;
    assert!(
        msg.contains("HTTP 503") && msg.contains("retry after 5"),
        "{msg}"
    );

    let msg = error_of(
        &mut p,
        4,
        &call(4, "status", json!({"code": 429, "body": "slow down"})),
    )
    .await;
    assert!(
        msg.contains("HTTP 429") && msg.contains("slow down"),
        "{msg}"
    );

    let msg = error_of(
        &mut p,
        5,
        &call(
            5,
            "status",
            json!({"code": 403, "content_type": "application/json",
        "body": {"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Forbidden origin"}}}),
        ),
    )
    .await;
    assert!(
        msg.contains("HTTP 403") && msg.contains("Forbidden origin"),
        "{msg}"
    );

    let msg = error_of(
        &mut p,
        8,
        &call(8, "status", json!({"code": 401, "body": ""})),
    )
    .await;
    assert!(
        msg.contains("HTTP 401") && msg.contains("sign-in") && msg.contains("Authorization"),
        "{msg}"
    );

    let msg = error_of(&mut p, 6, &call(6, "garbage", json!({}))).await;
    assert!(msg.contains("malformed"), "{msg}");

    p.send(&call(7, "echo", json!({"still": "alive"}))).await;
    assert!(p.recv_response(7.into()).await.0.get("result").is_some());
    let (status, stderr) = p.finish().await;
    assert!(status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A server that accepts and never answers: the request times out with a named error,
/// and a ping behind it is answered.
#[tokio::test]
async fn hung_server_times_out() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url, "--request-timeout", "1"]);
    p.initialize("2025-11-25").await;
    p.send(&call(1, "hang", json!({}))).await;
    p.send(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#).await;
    let first = p.recv().await;
    assert_eq!(first["id"], 2, "the ping is not held up");
    let (resp, _) = p.recv_response(1.into()).await;
    let msg = resp["error"]["message"].as_str().unwrap();
    assert!(msg.contains("did not answer within 1 s"), "{msg}");
    p.finish().await;
}

fn free_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/mcp")
}

/// Connection refused at startup: initialize and every later request get errors; the
/// proxy keeps running and exits cleanly.
#[tokio::test]
async fn connection_refused() {
    let mut p = Proxy::spawn(&[&free_port_url()]);
    let msg = error_of(&mut p, 0, &init("2025-11-25")).await;
    assert!(msg.contains("connection refused"), "{msg}");
    let msg = error_of(
        &mut p,
        1,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .await;
    assert!(msg.contains("127.0.0.1"), "{msg}");
    let (status, _) = p.finish().await;
    assert!(status.success());
}

/// DNS failure is named as such.
#[tokio::test]
async fn dns_failure() {
    let mut p = Proxy::spawn(&["https://nonexistent.invalid/mcp"]);
    let msg = error_of(&mut p, 0, &init("2025-11-25")).await;
    assert!(
        msg.contains("DNS") && msg.contains("nonexistent.invalid"),
        "{msg}"
    );
    p.finish().await;
}

/// A TLS failure (here: https to a plain HTTP port) is named, with the --ca-file hint.
#[tokio::test]
async fn tls_failure() {
    let mock = Mock::start(Options::default()).await;
    let url = mock.url.replace("http://", "https://");
    let mut p = Proxy::spawn(&[&url]);
    let msg = error_of(&mut p, 0, &init("2025-11-25")).await;
    assert!(msg.contains("TLS") && msg.contains("--ca-file"), "{msg}");
    p.finish().await;
}

/// A server restart mid-session (sessions lost): 404 → new session → retry (H-404), and
/// the server's own message order is kept.
#[tokio::test]
async fn many_requests_each_answered_once() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    let n = 200;
    let mut batch = String::new();
    for i in 1..=n {
        let tool = match i % 4 {
            0 => "garbage",
            1 => "echo",
            2 => "progress",
            _ => "status",
        };
        batch.push_str(&call(i, tool, json!({"n": 2, "code": 500})));
        batch.push('\n');
    }
    p.send_raw(batch.as_bytes()).await;
    let mut answered = std::collections::HashMap::new();
    while answered.len() < n as usize {
        let v: Value = p.recv().await;
        if let Some(id) = v.get("id").and_then(Value::as_i64) {
            *answered.entry(id).or_insert(0) += 1;
        }
    }
    assert!(
        answered.values().all(|&c| c == 1),
        "exactly one response per request"
    );
    assert!(
        p.rest_after_eof().await.is_empty(),
        "nothing extra after the last response"
    );
}

/// A-TOKEN: credentials go only to the server they are for; a redirect elsewhere is not
/// followed (it would carry the Authorization header and the body along).
#[tokio::test]
async fn redirects_are_not_followed() {
    let mock = Mock::start(Options::default()).await;
    let elsewhere = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url, "--header", "Authorization: Bearer tok-123"]);
    p.initialize("2025-11-25").await;
    let msg = error_of(
        &mut p,
        1,
        &call(
            1,
            "status",
            json!({"code": 307, "location": elsewhere.url, "body": ""}),
        ),
    )
    .await;
    assert!(msg.contains("HTTP 307"), "{msg}");
    p.finish().await;
    assert!(
        elsewhere.requests().is_empty(),
        "the redirect target saw nothing"
    );
}

/// Malformed answers from the server: invalid UTF-8, an answer for an id never asked, an
/// SSE event over the size bound. Each request gets exactly one error, nothing invalid
/// reaches stdout, and the proxy keeps serving.
#[tokio::test]
async fn malformed_server_answers() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url, "--max-message-size", "65536"]);
    p.initialize("2025-11-25").await;
    let msg = error_of(&mut p, 1, &call(1, "bad_utf8", json!({}))).await;
    assert!(msg.contains("UTF-8"), "{msg}");
    p.send(&call(2, "stranger", json!({}))).await;
    let (resp, before) = p.recv_response(2.into()).await;
    assert!(
        before.is_empty(),
        "the stranger's answer was dropped: {before:?}"
    );
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ended before the response")
    );
    let msg = error_of(&mut p, 3, &call(3, "huge_event", json!({"bytes": 200_000}))).await;
    assert!(msg.contains("--max-message-size"), "{msg}");
    p.send(&call(4, "echo", json!({}))).await;
    assert!(p.recv_response(4.into()).await.0.get("result").is_some());
    let (status, stderr) = p.finish().await;
    assert!(status.success());
    assert!(stderr.contains("answers no pending request"), "{stderr}");
}

/// An endless stream of notifications with no response: the client's cancellation ends
/// it (L-CANCEL) and the session goes on; nothing is answered for the cancelled request.
#[tokio::test]
async fn endless_stream_until_cancelled() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    p.send(&call(1, "endless", json!({}))).await;
    for _ in 0..3 {
        assert_eq!(p.recv().await["method"], "notifications/message");
    }
    p.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#)
        .await;
    p.send(&call(2, "echo", json!({}))).await;
    let (resp, before) = p.recv_response(2.into()).await;
    assert!(resp.get("result").is_some());
    assert!(
        before.iter().all(|m| m.get("method").is_some()),
        "no response for id 1: {before:?}"
    );
    p.finish().await;
}
