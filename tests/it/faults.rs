//! Nothing lost, nothing hung: every failure of a request becomes exactly one JSON-RPC
//! error with that request's id and a message naming the fault; the proxy goes on.
//!
//! The fault matrix, and where each row is tested:
//! - error statuses with JSON-RPC, HTML and garbage bodies, Retry-After:
//!   `error_statuses_and_bad_bodies`, `error_status_bodies_table`, `session_404_with_html`
//! - a server that never answers: `hung_server_times_out`
//! - connection refused at startup / mid-session: `connection_refused`,
//!   `connection_refused_mid_session`; DNS and TLS failures: `dns_failure`, `tls_failure`,
//!   `tls::self_signed_needs_ca_file`, `tls::expired_or_wrong_host_certificate`;
//!   a refusing HTTP proxy: `tls::refusing_http_proxy`
//! - connection reset before the headers, mid-JSON body, mid-SSE stream, and a resumed
//!   stream that replays the Last-Event-ID event: `connection_reset`,
//!   `sse_reset_resumes_or_fails`
//! - slow drip, delivered or timed out: `slow_drip`
//! - redirects, malformed answers, endless streams: `redirects_are_not_followed`,
//!   `malformed_server_answers`, `endless_stream_until_cancelled`
//! - stdin abuse (floods, huge lines): `stdio::notification_flood`, `stdio::huge_line`
//! - compressed answers (gzip, brotli, zstd), a compression bomb, compressed SSE:
//!   `compressed_answers`
//! - same-origin redirects (a Starlette mount's `/mcp` → `/mcp/`), followed or refused:
//!   `same_origin_redirects`
//! - a TypeScript-SDK server that lost the session (400, not 404), on POST and on the
//!   GET stream: `session_400_from_a_typescript_server`

use serde_json::{Value, json};

use crate::support::mock::{Mock, Options};
use crate::support::raw::Raw;
use crate::support::{MEMORY_BOUND_MIB, Proxy, call, init};

async fn error_of(p: &mut Proxy, id: i64, line: &str) -> String {
    p.send(line).await;
    let (resp, _) = p.recv_response(id.into()).await;
    assert!(resp.get("result").is_none(), "expected an error: {resp}");
    resp["error"]["message"].as_str().unwrap().to_owned()
}

/// (b) of every row: after the fault, a request is still answered.
async fn still_serving(p: &mut Proxy, id: i64) {
    p.send(&call(id, "echo", json!({"after": "the fault"})))
        .await;
    let (resp, _) = p.recv_response(id.into()).await;
    assert!(
        resp.get("result").is_some(),
        "the proxy goes on after the fault: {resp}"
    );
}

/// The in-flight bound (proxy.rs MAX_IN_FLIGHT, 256) only delays reading stdin: 400
/// concurrent slow requests are all answered, each once.
#[tokio::test]
async fn more_requests_than_the_in_flight_bound() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    let n = 400;
    let mut batch = String::new();
    for i in 1..=n {
        batch.push_str(&call(i, "slow", json!({"ms": 300})));
        batch.push('\n');
    }
    p.send_raw(batch.as_bytes()).await;
    let mut answered = std::collections::HashMap::new();
    while answered.len() < n as usize {
        let v = p.recv().await;
        assert!(v.get("result").is_some(), "{v}");
        *answered.entry(v["id"].as_i64().unwrap()).or_insert(0) += 1;
    }
    assert!(answered.values().all(|&c| c == 1));
    still_serving(&mut p, n + 1).await;
    end_clean(p).await;
}

