//! Era translation (M-BRIDGE): a legacy client before a modern-only (2026-07-28) server.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::mock::{Mock, Options};
use crate::support::{Proxy, call};

fn modern_only() -> Options {
    Options {
        modern_only: true,
        ..Default::default()
    }
}

/// The JSON-RPC methods the mock saw, in order.
fn rpc_methods(mock: &Mock) -> Vec<String> {
    mock.requests()
        .iter()
        .filter_map(|r| r.rpc_method().map(str::to_owned))
        .collect()
}

/// A modern-only mock, and the proxy before it with a legacy client's handshake done.
async fn translated() -> (Mock, Proxy) {
    let mock = Mock::start(modern_only()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    (mock, p)
}

/// The client's initialize is answered from server/discover, in the version it asked
/// for; initialized and ping are answered here; every request goes out stamped with
/// the modern `_meta` and headers, with no session, GET stream or DELETE.
#[tokio::test]
async fn legacy_client_talks_to_a_modern_only_server() {
    let mock = Mock::start(modern_only()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    let init = p.initialize("2025-06-18").await;
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18", "{init}");
    assert_eq!(init["result"]["serverInfo"]["name"], "mock-modern");
    assert_eq!(init["result"]["capabilities"], json!({"tools":{}}));
    p.send(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).await;
    let (pong, _) = p.recv_response(1.into()).await;
    assert_eq!(pong, json!({"jsonrpc":"2.0","id":1,"result":{}}));
    p.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#)
        .await;
    let (list, _) = p.recv_response(2.into()).await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    // Its invalid x-mcp-header tool is removed, as for a modern client (M-PARAM-INVALID).
    assert_eq!(names, ["route", "hang"]);
    p.send(&call(3, "route", json!({"region": "eu-west"})))
        .await;
    let (routed, _) = p.recv_response(3.into()).await;
    assert_eq!(
        routed["result"]["content"][0]["text"], "routed to eu-west",
        "{routed}"
    );
    let (status, _) = p.finish().await;
    assert!(status.success());
    let reqs = mock.requests();
    let methods: Vec<&str> = reqs.iter().filter_map(|r| r.rpc_method()).collect();
    assert_eq!(
        methods,
        ["initialize", "server/discover", "tools/list", "tools/call"],
        "ping and initialized stay here"
    );
    for r in &reqs[1..] {
        let meta = &r.body["params"]["_meta"];
        assert_eq!(
            meta["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        assert_eq!(meta["io.modelcontextprotocol/clientInfo"]["name"], "t");
        assert_eq!(
            meta["io.modelcontextprotocol/clientCapabilities"],
            json!({"elicitation":{}})
        );
        assert_eq!(r.header("mcp-protocol-version"), Some("2026-07-28"));
        assert!(r.header("mcp-session-id").is_none());
    }
    assert_eq!(reqs[3].header("mcp-param-region"), Some("eu-west"));
    assert_eq!(mock.count(Method::GET), 0);
    assert_eq!(mock.count(Method::DELETE), 0);
}

/// --protocol modern translates from the start: no legacy initialize is tried.
#[tokio::test]
async fn forced_modern_skips_the_legacy_handshake() {
    let mock = Mock::start(modern_only()).await;
    let mut p = Proxy::spawn(&[&mock.url, "--protocol", "modern"]);
    let init = p.initialize("2025-11-25").await;
    assert_eq!(init["result"]["serverInfo"]["name"], "mock-modern");
    p.send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .await;
    let (list, _) = p.recv_response(1.into()).await;
    assert!(list["result"]["tools"].is_array(), "{list}");
    p.finish().await;
    let methods = rpc_methods(&mock);
    assert_eq!(methods, ["server/discover", "tools/list"]);
}

/// A cancelled request of a translated session closes its stream, as in the modern era
/// (M-CANCEL): no notification is POSTed and no error reaches the client.
#[tokio::test]
async fn cancel_in_a_translated_session_closes_the_stream() {
    let (mock, mut p) = translated().await;
    p.send(&call(5, "hang", json!({}))).await;
    assert_eq!(p.recv().await["method"], "notifications/message");
    p.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}}"#)
        .await;
    mock.wait_for("the stream closed", |_| {
        !mock.inner.lock().unwrap().closed_streams.is_empty()
    })
    .await;
    p.send(r#"{"jsonrpc":"2.0","id":6,"method":"ping"}"#).await;
    let (pong, before) = p.recv_response(6.into()).await;
    assert!(pong.get("result").is_some());
    assert!(
        before.is_empty(),
        "no answer for the cancelled call: {before:?}"
    );
    p.finish().await;
    assert!(
        !mock
            .requests()
            .iter()
            .any(|r| r.rpc_method() == Some("notifications/cancelled")),
        "the cancellation is the closed stream"
    );
}

/// MRTR through translation: each `input_required` round becomes server→client requests
/// on stdout (under the proxy's ids); the client's answers go back as `inputResponses`
/// with the server's `requestState` echoed exactly; the client sees one final answer.
/// A declined elicitation is an answer like any other.
#[tokio::test]
async fn input_rounds_become_client_requests() {
    let (mock, mut p) = translated().await;
    p.send(&call(7, "ask", json!({}))).await;
    let ask = p.recv().await;
    assert_eq!(ask["method"], "elicitation/create", "{ask}");
    assert_eq!(ask["params"]["message"], "Name?");
    let ask_id = ask["id"].clone();
    assert!(
        ask_id
            .as_str()
            .unwrap()
            .starts_with("clerk-mcp-server/input/")
    );
    p.send(
        &json!({"jsonrpc":"2.0","id":ask_id,"result":{"action":"accept","content":{"v":"Ada"}}})
            .to_string(),
    )
    .await;
    let ask = p.recv().await;
    assert_eq!(ask["params"]["message"], "Age?", "{ask}");
    p.send(&json!({"jsonrpc":"2.0","id":ask["id"],"result":{"action":"decline"}}).to_string())
        .await;
    let (done, before) = p.recv_response(7.into()).await;
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(
        done["result"]["content"][0]["text"], r#"age answer: {"action":"decline"}"#,
        "{done}"
    );
    p.finish().await;
    let calls: Vec<Value> = mock
        .requests()
        .into_iter()
        .filter(|r| r.rpc_method() == Some("tools/call"))
        .map(|r| r.body)
        .collect();
    assert_eq!(calls.len(), 3, "three rounds");
    assert_eq!(calls[1]["params"]["requestState"], "r1-\u{e9}");
    assert_eq!(
        calls[1]["params"]["inputResponses"]["name"]["content"]["v"],
        "Ada"
    );
    assert!(calls[2]["params"]["inputResponses"].get("name").is_none());
    for c in &calls {
        assert_eq!(c["id"], 7, "the client's id on every round");
    }
}

/// An input request for a capability the client did not declare ends the request with
/// one error naming it (-32021), and nothing is put to the client.
#[tokio::test]
async fn input_for_an_undeclared_capability_is_one_error() {
    let (_mock, mut p) = translated().await;
    p.send(&call(8, "ask_sampling", json!({}))).await;
    let (err, before) = p.recv_response(8.into()).await;
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(err["error"]["code"], -32021, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"sampling\" capability"),
        "{err}"
    );
    assert!(p.rest_after_eof().await.is_empty());
}

/// State-only rounds are retried after a short pause; a client that answers an input
/// request with an error ends the request with an error that says so.
#[tokio::test]
async fn state_only_rounds_and_client_errors() {
    let (_mock, mut p) = translated().await;
    p.send(&call(9, "wait_state", json!({}))).await;
    let (ready, _) = p.recv_response(9.into()).await;
    assert_eq!(ready["result"]["content"][0]["text"], "ready", "{ready}");
    p.send(&call(10, "ask", json!({}))).await;
    let ask = p.recv().await;
    p.send(&json!({"jsonrpc":"2.0","id":ask["id"],"error":{"code":-1,"message":"user closed the dialog"}}).to_string())
        .await;
    let (err, _) = p.recv_response(10.into()).await;
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("with an error: user closed the dialog"),
        "{msg}"
    );
    assert!(p.rest_after_eof().await.is_empty());
}

/// logging/setLevel is answered here and carried as `_meta` logLevel on every later
/// request, as the modern era asks for log messages per request.
#[tokio::test]
async fn set_level_becomes_per_request_metadata() {
    let (mock, mut p) = translated().await;
    p.send(r#"{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"debug"}}"#)
        .await;
    let (ok, _) = p.recv_response(1.into()).await;
    assert_eq!(ok["result"], json!({}));
    p.send(&call(2, "route", json!({"region": "x"}))).await;
    p.recv_response(2.into()).await;
    p.finish().await;
    let reqs = mock.requests();
    assert!(
        !reqs
            .iter()
            .any(|r| r.rpc_method() == Some("logging/setLevel")),
        "answered here"
    );
    let routed = reqs
        .iter()
        .find(|r| r.rpc_method() == Some("tools/call"))
        .unwrap();
    assert_eq!(
        routed.body["params"]["_meta"]["io.modelcontextprotocol/logLevel"],
        "debug"
    );
}

/// resources/subscribe and unsubscribe are answered here and carried by one
/// `subscriptions/listen` stream, whose notifications reach the client as they would on a
/// legacy GET stream (its modern acknowledgement does not); unsubscribing the last
/// resource closes it.
#[tokio::test]
async fn subscriptions_ride_one_listen_stream() {
    let (mock, mut p) = translated().await;
    p.send(
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"file:///a"}}"#,
    )
    .await;
    let (ok, _) = p.recv_response(1.into()).await;
    assert_eq!(ok["result"], json!({}));
    let note = p.recv().await;
    assert_eq!(note["method"], "notifications/tools/list_changed", "{note}");
    let listen = mock
        .requests()
        .into_iter()
        .find(|r| r.rpc_method() == Some("subscriptions/listen"))
        .expect("a listen stream");
    assert_eq!(
        listen.body["params"]["notifications"]["resourceSubscriptions"],
        json!(["file:///a"])
    );
    assert_eq!(
        listen.body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
        "2026-07-28"
    );
    p.send(
        r#"{"jsonrpc":"2.0","id":2,"method":"resources/unsubscribe","params":{"uri":"file:///a"}}"#,
    )
    .await;
    let (ok, _) = p.recv_response(2.into()).await;
    assert_eq!(ok["result"], json!({}));
    mock.wait_for("the listen stream closed", |_| {
        !mock.inner.lock().unwrap().closed_streams.is_empty()
    })
    .await;
    assert_eq!(
        mock.inner.lock().unwrap().closed_streams,
        vec![listen.body["id"].clone()]
    );
    assert!(
        p.rest_after_eof().await.is_empty(),
        "no error for the proxy's own stream"
    );
    let methods = rpc_methods(&mock);
    assert!(
        !methods.iter().any(|m| m.starts_with("resources/")),
        "{methods:?}"
    );
}

