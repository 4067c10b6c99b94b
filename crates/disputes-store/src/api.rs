//! The store's contract: [`EventStore`] and the types it speaks.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use crate::error::StoreError;
use crate::limits::{
    APPEND_QUEUE_DEFAULT, CACHE_BYTES_DEFAULT, GROUP_COMMIT_DEFAULT, QUEUE_MAX,
    RECOVERY_TAIL_EVENTS_DEFAULT,
};
use disputes_envelope::{Envelope, NewEvent};

/// A command's id with what a repeat of it must be answered with.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRecord {
    pub command_id: String,
    /// Whatever the caller uses to tell a true repeat from another command under the same id.
    pub fingerprint: String,
    /// Whatever else the caller needs to rebuild its first reply (not hashed, not published).
    pub meta: Value,
}

/// A command's record and where its events are: `first_seq` and `count` of them (an append's
/// events are contiguous). What a publisher needs to mark where each append starts.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandPlace {
    pub record: CommandRecord,
    pub first_seq: u64,
    pub count: u64,
}

impl CommandPlace {
    /// The place of `command_id`'s events in its outcome.
    pub fn of(command_id: &str, outcome: CommandOutcome) -> CommandPlace {
        CommandPlace {
            first_seq: outcome.events.first().map_or(0, |e| e.seq),
            count: outcome.events.len() as u64,
            record: CommandRecord {
                command_id: command_id.to_owned(),
                fingerprint: outcome.fingerprint,
                meta: outcome.meta,
            },
        }
    }
}

/// The first outcome of a command id: its record and the events it appended.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandOutcome {
    pub fingerprint: String,
    pub meta: Value,
    pub dispute_id: String,
    pub events: Vec<Envelope>,
}

/// One atomic append to one dispute's stream.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendRequest {
    pub dispute_id: String,
    /// The dispute's current version (0: a dispute with no events yet).
    pub expected_version: u64,
    /// Recorded with the events; a repeat of its id appends nothing. Every event's `command_id`
    /// must be this command's id (or `None` when there is no command).
    pub command: Option<CommandRecord>,
    /// An order id to reserve for this dispute; another dispute holding it refuses the append.
    pub reserve_order: Option<String>,
    /// At least one, at most [`crate::limits::EVENTS_PER_APPEND_MAX`].
    pub events: Vec<NewEvent>,
}

/// One append as another log sealed it: its events (one dispute's, contiguous in seq and
/// version, hashes and links included) with the command record and order reservation that came
/// with them. What [`crate::SledStore::import`] takes.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedAppend {
    pub command: Option<CommandRecord>,
    pub reserve_order: Option<String>,
    pub events: Vec<Envelope>,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendOutcome {
    /// The events, now durable, with their seqs, versions and hashes.
    Appended(Vec<Envelope>),
    /// The command id was already recorded: nothing was appended; here is its first outcome
    /// (whatever its fingerprint: the caller compares).
    Duplicate(CommandOutcome),
}

/// Where `verify` found the log broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyBreak {
    pub seq: u64,
    pub reason: String,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events whose hash, link and index checked out before the first break (all of them if none).
    pub events: u64,
    /// The durable head when the walk started.
    pub head: u64,
    /// `hash` of the event at `head` as recomputed (64 zeros for an empty store).
    pub head_hash: String,
    /// The lowest seq where something is wrong, and what.
    pub first_break: Option<VerifyBreak>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// When `append` may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// After sled's flush and an `fdatasync` of its files: survives a process crash and a power loss.
    #[default]
    Fsync,
    /// After the sled transaction only: survives nothing. For tests and benchmarks that do not
    /// test durability.
    Buffered,
}

/// How to open a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    pub durability: Durability,
    /// Events checked (hash, chain, seq, index) at start-up, from the head down.
    pub recovery_tail_events: u64,
    /// Append requests waiting for the writer; `append` blocks while it is full.
    pub append_queue_max: usize,
    /// Append requests applied together and made durable by one flush + fdatasync.
    pub group_commit_max: usize,
    /// sled's page cache, in bytes (sled's own default is 1 GiB).
    pub cache_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Fsync,
            recovery_tail_events: RECOVERY_TAIL_EVENTS_DEFAULT,
            append_queue_max: APPEND_QUEUE_DEFAULT,
            group_commit_max: GROUP_COMMIT_DEFAULT,
            cache_bytes: CACHE_BYTES_DEFAULT,
        }
    }
}

