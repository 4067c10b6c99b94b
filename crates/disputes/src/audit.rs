//! `disputes audit`: read the history as an auditor, from a data dir or from the stream alone.
//!
//! Every command reads entries in seq order from a [`Source`]: the event log of a data dir, read
//! straight from sled ([`LogReader`]: no start-up check, so a damaged copy can still be audited,
//! and sled keeps one process per data dir, so for a running service read the stream), or
//! JetStream's `DISPUTE_EVENTS` over NATS, which an auditor can read without access to the
//! service's disk. An entry is an envelope, or what is wrong with the bytes found at a seq.

use std::collections::HashMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use chrono::{DateTime, Utc};
use disputes_store::{
    parse_envelope, Chain, Entry, Envelope, LogReader, SledStore, StoreError, StoreOptions,
    Unreadable,
};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::config::NatsConfig;
use disputes_domain::Event;
use disputes_readside::{projector, view, Projections, Record};

/// How long the stream may keep us waiting for its next message before we give up.
const STREAM_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a NATS connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The auditor's consumer is deleted by the server this long after its last pull, if a run dies.
const CONSUMER_INACTIVE_THRESHOLD: Duration = Duration::from_secs(60);
/// The consumer name the shipped NATS permissions (`deploy/nats/auth.conf`) give the auditor.
pub const AUDITOR_CONSUMER: &str = "auditor";

pub enum Source {
    /// The service's data dir (the event log under `events/`).
    Store(PathBuf),
    /// The events stream over NATS.
    Nats(Box<StreamSource>),
}

/// Where the events stream is and how to read it.
pub struct StreamSource {
    /// Url, credentials, TLS, subject prefix and stream name, as the service's `[nats]`.
    pub nats: NatsConfig,
    /// The pull consumer to read through (the auditor's NATS permissions name it).
    pub consumer: String,
}

/// [`Unreadable::seq`] when the position is not known (a stream message: the expected seq).
pub const UNKNOWN_SEQ: u64 = 0;

impl Source {
    /// Calls `each` with every entry of seq ≥ `from_seq` (of one dispute, when given), in seq
    /// order, until it answers `Break`.
    pub async fn for_each_entry(
        &self,
        dispute_id: Option<&str>,
        from_seq: u64,
        mut each: impl FnMut(Entry) -> anyhow::Result<ControlFlow<()>>,
    ) -> anyhow::Result<()> {
        match self {
            Source::Store(dir) => {
                let log = match open_log(dir) {
                    Ok(log) => log,
                    // A log sled cannot even open is broken before its first event.
                    Err(Opened::Damaged(reason)) => {
                        let _stop = each(Err(Unreadable { seq: 1, reason }))?;
                        return Ok(());
                    }
                    Err(Opened::Failed(error)) => return Err(error),
                };
                let entries: Box<dyn Iterator<Item = Entry>> = match dispute_id {
                    Some(id) => Box::new(log.dispute_entries(id, from_seq)),
                    None => Box::new(log.entries(from_seq)),
                };
                for entry in entries {
                    if each(entry)?.is_break() {
                        break;
                    }
                }
                Ok(())
            }
            Source::Nats(stream) => {
                let prefix = &stream.nats.subject_prefix;
                let filter = match dispute_id {
                    Some(id) => format!("{prefix}.evt.{id}.>"),
                    None => format!("{prefix}.evt.>"),
                };
                read_stream(stream, &filter, |entry| match &entry {
                    Ok(e) if e.seq < from_seq => Ok(ControlFlow::Continue(())),
                    _ => each(entry),
                })
                .await
            }
        }
    }

    /// Calls `each` with every envelope of seq ≥ `from_seq` (of one dispute, when given), in seq
    /// order; an entry that is not an envelope is an error.
    pub async fn for_each(
        &self,
        dispute_id: Option<&str>,
        from_seq: u64,
        mut each: impl FnMut(Envelope) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.for_each_entry(dispute_id, from_seq, |entry| {
            let envelope = entry.map_err(|u| {
                anyhow::anyhow!(
                    "the entry at seq {} is not an event: {} (`disputes audit verify` checks the whole log)",
                    u.seq,
                    u.reason
                )
            })?;
            each(envelope)?;
            Ok(ControlFlow::Continue(()))
        })
        .await
    }
}

/// Why a data dir's log could not be opened for reading.
enum Opened {
    /// What is on disk is damaged: the history is broken.
    Damaged(String),
    Failed(anyhow::Error),
}

