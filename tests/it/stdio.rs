//! The stdio side (S-*): framing, bad input, shutdown.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::support::mock::{Mock, Options};
use crate::support::{Proxy, call};

/// S-FRAME, S-UTF8: bad lines get -32700/-32600 with the id when readable; the proxy
/// keeps running; CRLF and blank lines are fine.
#[tokio::test]
async fn bad_lines_get_errors_and_the_proxy_goes_on() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    p.send("this is not json").await;
    let e = p.recv().await;
    assert_eq!(e["error"]["code"], -32700);
    assert!(e["id"].is_null());
    p.send(r#"{"id":5,"method":"tools/list"}"#).await; // no "jsonrpc"
    let e = p.recv().await;
    assert_eq!(e["error"]["code"], -32600);
    assert_eq!(e["id"], 5);
    p.send_raw(b"\xff\xfe garbage\n").await;
    let e = p.recv().await;
    assert_eq!(e["error"]["code"], -32700);
    p.send_raw(b"\n   \n\r\n").await; // blank lines: ignored
    p.send_raw(format!("{}\r\n", call(6, "echo", json!({"crlf": true}))).as_bytes())
        .await;
    let (resp, before) = p.recv_response(6.into()).await;
    assert!(before.is_empty(), "blank lines produce nothing: {before:?}");
    assert_eq!(resp["result"]["content"][0]["text"], r#"{"crlf":true}"#);
    let (status, stderr) = p.finish().await;
    assert!(status.success());
    assert!(
        stderr.contains("parse error"),
        "a log line names the problem:\n{stderr}"
    );
}

/// Lines over --max-message-size are rejected without being buffered; the next works.
#[tokio::test]
async fn oversized_line_is_rejected() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url, "--max-message-size", "4096"]);
    p.initialize("2025-11-25").await;
    let big = call(1, "echo", json!({"pad": "x".repeat(100_000)}));
    p.send(&big).await;
    let e = p.recv().await;
    assert_eq!(e["error"]["code"], -32600);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-message-size")
    );
    p.send(&call(2, "echo", json!({}))).await;
    assert!(p.recv_response(2.into()).await.0.get("result").is_some());
    p.finish().await;
}

/// Stdin abuse: 100,000 notifications written as fast as the pipe takes them.
/// Each is its own POST (H-POST). The proxy stays up, every one reaches the server, its
/// peak memory stays bounded (stdin is pushed back while 256 are in flight; before that
/// bound the proxy peaked at 84 to 155 MB here), and a request written after them is
/// answered. About 15 s in a debug build on 2 cores: some 90 µs of proxy CPU per POST,
/// and the in-process mock server's share. So every wait on the flood is BULK_WAIT, not
/// WAIT (15 s would leave no margin on a loaded machine).
#[tokio::test]
async fn notification_flood() {
    use crate::support::BULK_WAIT;
    const N: usize = 100_000;
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn_env(&[&mock.url], &[("RUST_LOG", "info")]);
    p.initialize("2025-11-25").await;
    let started = std::time::Instant::now();
    let mut flood = String::with_capacity(N * 80);
    for i in 0..N {
        flood.push_str(&format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/x","params":{{"n":{i}}}}}"#
        ));
        flood.push('\n');
    }
    // Writing blocks while the proxy pushes stdin back, so it lasts most of the run.
    tokio::time::timeout(BULK_WAIT, p.send_raw(flood.as_bytes()))
        .await
        .unwrap_or_else(|_| panic!("the flood was not read within {BULK_WAIT:?}"));
    let written = started.elapsed();
    p.send(&call(1, "echo", json!({"after": "flood"}))).await;
    let (resp, before) = p.recv_response_within(1.into(), BULK_WAIT).await;
    let answered = started.elapsed();
    assert!(resp.get("result").is_some(), "{resp}");
    assert!(before.is_empty(), "notifications get no answer: {before:?}");
    let notes = || {
        mock.inner
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.rpc_method() == Some("notifications/x"))
            .count()
    };
    let deadline = tokio::time::Instant::now() + BULK_WAIT;
    while notes() < N {
        let changed = mock.changed.notified();
        if notes() >= N {
            break;
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            panic!("only {} of {N} notifications reached the server", notes());
        }
    }
    let all = started.elapsed();
    let hwm = p.assert_memory_below(crate::support::MEMORY_BOUND_MIB);
    eprintln!(
        "flood: written {written:?}, request answered {answered:?}, all delivered {all:?}, VmHWM {hwm} KiB"
    );
    let (status, stderr) = p.finish().await;
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("not delivered"), "{stderr}");
}

