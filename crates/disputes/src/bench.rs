//! `disputes bench <workload>`: throughput and latency beside a baseline measured in the same run.
//!
//! | workload | what runs | baseline |
//! |---|---|---|
//! | `inproc` | the 5-command lifecycle through the command handler and the durable sled store | raw sled appends of the same bytes with the same group commit |
//! | `nats` | the same lifecycle over NATS to an in-process `disputes serve` | an echo responder on the same NATS |
//! | `replay` | rebuilding every read model from the log | a raw scan + JSON decode of the same log |
//! | `scheduler` | a burst of expiries due at once, with pending deadlines | — (firing lag) |

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use disputes_domain::{Limits, Policy};
use disputes_store::{Durability, EventStore, SledStore, StoreOptions};
use serde::Serialize;
use serde_json::{json, Value};

use crate::handler::{CommandHandler, Reply};
use crate::clock::now;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    #[arg(value_enum)]
    pub workload: Workload,
    /// Disputes to run the lifecycle on (inproc, nats), or to build the log from (replay).
    #[arg(long)]
    pub disputes: Option<usize>,
    /// Concurrent clients.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// One JSON line instead of a readable summary.
    #[arg(long)]
    pub json: bool,
    /// Use this NATS server instead of starting one (nats and scheduler workloads).
    #[arg(long)]
    pub nats_url: Option<String>,
    /// Where temporary data dirs go (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq)]
pub enum Workload {
    Inproc,
    Nats,
    Replay,
    Scheduler,
    /// `disputes audit verify` over the whole log.
    Verify,
}

/// One JSON line per run, as issue 7 specifies.
#[derive(Debug, Serialize)]
pub struct Report {
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
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("disputes-bench-")
        .tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let report = match args.workload {
        Workload::Inproc => {
            let (disputes, concurrency) = (
                args.disputes.unwrap_or(4_000),
                args.concurrency.unwrap_or(16),
            );
            let dir = tmp.path().to_owned();
            tokio::task::spawn_blocking(move || inproc(&dir, disputes, concurrency)).await??
        }
        Workload::Replay => {
            let disputes = args.disputes.unwrap_or(111_112);
            let dir = tmp.path().to_owned();
            tokio::task::spawn_blocking(move || replay(&dir, disputes)).await??
        }
        Workload::Verify => verify(tmp.path(), args.disputes.unwrap_or(111_112)).await?,
        Workload::Nats => crate::bench_nats::nats(tmp.path(), &args).await?,
        Workload::Scheduler => crate::bench_nats::scheduler(tmp.path(), &args).await?,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(r: &Report) {
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
}

/// The five commands of one dispute's lifecycle: open → counter_propose → reject_proposal →
/// submit_shipping_proof → rule(partial_refund).
pub fn lifecycle(run: &str, n: usize) -> Vec<(&'static str, Vec<u8>)> {
    let (dispute, buyer, seller) = (
        format!("d-{run}-{n}"),
        format!("b-{run}-{n}"),
        format!("s-{run}-{}", n % 97),
    );
    let buyer_actor = json!({"role": "buyer", "id": buyer});
    let seller_actor = json!({"role": "seller", "id": seller});
    let steps = [
        (
            "open",
            buyer_actor.clone(),
            json!({"order_id": format!("o-{run}-{n}"), "seller_id": seller, "reason": "not_received",
            "order_amount": {"amount": 12999, "currency": "USD"}, "proposal": {"solution": "full_refund"},
            "description": "the parcel never arrived"}),
        ),
        (
            "counter_propose",
            seller_actor.clone(),
            json!({"proposal": {"solution": "partial_refund", "amount": 5000}}),
        ),
        (
            "reject_proposal",
            buyer_actor,
            json!({"reason": "I want a full refund"}),
        ),
        (
            "submit_shipping_proof",
            seller_actor,
            json!({"carrier": "DHL", "tracking_number": "JD014600003828"}),
        ),
        (
            "rule",
            json!({"role": "mediator", "id": "m-1"}),
            json!({"outcome": "partial_refund", "amount": 8000, "responsible_party": "logistics", "note": "late"}),
        ),
    ];
    steps
        .into_iter()
        .enumerate()
        .map(|(i, (ty, actor, data))| {
            let body = json!({"command_id": format!("c-{run}-{n}-{i}"), "dispute_id": dispute, "actor": actor, "data": data});
            (ty, serde_json::to_vec(&body).expect("json"))
        })
        .collect()
}

/// Runs `each(dispute)` over `disputes` split across `concurrency` threads; per-op latencies in µs.
fn fan_out(
    disputes: usize,
    concurrency: usize,
    each: impl Fn(usize, &mut Vec<u64>) + Sync,
) -> (Duration, Vec<u64>) {
    let started = Instant::now();
    let mut latencies = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency)
            .map(|t| {
                let each = &each;
                scope.spawn(move || {
                    let mut lat = Vec::new();
                    for n in (t..disputes).step_by(concurrency) {
                        each(n, &mut lat);
                    }
                    lat
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("bench thread"))
            .collect::<Vec<u64>>()
    });
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    (elapsed, latencies)
}

pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i])
}

