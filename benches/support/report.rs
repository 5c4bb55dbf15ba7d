//! Medians, ratios, budgets; the stdout table, latest.json and ratios.svg.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::driver;

/// Target slots. `CLERK` is the clerk-mcp-server binary (A of an A/B run), `CLERK_B` the
/// second binary of an A/B run (`--bin` given twice).
pub const DIRECT: usize = 0;
pub const CLERK: usize = 1;
pub const REMOTE: usize = 2;
pub const CLERK_B: usize = 3;
pub const SLOTS: usize = 4;
/// Column order everywhere.
pub const ORDER: [usize; SLOTS] = [DIRECT, CLERK, CLERK_B, REMOTE];

pub struct MetricDef {
    pub key: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    pub higher_is_better: bool,
    /// Only a bridge process has it (memory): no direct column, no ratio to direct.
    pub process_only: bool,
    /// CPU time per request: the figure is the total over all rounds ÷ all their requests
    /// (`Run::cpu`), not the median of per-round figures, which at 10 ms per clock tick
    /// would mostly be tick noise.
    pub pooled: bool,
}

const fn m(
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    higher_is_better: bool,
    process_only: bool,
) -> MetricDef {
    MetricDef {
        key,
        label,
        unit,
        higher_is_better,
        process_only,
        pooled: false,
    }
}

/// A CPU-per-request metric (pooled over the rounds).
const fn cpu(key: &'static str, label: &'static str) -> MetricDef {
    MetricDef {
        key,
        label,
        unit: "µs",
        higher_is_better: false,
        process_only: false,
        pooled: true,
    }
}

/// The CPU metrics: the scenario each one is measured around.
pub const CPU_LATENCY: &str = "cpu_latency_us_per_req";
pub const CPU_THROUGHPUT: &str = "cpu_us_per_req";

pub const METRICS: &[MetricDef] = &[
    m(
        "cold_start_ms",
        "cold start (spawn → initialize reply)",
        "ms",
        false,
        false,
    ),
    m(
        "idle_rss_mib",
        "idle RSS after initialize",
        "MiB",
        false,
        true,
    ),
    m(
        "idle_anon_mib",
        "  of which anonymous (heap, stacks)",
        "MiB",
        false,
        true,
    ),
    m(
        "latency_p50_us",
        "sequential tools/call p50",
        "µs",
        false,
        false,
    ),
    m(
        "latency_p90_us",
        "sequential tools/call p90",
        "µs",
        false,
        false,
    ),
    m(
        "latency_p99_us",
        "sequential tools/call p99",
        "µs",
        false,
        false,
    ),
    cpu(CPU_LATENCY, "CPU/request, sequential (direct: client)"),
    m(
        "throughput_rps",
        "throughput, 64 in flight",
        "req/s",
        true,
        false,
    ),
    cpu(CPU_THROUGHPUT, "CPU/request, 64 in flight (direct: client)"),
    m("blob_json_ms", "16 MiB result, JSON", "ms", false, false),
    m(
        "blob_sse_ms",
        "16 MiB result, one SSE event",
        "ms",
        false,
        false,
    ),
    m("stream_ms", "2,000-event SSE stream", "ms", false, false),
    m(
        "sse_latency_p50_us",
        "tools/call p50, SSE answers",
        "µs",
        false,
        false,
    ),
    m(
        "peak_rss_mib",
        "peak RSS of the process tree (VmHWM)",
        "MiB",
        false,
        true,
    ),
    m(
        "exit_ms",
        "exit after stdin EOF (direct: DELETE)",
        "ms",
        false,
        false,
    ),
];

/// CPU time measured around one scenario of one round.
#[derive(Default, Clone, Copy)]
pub struct CpuSample {
    /// User + system time, in clock ticks (`driver::clk_tck()` per second).
    pub ticks: u64,
    pub requests: u64,
}

/// One target in one round.
#[derive(Default, Clone)]
pub struct Run {
    pub values: BTreeMap<&'static str, f64>,
    /// For the pooled (CPU) metrics: what the per-round value was computed from.
    pub cpu: BTreeMap<&'static str, CpuSample>,
    /// None: not applicable or not known.
    pub delete_sent: Option<bool>,
    pub delete_after_eof_ms: Option<f64>,
    pub exited: Option<bool>,
    pub failures: Vec<String>,
    pub other_notifications: u64,
}

