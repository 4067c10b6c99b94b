//! Append throughput, measured beside its baseline in the same run: raw sled inserts with one
//! flush + fdatasync per write; and beside the floor under it: sled's writes alone, never synced.
//! Used by `examples/append_bench.rs`.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};

use crate::api::{
    AppendOutcome, AppendRequest, CommandRecord, Durability, EventStore, StoreOptions,
};
use crate::disk::fdatasync;
use crate::error::StoreError;
use crate::layout::seq_key;
use crate::sled_store::SledStore;
use disputes_envelope::{ActorRef, NewEvent};

/// Appender threads in one case, at most.
pub const APPENDERS_MAX: usize = 1_024;
/// Events in one dispute's stream before an appender moves to a new dispute.
const EVENTS_PER_DISPUTE: u64 = 16;

/// One measured case.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    /// `"sled insert + flush + fdatasync per write"` or `"append (group commit)"`.
    pub name: String,
    pub appenders: usize,
    pub ops: u64,
    pub elapsed: Duration,
    pub ops_per_sec: f64,
    /// Writes made durable per flush + fdatasync: 1 for the baseline, the mean group size otherwise,
    /// 0 when nothing was synced.
    pub ops_per_sync: f64,
}

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchPlan {
    pub appenders: Vec<usize>,
    /// How long each case runs in each round.
    pub case_duration: Duration,
    /// Rounds of all the cases, interleaved (so a disturbance on a shared machine hits every case
    /// alike); each row reports its median round.
    pub rounds: usize,
    pub durability: Durability,
}

impl Default for BenchPlan {
    fn default() -> Self {
        BenchPlan {
            appenders: vec![1, 16, 64],
            case_duration: Duration::from_secs(2),
            rounds: 3,
            durability: Durability::Fsync,
        }
    }
}

/// Rounds at most.
pub const ROUNDS_MAX: usize = 100;

/// The baseline, the floor of sled's writes, then one append case per entry of `plan.appenders`,
/// `plan.rounds` times over, each case each round in a fresh store in a new subdirectory of `dir`.
/// One row per case: the round with the median ops/s.
pub fn run(dir: &Path, plan: &BenchPlan) -> Result<Vec<BenchRow>, StoreError> {
    if !(1..=ROUNDS_MAX).contains(&plan.rounds) {
        return Err(StoreError::Invalid(format!(
            "rounds must be within 1..={ROUNDS_MAX}"
        )));
    }
    let mut rounds: Vec<Vec<BenchRow>> = vec![Vec::new(); plan.appenders.len() + 2];
    for round in 0..plan.rounds {
        let raw = raw_sled_flush_per_write(&dir.join(format!("raw-{round}")), plan.case_duration)?;
        rounds[0].push(raw);
        let floor = raw_sled_keys_no_sync(&dir.join(format!("keys-{round}")), plan.case_duration)?;
        rounds[1].push(floor);
        for (case, &appenders) in plan.appenders.iter().enumerate() {
            let case_dir = dir.join(format!("append-{appenders}-{round}"));
            let row = append_throughput(&case_dir, appenders, plan.case_duration, plan.durability)?;
            rounds[case + 2].push(row);
        }
    }
    Ok(rounds.into_iter().map(median).collect())
}

fn median(mut rows: Vec<BenchRow>) -> BenchRow {
    rows.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
    rows.swap_remove(rows.len() / 2)
}

/// The event every benchmark append writes: about the size of a real `DisputeOpened`.
pub fn sample_data() -> Value {
    json!({
        "order_id": "o-0000000001", "buyer_id": "b-000001", "seller_id": "s-000001",
        "reason": "not_as_described", "order_amount": {"amount": 12999, "currency": "USD"},
        "proposal": {"solution": "partial_refund", "amount": 5000},
        "description": "The item arrived scratched and the colour is not the one in the listing photos."
    })
}

/// One thread inserting the stored size of a sample event into sled, each insert followed by
/// `flush` and `fdatasync` of the `db` file, for `duration`.
pub fn raw_sled_flush_per_write(dir: &Path, duration: Duration) -> Result<BenchRow, StoreError> {
    fresh(dir)?;
    let db = sled::Config::new().path(dir).open()?;
    let tree = db.open_tree("raw")?;
    let db_file = File::open(dir.join("db"))?;
    let value = serde_json::to_vec(&sample_data()).expect("sample data serializes");
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < duration {
        ops += 1;
        tree.insert(seq_key(ops), value.as_slice())?;
        db.flush()?;
        fdatasync(&db_file)?;
    }
    let name = "sled insert + flush + fdatasync per write";
    Ok(row(name, 1, ops, start.elapsed(), ops))
}

/// Keys written per batch by [`raw_sled_keys_no_sync`]: about one group commit's worth.
const FLOOR_BATCH_KEYS: u64 = 32;

