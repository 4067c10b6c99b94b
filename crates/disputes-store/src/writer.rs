//! The single writer: one thread, fed by a bounded queue of requests its callers checked and
//! drafted, takes every waiting request (up to a limit), applies them in one sled transaction (each
//! request with its own checks, so one refusal does not fail the others), makes the batch durable
//! with one sled flush + `fdatasync` (group commit), advances the durable head, and answers every
//! request of the batch. Requests arriving meanwhile queue up and form the next batch, so the
//! busier the store, the larger the batches. Being alone, the writer makes seq and the hash chain
//! gap-free by construction.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use tokio::sync::{oneshot, watch};

use crate::api::{CommandOutcome, CommandRecord, SealedAppend};
use crate::append_tx;
use crate::disk::DiskSync;
use crate::error::StoreError;
use crate::sled_store::Trees;
use disputes_envelope::Draft;

pub(crate) type Reply = Result<Written, StoreError>;

/// An append request as the writer takes it: checked, its events drafted by the caller.
pub(crate) struct Append {
    pub dispute_id: String,
    pub expected_version: u64,
    pub command: Option<CommandRecord>,
    pub reserve_order: Option<String>,
    /// One per event, in order; at least one.
    pub drafts: Vec<Draft>,
}

/// What the writer is asked to do with one request.
pub(crate) enum Work {
    /// Judge, seal and write new events.
    Append(Append),
    /// Write events another log already sealed, after checking they continue this one.
    Import(SealedAppend),
}

pub(crate) struct Job {
    pub req: Work,
    pub reply: oneshot::Sender<Reply>,
}

/// What the writer did with one request; the caller completes the envelopes from its own events.
pub(crate) enum Written {
    /// One seal per event, in order.
    Appended(Vec<Seal>),
    Duplicate(CommandOutcome),
}

/// What the writer gave an event: its place in the log and its hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seal {
    pub seq: u64,
    pub version: u64,
    pub prev_hash: String,
    pub hash: String,
}

/// The durable head: what `head`, `subscribe` and every read go by.
pub(crate) struct Durable {
    head: AtomicU64,
    watch: watch::Sender<u64>,
    /// The writer's first storage failure: from then on it refuses every append.
    failure: Mutex<Option<StoreError>>,
    /// Group commits made durable, and appends acknowledged: for benchmarks and metrics.
    pub commits: AtomicU64,
    pub appends: AtomicU64,
}

impl Durable {
    pub(crate) fn new(head: u64) -> Durable {
        Durable {
            head: AtomicU64::new(head),
            watch: watch::Sender::new(head),
            failure: Mutex::new(None),
            commits: AtomicU64::new(0),
            appends: AtomicU64::new(0),
        }
    }

    pub(crate) fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.watch.subscribe()
    }

    pub(crate) fn failure(&self) -> Option<StoreError> {
        self.failure.lock().expect("failure lock").clone()
    }

    /// Records a storage failure met outside the writer (a read: sled also writes while reading,
    /// when it consolidates a page, and fails every operation after a failed background flush).
    /// The first failure stays; the writer refuses every append from its next batch on.
    pub(crate) fn record_failure(&self, error: &StoreError) {
        let mut failure = self.failure.lock().expect("failure lock");
        if failure.is_none() {
            tracing::error!(%error, "event store failed on a read: refusing appends until it is opened again");
            *failure = Some(error.clone());
        }
    }

    fn advance(&self, head: u64) {
        assert!(head >= self.head(), "the durable head never moves back");
        self.head.store(head, Ordering::Release);
        self.watch.send_replace(head);
    }
}

/// Everything the writer needs.
pub(crate) struct WriterParts {
    pub db: sled::Db,
    pub trees: Trees,
    /// `None`: [`crate::Durability::Buffered`].
    pub disk: Option<DiskSync>,
    pub durable: Arc<Durable>,
    pub head: u64,
    pub queue_max: usize,
    pub group_commit_max: usize,
}