/// A 100 MB line, written in 1 MiB chunks: rejected at the line bound with one JSON-RPC
/// error under its own id (S-FRAME), never buffered whole (the proxy's peak memory stays far below the
/// line), and the next request works.
#[tokio::test]
async fn huge_line_is_not_buffered() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url, "--max-message-size", "1048576"]);
    p.initialize("2025-11-25").await;
    let chunk = vec![b'x'; 1 << 20];
    p.send_raw(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"pad":""#)
        .await;
    for _ in 0..100 {
        p.send_raw(&chunk).await;
    }
    p.send_raw(b"\"}}\n").await;
    let e = p.recv().await;
    assert_eq!(e["error"]["code"], -32600, "{e}");
    // Answered under its own id (read from the line's start), so the client is not left
    // waiting for request 1.
    assert_eq!(e["id"], 1, "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("1048576-byte limit (raise it with --max-message-size)"),
        "{msg}"
    );
    // A long line whose id is not near its start still gets its error, with id null.
    p.send_raw(br#"{"jsonrpc":"2.0","method":"tools/call","params":{"pad":""#)
        .await;
    p.send_raw(&chunk).await;
    p.send_raw(b"\"},\"id\":9}\n").await;
    let e = p.recv().await;
    assert_eq!(e["error"]["code"], -32600, "{e}");
    assert!(e["id"].is_null(), "{e}");
    p.send(&call(2, "echo", json!({}))).await;
    assert!(p.recv_response(2.into()).await.0.get("result").is_some());
    let hwm = p.assert_memory_below(crate::support::MEMORY_BOUND_MIB);
    eprintln!("huge line: VmHWM {hwm} KiB");
    let (status, _) = p.finish().await;
    assert!(status.success());
}

/// S-SHUTDOWN: stdin EOF with nothing in flight exits promptly with code 0 and DELETE.
#[tokio::test]
async fn eof_exits_promptly() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    let (status, _) = p.finish().await;
    assert!(status.success());
    assert_eq!(mock.count(reqwest::Method::DELETE), 1);
}

/// SIGTERM also ends the session (H-DELETE) and exits 0.
#[cfg(unix)]
#[tokio::test]
async fn sigterm_deletes_the_session() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    p.send(&call(1, "echo", json!({}))).await;
    p.recv_response(1.into()).await;
    let pid = p.child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), p.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(mock.count(reqwest::Method::DELETE), 1);
}

