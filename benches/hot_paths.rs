//! Micro-benchmarks of the per-message hot paths:
//!
//! - stdin line framing: `stdio::LineReader` over an in-memory reader;
//! - SSE parsing: `remote::sse::Parser::feed`, including one 16 MiB event fed in 16 KiB
//!   chunks, at 1, 4 and 16 MiB so the throughput shows it is linear (and a direct check
//!   after the criterion runs: 16 MiB must cost about 16× 1 MiB, not 256×);
//! - JSON-RPC probing: `jsonrpc::parse` on requests, a large response and a batch;
//! - `stdio::one_line`, applied to every server message before it goes to stdout.
//!
//! ```sh
//! cargo bench --bench hot_paths              # everything
//! cargo bench --bench hot_paths -- sse       # a filter, as usual with criterion
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use clerk_mcp_server::jsonrpc;
use clerk_mcp_server::remote::sse::Parser;
use clerk_mcp_server::stdio::{Frame, LineReader};
use criterion::{BenchmarkId, Criterion, Throughput};

const MIB: usize = 1 << 20;
const CHUNK: usize = 16 * 1024;

/// `len` printable, JSON-safe bytes (not all one byte), cut from one shared buffer.
fn payload(len: usize) -> &'static str {
    static BUF: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let buf = BUF.get_or_init(|| {
        const A: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let bytes: Vec<u8> = (0..16 * MIB)
            .map(|i| A[(i * 7 + i / 61) % A.len()])
            .collect();
        String::from_utf8(bytes).expect("ASCII")
    });
    &buf[..len]
}

fn small_request(id: usize) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"hello world","n":{id}}}}}}}"#
    )
}

fn big_response(id: usize, len: usize) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"{}"}}]}}}}"#,
        payload(len)
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

async fn frame_all(input: &[u8], max: usize) -> usize {
    let mut r = LineReader::new(tokio::io::BufReader::with_capacity(64 * 1024, input), max);
    let mut n = 0;
    while let Some(f) = r.next().await.expect("in-memory read") {
        match f {
            Frame::Line(l) => n += l.len(),
            Frame::TooLong { len, .. } => n += len,
        }
    }
    n
}

fn line_framing(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("line_framing");
    // 10,000 typical requests.
    let mut many = String::new();
    for i in 0..10_000 {
        many.push_str(&small_request(i));
        many.push('\n');
    }
    g.throughput(Throughput::Bytes(many.len() as u64));
    g.bench_function("10k_small_lines", |b| {
        b.iter(|| rt.block_on(frame_all(black_box(many.as_bytes()), 64 * MIB)))
    });
    // One 16 MiB line.
    let mut big = big_response(1, 16 * MIB);
    big.push('\n');
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.sample_size(10);
    g.bench_function("one_16MiB_line", |b| {
        b.iter(|| rt.block_on(frame_all(black_box(big.as_bytes()), 64 * MIB)))
    });
    // Over the bound: skipped without buffering.
    g.bench_function("one_16MiB_line_over_limit", |b| {
        b.iter(|| rt.block_on(frame_all(black_box(big.as_bytes()), MIB)))
    });
    g.finish();
}

fn sse_single_event(size: usize) -> Vec<u8> {
    let mut s = Vec::with_capacity(size + 64);
    s.extend_from_slice(b"event: message\ndata: ");
    s.extend_from_slice(big_response(1, size).as_bytes());
    s.extend_from_slice(b"\n\n");
    s
}

fn feed_chunked(input: &[u8], chunk: usize) -> usize {
    let mut p = Parser::new(64 * MIB);
    let mut out = Vec::new();
    let mut n = 0;
    for c in input.chunks(chunk) {
        p.feed(c, &mut out).expect("valid SSE");
        n += out.drain(..).map(|e| e.data.len()).sum::<usize>();
    }
    n
}

