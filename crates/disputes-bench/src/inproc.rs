//! The in-process workloads: `inproc` (the command side on the durable store), `replay` (the read
//! models rebuilt from the log, then `inproc` on that full store against an empty one) and
//! `verify` (the auditor over the whole log), each beside a raw sled baseline of the same work.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use disputes_command::{CommandHandler, Reply};
use disputes_domain::{Limits, Policy};
use disputes_readside::{projections::BATCH_EVENTS_MAX, projector, Projections};
use disputes_store::{EventStore, SledStore, StoreOptions};
use disputes_testkit::workload::{fan_out, fill, lifecycle, now};
use serde_json::json;

use crate::report::{report, Bound, Goal, Measured, Report};

pub(crate) fn inproc(dir: &Path, disputes: usize, concurrency: usize) -> anyhow::Result<Report> {
    let run = "inproc";
    let store = Arc::new(SledStore::open(
        &dir.join("events"),
        StoreOptions::default(),
    )?);
    let handler = CommandHandler::new(store.clone(), Policy::default(), Limits::default());
    // The bytes the workload appends, per command, for the baseline: captured from one warm-up dispute.
    let mut sizes = Vec::new();
    for (ty, body) in lifecycle("warmup", 0) {
        let Reply::Accepted(a) = handler.handle(ty, &body, now()) else {
            anyhow::bail!("warm-up {ty} refused")
        };
        sizes.push(
            a.events
                .iter()
                .map(|e| serde_json::to_vec(e).expect("json").len())
                .collect::<Vec<_>>(),
        );
    }
    let (baseline, baseline_per_sync) =
        raw_group_commit(&dir.join("raw"), disputes, concurrency, &sizes)?;
    let before = store.stats();
    let (elapsed, latencies) = fan_out(disputes, concurrency, |n, lat| {
        for (ty, body) in lifecycle(run, n) {
            let t = Instant::now();
            let reply = handler.handle(ty, &body, now());
            lat.push(t.elapsed().as_micros() as u64);
            assert!(
                matches!(reply, Reply::Accepted(_)),
                "{ty} refused: {reply:?}"
            );
        }
    });
    let ops = (disputes * 5) as u64;
    let after = store.stats();
    let per_sync = (after.appends - before.appends) as f64
        / (after.group_commits - before.group_commits).max(1) as f64;
    // How full the group commits were: the writes one fdatasync covered, on each side.
    let extra =
        json!({"appends_per_sync": per_sync, "baseline_appends_per_sync": baseline_per_sync});
    let mut report = report(Measured {
        workload: "inproc",
        ops,
        elapsed,
        sorted_latencies: &latencies,
        baseline: "raw sled appends, same bytes, same group commit",
        baseline_ops_per_sec: Some(baseline),
        extra: Some(extra),
    });
    let ratio = report.ratio.unwrap_or(0.0);
    report.goals.push(Goal::new(
        "inproc / raw sled group commit",
        ratio,
        Bound::AtLeast,
        0.6,
    ));
    Ok(report)
}

/// The baseline of `inproc`: the same number of appends of the same byte sizes into a raw sled
/// tree, through one writer thread that commits each batch with one flush + fdatasync. Appends
/// per second, and appends per sync.
fn raw_group_commit(
    dir: &Path,
    disputes: usize,
    concurrency: usize,
    sizes: &[Vec<usize>],
) -> anyhow::Result<(f64, f64)> {
    let db = sled::Config::new().path(dir).open()?;
    let tree = db.open_tree("events")?;
    let data_file = std::fs::File::open(dir.join("db")).context("sled's data file")?;
    let (tx, rx) = mpsc::sync_channel::<(Vec<Vec<u8>>, mpsc::SyncSender<()>)>(1024);
    let writer = std::thread::spawn(move || -> anyhow::Result<u64> {
        let mut seq: u64 = 0;
        let mut syncs: u64 = 0;
        while let Ok(first) = rx.recv() {
            let mut waiters = vec![first];
            while waiters.len() < 256 {
                match rx.try_recv() {
                    Ok(next) => waiters.push(next),
                    Err(_) => break,
                }
            }
            let mut batch = sled::Batch::default();
            for (events, _) in &waiters {
                for bytes in events {
                    seq += 1;
                    batch.insert(&seq.to_be_bytes(), bytes.as_slice());
                }
            }
            tree.apply_batch(batch)?;
            db.flush()?;
            data_file.sync_data()?; // fdatasync(2)
            syncs += 1;
            for (_, done) in waiters {
                let _ = done.send(());
            }
        }
        Ok(syncs)
    });
    let (elapsed, _) = fan_out(disputes, concurrency, |_, _| {
        for command in sizes {
            let events: Vec<Vec<u8>> = command.iter().map(|n| vec![b'x'; *n]).collect();
            let (done_tx, done_rx) = mpsc::sync_channel(1);
            tx.send((events, done_tx)).expect("writer alive");
            done_rx.recv().expect("writer answers");
        }
    });
    drop(tx);
    let syncs = writer.join().expect("writer thread")?;
    let appends = (disputes * sizes.len()) as f64;
    Ok((
        appends / elapsed.as_secs_f64(),
        appends / syncs.max(1) as f64,
    ))
}

