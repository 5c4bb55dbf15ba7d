//! End-to-end benchmark: the same MCP message pattern sent
//!
//! - **direct**: straight over HTTP keep-alive from this process (reqwest), the physical
//!   limit of the pattern;
//! - through **clerk-mcp-server** (`target/release/clerk-mcp-server`, or the binary given
//!   with `--bin`; given twice, `--bin old=PATH --bin new=PATH`, both binaries side by side:
//!   an A/B run);
//! - through **mcp-remote** (from `interop/node/node_modules`), when it is installed;
//!
//! all against one in-process mock Streamable HTTP server, in interleaved rounds
//! (A B C A B C …) so drift on a shared machine hits every target alike.
//!
//! ```sh
//! cargo bench --bench proxy -- [--quick] [--out DIR] [--rounds N] [--no-mcp-remote]
//!                              [--bin [LABEL=]PATH [--bin [LABEL=]PATH]]
//!                              [--mcp-remote PATH/proxy.js]
//! ```
//!
//! Results: a table on stdout, `DIR/latest.json`, `DIR/ratios.svg` (default DIR:
//! `bench/results`). Every run is also checked: each request answered exactly once, blob
//! payloads byte-identical (SHA-256), stream events complete and in order. A check that
//! fails for direct or clerk-mcp-server makes the run exit 1.
//!
//! Run by `cargo test --all-targets` (no `--bench` argument), it is a small smoke test of
//! the debug binary instead: correctness only, no timing.

#[path = "support/driver.rs"]
mod driver;
#[path = "support/mock.rs"]
mod mock;
#[path = "support/report.rs"]
mod report;
#[path = "support/scenarios.rs"]
mod scenarios;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::json;
use tokio::process::Command;

use driver::{Client, Direct, Stdio};
use report::{CLERK, CLERK_B, DIRECT, ORDER, REMOTE, Run, SLOTS, Summary};

const MIB: usize = 1 << 20;

/// How much of everything one run does.
#[derive(Clone, Debug, serde::Serialize)]
struct Plan {
    mode: &'static str,
    rounds: usize,
    warmup: u64,
    latency_n: u64,
    throughput_n: u64,
    window: usize,
    sse_latency_n: u64,
    blob_bytes: usize,
    /// Large results per round (the round's figure is their median).
    blob_reps: usize,
    stream_events: usize,
    /// Streams per round (the round's figure is their median).
    stream_reps: usize,
    settle_ms: u64,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            mode: "full",
            rounds: 5,
            warmup: 200,
            latency_n: 2000,
            throughput_n: 20_000,
            window: 64,
            sse_latency_n: 500,
            blob_bytes: 16 * MIB,
            blob_reps: 3,
            stream_events: 2000,
            stream_reps: 5,
            settle_ms: 500,
        }
    }
    fn quick() -> Plan {
        Plan {
            mode: "quick",
            rounds: 5,
            warmup: 50,
            // 1,000 × 5 rounds: enough requests for the sequential CPU figure (10 ms ticks).
            latency_n: 1000,
            throughput_n: 4000,
            sse_latency_n: 200,
            blob_reps: 1,
            stream_reps: 3,
            settle_ms: 300,
            ..Plan::full()
        }
    }
    fn smoke() -> Plan {
        Plan {
            mode: "smoke",
            rounds: 1,
            warmup: 5,
            latency_n: 20,
            throughput_n: 200,
            window: 16,
            sse_latency_n: 10,
            blob_bytes: 256 * 1024,
            blob_reps: 1,
            stream_events: 50,
            stream_reps: 1,
            settle_ms: 50,
        }
    }
}

