//! What the service exports on `/metrics`, through `prometheus-client` (the Prometheus project's
//! Rust client: names, units, HELP and TYPE lines, label escaping). Prometheus text format 0.0.4.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of [`Metrics::render`].
pub(crate) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

const LATENCY_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// A deadline fires within about a second of its due time while the service runs (the scheduler
/// looks at least every second), and up to the length of an outage after one.
const FIRE_LAG_BUCKETS: [f64; 14] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

/// Why a request was dropped without being applied or answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// A plain publish: nobody to answer.
    NoReplySubject,
    /// A reply subject outside `[nats] reply_prefixes`.
    ReplySubjectRefused,
}

impl Dropped {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Dropped::NoReplySubject => "no_reply_subject",
            Dropped::ReplySubjectRefused => "reply_subject_refused",
        }
    }
}

type Labels = Vec<(&'static str, String)>;
/// A gauge of a sequence number (which never goes below zero nor past `i64::MAX` in practice).
type SeqGauge = Gauge<i64, std::sync::atomic::AtomicI64>;

/// Everything the service exports. Counters and histograms count since the process started; the
/// gauges are set when scraped (see `service.rs`).
pub(crate) struct Metrics {
    registry: Registry,
    commands: Family<Labels, Counter>,
    pub command_latency: Histogram,
    dropped: Family<Labels, Counter>,
    pub events_appended: Counter<u64, AtomicU64>,
    pub store_seq: SeqGauge,
    pub published_seq: SeqGauge,
    publish_lag: SeqGauge,
    pub projected_seq: SeqGauge,
    projection_lag: SeqGauge,
    pub pending_deadlines: SeqGauge,
    pub deadline_fire_lag: Histogram,
    disputes: Family<Labels, SeqGauge>,
    build_info: Family<Labels, SeqGauge>,
    pub ready: SeqGauge,
    pub nats_connected: SeqGauge,
    pub publisher_stopped: SeqGauge,
    queries: Family<Labels, Counter>,
    query_latency: Family<Labels, Histogram, fn() -> Histogram>,
    http_requests: Family<Labels, Counter>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            commands: Family::default(),
            command_latency: Histogram::new(LATENCY_BUCKETS),
            dropped: Family::default(),
            events_appended: Counter::default(),
            store_seq: Gauge::default(),
            published_seq: Gauge::default(),
            publish_lag: Gauge::default(),
            projected_seq: Gauge::default(),
            projection_lag: Gauge::default(),
            pending_deadlines: Gauge::default(),
            deadline_fire_lag: Histogram::new(FIRE_LAG_BUCKETS),
            disputes: Family::default(),
            build_info: Family::default(),
            ready: Gauge::default(),
            nats_connected: Gauge::default(),
            publisher_stopped: Gauge::default(),
            queries: Family::default(),
            query_latency: Family::new_with_constructor(latency_histogram),
            http_requests: Family::default(),
        };
        m.register();
        m.build_info
            .get_or_create(&vec![
                ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ("commit", crate::COMMIT.to_owned()),
            ])
            .set(1);
        // Every reason, 0 included: an alert on an increase sees the series from the start.
        for why in [Dropped::NoReplySubject, Dropped::ReplySubjectRefused] {
            let _series = m
                .dropped
                .get_or_create(&vec![("reason", why.label().to_owned())]);
        }
        m
    }
}