/// A closed stdout (EPIPE) is a quiet exit, not a crash.
#[tokio::test]
async fn closed_stdout_is_a_quiet_exit() {
    let mock = Mock::start(Options::default()).await;
    let home = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(crate::support::BIN);
    cmd.arg(&mock.url)
        .env_clear()
        .env("HOME", home.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take()); // the client stops reading
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", crate::support::init("2025-11-25")).unwrap();
    let output = tokio::task::spawn_blocking(move || {
        let _ = writeln!(stdin, r#"{{"jsonrpc":"2.0","id":1,"method":"ping"}}"#);
        // Keep stdin open: the proxy must notice stdout, not stdin.
        let out = child.wait_with_output();
        drop(stdin);
        out
    });
    let out = tokio::time::timeout(Duration::from_secs(10), output)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{:?}", out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A duplicate id is refused even while the first request still waits for the
/// handshake (queued, not yet sent): the client sees it in flight either way.
#[tokio::test]
async fn duplicate_id_while_queued_behind_initialize() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mock = Mock::start(Options {
        hold_initialize: Some(gate.clone()),
        ..Options::default()
    })
    .await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.send(&crate::support::init("2025-11-25")).await;
    mock.wait_for("the initialize", |r| {
        r.iter().any(|r| r.rpc_method() == Some("initialize"))
    })
    .await;
    p.send(&call(7, "echo", json!({"first": true}))).await;
    p.send(&call(7, "echo", json!({"second": true}))).await;
    // Answered at once, while the initialize is still held.
    expect_duplicate_refused(&mut p, 7).await;
    gate.add_permits(1);
    assert_eq!(p.recv().await["id"], 0);
    p.send(crate::support::INITIALIZED).await;
    let first = p.recv().await;
    assert_eq!(first["id"], 7);
    assert_eq!(
        first["result"]["content"][0]["text"], r#"{"first":true}"#,
        "{first}"
    );
    let calls = mock
        .requests()
        .iter()
        .filter(|r| r.rpc_method() == Some("tools/call"))
        .count();
    assert_eq!(calls, 1, "only the first request reached the server");
}

/// The next message is the refusal of a second request with `id`.
async fn expect_duplicate_refused(p: &mut Proxy, id: i64) {
    let dup = p.recv().await;
    assert_eq!(dup["id"], id, "{dup}");
    let message = dup["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("duplicate"), "{dup}");
}

/// Stdin abuse: deeply nested JSON, a duplicate id while the first is in flight, a
/// partial last line at EOF. Each gets a JSON-RPC answer and the proxy stays up.
#[tokio::test]
async fn stdin_abuse() {
    let mock = Mock::start(Options::default()).await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    p.send(&nested).await;
    let e = p.recv().await;
    assert!(
        e["error"]["code"] == -32700 || e["error"]["code"] == -32600,
        "{e}"
    );
    p.send(&call(7, "slow", json!({"ms": 1000}))).await;
    p.send(&call(7, "echo", json!({}))).await;
    expect_duplicate_refused(&mut p, 7).await;
    let first = p.recv().await;
    assert_eq!(first["result"]["content"][0]["text"], "slept 1000");
    // A last line without its newline, then EOF: still answered.
    p.send_raw(call(8, "echo", json!({"last": true})).as_bytes())
        .await;
    let rest = p.rest_after_eof().await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(rest[0]["id"], 8);
}

/// MCP clients built on Node (libuv) hand their children socketpairs, not pipes, for
/// stdio; the proxy reads and writes those on its reactor too (S-FRAME over a socket).
#[cfg(unix)]
#[tokio::test]
async fn stdio_over_a_socketpair() {
    use std::io::{BufRead, Write};
    use std::os::unix::net::UnixStream;
    let mock = Mock::start(Options::default()).await;
    let (ours, theirs) = UnixStream::pair().unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(crate::support::BIN)
        .arg(&mock.url)
        .arg("--config-dir")
        .arg(home.path())
        .env_clear()
        .env("HOME", home.path())
        .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
            theirs.try_clone().unwrap(),
        )))
        .stdout(std::process::Stdio::from(std::os::fd::OwnedFd::from(
            theirs,
        )))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let answers = tokio::task::spawn_blocking(move || {
        let mut w = ours.try_clone().unwrap();
        let mut r = std::io::BufReader::new(ours);
        let mut read = || {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            serde_json::from_str::<serde_json::Value>(&line).unwrap()
        };
        writeln!(w, "{}", crate::support::init("2025-11-25")).unwrap();
        let init = read();
        writeln!(w, "{}", crate::support::INITIALIZED).unwrap();
        writeln!(w, "{}", call(1, "echo", json!({"over": "socket"}))).unwrap();
        let echo = read();
        // EOF on a socket is a write shutdown, not a close.
        w.shutdown(std::net::Shutdown::Write).unwrap();
        (init, echo)
    });
    let (init, echo) = tokio::time::timeout(crate::support::WAIT, answers)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(init["id"], 0, "{init}");
    assert_eq!(
        echo["result"]["content"][0]["text"], r#"{"over":"socket"}"#,
        "{echo}"
    );
    let status = tokio::time::timeout(
        crate::support::WAIT,
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert!(status.success(), "{status:?}");
}