const CALL_TIMEOUT: Duration = Duration::from_secs(60);
const BULK_TIMEOUT: Duration = Duration::from_secs(180);
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Args {
    bench: bool,
    quick: bool,
    out: Option<PathBuf>,
    rounds: Option<usize>,
    no_mcp_remote: bool,
    /// Only these targets (slugs: direct, clerk, mcp-remote; an A/B run's labels).
    only: Option<Vec<String>>,
    /// `--bin [LABEL=]PATH`, at most twice (twice: an A/B run).
    bins: Vec<(Option<String>, PathBuf)>,
    mcp_remote: Option<PathBuf>,
    /// `--soak [N]`: only the soak, N requests (default 1,000,000).
    soak: Option<u64>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args::default();
    let mut it = std::env::args().skip(1).peekable();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--soak" => {
                let n = it.next_if(|n| n.parse::<u64>().is_ok());
                a.soak = Some(n.map_or(Ok(1_000_000), |n| n.parse())?);
            }
            "--bench" => a.bench = true,
            "--quick" => a.quick = true,
            "--out" => a.out = Some(it.next().context("--out needs a directory")?.into()),
            "--rounds" => a.rounds = Some(it.next().context("--rounds needs N")?.parse()?),
            "--no-mcp-remote" => a.no_mcp_remote = true,
            "--only" => {
                let list = it
                    .next()
                    .context("--only needs a list, e.g. direct,clerk")?;
                a.only = Some(list.split(',').map(str::to_owned).collect());
            }
            "--bin" => {
                let v = it.next().context("--bin needs [LABEL=]PATH")?;
                a.bins.push(match v.split_once('=') {
                    Some((label, path)) if is_label(label) => (Some(label.into()), path.into()),
                    _ => (None, v.into()),
                });
            }
            "--mcp-remote" => {
                a.mcp_remote = Some(it.next().context("--mcp-remote needs a path")?.into())
            }
            // libtest-style flags cargo may pass; ignored.
            _ => {}
        }
    }
    Ok(a)
}

/// An A/B label: a name for the table, the JSON and log files.
fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 24
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

enum Target {
    Direct,
    Clerk {
        bin: PathBuf,
        /// `CLERK`, or `CLERK_B` for the second binary of an A/B run.
        slot: usize,
        /// "clerk"; in an A/B run the binary's label.
        slug: String,
    },
    McpRemote {
        node: PathBuf,
        script: PathBuf,
    },
}

impl Target {
    fn clerk(bin: PathBuf) -> Target {
        Target::Clerk {
            bin,
            slot: CLERK,
            slug: "clerk".into(),
        }
    }
    fn slug(&self) -> &str {
        match self {
            Target::Direct => "direct",
            Target::Clerk { slug, .. } => slug,
            Target::McpRemote { .. } => "mcp-remote",
        }
    }
    fn index(&self) -> usize {
        match self {
            Target::Direct => DIRECT,
            Target::Clerk { slot, .. } => *slot,
            Target::McpRemote { .. } => REMOTE,
        }
    }
}

/// The clerk-mcp-server binaries to measure: (label, path). One, or two for an A/B run.
struct Binaries {
    list: Vec<(Option<String>, PathBuf)>,
}

impl Binaries {
    fn ab(&self) -> bool {
        self.list.len() == 2
    }
    /// The name of binary `i` in the table and the JSON: "clerk-mcp-server" alone; in an
    /// A/B run its label ("a", "b" when none was given).
    fn name(&self, i: usize) -> String {
        if !self.ab() {
            return report_name(CLERK);
        }
        self.list[i]
            .0
            .clone()
            .unwrap_or_else(|| ["a", "b"][i].into())
    }
    fn targets(&self) -> Vec<Target> {
        self.list
            .iter()
            .enumerate()
            .map(|(i, (_, bin))| Target::Clerk {
                bin: bin.clone(),
                slot: [CLERK, CLERK_B][i],
                slug: if self.ab() {
                    self.name(i)
                } else {
                    "clerk".into()
                },
            })
            .collect()
    }
}

/// The default name of a target slot.
fn report_name(t: usize) -> String {
    match t {
        DIRECT => "direct",
        REMOTE => "mcp-remote",
        _ => "clerk-mcp-server",
    }
    .into()
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("proxy bench: {e:#}");
            std::process::exit(2);
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-driver")
        .enable_all()
        .build()
        .expect("runtime");
    let code = runtime.block_on(async move {
        let r = if args.bench && args.soak.is_some() {
            soak(args).await
        } else if args.bench {
            bench(args).await
        } else {
            smoke().await
        };
        match r {
            Ok(code) => code,
            Err(e) => {
                eprintln!("proxy bench: {e:#}");
                1
            }
        }
    });
    runtime.shutdown_background();
    std::process::exit(code);
}