/// The event log of a data dir (`<data>/events`, or the JetStream log's copy), opened read-only, without the store's start-up
/// checks (see [`LogReader`]).
fn open_log(data_dir: &Path) -> Result<LogReader, Opened> {
    let path = crate::log::local_log_dir(data_dir);
    LogReader::open(&path).map_err(|error| match error {
        StoreError::Corrupt { reason, .. } => Opened::Damaged(reason),
        error => Opened::Failed(anyhow::Error::new(error).context(format!(
            "open the event store at {} (if a running service holds it, audit the stream with --nats-url, or a copy of the data dir; if another `disputes audit` does, wait for it)",
            path.display()
        ))),
    })
}

/// Opens the store itself (with its start-up checks), for `rebuild`.
pub fn open_store(data_dir: &Path) -> anyhow::Result<SledStore> {
    let path = crate::log::local_log_dir(data_dir);
    anyhow::ensure!(path.exists(), "no event store at {}", path.display());
    SledStore::open(&path, StoreOptions::default()).with_context(|| {
        format!(
            "open the event store at {} (is the service running? stop it first; is the log damaged? `disputes audit verify` finds the first broken seq)",
            path.display()
        )
    })
}

async fn connect(config: &NatsConfig) -> anyhow::Result<async_nats::Client> {
    let options = async_nats::ConnectOptions::new()
        .name("disputes-audit")
        .connection_timeout(CONNECT_TIMEOUT);
    let options = crate::nats::with_credentials(options, config).await?;
    options
        .connect(config.servers())
        .await
        .with_context(|| format!("connect to NATS at {}", config.url))
}

/// Reads every message of the stream matching `filter` that exists now, in stream order, through
/// a pull consumer named `source.consumer` (made afresh, deleted after).
async fn read_stream(
    source: &StreamSource,
    filter: &str,
    mut each: impl FnMut(Entry) -> anyhow::Result<ControlFlow<()>>,
) -> anyhow::Result<()> {
    let client = connect(&source.nats).await?;
    let js = jetstream::new(client.clone());
    let stream_name = &source.nats.events_stream;
    let stream = js
        .get_stream(stream_name)
        .await
        .with_context(|| format!("stream {stream_name}"))?;
    // A consumer left by an earlier run that died would refuse another filter.
    let _ = stream.delete_consumer(&source.consumer).await;
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            name: Some(source.consumer.clone()),
            filter_subject: filter.to_owned(),
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: CONSUMER_INACTIVE_THRESHOLD,
            ..Default::default()
        })
        .await
        .with_context(|| format!("create the pull consumer {:?}", source.consumer))?;
    let read = read_consumer(&consumer, &mut each).await;
    let deleted = stream.delete_consumer(&source.consumer).await;
    read?;
    if let Err(e) = deleted {
        tracing::warn!(error = %e, "could not delete the auditor's consumer; the server drops it when idle");
    }
    client.flush().await.ok();
    Ok(())
}

async fn read_consumer(
    consumer: &consumer::PullConsumer,
    each: &mut impl FnMut(Entry) -> anyhow::Result<ControlFlow<()>>,
) -> anyhow::Result<()> {
    let mut pending = consumer.cached_info().num_pending;
    if pending == 0 {
        return Ok(());
    }
    let mut messages = consumer.messages().await?;
    while pending > 0 {
        let message = tokio::time::timeout(STREAM_MESSAGE_TIMEOUT, messages.next())
            .await
            .context("the stream stopped answering")?
            .context("the stream ended early")??;
        let info = message
            .info()
            .map_err(|e| anyhow::anyhow!("message info: {e}"))?;
        pending = info.pending;
        // Every message as it is: an event repeated on the stream is shown, and `verify` reports it.
        let entry = parse_envelope(&message.payload).map_err(|reason| Unreadable {
            seq: UNKNOWN_SEQ,
            reason: format!("stream message {}: {reason}", info.stream_sequence),
        });
        if each(entry)?.is_break() {
            return Ok(());
        }
    }
    Ok(())
}

/// `history`: a dispute's events as a table, or `--json` as an array.
pub async fn history(
    source: &Source,
    dispute_id: &str,
    as_json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let mut events = Vec::new();
    source
        .for_each(Some(dispute_id), 0, |e| {
            events.push(e);
            Ok(())
        })
        .await?;
    anyhow::ensure!(!events.is_empty(), "no events for dispute {dispute_id}");
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&events)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>8} {:>4}  {:<27} {:<24} {:<24} data",
        "seq", "ver", "occurred_at", "type", "actor"
    )?;
    for e in &events {
        let actor = format!("{}:{}", e.actor.role, e.actor.id);
        let time = disputes_domain::time::format(e.occurred_at);
        writeln!(
            out,
            "{:>8} {:>4}  {:<27} {:<24} {:<24} {}",
            e.seq, e.version, time, e.event_type, actor, e.data
        )?;
    }
    Ok(())
}