/// A list result with `ttlMs` answers the same list request again from the cache while it
/// is fresh; a list-changed notification makes it stale.
#[tokio::test]
async fn fresh_lists_come_from_the_cache() {
    let mock = Mock::start(modern_only()).await;
    mock.inner.lock().unwrap().list_ttl_ms = Some(600_000);
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    let list_calls = || {
        mock.requests()
            .iter()
            .filter(|r| r.rpc_method() == Some("tools/list"))
            .count()
    };
    for id in 1..=3 {
        p.send(&json!({"jsonrpc":"2.0","id":id,"method":"tools/list"}).to_string())
            .await;
        let (list, _) = p.recv_response(id.into()).await;
        assert_eq!(list["result"]["tools"][0]["name"], "route", "{list}");
        assert_eq!(list["id"], id);
    }
    assert_eq!(list_calls(), 1, "two answered from the cache");
    // The listen stream brings notifications/tools/list_changed.
    p.send(
        r#"{"jsonrpc":"2.0","id":9,"method":"resources/subscribe","params":{"uri":"file:///a"}}"#,
    )
    .await;
    p.recv_response(9.into()).await;
    assert_eq!(p.recv().await["method"], "notifications/tools/list_changed");
    p.send(r#"{"jsonrpc":"2.0","id":10,"method":"tools/list"}"#)
        .await;
    p.recv_response(10.into()).await;
    assert_eq!(list_calls(), 2, "stale after the change");
    p.finish().await;
}

/// What was learned is kept: a client that initializes again is translated at once,
/// with no second legacy initialize refused.
#[tokio::test]
async fn the_servers_era_is_learned_once() {
    let (mock, mut p) = translated().await;
    p.initialize("2025-11-25").await;
    p.finish().await;
    let methods = rpc_methods(&mock);
    assert_eq!(
        methods,
        ["initialize", "server/discover", "server/discover"],
        "one refused initialize"
    );
}

/// A modern-only server may refuse the legacy initialize with a 400 that names the
/// version header instead of -32022: that is detected too, and translated.
#[tokio::test]
async fn a_refusal_naming_the_version_header_is_translated() {
    let mock = Mock::start(Options {
        modern_only: true,
        refuse_by_header: true,
        ..Default::default()
    })
    .await;
    let mut p = Proxy::spawn(&[&mock.url]);
    let init = p.initialize("2025-11-25").await;
    assert_eq!(
        init["result"]["serverInfo"]["name"], "mock-modern",
        "{init}"
    );
    p.finish().await;
    let methods = rpc_methods(&mock);
    assert_eq!(
        methods,
        ["initialize", "server/discover"],
        "no HTTP+SSE fallback tried"
    );
}