/// `cargo test --all-targets`: a correctness pass with the debug binary.
async fn smoke() -> Result<i32> {
    let plan = Plan::smoke();
    let mock = mock::Mock::start(plan.blob_bytes);
    let logs = tempfile::tempdir()?;
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_clerk-mcp-server"));
    let mut failed = Vec::new();
    for target in [Target::Direct, Target::clerk(bin.clone())] {
        let run = run_target(&target, &mock, &plan, 0, logs.path()).await;
        for f in &run.failures {
            failed.push(format!("{}: {f}", target.slug()));
        }
        if matches!(target, Target::Clerk { .. }) && run.delete_sent != Some(true) {
            failed.push("clerk: the session was not DELETEd on stdin EOF".into());
        }
    }
    // The paused-reader scenario, small: its checks (every notification, in order).
    let paused = async {
        let (client, _config) =
            scenario_bridge(&Target::clerk(bin.clone()), &mock, logs.path(), "paused").await?;
        let r = scenarios::paused_reader(&client, 2000, Duration::from_millis(200)).await;
        if let Client::Stdio(s) = &client {
            s.close_and_wait(EXIT_TIMEOUT).await;
        }
        r
    };
    if let Err(e) = paused.await {
        failed.push(format!("clerk: paused reader: {e:#}"));
    }
    if failed.is_empty() {
        println!("proxy bench smoke test (direct + clerk-mcp-server, correctness only): ok");
        Ok(0)
    } else {
        for f in &failed {
            eprintln!("FAIL {f}");
        }
        Ok(1)
    }
}

async fn bench(args: Args) -> Result<i32> {
    let mut plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    if let Some(r) = args.rounds {
        plan.rounds = r.max(1);
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| manifest_dir().join("bench").join("results"));
    std::fs::create_dir_all(out.join("logs"))?;
    let clerks = clerk_binaries(&args)?;
    let remote = if args.no_mcp_remote {
        println!("note: mcp-remote skipped (--no-mcp-remote)");
        None
    } else {
        find_mcp_remote(&args)
    };
    let load_start = loadavg();
    let mut targets = vec![Target::Direct];
    targets.extend(clerks.targets());
    if let Some((node, script)) = &remote {
        targets.push(Target::McpRemote {
            node: node.clone(),
            script: script.clone(),
        });
    }
    let bins: Vec<String> = clerks
        .list
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("{} = {}", clerks.name(i), p.display()))
        .collect();
    println!(
        "proxy bench ({} mode): {} rounds × {} targets; {}",
        plan.mode,
        plan.rounds,
        targets.len(),
        bins.join(", ")
    );
    let mock = mock::Mock::start(plan.blob_bytes);
    if let Some(only) = &args.only {
        targets.retain(|t| {
            only.iter()
                .any(|o| o == t.slug() || (o == "clerk" && matches!(t, Target::Clerk { .. })))
        });
    }
    let mut present = [false; SLOTS];
    for t in &targets {
        present[t.index()] = true;
    }
    let mut names: [String; SLOTS] = std::array::from_fn(report_name);
    for (i, t) in [CLERK, CLERK_B]
        .into_iter()
        .enumerate()
        .take(clerks.list.len())
    {
        names[t] = clerks.name(i);
    }
    let mut summary = Summary {
        runs: Default::default(),
        present,
        names,
    };
    let started = Instant::now();
    for round in 0..plan.rounds {
        // A/B: the two binaries swap places every other round, so neither always runs
        // right after the other.
        let mut order: Vec<&Target> = targets.iter().collect();
        if round % 2 == 1
            && let (Some(a), Some(b)) = (
                order.iter().position(|t| t.index() == CLERK),
                order.iter().position(|t| t.index() == CLERK_B),
            )
        {
            order.swap(a, b);
        }
        for target in order {
            let run = run_target(target, &mock, &plan, round, &out.join("logs")).await;
            eprintln!(
                "  round {}/{} {:<10} {}",
                round + 1,
                plan.rounds,
                target.slug(),
                brief(&run)
            );
            for f in &run.failures {
                eprintln!("    !! {f}");
            }
            summary.runs[target.index()].push(run);
        }
    }
    // Memory bounds with a client that stops reading: once per bridge.
    let mut paused = serde_json::Map::new();
    for target in targets.iter().filter(|t| !matches!(t, Target::Direct)) {
        let tag = format!("paused-{}", target.slug());
        let r = match scenario_bridge(target, &mock, &out.join("logs"), &tag).await {
            Ok((client, _config)) => {
                let r =
                    scenarios::paused_reader(&client, scenarios::FLOOD_EVENTS, scenarios::PAUSE)
                        .await;
                if let Client::Stdio(s) = &client {
                    s.close_and_wait(EXIT_TIMEOUT).await;
                }
                r
            }
            Err(e) => Err(e),
        };
        let v = r.unwrap_or_else(|e| json!({"error": format!("{e:#}")}));
        eprintln!("  paused reader {:<10} {v}", target.slug());
        paused.insert(target.slug().into(), v);
    }
    let elapsed = started.elapsed();
    let load_end = loadavg();
    let largest_mib = plan.blob_bytes as f64 / MIB as f64;

    println!();
    print!("{}", report::table(&summary, largest_mib));

    let mut broken = Vec::new();
    for t in ORDER {
        for f in summary.failures(t) {
            broken.push((t, f));
        }
    }
    if !broken.is_empty() {
        println!();
        println!("CORRECTNESS PROBLEMS:");
        for (t, f) in &broken {
            println!("  {}: {f}", summary.names[*t]);
        }
    }
    let mut binaries = Vec::new();
    for (i, (label, bin)) in clerks.list.iter().enumerate() {
        binaries.push(json!({
            "name": clerks.name(i),
            "label": label,
            "path": bin.display().to_string(),
            "version": version_of(Command::new(bin).arg("--version")).await,
            "bytes": std::fs::metadata(bin).map(|m| m.len()).ok(),
        }));
    }

    let meta = json!({
        "schema": 1,
        "unix_time": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "plan": plan,
        "wall_seconds": elapsed.as_secs_f64(),
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "loadavg_start": load_start,
            "loadavg_end": load_end,
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        },
        // The first (A) binary; every binary, with its label, in `clerk_binaries`.
        "clerk_mcp_server": binaries[0].clone(),
        "clerk_binaries": binaries,
        "mcp_remote": remote.as_ref().map(|(node, script)| json!({
            "script": script.display().to_string(),
            "version": mcp_remote_version(script),
            "node": node.display().to_string(),
        })),
        "mock_blob_sha256": driver::sha256_hex(&mock.state.blob[..plan.blob_bytes]),
        "paused_reader": paused,
    });
    let doc = report::to_json(&summary, largest_mib, meta);
    let json_path = out.join("latest.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&doc)? + "\n")?;
    let subtitle = format!(
        "{} mode, {} rounds, medians; {} CPUs, load {} → {}; clerk-mcp-server {}{}, mcp-remote {}",
        plan.mode,
        plan.rounds,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        load_start,
        load_end,
        env!("CARGO_PKG_VERSION"),
        if clerks.ab() {
            format!(" (A/B: {} vs {})", clerks.name(0), clerks.name(1))
        } else {
            String::new()
        },
        remote
            .as_ref()
            .and_then(|(_, s)| mcp_remote_version(s))
            .unwrap_or_else(|| "not run".into())
    );
    let svg_path = out.join("ratios.svg");
    std::fs::write(&svg_path, report::svg(&summary, largest_mib, &subtitle))?;
    println!();
    println!(
        "wrote {} and {} ({:.0} s; load average {load_start} → {load_end})",
        json_path.display(),
        svg_path.display(),
        elapsed.as_secs_f64()
    );
    let fatal = broken.iter().any(|(t, _)| *t != REMOTE);
    if fatal {
        println!("FAILED: direct or clerk-mcp-server broke a correctness check (see above)");
        return Ok(1);
    }
    Ok(0)
}