impl Run {
    pub fn set(&mut self, key: &'static str, v: f64) {
        debug_assert!(METRICS.iter().any(|m| m.key == key), "{key}");
        self.values.insert(key, v);
    }
    /// A CPU metric: `ticks` of CPU time over `requests` requests.
    pub fn set_cpu(&mut self, key: &'static str, ticks: u64, requests: u64) {
        debug_assert!(METRICS.iter().any(|m| m.key == key && m.pooled), "{key}");
        if requests == 0 {
            return;
        }
        self.cpu.insert(key, CpuSample { ticks, requests });
        self.set(key, driver::ticks_to_us(ticks) / requests as f64);
    }
    pub fn fail(&mut self, phase: &str, e: impl std::fmt::Display) {
        self.failures.push(format!("{phase}: {e:#}"));
    }
}

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// Nearest-rank percentile of samples (q in 0..=100).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

pub struct Summary {
    /// runs[target][round]
    pub runs: [Vec<Run>; SLOTS],
    /// Which targets took part.
    pub present: [bool; SLOTS],
    /// Each target's name in the table and as a JSON key: "direct", "clerk-mcp-server"
    /// (A/B: the two binaries' labels), "mcp-remote".
    pub names: [String; SLOTS],
}

impl Summary {
    /// An A/B run: two clerk-mcp-server binaries.
    pub fn ab(&self) -> bool {
        self.present[CLERK_B]
    }
    /// The targets that took part, in column order.
    pub fn order(&self) -> impl Iterator<Item = usize> + '_ {
        ORDER.into_iter().filter(|t| self.present[*t])
    }
    /// The clerk-mcp-server binaries (one, or A and B).
    pub fn clerks(&self) -> Vec<usize> {
        if self.ab() {
            vec![CLERK, CLERK_B]
        } else {
            vec![CLERK]
        }
    }
    pub fn rounds(&self, t: usize, key: &str) -> Vec<f64> {
        self.runs[t]
            .iter()
            .filter_map(|r| r.values.get(key).copied())
            .collect()
    }
    /// The figure of a metric: the median of the rounds, or for a pooled metric the total
    /// over the rounds.
    pub fn med(&self, t: usize, key: &str) -> Option<f64> {
        if !self.present[t] {
            return None;
        }
        if METRICS.iter().any(|m| m.key == key && m.pooled) {
            let c = self.pooled(t, key)?;
            return Some(driver::ticks_to_us(c.ticks) / c.requests as f64);
        }
        median(&self.rounds(t, key))
    }
    /// A CPU metric summed over the rounds; None when no round measured it.
    pub fn pooled(&self, t: usize, key: &str) -> Option<CpuSample> {
        let mut total = CpuSample::default();
        for c in self.runs[t].iter().filter_map(|r| r.cpu.get(key)) {
            total.ticks += c.ticks;
            total.requests += c.requests;
        }
        (total.requests > 0).then_some(total)
    }
    pub fn ratio(&self, t: usize, base: usize, key: &str) -> Option<f64> {
        let def = METRICS.iter().find(|m| m.key == key)?;
        if base == DIRECT && def.process_only {
            return None;
        }
        Some(self.med(t, key)? / self.med(base, key)?)
    }
    pub fn all_deleted(&self, t: usize) -> Option<bool> {
        let v: Vec<bool> = self.runs[t].iter().filter_map(|r| r.delete_sent).collect();
        if v.is_empty() {
            None
        } else {
            Some(v.iter().all(|d| *d))
        }
    }
    pub fn failures(&self, t: usize) -> Vec<String> {
        self.runs[t]
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                r.failures
                    .iter()
                    .map(move |f| format!("round {}: {f}", i + 1))
            })
            .collect()
    }
}

/// One budget, judged for one target.
pub struct Verdict {
    pub held: Option<bool>,
    pub detail: String,
}

pub struct BudgetDef {
    pub name: &'static str,
    pub rule: &'static str,
}