/// The end of every row: (c) memory stayed bounded, then (a) nothing more comes out at
/// EOF (each request was answered exactly once, and no answer was left behind).
async fn end_clean(mut p: Proxy) {
    p.assert_memory_below(MEMORY_BOUND_MIB);
    let rest = p.rest_after_eof().await;
    assert!(rest.is_empty(), "nothing after the last answer: {rest:?}");
    assert!(!p.stderr().contains("panicked"), "{}", p.stderr());
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
        9,
        &call(9, "status", json!({"code": 500, "body": "internal error"})),
    )
    .await;
    assert!(
        msg.contains("HTTP 500") && msg.contains("internal error"),
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
    p.assert_memory_below(MEMORY_BOUND_MIB);
    let (status, stderr) = p.finish().await;
    assert!(status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// More error statuses, table-driven: a 415 carrying a JSON-RPC error for the request is
/// forwarded as is; 400, 404 and 415 with an HTML page are summarized by its title, never
/// dumped. The server is stateless: with no session id sent, a 404 cannot mean an expired
/// session (H-404), so it is reported like any other status (`session_404_with_html`
/// covers the other case).
#[tokio::test]
async fn error_status_bodies_table() {
    let mock = Mock::start(Options {
        stateless: true,
        ..Options::default()
    })
    .await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    let page = |title: &str| -> Value {
        format!(
            "<!DOCTYPE html>\n<html><head><title>{title}</title></head><body><h1>{title}</h1><p>{}</p></body></html>",
            "lorem ipsum ".repeat(200)
        )
        .into()
    };
    let rpc_error = json!({"jsonrpc":"2.0","id":"$ID","error":{"code":-32600,"message":"use application/json"}});
    /// What the client sees: the server's error forwarded, or a message naming these.
    enum Want {
        Forwarded(Value),
        Summary(&'static str, &'static str),
    }
    let rows = [
        (
            415,
            "application/json",
            rpc_error,
            Want::Forwarded(json!({"code":-32600,"message":"use application/json"})),
        ),
        (
            400,
            "text/html",
            page("400 Bad Request"),
            Want::Summary("HTTP 400", "\"400 Bad Request\""),
        ),
        (
            404,
            "text/html; charset=utf-8",
            page("Not Found"),
            Want::Summary("HTTP 404", "\"Not Found\""),
        ),
        (
            415,
            "text/html",
            page("415 Unsupported Media Type"),
            Want::Summary("HTTP 415", "\"415 Unsupported Media Type\""),
        ),
    ];
    let mut id = 0;
    for (code, content_type, body, want) in rows {
        id += 1;
        p.send(&call(
            id,
            "status",
            json!({"code": code, "content_type": content_type, "body": body}),
        ))
        .await;
        let (resp, before) = p.recv_response(id.into()).await;
        assert!(before.is_empty(), "{before:?}");
        match want {
            Want::Forwarded(error) => assert_eq!(resp["error"], error, "HTTP {code}: {resp}"),
            Want::Summary(status, title) => {
                let msg = resp["error"]["message"].as_str().unwrap();
                for n in [status, title] {
                    assert!(msg.contains(n), "HTTP {code}: {msg:?} lacks {n:?}");
                }
                assert!(
                    msg.contains("HTML page") && !msg.contains('<') && !msg.contains("lorem"),
                    "{msg}"
                );
                assert!(msg.contains(mock.addr.as_str()), "{msg}");
            }
        }
        still_serving(&mut p, 100 + id).await;
    }
    end_clean(p).await;
}

/// H-404 with an HTML page on a session: the 404 means the session is gone, whatever
/// the body. The proxy opens a new session and retries once; a second 404 ends the
/// request with one error naming the repeated 404, and the renewed session serves on.
#[tokio::test]
async fn session_404_with_html() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    let page = "<html><head><title>404 Not Found</title></head><body>nginx</body></html>";
    let msg = error_of(
        &mut p,
        1,
        &call(
            1,
            "status",
            json!({"code": 404, "content_type": "text/html", "body": page}),
        ),
    )
    .await;
    assert!(
        msg.contains("lost the session again") && msg.contains("HTTP 404"),
        "{msg}"
    );
    still_serving(&mut p, 2).await;
    let reqs = mock.requests();
    let count = |m: &str| reqs.iter().filter(|r| r.rpc_method() == Some(m)).count();
    assert_eq!(count("initialize"), 2, "one renewal");
    assert_eq!(count("tools/call"), 3, "the 404 call twice, then the echo");
    end_clean(p).await;
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
    p.assert_memory_below(MEMORY_BOUND_MIB);
    p.finish().await;
}

/// Connection refused at startup: initialize and every later request get errors; the
/// proxy keeps running and exits cleanly.
#[tokio::test]
async fn connection_refused() {
    let refused = crate::support::RefusedPort::new();
    let mut p = Proxy::spawn(&[&refused.url()]);
    let msg = error_of(&mut p, 0, &init("2025-11-25")).await;
    assert!(msg.contains("connection refused"), "{msg}");
    let msg = error_of(
        &mut p,
        1,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .await;
    assert!(msg.contains("127.0.0.1"), "{msg}");
    p.assert_memory_below(MEMORY_BOUND_MIB);
    let (status, _) = p.finish().await;
    assert!(status.success());
}

/// Connection refused mid-session: the server goes away after initialize (its port
/// closes). The first request after that may still meet the pooled connection as it dies
/// (a reset) or find the port closed (refused), by timing; either way it gets one error
/// naming it. The next one is refused for certain. Neither is sent again later. When a
/// server comes back on the same port, without our session, the request after that
/// renews the session (H-404) and is answered.
#[tokio::test]
async fn connection_refused_mid_session() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    still_serving(&mut p, 1).await;
    mock.stop().await;
    let msg = error_of(&mut p, 2, &call(2, "echo", json!({"lost": true}))).await;
    assert!(
        (msg.contains("connection refused") || msg.contains("reset")) && msg.contains(&mock.addr),
        "{msg}"
    );
    let msg = error_of(&mut p, 4, &call(4, "echo", json!({"lost": true}))).await;
    assert!(
        msg.contains("connection refused") && msg.contains(&mock.addr),
        "{msg}"
    );
    let back = Mock::start_on(&mock.addr, Options::default()).await;
    still_serving(&mut p, 3).await;
    let calls: Vec<Value> = back
        .requests()
        .iter()
        .filter(|r| r.rpc_method() == Some("tools/call"))
        .map(|r| r.body["id"].clone())
        .collect();
    // 404 on the old session, then the retry on the new one; never the refused id 2.
    assert_eq!(calls, vec![json!(3), json!(3)], "{:#?}", back.requests());
    end_clean(p).await;
}

/// Connection resets (raw sockets, RST): before any byte of the answer, and in the
/// middle of a JSON body (Content-Length 1000, 20 bytes sent); and that body cut by a
/// plain close (FIN) instead. Each request gets one
/// error naming the broken connection, and is sent once: the server may have run it, so
/// it is not retried. The proxy goes on.
#[tokio::test]
async fn connection_reset() {
    let raw = Raw::start().await;
    let mut p = Proxy::spawn(&[&raw.url]);
    p.initialize("2025-11-25").await;
    let host = raw
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp");
    let msg = error_of(&mut p, 1, &call(1, "reset_head", json!({}))).await;
    assert!(msg.contains(host) && msg.contains("reset"), "{msg}");
    still_serving(&mut p, 2).await;
    let msg = error_of(&mut p, 3, &call(3, "reset_body", json!({}))).await;
    assert!(msg.contains(host) && msg.contains("reset"), "{msg}");
    still_serving(&mut p, 4).await;
    let msg = error_of(&mut p, 5, &call(5, "close_body", json!({}))).await;
    assert!(
        msg.contains(host) && msg.contains("end of file before message length reached"),
        "{msg}"
    );
    still_serving(&mut p, 6).await;
    assert_eq!(raw.calls("reset_head"), 1, "not retried");
    assert_eq!(raw.calls("reset_body"), 1, "not retried");
    assert_eq!(raw.calls("close_body"), 1, "not retried");
    end_clean(p).await;
}

/// A reset in the middle of an SSE stream. With event ids, the proxy resumes with GET +
/// `Last-Event-ID` (H-RESUME, after the server's `retry:`, H-RETRY) and the request
/// completes, the event before the reset forwarded once. Without ids, or when the server
/// refuses the resume (GET 405), the request gets one error naming why.
#[tokio::test]
async fn sse_reset_resumes_or_fails() {
    let raw = Raw::start().await;
    let mut p = Proxy::spawn(&[&raw.url]);
    p.initialize("2025-11-25").await;

    p.send(&call(1, "reset_sse", json!({"ids": true}))).await;
    assert_eq!(p.recv().await["method"], "notifications/message");
    raw.cut();
    let (resp, before) = p.recv_response(1.into()).await;
    assert!(before.is_empty(), "the event is not repeated: {before:?}");
    assert_eq!(resp["result"]["content"][0]["text"], "resumed", "{resp}");
    let resumes: Vec<_> = raw
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.headers.contains_key("last-event-id"))
        .collect();
    assert_eq!(resumes.len(), 1, "{resumes:?}");
    assert_eq!(resumes[0].headers["last-event-id"], "ev-1");
    assert_eq!(resumes[0].headers["mcp-session-id"], "raw-session-1");

    // H-REPLAY: a server that replays the event named in Last-Event-ID: it reaches the
    // client once.
    p.send(&call(5, "reset_sse", json!({"ids": true, "replay": true})))
        .await;
    assert_eq!(p.recv().await["method"], "notifications/message");
    raw.cut();
    let (resp, before) = p.recv_response(5.into()).await;
    assert!(
        before.is_empty(),
        "the replayed event is dropped: {before:?}"
    );
    assert_eq!(resp["result"]["content"][0]["text"], "resumed", "{resp}");

    p.send(&call(2, "reset_sse", json!({"ids": true, "park": false})))
        .await;
    assert_eq!(p.recv().await["method"], "notifications/message");
    raw.cut();
    let (resp, _) = p.recv_response(2.into()).await;
    let msg = resp["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("ended before the response")
            && msg.contains("refused to resume it (HTTP 405)"),
        "{msg}"
    );

    p.send(&call(3, "reset_sse", json!({}))).await;
    assert_eq!(p.recv().await["method"], "notifications/message");
    raw.cut();
    let (resp, _) = p.recv_response(3.into()).await;
    let msg = resp["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("ended before the response") && msg.contains("reset"),
        "{msg}"
    );
    assert_eq!(raw.calls("reset_sse"), 4, "each POSTed once, never re-sent");
    still_serving(&mut p, 4).await;
    end_clean(p).await;
}

