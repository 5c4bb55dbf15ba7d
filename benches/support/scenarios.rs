//! Two scenarios outside the interleaved rounds, each on one bridge process:
//!
//! - **paused reader** (memory bounds): the server streams a flood of progress
//!   notifications while the client stops reading stdout for a while. The bridge must push
//!   back on the HTTP stream instead of buffering the flood, so its peak RSS stays flat.
//! - **soak**: 1,000,000 requests through one process, 64 in flight. Resident
//!   memory and open file descriptors, sampled every 100,000, must end where they were
//!   after the warm-up.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::driver::{self, Client};

/// How long a paused client stops reading.
pub const PAUSE: Duration = Duration::from_secs(2);
/// Progress notifications the server sends during the paused-reader case (~13 MiB).
pub const FLOOD_EVENTS: usize = 100_000;

fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| k as f64 / 1024.0)
}

/// The paused-reader case on an initialized stdio bridge.
pub async fn paused_reader(client: &Client, events: usize, pause: Duration) -> Result<Value> {
    let Client::Stdio(s) = client else {
        bail!("the paused-reader case needs a stdio bridge");
    };
    let hwm_before = driver::tree_kib(s.pid, "VmHWM");
    let id = 900_001;
    s.pause();
    let t0 = Instant::now();
    let (reply, during) = tokio::join!(
        s.call(id, driver::stream(id, events), Duration::from_secs(300)),
        async {
            tokio::time::sleep(pause).await;
            let during = (
                driver::tree_kib(s.pid, "VmRSS"),
                driver::tree_kib(s.pid, "VmHWM"),
            );
            s.resume();
            during
        }
    );
    let reply = reply?;
    let total = t0.elapsed();
    if reply.progress.len() != events {
        bail!(
            "{} of {events} progress notifications arrived",
            reply.progress.len()
        );
    }
    if reply.progress.windows(2).any(|w| w[0] >= w[1]) {
        bail!("progress notifications arrived out of order");
    }
    let hwm_end = driver::tree_kib(s.pid, "VmHWM");
    Ok(json!({
        "events": events,
        "pause_s": pause.as_secs_f64(),
        "total_s": total.as_secs_f64(),
        "peak_rss_before_mib": mib(hwm_before),
        "rss_while_paused_mib": mib(during.0),
        "peak_rss_after_mib": mib(hwm_end),
        "peak_growth_mib": mib(hwm_end.zip(hwm_before).map(|(a, b)| a.saturating_sub(b))),
    }))
}

/// Open file descriptors of a process.
fn fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// The soak: `warmup` requests, then `total` in steps of `step`, 64 in flight, sampling
/// RSS and fds after each step. `flat` is the verdict: the same fds as after the warm-up,
/// and RSS within 1 MiB of it.
pub async fn soak(client: &Client, pid: u32, warmup: u64, total: u64, step: u64) -> Result<Value> {
    let timeout = Duration::from_secs(600);
    client.bulk(1, warmup, 64, timeout).await?;
    let base_rss = driver::status_kib(pid, "VmRSS");
    let base_fds = fds(pid);
    println!(
        "soak: after {warmup} warm-up requests: RSS {:.2} MiB, {} fds",
        mib(base_rss).unwrap_or(f64::NAN),
        base_fds.unwrap_or(0)
    );
    let mut samples = Vec::new();
    let mut next = 1 + warmup;
    let mut done = 0;
    let t0 = Instant::now();
    while done < total {
        let n = step.min(total - done);
        let took = client.bulk(next, n, 64, timeout).await?;
        next += n;
        done += n;
        let (rss, fd) = (driver::status_kib(pid, "VmRSS"), fds(pid));
        println!(
            "soak: {done:>9} requests  RSS {:.2} MiB  {} fds  {:.0} req/s",
            mib(rss).unwrap_or(f64::NAN),
            fd.unwrap_or(0),
            n as f64 / took.as_secs_f64()
        );
        samples.push(json!({"requests": done, "rss_mib": mib(rss), "fds": fd,
                            "req_per_s": n as f64 / took.as_secs_f64()}));
    }
    let end_rss = driver::status_kib(pid, "VmRSS");
    let end_fds = fds(pid);
    let growth_kib = end_rss.zip(base_rss).map(|(a, b)| a as i64 - b as i64);
    let flat = end_fds == base_fds && growth_kib.is_some_and(|g| g <= 1024);
    Ok(json!({
        "warmup": warmup,
        "requests": total,
        "seconds": t0.elapsed().as_secs_f64(),
        "rss_after_warmup_mib": mib(base_rss),
        "rss_end_mib": mib(end_rss),
        "rss_growth_kib": growth_kib,
        "fds_after_warmup": base_fds,
        "fds_end": end_fds,
        "flat": flat,
        "samples": samples,
    }))
}
