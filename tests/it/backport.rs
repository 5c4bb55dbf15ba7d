//! Era translation the other way (M-BACKPORT): a modern (2026-07-28) client before a
//! legacy-only server, which the proxy serves from a legacy session it opens itself.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::Proxy;
use crate::support::mock::{Mock, Options, Recorded};

fn legacy_sessions() -> Options {
    Options {
        legacy_sessions: true,
        ..Default::default()
    }
}

/// The `_meta` a modern client puts on every request.
fn meta(capabilities: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "modern-client", "version": "2"},
        "io.modelcontextprotocol/clientCapabilities": capabilities,
    })
}

/// A modern request with `params` (its `_meta` added to whatever `_meta` they carry).
fn modern(id: Value, method: &str, mut params: Value, capabilities: Value) -> String {
    let mut m = meta(capabilities);
    if let Some(own) = params.get("_meta").and_then(Value::as_object) {
        for (k, v) in own {
            m[k] = v.clone();
        }
    }
    params["_meta"] = m;
    json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}).to_string()
}

fn modern_call(id: Value, tool: &str, extra: Value, capabilities: Value) -> String {
    let mut params = json!({"name": tool, "arguments": {}});
    if let Some(extra) = extra.as_object() {
        for (k, v) in extra {
            params[k] = v.clone();
        }
    }
    modern(id, "tools/call", params, capabilities)
}

fn methods(reqs: &[Recorded]) -> Vec<String> {
    reqs.iter()
        .filter_map(|r| r.rpc_method().map(str::to_owned))
        .collect()
}