pub const BUDGETS: &[BudgetDef] = &[
    BudgetDef {
        name: "cold start",
        rule: "≤ direct + 10 ms",
    },
    BudgetDef {
        name: "idle RSS",
        rule: "≤ 6 MiB",
    },
    BudgetDef {
        name: "latency p50",
        rule: "≤ 1.3× direct",
    },
    BudgetDef {
        name: "latency p99",
        rule: "≤ 2× direct",
    },
    BudgetDef {
        name: "throughput (64 in flight)",
        rule: "≥ 0.8× direct",
    },
    BudgetDef {
        name: "16 MiB result, JSON",
        rule: "≤ 1.5× direct",
    },
    BudgetDef {
        name: "16 MiB result, one SSE event",
        rule: "≤ 1.5× direct",
    },
    BudgetDef {
        name: "2,000-event stream",
        rule: "≤ 2× direct",
    },
    BudgetDef {
        name: "peak RSS",
        rule: "≤ 12 MiB + 2× largest message",
    },
    BudgetDef {
        name: "exit after EOF",
        rule: "≤ 50 ms, DELETE sent",
    },
];

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn fmt_ratio(v: Option<f64>) -> String {
    match v {
        Some(r) if r >= 100.0 => format!("{r:.0}×"),
        Some(r) if r >= 10.0 => format!("{r:.1}×"),
        Some(r) => format!("{r:.2}×"),
        None => "–".into(),
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(fmt_num).unwrap_or_else(|| "–".into())
}

/// Judge every budget for target `t` (largest message in MiB for the peak RSS rule).
pub fn verdicts(s: &Summary, t: usize, largest_mib: f64) -> Vec<Verdict> {
    let med = |k: &str| s.med(t, k);
    let dir = |k: &str| s.med(DIRECT, k);
    let ratio_rule = |k: &str, limit: f64, at_least: bool| -> Verdict {
        match (med(k), dir(k)) {
            (Some(v), Some(d)) => {
                let r = v / d;
                let held = if at_least { r >= limit } else { r <= limit };
                let how = if held {
                    "held".to_owned()
                } else if at_least {
                    format!("missed by {:.0}%", (1.0 - r / limit) * 100.0)
                } else {
                    format!("missed by {:.0}%", (r / limit - 1.0) * 100.0)
                };
                Verdict {
                    held: Some(held),
                    detail: format!("{}× direct ({how})", fmt_num(r)),
                }
            }
            _ => Verdict {
                held: None,
                detail: "not measured".into(),
            },
        }
    };
    let abs_rule = |k: &str, limit: f64, unit: &str| -> Verdict {
        match med(k) {
            Some(v) => {
                let held = v <= limit;
                let how = if held {
                    "held".to_owned()
                } else {
                    format!("missed by {} {unit}", fmt_num(v - limit))
                };
                Verdict {
                    held: Some(held),
                    detail: format!("{} {unit} of {} ({how})", fmt_num(v), fmt_num(limit)),
                }
            }
            None => Verdict {
                held: None,
                detail: "not measured".into(),
            },
        }
    };
    let cold = match (med("cold_start_ms"), dir("cold_start_ms")) {
        (Some(v), Some(d)) => {
            let limit = d + 10.0;
            let held = v <= limit;
            let how = if held {
                "held".to_owned()
            } else {
                format!("missed by {} ms", fmt_num(v - limit))
            };
            Verdict {
                held: Some(held),
                detail: format!(
                    "{} ms, direct {} ms + 10 = {} ({how})",
                    fmt_num(v),
                    fmt_num(d),
                    fmt_num(limit)
                ),
            }
        }
        _ => Verdict {
            held: None,
            detail: "not measured".into(),
        },
    };
    let exit = match (med("exit_ms"), s.all_deleted(t)) {
        (Some(v), deleted) => {
            let held = v <= 50.0 && deleted == Some(true);
            let del = match deleted {
                Some(true) => "DELETE sent",
                Some(false) => "DELETE NOT sent",
                None => "DELETE unknown",
            };
            let how = if held {
                "held".to_owned()
            } else if v > 50.0 {
                format!("missed by {} ms", fmt_num(v - 50.0))
            } else {
                "missed".to_owned()
            };
            Verdict {
                held: Some(held),
                detail: format!("{} ms, {del} ({how})", fmt_num(v)),
            }
        }
        (None, _) => {
            let exited = s.runs[t].iter().filter_map(|r| r.exited).any(|e| !e);
            Verdict {
                held: if exited { Some(false) } else { None },
                detail: if exited {
                    "did not exit on stdin EOF (killed after the timeout)".into()
                } else {
                    "not measured".into()
                },
            }
        }
    };
    vec![
        cold,
        abs_rule("idle_rss_mib", 6.0, "MiB"),
        ratio_rule("latency_p50_us", 1.3, false),
        ratio_rule("latency_p99_us", 2.0, false),
        ratio_rule("throughput_rps", 0.8, true),
        ratio_rule("blob_json_ms", 1.5, false),
        ratio_rule("blob_sse_ms", 1.5, false),
        ratio_rule("stream_ms", 2.0, false),
        abs_rule("peak_rss_mib", 12.0 + 2.0 * largest_mib, "MiB"),
        exit,
    ]
}

fn held_word(h: Option<bool>) -> &'static str {
    match h {
        Some(true) => "HELD",
        Some(false) => "MISSED",
        None => "n/a",
    }
}

