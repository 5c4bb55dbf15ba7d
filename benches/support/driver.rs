//! The two ways the benchmark talks MCP: straight over HTTP with reqwest (`Direct`, the
//! physical limit of the message pattern) and through a bridge process's stdio (`Stdio`:
//! clerk-mcp-server or mcp-remote). Both give the same `Reply` for a request, so every
//! measurement and check is written once.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio as ProcStdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::{Bytes, BytesMut};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{Notify, Semaphore, oneshot};

pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// The answer to one request.
pub struct Reply {
    /// The response message, as received.
    pub line: Bytes,
    /// When its last byte was read.
    pub at: Instant,
    /// `notifications/progress` values for this request, in arrival order.
    pub progress: Vec<f64>,
    pub is_error: bool,
}

// ---------------------------------------------------------------------------------------
// Messages.

pub fn initialize(tag: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{PROTOCOL_VERSION}","capabilities":{{}},"clientInfo":{{"name":"{tag}","version":"1.0.0"}}}}}}"#
    )
}

pub const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

pub fn echo(id: u64) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"i":{id}}}}}}}"#
    )
}

pub fn blob(id: u64, n: usize) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"blob","arguments":{{"n":{n}}}}}}}"#
    )
}

pub fn sse_mode(id: u64, on: bool) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"sse_mode","arguments":{{"on":{on}}}}}}}"#
    )
}

pub fn stream(id: u64, n: usize) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"stream","arguments":{{"n":{n}}},"_meta":{{"progressToken":{id}}}}}}}"#
    )
}

// ---------------------------------------------------------------------------------------
// Classifying a received message (the same probe for every target).

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(default)]
    params: Option<ProgressParams>,
    #[serde(default)]
    result: Option<IgnoredAny>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ProgressParams {
    #[serde(rename = "progressToken", default)]
    token: Option<u64>,
    #[serde(default)]
    progress: Option<f64>,
}

pub enum Kind {
    Response {
        id: u64,
        is_error: bool,
    },
    Progress {
        token: u64,
        value: f64,
    },
    /// Another notification (logging and the like): not expected, but legal.
    Notification,
    /// A request from the server: never expected here.
    Request(String),
}

pub fn classify(line: &[u8]) -> Result<Kind> {
    let p: Probe<'_> = serde_json::from_slice(line).map_err(|e| {
        anyhow!(
            "malformed message ({e}): {}",
            String::from_utf8_lossy(&line[..line.len().min(200)])
        )
    })?;
    match (p.method, p.id) {
        (Some(m), None) if m == "notifications/progress" => {
            let params = p.params.context("progress without params")?;
            Ok(Kind::Progress {
                token: params.token.context("progress without a numeric token")?,
                value: params.progress.context("progress without a value")?,
            })
        }
        (Some(_), None) => Ok(Kind::Notification),
        (Some(m), Some(_)) => Ok(Kind::Request(m.into_owned())),
        (None, Some(id)) => {
            let id: u64 = id.get().parse().map_err(|_| {
                anyhow!(
                    "response with a non-numeric id {} (ours are numbers)",
                    id.get()
                )
            })?;
            if p.result.is_none() && p.error.is_none() {
                bail!("response {id} with neither result nor error");
            }
            Ok(Kind::Response {
                id,
                is_error: p.error.is_some(),
            })
        }
        (None, None) => bail!(
            "message with neither method nor id: {}",
            String::from_utf8_lossy(&line[..line.len().min(200)])
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Checks on replies.

pub fn check_ok(reply: &Reply) -> Result<()> {
    if reply.is_error {
        bail!(
            "error response: {}",
            String::from_utf8_lossy(&reply.line[..reply.line.len().min(300)])
        );
    }
    Ok(())
}

pub fn check_echo(reply: &Reply, id: u64) -> Result<()> {
    #[derive(Deserialize)]
    struct R {
        result: Res,
    }
    #[derive(Deserialize)]
    struct Res {
        #[serde(rename = "structuredContent")]
        sc: Echoed,
    }
    #[derive(Deserialize)]
    struct Echoed {
        i: u64,
    }
    check_ok(reply)?;
    let r: R = serde_json::from_slice(&reply.line).context("echo result")?;
    if r.result.sc.i != id {
        bail!(
            "response to id {id} carries the echo of request {}",
            r.result.sc.i
        );
    }
    Ok(())
}

/// The text of a result's first content item.
pub fn result_text(reply: &Reply) -> Result<String> {
    #[derive(Deserialize)]
    struct R<'a> {
        #[serde(borrow)]
        result: Res<'a>,
    }
    #[derive(Deserialize)]
    struct Res<'a> {
        #[serde(borrow)]
        content: Vec<Item<'a>>,
    }
    #[derive(Deserialize)]
    struct Item<'a> {
        #[serde(borrow)]
        text: Cow<'a, str>,
    }
    check_ok(reply)?;
    let r: R<'_> = serde_json::from_slice(&reply.line).context("tool result")?;
    let item = r
        .result
        .content
        .into_iter()
        .next()
        .context("empty content")?;
    Ok(item.text.into_owned())
}