/// The cost of sled's writes alone, the floor under any append: one thread applying batches of
/// [`FLOOR_BATCH_KEYS`] inserts of the stored size of a sample event, never flushed or synced, for
/// `duration`. Its ops are keys: an append writes at least three (event, stream entry, command
/// record; more with its version, order and meta).
pub fn raw_sled_keys_no_sync(dir: &Path, duration: Duration) -> Result<BenchRow, StoreError> {
    fresh(dir)?;
    let db = sled::Config::new().path(dir).open()?;
    let tree = db.open_tree("raw")?;
    let value = serde_json::to_vec(&sample_data()).expect("sample data serializes");
    let start = Instant::now();
    let mut keys = 0u64;
    while start.elapsed() < duration {
        let mut batch = sled::Batch::default();
        for _ in 0..FLOOR_BATCH_KEYS {
            keys += 1;
            batch.insert(&seq_key(keys), value.as_slice());
        }
        tree.apply_batch(batch)?;
    }
    let name = "sled keys alone, batches of 32, no sync";
    Ok(row(name, 1, keys, start.elapsed(), 0))
}

/// `appenders` threads appending one-event commands to their own disputes for `duration`.
pub fn append_throughput(
    dir: &Path,
    appenders: usize,
    duration: Duration,
    durability: Durability,
) -> Result<BenchRow, StoreError> {
    if !(1..=APPENDERS_MAX).contains(&appenders) {
        return Err(StoreError::Invalid(format!(
            "appenders must be within 1..={APPENDERS_MAX}"
        )));
    }
    fresh(dir)?;
    let store = SledStore::open(
        dir,
        StoreOptions {
            durability,
            ..StoreOptions::default()
        },
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..appenders)
        .map(|thread| {
            let (store, stop, ops) = (store.clone(), stop.clone(), ops.clone());
            std::thread::spawn(move || appender(&store, thread, &stop, &ops))
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut outcome = Ok(());
    for thread in threads {
        let result = thread
            .join()
            .unwrap_or_else(|_| Err(StoreError::Unavailable("appender panicked".into())));
        outcome = outcome.and(result);
    }
    let elapsed = start.elapsed();
    outcome?;
    let (ops, syncs) = (ops.load(Ordering::Relaxed), store.stats().group_commits);
    Ok(row("append (group commit)", appenders, ops, elapsed, syncs))
}

/// Benchmarks write into directories that do not exist yet, never into a store that has data.
fn fresh(dir: &Path) -> Result<(), StoreError> {
    if dir.exists() {
        return Err(StoreError::Invalid(format!(
            "{} exists: benchmarks need a new directory",
            dir.display()
        )));
    }
    Ok(())
}

fn appender(
    store: &SledStore,
    thread: usize,
    stop: &AtomicBool,
    ops: &AtomicU64,
) -> Result<(), StoreError> {
    let data = sample_data();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let command_id = format!("t{thread}-c{n}");
        let req = AppendRequest {
            dispute_id: format!("t{thread}-d{}", n / EVENTS_PER_DISPUTE),
            expected_version: n % EVENTS_PER_DISPUTE,
            command: Some(CommandRecord {
                command_id: command_id.clone(),
                fingerprint: "f".into(),
                meta: Value::Null,
            }),
            reserve_order: None,
            events: vec![NewEvent {
                event_type: "BenchEvent".into(),
                data: data.clone(),
                occurred_at: Utc::now(),
                actor: ActorRef {
                    role: "buyer".into(),
                    id: format!("b-{thread}"),
                },
                command_id: Some(command_id),
            }],
        };
        match store.append(req)? {
            AppendOutcome::Appended(_) => ops.fetch_add(1, Ordering::Relaxed),
            AppendOutcome::Duplicate(_) => {
                return Err(StoreError::Unavailable("unexpected duplicate".into()))
            }
        };
        n += 1;
    }
    Ok(())
}

fn row(name: &str, appenders: usize, ops: u64, elapsed: Duration, syncs: u64) -> BenchRow {
    let ops_per_sec = ops as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    let ops_per_sync = if syncs == 0 {
        0.0
    } else {
        ops as f64 / syncs as f64
    };
    let name = name.to_owned();
    BenchRow {
        name,
        appenders,
        ops,
        elapsed,
        ops_per_sec,
        ops_per_sync,
    }
}

/// The rows as a text table, each with its ratio to the baseline (the first row).
pub fn table(rows: &[BenchRow]) -> String {
    let baseline = rows.first().map_or(1.0, |r| r.ops_per_sec);
    let mut out = format!(
        "{:<42} {:>9} {:>8} {:>9} {:>7} {:>9}\n",
        "case", "appenders", "ops", "ops/s", "x base", "ops/sync"
    );
    for r in rows {
        let ratio = r.ops_per_sec / baseline;
        out.push_str(&format!(
            "{:<42} {:>9} {:>8} {:>9.0} {:>7.1} {:>9.1}\n",
            r.name, r.appenders, r.ops, r.ops_per_sec, ratio, r.ops_per_sync
        ));
    }
    out
}
