//! [`SledStore`]: the embedded implementation of [`EventStore`] on sled 0.34.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{oneshot, watch};

use crate::api::{
    AppendOutcome, AppendRequest, CommandOutcome, CommandPlace, Durability, EventStore,
    PendingAppend, SealedAppend, StoreOptions, VerifyReport,
};
use crate::disk::DiskSync;
use crate::error::StoreError;
use crate::layout::{COMMANDS_TREE, DISPUTES_TREE, EVENTS_TREE, META_TREE, ORDERS_TREE};
use crate::recovery::Format;
use crate::validate::draft_events;
use crate::writer::{self, Append, Durable, Job, Seal, Work, WriterParts, Written};
use crate::{migrate, reads, recovery, verify};
use disputes_envelope::{Envelope, NewEvent};

/// What a store did since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// The durable head.
    pub head: u64,
    /// Append requests answered with success (appended or duplicate).
    pub appends: u64,
    /// Group commits made durable (with [`Durability::Fsync`], one flush + fdatasync each).
    pub group_commits: u64,
}

/// The sled trees of a store (see [`crate::layout`]).
#[derive(Clone)]
pub(crate) struct Trees {
    pub events: sled::Tree,
    pub disputes: sled::Tree,
    pub commands: sled::Tree,
    pub orders: sled::Tree,
    pub meta: sled::Tree,
}

impl Trees {
    pub(crate) fn open(db: &sled::Db) -> Result<Trees, StoreError> {
        Ok(Trees {
            events: db.open_tree(EVENTS_TREE)?,
            disputes: db.open_tree(DISPUTES_TREE)?,
            commands: db.open_tree(COMMANDS_TREE)?,
            orders: db.open_tree(ORDERS_TREE)?,
            meta: db.open_tree(META_TREE)?,
        })
    }
}

/// The event store on sled. Cheap to clone: clones share one database and one writer thread, which
/// stops (and sled closes) when the last clone is dropped. Only one `SledStore` (and its clones) may
/// have a directory open at a time: sled locks it.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    trees: Trees,
    durable: Arc<Durable>,
    sender: Option<SyncSender<Job>>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("the store writer thread panicked");
            }
        }
    }
}