impl StoreOptions {
    /// The defaults with [`Durability::Buffered`].
    pub fn buffered() -> Self {
        StoreOptions {
            durability: Durability::Buffered,
            ..StoreOptions::default()
        }
    }

    pub(crate) fn check(&self) -> Result<(), StoreError> {
        let in_range = |n: usize| (1..=QUEUE_MAX).contains(&n);
        if !in_range(self.append_queue_max) || !in_range(self.group_commit_max) {
            return Err(StoreError::invalid(format!(
                "queue sizes must be within 1..={QUEUE_MAX}"
            )));
        }
        Ok(())
    }
}

/// [`EventStore::append_queued`]'s outcome, to be awaited.
pub type PendingAppend = Pin<Box<dyn Future<Output = Result<AppendOutcome, StoreError>> + Send>>;

/// The event store. Every method but [`EventStore::append_queued`] is synchronous and may block
/// on I/O (a read that misses the cache): in async code, call long reads from `spawn_blocking`;
/// the command handler makes its one short read per command on the caller's thread.
pub trait EventStore: Send + Sync {
    /// Queues an append and returns at once (a store with a writer of its own blocks only while
    /// that writer's queue is full); the returned future resolves once the append is durable
    /// (with [`Durability::Fsync`]), no thread blocked meanwhile.
    fn append_queued(&self, req: AppendRequest) -> PendingAppend;
    /// Appends atomically; returns once the events are durable: [`EventStore::append_queued`],
    /// waited for on this thread.
    fn append(&self, req: AppendRequest) -> Result<AppendOutcome, StoreError> {
        futures::executor::block_on(self.append_queued(req))
    }
    /// Appends each request as [`EventStore::append`] would, all queued before the first is
    /// waited for, so that a store with group commit makes them durable together; the outcomes in
    /// the requests' order. Each is judged on its own (one refused fails no other): a second
    /// request on one dispute at the version the first already took is a conflict.
    fn append_many(&self, reqs: Vec<AppendRequest>) -> Vec<Result<AppendOutcome, StoreError>> {
        let queued: Vec<_> = reqs
            .into_iter()
            .map(|req| self.append_queued(req))
            .collect();
        queued
            .into_iter()
            .map(futures::executor::block_on)
            .collect()
    }
    /// One dispute's durable events in version order (empty for an unknown dispute).
    fn read_stream(&self, dispute_id: &str) -> Result<Vec<Envelope>, StoreError>;
    /// Durable events with `seq >= from_seq`, in seq order, at most
    /// `min(limit, READ_FROM_EVENTS_MAX)` of them.
    fn read_from(&self, from_seq: u64, limit: usize) -> Result<Vec<Envelope>, StoreError>;
    /// The last durable seq (0: empty).
    fn head(&self) -> u64;
    /// The durable head, updated after every group commit: wait on it instead of polling.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;
    /// The first outcome of a command id, once durable.
    fn command(&self, command_id: &str) -> Result<Option<CommandOutcome>, StoreError>;
    /// A command id's record and where its events are, once durable (the publisher's lookup, once
    /// per command: a store that can should answer it without reading the events).
    fn command_record(&self, command_id: &str) -> Result<Option<CommandPlace>, StoreError> {
        Ok(self
            .command(command_id)?
            .map(|outcome| CommandPlace::of(command_id, outcome)))
    }
    /// The dispute that reserved `order_id` (see [`AppendRequest::reserve_order`]), once durable.
    fn order_holder(&self, order_id: &str) -> Result<Option<String>, StoreError>;
    /// A dispute's durable version (0: no events).
    fn stream_version(&self, dispute_id: &str) -> Result<u64, StoreError>;
    /// The storage failure that stopped the store taking writes, if one did. Such a store refuses
    /// every append (`Unavailable`) until it is opened again, by a new process.
    fn failure(&self) -> Option<StoreError>;
    /// Walks the whole log: every hash, every link, seq continuity, the stream index.
    fn verify(&self) -> Result<VerifyReport, StoreError>;
}