/// Baseline of `replay` and `verify`: scan the whole log, decoding every envelope; events/s.
fn raw_scan(store: &SledStore) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut next = 1;
    let mut scanned = 0u64;
    loop {
        let batch = store.read_from(next, BATCH_EVENTS_MAX)?;
        let Some(last) = batch.last().map(|e| e.seq) else {
            break;
        };
        scanned += batch
            .iter()
            .map(|e| u64::from(!e.event_type.is_empty()))
            .sum::<u64>();
        next = last + 1;
    }
    Ok(scanned as f64 / started.elapsed().as_secs_f64())
}

pub(crate) async fn verify(dir: &Path, disputes: usize) -> anyhow::Result<Report> {
    let (events, baseline) = {
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, f64)> {
            let store = fill(&dir.join("events"), disputes, 8);
            Ok((store.head(), raw_scan(&store)?))
        })
        .await??
    };
    let (elapsed, audit) = audit_verify(dir, events).await?;
    let extra = json!({"disputes": audit.disputes, "resolved": audit.resolved});
    Ok(report(Measured {
        workload: "verify",
        ops: events,
        elapsed,
        sorted_latencies: &[],
        baseline: "raw scan + JSON decode of the same log",
        baseline_ops_per_sec: Some(baseline),
        extra: Some(extra),
    }))
}

/// `disputes audit verify` over the store in `dir`, which must find `events` events intact; how
/// long it took, and what it found.
async fn audit_verify(
    dir: &Path,
    events: u64,
) -> anyhow::Result<(std::time::Duration, disputes::audit::Audit)> {
    let started = Instant::now();
    let audit = disputes::audit::verify(&disputes::audit::Source::Store(dir.to_owned())).await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        audit.first_break.is_none() && audit.events == events,
        "verify: {audit:?}"
    );
    Ok((elapsed, audit))
}

pub(crate) fn replay(dir: &Path, disputes: usize) -> anyhow::Result<Report> {
    let store = fill(&dir.join("events"), disputes, 8);
    let events = store.head();
    let baseline = raw_scan(&store)?;
    let projections = Projections::open(&dir.join("projections"), Policy::default())?;
    let started = Instant::now();
    projector::catch_up_blocking(&*store, &projections, |_| {})?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        projections.checkpoint() == events,
        "the read models applied every event"
    );
    drop(store);
    // `disputes audit verify` over the same log (the `verify` workload, without a fill of its own).
    let (verify_elapsed, _) =
        tokio::runtime::Handle::current().block_on(audit_verify(dir, events))?;
    let verify_secs = verify_elapsed.as_secs_f64();
    let (empty, full) = history_cost(dir, disputes.min(2_000))?;
    let extra = json!({
        "verify_events_per_sec": events as f64 / verify_secs,
        "verify_ratio": events as f64 / verify_secs / baseline,
        "inproc_ops_per_sec_empty_store": empty,
        "inproc_ops_per_sec_this_store": full,
    });
    let mut report = report(Measured {
        workload: "replay",
        ops: events,
        elapsed,
        sorted_latencies: &[],
        baseline: "raw scan + JSON decode of the same log",
        baseline_ops_per_sec: Some(baseline),
        extra: Some(extra),
    });
    report.goals.push(Goal::new(
        format!("inproc on a store of {events} events / inproc on an empty store"),
        full / empty,
        Bound::AtLeast,
        0.9,
    ));
    Ok(report)
}

/// Cost independent of history: the `inproc` lifecycle (`disputes` of them, 16 clients, durable)
/// on the store `replay` just filled and on an empty one, twice each, alternating; the mean
/// commands/s of each: `(empty, filled)`.
fn history_cost(dir: &Path, disputes: usize) -> anyhow::Result<(f64, f64)> {
    let (mut empty, mut full) = (Vec::new(), Vec::new());
    for round in 0..2 {
        let fresh = dir.join(format!("empty-{round}"));
        empty.push(lifecycles(&fresh, &format!("empty{round}"), disputes)?);
        full.push(lifecycles(
            &dir.join("events"),
            &format!("history{round}"),
            disputes,
        )?);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    Ok((mean(&empty), mean(&full)))
}

/// Commands/s of `disputes` lifecycles at 16 clients on the store at `path`, durable.
fn lifecycles(path: &Path, run: &str, disputes: usize) -> anyhow::Result<f64> {
    let store = Arc::new(SledStore::open(path, StoreOptions::default())?);
    let handler = CommandHandler::new(store.clone(), Policy::default(), Limits::default());
    let (elapsed, _) = fan_out(disputes, 16, |n, _| {
        for (ty, body) in lifecycle(run, n) {
            let reply = handler.handle(ty, &body, now());
            assert!(
                matches!(reply, Reply::Accepted(_)),
                "{ty} refused: {reply:?}"
            );
        }
    });
    Ok((disputes * 5) as f64 / elapsed.as_secs_f64())
}