impl SledStore {
    /// Opens (or creates) the store in directory `path`: checks what sled recovered (the format
    /// marker, the last `options.recovery_tail_events` events, the index and head), makes it durable,
    /// and only then starts serving. A broken tail is refused as [`StoreError::Corrupt`].
    pub fn open(path: &Path, options: StoreOptions) -> Result<SledStore, StoreError> {
        options.check()?;
        crate::sled_open::create_atomically(path)?;
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_bytes);
        let db = crate::open_sled(&config)?;
        let mut disk = match options.durability {
            Durability::Fsync => Some(DiskSync::open(path)?),
            Durability::Buffered => None,
        };
        let (trees, head) = SledStore::recover(&db, disk.as_mut(), &options)?;
        SledStore::serve(db, trees, head, disk, &options)
    }

    /// A store in a temporary directory that sled deletes when the store is dropped; buffered.
    pub fn open_temporary() -> Result<SledStore, StoreError> {
        let options = StoreOptions::buffered();
        let db = sled::Config::new().temporary(true).open()?;
        let (trees, head) = SledStore::recover(&db, None, &options)?;
        SledStore::serve(db, trees, head, None, &options)
    }

    /// Writes appends another log already sealed (a follower's copy of a JetStream log, an
    /// import), each checked to continue this log exactly: seq, chain, hash, version, a command id
    /// not yet recorded, an order not held by another dispute. Sent together, so the writer commits
    /// them in as few group commits as it can; returns the durable head after the last one. The
    /// first that does not continue the log is refused (`Corrupt`, naming its seq) and nothing from
    /// it on is written.
    pub fn import(&self, appends: Vec<SealedAppend>) -> Result<u64, StoreError> {
        let mut answers = Vec::with_capacity(appends.len());
        for append in appends {
            if append.events.is_empty() {
                return Err(StoreError::invalid("an import has no events"));
            }
            answers.push(self.submit(Work::Import(append))?);
        }
        for answer in answers {
            match futures::executor::block_on(answer).map_err(|_| StoreError::shut_down())?? {
                Written::Appended(_) => {}
                Written::Duplicate(_) => unreachable!("an import is never a duplicate"),
            }
        }
        Ok(self.head())
    }

    /// Drafts `req`'s events and queues the append for the writer, without waiting for it.
    fn queue_append(&self, req: AppendRequest) -> Result<QueuedAppend, StoreError> {
        let drafts = draft_events(&req)?;
        let AppendRequest {
            dispute_id,
            expected_version,
            command,
            reserve_order,
            events,
        } = req;
        let (event_ids, drafts) = drafts.into_iter().unzip();
        let append = Append {
            dispute_id: dispute_id.clone(),
            expected_version,
            command,
            reserve_order,
            drafts,
        };
        Ok(QueuedAppend {
            answer: self.submit(Work::Append(append))?,
            dispute_id,
            events,
            event_ids,
        })
    }

    /// Queues `work` for the writer; its answer arrives on the returned receiver. Blocks only
    /// while the writer's queue is full (`append_queue_max`).
    fn submit(&self, work: Work) -> Result<oneshot::Receiver<writer::Reply>, StoreError> {
        let sender = self
            .inner
            .sender
            .as_ref()
            .ok_or_else(StoreError::shut_down)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(Job { req: work, reply })
            .map_err(|_| StoreError::shut_down())?;
        Ok(answer)
    }

    /// The checks of [`SledStore::open`]: the trees and the head, once all is well and durable.
    fn recover(
        db: &sled::Db,
        mut disk: Option<&mut DiskSync>,
        options: &StoreOptions,
    ) -> Result<(Trees, u64), StoreError> {
        let trees = Trees::open(db)?;
        let recovered = db.was_recovered();
        let blank = recovery::is_blank(&trees)?;
        if !recovered && !blank {
            return Err(StoreError::Corrupt {
                seq: 0,
                reason: "a new sled database holds data".into(),
            });
        }
        if blank {
            // New, or created by a process that died before its first sync.
            recovery::init_format(&trees)?;
            if let Some(disk) = disk.as_deref_mut() {
                disk.sync(db)?;
                disk.sync_creation()?;
            }
        }
        if recovery::check_format(&trees)? == Format::V1 {
            migrate::from_v1(db, &trees, disk.as_deref_mut())?;
        }
        migrate::drop_v1_trees(db, disk.as_deref_mut())?;
        let head = recovery::check_tail(&trees, options.recovery_tail_events)?;
        if let Some(disk) = disk {
            // What sled recovered may have come from the page cache of a process that died before
            // its fdatasync: make it durable before serving it as durable.
            disk.sync(db)?;
        }
        let tail_checked = head.min(options.recovery_tail_events);
        tracing::info!(recovered, head, tail_checked, "event store open");
        Ok((trees, head))
    }

    fn serve(
        db: sled::Db,
        trees: Trees,
        head: u64,
        disk: Option<DiskSync>,
        options: &StoreOptions,
    ) -> Result<SledStore, StoreError> {
        let durable = Arc::new(Durable::new(head));
        let (sender, handle) = writer::spawn(WriterParts {
            db,
            trees: trees.clone(),
            disk,
            durable: durable.clone(),
            head,
            queue_max: options.append_queue_max,
            group_commit_max: options.group_commit_max,
        })?;
        let inner = Inner {
            trees,
            durable,
            sender: Some(sender),
            writer: Some(handle),
        };
        Ok(SledStore {
            inner: Arc::new(inner),
        })
    }

    /// Counters since open, for benchmarks and metrics.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            head: self.head(),
            appends: self.inner.durable.appends.load(Ordering::Relaxed),
            group_commits: self.inner.durable.commits.load(Ordering::Relaxed),
        }
    }

    /// A read's result; a storage failure under it is the store's failure too (`failure()`).
    fn read<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(error @ StoreError::Unavailable(_)) = &result {
            self.inner.durable.record_failure(error);
        }
        result
    }

    fn trees(&self) -> &Trees {
        &self.inner.trees
    }
}