pub fn sha256_hex(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// The client.

pub enum Client {
    Direct(Arc<Direct>),
    Stdio(Box<Stdio>),
}

impl Client {
    pub async fn call(&self, id: u64, line: String, timeout: Duration) -> Result<Reply> {
        match self {
            Client::Direct(d) => match tokio::time::timeout(timeout, d.post(line)).await {
                Err(_) => bail!("no response to id {id} within {timeout:?}"),
                Ok(r) => {
                    let reply = r?.context("no response body")?;
                    match classify(&reply.line)? {
                        Kind::Response { id: got, .. } if got == id => Ok(reply),
                        Kind::Response { id: got, .. } => {
                            bail!("asked {id}, got the response to {got}")
                        }
                        _ => bail!("the answer is not a response"),
                    }
                }
            },
            Client::Stdio(s) => s.call(id, line, timeout).await,
        }
    }

    pub async fn notify(&self, line: String) -> Result<()> {
        match self {
            Client::Direct(d) => d.post(line).await.map(drop),
            Client::Stdio(s) => s.write(line).await,
        }
    }

    /// `n` echo calls with ids `first..first+n`, `window` in flight at once. Returns the
    /// time from the first request sent to the last response read.
    pub async fn bulk(
        &self,
        first: u64,
        n: u64,
        window: usize,
        timeout: Duration,
    ) -> Result<Duration> {
        match self {
            Client::Direct(d) => d.clone().bulk(first, n, window, timeout).await,
            Client::Stdio(s) => s.bulk(first, n, window, timeout).await,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Direct: HTTP keep-alive from this process.

pub struct Direct {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    pub session: String,
}

impl Direct {
    /// A fresh client (new pool, new connection) and the initialize exchange.
    pub async fn connect(url: &str, tag: &str) -> Result<(Direct, Reply)> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .no_proxy()
            .build()?;
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let resp = client
            .post(url)
            .headers(headers.clone())
            .body(initialize(tag))
            .send()
            .await?;
        let session = resp
            .headers()
            .get("mcp-session-id")
            .context("no Mcp-Session-Id on the initialize answer")?
            .clone();
        let reply = read_reply(resp).await?.context("empty initialize answer")?;
        headers.insert("mcp-session-id", session.clone());
        headers.insert(
            "mcp-protocol-version",
            HeaderValue::from_static(PROTOCOL_VERSION),
        );
        let direct = Direct {
            client,
            url: url.to_owned(),
            headers,
            session: session.to_str()?.to_owned(),
        };
        Ok((direct, reply))
    }

    async fn post(&self, body: String) -> Result<Option<Reply>> {
        let resp = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await?;
        read_reply(resp).await
    }

    async fn bulk(
        self: Arc<Self>,
        first: u64,
        n: u64,
        window: usize,
        timeout: Duration,
    ) -> Result<Duration> {
        let next = Arc::new(AtomicU64::new(first));
        let end = first + n;
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..window {
            let d = self.clone();
            let next = next.clone();
            tasks.spawn(async move {
                loop {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    if id >= end {
                        return Ok::<(), anyhow::Error>(());
                    }
                    let reply = d.post(echo(id)).await?.context("empty answer")?;
                    match classify(&reply.line)? {
                        Kind::Response {
                            id: got,
                            is_error: false,
                        } if got == id => {}
                        _ => bail!(
                            "bad answer to {id}: {}",
                            String::from_utf8_lossy(&reply.line)
                        ),
                    }
                }
            });
        }
        let all = async {
            while let Some(r) = tasks.join_next().await {
                r??;
            }
            Ok::<(), anyhow::Error>(())
        };
        tokio::time::timeout(timeout, all)
            .await
            .map_err(|_| anyhow!("throughput run did not finish within {timeout:?}"))??;
        Ok(t0.elapsed())
    }

    /// DELETE the session; the time it took.
    pub async fn delete(&self) -> Result<Duration> {
        let t0 = Instant::now();
        let resp = self
            .client
            .delete(&self.url)
            .headers(self.headers.clone())
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("DELETE answered {}", resp.status());
        }
        Ok(t0.elapsed())
    }
}

/// Read one POST's answer: JSON, an SSE stream (progress collected, up to the response),
/// or nothing (202).
async fn read_reply(mut resp: reqwest::Response) -> Result<Option<Reply>> {
    let status = resp.status();
    if status == reqwest::StatusCode::ACCEPTED {
        return Ok(None);
    }
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        bail!("HTTP {status}: {body}");
    }
    let sse = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    if !sse {
        let body = resp.bytes().await?;
        let at = Instant::now();
        let is_error = matches!(classify(&body)?, Kind::Response { is_error: true, .. });
        return Ok(Some(Reply {
            line: body,
            at,
            progress: Vec::new(),
            is_error,
        }));
    }
    let mut parser = MiniSse::default();
    let mut events = Vec::new();
    let mut progress = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        parser.push(&chunk, &mut events);
        for data in events.drain(..) {
            match classify(&data)? {
                Kind::Progress { value, .. } => progress.push(value),
                Kind::Response { is_error, .. } => {
                    return Ok(Some(Reply {
                        line: Bytes::from(data),
                        at: Instant::now(),
                        progress,
                        is_error,
                    }));
                }
                Kind::Notification => {}
                Kind::Request(m) => bail!("unexpected server request {m}"),
            }
        }
    }
    bail!("the SSE stream ended without a response")
}

