//! Medians, ratios, budgets; the stdout table, latest.json and ratios.svg.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

/// Column order everywhere.
pub const TARGETS: [&str; 3] = ["direct", "clerk-mcp-server", "mcp-remote"];
pub const DIRECT: usize = 0;
pub const CLERK: usize = 1;
pub const REMOTE: usize = 2;

pub struct MetricDef {
    pub key: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    pub higher_is_better: bool,
    /// Only a bridge process has it (memory): no direct column, no ratio to direct.
    pub process_only: bool,
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
    }
}

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
    m(
        "throughput_rps",
        "throughput, 64 in flight",
        "req/s",
        true,
        false,
    ),
    m(
        "cpu_us_per_req",
        "CPU per request in that run (direct: client)",
        "µs",
        false,
        false,
    ),
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

/// One target in one round.
#[derive(Default, Clone)]
pub struct Run {
    pub values: BTreeMap<&'static str, f64>,
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
    pub runs: [Vec<Run>; 3],
    /// Which targets took part.
    pub present: [bool; 3],
}

impl Summary {
    pub fn rounds(&self, t: usize, key: &str) -> Vec<f64> {
        self.runs[t]
            .iter()
            .filter_map(|r| r.values.get(key).copied())
            .collect()
    }
    pub fn med(&self, t: usize, key: &str) -> Option<f64> {
        if !self.present[t] {
            return None;
        }
        median(&self.rounds(t, key))
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

/// One budget from issue 5, judged for one target.
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

pub fn table(s: &Summary, largest_mib: f64) -> String {
    let mut out = String::new();
    let w = 40;
    let _ = writeln!(
        out,
        "{:<w$} {:>10} {:>12} {:>11} │ {:>9} {:>11} {:>11}",
        "metric (median of rounds)",
        "direct",
        "clerk",
        "mcp-remote",
        "clerk÷dir",
        "remote÷dir",
        "clerk÷remote"
    );
    let _ = writeln!(out, "{}", "─".repeat(w + 72));
    for def in METRICS {
        let label = format!("{} [{}]", def.label, def.unit);
        let _ = writeln!(
            out,
            "{:<w$} {:>10} {:>12} {:>11} │ {:>9} {:>11} {:>11}",
            label,
            if def.process_only {
                "–".into()
            } else {
                fmt_opt(s.med(DIRECT, def.key))
            },
            fmt_opt(s.med(CLERK, def.key)),
            fmt_opt(s.med(REMOTE, def.key)),
            fmt_ratio(s.ratio(CLERK, DIRECT, def.key)),
            fmt_ratio(s.ratio(REMOTE, DIRECT, def.key)),
            fmt_ratio(s.ratio(CLERK, REMOTE, def.key)),
        );
    }
    let del = |t: usize| match s.all_deleted(t) {
        _ if !s.present[t] => "–",
        Some(true) => "yes",
        Some(false) => "NO",
        None => "?",
    };
    let _ = writeln!(
        out,
        "{:<w$} {:>10} {:>12} {:>11}",
        "session DELETEd on exit",
        del(DIRECT),
        del(CLERK),
        del(REMOTE)
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "budgets (issue 5), judged on the medians; largest message = {largest_mib:.0} MiB"
    );
    let clerk = verdicts(s, CLERK, largest_mib);
    let remote = s.present[REMOTE].then(|| verdicts(s, REMOTE, largest_mib));
    for (i, b) in BUDGETS.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {:<7} {:<30} {:<30} clerk: {}{}",
            held_word(clerk[i].held),
            b.name,
            b.rule,
            clerk[i].detail,
            remote
                .as_ref()
                .map(|r| format!("   [mcp-remote: {} {}]", held_word(r[i].held), r[i].detail))
                .unwrap_or_default()
        );
    }
    let held = clerk.iter().filter(|v| v.held == Some(true)).count();
    let judged = clerk.iter().filter(|v| v.held.is_some()).count();
    let _ = writeln!(out, "  clerk-mcp-server holds {held} of {judged} budgets");
    out
}