/// Starts the writer; its handle ends once every sender is dropped and every request answered.
pub(crate) fn spawn(parts: WriterParts) -> Result<(SyncSender<Job>, JoinHandle<()>), StoreError> {
    let (jobs, job_queue) = mpsc::sync_channel(parts.queue_max);
    let writer = Writer {
        db: parts.db,
        trees: parts.trees,
        disk: parts.disk,
        durable: parts.durable,
        group_commit_max: parts.group_commit_max,
        committed: parts.head,
        failure: None,
    };
    let handle = thread::Builder::new()
        .name("disputes-store-writer".into())
        .spawn(move || writer.run(job_queue))?;
    Ok((jobs, handle))
}

struct Writer {
    db: sled::Db,
    trees: Trees,
    disk: Option<DiskSync>,
    durable: Arc<Durable>,
    group_commit_max: usize,
    /// The last seq committed to sled (durable or not yet).
    committed: u64,
    /// The first storage failure: from then on every append is refused. sled 0.34 cannot go on
    /// after a failed write (its next flush waits forever, even once the disk has room again), so
    /// nothing here tries to: the process must open the store afresh.
    failure: Option<StoreError>,
}

impl Writer {
    /// Until every sender is dropped.
    fn run(mut self, job_queue: Receiver<Job>) {
        while let Ok(first) = job_queue.recv() {
            let mut jobs = Vec::with_capacity(self.group_commit_max.min(64));
            jobs.push(first);
            while jobs.len() < self.group_commit_max {
                match job_queue.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.commit(jobs);
        }
        tracing::debug!(head = self.durable.head(), "store writer stopped");
    }

    fn commit(&mut self, jobs: Vec<Job>) {
        let replies = self.apply(&jobs);
        // Nothing new to sync, or the store failed: its last sync did not happen and will not.
        let wrote = self.failure.is_none() && self.committed > self.durable.head();
        let synced = if wrote { self.make_durable() } else { Ok(()) };
        for (job, reply) in jobs.into_iter().zip(replies) {
            let answer = match (&synced, reply) {
                (Err(error), Ok(_)) => Err(error.clone()),
                (_, reply) => reply,
            };
            if answer.is_ok() {
                self.durable.appends.fetch_add(1, Ordering::Relaxed);
            }
            let _gone = job.reply.send(answer); // the caller may have stopped waiting
        }
    }

    /// One reply per job, in order.
    fn apply(&mut self, jobs: &[Job]) -> Vec<Reply> {
        if self.failure.is_none() {
            self.failure = self.durable.failure();
        }
        if let Some(error) = &self.failure {
            let refusal = StoreError::Unavailable(format!(
                "the store failed earlier ({error}); it takes no writes until it is opened again"
            ));
            return jobs.iter().map(|_| Err(refusal.clone())).collect();
        }
        match append_tx::apply_batch(&self.trees, jobs) {
            Ok(replies) => {
                for reply in &replies {
                    if let Ok(Written::Appended(seals)) = reply {
                        self.advance_committed(seals);
                    }
                }
                replies
            }
            Err(error) => {
                self.fail(&error);
                jobs.iter().map(|_| Err(error.clone())).collect()
            }
        }
    }

    fn advance_committed(&mut self, seals: &[Seal]) {
        for seal in seals {
            assert_eq!(seal.seq, self.committed + 1, "seqs are gap-free");
            self.committed = seal.seq;
        }
    }

    fn make_durable(&mut self) -> Result<(), StoreError> {
        if let Some(disk) = &mut self.disk {
            if let Err(error) = disk.sync(&self.db) {
                self.fail(&error);
                return Err(error);
            }
        }
        self.durable.commits.fetch_add(1, Ordering::Relaxed);
        self.durable.advance(self.committed);
        Ok(())
    }

    fn fail(&mut self, error: &StoreError) {
        tracing::error!(%error, "event store failed: refusing appends until it is opened again");
        self.failure.get_or_insert(error.clone());
        let mut shared = self.durable.failure.lock().expect("failure lock");
        shared.get_or_insert(error.clone());
    }
}