/// The first modern request meets "Server not initialized": the proxy opens a legacy
/// session with the client's info and capabilities from `_meta`, sends the request again
/// there without the era's `_meta`, and completes the result for the modern schema.
/// `server/discover` is answered from the initialize; the session ends with DELETE.
#[tokio::test]
async fn modern_client_talks_to_a_legacy_only_server() {
    let mock = Mock::start(legacy_sessions()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.send(&modern(
        1.into(),
        "tools/list",
        json!({"_meta": {"progressToken": "keep-me"}}),
        json!({"elicitation": {}}),
    ))
    .await;
    let (list, _) = p.recv_response(1.into()).await;
    let r = &list["result"];
    assert!(r["tools"].is_array(), "{list}");
    assert_eq!(
        (&r["resultType"], &r["ttlMs"], &r["cacheScope"]),
        (&json!("complete"), &json!(0), &json!("private")),
        "the fields the 2026-07-28 schema requires: {list}"
    );
    p.send(&modern(2.into(), "server/discover", json!({}), json!({})))
        .await;
    let (discover, _) = p.recv_response(2.into()).await;
    let d = &discover["result"];
    assert_eq!(d["supportedVersions"], json!(["2026-07-28"]), "{discover}");
    assert_eq!(
        d["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mock-legacy"
    );
    assert_eq!(d["instructions"], "Ask the mock.");
    assert_eq!(d["capabilities"]["resources"]["subscribe"], true);
    assert_eq!(d["resultType"], "complete");
    p.send(&modern_call(
        3.into(),
        "echo",
        json!({"arguments": {"x": 1}}),
        json!({}),
    ))
    .await;
    let (echo, _) = p.recv_response(3.into()).await;
    assert_eq!(echo["result"]["resultType"], "complete", "{echo}");
    assert_eq!(echo["result"]["content"][0]["text"], r#"{"x":1}"#);
    assert!(
        echo["result"].get("ttlMs").is_none(),
        "not a cacheable result"
    );
    let (status, stderr) = p.finish().await;
    assert!(status.success(), "{stderr}");
    // Finding out the server's era is normal negotiation, not a problem.
    assert!(
        !stderr.contains("WARN") && !stderr.contains("ERROR"),
        "{stderr}"
    );

    let reqs = mock.requests();
    let posts: Vec<&Recorded> = reqs.iter().filter(|r| r.method == Method::POST).collect();
    assert_eq!(
        methods(&reqs),
        [
            "tools/list",
            "initialize",
            "notifications/initialized",
            "tools/list",
            "tools/call"
        ],
        "one failed attempt, then the session; discover stays here"
    );
    assert!(posts[0].header("mcp-session-id").is_none());
    let init = &posts[1].body["params"];
    assert_eq!(init["protocolVersion"], "2025-11-25");
    assert_eq!(
        init["clientInfo"],
        json!({"name":"modern-client","version":"2"})
    );
    assert_eq!(init["capabilities"], json!({"elicitation": {}}));
    for r in &posts[2..] {
        assert_eq!(r.header("mcp-session-id"), Some("session-1"));
        assert_eq!(r.header("mcp-protocol-version"), Some("2025-11-25"));
        assert!(r.header("mcp-method").is_none(), "no modern headers");
    }
    assert_eq!(
        posts[3].body["params"],
        json!({"_meta": {"progressToken": "keep-me"}}),
        "the era's _meta is gone, the client's own stays"
    );
    assert_eq!(
        posts[4].body["params"],
        json!({"name":"echo","arguments":{"x":1}})
    );
    assert_eq!(mock.count(Method::GET), 1, "the session's GET stream");
    assert_eq!(mock.count(Method::DELETE), 1, "the session ends at exit");
}

/// --protocol legacy opens the session at once: no modern attempt first.
#[tokio::test]
async fn forced_legacy_opens_the_session_first() {
    let mock = Mock::start(legacy_sessions()).await;
    let mut p = Proxy::spawn(&[&mock.url, "--protocol", "legacy"]);
    p.send(&modern(1.into(), "tools/list", json!({}), json!({})))
        .await;
    let (list, _) = p.recv_response(1.into()).await;
    assert_eq!(list["result"]["resultType"], "complete", "{list}");
    p.finish().await;
    assert_eq!(
        methods(&mock.requests()),
        ["initialize", "notifications/initialized", "tools/list"]
    );
}

/// A legacy server's questions mid-request become `input_required` rounds: each
/// answered request is sent again with `inputResponses` and the proxy's
/// `requestState`, under an id of its own, and the server's stream is read on. Progress
/// keeps flowing; the final answer comes under the last id.
#[tokio::test]
async fn questions_mid_request_become_input_required_rounds() {
    let mock = Mock::start(legacy_sessions()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    let caps = json!({"elicitation": {}, "sampling": {}});
    let first = json!({"_meta": {"progressToken": "p"}});
    p.send(&modern_call(
        10.into(),
        "ask_twice",
        first.clone(),
        caps.clone(),
    ))
    .await;
    let (round1, before) = p.recv_response(10.into()).await;
    assert_eq!(before[0]["method"], "notifications/progress", "{before:?}");
    let r = &round1["result"];
    assert_eq!(r["resultType"], "input_required", "{round1}");
    assert_eq!(
        r["inputRequests"]["input-1"]["method"],
        "elicitation/create"
    );
    assert_eq!(r["inputRequests"]["input-1"]["params"]["message"], "Name?");
    let state1 = r["requestState"].as_str().unwrap().to_owned();

    let mut again = first.clone();
    again["inputResponses"] = json!({"input-1": {"action":"accept","content":{"name":"Ada"}}});
    again["requestState"] = json!(state1);
    p.send(&modern_call(11.into(), "ask_twice", again, caps.clone()))
        .await;
    let (round2, before) = p.recv_response(11.into()).await;
    assert_eq!(before[0]["params"]["progress"], 1, "{before:?}");
    let r = &round2["result"];
    assert_eq!(
        r["inputRequests"]["input-1"]["method"], "sampling/createMessage",
        "{round2}"
    );
    let state2 = r["requestState"].as_str().unwrap().to_owned();
    assert_ne!(state1, state2);

    let mut last = first;
    last["inputResponses"] =
        json!({"input-1": {"role":"assistant","content":{"type":"text","text":"hi"},"model":"m"}});
    last["requestState"] = json!(state2);
    p.send(&modern_call("last".into(), "ask_twice", last, caps))
        .await;
    let (done, _) = p.recv_response("last".into()).await;
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    let text = done["result"]["content"][0]["text"].as_str().unwrap();
    let answers: Value = serde_json::from_str(text).unwrap();
    assert_eq!(answers[0]["id"], "srv-q0");
    assert_eq!(answers[0]["result"]["content"]["name"], "Ada");
    assert_eq!(answers[1]["id"], "srv-q1");
    assert_eq!(answers[1]["result"]["model"], "m");
    p.finish().await;
    let calls = mock
        .requests()
        .iter()
        .filter(|r| r.rpc_method() == Some("tools/call") && r.header("mcp-session-id").is_some())
        .count();
    assert_eq!(
        calls, 1,
        "the session saw one request; the rounds were the proxy's"
    );
}

/// A declined elicitation goes to the server as the client gave it; a question the
/// client declared no capability for is refused to the server here (-32021), and the
/// client only sees the final answer.
#[tokio::test]
async fn declined_and_undeclared_questions() {
    let mock = Mock::start(legacy_sessions()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.send(&modern_call(
        1.into(),
        "elicit",
        json!({}),
        json!({"elicitation": {}}),
    ))
    .await;
    let (asked, _) = p.recv_response(1.into()).await;
    let state = asked["result"]["requestState"].as_str().unwrap().to_owned();
    let again =
        json!({"inputResponses": {"input-1": {"action": "decline"}}, "requestState": state});
    p.send(&modern_call(
        2.into(),
        "elicit",
        again,
        json!({"elicitation": {}}),
    ))
    .await;
    let (declined, _) = p.recv_response(2.into()).await;
    assert_eq!(
        declined["result"]["content"][0]["text"], r#"{"action":"decline"}"#,
        "{declined}"
    );

    p.send(&modern_call(3.into(), "elicit", json!({}), json!({})))
        .await;
    let (refused, _) = p.recv_response(3.into()).await;
    assert_eq!(refused["result"]["resultType"], "complete", "{refused}");
    assert_eq!(refused["result"]["content"][0]["text"], "null");
    p.finish().await;
    let reqs = mock.requests();
    let refusal = reqs
        .iter()
        .filter(|r| r.body.get("error").is_some())
        .map(|r| &r.body)
        .next()
        .expect("the server got an error for its question");
    assert_eq!(refusal["error"]["code"], -32021, "{refusal}");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .contains("elicitation")
    );
}

/// A `requestState` the proxy does not hold (expired, or from another process) ends
/// the request with an error that says what to do; nothing reaches the server.
#[tokio::test]
async fn an_unknown_request_state_is_an_error() {
    let mock = Mock::start(legacy_sessions()).await;
    let mut p = Proxy::spawn(&[&mock.url, "--protocol", "legacy"]);
    let stale = json!({"inputResponses": {"input-1": {"action":"accept"}}, "requestState": "nope"});
    p.send(&modern_call(
        1.into(),
        "elicit",
        stale,
        json!({"elicitation": {}}),
    ))
    .await;
    let (err, _) = p.recv_response(1.into()).await;
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(msg.contains("requestState is unknown or expired"), "{msg}");
    assert!(msg.contains("send the request again"), "{msg}");
    p.finish().await;
    assert!(!methods(&mock.requests()).contains(&"tools/call".to_owned()));
}

/// A cancelled request is cancelled on the legacy server too (L-CANCEL), and the client
/// gets no answer for it.
#[tokio::test]
async fn cancelling_tells_the_legacy_server() {
    let mock = Mock::start(legacy_sessions()).await;
    let mut p = Proxy::spawn(&[&mock.url, "--protocol", "legacy"]);
    p.send(&modern_call(7.into(), "hang", json!({}), json!({})))
        .await;
    mock.wait_for("the call", |r| {
        r.iter().any(|r| r.rpc_method() == Some("tools/call"))
    })
    .await;
    p.send(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}"#)
        .await;
    mock.wait_for("the cancellation", |r| {
        r.iter().any(|r| {
            r.rpc_method() == Some("notifications/cancelled") && r.body["params"]["requestId"] == 7
        })
    })
    .await;
    p.send(&modern(8.into(), "tools/list", json!({}), json!({})))
        .await;
    let (list, before) = p.recv_response(8.into()).await;
    assert!(list.get("result").is_some());
    assert!(
        before.is_empty(),
        "nothing for the cancelled request: {before:?}"
    );
    p.finish().await;
}

/// `_meta` logLevel becomes `logging/setLevel` on the session (once per change); a
/// request without it hears no log messages, as the 2026-07-28 revision has it.
#[tokio::test]
async fn log_level_is_set_on_the_session() {
    let mock = Mock::start(legacy_sessions()).await;
    let mut p = Proxy::spawn(&[&mock.url, "--protocol", "legacy"]);
    p.send(&modern_call(1.into(), "log", json!({}), json!({})))
        .await;
    let (_, before) = p.recv_response(1.into()).await;
    assert!(before.is_empty(), "no logLevel, no logs: {before:?}");
    let level = json!({"_meta": {"io.modelcontextprotocol/logLevel": "debug"}});
    for id in [2, 3] {
        p.send(&modern_call(id.into(), "log", level.clone(), json!({})))
            .await;
        let (_, before) = p.recv_response(id.into()).await;
        assert_eq!(before[0]["params"]["data"], "hello log", "{before:?}");
    }
    p.finish().await;
    let reqs = mock.requests();
    let set: Vec<&Value> = reqs
        .iter()
        .filter(|r| r.rpc_method() == Some("logging/setLevel"))
        .map(|r| &r.body["params"])
        .collect();
    assert_eq!(
        set,
        [&json!({"level": "debug"})],
        "set once, before the call"
    );
}

/// `subscriptions/listen` is served from the session's GET stream and
/// `resources/subscribe`: the acknowledgement names what the server honours, and each
/// notification the listen asked for reaches the client stamped with its id; nothing
/// else from that stream does. Cancelling the listen unsubscribes.
#[tokio::test]
async fn listen_maps_onto_the_get_stream_and_subscribe() {
    let mock = Mock::start(legacy_sessions()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.send(&modern(0.into(), "tools/list", json!({}), json!({})))
        .await;
    p.recv_response(0.into()).await;
    let filter = json!({"notifications": {"toolsListChanged": true, "promptsListChanged": true,
                                          "resourceSubscriptions": ["file:///a"]}});
    p.send(&modern(
        "listen-1".into(),
        "subscriptions/listen",
        filter,
        json!({}),
    ))
    .await;
    let ack = p.recv().await;
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true, "resourceSubscriptions": ["file:///a"]}),
        "prompts are not announced by this server"
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "listen-1"
    );
    mock.wait_for("the subscription", |r| {
        r.iter().any(|r| {
            r.rpc_method() == Some("resources/subscribe") && r.body["params"]["uri"] == "file:///a"
        })
    })
    .await;
    p.send(&modern_call(5.into(), "poke", json!({}), json!({})))
        .await;
    let mut heard = Vec::new();
    while heard.len() < 3 {
        let v = p.recv().await;
        heard.push(v);
    }
    let (poked, rest): (Vec<Value>, Vec<Value>) =
        heard.into_iter().partition(|v| v.get("id").is_some());
    assert_eq!(poked[0]["result"]["content"][0]["text"], "poked");
    let kinds: Vec<&str> = rest.iter().map(|v| v["method"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "notifications/resources/updated",
            "notifications/tools/list_changed"
        ],
        "{rest:?}"
    );
    assert_eq!(rest[0]["params"]["uri"], "file:///a");
    for n in &rest {
        assert_eq!(
            n["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
            "listen-1"
        );
    }
    p.send(
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"listen-1"}}"#,
    )
    .await;
    mock.wait_for("the unsubscription", |r| {
        r.iter()
            .any(|r| r.rpc_method() == Some("resources/unsubscribe"))
    })
    .await;
    p.send(&modern(6.into(), "tools/list", json!({}), json!({})))
        .await;
    let (_, before) = p.recv_response(6.into()).await;
    assert!(before.is_empty(), "{before:?}");
    p.finish().await;
}

/// The rounds are bounded (10, as for a modern server): a server that keeps asking
/// gets its request cancelled, and the client an error that says why.
#[tokio::test]
async fn endless_questions_are_bounded() {
    let mock = Mock::start(legacy_sessions()).await;
    let mut p = Proxy::spawn(&[&mock.url, "--protocol", "legacy"]);
    let caps = json!({"elicitation": {}});
    let mut extra = json!({});
    for id in 1..=11 {
        p.send(&modern_call(
            id.into(),
            "ask_forever",
            extra.clone(),
            caps.clone(),
        ))
        .await;
        let (answer, _) = p.recv_response(id.into()).await;
        if id <= 10 {
            let state = answer["result"]["requestState"].as_str().unwrap();
            extra = json!({"inputResponses": {"input-1": {"action": "accept", "content": {}}},
                           "requestState": state});
            continue;
        }
        let msg = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("more than 10 times"), "{answer}");
    }
    mock.wait_for("the cancellation", |r| {
        r.iter()
            .any(|r| r.rpc_method() == Some("notifications/cancelled"))
    })
    .await;
    p.finish().await;
}