/// A column of the table: one target's figure, or the ratio of two targets' figures.
struct Col {
    head: String,
    width: usize,
    /// (target, base): base None for a figure.
    of: (usize, Option<usize>),
}

impl Col {
    fn new(head: String, width: usize, of: (usize, Option<usize>)) -> Col {
        let width = width.max(head.chars().count());
        Col { head, width, of }
    }
}

/// The table's columns: figures, then ratios. With one clerk-mcp-server binary: direct,
/// clerk, mcp-remote │ clerk÷dir, remote÷dir, clerk÷remote. A/B: direct, A, B, mcp-remote
/// │ A÷dir, B÷dir, B÷A, remote÷dir.
fn columns(s: &Summary) -> (Vec<Col>, Vec<Col>) {
    let short = |t: usize| -> String {
        match t {
            DIRECT => "direct".into(),
            REMOTE => "mcp-remote".into(),
            _ if s.ab() => s.names[t].clone(),
            _ => "clerk".into(),
        }
    };
    let mut values = vec![
        Col::new(short(DIRECT), 10, (DIRECT, None)),
        Col::new(short(CLERK), 12, (CLERK, None)),
    ];
    if s.ab() {
        values.push(Col::new(short(CLERK_B), 12, (CLERK_B, None)));
    }
    values.push(Col::new(short(REMOTE), 11, (REMOTE, None)));
    let ratio = |t: usize, base: usize, width: usize| {
        let n = |t: usize| match t {
            DIRECT => "dir".to_owned(),
            REMOTE => "remote".to_owned(),
            _ => short(t),
        };
        Col::new(format!("{}÷{}", n(t), n(base)), width, (t, Some(base)))
    };
    let ratios = if s.ab() {
        vec![
            ratio(CLERK, DIRECT, 9),
            ratio(CLERK_B, DIRECT, 9),
            ratio(CLERK_B, CLERK, 9),
            ratio(REMOTE, DIRECT, 11),
        ]
    } else {
        vec![
            ratio(CLERK, DIRECT, 9),
            ratio(REMOTE, DIRECT, 11),
            ratio(CLERK, REMOTE, 11),
        ]
    };
    (values, ratios)
}