fn inproc(dir: &Path, disputes: usize, concurrency: usize) -> anyhow::Result<Report> {
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
                "{ty} refused: {}",
                reply.to_json()
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
    Ok(report(
        "inproc",
        ops,
        elapsed,
        &latencies,
        "raw sled appends, same bytes, same group commit",
        Some(baseline),
        Some(extra),
    ))
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
            // SAFETY: fdatasync on a file descriptor we own.
            if unsafe { libc::fdatasync(std::os::fd::AsRawFd::as_raw_fd(&data_file)) } != 0 {
                return Err(std::io::Error::last_os_error().into());
            }
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

/// Fills a store with the lifecycle of `disputes` disputes (not durable: setup only).
pub fn fill(dir: &Path, disputes: usize, concurrency: usize) -> anyhow::Result<Arc<SledStore>> {
    let options = StoreOptions {
        durability: Durability::Buffered,
        ..StoreOptions::default()
    };
    let store = Arc::new(SledStore::open(dir, options)?);
    let handler = CommandHandler::new(store.clone(), Policy::default(), Limits::default());
    fan_out(disputes, concurrency, |n, _| {
        for (ty, body) in lifecycle("fill", n) {
            let reply = handler.handle(ty, &body, now());
            assert!(
                matches!(reply, Reply::Accepted(_)),
                "{ty} refused: {}",
                reply.to_json()
            );
        }
    });
    Ok(store)
}

/// Baseline of `replay` and `verify`: scan the whole log, decoding every envelope; events/s.
fn raw_scan(store: &SledStore) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut next = 1;
    let mut scanned = 0u64;
    loop {
        let batch = store.read_from(next, crate::projections::BATCH_EVENTS_MAX)?;
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

async fn verify(dir: &Path, disputes: usize) -> anyhow::Result<Report> {
    let (events, baseline) = {
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, f64)> {
            let store = fill(&dir.join("events"), disputes, 8)?;
            Ok((store.head(), raw_scan(&store)?))
        })
        .await??
    };
    let started = Instant::now();
    let audit = crate::audit::verify(&crate::audit::Source::Store(dir.to_owned())).await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        audit.first_break.is_none() && audit.events == events,
        "verify: {audit:?}"
    );
    let extra = json!({"disputes": audit.disputes, "resolved": audit.resolved});
    Ok(report(
        "verify",
        events,
        elapsed,
        &[],
        "raw scan + JSON decode of the same log",
        Some(baseline),
        Some(extra),
    ))
}

fn replay(dir: &Path, disputes: usize) -> anyhow::Result<Report> {
    let store = fill(&dir.join("events"), disputes, 8)?;
    let events = store.head();
    let baseline = raw_scan(&store)?;
    let projections =
        crate::projections::Projections::open(&dir.join("projections"), Policy::default())?;
    let started = Instant::now();
    crate::projector::catch_up_blocking(&*store, &projections, |_| {})?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        projections.checkpoint() == events,
        "the read models applied every event"
    );
    Ok(report(
        "replay",
        events,
        elapsed,
        &[],
        "raw scan + JSON decode of the same log",
        Some(baseline),
        None,
    ))
}

pub fn report(
    workload: &str,
    ops: u64,
    elapsed: Duration,
    sorted_latencies: &[u64],
    baseline: &str,
    baseline_ops_per_sec: Option<f64>,
    extra: Option<Value>,
) -> Report {
    let secs = elapsed.as_secs_f64();
    let ops_per_sec = ops as f64 / secs.max(f64::EPSILON);
    Report {
        workload: workload.to_owned(),
        ops,
        secs,
        ops_per_sec,
        p50_us: percentile(sorted_latencies, 0.50),
        p99_us: percentile(sorted_latencies, 0.99),
        baseline: baseline.to_owned(),
        baseline_ops_per_sec,
        ratio: baseline_ops_per_sec.map(|b| ops_per_sec / b),
        rss_mb: rss_mb(),
        extra,
    }
}

/// Resident memory of this process, from /proc.
pub fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
