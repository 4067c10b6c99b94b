//! Prometheus metrics, by hand: a few atomics and a text renderer (no registry crate needed).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A histogram over fixed buckets (seconds).
pub struct Histogram {
    bounds: &'static [f64],
    inner: Mutex<HistogramState>,
}

#[derive(Default, Clone)]
struct HistogramState {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// A deadline fires within about a second of its due time while the service runs (the scheduler
/// looks at least every second), and up to the length of an outage after one.
const FIRE_LAG_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            inner: Mutex::new(HistogramState {
                counts: vec![0; bounds.len()],
                ..Default::default()
            }),
        }
    }

    pub fn observe(&self, value: f64) {
        let mut state = self.inner.lock().expect("histogram lock");
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            state.counts[i] += 1;
        }
        state.sum += value;
        state.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let state = self.inner.lock().expect("histogram lock").clone();
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, n) in self.bounds.iter().zip(&state.counts) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            state.count
        );
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{labels} {}", state.sum);
        let _ = writeln!(out, "{name}_count{labels} {}", state.count);
    }
}

/// Why a request was dropped without being applied or answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// A plain publish: nobody to answer.
    NoReplySubject,
    /// A reply subject outside `[nats] reply_prefixes`.
    ReplySubjectRefused,
}

impl Dropped {
    pub fn label(self) -> &'static str {
        match self {
            Dropped::NoReplySubject => "no_reply_subject",
            Dropped::ReplySubjectRefused => "reply_subject_refused",
        }
    }
}

/// Everything the service exports.
pub struct Metrics {
    /// (command type, result code) → count.
    commands: Mutex<BTreeMap<(String, String), u64>>,
    pub command_latency: Histogram,
    /// reason → requests dropped unanswered (see [`Dropped`]).
    dropped: Mutex<BTreeMap<&'static str, u64>>,
    pub events_appended: Counter,
    pub store_seq: Gauge,
    pub published_seq: Gauge,
    pub projected_seq: Gauge,
    pub pending_deadlines: Gauge,
    pub deadline_fire_lag: Histogram,
    /// status → disputes, refreshed from the read models at scrape time.
    pub disputes_by_status: Mutex<BTreeMap<String, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            commands: Mutex::default(),
            command_latency: Histogram::new(LATENCY_BUCKETS),
            dropped: Mutex::default(),
            events_appended: Counter::default(),
            store_seq: Gauge::default(),
            published_seq: Gauge::default(),
            projected_seq: Gauge::default(),
            pending_deadlines: Gauge::default(),
            deadline_fire_lag: Histogram::new(FIRE_LAG_BUCKETS),
            disputes_by_status: Mutex::default(),
        }
    }
}

impl Metrics {
    pub fn command(&self, command_type: &str, code: &str) {
        let mut commands = self.commands.lock().expect("metrics lock");
        *commands
            .entry((command_type.to_owned(), code.to_owned()))
            .or_default() += 1;
    }

    pub fn dropped(&self, why: Dropped) {
        *self
            .dropped
            .lock()
            .expect("metrics lock")
            .entry(why.label())
            .or_default() += 1;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP disputes_requests_dropped_total Requests dropped unanswered and unapplied, by reason.\n");
        out.push_str("# TYPE disputes_requests_dropped_total counter\n");
        let dropped = self.dropped.lock().expect("metrics lock");
        for why in [Dropped::NoReplySubject, Dropped::ReplySubjectRefused] {
            let n = dropped.get(why.label()).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "disputes_requests_dropped_total{{reason=\"{}\"}} {n}",
                why.label()
            );
        }
        drop(dropped);
        out.push_str("# HELP disputes_commands_total Commands handled, by type and result code.\n");
        out.push_str("# TYPE disputes_commands_total counter\n");
        for ((t, code), n) in self.commands.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "disputes_commands_total{{type=\"{t}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str("# HELP disputes_command_duration_seconds Time from receiving a command to its reply.\n");
        out.push_str("# TYPE disputes_command_duration_seconds histogram\n");
        self.command_latency
            .render(&mut out, "disputes_command_duration_seconds", "");
        gauge(
            &mut out,
            "disputes_events_appended_total",
            "counter",
            "Events appended by this process.",
            self.events_appended.get() as i64,
        );
        gauge(
            &mut out,
            "disputes_store_seq",
            "gauge",
            "The store's last durable seq.",
            self.store_seq.get(),
        );
        gauge(
            &mut out,
            "disputes_published_seq",
            "gauge",
            "The last seq JetStream acknowledged.",
            self.published_seq.get(),
        );
        gauge(
            &mut out,
            "disputes_publish_lag",
            "gauge",
            "Store seq minus published seq.",
            self.store_seq.get() - self.published_seq.get(),
        );
        gauge(
            &mut out,
            "disputes_projected_seq",
            "gauge",
            "The last seq the read models applied.",
            self.projected_seq.get(),
        );
        gauge(
            &mut out,
            "disputes_projection_lag",
            "gauge",
            "Store seq minus projected seq.",
            self.store_seq.get() - self.projected_seq.get(),
        );
        gauge(
            &mut out,
            "disputes_pending_deadlines",
            "gauge",
            "Active deadlines not yet expired.",
            self.pending_deadlines.get(),
        );
        out.push_str("# HELP disputes_deadline_fire_lag_seconds From a deadline's due time to its expiry being appended.\n");
        out.push_str("# TYPE disputes_deadline_fire_lag_seconds histogram\n");
        self.deadline_fire_lag
            .render(&mut out, "disputes_deadline_fire_lag_seconds", "");
        out.push_str(
            "# HELP disputes_disputes Disputes by status.\n# TYPE disputes_disputes gauge\n",
        );
        // Every status, 0 included: a dashboard sees an empty status, not a missing series.
        let by_status = self.disputes_by_status.lock().expect("metrics lock");
        for status in disputes_domain::Status::ALL {
            let n = by_status.get(status.as_str()).copied().unwrap_or(0);
            let _ = writeln!(out, "disputes_disputes{{status=\"{status}\"}} {n}");
        }
        out
    }
}

fn gauge(out: &mut String, name: &str, kind: &str, help: &str, value: i64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}
