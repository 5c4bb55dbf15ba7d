//! Test support: a scriptable mock MCP server (Streamable HTTP and HTTP+SSE) on a real
//! loopback socket, and a driver for the real binary with a clean environment.
#![allow(dead_code)]

pub mod mock;
pub mod oauth;
pub mod raw;

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_clerk-mcp-server");
/// Bound on any single wait in a test, so a hang fails instead of blocking CI.
pub const WAIT: Duration = Duration::from_secs(15);
/// Bound on a bulk job (100,000 messages through the proxy and the in-process mock),
/// which takes about 15 s in a debug build on an idle 2-core machine and took 88 s on
/// one loaded to a load average of 5: WAIT leaves no margin. It only turns a hang into
/// a failure, so it is generous.
pub const BULK_WAIT: Duration = Duration::from_secs(300);

/// A loopback port that refuses connections, held as long as this value lives: its
/// socket is bound but never listens, so a connect is refused, and no other test's
/// server can bind the port (nor an outgoing connection take it as its source port) in
/// the meantime. Binding a listener, reading its port, dropping it and then using the
/// port races with every other test that binds 127.0.0.1:0.
pub struct RefusedPort {
    _socket: tokio::net::TcpSocket,
    pub port: u16,
}

impl RefusedPort {
    pub fn new() -> RefusedPort {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = socket.local_addr().unwrap().port();
        RefusedPort {
            _socket: socket,
            port,
        }
    }

    /// `http://127.0.0.1:<port>/mcp`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

pub const INIT_03: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

pub fn init(version: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{version}","capabilities":{{"elicitation":{{}}}},"clientInfo":{{"name":"t","version":"1"}}}}}}"#
    )
}

pub const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

pub fn call(id: i64, tool: &str, args: Value) -> String {
    serde_json::json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}}).to_string()
}

/// With CLERK_MCP_TEST_TRACE_DIR set (scripts/secrets-scan.sh), every spawned proxy also
/// logs at trace level to its own file there, so the logs can be searched for secrets.
fn trace_log_env() -> Vec<(&'static str, String)> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    match std::env::var("CLERK_MCP_TEST_TRACE_DIR") {
        Ok(dir) => {
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let file = format!("{dir}/proxy-{}-{n}.log", std::process::id());
            vec![
                ("CLERK_MCP_LOG_FILE", file),
                ("CLERK_MCP_LOG_LEVEL", "trace".into()),
            ]
        }
        Err(_) => Vec::new(),
    }
}

/// A generous bound on the proxy's peak resident memory (VmHWM) in the fault tests: a
/// debug build idles around 10 MiB, so growth with the size of the abuse shows up here.
pub const MEMORY_BOUND_MIB: u64 = 64;

/// Peak (VmHWM) and current (VmRSS) resident memory of process `pid`, in KiB, read from
/// /proc/<pid>/status. `None` where there is no /proc (not Linux) or the process is gone.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// The real binary, spawned with a clean environment and a temporary HOME.
pub struct Proxy {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    pub home: tempfile::TempDir,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
    stderr_pump: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    pub fn spawn(args: &[&str]) -> Proxy {
        Self::spawn_env(args, &[])
    }