pub fn table(s: &Summary, largest_mib: f64) -> String {
    let mut out = String::new();
    let w = 48;
    let (values, ratios) = columns(s);
    let row = |label: &str, cells: &[String], with_ratios: bool| -> String {
        let mut line = format!("{label:<w$}");
        let cols = values
            .iter()
            .chain(if with_ratios { &ratios[..] } else { &[] });
        for (i, (c, v)) in cols.zip(cells).enumerate() {
            line.push_str(if i == values.len() { " │ " } else { " " });
            let _ = write!(line, "{v:>width$}", width = c.width);
        }
        line
    };
    let heads: Vec<String> = values
        .iter()
        .chain(&ratios)
        .map(|c| c.head.clone())
        .collect();
    let _ = writeln!(out, "{}", row("metric (median of rounds)", &heads, true));
    let width = w
        + values
            .iter()
            .chain(&ratios)
            .map(|c| c.width + 1)
            .sum::<usize>()
        + 2;
    let _ = writeln!(out, "{}", "─".repeat(width));
    for def in METRICS {
        let label = format!("{} [{}]", def.label, def.unit);
        let cells: Vec<String> = values
            .iter()
            .chain(&ratios)
            .map(|c| match c.of {
                (DIRECT, None) if def.process_only => "–".into(),
                (t, None) => fmt_opt(s.med(t, def.key)),
                (t, Some(base)) => fmt_ratio(s.ratio(t, base, def.key)),
            })
            .collect();
        let _ = writeln!(out, "{}", row(&label, &cells, true));
    }
    let del = |t: usize| match s.all_deleted(t) {
        _ if !s.present[t] => "–",
        Some(true) => "yes",
        Some(false) => "NO",
        None => "?",
    };
    let cells: Vec<String> = values.iter().map(|c| del(c.of.0).to_owned()).collect();
    let _ = writeln!(out, "{}", row("session DELETEd on exit", &cells, false));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "CPU time, user + system from /proc/PID/stat (bridges: the process tree; direct: this \
         benchmark's client threads), in clock ticks of 1/{} s, summed over the rounds:",
        driver::clk_tck()
    );
    for t in s.order() {
        let scenario = |key: &str, what: &str| match s.pooled(t, key) {
            Some(c) => format!(
                "{what} {} requests, {} ticks = {} µs/request",
                c.requests,
                c.ticks,
                fmt_num(driver::ticks_to_us(c.ticks) / c.requests as f64)
            ),
            None => format!("{what} not measured"),
        };
        let _ = writeln!(
            out,
            "  {:<18} {};  {}",
            s.names[t],
            scenario(CPU_LATENCY, "sequential:"),
            scenario(CPU_THROUGHPUT, "64 in flight:")
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "budgets, judged on the medians; largest message = {largest_mib:.0} MiB"
    );
    let clerks = s.clerks();
    let judged: Vec<Vec<Verdict>> = clerks
        .iter()
        .map(|t| verdicts(s, *t, largest_mib))
        .collect();
    let remote = s.present[REMOTE].then(|| verdicts(s, REMOTE, largest_mib));
    let first = if s.ab() {
        s.names[CLERK].as_str()
    } else {
        "clerk"
    };
    for (i, b) in BUDGETS.iter().enumerate() {
        let mut others = String::new();
        if s.ab() {
            let v = &judged[1][i];
            let _ = write!(
                others,
                "   [{}: {} {}]",
                s.names[CLERK_B],
                held_word(v.held),
                v.detail
            );
        }
        if let Some(r) = &remote {
            let _ = write!(
                others,
                "   [mcp-remote: {} {}]",
                held_word(r[i].held),
                r[i].detail
            );
        }
        let _ = writeln!(
            out,
            "  {:<7} {:<30} {:<30} {first}: {}{others}",
            held_word(judged[0][i].held),
            b.name,
            b.rule,
            judged[0][i].detail,
        );
    }
    for (t, v) in clerks.iter().zip(&judged) {
        let held = v.iter().filter(|v| v.held == Some(true)).count();
        let of = v.iter().filter(|v| v.held.is_some()).count();
        let _ = writeln!(out, "  {} holds {held} of {of} budgets", s.names[*t]);
    }
    out
}

