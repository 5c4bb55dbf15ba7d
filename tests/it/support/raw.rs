//! A hand-written HTTP/1.1 MCP server on 127.0.0.1:0, for socket faults an HTTP framework
//! will not produce: a reset before the headers, a body cut short of its Content-Length,
//! an SSE stream reset mid-way, a body dripped byte by byte. It speaks just enough of the
//! 2025-11-25 Streamable HTTP transport (one session) for the proxy to get there. Every
//! answer says `Connection: close`, so each request is one connection.
//!
//! | tool        | behaviour                                                            |
//! |-------------|----------------------------------------------------------------------|
//! | echo        | JSON reply echoing `arguments`                                       |
//! | reset_head  | reads the request, then resets the connection (RST) without a byte    |
//! | reset_body  | 200 with `Content-Length: 1000`, part of the JSON, then RST          |
//! | close_body  | the same, closed with FIN instead                                    |
//! | reset_sse   | SSE: one log event, then RST once the test calls [`Raw::cut`].        |
//! |             | `ids: true` gives the events ids                                     |
//! |             | and parks the result for GET + Last-Event-ID; `park: false` makes     |
//! |             | that GET a 405 (a server that cannot resume); `replay: true` makes    |
//! |             | the resumed stream repeat the event named in Last-Event-ID first      |
//! | drip        | `{"result":{}}` one byte per `ms`; `stall_at`/`stall_ms`: one long gap |
//! | compressed  | the echo, compressed with `encoding` (gzip, br, zstd); `pad` bytes of |
//! |             | padding make it large (a compression bomb when it is over the bound)  |
//! | gzip_sse    | SSE, gzip: one log event (flushed), then, once the test calls          |
//! |             | [`Raw::cut`], the result                                              |

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SESSION: &str = "raw-session-1";

#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Value,
}

impl Seen {
    pub fn tool(&self) -> Option<&str> {
        self.body["params"]["name"].as_str()
    }
}

#[derive(Clone)]
pub struct Raw {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Results parked for GET + Last-Event-ID, by event id.
    parked: Arc<Mutex<HashMap<String, Value>>>,
    /// Frames a resumed stream repeats before the result (a server that replays the
    /// event named in Last-Event-ID), by event id.
    replayed: Arc<Mutex<HashMap<String, String>>>,
    /// `reset_sse` resets its stream when a permit is added here ([`Raw::cut`]).
    cut: Arc<tokio::sync::Semaphore>,
}

