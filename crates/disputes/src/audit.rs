//! `disputes audit`: read the history as an auditor, from a data dir or from the stream alone.
//!
//! Every command streams envelopes in seq order from a [`Source`]: the store of a stopped service
//! (sled keeps one process per data dir; for a running service read the stream), or JetStream's
//! `DISPUTE_EVENTS` over NATS, which an auditor can read without access to the service's disk.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use chrono::{DateTime, Utc};
use disputes_store::{
    compute_hash, Envelope, EventStore, SledStore, StoreOptions, GENESIS_PREV_HASH,
};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::handler::{decode, try_decode};
use crate::projections::{view, Record};

/// Events read from the store per batch.
const READ_BATCH: usize = 4096;

pub enum Source {
    /// The service's data dir (the store under `events/`).
    Store(PathBuf),
    /// The events stream over NATS.
    Nats {
        url: String,
        stream: String,
        prefix: String,
    },
}

impl Source {
    /// Calls `each` with every envelope of seq ≥ `from_seq` (of one dispute, when given), in seq order.
    pub async fn for_each(
        &self,
        dispute_id: Option<&str>,
        from_seq: u64,
        mut each: impl FnMut(Envelope) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        match self {
            Source::Store(dir) => {
                let store = open_store(dir)?;
                if let Some(id) = dispute_id {
                    for envelope in store.read_stream(id)? {
                        if envelope.seq >= from_seq {
                            each(envelope)?;
                        }
                    }
                    return Ok(());
                }
                let mut next = from_seq.max(1);
                loop {
                    let batch = store.read_from(next, READ_BATCH)?;
                    let Some(last) = batch.last().map(|e| e.seq) else {
                        return Ok(());
                    };
                    batch.into_iter().try_for_each(&mut each)?;
                    next = last + 1;
                }
            }
            Source::Nats {
                url,
                stream,
                prefix,
            } => {
                let filter = match dispute_id {
                    Some(id) => format!("{prefix}.evt.{id}.>"),
                    None => format!("{prefix}.evt.>"),
                };
                read_stream(url, stream, &filter, |envelope| {
                    if envelope.seq >= from_seq {
                        each(envelope)?;
                    }
                    Ok(())
                })
                .await
            }
        }
    }
}

pub fn open_store(data_dir: &std::path::Path) -> anyhow::Result<SledStore> {
    let path = data_dir.join("events");
    anyhow::ensure!(path.exists(), "no event store at {}", path.display());
    SledStore::open(&path, StoreOptions::default()).with_context(|| {
        format!(
            "open the event store at {} (a running service holds it: audit the stream with --nats-url instead)",
            path.display()
        )
    })
}

/// Reads every message of `stream` matching `filter` that exists now, in stream order.
async fn read_stream(
    url: &str,
    stream_name: &str,
    filter: &str,
    mut each: impl FnMut(Envelope) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let client = async_nats::connect(url)
        .await
        .with_context(|| format!("connect to {url}"))?;
    let js = jetstream::new(client);
    let stream = js
        .get_stream(stream_name)
        .await
        .with_context(|| format!("stream {stream_name}"))?;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: filter.to_owned(),
            ..Default::default()
        })
        .await
        .context("create an ordered consumer")?;
    let mut pending = consumer.cached_info().num_pending;
    if pending == 0 {
        return Ok(());
    }
    let mut messages = consumer.messages().await?;
    let mut seen: HashMap<String, String> = HashMap::new();
    while pending > 0 {
        let message = messages.next().await.context("the stream ended early")??;
        let info = message
            .info()
            .map_err(|e| anyhow::anyhow!("message info: {e}"))?;
        pending = info.pending;
        let envelope: Envelope = serde_json::from_slice(&message.payload).with_context(|| {
            format!("stream message {} is not an envelope", info.stream_sequence)
        })?;
        // A re-publish outside JetStream's duplicate window repeats an event: identical, so skip it.
        if seen.get(&envelope.event_id) == Some(&envelope.hash) {
            continue;
        }
        seen.insert(envelope.event_id.clone(), envelope.hash.clone());
        each(envelope)?;
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
        "{:>8} {:>4}  {:<24} {:<24} {:<22} data",
        "seq", "ver", "occurred_at", "type", "actor"
    )?;
    for e in &events {
        let actor = format!("{}:{}", e.actor.role, e.actor.id);
        let time = disputes_domain::time::format(e.occurred_at);
        writeln!(
            out,
            "{:>8} {:>4}  {:<24} {:<24} {:<22} {}",
            e.seq, e.version, time, e.event_type, actor, e.data
        )?;
    }
    Ok(())
}

/// `export`: the log as NDJSON, one envelope a line, in seq order.
pub async fn export(source: &Source, from_seq: u64, out: &mut impl Write) -> anyhow::Result<u64> {
    let mut n = 0;
    source
        .for_each(None, from_seq, |e| {
            serde_json::to_writer(&mut *out, &e)?;
            out.write_all(b"\n")?;
            n += 1;
            Ok(())
        })
        .await?;
    out.flush()?;
    Ok(n)
}

/// `state --at`: the dispute as it stood at `at` (events with `occurred_at ≤ at`).
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
            let event = decode(&e);
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
    let record = record.with_context(|| format!("dispute {dispute_id} did not exist at {at}"))?;
    Ok(view(&record, at))
}

/// What `verify` found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Audit {
    pub events: u64,
    pub disputes: u64,
    pub resolved: u64,
    pub head_hash: String,
    /// The first break: its seq and what broke.
    pub first_break: Option<(u64, String)>,
}