/// `export`: the log as NDJSON, one envelope a line, in seq order.
pub async fn export(source: &Source, from_seq: u64, out: &mut impl Write) -> anyhow::Result<u64> {
    let mut n = 0;
    let progress = progress("export", None);
    source
        .for_each(None, from_seq, |e| {
            serde_json::to_writer(&mut *out, &e)?;
            out.write_all(b"\n")?;
            n += 1;
            progress.inc(1);
            Ok(())
        })
        .await?;
    progress.finish_and_clear();
    out.flush()?;
    Ok(n)
}

/// A progress line on stderr for a long command, drawn only when stderr is a terminal (so
/// scripts, pipes and logs never see it): a bar when the total is known, else a count and a rate.
pub fn progress(what: &'static str, total: Option<u64>) -> indicatif::ProgressBar {
    let (bar, template) = match total {
        Some(total) => (
            indicatif::ProgressBar::new(total),
            "{prefix}: {wide_bar} {pos}/{len} events ({per_sec}, {eta} left)",
        ),
        None => (
            indicatif::ProgressBar::new_spinner(),
            "{prefix}: {spinner} {pos} events ({per_sec})",
        ),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    bar.set_style(
        indicatif::ProgressStyle::with_template(template).expect("a valid progress template"),
    );
    bar.set_prefix(what);
    bar
}

/// `state --at`: the dispute as it stood at `at` (its events with `occurred_at ≤ at`), with the
/// actions each role could take at that moment.
pub async fn state_at(
    source: &Source,
    dispute_id: &str,
    at: DateTime<Utc>,
) -> anyhow::Result<Value> {
    let mut record: Option<Record> = None;
    source
        .for_each(Some(dispute_id), 0, |e| {
            if e.occurred_at > at {
                return Ok(());
            }
            let event = Event::decode_revision(&e.event_type, e.revision(), &e.data)
                .with_context(|| format!("seq {}: {} does not decode", e.seq, e.event_type))?;
            let r = record.get_or_insert_with(|| Record {
                dispute_id: e.dispute_id.clone(),
                state: disputes_domain::State::Initial,
                opened_at: e.occurred_at,
                updated_at: e.occurred_at,
                reminder: None,
            });
            r.state = disputes_domain::evolve(
                std::mem::replace(&mut r.state, disputes_domain::State::Initial),
                &event,
            );
            r.updated_at = e.occurred_at;
            Ok(())
        })
        .await?;
    let record = record.with_context(|| {
        format!(
            "dispute {dispute_id} did not exist at {}",
            disputes_domain::time::format(at)
        )
    })?;
    anyhow::ensure!(
        matches!(record.state, disputes_domain::State::Active(_)),
        "dispute {dispute_id}'s first event is not DisputeOpened"
    );
    Ok(view(&record, at))
}

/// What `verify` found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// Events that checked out (before the first break, if any).
    pub events: u64,
    pub disputes: u64,
    pub resolved: u64,
    /// The hash of the last event that checked out.
    pub head_hash: String,
    /// The first break: its seq and what broke.
    pub first_break: Option<(u64, String)>,
}

#[derive(Default)]
struct DisputeAudit {
    version: u64,
    order_amount: Option<u64>,
    currency: Option<String>,
    /// The seq of its `DisputeResolved`.
    resolved_at: Option<u64>,
}

/// Checks the chain (the store's own [`Chain`]) and the invariants of rules.md, event by event,
/// stopping at the first break.
#[derive(Default)]
pub struct Verifier {
    audit: Audit,
    chain: Chain,
    disputes: HashMap<String, DisputeAudit>,
}

impl Verifier {
    pub fn new() -> Self {
        Verifier::default()
    }

    /// The seq the next event must have.
    pub fn expected_seq(&self) -> u64 {
        self.chain.next_seq()
    }