fn sse_parsing(c: &mut Criterion) {
    let mut g = c.benchmark_group("sse_parse");
    // A 2,000-event progress stream, as it arrives: 16 KiB chunks.
    let mut stream = Vec::new();
    for i in 1..=2000 {
        stream.extend_from_slice(format!(
            "event: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":7,\"progress\":{i},\"total\":2000}}}}\n\n"
        ).as_bytes());
    }
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("2000_events_16KiB_chunks", |b| {
        b.iter(|| feed_chunked(black_box(&stream), CHUNK))
    });
    g.sample_size(10);
    for mib in [1usize, 4, 16] {
        let input = sse_single_event(mib * MIB);
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("single_event_16KiB_chunks", format!("{mib}MiB")),
            &input,
            |b, input| b.iter(|| feed_chunked(black_box(input), CHUNK)),
        );
    }
    g.finish();
}

fn jsonrpc_probe(c: &mut Criterion) {
    let mut g = c.benchmark_group("jsonrpc_parse");
    let req = small_request(42);
    g.throughput(Throughput::Bytes(req.len() as u64));
    g.bench_function("small_request", |b| {
        b.iter(|| {
            let parsed = jsonrpc::parse(black_box(&req)).expect("valid");
            black_box(matches!(parsed, jsonrpc::Parsed::Single(_)))
        })
    });
    let note = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":7,"progress":1500,"total":2000}}"#;
    g.throughput(Throughput::Bytes(note.len() as u64));
    g.bench_function("progress_notification", |b| {
        b.iter(|| black_box(jsonrpc::parse(black_box(note)).is_ok()))
    });
    let batch = format!(
        "[{}]",
        (0..10).map(small_request).collect::<Vec<_>>().join(",")
    );
    g.throughput(Throughput::Bytes(batch.len() as u64));
    g.bench_function("batch_of_10", |b| {
        b.iter(|| black_box(jsonrpc::parse(black_box(&batch)).is_ok()))
    });
    g.sample_size(10);
    for mib in [1usize, 16] {
        let resp = big_response(3, mib * MIB);
        g.throughput(Throughput::Bytes(resp.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("large_response", format!("{mib}MiB")),
            &resp,
            |b, resp| b.iter(|| black_box(jsonrpc::parse(black_box(resp)).is_ok())),
        );
    }
    g.finish();
}

fn one_line(c: &mut Criterion) {
    let mut g = c.benchmark_group("one_line");
    let small = bytes::Bytes::from(big_response(1, 200));
    g.throughput(Throughput::Bytes(small.len() as u64));
    g.bench_function("small_response", |b| {
        b.iter(|| clerk_mcp_server::stdio::one_line(black_box(small.clone())))
    });
    g.sample_size(10);
    let big = bytes::Bytes::from(big_response(1, 16 * MIB));
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("16MiB_response", |b| {
        b.iter(|| clerk_mcp_server::stdio::one_line(black_box(big.clone())))
    });
    g.finish();
}

/// The linearity check behind the SSE claim, outside criterion so it can fail the run:
/// per-byte cost of a 16 MiB event against a 1 MiB one, both in 16 KiB chunks.
fn sse_linearity() -> bool {
    let time = |input: &[u8]| -> Duration {
        let mut best = Duration::MAX;
        for _ in 0..5 {
            let t0 = Instant::now();
            black_box(feed_chunked(black_box(input), CHUNK));
            best = best.min(t0.elapsed());
        }
        best
    };
    let small = sse_single_event(MIB);
    let big = sse_single_event(16 * MIB);
    let (ts, tb) = (time(&small), time(&big));
    let ratio = tb.as_secs_f64() / ts.as_secs_f64();
    // Linear is ~16×; quadratic would be ~256×. Allow generous noise (cache effects).
    let linear = ratio < 40.0;
    println!(
        "sse linearity: 1 MiB event {:.2} ms, 16 MiB event {:.2} ms in 16 KiB chunks: {ratio:.1}× for 16× the bytes → {}",
        ts.as_secs_f64() * 1e3,
        tb.as_secs_f64() * 1e3,
        if linear { "linear" } else { "NOT LINEAR" }
    );
    linear
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    line_framing(&mut c);
    sse_parsing(&mut c);
    jsonrpc_probe(&mut c);
    one_line(&mut c);
    c.final_summary();
    if bench_mode && !sse_linearity() {
        std::process::exit(1);
    }
}