#[derive(Default)]
struct DisputeAudit {
    version: u64,
    order_amount: Option<u64>,
    currency: Option<String>,
    resolved: bool,
}

/// Checks the chain and the invariants of rules.md, event by event, stopping at the first break.
#[derive(Default)]
pub struct Verifier {
    audit: Audit,
    prev_hash: String,
    disputes: HashMap<String, DisputeAudit>,
}

impl Verifier {
    pub fn new() -> Self {
        Verifier {
            prev_hash: GENESIS_PREV_HASH.to_owned(),
            ..Default::default()
        }
    }

    /// Checks one envelope; `Err` with the reason on the first break.
    pub fn check(&mut self, e: &Envelope) -> Result<(), String> {
        let expected_seq = self.audit.events + 1;
        if e.seq != expected_seq {
            return Err(format!(
                "seq {} where {expected_seq} was expected (a gap or a reorder)",
                e.seq
            ));
        }
        if e.prev_hash != self.prev_hash {
            return Err(format!(
                "prev_hash {} is not the previous event's hash {}",
                e.prev_hash, self.prev_hash
            ));
        }
        let hash = compute_hash(&e.prev_hash, e);
        if hash != e.hash {
            return Err(format!(
                "hash {} does not match the recomputed {hash}: the event was changed",
                e.hash
            ));
        }
        try_decode(e).map_err(|err| format!("{} does not decode: {err}", e.event_type))?;
        let d = self.disputes.entry(e.dispute_id.clone()).or_default();
        if d.resolved {
            return Err(format!(
                "{} after DisputeResolved of dispute {}",
                e.event_type, e.dispute_id
            ));
        }
        if e.version != d.version + 1 {
            return Err(format!(
                "dispute {} version {} after {} (versions must be gap-free)",
                e.dispute_id, e.version, d.version
            ));
        }
        d.version = e.version;
        check_money(d, e)?;
        self.audit.disputes += u64::from(e.version == 1);
        self.audit.resolved += u64::from(d.resolved);
        self.audit.events = e.seq;
        self.prev_hash = e.hash.clone();
        Ok(())
    }

    pub fn finish(mut self) -> Audit {
        self.audit.head_hash = self.prev_hash;
        self.audit
    }

    fn fail(mut self, seq: u64, reason: String) -> Audit {
        self.audit.first_break = Some((seq, reason));
        self.finish()
    }
}

/// Opening amounts in, resolutions out: refund + release = order amount, once.
fn check_money(d: &mut DisputeAudit, e: &Envelope) -> Result<(), String> {
    match e.event_type.as_str() {
        "DisputeOpened" => {
            if e.version != 1 {
                return Err(format!(
                    "DisputeOpened of {} at version {}",
                    e.dispute_id, e.version
                ));
            }
            d.order_amount = e.data["order_amount"]["amount"].as_u64();
            d.currency = e.data["order_amount"]["currency"]
                .as_str()
                .map(str::to_owned);
        }
        "DisputeResolved" => {
            let (refund, release) = (
                e.data["refund_amount"].as_u64(),
                e.data["release_amount"].as_u64(),
            );
            let total = refund.zip(release).and_then(|(a, b)| a.checked_add(b));
            if total.is_none() || total != d.order_amount {
                return Err(format!(
                    "dispute {} resolved with refund {refund:?} + release {release:?} != order amount {:?}",
                    e.dispute_id, d.order_amount
                ));
            }
            if e.data["currency"].as_str() != d.currency.as_deref() {
                return Err(format!(
                    "dispute {} resolved in another currency",
                    e.dispute_id
                ));
            }
            d.resolved = true;
        }
        _ if d.order_amount.is_none() => {
            return Err(format!(
                "{} of dispute {} before DisputeOpened",
                e.event_type, e.dispute_id
            ));
        }
        _ => {}
    }
    Ok(())
}

/// `verify`: the whole history, from seq 1.
pub async fn verify(source: &Source) -> anyhow::Result<Audit> {
    let mut verifier = Some(Verifier::new());
    let mut broken: Option<Audit> = None;
    source
        .for_each(None, 1, |e| {
            let Some(v) = verifier.as_mut() else {
                return Ok(());
            };
            if let Err(reason) = v.check(&e) {
                broken = Some(verifier.take().expect("verifier").fail(e.seq, reason));
            }
            Ok(())
        })
        .await?;
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
            "BROKEN at seq {seq}: {reason}\n({} events verified before it, {} disputes, {} resolved)",
            audit.events, audit.disputes, audit.resolved
        ),
    }
}

/// `rebuild`: drops the read models and folds the log again, with progress on a terminal.
pub fn rebuild(data_dir: &std::path::Path, policy: disputes_domain::Policy) -> anyhow::Result<u64> {
    let store = open_store(data_dir)?;
    let projections = crate::projections::Projections::open(&data_dir.join("projections"), policy)?;
    projections.clear()?;
    let head = store.head();
    let tty = unsafe { libc::isatty(2) } == 1;
    let mut last_shown = 0;
    loop {
        let n = crate::projector::step(&store, &projections)?;
        let done = projections.checkpoint();
        if tty && (done - last_shown >= 10_000 || n == 0) {
            eprint!(
                "\rrebuild: {done}/{head} events ({}%)",
                (done * 100).checked_div(head).unwrap_or(100)
            );
            last_shown = done;
        }
        if n == 0 {
            break;
        }
    }
    if tty {
        eprintln!();
    }
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