    /// Checks one envelope; `Err` with the reason on the first break.
    pub fn check(&mut self, e: &Envelope) -> Result<(), String> {
        let mut chain = self.chain.clone();
        chain.check(e)?;
        Event::decode_revision(&e.event_type, e.revision(), &e.data)
            .map_err(|err| format!("{} does not decode: {err}", e.event_type))?;
        let d = self.disputes.entry(e.dispute_id.clone()).or_default();
        if let Some(resolved_at) = d.resolved_at {
            return Err(if e.event_type == "DisputeResolved" {
                format!(
                    "a second DisputeResolved for dispute {} (the first is seq {resolved_at})",
                    e.dispute_id
                )
            } else {
                format!(
                    "{} after dispute {} was resolved (seq {resolved_at}): resolved is terminal",
                    e.event_type, e.dispute_id
                )
            });
        }
        if e.version != d.version + 1 {
            return Err(format!(
                "dispute {} has version {} after version {}: versions must count up by one",
                e.dispute_id, e.version, d.version
            ));
        }
        d.version = e.version;
        check_money(d, e)?;
        self.audit.disputes += u64::from(e.version == 1);
        self.audit.resolved += u64::from(d.resolved_at.is_some());
        self.audit.events = e.seq;
        self.chain = chain;
        Ok(())
    }

    /// Checks one entry of the log; the break's seq and reason, if it is one.
    pub fn check_entry(&mut self, entry: &Entry) -> Result<(), (u64, String)> {
        match entry {
            Ok(e) => self.check(e).map_err(|reason| (e.seq, reason)),
            Err(u) if u.seq == UNKNOWN_SEQ => Err((self.expected_seq(), u.reason.clone())),
            Err(u) => Err((u.seq, u.reason.clone())),
        }
    }

    pub fn finish(mut self) -> Audit {
        self.audit.head_hash = self.chain.head_hash().to_owned();
        self.audit
    }

    fn fail(mut self, seq: u64, reason: String) -> Audit {
        self.audit.first_break = Some((seq, reason));
        self.finish()
    }
}

/// Opening amounts in, resolutions out: refund + release = order amount, in its currency.
fn check_money(d: &mut DisputeAudit, e: &Envelope) -> Result<(), String> {
    match e.event_type.as_str() {
        "DisputeOpened" if e.version != 1 => {
            return Err(format!(
                "a second DisputeOpened for dispute {} (version {})",
                e.dispute_id, e.version
            ));
        }
        "DisputeOpened" => {
            d.order_amount = e.data["order_amount"]["amount"].as_u64();
            d.currency = e.data["order_amount"]["currency"]
                .as_str()
                .map(str::to_owned);
        }
        _ if d.order_amount.is_none() => {
            return Err(format!(
                "{} of dispute {} before its DisputeOpened",
                e.event_type, e.dispute_id
            ));
        }
        "DisputeResolved" => {
            let (refund, release) = (
                e.data["refund_amount"].as_u64(),
                e.data["release_amount"].as_u64(),
            );
            let total = refund.zip(release).and_then(|(a, b)| a.checked_add(b));
            if total.is_none() || total != d.order_amount {
                let show = |n: Option<u64>| n.map_or("?".to_owned(), |n| n.to_string());
                return Err(format!(
                    "dispute {} resolved with refund {} + release {} = {}, not its order amount {}: money is not conserved",
                    e.dispute_id,
                    show(refund),
                    show(release),
                    show(total),
                    show(d.order_amount)
                ));
            }
            if e.data["currency"].as_str() != d.currency.as_deref() {
                return Err(format!(
                    "dispute {} resolved in {}, not its order's currency {}",
                    e.dispute_id,
                    e.data["currency"],
                    d.currency.as_deref().unwrap_or("?")
                ));
            }
            d.resolved_at = Some(e.seq);
        }
        _ => {}
    }
    Ok(())
}

/// `verify`: the whole history, from seq 1, up to the first break.
pub async fn verify(source: &Source) -> anyhow::Result<Audit> {
    let mut verifier = Some(Verifier::new());
    let mut broken: Option<Audit> = None;
    let progress = progress("verify", None);
    source
        .for_each_entry(None, 1, |entry| {
            progress.inc(1);
            let v = verifier.as_mut().expect("verifying until the first break");
            if let Err((seq, reason)) = v.check_entry(&entry) {
                broken = verifier.take().map(|v| v.fail(seq, reason));
                return Ok(ControlFlow::Break(()));
            }
            Ok(ControlFlow::Continue(()))
        })
        .await?;
    progress.finish_and_clear();
    Ok(match (broken, verifier) {
        (Some(audit), _) => audit,
        (None, Some(v)) => v.finish(),
        (None, None) => unreachable!("either broken or still verifying"),
    })
}

/// Prints the summary; the exit code is the caller's.
pub fn print_audit(audit: &Audit, out: &mut impl Write) -> std::io::Result<()> {
    match &audit.first_break {
        None => writeln!(
            out,
            "ok: {} events, {} disputes, {} resolved; chain intact; head hash {}",
            audit.events, audit.disputes, audit.resolved, audit.head_hash
        ),
        Some((seq, reason)) => writeln!(
            out,
            "BROKEN at seq {seq}: {reason}\n({} events verified before it, {} disputes, {} resolved; last good hash {})",
            audit.events, audit.disputes, audit.resolved, audit.head_hash
        ),
    }
}