impl Metrics {
    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "disputes_commands",
            "Commands answered, by command type and result code",
            self.commands.clone(),
        );
        r.register_with_unit(
            "disputes_command_duration",
            "From receiving a command to sending its reply",
            Unit::Seconds,
            self.command_latency.clone(),
        );
        r.register(
            "disputes_requests_dropped",
            "Requests neither applied nor answered, by reason",
            self.dropped.clone(),
        );
        r.register(
            "disputes_events_appended",
            "Events this process appended",
            self.events_appended.clone(),
        );
        r.register(
            "disputes_store_seq",
            "The store's last durable seq",
            self.store_seq.clone(),
        );
        r.register(
            "disputes_published_seq",
            "The last seq the events stream is known to hold",
            self.published_seq.clone(),
        );
        r.register(
            "disputes_publish_lag",
            "Store seq minus published seq",
            self.publish_lag.clone(),
        );
        r.register(
            "disputes_projected_seq",
            "The last seq the read models applied",
            self.projected_seq.clone(),
        );
        r.register(
            "disputes_projection_lag",
            "Store seq minus projected seq",
            self.projection_lag.clone(),
        );
        r.register(
            "disputes_pending_deadlines",
            "Active deadlines not yet expired",
            self.pending_deadlines.clone(),
        );
        r.register_with_unit(
            "disputes_deadline_fire_lag",
            "From a deadline's due time to its expiry being appended",
            Unit::Seconds,
            self.deadline_fire_lag.clone(),
        );
        r.register(
            "disputes_disputes",
            "Disputes by status",
            self.disputes.clone(),
        );
        self.register_service();
    }

    /// The service's own state: its build, readiness, connection, queries, HTTP, the process.
    fn register_service(&mut self) {
        let r = &mut self.registry;
        r.register(
            "disputes_build_info",
            "The running build: version and commit (always 1)",
            self.build_info.clone(),
        );
        r.register(
            "disputes_ready",
            "1 when ready (store open, lease held, read models caught up, healthy), else 0",
            self.ready.clone(),
        );
        r.register(
            "disputes_nats_connected",
            "1 while connected to NATS, else 0",
            self.nats_connected.clone(),
        );
        r.register(
            "disputes_publisher_stopped",
            "1 when the publisher stopped because the events stream disagrees with the store",
            self.publisher_stopped.clone(),
        );
        r.register(
            "disputes_queries",
            "Queries answered (over NATS and HTTP), by query and result code",
            self.queries.clone(),
        );
        r.register_with_unit(
            "disputes_query_duration",
            "From receiving a query to having its reply, by query",
            Unit::Seconds,
            self.query_latency.clone(),
        );
        r.register(
            "disputes_http_requests",
            "HTTP requests answered, by route and status",
            self.http_requests.clone(),
        );
        r.register_collector(Box::new(Process));
    }

    /// One command answered: its type (or `unknown`) and its result code (or `ok`).
    pub(crate) fn command(&self, command_type: &str, code: &str) {
        let labels = vec![("type", command_type.to_owned()), ("code", code.to_owned())];
        self.commands.get_or_create(&labels).inc();
    }

    pub(crate) fn dropped(&self, why: Dropped) {
        let labels = vec![("reason", why.label().to_owned())];
        self.dropped.get_or_create(&labels).inc();
    }

    /// One query answered: its name (`unknown` for a name that is none) and result code, and how
    /// long it took.
    pub(crate) fn query(&self, name: &str, code: &str, seconds: f64) {
        let name = match disputes_readside::QUERY_NAMES.contains(&name) {
            true => name,
            false => "unknown",
        };
        let labels = vec![("query", name.to_owned()), ("code", code.to_owned())];
        self.queries.get_or_create(&labels).inc();
        let labels = vec![("query", name.to_owned())];
        self.query_latency.get_or_create(&labels).observe(seconds);
    }

    pub(crate) fn http_request(&self, route: &'static str, status: u16) {
        let labels = vec![("route", route.to_owned()), ("status", status.to_string())];
        self.http_requests.get_or_create(&labels).inc();
    }

    /// Disputes by status, read from the read models: every status, 0 included.
    pub(crate) fn set_disputes_by_status(&self, by_status: &BTreeMap<String, u64>) {
        for status in disputes_domain::Status::ALL {
            let n = by_status.get(status.as_str()).copied().unwrap_or(0);
            let labels = vec![("status", status.as_str().to_owned())];
            self.disputes.get_or_create(&labels).set(n as i64);
        }
    }

    /// The text exposition of every metric.
    pub(crate) fn render(&self) -> String {
        self.publish_lag
            .set(self.store_seq.get() - self.published_seq.get());
        self.projection_lag
            .set(self.store_seq.get() - self.projected_seq.get());
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// The standard process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`, …),
/// read from `/proc/self` on each scrape (Linux; elsewhere they are left out).
#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = ProcessStats::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                p.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                p.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                p.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                p.max_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                p.start_time_seconds,
            ),
        ] {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: i64,
    virtual_bytes: i64,
    open_fds: i64,
    max_fds: i64,
    start_time_seconds: i64,
}

impl ProcessStats {
    fn read() -> Option<ProcessStats> {
        // SAFETY: sysconf reads a constant of the system; no memory is touched.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // Field n of proc(5) is fields[n - 3]: state is field 3.
        let field = |n: usize| fields.get(n - 3)?.parse::<i64>().ok();
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|line| line.strip_prefix("btime ")?.trim().parse::<i64>().ok())?;
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()?
            .lines()
            .find(|line| line.starts_with("Max open files"))?
            .split_whitespace()
            .nth(3)?
            .parse()
            .ok()?;
        Some(ProcessStats {
            cpu_seconds: (field(14)? + field(15)?) as f64 / ticks as f64,
            resident_bytes: field(24)? * page,
            virtual_bytes: field(23)?,
            open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as i64,
            max_fds,
            start_time_seconds: boot_time + field(22)? / ticks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_help_and_type_and_label_values_are_escaped() {
        let m = Metrics::default();
        m.command("open", "ok");
        m.command("we\"ird\n", "ok");
        m.command_latency.observe(0.002);
        m.set_disputes_by_status(&BTreeMap::new());
        m.query("get", "ok", 0.001);
        m.query("no such query", "unknown_command", 0.001);
        let text = m.render();
        for name in [
            "disputes_commands_total",
            "disputes_command_duration_seconds",
            "disputes_requests_dropped_total",
            "disputes_events_appended_total",
            "disputes_store_seq",
            "disputes_deadline_fire_lag_seconds",
            "disputes_disputes",
            "disputes_build_info",
            "disputes_ready",
            "disputes_queries_total",
            "disputes_query_duration_seconds",
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}:\n{text}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}:\n{text}");
        }
        assert!(
            text.contains("disputes_commands_total{type=\"open\",code=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("type=\"we\\\"ird\\n\""), "{text}");
        assert!(
            text.contains("disputes_requests_dropped_total{reason=\"no_reply_subject\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("disputes_disputes{status=\"resolved\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("disputes_queries_total{query=\"unknown\",code=\"unknown_command\"} 1"),
            "{text}"
        );
        assert!(text.contains("disputes_build_info{version=\""), "{text}");
    }

    #[test]
    fn process_metrics_are_read_from_proc() {
        let p = ProcessStats::read().expect("Linux has /proc/self");
        assert!(p.resident_bytes > 0 && p.virtual_bytes >= p.resident_bytes);
        assert!(p.open_fds > 0 && p.max_fds >= p.open_fds);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(
            (now - 3600..=now + 1).contains(&p.start_time_seconds),
            "{}",
            p.start_time_seconds
        );
    }
}