/// Slow drip. One byte per 100 ms (3.6 s in all) is delivered intact even with a 2.5 s
/// --request-timeout: the timeout is on silence, and every byte is a sign of life. (The
/// gaps are 25 times shorter than the timeout, so a loaded machine's scheduling delays
/// do not add up to it; the whole body still takes longer than the timeout.) A drip that
/// stalls 8 s mid-body ends in one error naming the timeout as configured (a fraction,
/// as given), and the proxy goes on.
#[tokio::test]
async fn slow_drip() {
    let raw = Raw::start().await;
    let mut p = Proxy::spawn(&[&raw.url, "--request-timeout", "2.5"]);
    p.initialize("2025-11-25").await;
    let started = std::time::Instant::now();
    p.send(&call(1, "drip", json!({"ms": 100}))).await;
    let (resp, _) = p.recv_response(1.into()).await;
    assert_eq!(resp, json!({"jsonrpc":"2.0","id":1,"result":{}}));
    assert!(started.elapsed() > std::time::Duration::from_secs(3));

    let msg = error_of(
        &mut p,
        2,
        &call(
            2,
            "drip",
            json!({"ms": 1, "stall_at": 10, "stall_ms": 8000}),
        ),
    )
    .await;
    assert!(
        msg.contains("did not answer within 2.5 s (--request-timeout)"),
        "{msg}"
    );
    still_serving(&mut p, 3).await;
    end_clean(p).await;
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
    let msg = error_of(&mut p, 1, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).await;
    assert!(
        msg.contains("DNS"),
        "the next request is answered too: {msg}"
    );
    p.assert_memory_below(MEMORY_BOUND_MIB);
    p.finish().await;
}