/// `rebuild`: drops the read models and folds the log again, with progress on a terminal.
pub fn rebuild(data_dir: &Path, policy: disputes_domain::Policy) -> anyhow::Result<u64> {
    let store = open_store(data_dir)?;
    // Dropped whole, not opened: damaged read models may not open at all.
    let path = data_dir.join("projections");
    match std::fs::remove_dir_all(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("drop the read models at {}", path.display()))
        }
        _ => {}
    }
    let projections = Projections::open(&path, policy)?;
    let head = disputes_store::EventStore::head(&store);
    let progress = progress("rebuild", Some(head));
    projector::catch_up_blocking(&store, &projections, |done| progress.set_position(done))?;
    progress.finish_and_clear();
    projections.flush()?;
    Ok(projections.checkpoint())
}

/// A JSON summary for `--json` callers.
pub fn audit_json(audit: &Audit) -> Value {
    json!({
        "ok": audit.first_break.is_none(),
        "events": audit.events,
        "disputes": audit.disputes,
        "resolved": audit.resolved,
        "head_hash": audit.head_hash,
        "first_break": audit.first_break.as_ref().map(|(seq, reason)| json!({"seq": seq, "reason": reason})),
    })
}

#[cfg(test)]
mod tests {
    use disputes_store::{compute_hash, ActorRef, GENESIS_PREV_HASH};

    use super::*;

    /// A chain of `(dispute, type, data)` events, hashed as the store hashes them.
    fn chain(events: &[(&str, &str, Value)]) -> Vec<Envelope> {
        let mut prev_hash = GENESIS_PREV_HASH.to_owned();
        let mut versions: HashMap<&str, u64> = HashMap::new();
        let mut out = Vec::new();
        for (n, (dispute, event_type, data)) in events.iter().enumerate() {
            let version = versions.entry(dispute).or_default();
            *version += 1;
            let mut e = Envelope {
                event_id: format!("e-{n}"),
                seq: n as u64 + 1,
                dispute_id: (*dispute).to_owned(),
                version: *version,
                event_type: (*event_type).to_owned(),
                occurred_at: "2026-11-27T08:00:00Z".parse().unwrap(),
                command_id: Some(format!("c-{n}")),
                actor: ActorRef {
                    role: "buyer".into(),
                    id: "b-1".into(),
                },
                data: data.clone(),
                prev_hash: prev_hash.clone(),
                hash: String::new(),
                revision: None,
            };
            e.hash = compute_hash(&e.prev_hash, &e);
            prev_hash = e.hash.clone();
            out.push(e);
        }
        out
    }

    fn opened(amount: u64) -> Value {
        json!({"order_id": "o-1", "buyer_id": "b-1", "seller_id": "s-1", "reason": "not_received",
               "order_amount": {"amount": amount, "currency": "USD"},
               "proposal": {"solution": "full_refund"}, "description": null})
    }

    fn resolved(refund: u64, release: u64, currency: &str) -> Value {
        json!({"solution": "partial_refund", "refund_amount": refund, "release_amount": release,
               "currency": currency, "basis": "agreement"})
    }

    fn first_break(events: &[Envelope]) -> Option<(u64, String)> {
        let mut v = Verifier::new();
        for e in events {
            if let Err(reason) = v.check(e) {
                return Some((e.seq, reason));
            }
        }
        None
    }

    #[test]
    fn a_conserving_history_passes_and_another_currency_breaks() {
        let good = chain(&[
            ("d-1", "DisputeOpened", opened(100)),
            ("d-1", "DisputeResolved", resolved(30, 70, "USD")),
        ]);
        assert_eq!(first_break(&good), None);
        let bad = chain(&[
            ("d-1", "DisputeOpened", opened(100)),
            ("d-1", "DisputeResolved", resolved(30, 70, "EUR")),
        ]);
        let (seq, reason) = first_break(&bad).unwrap();
        assert_eq!(seq, 2);
        assert!(reason.contains("resolved in \"EUR\""), "{reason}");
    }

    #[test]
    fn an_event_before_its_dispute_opened_breaks() {
        let events = chain(&[("d-1", "DisputeResolved", resolved(1, 1, "USD"))]);
        let (seq, reason) = first_break(&events).unwrap();
        assert_eq!(seq, 1);
        assert!(reason.contains("before its DisputeOpened"), "{reason}");
    }
}
