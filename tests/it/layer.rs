//! The message layer's request bookkeeping: one record per unit in flight, so a unit
//! ends once, with one answer per request (P-DRAIN, P-SSE-BATCH, P-BATCH-DUP).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::mock::{Mock, Options};
use crate::support::{Proxy, call};

fn modern_listen(id: i64) -> String {
    // The mock holds its list-changed notification for a minute: only the acknowledgement
    // comes before EOF, so anything after it would be the proxy's doing.
    json!({"jsonrpc":"2.0","id":id,"method":"subscriptions/listen","params":{
        "notifications":{"toolsListChanged":true},"delayMs":60000,
        "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",
                 "io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"},
                 "io.modelcontextprotocol/clientCapabilities":{}}}})
    .to_string()
}

/// P-DRAIN: stdin EOF while only a `subscriptions/listen` stream is open ends the process
/// at once. The aborted stream used to stay in the task map, so the exit waited out the
/// whole 3 s drain.
#[tokio::test]
async fn eof_with_an_open_listen_stream_exits_at_once() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.send(&modern_listen(9)).await;
    assert_eq!(
        p.recv().await["method"],
        "notifications/subscriptions/acknowledged"
    );
    let eof = Instant::now();
    let rest = p.rest_after_eof().await;
    let took = eof.elapsed();
    assert!(rest.is_empty(), "nothing after EOF: {rest:?}");
    // The drain is 3 s; a prompt exit takes milliseconds. 2 s leaves a loaded machine
    // plenty of room and still fails every time the drain is waited out.
    assert!(
        took < Duration::from_secs(2),
        "exit took {took:?} after EOF with only a listen stream open"
    );
    mock.wait_for("the listen stream closed", |_| {
        !mock.inner.lock().unwrap().closed_streams.is_empty()
    })
    .await;
}

/// P-SSE-BATCH: an HTTP+SSE server answers a batch with one JSON array. Every request in
/// it is released by that array: none is answered a second time, with a timeout error,
/// and EOF finds nothing left to wait for.
#[tokio::test]
async fn http_sse_batch_answered_as_one_array_releases_every_id() {
    let mock = Mock::start(Options::default()).await;
    let url = format!("{}/sse", mock.base);
    let mut p = Proxy::spawn(&[&url, "--transport", "sse", "--request-timeout", "1"]);
    p.initialize("2024-11-05").await;
    p.send(&format!(
        "[{},{}]",
        call(1, "echo", json!({"n": 1})),
        call(2, "echo", json!({"n": 2}))
    ))
    .await;
    let answer = p.recv().await;
    let ids: Vec<&Value> = answer
        .as_array()
        .expect("one array line")
        .iter()
        .map(|m| &m["id"])
        .collect();
    assert_eq!(ids, [&json!(1), &json!(2)]);
    // Past the request timeout, nothing else may come: the drain after EOF would
    // otherwise wait for the timeout and print an error for each id.
    let eof = Instant::now();
    let rest = p.rest_after_eof().await;
    assert!(rest.is_empty(), "each id was answered twice: {rest:?}");
    assert!(
        eof.elapsed() < Duration::from_secs(1),
        "EOF waited for released requests"
    );
}

/// P-BATCH-DUP on a 2025-03-26 session: a batch that repeats the id of a request still in
/// flight has that element refused, and the rest of the batch goes on and is answered.
#[tokio::test]
async fn batch_with_an_in_flight_id_refuses_only_that_element() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-03-26").await;
    p.send(&call(1, "slow", json!({"ms": 800}))).await;
    mock.wait_for("the slow call", |r| {
        r.iter().any(|r| r.body["params"]["name"] == "slow")
    })
    .await;
    p.send(&format!(
        "[{},{}]",
        call(1, "echo", json!({})),
        call(2, "echo", json!({}))
    ))
    .await;
    let dup = p.recv().await;
    assert_eq!(dup["id"], 1);
    assert!(
        dup["error"]["message"]
            .as_str()
            .unwrap()
            .contains("duplicate request id"),
        "{dup}"
    );
    let batch = p.recv().await;
    assert_eq!(
        batch,
        json!([{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"batch:tools/call"}]}}])
    );
    let (slow, before) = p.recv_response(1.into()).await;
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(slow["result"]["content"][0]["text"], "slept 800");
    assert!(p.rest_after_eof().await.is_empty());
    // The server saw the batch without the duplicate.
    let batches: Vec<Value> = mock
        .requests()
        .into_iter()
        .filter(|r| r.body.is_array())
        .map(|r| r.body)
        .collect();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].as_array().unwrap().len(), 1);
    assert_eq!(batches[0][0]["id"], 2);
}

/// P-BATCH-DUP over HTTP+SSE, where batches are sent whole: an id repeated inside one
/// batch is refused for its second use; the first goes on.
#[tokio::test]
async fn http_sse_batch_repeating_an_id_refuses_the_repeat() {
    let mock = Mock::start(Options::default()).await;
    let url = format!("{}/sse", mock.base);
    let mut p = Proxy::spawn(&[&url, "--transport", "sse"]);
    p.initialize("2024-11-05").await;
    let ping = r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#;
    p.send(&format!("[{ping},{ping}]")).await;
    let dup = p.recv().await;
    assert_eq!(dup["id"], 5);
    assert!(
        dup["error"]["message"]
            .as_str()
            .unwrap()
            .contains("duplicate")
    );
    assert_eq!(
        p.recv().await,
        json!([{"jsonrpc":"2.0","id":5,"result":{}}])
    );
    assert!(p.rest_after_eof().await.is_empty());
}
