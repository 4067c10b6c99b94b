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

/// CPU time (user + system) of the processes `pids` (0: this one) and of the whole machine, read
/// from /proc: two readings give what a phase of a benchmark cost and how busy the cores were.
#[derive(Debug, Clone, Copy)]
struct CpuReading {
    /// Seconds each process spent on the CPU, in the order asked.
    processes: [f64; 4],
    /// The machine's busy and total seconds, summed over its cores.
    machine_busy: f64,
    machine_total: f64,
}

/// What happened between two [`CpuReading`]s.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSpent {
    /// CPU seconds of each process asked for.
    pub processes: [f64; 4],
    /// The share of the machine's cores that was busy (any process): 1.0 is every core all the time.
    pub machine_busy: f64,
}

impl CpuReading {
    /// At most four processes; a process that is gone reads as 0.
    fn now(pids: &[u32]) -> Self {
        assert!(pids.len() <= 4, "at most four processes");
        let mut processes = [0.0; 4];
        for (slot, pid) in processes.iter_mut().zip(pids) {
            *slot = process_cpu_secs(*pid);
        }
        let (machine_busy, machine_total) = machine_cpu_secs();
        CpuReading {
            processes,
            machine_busy,
            machine_total,
        }
    }

    fn since(&self, earlier: &CpuReading) -> CpuSpent {
        let mut processes = [0.0; 4];
        for (i, slot) in processes.iter_mut().enumerate() {
            *slot = self.processes[i] - earlier.processes[i];
        }
        let total = self.machine_total - earlier.machine_total;
        CpuSpent {
            processes,
            machine_busy: if total > 0.0 {
                (self.machine_busy - earlier.machine_busy) / total
            } else {
                0.0
            },
        }
    }
}

/// Runs `work`, and what it and the processes `pids` (0: this one) spent on the CPU meanwhile.
pub(crate) async fn cpu_of<T>(
    pids: &[u32],
    work: impl std::future::Future<Output = T>,
) -> (T, CpuSpent) {
    let before = CpuReading::now(pids);
    let done = work.await;
    (done, CpuReading::now(pids).since(&before))
}

/// Where a phase's CPU went, per operation in microseconds: this process (the service and the
/// bench's clients, or the publishers of a raw baseline), the NATS servers asked for (the rest of
/// the pids, together), and how busy the machine's cores were over the phase (1.0: all of them,
/// all the time; any process counts).
pub(crate) fn cpu_split(spent: &CpuSpent, ops: u64) -> serde_json::Value {
    let per_op_us = |secs: f64| (secs * 1e6 / ops.max(1) as f64).round();
    let servers: f64 = spent.processes[1..].iter().sum();
    serde_json::json!({
        "process_us_per_op": per_op_us(spent.processes[0]),
        "nats_us_per_op": per_op_us(servers),
        "machine_busy": (spent.machine_busy * 1000.0).round() / 1000.0,
    })
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// utime + stime of a process (0: this one), from `/proc/<pid>/stat`.
fn process_cpu_secs(pid: u32) -> f64 {
    let path = if pid == 0 {
        "/proc/self/stat".to_owned()
    } else {
        format!("/proc/{pid}/stat")
    };
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / clock_ticks_per_sec()
}

/// The machine's busy and total CPU seconds from the `cpu` line of /proc/stat (idle and iowait
/// count as not busy).
fn machine_cpu_secs() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<f64> = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let total: f64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0.0) + values.get(4).copied().unwrap_or(0.0);
    let ticks = clock_ticks_per_sec();
    ((total - idle) / ticks, total / ticks)
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