/// Just enough SSE for the mock's streams (`\n` line ends, `data:` lines), linear in the
/// input however it is chunked.
#[derive(Default)]
struct MiniSse {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for the blank line.
    scanned: usize,
}

impl MiniSse {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<Vec<u8>>) {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        loop {
            let from = self.scanned.max(start + 1) - 1;
            match memchr::memmem::find(&self.buf[from..], b"\n\n") {
                Some(i) => {
                    let end = from + i;
                    let mut data = Vec::new();
                    let mut first = true;
                    for line in self.buf[start..end].split(|&b| b == b'\n') {
                        if let Some(v) = line.strip_prefix(b"data:") {
                            if !first {
                                data.push(b'\n');
                            }
                            first = false;
                            data.extend_from_slice(v.strip_prefix(b" ").unwrap_or(v));
                        }
                    }
                    if !first {
                        out.push(data);
                    }
                    start = end + 2;
                    self.scanned = start;
                }
                None => {
                    self.scanned = self.buf.len();
                    break;
                }
            }
        }
        if start > 0 {
            self.buf.drain(..start);
            self.scanned -= start;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Stdio: a bridge process.

pub struct Stdio {
    child: tokio::sync::Mutex<Child>,
    pub pid: u32,
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    shared: Arc<Shared>,
    pub stderr_path: PathBuf,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<HashMap<u64, Waiter>>,
    /// Everything that should not have happened.
    anomalies: Mutex<Vec<String>>,
    closed: AtomicBool,
    notifications: AtomicU64,
    /// The reader stops reading the bridge's stdout while set (a stuck client).
    paused: AtomicBool,
    resume: Notify,
}

enum Waiter {
    One {
        tx: oneshot::Sender<Reply>,
        progress: Vec<f64>,
    },
    Bulk(Arc<Bulk>),
}

struct Bulk {
    window: Semaphore,
    done: AtomicU64,
    errors: Mutex<Vec<String>>,
    target: u64,
    finished: Notify,
}

impl Shared {
    fn anomaly(&self, what: String) {
        let mut a = self.anomalies.lock().unwrap();
        if a.len() < 50 {
            a.push(what);
        }
    }
}

impl Stdio {
    /// Spawn `cmd` with piped stdin/stdout and stderr to `stderr_path`.
    pub fn spawn(mut cmd: Command, stderr_path: PathBuf) -> Result<Stdio> {
        let err = std::fs::File::create(&stderr_path)?;
        cmd.stdin(ProcStdio::piped())
            .stdout(ProcStdio::piped())
            .stderr(ProcStdio::from(err))
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("spawn")?;
        let pid = child.id().context("no pid")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("no stdout")?;
        let shared = Arc::new(Shared::default());
        tokio::spawn(read_loop(stdout, shared.clone()));
        Ok(Stdio {
            child: tokio::sync::Mutex::new(child),
            pid,
            stdin: tokio::sync::Mutex::new(stdin),
            shared,
            stderr_path,
        })
    }

    pub async fn write(&self, mut line: String) -> Result<()> {
        line.push('\n');
        let mut g = self.stdin.lock().await;
        let s = g.as_mut().context("stdin already closed")?;
        s.write_all(line.as_bytes())
            .await
            .context("write to stdin")?;
        Ok(())
    }

    pub async fn call(&self, id: u64, line: String, timeout: Duration) -> Result<Reply> {
        let (tx, rx) = oneshot::channel();
        if self.shared.closed.load(Ordering::Acquire) {
            bail!("the process closed its stdout");
        }
        self.shared.pending.lock().unwrap().insert(
            id,
            Waiter::One {
                tx,
                progress: Vec::new(),
            },
        );
        self.write(line).await?;
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => {
                self.shared.pending.lock().unwrap().remove(&id);
                bail!("no response to id {id} within {timeout:?}")
            }
            Ok(Err(_)) => bail!("the process closed its stdout before answering id {id}"),
            Ok(Ok(r)) => Ok(r),
        }
    }

    async fn bulk(&self, first: u64, n: u64, window: usize, timeout: Duration) -> Result<Duration> {
        let bulk = Arc::new(Bulk {
            window: Semaphore::new(window),
            done: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
            target: n,
            finished: Notify::new(),
        });
        let mut g = self.stdin.lock().await;
        let stdin = g.as_mut().context("stdin already closed")?;
        let t0 = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let late = || anyhow!("throughput run did not finish within {timeout:?}");
        let end = first + n;
        let mut id = first;
        let mut lines = String::new();
        while id < end {
            tokio::time::timeout_at(deadline, bulk.window.acquire())
                .await
                .map_err(|_| late())??
                .forget();
            // Every free slot of the window in one write: one syscall per request was the
            // harness's own cost, not the bridge's (the bridge still parses each line).
            let mut k = 1;
            while id + k < end && bulk.window.try_acquire().map(|p| p.forget()).is_ok() {
                k += 1;
            }
            if self.shared.closed.load(Ordering::Acquire) {
                bail!("the process closed its stdout");
            }
            lines.clear();
            {
                let mut pending = self.shared.pending.lock().unwrap();
                for i in id..id + k {
                    pending.insert(i, Waiter::Bulk(bulk.clone()));
                    lines.push_str(&echo(i));
                    lines.push('\n');
                }
            }
            id += k;
            tokio::time::timeout_at(deadline, stdin.write_all(lines.as_bytes()))
                .await
                .map_err(|_| late())??;
        }
        while bulk.done.load(Ordering::Acquire) < n {
            if self.shared.closed.load(Ordering::Acquire) {
                bail!("the process closed its stdout during the throughput run");
            }
            if tokio::time::timeout_at(deadline, bulk.finished.notified())
                .await
                .is_err()
            {
                let missing = n - bulk.done.load(Ordering::Acquire);
                bail!("{missing} of {n} requests unanswered after {timeout:?}");
            }
        }
        let elapsed = t0.elapsed();
        let errors = bulk.errors.lock().unwrap();
        if !errors.is_empty() {
            bail!("{} error responses, first: {}", errors.len(), errors[0]);
        }
        Ok(elapsed)
    }

    /// Close stdin and wait for the process to exit. Returns when stdin was closed and
    /// how long the exit took (None: still running after `timeout`, then killed).
    pub async fn close_and_wait(&self, timeout: Duration) -> (Instant, Option<Duration>) {
        let t0 = Instant::now();
        drop(self.stdin.lock().await.take());
        let mut child = self.child.lock().await;
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(_)) => (t0, Some(t0.elapsed())),
            _ => {
                let _ = child.kill().await;
                (t0, None)
            }
        }
    }

    pub fn anomalies(&self) -> Vec<String> {
        let mut out = self.shared.anomalies.lock().unwrap().clone();
        let pending = self.shared.pending.lock().unwrap();
        if !pending.is_empty() {
            let mut ids: Vec<_> = pending.keys().copied().collect();
            ids.sort_unstable();
            ids.truncate(10);
            out.push(format!(
                "{} requests never answered, e.g. ids {ids:?}",
                pending.len()
            ));
        }
        out
    }

    /// Stop reading stdout (after the chunk being read), as a client that hangs would.
    pub fn pause(&self) {
        self.shared.paused.store(true, Ordering::Release);
    }

    pub fn resume(&self) {
        self.shared.paused.store(false, Ordering::Release);
        self.shared.resume.notify_one();
    }

    pub fn notifications(&self) -> u64 {
        self.shared.notifications.load(Ordering::Relaxed)
    }
}