pub fn to_json(s: &Summary, largest_mib: f64, meta: Value) -> Value {
    let mut metrics = Vec::new();
    for def in METRICS {
        let mut median = serde_json::Map::new();
        let mut rounds = serde_json::Map::new();
        let mut to_direct = serde_json::Map::new();
        let mut to_remote = serde_json::Map::new();
        let mut pooled = serde_json::Map::new();
        for t in s.order() {
            let name = &s.names[t];
            if t == DIRECT && def.process_only {
                continue;
            }
            median.insert(name.clone(), json!(s.med(t, def.key)));
            rounds.insert(name.clone(), json!(s.rounds(t, def.key)));
            if t != DIRECT {
                to_direct.insert(name.clone(), json!(s.ratio(t, DIRECT, def.key)));
            }
            if t != REMOTE && s.present[REMOTE] {
                to_remote.insert(name.clone(), json!(s.ratio(t, REMOTE, def.key)));
            }
            if def.pooled
                && let Some(c) = s.pooled(t, def.key)
            {
                pooled.insert(
                    name.clone(),
                    json!({"ticks": c.ticks, "requests": c.requests}),
                );
            }
        }
        let mut m = json!({
            "key": def.key,
            "label": def.label,
            "unit": def.unit,
            "higher_is_better": def.higher_is_better,
            "median": median,
            "rounds": rounds,
            "ratio_to_direct": to_direct,
            "ratio_to_mcp_remote": to_remote,
        });
        if def.pooled {
            // "median" is the total over the rounds here (see `MetricDef::pooled`).
            m["aggregate"] = json!("total CPU time of all rounds ÷ their requests");
            m["pooled"] = Value::Object(pooled);
        }
        if s.ab() {
            m["ratio_b_to_a"] = json!(s.ratio(CLERK_B, CLERK, def.key));
        }
        metrics.push(m);
    }
    let judge = |t: usize| -> Value {
        if !s.present[t] {
            return Value::Null;
        }
        let v = verdicts(s, t, largest_mib);
        Value::Array(
            BUDGETS
                .iter()
                .zip(v)
                .map(|(b, v)| json!({"budget": b.name, "rule": b.rule, "held": v.held, "detail": v.detail}))
                .collect(),
        )
    };
    let mut budgets = serde_json::Map::new();
    for t in s.clerks().into_iter().chain([REMOTE]) {
        budgets.insert(s.names[t].clone(), judge(t));
    }
    let mut per_target = serde_json::Map::new();
    let mut cpu = serde_json::Map::new();
    for t in s.order() {
        per_target.insert(
            s.names[t].clone(),
            json!({
                "session_deleted_every_round": s.all_deleted(t),
                "delete_after_eof_ms": s.runs[t].iter().map(|r| r.delete_after_eof_ms).collect::<Vec<_>>(),
                "exited_every_round": s.runs[t].iter().all(|r| r.exited != Some(false)),
                "failures": s.failures(t),
                "other_notifications": s.runs[t].iter().map(|r| r.other_notifications).sum::<u64>(),
            }),
        );
        let scenario = |key: &str| {
            s.pooled(t, key).map(|c| {
                json!({
                    "us_per_request": driver::ticks_to_us(c.ticks) / c.requests as f64,
                    "ticks": c.ticks,
                    "requests": c.requests,
                })
            })
        };
        cpu.insert(
            s.names[t].clone(),
            json!({
                "sequential": scenario(CPU_LATENCY),
                "throughput": scenario(CPU_THROUGHPUT),
            }),
        );
    }
    let ab = s.ab().then(|| {
        let keys = [
            CPU_LATENCY,
            CPU_THROUGHPUT,
            "latency_p50_us",
            "latency_p99_us",
            "throughput_rps",
        ];
        let side = |t: usize| {
            let mut m = serde_json::Map::new();
            for k in keys {
                m.insert(
                    k.into(),
                    json!({"value": s.med(t, k), "ratio_to_direct": s.ratio(t, DIRECT, k)}),
                );
            }
            Value::Object(m)
        };
        let mut b_to_a = serde_json::Map::new();
        for k in keys {
            b_to_a.insert(k.into(), json!(s.ratio(CLERK_B, CLERK, k)));
        }
        json!({
            "a": s.names[CLERK],
            "b": s.names[CLERK_B],
            "figures": {
                (s.names[CLERK].clone()): side(CLERK),
                (s.names[CLERK_B].clone()): side(CLERK_B),
            },
            "b_to_a": b_to_a,
            "note": "every metric also has ratio_b_to_a in `metrics`",
        })
    });
    json!({
        "meta": meta,
        "metrics": metrics,
        "cpu": {
            "clk_tck": driver::clk_tck(),
            "method": "utime + stime from /proc/PID/stat around the scenario (bridges: the \
                       process tree; direct: the benchmark's own client threads), summed over \
                       the rounds; one clock tick is the resolution of every reading",
            "targets": cpu,
        },
        "ab": ab,
        "budgets": budgets,
        "targets": per_target,
    })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A hand-written SVG: time metrics as cost relative to direct (log scale, lower is
/// better), and memory in MiB against its budget.
/// A row's label, right-aligned at `x`.
fn row_label(o: &mut String, x: f64, y: f64, label: &str) {
    let _ = writeln!(
        o,
        r#"<text x="{x:.1}" y="{y:.1}" text-anchor="end">{}</text>"#,
        esc(label)
    );
}

/// One bar from `x0` to `x1` at height `by`, with its value written after it.
fn bar(o: &mut String, x0: f64, x1: f64, by: f64, color: &str, text: &str) {
    let _ = writeln!(
        o,
        r#"<rect x="{x0:.1}" y="{by:.1}" width="{:.1}" height="11" fill="{color}"/>"#,
        (x1 - x0).max(1.0)
    );
    let _ = writeln!(
        o,
        r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#222">{}</text>"##,
        x1 + 4.0,
        by + 9.5,
        esc(text)
    );
}

pub fn svg(s: &Summary, largest_mib: f64, subtitle: &str) -> String {
    let rows: Vec<&MetricDef> = METRICS.iter().filter(|m| !m.process_only).collect();
    let mem: Vec<&MetricDef> = METRICS.iter().filter(|m| m.process_only).collect();
    let (w, left, right) = (960.0_f64, 300.0_f64, 40.0_f64);
    let plot_w = w - left - right;
    // One bar per bridge: clerk-mcp-server (A/B: both binaries) and mcp-remote.
    let bars: Vec<usize> = s.clerks().into_iter().chain([REMOTE]).collect();
    let row_h = 10.0 + 12.0 * bars.len() as f64;
    let top = 90.0;
    let panel1_h = rows.len() as f64 * row_h;
    let mem_top = top + panel1_h + 90.0;
    let h = mem_top + mem.len() as f64 * row_h + 60.0;
    // Cost ratio: for "higher is better" metrics the inverse, so every bar reads "× slower".
    let cost = |t: usize, d: &MetricDef| -> Option<f64> {
        let r = s.ratio(t, DIRECT, d.key)?;
        Some(if d.higher_is_better { 1.0 / r } else { r })
    };
    let mut max_r: f64 = 4.0;
    for d in &rows {
        for &t in &bars {
            if let Some(c) = cost(t, d) {
                max_r = max_r.max(c);
            }
        }
    }
    let (lo, hi) = (0.5_f64.ln(), (max_r * 1.3).ln());
    let x = |r: f64| left + (r.max(0.5).ln() - lo) / (hi - lo) * plot_w;
    let colors = ["#888888", "#2563eb", "#ea580c", "#7c3aed"];
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="Helvetica, Arial, sans-serif" font-size="13">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="20" y="30" font-size="18" font-weight="bold">clerk-mcp-server vs mcp-remote, relative to a direct HTTP client</text>"#
    );
    let _ = writeln!(
        o,
        r##"<text x="20" y="52" fill="#555">{}</text>"##,
        esc(subtitle)
    );
    let _ = writeln!(
        o,
        r##"<text x="20" y="78" font-weight="bold">Cost × direct (log scale; 1× = direct HTTP; lower is better; throughput shown inverted)</text>"##
    );
    // Grid.
    let mut tick = 0.5;
    while tick <= max_r * 1.3 {
        let tx = x(tick);
        let _ = writeln!(
            o,
            r##"<line x1="{tx:.1}" y1="{top}" x2="{tx:.1}" y2="{:.1}" stroke="{}" stroke-width="{}"/>"##,
            top + panel1_h,
            if (tick - 1.0).abs() < 1e-9 {
                "#111"
            } else {
                "#ddd"
            },
            if (tick - 1.0).abs() < 1e-9 { 1.5 } else { 1.0 }
        );
        let _ = writeln!(
            o,
            r##"<text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}×</text>"##,
            top + panel1_h + 16.0,
            if tick < 1.0 {
                format!("{tick}")
            } else {
                format!("{tick:.0}")
            }
        );
        tick *= 2.0;
    }
    let budget_of = |key: &str| -> Option<f64> {
        match key {
            "latency_p50_us" => Some(1.3),
            "latency_p99_us" => Some(2.0),
            "throughput_rps" => Some(1.0 / 0.8),
            "blob_json_ms" | "blob_sse_ms" => Some(1.5),
            "stream_ms" => Some(2.0),
            "cold_start_ms" => Some((s.med(DIRECT, key)? + 10.0) / s.med(DIRECT, key)?),
            _ => None,
        }
    };
    for (i, d) in rows.iter().enumerate() {
        let y = top + i as f64 * row_h;
        row_label(&mut o, left - 10.0, y + row_h / 2.0 + 4.0, d.label);
        for (j, &t) in bars.iter().enumerate() {
            let by = y + 5.0 + j as f64 * 12.0;
            match cost(t, d) {
                Some(c) => bar(&mut o, x(0.5), x(c), by, colors[t], &fmt_ratio(Some(c))),
                None if s.present[t] => {
                    let _ = writeln!(
                        o,
                        r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#b91c1c">not measured</text>"##,
                        x(0.5) + 4.0,
                        by + 9.5
                    );
                }
                None => {}
            }
        }
        if let Some(b) = budget_of(d.key) {
            let bx = x(b);
            let _ = writeln!(
                o,
                r##"<line x1="{bx:.1}" y1="{:.1}" x2="{bx:.1}" y2="{:.1}" stroke="#16a34a" stroke-width="3"/>"##,
                y + 2.0,
                y + row_h - 4.0
            );
        }
    }
    // Memory panel.
    let mem_max = mem
        .iter()
        .flat_map(|d| bars.iter().map(|t| s.med(*t, d.key)))
        .flatten()
        .fold(12.0 + 2.0 * largest_mib, f64::max)
        * 1.1;
    let mx = |v: f64| left + v / mem_max * plot_w;
    let _ = writeln!(
        o,
        r#"<text x="20" y="{:.1}" font-weight="bold">Memory, MiB (linear; lower is better)</text>"#,
        mem_top - 14.0
    );
    for (i, d) in mem.iter().enumerate() {
        let y = mem_top + i as f64 * row_h;
        row_label(&mut o, left - 10.0, y + row_h / 2.0 + 4.0, d.label);
        for (j, &t) in bars.iter().enumerate() {
            if let Some(v) = s.med(t, d.key) {
                let by = y + 5.0 + j as f64 * 12.0;
                bar(&mut o, left, mx(v), by, colors[t], &format!("{v:.1} MiB"));
            }
        }
        let budget = match d.key {
            "idle_rss_mib" => Some(6.0),
            "peak_rss_mib" => Some(12.0 + 2.0 * largest_mib),
            _ => None,
        };
        if let Some(b) = budget {
            let bx = mx(b);
            let _ = writeln!(
                o,
                r##"<line x1="{bx:.1}" y1="{:.1}" x2="{bx:.1}" y2="{:.1}" stroke="#16a34a" stroke-width="3"/>"##,
                y + 2.0,
                y + row_h - 4.0
            );
        }
    }
    // Legend.
    let ly = h - 24.0;
    let mut lx = 20.0;
    for &t in &bars {
        let _ = writeln!(
            o,
            r##"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{ly:.1}">{}</text>"##,
            ly - 10.0,
            colors[t],
            lx + 18.0,
            esc(&s.names[t])
        );
        lx += 34.0 + 7.5 * s.names[t].chars().count() as f64;
    }
    let _ = writeln!(
        o,
        r##"<line x1="{lx:.1}" y1="{:.1}" x2="{lx:.1}" y2="{:.1}" stroke="#16a34a" stroke-width="3"/><text x="{:.1}" y="{ly:.1}">budget</text>"##,
        ly - 11.0,
        ly + 2.0,
        lx + 8.0
    );
    let _ = writeln!(o, "</svg>");
    o
}