/// https:// to a plain-HTTP port is named as such, with the URL to use instead (an
/// untrusted certificate, with its --ca-file hint, is in tls.rs).
#[tokio::test]
async fn tls_failure() {
    let mock = Mock::start(Options::default()).await;
    let url = mock.url.replace("http://", "https://");
    let mut p = Proxy::spawn(&[&url]);
    let msg = error_of(&mut p, 0, &init("2025-11-25")).await;
    assert!(
        msg.contains("TLS handshake in plain HTTP") && msg.contains("use an http:// URL"),
        "{msg}"
    );
    let msg = error_of(&mut p, 1, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).await;
    assert!(
        msg.contains("plain HTTP"),
        "the next request is answered too: {msg}"
    );
    p.assert_memory_below(MEMORY_BOUND_MIB);
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
    p.assert_memory_below(MEMORY_BOUND_MIB);
    assert!(
        p.rest_after_eof().await.is_empty(),
        "nothing extra after the last response"
    );
}

/// A-TOKEN: credentials go only to the server they are for; a redirect to another origin
/// is not followed (it would carry the Authorization header and the body along), and the
/// error names where it pointed.
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
    assert!(
        msg.contains(&format!(
            "redirected to {}, another origin; not followed",
            elsewhere.url
        )),
        "{msg}"
    );
    still_serving(&mut p, 2).await;
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
    p.assert_memory_below(MEMORY_BOUND_MIB);
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
    p.assert_memory_below(MEMORY_BOUND_MIB);
    p.finish().await;
}