/// Lines from the bridge's stdout, read straight into one growing buffer and handed out
/// without copying: the harness must not be what a 16 MiB line costs (a `BufReader` plus
/// `read_until` copied every byte once more and regrew the line buffer for each line).
struct Lines {
    r: ChildStdout,
    buf: BytesMut,
    /// How much of `buf` is known to hold no newline.
    scanned: usize,
}

impl Lines {
    /// The next line with its terminator, a last line without one, or `None` at EOF.
    async fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..]) {
                let end = self.scanned + i + 1;
                self.scanned = 0;
                return Ok(Some(self.buf.split_to(end).freeze()));
            }
            self.scanned = self.buf.len();
            if self.buf.capacity() - self.buf.len() < 64 * 1024 {
                self.buf.reserve(self.buf.capacity().max(1 << 20));
            }
            if self.r.read_buf(&mut self.buf).await? == 0 {
                return Ok((!self.buf.is_empty()).then(|| self.buf.split().freeze()));
            }
        }
    }
}

async fn read_loop(stdout: ChildStdout, shared: Arc<Shared>) {
    let mut lines = Lines {
        r: stdout,
        buf: BytesMut::with_capacity(1 << 20),
        scanned: 0,
    };
    loop {
        if shared.paused.load(Ordering::Acquire) {
            shared.resume.notified().await;
        }
        let line = match lines.next().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                shared.anomaly(format!("reading stdout failed: {e}"));
                break;
            }
        };
        let at = Instant::now();
        let mut len = line.len();
        if line.last() == Some(&b'\n') {
            len -= 1;
        } else {
            shared.anomaly("the last stdout line had no newline".into());
        }
        if len > 0 && line[len - 1] == b'\r' {
            len -= 1;
        }
        if len == 0 {
            continue;
        }
        let buf = line.slice(..len);
        match classify(&buf) {
            Err(e) => shared.anomaly(format!("stdout: {e}")),
            Ok(Kind::Progress { token, value }) => {
                match shared.pending.lock().unwrap().get_mut(&token) {
                    Some(Waiter::One { progress, .. }) => progress.push(value),
                    _ => shared.anomaly(format!("progress for {token}, which is not waiting")),
                }
            }
            Ok(Kind::Response { id, is_error }) => {
                let waiter = shared.pending.lock().unwrap().remove(&id);
                match waiter {
                    Some(Waiter::One { tx, progress }) => {
                        let _ = tx.send(Reply {
                            line: buf,
                            at,
                            progress,
                            is_error,
                        });
                    }
                    Some(Waiter::Bulk(b)) => {
                        if is_error {
                            b.errors
                                .lock()
                                .unwrap()
                                .push(String::from_utf8_lossy(&buf).into_owned());
                        }
                        let done = b.done.fetch_add(1, Ordering::AcqRel) + 1;
                        b.window.add_permits(1);
                        if done == b.target {
                            b.finished.notify_one();
                        }
                    }
                    None => shared.anomaly(format!(
                        "a response to id {id}, which was not waiting (answered twice, or never asked)"
                    )),
                }
            }
            Ok(Kind::Notification) => {
                shared.notifications.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Kind::Request(m)) => shared.anomaly(format!("unexpected server request {m}")),
        }
    }
    shared.closed.store(true, Ordering::Release);
    // Wake everyone still waiting: one-shot waiters see their sender dropped.
    let pending = std::mem::take(&mut *shared.pending.lock().unwrap());
    let mut left = HashMap::new();
    for (id, w) in pending {
        match w {
            Waiter::One { .. } => {}
            Waiter::Bulk(b) => {
                b.finished.notify_one();
                left.insert(id, Waiter::Bulk(b));
            }
        }
    }
    // Keep bulk ids so they are reported as unanswered.
    shared.pending.lock().unwrap().extend(left);
}