/// A client that never comes back with its input: after --request-timeout the server's
/// request is cancelled, and a late re-issue gets the expired-state error.
#[tokio::test]
async fn a_question_left_unanswered_expires() {
    let mock = Mock::start(legacy_sessions()).await;
    let mut p = Proxy::spawn(&[&mock.url, "--protocol", "legacy", "--request-timeout", "1"]);
    let caps = json!({"elicitation": {}});
    p.send(&modern_call(1.into(), "elicit", json!({}), caps.clone()))
        .await;
    let (asked, _) = p.recv_response(1.into()).await;
    let state = asked["result"]["requestState"].as_str().unwrap().to_owned();
    mock.wait_for("the cancellation", |r| {
        r.iter().any(|r| {
            r.rpc_method() == Some("notifications/cancelled") && r.body["params"]["requestId"] == 1
        })
    })
    .await;
    let late = json!({"inputResponses": {"input-1": {"action": "decline"}}, "requestState": state});
    p.send(&modern_call(2.into(), "elicit", late, caps)).await;
    let (err, _) = p.recv_response(2.into()).await;
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown or expired"),
        "{err}"
    );
    p.finish().await;
}

/// Over HTTP+SSE (2024-11-05) too: the session is opened for the client, requests go
/// out stripped, results come back complete, and discover is answered here.
#[tokio::test]
async fn a_modern_client_over_http_sse() {
    let mock = Mock::start(Options::default()).await;
    let url = format!("{}/sse", mock.base);
    let mut p = Proxy::spawn(&[&url, "--protocol", "legacy"]);
    p.send(&modern(1.into(), "tools/list", json!({}), json!({})))
        .await;
    let (list, _) = p.recv_response(1.into()).await;
    assert_eq!(list["result"]["resultType"], "complete", "{list}");
    assert_eq!(list["result"]["cacheScope"], "private");
    p.send(&modern(2.into(), "server/discover", json!({}), json!({})))
        .await;
    let (discover, _) = p.recv_response(2.into()).await;
    assert_eq!(
        discover["result"]["supportedVersions"],
        json!(["2026-07-28"]),
        "{discover}"
    );
    assert_eq!(discover["result"]["capabilities"], json!({"tools": {}}));
    assert_eq!(
        discover["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "legacy-mock"
    );
    p.finish().await;
    let reqs = mock.requests();
    let sent: Vec<Recorded> = reqs.into_iter().filter(|r| r.path == "/messages").collect();
    assert_eq!(
        methods(&sent),
        ["initialize", "notifications/initialized", "tools/list"]
    );
    assert!(
        sent[2].body["params"].get("_meta").is_none(),
        "{:?}",
        sent[2].body
    );
}

/// A legacy session that cannot be opened ends the waiting request with one error that
/// says so and why; the next request tries again.
#[tokio::test]
async fn a_session_that_cannot_be_opened_is_an_error() {
    let mock = Mock::start(Options {
        modern_only: true,
        ..Default::default()
    })
    .await;
    let mut p = Proxy::spawn(&[&mock.url, "--protocol", "legacy"]);
    for id in [1, 2] {
        p.send(&modern(id.into(), "tools/list", json!({}), json!({})))
            .await;
        let (err, _) = p.recv_response(id.into()).await;
        let msg = err["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("opening a legacy session")
                && msg.contains("Unsupported protocol version"),
            "{err}"
        );
    }
    p.finish().await;
    assert_eq!(methods(&mock.requests()), ["initialize", "initialize"]);
}
