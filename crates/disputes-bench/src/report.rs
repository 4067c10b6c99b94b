//! What a run reports: its figures beside the baseline measured in the same run.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// One JSON line per run.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub workload: String,
    pub ops: u64,
    pub secs: f64,
    pub ops_per_sec: f64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub baseline: String,
    pub baseline_ops_per_sec: Option<f64>,
    pub ratio: Option<f64>,
    pub rss_mb: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
    /// The goals of docs/performance.md this run measures, each against its baseline of this run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub goals: Vec<Goal>,
}

/// One goal: a figure of this run against its target.
#[derive(Debug, Serialize)]
pub(crate) struct Goal {
    /// What is compared, e.g. `nats / inproc`.
    pub goal: String,
    pub value: f64,
    /// `at_least` or `at_most`.
    pub bound: Bound,
    pub target: f64,
    pub met: bool,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Bound {
    AtLeast,
    AtMost,
}

impl Goal {
    pub(crate) fn new(goal: impl Into<String>, value: f64, bound: Bound, target: f64) -> Goal {
        let met = match bound {
            Bound::AtLeast => value >= target,
            Bound::AtMost => value <= target,
        };
        Goal {
            goal: goal.into(),
            value,
            bound,
            target,
            met,
        }
    }
}

/// What was measured, and against what.
pub(crate) struct Measured<'a> {
    pub workload: &'a str,
    pub ops: u64,
    pub elapsed: Duration,
    /// Per-operation latencies in µs, sorted (empty: not measured per operation).
    pub sorted_latencies: &'a [u64],
    pub baseline: &'a str,
    pub baseline_ops_per_sec: Option<f64>,
    pub extra: Option<Value>,
}

pub(crate) fn report(m: Measured<'_>) -> Report {
    let secs = m.elapsed.as_secs_f64();
    let ops_per_sec = m.ops as f64 / secs.max(f64::EPSILON);
    Report {
        workload: m.workload.to_owned(),
        ops: m.ops,
        secs,
        ops_per_sec,
        p50_us: percentile(m.sorted_latencies, 0.50),
        p99_us: percentile(m.sorted_latencies, 0.99),
        baseline: m.baseline.to_owned(),
        baseline_ops_per_sec: m.baseline_ops_per_sec,
        ratio: m.baseline_ops_per_sec.map(|b| ops_per_sec / b),
        rss_mb: rss_mb(),
        extra: m.extra,
        goals: Vec::new(),
    }
}

pub(crate) fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i])
}

/// Resident memory of this process, from /proc.
pub(crate) fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

pub(crate) fn print_report(r: &Report) {
    println!("workload   {}", r.workload);
    println!(
        "ops        {} in {:.2}s = {:.0} ops/s",
        r.ops, r.secs, r.ops_per_sec
    );
    if let (Some(p50), Some(p99)) = (r.p50_us, r.p99_us) {
        println!("latency    p50 {p50} µs, p99 {p99} µs");
    }
    match (r.baseline_ops_per_sec, r.ratio) {
        (Some(b), Some(ratio)) => {
            println!("baseline   {}: {b:.0} ops/s; ratio {ratio:.2}", r.baseline)
        }
        _ => println!("baseline   {}", r.baseline),
    }
    println!("memory     {:.1} MiB resident", r.rss_mb);
    if let Some(extra) = &r.extra {
        println!("details    {extra}");
    }
    for g in &r.goals {
        let sign = match g.bound {
            Bound::AtLeast => "≥",
            Bound::AtMost => "≤",
        };
        let verdict = if g.met { "met" } else { "NOT met" };
        println!(
            "goal       {}: {:.3} (goal {sign} {}): {verdict}",
            g.goal, g.value, g.target
        );
    }
}