    pub fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let traced = trace_log_env();
        let traced: Vec<(&str, &str)> = traced.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Self::spawn_with(args, &[env, &traced].concat())
    }

    /// Without the CLERK_MCP_TEST_TRACE_DIR log settings: for the tests of the logging
    /// flags themselves.
    pub fn spawn_untraced(args: &[&str], env: &[(&str, &str)]) -> Proxy {
        Self::spawn_with(args, env)
    }

    fn spawn_with(args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let home = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_clear()
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join(".config"))
            .env("RUST_LOG", "debug")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn clerk-mcp-server");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = stderr.clone();
        let stderr_pump = tokio::spawn(async move {
            while let Ok(Some(line)) = err_lines.next_line().await {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Proxy {
            child,
            stdin,
            stdout,
            home,
            stderr,
            stderr_pump: Some(stderr_pump),
        }
    }

    pub async fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
        stdin.flush().await.unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).await.unwrap();
        stdin.flush().await.unwrap();
    }

    /// The next stdout line, parsed. Every line must be one complete JSON-RPC message.
    pub async fn recv(&mut self) -> Value {
        self.recv_within(WAIT).await
    }

    /// `recv`, waiting up to `wait` instead of WAIT.
    pub async fn recv_within(&mut self, wait: Duration) -> Value {
        let line = tokio::time::timeout(wait, self.stdout.next_line())
            .await
            .unwrap_or_else(|_| {
                panic!("no stdout line within {wait:?}; stderr:\n{}", self.stderr())
            })
            .unwrap()
            .unwrap_or_else(|| panic!("stdout closed; stderr:\n{}", self.stderr()));
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"));
        let items = v.as_array().cloned().unwrap_or_else(|| vec![v.clone()]);
        for m in items {
            assert_eq!(m["jsonrpc"], "2.0", "not JSON-RPC: {line}");
        }
        v
    }

    /// Read until the response with `id`, returning it and everything before it.
    pub async fn recv_response(&mut self, id: Value) -> (Value, Vec<Value>) {
        self.recv_response_within(id, WAIT).await
    }

    /// `recv_response`, waiting up to `wait` for each line instead of WAIT.
    pub async fn recv_response_within(&mut self, id: Value, wait: Duration) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let v = self.recv_within(wait).await;
            if v.get("id") == Some(&id) && v.get("method").is_none() {
                return (v, before);
            }
            before.push(v);
        }
    }

    pub async fn initialize(&mut self, version: &str) -> Value {
        self.send(&init(version)).await;
        let (resp, _) = self.recv_response(0.into()).await;
        assert!(resp.get("result").is_some(), "initialize failed: {resp}");
        self.send(INITIALIZED).await;
        resp
    }

    /// Send an initialize that must fail; return its error message.
    pub async fn initialize_error(&mut self, version: &str) -> String {
        self.send(&init(version)).await;
        let (resp, _) = self.recv_response(0.into()).await;
        resp["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("initialize should have failed: {resp}"))
            .to_owned()
    }

    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Close stdin and wait for a clean exit.
    pub async fn finish(mut self) -> (std::process::ExitStatus, String) {
        self.close_stdin();
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("exit in time after stdin EOF")
            .unwrap();
        // stderr reaches EOF when the process is gone: wait for the pump to drain it.
        if let Some(pump) = self.stderr_pump.take() {
            let _ = tokio::time::timeout(WAIT, pump).await;
        }
        (status, self.stderr())
    }

    /// Close stdin and collect whatever stdout still carries until the process ends.
    pub async fn rest_after_eof(&mut self) -> Vec<Value> {
        self.close_stdin();
        let mut out = Vec::new();
        while let Ok(Ok(Some(line))) = tokio::time::timeout(WAIT, self.stdout.next_line()).await {
            out.push(serde_json::from_str(&line).unwrap());
        }
        out
    }

    /// Wait until stderr shows `needle` (the log is the only sign of some decisions).
    pub async fn wait_stderr(&self, needle: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.stderr().contains(needle) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "stderr never showed {needle:?}:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Assert the proxy's peak resident memory (VmHWM) so far is below `mib` MiB, and
    /// return it in KiB. Call it while the process runs (before `finish`). Where /proc
    /// is missing (not Linux) there is nothing to read and the check is skipped.
    pub fn assert_memory_below(&self, mib: u64) -> u64 {
        let pid = self.child.id().expect("the proxy is still running");
        let Some((hwm, rss)) = memory_kib(pid) else {
            if cfg!(target_os = "linux") {
                panic!("cannot read /proc/{pid}/status");
            }
            return 0;
        };
        assert!(
            hwm < mib * 1024,
            "the proxy's peak memory is {hwm} KiB (now {rss} KiB), over the {mib} MiB bound"
        );
        hwm
    }
}

/// Run the binary to completion (a subcommand), with a clean environment whose HOME is
/// `home`, and no stdin.
pub async fn run_in(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    assert!(
        !std::env::temp_dir().starts_with(home),
        "run_in: HOME {} is shared by every test; give the test its own (tempfile::tempdir())",
        home.display()
    );
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .stdin(Stdio::null());
    tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("the command ended in time")
        .unwrap()
}