pub fn to_json(s: &Summary, largest_mib: f64, meta: Value) -> Value {
    let mut metrics = Vec::new();
    for def in METRICS {
        let mut median = serde_json::Map::new();
        let mut rounds = serde_json::Map::new();
        let mut to_direct = serde_json::Map::new();
        let mut to_remote = serde_json::Map::new();
        for (t, name) in TARGETS.iter().enumerate() {
            if !s.present[t] || (t == DIRECT && def.process_only) {
                continue;
            }
            median.insert((*name).into(), json!(s.med(t, def.key)));
            rounds.insert((*name).into(), json!(s.rounds(t, def.key)));
            if t != DIRECT {
                to_direct.insert((*name).into(), json!(s.ratio(t, DIRECT, def.key)));
            }
            if t != REMOTE && s.present[REMOTE] {
                to_remote.insert((*name).into(), json!(s.ratio(t, REMOTE, def.key)));
            }
        }
        metrics.push(json!({
            "key": def.key,
            "label": def.label,
            "unit": def.unit,
            "higher_is_better": def.higher_is_better,
            "median": median,
            "rounds": rounds,
            "ratio_to_direct": to_direct,
            "ratio_to_mcp_remote": to_remote,
        }));
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
    let mut per_target = serde_json::Map::new();
    for (t, name) in TARGETS.iter().enumerate() {
        if !s.present[t] {
            continue;
        }
        per_target.insert(
            (*name).into(),
            json!({
                "session_deleted_every_round": s.all_deleted(t),
                "delete_after_eof_ms": s.runs[t].iter().map(|r| r.delete_after_eof_ms).collect::<Vec<_>>(),
                "exited_every_round": s.runs[t].iter().all(|r| r.exited != Some(false)),
                "failures": s.failures(t),
                "other_notifications": s.runs[t].iter().map(|r| r.other_notifications).sum::<u64>(),
            }),
        );
    }
    json!({
        "meta": meta,
        "metrics": metrics,
        "budgets": {
            "clerk-mcp-server": judge(CLERK),
            "mcp-remote": judge(REMOTE),
        },
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
    let row_h = 34.0;
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
        for t in [CLERK, REMOTE] {
            if let Some(c) = cost(t, d) {
                max_r = max_r.max(c);
            }
        }
    }
    let (lo, hi) = (0.5_f64.ln(), (max_r * 1.3).ln());
    let x = |r: f64| left + (r.max(0.5).ln() - lo) / (hi - lo) * plot_w;
    let colors = ["#888888", "#2563eb", "#ea580c"];
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
        for (j, t) in [CLERK, REMOTE].into_iter().enumerate() {
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
                y + 30.0
            );
        }
    }
    // Memory panel.
    let mem_max = mem
        .iter()
        .flat_map(|d| [s.med(CLERK, d.key), s.med(REMOTE, d.key)])
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
        for (j, t) in [CLERK, REMOTE].into_iter().enumerate() {
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
                y + 30.0
            );
        }
    }
    // Legend.
    let ly = h - 24.0;
    let _ = writeln!(
        o,
        r##"<rect x="20" y="{:.1}" width="12" height="12" fill="{}"/><text x="38" y="{:.1}">clerk-mcp-server</text>"##,
        ly - 10.0,
        colors[CLERK],
        ly
    );
    let _ = writeln!(
        o,
        r##"<rect x="170" y="{:.1}" width="12" height="12" fill="{}"/><text x="188" y="{:.1}">mcp-remote</text>"##,
        ly - 10.0,
        colors[REMOTE],
        ly
    );
    let _ = writeln!(
        o,
        r##"<line x1="290" y1="{:.1}" x2="290" y2="{:.1}" stroke="#16a34a" stroke-width="3"/><text x="298" y="{:.1}">budget (issue 5)</text>"##,
        ly - 11.0,
        ly + 2.0,
        ly
    );
    let _ = writeln!(o, "</svg>");
    o
}
