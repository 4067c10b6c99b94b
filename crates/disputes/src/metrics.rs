//! What the service exports on `/metrics`, through `prometheus-client` (the Prometheus project's
//! Rust client: names, units, HELP and TYPE lines, label escaping). Prometheus text format 0.0.4.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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
        };
        m.register();
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
        let text = m.render();
        for name in [
            "disputes_commands_total",
            "disputes_command_duration_seconds",
            "disputes_requests_dropped_total",
            "disputes_events_appended_total",
            "disputes_store_seq",
            "disputes_deadline_fire_lag_seconds",
            "disputes_disputes",
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
    }
}