/// `--soak [N]`: N requests through one clerk-mcp-server process; RSS and open
/// fds must end where they were after the warm-up. Writes `DIR/soak.json`; exit 1 when
/// they are not flat or a request failed.
async fn soak(args: Args) -> Result<i32> {
    let total = args.soak.unwrap_or(1_000_000);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| manifest_dir().join("bench").join("results"));
    std::fs::create_dir_all(out.join("logs"))?;
    let Some((_, bin)) = clerk_binaries(&args)?.list.into_iter().next() else {
        bail!("no clerk-mcp-server binary")
    };
    let target = Target::clerk(bin);
    let mock = mock::Mock::start(MIB);
    let (client, _config) = scenario_bridge(&target, &mock, &out.join("logs"), "soak").await?;
    let Client::Stdio(s) = &client else {
        bail!("soak needs a stdio bridge")
    };
    let pid = s.pid;
    let warmup = (total / 50).clamp(1000, 20_000);
    let step = (total / 10).max(1);
    let result = scenarios::soak(&client, pid, warmup, total, step).await?;
    let anomalies = s.anomalies();
    s.close_and_wait(EXIT_TIMEOUT).await;
    let path = out.join("soak.json");
    std::fs::write(&path, serde_json::to_string_pretty(&result)? + "\n")?;
    println!(
        "soak: {total} requests in {:.1} s; RSS {:.2} → {:.2} MiB; fds {} → {}; {}",
        result["seconds"].as_f64().unwrap_or(0.0),
        result["rss_after_warmup_mib"].as_f64().unwrap_or(f64::NAN),
        result["rss_end_mib"].as_f64().unwrap_or(f64::NAN),
        result["fds_after_warmup"],
        result["fds_end"],
        if result["flat"] == true {
            "flat"
        } else {
            "NOT FLAT"
        }
    );
    println!("wrote {}", path.display());
    if !anomalies.is_empty() {
        println!("CORRECTNESS PROBLEMS: {anomalies:?}");
        return Ok(1);
    }
    Ok(if result["flat"] == true { 0 } else { 1 })
}