/// The appended envelopes: the caller's events with the ids it drafted them under and the writer's
/// seals.
fn envelopes(
    dispute_id: &str,
    events: Vec<NewEvent>,
    event_ids: Vec<String>,
    seals: Vec<Seal>,
) -> Vec<Envelope> {
    assert_eq!(events.len(), seals.len(), "one seal per event");
    let parts = events.into_iter().zip(event_ids).zip(seals);
    parts
        .map(|((event, event_id), seal)| Envelope {
            event_id,
            seq: seal.seq,
            dispute_id: dispute_id.to_owned(),
            version: seal.version,
            event_type: event.event_type,
            occurred_at: event.occurred_at,
            command_id: event.command_id,
            actor: event.actor,
            data: event.data,
            prev_hash: seal.prev_hash,
            hash: seal.hash,
            revision: None,
        })
        .collect()
}

/// An append in the writer's queue: what its answer becomes once the writer has it.
struct QueuedAppend {
    answer: oneshot::Receiver<writer::Reply>,
    dispute_id: String,
    events: Vec<NewEvent>,
    event_ids: Vec<String>,
}

impl QueuedAppend {
    /// The append's outcome, once the writer has answered it (durable, when it was appended).
    async fn outcome(self) -> Result<AppendOutcome, StoreError> {
        match self.answer.await.map_err(|_| StoreError::shut_down())?? {
            Written::Duplicate(outcome) => Ok(AppendOutcome::Duplicate(outcome)),
            Written::Appended(seals) => Ok(AppendOutcome::Appended(envelopes(
                &self.dispute_id,
                self.events,
                self.event_ids,
                seals,
            ))),
        }
    }
}

impl EventStore for SledStore {
    fn append_queued(&self, req: AppendRequest) -> PendingAppend {
        match self.queue_append(req) {
            Ok(queued) => Box::pin(queued.outcome()),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }

    fn read_stream(&self, dispute_id: &str) -> Result<Vec<Envelope>, StoreError> {
        self.read(reads::read_stream(self.trees(), dispute_id, self.head()))
    }

    fn read_from(&self, from_seq: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        self.read(reads::read_from(self.trees(), from_seq, limit, self.head()))
    }

    fn head(&self) -> u64 {
        self.inner.durable.head()
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.durable.subscribe()
    }

    fn command(&self, command_id: &str) -> Result<Option<CommandOutcome>, StoreError> {
        self.read(reads::command(self.trees(), command_id, self.head()))
    }

    fn command_record(&self, command_id: &str) -> Result<Option<CommandPlace>, StoreError> {
        self.read(reads::command_record(self.trees(), command_id, self.head()))
    }

    fn order_holder(&self, order_id: &str) -> Result<Option<String>, StoreError> {
        self.read(reads::order_holder(self.trees(), order_id, self.head()))
    }

    fn stream_version(&self, dispute_id: &str) -> Result<u64, StoreError> {
        self.read(reads::stream_version(self.trees(), dispute_id, self.head()))
    }

    fn failure(&self) -> Option<StoreError> {
        self.inner.durable.failure()
    }

    fn verify(&self) -> Result<VerifyReport, StoreError> {
        verify::verify(self.trees(), self.head())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ActorRef, NewEvent};

    fn one_event(dispute_id: &str) -> AppendRequest {
        AppendRequest {
            dispute_id: dispute_id.into(),
            expected_version: 0,
            command: None,
            reserve_order: None,
            events: vec![NewEvent {
                event_type: "Thing".into(),
                data: serde_json::json!({"i": 1}),
                occurred_at: "2026-11-27T08:00:00Z".parse().unwrap(),
                actor: ActorRef {
                    role: "buyer".into(),
                    id: "b-1".into(),
                },
                command_id: None,
            }],
        }
    }

    #[test]
    fn a_storage_failure_met_by_a_read_is_the_stores_failure_and_refuses_appends() {
        let store = SledStore::open_temporary().unwrap();
        assert!(store.append(one_event("d-1")).is_ok());
        // sled writes while it reads (page consolidation) and fails every operation after a failed
        // background flush: such an error on a read stops the store as one on an append does.
        let disk_full = StoreError::Unavailable("sled: io error: No space left on device".into());
        let read: Result<(), _> = store.read(Err(disk_full));
        assert!(read.is_err());
        assert!(store.failure().is_some(), "the failure is reported");
        assert!(
            matches!(
                store.append(one_event("d-2")),
                Err(StoreError::Unavailable(_))
            ),
            "appends are refused after it"
        );
        assert_eq!(store.head(), 1);
    }
}