impl Raw {
    pub async fn start() -> Raw {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let raw = Raw {
            url: format!("http://{}/mcp", listener.local_addr().unwrap()),
            seen: Arc::default(),
            parked: Arc::default(),
            replayed: Arc::default(),
            cut: Arc::new(tokio::sync::Semaphore::new(0)),
        };
        let server = raw.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    let _ = server.serve(sock).await;
                });
            }
        });
        raw
    }

    /// Let one held `reset_sse` stream be reset.
    pub fn cut(&self) {
        self.cut.add_permits(1);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many POSTs called `tool`.
    pub fn calls(&self, tool: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == "POST" && s.tool() == Some(tool))
            .count()
    }

    async fn serve(&self, mut sock: TcpStream) -> std::io::Result<()> {
        let Some((method, headers, body)) = read_request(&mut sock).await? else {
            return Ok(());
        };
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        self.seen.lock().unwrap().push(Seen {
            method: method.clone(),
            headers: headers.clone(),
            body: body.clone(),
        });
        match method.as_str() {
            "GET" => {
                let last = headers.get("last-event-id");
                let parked = last.and_then(|id| self.parked.lock().unwrap().remove(id));
                let replay = last
                    .and_then(|id| self.replayed.lock().unwrap().remove(id))
                    .unwrap_or_default();
                match parked {
                    Some(v) => {
                        let frame = format!("{replay}id: resumed-1\ndata: {v}\n\n");
                        write_sse_head(&mut sock).await?;
                        write_chunk(&mut sock, frame.as_bytes()).await?;
                        sock.write_all(b"0\r\n\r\n").await
                    }
                    None => write_status(&mut sock, "405 Method Not Allowed").await,
                }
            }
            "DELETE" => write_status(&mut sock, "200 OK").await,
            _ => self.post(sock, body).await,
        }
    }

    async fn post(&self, mut sock: TcpStream, body: Value) -> std::io::Result<()> {
        let Some(id) = body.get("id").cloned() else {
            return write_status(&mut sock, "202 Accepted").await;
        };
        let method = body["method"].as_str().unwrap_or("");
        if method == "initialize" {
            let answer = json!({"jsonrpc":"2.0","id":id,"result":{"protocolVersion":"2025-11-25",
                "capabilities":{"tools":{}},"serverInfo":{"name":"raw","version":"1"}}});
            return write_json(&mut sock, &answer.to_string(), Some(SESSION)).await;
        }
        let args = &body["params"]["arguments"];
        let answer = |text: &str| {
            json!({"jsonrpc":"2.0","id":id,"result":{"content":[{"type":"text","text":text}]}})
                .to_string()
        };
        match body["params"]["name"].as_str().unwrap_or("") {
            "reset_head" => reset(sock),
            "reset_body" | "close_body" => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                            Content-Length: 1000\r\nConnection: close\r\n\r\n";
                sock.write_all(head.as_bytes()).await?;
                sock.write_all(&answer("cut short").as_bytes()[..20])
                    .await?;
                sock.flush().await?;
                if body["params"]["name"] == "close_body" {
                    return sock.shutdown().await;
                }
                reset(sock)
            }
            "reset_sse" => {
                let ids = args["ids"].as_bool().unwrap_or(false);
                let note = json!({"jsonrpc":"2.0","method":"notifications/message",
                    "params":{"level":"info","data":"before the reset"}});
                let frame = if ids {
                    let event = format!("ev-{id}");
                    if args["park"].as_bool().unwrap_or(true) {
                        let done = serde_json::from_str(&answer("resumed")).unwrap();
                        self.parked.lock().unwrap().insert(event.clone(), done);
                    }
                    let frame = format!("retry: 10\nid: {event}\ndata: {note}\n\n");
                    if args["replay"].as_bool().unwrap_or(false) {
                        self.replayed.lock().unwrap().insert(event, frame.clone());
                    }
                    frame
                } else {
                    format!("data: {note}\n\n")
                };
                write_sse_head(&mut sock).await?;
                write_chunk(&mut sock, frame.as_bytes()).await?;
                // A reset discards what the peer has not read yet: hold the connection
                // until the test saw the event come out of the proxy.
                self.cut.acquire().await.unwrap().forget();
                reset(sock)
            }
            "compressed" => {
                let pad = "a".repeat(args["pad"].as_u64().unwrap_or(0) as usize);
                let text = answer(&format!("{pad}{args}"));
                let encoding = args["encoding"].as_str().unwrap_or("gzip");
                let body = compress(encoding, text.as_bytes());
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Content-Encoding: {encoding}\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    body.len()
                );
                sock.write_all(head.as_bytes()).await?;
                sock.write_all(&body).await?;
                sock.shutdown().await
            }
            "gzip_sse" => {
                use std::io::Write;
                let note = json!({"jsonrpc":"2.0","method":"notifications/message",
                    "params":{"level":"info","data":"first, compressed"}});
                let mut gz =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                            Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\
                            Connection: close\r\n\r\n";
                sock.write_all(head.as_bytes()).await?;
                gz.write_all(format!("data: {note}\n\n").as_bytes())?;
                gz.flush()?; // a sync flush: the event can be decoded now
                let first = std::mem::take(gz.get_mut());
                write_chunk(&mut sock, &first).await?;
                // The result comes only once the test saw the first event come out.
                self.cut.acquire().await.unwrap().forget();
                gz.write_all(format!("data: {}\n\n", answer("after the event")).as_bytes())?;
                let rest = gz.finish()?;
                write_chunk(&mut sock, &rest).await?;
                sock.write_all(b"0\r\n\r\n").await?;
                sock.shutdown().await
            }
            "drip" => {
                let ms = args["ms"].as_u64().unwrap_or(100);
                let stall_at = args["stall_at"].as_u64().map(|n| n as usize);
                let stall_ms = args["stall_ms"].as_u64().unwrap_or(0);
                let text = json!({"jsonrpc":"2.0","id":id,"result":{}}).to_string();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    text.len()
                );
                sock.write_all(head.as_bytes()).await?;
                sock.set_nodelay(true)?;
                for (i, b) in text.bytes().enumerate() {
                    let gap = if Some(i) == stall_at { stall_ms } else { ms };
                    tokio::time::sleep(Duration::from_millis(gap)).await;
                    sock.write_all(&[b]).await?;
                    sock.flush().await?;
                }
                Ok(())
            }
            _ => write_json(&mut sock, &answer(&args.to_string()), None).await,
        }
    }
}

/// `data` compressed with a `Content-Encoding`.
fn compress(encoding: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    match encoding {
        "gzip" => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(data).unwrap();
            gz.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(data).unwrap();
            }
            out
        }
        "zstd" => zstd::encode_all(data, 3).unwrap(),
        other => panic!("no such encoding in the test server: {other}"),
    }
}

/// Close with RST instead of FIN: zero linger, then drop.
fn reset(sock: TcpStream) -> std::io::Result<()> {
    sock.set_zero_linger()?;
    drop(sock);
    Ok(())
}

/// Read one request: the method, the headers (lower-case names) and the body.
async fn read_request(
    sock: &mut TcpStream,
) -> std::io::Result<Option<(String, HashMap<String, String>, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let method = lines
        .next()
        .and_then(|l| l.split(' ').next())
        .unwrap_or("")
        .to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some((method, headers, body)))
}

async fn write_status(sock: &mut TcpStream, status: &str) -> std::io::Result<()> {
    let head = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    sock.write_all(head.as_bytes()).await?;
    sock.shutdown().await
}

async fn write_json(
    sock: &mut TcpStream,
    body: &str,
    session: Option<&str>,
) -> std::io::Result<()> {
    let session = session
        .map(|s| format!("Mcp-Session-Id: {s}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         {session}Connection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    sock.write_all(body.as_bytes()).await?;
    sock.shutdown().await
}

async fn write_sse_head(sock: &mut TcpStream) -> std::io::Result<()> {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    sock.write_all(head.as_bytes()).await
}

async fn write_chunk(sock: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    sock.write_all(format!("{:x}\r\n", data.len()).as_bytes())
        .await?;
    sock.write_all(data).await?;
    sock.write_all(b"\r\n").await?;
    sock.flush().await
}