/// H-404-400: a TypeScript-SDK server that lost the session (a restart) answers 400
/// "Bad Request: No valid session ID provided", not 404. A request that meets it opens a
/// new session and is retried once; the GET stream that meets it does the same; any
/// other 400 is reported and never retried.
#[tokio::test]
async fn session_400_from_a_typescript_server() {
    let mock = Mock::start(Options {
        ts_lost_session: true,
        get_requests: true,
        ..Default::default()
    })
    .await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    // The GET stream reconnects on the forgotten session, gets the 400, and renews it.
    p.send(&call(1, "expire", json!({}))).await;
    p.recv_response(1.into()).await;
    mock.wait_for("a new session opened for the GET stream", |r| {
        r.iter()
            .filter(|r| r.rpc_method() == Some("initialize"))
            .count()
            == 2
    })
    .await;
    still_serving(&mut p, 2).await;
    p.finish().await;

    // A request meets it (no GET stream to notice first): renewed, retried once.
    let mock = Mock::start(Options {
        ts_lost_session: true,
        ..Default::default()
    })
    .await;
    let inits = || {
        mock.requests()
            .iter()
            .filter(|r| r.rpc_method() == Some("initialize"))
            .count()
    };
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    p.send(&call(3, "expire", json!({}))).await;
    p.recv_response(3.into()).await;
    p.send(&call(4, "echo", json!({"x": 1}))).await;
    let (resp, _) = p.recv_response(4.into()).await;
    assert!(resp.get("result").is_some(), "{resp}");
    assert_eq!(inits(), 2);
    let echoes = mock
        .requests()
        .iter()
        .filter(|r| r.body["params"]["name"] == "echo")
        .count();
    assert_eq!(echoes, 2, "the 400, then the retry on the new session");
    let before = inits();
    // Another 400: reported as it is, no new session.
    let body = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: Something else"}}"#;
    let msg = error_of(
        &mut p,
        5,
        &call(
            5,
            "status",
            json!({"code": 400, "content_type": "application/json", "body": body}),
        ),
    )
    .await;
    assert!(
        msg.contains("HTTP 400") && msg.contains("Something else"),
        "{msg}"
    );
    assert_eq!(inits(), before);
    still_serving(&mut p, 6).await;
    p.assert_memory_below(MEMORY_BOUND_MIB);
    p.finish().await;
}