fn brief(r: &Run) -> String {
    let g = |k: &str| r.values.get(k).copied();
    let mut parts = Vec::new();
    if let Some(v) = g("cold_start_ms") {
        parts.push(format!("cold {v:.1} ms"));
    }
    if let Some(v) = g("idle_rss_mib") {
        parts.push(format!("rss {v:.1} MiB"));
    }
    if let Some(v) = g("latency_p50_us") {
        parts.push(format!("p50 {v:.0} µs"));
    }
    if let Some(v) = g("latency_p99_us") {
        parts.push(format!("p99 {v:.0} µs"));
    }
    if let Some(v) = g(report::CPU_LATENCY) {
        parts.push(format!("cpu seq {v:.1} µs/req"));
    }
    if let Some(v) = g("throughput_rps") {
        parts.push(format!("{v:.0} req/s"));
    }
    if let Some(v) = g(report::CPU_THROUGHPUT) {
        parts.push(format!("cpu load {v:.1} µs/req"));
    }
    if let Some(v) = g("blob_json_ms") {
        parts.push(format!("16M json {v:.1} ms"));
    }
    if let Some(v) = g("blob_sse_ms") {
        parts.push(format!("16M sse {v:.1} ms"));
    }
    if let Some(v) = g("stream_ms") {
        parts.push(format!("stream {v:.1} ms"));
    }
    if let Some(v) = g("peak_rss_mib") {
        parts.push(format!("peak {v:.1} MiB"));
    }
    if let Some(v) = g("exit_ms") {
        parts.push(format!("exit {v:.1} ms"));
    }
    match r.delete_sent {
        Some(true) => parts.push("DELETE ok".into()),
        Some(false) => parts.push("no DELETE".into()),
        None => {}
    }
    parts.join(", ")
}

/// One target, one round: every metric in a fixed order.
async fn run_target(
    target: &Target,
    mock: &mock::Mock,
    plan: &Plan,
    round: usize,
    logs: &Path,
) -> Run {
    let mut run = Run::default();
    let tag = format!("bench-{}-r{}", target.slug(), round + 1);
    let config = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            run.fail("setup", e);
            return run;
        }
    };
    let t0 = Instant::now();
    let (client, init) = match target {
        Target::Direct => match Direct::connect(&mock.url, &tag).await {
            Ok((d, init)) => (Client::Direct(Arc::new(d)), init),
            Err(e) => {
                run.fail("initialize", e);
                return run;
            }
        },
        Target::Clerk { .. } | Target::McpRemote { .. } => {
            let cmd = bridge_command(target, &mock.url, config.path());
            match spawn_and_init(cmd, logs, &tag).await {
                Ok(x) => x,
                Err(e) => {
                    run.fail("initialize", e);
                    return run;
                }
            }
        }
    };
    run.set("cold_start_ms", ms(init.at - t0));
    if let Err(e) = driver::check_ok(&init) {
        run.fail("initialize", e);
    }
    if let Err(e) = client.notify(driver::INITIALIZED.into()).await {
        run.fail("initialized", e);
    }
    let pid = match &client {
        Client::Stdio(s) => Some(s.pid),
        Client::Direct(_) => None,
    };
    tokio::time::sleep(Duration::from_millis(plan.settle_ms)).await;
    if let Some(pid) = pid
        && let Some(kib) = driver::tree_kib(pid, "VmRSS")
    {
        run.set("idle_rss_mib", kib as f64 / 1024.0);
    }
    if let Some(pid) = pid
        && let Some(kib) = driver::tree_kib(pid, "RssAnon")
    {
        run.set("idle_anon_mib", kib as f64 / 1024.0);
    }

    phases(&client, plan, mock, &mut run).await;

    match &client {
        Client::Direct(d) => {
            match d.delete().await {
                Ok(t) => run.set("exit_ms", ms(t)),
                Err(e) => run.fail("DELETE", e),
            }
            run.delete_sent = Some(mock.state.deleted_at(&d.session).is_some());
        }
        Client::Stdio(s) => {
            if let Some(kib) = driver::tree_kib(s.pid, "VmHWM") {
                run.set("peak_rss_mib", kib as f64 / 1024.0);
            }
            let (eof, exit) = s.close_and_wait(EXIT_TIMEOUT).await;
            run.exited = Some(exit.is_some());
            match exit {
                Some(t) => run.set("exit_ms", ms(t)),
                None => run.fail(
                    "exit",
                    format!("still running {EXIT_TIMEOUT:?} after stdin EOF; killed"),
                ),
            }
            // Give a DELETE sent just before exit a moment to be recorded.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let deleted = mock
                .state
                .session_of(&tag)
                .and_then(|sid| mock.state.deleted_at(&sid));
            run.delete_sent = Some(deleted.is_some());
            run.delete_after_eof_ms = deleted.map(|d| ms(d.saturating_duration_since(eof)));
            for a in s.anomalies() {
                run.fail("stdout", a);
            }
            run.other_notifications = s.notifications();
            if !run.failures.is_empty() {
                run.failures.push(format!(
                    "stderr of the process: {}",
                    s.stderr_path.display()
                ));
            }
        }
    }
    run
}