// ---------------------------------------------------------------------------------------
// Memory and CPU time of a process tree, from /proc.

/// `pid` and all its descendants.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // pid (comm) state ppid ...: comm may contain spaces, so split after ')'.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                children.entry(ppid).or_default().push(p);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c);
        }
        i += 1;
    }
    out
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Clock ticks per second (`USER_HZ`), the unit of `utime`/`stime` in `/proc/PID/stat`:
/// `sysconf(_SC_CLK_TCK)` where libc is already a dependency (glibc Linux), else
/// `getconf CLK_TCK`, else 100 (what Linux uses everywhere in practice).
pub fn clk_tck() -> u64 {
    static TCK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            // SAFETY: sysconf only reads a configuration value.
            let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
            if t > 0 {
                return t as u64;
            }
        }
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

/// Clock ticks (`clk_tck()` per second) as microseconds.
pub fn ticks_to_us(ticks: u64) -> f64 {
    ticks as f64 * 1e6 / clk_tck() as f64
}

/// CPU time (user + system) of a process, all its threads, dead ones included, in clock
/// ticks. The unit is coarse (10 ms at the usual 100 Hz): a figure per request needs a
/// measurement over thousands of requests.
fn proc_cpu_ticks(stat_path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the comm: state(3) ppid(4) … utime(14) stime(15), counted from field 3.
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// CPU time of a process tree, in clock ticks.
pub fn tree_cpu_ticks(pid: u32) -> Option<u64> {
    process_tree(pid)
        .iter()
        .map(|p| proc_cpu_ticks(&format!("/proc/{p}/stat")))
        .sum()
}

/// CPU time of this process's threads whose name starts with `prefix`, in clock ticks.
pub fn own_threads_cpu_ticks(prefix: &str) -> Option<u64> {
    let mut total = 0;
    for e in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let dir = e.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with(prefix) {
            total += proc_cpu_ticks(dir.join("stat").to_str()?)?;
        }
    }
    Some(total)
}

/// The sum of `field` over the process tree, in KiB.
pub fn tree_kib(pid: u32, field: &str) -> Option<u64> {
    let tree = process_tree(pid);
    let values: Vec<u64> = tree.iter().filter_map(|p| status_kib(*p, field)).collect();
    if values.is_empty() {
        None
    } else {
        Some(values.iter().sum())
    }
}