/// H-REDIRECT: a 307 or 308 on the same origin (a Starlette or FastMCP mount answers
/// `/mcp` with 307 to `/mcp/`) is followed with the method and body kept; the new URL is
/// used from then on and reported once, with what to put in the config. 301 to 303 would
/// turn a POST into a GET: refused, naming the URL to configure.
#[tokio::test]
async fn same_origin_redirects() {
    for code in [307, 308] {
        let mock = Mock::start(Options {
            slash_redirect: Some(code),
            get_stream: true,
            ..Default::default()
        })
        .await;
        let mut p = Proxy::spawn(&[&mock.url]);
        p.initialize("2025-11-25").await;
        for id in 1..=3 {
            still_serving(&mut p, id).await;
        }
        p.assert_memory_below(MEMORY_BOUND_MIB);
        let (status, stderr) = p.finish().await;
        assert!(status.success());
        let posts = mock
            .inner
            .lock()
            .unwrap()
            .redirected
            .iter()
            .filter(|m| **m == reqwest::Method::POST)
            .count();
        assert_eq!(
            posts, 1,
            "{code}: the new URL is kept after the first redirect"
        );
        assert_eq!(stderr.matches("redirects to").count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!("Put {}/ in the client's config", mock.url)),
            "{stderr}"
        );
        let echoes = mock
            .requests()
            .iter()
            .filter(|r| r.body["params"]["name"] == "echo")
            .count();
        assert_eq!(echoes, 3, "{code}: each POST arrived once, with its body");
    }
    for code in [301, 302, 303] {
        let mock = Mock::start(Options {
            slash_redirect: Some(code),
            ..Default::default()
        })
        .await;
        let mut p = Proxy::spawn(&[&mock.url]);
        let msg = p.initialize_error("2025-11-25").await;
        assert!(
            msg.contains(&format!("HTTP {code}"))
                && msg.contains("turn it into a GET")
                && msg.contains(&format!("put {}/ in the client's config", mock.url)),
            "{msg}"
        );
        p.finish().await;
    }
}

/// H-COMPRESS: `Accept-Encoding` is sent, and gzip, brotli and zstd answers are decoded.
/// The size bound applies to the decoded message, so a compression bomb is refused with
/// an error; a compressed SSE stream is decoded as it arrives, event by event.
#[tokio::test]
async fn compressed_answers() {
    let raw = Raw::start().await;
    let mut p = Proxy::spawn(&[&raw.url, "--max-message-size", "1048576"]);
    p.initialize("2025-11-25").await;
    let accept = raw.seen()[0]
        .headers
        .get("accept-encoding")
        .cloned()
        .unwrap_or_default();
    for encoding in ["gzip", "br", "zstd"] {
        assert!(accept.contains(encoding), "{accept}");
    }
    for (id, encoding) in (1..).zip(["gzip", "br", "zstd"]) {
        p.send(&call(
            id,
            "compressed",
            json!({"encoding": encoding, "pad": 1000}),
        ))
        .await;
        let (resp, _) = p.recv_response(id.into()).await;
        let text = resp["result"]["content"][0]["text"].as_str().unwrap_or("");
        assert!(text.contains(encoding) && text.len() > 1000, "{resp}");
    }
    // 8 MiB of padding is a few KiB compressed: the decoded size is what counts.
    let msg = error_of(
        &mut p,
        10,
        &call(
            10,
            "compressed",
            json!({"encoding": "gzip", "pad": 8 << 20}),
        ),
    )
    .await;
    assert!(msg.contains("exceeded the 1048576-byte limit"), "{msg}");
    p.send(&call(11, "gzip_sse", json!({}))).await;
    let first = p.recv().await;
    assert_eq!(first["method"], "notifications/message", "{first}");
    raw.cut();
    let (resp, _) = p.recv_response(11.into()).await;
    assert_eq!(
        resp["result"]["content"][0]["text"], "after the event",
        "{resp}"
    );
    still_serving(&mut p, 12).await;
    p.assert_memory_below(MEMORY_BOUND_MIB);
    p.finish().await;
}