/// How an MCP client would spawn a bridge (not for direct).
fn bridge_command(target: &Target, url: &str, config: &Path) -> Command {
    match target {
        Target::Clerk { bin, .. } => {
            let mut cmd = Command::new(bin);
            cmd.arg(url)
                .arg("--config-dir")
                .arg(config)
                .env("CLERK_MCP_NO_BROWSER", "true");
            cmd
        }
        Target::McpRemote { node, script } => {
            let mut cmd = Command::new(node);
            cmd.arg(script)
                .arg(url)
                .args(["--transport", "http-only", "--allow-http"])
                .env("MCP_REMOTE_CONFIG_DIR", config);
            cmd
        }
        Target::Direct => unreachable!("direct is not a process"),
    }
}

/// A bridge spawned and initialized for one of the scenarios (`scenarios.rs`).
async fn scenario_bridge(
    target: &Target,
    mock: &mock::Mock,
    logs: &Path,
    tag: &str,
) -> Result<(Client, tempfile::TempDir)> {
    let config = tempfile::tempdir()?;
    let (client, _) =
        spawn_and_init(bridge_command(target, &mock.url, config.path()), logs, tag).await?;
    client.notify(driver::INITIALIZED.into()).await?;
    Ok((client, config))
}

async fn spawn_and_init(cmd: Command, logs: &Path, tag: &str) -> Result<(Client, driver::Reply)> {
    let stderr = logs.join(format!("{tag}.stderr"));
    let proc = Stdio::spawn(cmd, stderr.clone())?;
    let init = match proc.call(0, driver::initialize(tag), CALL_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => {
            let tail = std::fs::read_to_string(&stderr).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(15).collect();
            bail!(
                "{e:#}; stderr tail:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    };
    Ok((Client::Stdio(Box::new(proc)), init))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Everything after initialize, in order; a failing phase is recorded and the next runs.
async fn phases(c: &Client, plan: &Plan, mock: &mock::Mock, run: &mut Run) {
    let mut next_id = 1u64;
    let mut id = || {
        next_id += 1;
        next_id
    };
    // Warm-up (connections, caches): not measured, still checked.
    for _ in 0..plan.warmup {
        let i = id();
        if let Err(e) = echo_once(c, i).await {
            run.fail("warm-up", e);
            break;
        }
    }
    // CPU time (user + system) of the proxy: the bridge's process tree, from
    // /proc/PID/stat; for direct, which has no proxy process, this benchmark's own client
    // threads (the mock server runs on threads of its own). The unit is a clock tick (10 ms
    // at the usual USER_HZ of 100) and each reading is rounded down to one, so one round's
    // scenario moves it by only a few ticks: the figure per request is the CPU time summed
    // over all rounds ÷ all their requests (thousands; `report::Summary::pooled`), not a
    // per-round median.
    let cpu = || match c {
        Client::Direct(_) => driver::own_threads_cpu_ticks("bench-driver"),
        Client::Stdio(s) => driver::tree_cpu_ticks(s.pid),
    };
    // Sequential latency.
    let cpu0 = cpu();
    let seq = latency(c, plan.latency_n, &mut id).await;
    if let (Ok(_), Some(a), Some(b)) = (&seq, cpu0, cpu()) {
        run.set_cpu(report::CPU_LATENCY, b.saturating_sub(a), plan.latency_n);
    }
    match seq {
        Ok(mut s) => {
            s.sort_by(|a, b| a.total_cmp(b));
            run.set("latency_p50_us", report::percentile(&s, 50.0));
            run.set("latency_p90_us", report::percentile(&s, 90.0));
            run.set("latency_p99_us", report::percentile(&s, 99.0));
        }
        Err(e) => run.fail("latency", e),
    }
    // Throughput, `window` in flight, in the steady state: a short warm-up first opens
    // the `window` connections (for every target alike), so the figure is not the cost of
    // 64 TCP handshakes.
    let warm = plan.window as u64 * 8;
    let warm_first = id();
    for _ in 1..warm {
        id();
    }
    if let Err(e) = c.bulk(warm_first, warm, plan.window, BULK_TIMEOUT).await {
        run.fail("throughput warm-up", e);
    }
    let first = id();
    for _ in 1..plan.throughput_n {
        id();
    }
    let cpu0 = cpu();
    match c
        .bulk(first, plan.throughput_n, plan.window, BULK_TIMEOUT)
        .await
    {
        Ok(t) => {
            run.set("throughput_rps", plan.throughput_n as f64 / t.as_secs_f64());
            if let (Some(a), Some(b)) = (cpu0, cpu()) {
                run.set_cpu(
                    report::CPU_THROUGHPUT,
                    b.saturating_sub(a),
                    plan.throughput_n,
                );
            }
        }
        Err(e) => run.fail("throughput", e),
    }
    // One large result, JSON.
    match repeat(plan.blob_reps, || blob_once(c, id(), plan.blob_bytes, mock)).await {
        Ok(t) => run.set("blob_json_ms", t),
        Err(e) => run.fail("16 MiB JSON", e),
    }
    // From here on the session answers with SSE.
    let i = id();
    match c.call(i, driver::sse_mode(i, true), CALL_TIMEOUT).await {
        Ok(r) => {
            if let Err(e) = driver::check_ok(&r) {
                run.fail("sse_mode", e)
            }
        }
        Err(e) => run.fail("sse_mode", e),
    }
    match latency(c, plan.sse_latency_n, &mut id).await {
        Ok(mut s) => {
            s.sort_by(|a, b| a.total_cmp(b));
            run.set("sse_latency_p50_us", report::percentile(&s, 50.0));
        }
        Err(e) => run.fail("SSE latency", e),
    }
    match repeat(plan.blob_reps, || blob_once(c, id(), plan.blob_bytes, mock)).await {
        Ok(t) => run.set("blob_sse_ms", t),
        Err(e) => run.fail("16 MiB SSE", e),
    }
    match repeat(plan.stream_reps, || {
        stream_once(c, id(), plan.stream_events)
    })
    .await
    {
        Ok(t) => run.set("stream_ms", t),
        Err(e) => run.fail("SSE stream", e),
    }
}

/// Run `f` `n` times; the median in ms.
async fn repeat<F, Fut>(n: usize, mut f: F) -> Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Duration>>,
{
    let mut v = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        v.push(ms(f().await?));
    }
    Ok(report::median(&v).expect("at least one"))
}

async fn echo_once(c: &Client, id: u64) -> Result<Duration> {
    let t0 = Instant::now();
    let r = c.call(id, driver::echo(id), CALL_TIMEOUT).await?;
    let d = r.at.saturating_duration_since(t0);
    driver::check_echo(&r, id)?;
    Ok(d)
}

async fn latency(c: &Client, n: u64, id: &mut impl FnMut() -> u64) -> Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(n as usize);
    for _ in 0..n {
        samples.push(us(echo_once(c, id()).await?));
    }
    Ok(samples)
}

async fn blob_once(c: &Client, id: u64, n: usize, mock: &mock::Mock) -> Result<Duration> {
    let t0 = Instant::now();
    let r = c.call(id, driver::blob(id, n), CALL_TIMEOUT).await?;
    let d = r.at.saturating_duration_since(t0);
    let text = driver::result_text(&r)?;
    let want = &mock.state.blob[..n];
    if text.len() != n {
        bail!("payload is {} bytes, expected {n}", text.len());
    }
    let (got_h, want_h) = (
        driver::sha256_hex(text.as_bytes()),
        driver::sha256_hex(want),
    );
    if got_h != want_h {
        bail!("payload SHA-256 {got_h}, expected {want_h}");
    }
    Ok(d)
}

async fn stream_once(c: &Client, id: u64, n: usize) -> Result<Duration> {
    let t0 = Instant::now();
    let r = c.call(id, driver::stream(id, n), CALL_TIMEOUT).await?;
    let d = r.at.saturating_duration_since(t0);
    let text = driver::result_text(&r)?;
    if text != format!("streamed {n}") {
        bail!("unexpected stream result {text:?}");
    }
    if r.progress.len() != n {
        bail!(
            "{} of {n} progress notifications arrived before the result",
            r.progress.len()
        );
    }
    if let Some((k, v)) = r
        .progress
        .iter()
        .enumerate()
        .find(|(k, v)| **v != (*k + 1) as f64)
    {
        bail!("progress out of order: event {} carried {v}", k + 1);
    }
    Ok(d)
}

// ---------------------------------------------------------------------------------------
// Finding the programs.

/// The binaries of `--bin` (at most two, with distinct labels), else `CLERK_BENCH_BIN`,
/// else `target/release/clerk-mcp-server` (built when missing).
fn clerk_binaries(args: &Args) -> Result<Binaries> {
    if args.bins.len() > 2 {
        bail!("--bin at most twice (an A/B run of two binaries)");
    }
    let list = if !args.bins.is_empty() {
        args.bins.clone()
    } else if let Some(p) = std::env::var_os("CLERK_BENCH_BIN") {
        vec![(None, PathBuf::from(p))]
    } else {
        vec![(None, default_clerk_binary()?)]
    };
    for (_, p) in &list {
        if !p.exists() {
            bail!("{} does not exist", p.display());
        }
    }
    let bins = Binaries { list };
    if bins.ab() {
        let (a, b) = (bins.name(0), bins.name(1));
        if a == b {
            bail!("the two --bin binaries need different labels: --bin old=PATH --bin new=PATH");
        }
        for n in [&a, &b] {
            if ["direct", "clerk", "mcp-remote", "clerk-mcp-server"].contains(&n.as_str()) {
                bail!("--bin label {n:?} is taken; pick another");
            }
        }
    }
    Ok(bins)
}

fn default_clerk_binary() -> Result<PathBuf> {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("target"));
    let bin = target_dir.join("release").join("clerk-mcp-server");
    if !bin.exists() {
        println!("{} is missing: cargo build --release", bin.display());
        let status = std::process::Command::new("nice")
            .args(["cargo", "build", "--release", "--bin", "clerk-mcp-server"])
            .current_dir(manifest_dir())
            .status()
            .context("running cargo build --release")?;
        if !status.success() {
            bail!("cargo build --release failed");
        }
    }
    if let Some(newer) = newer_source(&bin) {
        println!(
            "warning: {} is older than {}; the numbers are for the old build (cargo build --release)",
            bin.display(),
            newer.display()
        );
    }
    Ok(bin)
}

/// A source file newer than `bin`, if any.
fn newer_source(bin: &Path) -> Option<PathBuf> {
    let built = std::fs::metadata(bin).ok()?.modified().ok()?;
    let mut stack = vec![manifest_dir().join("src")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.metadata().ok()?.modified().ok()? > built {
                return Some(p);
            }
        }
    }
    None
}

fn find_mcp_remote(args: &Args) -> Option<(PathBuf, PathBuf)> {
    let script = args
        .mcp_remote
        .clone()
        .or_else(|| std::env::var_os("MCP_REMOTE_JS").map(PathBuf::from))
        .unwrap_or_else(|| {
            manifest_dir().join("interop/node/node_modules/mcp-remote/dist/proxy.js")
        });
    if !script.exists() {
        println!(
            "note: mcp-remote not found at {}; its column is skipped. Install it with \
             (cd interop/node && npm ci), or pass --mcp-remote PATH/dist/proxy.js",
            script.display()
        );
        return None;
    }
    let node = PathBuf::from("node");
    match std::process::Command::new(&node).arg("--version").output() {
        Ok(o) if o.status.success() => Some((node, script)),
        _ => {
            println!("note: node is not on PATH; the mcp-remote column is skipped");
            None
        }
    }
}

fn mcp_remote_version(script: &Path) -> Option<String> {
    let pkg = script.parent()?.parent()?.join("package.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(pkg).ok()?).ok()?;
    v["version"].as_str().map(str::to_owned)
}

async fn version_of(cmd: &mut Command) -> Option<String> {
    let o = cmd.output().await.ok()?;
    Some(String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}
