//! Read models for dashboards, fed from the store's global log, checkpointed, rebuildable.
//!
//! One sled db of its own (`<data>/projections`), one tree, keys by prefix:
//! - `v\0<dispute>`: the dispute's record (its domain state, opened_at, updated_at, reminder);
//! - `i\0<field>\0<value>\0<dispute>`: list indexes by seller, buyer and status (a stage is
//!   listed through the indexes of its statuses);
//! - `d\0<due_ms>\0<dispute>\0<kind>`: active deadlines, soonest first;
//! - `r\0<remind_ms>\0<dispute>\0<kind>`: reminders still to send;
//! - `s\0` (all) and `s\0<seller>`: stats; `m\0checkpoint`: the last seq applied; `m\0format`:
//!   the form of all this (read models of another form are dropped and rebuilt when opened).
//!
//! Live, each batch of events and the checkpoint are written in one atomic sled batch, so after a
//! crash the read models resume exactly where they stopped. A catch-up writes key by key under the
//! `m\0unsealed` marker instead ([`Projections::unseal`]); read models opened with the marker there
//! are dropped and folded again from the log. They are derived data: only a catch-up syncs (its
//! marker before its first write, its writes at its end); `rebuild` drops them and folds the log again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use disputes_domain::{self as domain, DeadlineKind, Event, Policy, State, Status};
use disputes_store::Envelope;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

/// Events applied in one atomic batch.
pub const BATCH_EVENTS_MAX: usize = 4096;
const CHECKPOINT_KEY: &[u8] = b"m\0checkpoint";
const DEADLINES_COUNT_KEY: &[u8] = b"m\0deadlines";
/// Present while a catch-up writes key by key (see [`Unsealed`]).
const UNSEALED_KEY: &[u8] = b"m\0unsealed";
/// The form of the read models; read models of another form are dropped and rebuilt on open.
/// Form 2 has no stage index (a stage is listed through its statuses' indexes).
const FORMAT_KEY: &[u8] = b"m\0format";
const FORMAT: &[u8] = b"read-models/2";

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("projection storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("drop damaged read models: {0}")]
    Drop(std::io::Error),
    #[error("corrupt projection record {key}: {reason}")]
    Corrupt { key: String, reason: String },
}

impl ProjectionError {
    /// Whether what is on disk is damaged (rather than out of reach).
    fn is_damage(&self) -> bool {
        matches!(
            self,
            ProjectionError::Storage(sled::Error::Corruption { .. })
                | ProjectionError::Corrupt { .. }
        )
    }
}

/// One dispute as the read models keep it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub dispute_id: String,
    pub state: State,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The pending reminder's key, if one is scheduled.
    pub reminder: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub total: u64,
    pub open: u64,
    pub by_status: BTreeMap<String, u64>,
    pub resolved_by_basis: BTreeMap<String, u64>,
}

/// sled's page cache of the read models by default (`[store] read_models_cache_mb`).
pub const CACHE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

pub struct Projections {
    db: sled::Db,
    tree: sled::Tree,
    policy: Policy,
    /// Where and how they were opened (for [`Projections::reopen`]).
    path: PathBuf,
    cache_bytes: u64,
    applied: watch::Sender<u64>,
    /// The highest seq a reader is waiting for (see [`Projections::want`]).
    wanted: watch::Sender<u64>,
}

impl Projections {
    /// Opens the read models at `path`. They are derived data: damaged ones (sled finds a bad
    /// checksum, or a record does not read back) are dropped and start empty, to be folded again
    /// from the log by the caller's catch-up.
    pub fn open(path: &Path, policy: Policy) -> Result<Projections, ProjectionError> {
        Projections::open_with_cache(path, policy, CACHE_BYTES_DEFAULT)
    }

    /// [`Projections::open`] with sled's page cache of `cache_bytes`.
    pub fn open_with_cache(
        path: &Path,
        policy: Policy,
        cache_bytes: u64,
    ) -> Result<Projections, ProjectionError> {
        match Projections::open_as_is(path, policy, cache_bytes) {
            Err(error) if error.is_damage() => {
                tracing::error!(
                    %error,
                    path = %path.display(),
                    "the read models are damaged: dropping them; they are rebuilt from the event log"
                );
                std::fs::remove_dir_all(path).map_err(ProjectionError::Drop)?;
                Projections::open_as_is(path, policy, cache_bytes)
            }
            opened => opened,
        }
    }

    fn open_as_is(
        path: &Path,
        policy: Policy,
        cache_bytes: u64,
    ) -> Result<Projections, ProjectionError> {
        let config = sled::Config::new()
            .path(path)
            .flush_every_ms(Some(1000))
            .cache_capacity(cache_bytes);
        let db = disputes_store::open_sled(&config)?;
        let tree = db.open_tree("read_models")?;
        let torn = tree.contains_key(UNSEALED_KEY)?;
        let format = tree.get(FORMAT_KEY)?;
        let current = format.as_deref() == Some(FORMAT);
        let outdated = !current && !tree.is_empty();
        if torn || outdated {
            let why = if torn {
                "their last catch-up did not finish"
            } else {
                "they are of an older form"
            };
            tracing::warn!("rebuilding the read models from the log: {why}");
            tree.clear()?;
        }
        if torn || !current {
            tree.insert(FORMAT_KEY, FORMAT)?;
            tree.flush()?;
        }
        let checkpoint = read_checkpoint(&tree)?;
        Ok(Projections {
            db,
            tree,
            policy,
            path: path.to_owned(),
            cache_bytes,
            applied: watch::Sender::new(checkpoint),
            wanted: watch::Sender::new(0),
        })
    }

    /// The same read models, opened again (flushed, closed, opened). sled keeps the memory a long
    /// catch-up grew until its db is dropped (a first start that folds 2,000,000 events held
    /// ~300 MiB more than the same read models opened current), so the service opens them again
    /// after one. Who subscribed to the checkpoint or to [`Projections::wanted`] stays subscribed.
    pub fn reopen(self) -> Result<Projections, ProjectionError> {
        let Projections {
            db,
            tree,
            policy,
            path,
            cache_bytes,
            applied,
            wanted,
        } = self;
        db.flush()?;
        drop((tree, db));
        let mut reopened = Projections::open_as_is(&path, policy, cache_bytes)?;
        applied.send_replace(reopened.checkpoint());
        reopened.applied = applied;
        reopened.wanted = wanted;
        Ok(reopened)
    }

    /// The last seq applied.
    pub fn checkpoint(&self) -> u64 {
        *self.applied.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Says that a reader waits for `seq` to be applied, so a projector that is gathering a
    /// larger batch applies what it has now instead.
    pub fn want(&self, seq: u64) {
        self.wanted.send_if_modified(|wanted| {
            let raise = seq > *wanted;
            if raise {
                *wanted = seq;
            }
            raise
        });
    }

    /// The highest seq a reader has waited for (see [`Projections::want`]).
    pub fn wanted(&self) -> watch::Receiver<u64> {
        self.wanted.subscribe()
    }

    /// Drops every read model (the next `apply` starts from seq 1).
    pub fn clear(&self) -> Result<(), ProjectionError> {
        self.tree.clear()?;
        self.tree.insert(FORMAT_KEY, FORMAT)?;
        self.tree.flush()?;
        self.applied.send_replace(0);
        Ok(())
    }

    pub fn flush(&self) -> Result<(), ProjectionError> {
        self.db.flush()?;
        Ok(())
    }

    /// Applies `events` (which must start right after the checkpoint) in one atomic batch.
    pub fn apply(&self, events: &[Envelope]) -> Result<(), ProjectionError> {
        let Some(writes) = self.fold(events)? else {
            return Ok(());
        };
        let mut batch = sled::Batch::default();
        for (key, value) in writes {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        self.tree.apply_batch(batch)?;
        self.applied.send_replace(events[events.len() - 1].seq);
        Ok(())
    }

    /// Starts a catch-up that writes its batches key by key instead of atomically: sled applies an
    /// atomic batch under a lock global to the process, which stalls every other sled read and
    /// write (the log being read for the next batch included) while it runs. A marker, made durable
    /// first, stands for the whole catch-up: if it is still there when the read models are next
    /// opened (a crash, or an error that ended the catch-up), they are dropped and rebuilt.
    pub fn unseal(&self) -> Result<Unsealed<'_>, ProjectionError> {
        self.tree.insert(UNSEALED_KEY, &[])?;
        self.db.flush()?;
        Ok(Unsealed { projections: self })
    }

    /// Folds `events` into the writes that bring the read models, their deadline count and
    /// checkpoint past them; `None` for no events.
    fn fold(&self, events: &[Envelope]) -> Result<Option<Vec<KeyWrite>>, ProjectionError> {
        let Some(last) = events.last() else {
            return Ok(None);
        };
        let checkpoint = self.checkpoint();
        assert_eq!(
            events[0].seq,
            checkpoint + 1,
            "projections apply the log in order, without gaps"
        );
        let mut work = Work::new(&self.tree, &self.policy);
        for envelope in events {
            work.apply(envelope)?;
        }
        let deadlines = self.deadlines_count() as i64 + work.deadlines_delta;
        assert!(
            deadlines >= 0,
            "the active deadline count never goes below zero"
        );
        let mut writes = work.into_writes();
        let counters = [
            (DEADLINES_COUNT_KEY, deadlines as u64),
            (CHECKPOINT_KEY, last.seq),
        ];
        for (key, value) in counters {
            writes.push((key.to_vec(), Some(value.to_be_bytes().to_vec())));
        }
        Ok(Some(writes))
    }

    /// Every key and value, in key order (for tests comparing two sets of read models).
    #[cfg(test)]
    pub(crate) fn rows(&self) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
        let rows = self.tree.iter().map(|row| row.expect("read model rows"));
        rows.map(|(k, v)| (k.to_vec(), v.to_vec()))
    }

    /// Active deadlines (disputes waiting on a party).
    pub fn deadlines_count(&self) -> u64 {
        match self.tree.get(DEADLINES_COUNT_KEY) {
            Ok(Some(bytes)) => bytes
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(0),
            _ => 0,
        }
    }

    pub fn record(&self, dispute_id: &str) -> Result<Option<Record>, ProjectionError> {
        get_json(&self.tree, &view_key(dispute_id))
    }

    pub fn stats(&self, seller_id: Option<&str>) -> Result<Stats, ProjectionError> {
        Ok(get_json(&self.tree, &stats_key(seller_id))?.unwrap_or_default())
    }

    /// Disputes matching every given filter, by dispute id, after the cursor.
    pub fn list(
        &self,
        filter: &ListFilter,
        limit: usize,
    ) -> Result<(Vec<Record>, Option<String>), ProjectionError> {
        let after = filter.after.as_deref();
        let scans = filter.indexes().into_iter();
        let ids = Merged {
            heads: scans
                .map(|prefix| {
                    let mut scan = self.index_ids(prefix, after);
                    (scan.next(), scan)
                })
                .collect(),
        };
        let mut out = Vec::with_capacity(limit.min(64));
        for dispute_id in ids {
            let dispute_id = dispute_id?;
            let record = self
                .record(&dispute_id)?
                .ok_or_else(|| ProjectionError::Corrupt {
                    key: dispute_id.clone(),
                    reason: "index entry without a record".into(),
                })?;
            if !filter.matches(&record) {
                continue;
            }
            if out.len() == limit {
                let next = out.last().map(|r: &Record| r.dispute_id.clone());
                return Ok((out, next));
            }
            out.push(record);
        }
        Ok((out, None))
    }

    /// The dispute ids of one index (or of the records, for `v\0`) after `after`, in id order.
    fn index_ids(&self, prefix: Vec<u8>, after: Option<&str>) -> IdScan<'_> {
        let start = match after {
            Some(after) => [prefix.as_slice(), after.as_bytes(), b"\x01"].concat(),
            None => prefix.clone(),
        };
        Box::new(self.tree.range(start..).map_while(move |item| {
            match item {
                Err(e) => Some(Err(e.into())),
                Ok((key, _)) => key
                    .starts_with(&prefix)
                    .then(|| Ok(String::from_utf8_lossy(&key[prefix.len()..]).into_owned())),
            }
        }))
    }

    /// Active deadlines due before `before` (all when `None`), soonest first.
    pub fn deadlines(
        &self,
        before: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<DeadlineEntry>, ProjectionError> {
        self.scan_due(b"d\0", before, limit)
    }

    /// Reminders whose time is before `before`, soonest first.
    pub fn reminders(
        &self,
        before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DeadlineEntry>, ProjectionError> {
        self.scan_due(b"r\0", Some(before), limit)
    }

    /// The earliest key time under `prefix` (`d\0` deadlines, `r\0` reminders).
    pub fn next_due(&self, prefix: &[u8]) -> Result<Option<DateTime<Utc>>, ProjectionError> {
        Ok(self.scan_due(prefix, None, 1)?.first().map(|e| e.fires_at))
    }

    pub fn has_key(&self, key: &[u8]) -> bool {
        self.tree.contains_key(key).unwrap_or(false)
    }

    /// Marks a reminder sent (removes it), unless the record moved on already.
    pub fn remove_reminder(&self, entry: &DeadlineEntry) -> Result<(), ProjectionError> {
        self.tree.remove(&entry.key)?;
        Ok(())
    }

    /// Active deadlines due before `before`, soonest first, leaving out those `skip` says to.
    pub fn due_deadlines(
        &self,
        before: DateTime<Utc>,
        limit: usize,
        skip: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<DeadlineEntry>, ProjectionError> {
        self.scan(b"d\0", Some(before), limit, skip)
    }

    fn scan_due(
        &self,
        prefix: &[u8],
        before: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<DeadlineEntry>, ProjectionError> {
        self.scan(prefix, before, limit, |_| false)
    }

    fn scan(
        &self,
        prefix: &[u8],
        before: Option<DateTime<Utc>>,
        limit: usize,
        skip: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<DeadlineEntry>, ProjectionError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(prefix) {
            if out.len() == limit {
                break;
            }
            let (key, value) = item?;
            if skip(&key) {
                continue;
            }
            let entry: DeadlineEntry = decode_json(&key, &value)?;
            if before.is_some_and(|before| entry.fires_at >= before) {
                break;
            }
            out.push(DeadlineEntry {
                key: key.to_vec(),
                ..entry
            });
        }
        Ok(out)
    }
}

/// An active deadline (or its reminder) in the index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeadlineEntry {
    pub dispute_id: String,
    pub deadline: DeadlineKind,
    #[serde(with = "domain::time::serde_rfc3339")]
    pub due_at: DateTime<Utc>,
    /// When it fires: `due_at` for a deadline, `due_at − reminder_lead` for a reminder.
    #[serde(with = "domain::time::serde_rfc3339")]
    pub fires_at: DateTime<Utc>,
    #[serde(skip)]
    pub key: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub seller_id: Option<String>,
    pub buyer_id: Option<String>,
    pub status: Option<String>,
    pub stage: Option<String>,
    pub after: Option<String>,
}

impl ListFilter {
    /// The prefixes of the most selective index for this filter: one index, or for a stage those
    /// of its statuses (there is no stage index), or the records themselves.
    fn indexes(&self) -> Vec<Vec<u8>> {
        let pick = [
            ("seller", &self.seller_id),
            ("buyer", &self.buyer_id),
            ("status", &self.status),
        ];
        for (field, value) in pick {
            if let Some(value) = value {
                return vec![index_prefix(field, value)];
            }
        }
        if let Some(stage) = &self.stage {
            let statuses = Status::ALL.iter().filter(|s| s.stage().as_str() == stage);
            return statuses
                .map(|s| index_prefix("status", s.as_str()))
                .collect();
        }
        vec![b"v\0".to_vec()]
    }

    fn matches(&self, record: &Record) -> bool {
        let State::Active(d) = &record.state else {
            return false;
        };
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.seller_id, d.seller_id().as_str())
            && eq(&self.buyer_id, d.buyer_id().as_str())
            && eq(&self.status, d.status().as_str())
            && eq(&self.stage, d.stage().as_str())
    }
}

/// Dispute ids in id order, or the error that ended a scan.
type IdScan<'a> = Box<dyn Iterator<Item = Result<String, ProjectionError>> + 'a>;

/// Several index scans merged in id order (a dispute is in at most one of them).
struct Merged<'a> {
    /// Each scan with its next id.
    heads: Vec<(Option<Result<String, ProjectionError>>, IdScan<'a>)>,
}

impl Iterator for Merged<'_> {
    type Item = Result<String, ProjectionError>;

    fn next(&mut self) -> Option<Self::Item> {
        let failed = self
            .heads
            .iter()
            .position(|(h, _)| matches!(h, Some(Err(_))));
        let smallest = self
            .heads
            .iter()
            .enumerate()
            .filter_map(|(i, (head, _))| match head {
                Some(Ok(id)) => Some((i, id)),
                _ => None,
            })
            .min_by(|a, b| a.1.cmp(b.1))
            .map(|(i, _)| i);
        let (head, scan) = &mut self.heads[failed.or(smallest)?];
        std::mem::replace(head, scan.next())
    }
}

/// A catch-up writing key by key, from [`Projections::unseal`] until [`Unsealed::seal`].
pub struct Unsealed<'a> {
    projections: &'a Projections,
}

impl Unsealed<'_> {
    /// Applies `events` (which must start right after the checkpoint), key by key.
    pub fn apply(&self, events: &[Envelope]) -> Result<(), ProjectionError> {
        let p = self.projections;
        let Some(writes) = p.fold(events)? else {
            return Ok(());
        };
        for (key, value) in writes {
            match value {
                Some(value) => p.tree.insert(key, value)?,
                None => p.tree.remove(key)?,
            };
        }
        p.applied.send_replace(events[events.len() - 1].seq);
        Ok(())
    }

    /// Ends the catch-up: everything it wrote is made durable, then the marker goes.
    pub fn seal(self) -> Result<(), ProjectionError> {
        self.projections.db.flush()?;
        self.projections.tree.remove(UNSEALED_KEY)?;
        Ok(())
    }
}

/// A key and its new value, or `None`: remove it.
type KeyWrite = (Vec<u8>, Option<Vec<u8>>);

/// The pending writes of one batch, with the records and stats it touched.
struct Work<'a> {
    tree: &'a sled::Tree,
    policy: &'a Policy,
    records: HashMap<String, Record>,
    stats: HashMap<Vec<u8>, Stats>,
    writes: Writes,
    deadlines_delta: i64,
}

/// The index, deadline and reminder writes of one batch, coalesced. Such a key is only ever
/// inserted when the tree does not hold it and removed when it does (the read models are
/// consistent), so a key inserted and removed again within one batch (a status, deadline or
/// reminder that came and went while the batch was folded) needs no write at all: on a replay,
/// where a dispute's whole lifecycle often falls in one batch, that is most of them.
#[derive(Default)]
struct Writes {
    /// key → its value, or `None`: remove it.
    pending: HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// Keys the tree held when the batch began (their first write here was a removal): removing
    /// them again after a re-insert must still reach the tree.
    held: HashSet<Vec<u8>>,
}

impl Writes {
    /// `key`, which the tree does not hold, now holds `value`.
    fn insert_new(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.pending.insert(key, Some(value));
    }

    /// `key`, which the tree (or this batch) holds, goes.
    fn remove_existing(&mut self, key: Vec<u8>) {
        match self.pending.get(&key) {
            Some(Some(_)) if !self.held.contains(&key) => {
                // Inserted by this batch: the tree never needs to see it.
                self.pending.remove(&key);
            }
            Some(_) => {
                self.pending.insert(key, None);
            }
            None => {
                self.held.insert(key.clone());
                self.pending.insert(key, None);
            }
        }
    }
}

impl<'a> Work<'a> {
    fn new(tree: &'a sled::Tree, policy: &'a Policy) -> Self {
        Work {
            tree,
            policy,
            records: HashMap::new(),
            stats: HashMap::new(),
            writes: Writes::default(),
            deadlines_delta: 0,
        }
    }

    fn apply(&mut self, envelope: &Envelope) -> Result<(), ProjectionError> {
        let event =
            Event::decode_revision(&envelope.event_type, envelope.revision(), &envelope.data)
                .unwrap_or_else(|e| {
                    panic!(
                        "stored event seq {} ({}) does not decode: {e}",
                        envelope.seq, envelope.event_type
                    )
                });
        let before = match self.records.remove(&envelope.dispute_id) {
            Some(record) => Some(record),
            None => get_json(self.tree, &view_key(&envelope.dispute_id))?,
        };
        let mut record = before.unwrap_or_else(|| Record {
            dispute_id: envelope.dispute_id.clone(),
            state: State::Initial,
            opened_at: envelope.occurred_at,
            updated_at: envelope.occurred_at,
            reminder: None,
        });
        let old = active(&record.state).map(Keys::of);
        record.state = domain::evolve(std::mem::replace(&mut record.state, State::Initial), &event);
        record.updated_at = envelope.occurred_at;
        self.reindex(old, &mut record, &event, envelope)?;
        self.records.insert(envelope.dispute_id.clone(), record);
        Ok(())
    }

    /// Moves index entries, deadlines, reminders and counters from the `old` keys to `after`'s.
    fn reindex(
        &mut self,
        old: Option<Keys>,
        after: &mut Record,
        event: &Event,
        envelope: &Envelope,
    ) -> Result<(), ProjectionError> {
        let d = active(&after.state).expect("a folded event leaves the dispute active");
        let new = Keys::of(d);
        let id = after.dispute_id.as_bytes();
        if old.is_none() {
            // A dispute's buyer and seller are set when it opens and never change.
            for (field, value) in [
                ("seller", d.seller_id().as_str()),
                ("buyer", d.buyer_id().as_str()),
            ] {
                self.writes.insert_new(
                    [index_prefix(field, value), id.to_vec()].concat(),
                    Vec::new(),
                );
            }
        }
        let (old_status, status) = (old.map(|o| o.status.as_str()), new.status.as_str());
        if old_status != Some(status) {
            if let Some(old_status) = old_status {
                self.writes
                    .remove_existing([index_prefix("status", old_status), id.to_vec()].concat());
            }
            self.writes.insert_new(
                [index_prefix("status", status), id.to_vec()].concat(),
                Vec::new(),
            );
        }
        self.count(
            old.map(|o| o.status),
            new.status,
            d.seller_id().as_str(),
            event,
        )?;
        let old_deadline = old.and_then(|o| o.deadline);
        if old_deadline != new.deadline {
            let id = &after.dispute_id;
            if let Some((kind, due_at)) = old_deadline {
                self.deadlines_delta -= 1;
                self.writes
                    .remove_existing(due_key(b"d\0", due_at, id, kind));
            }
            if let Some(key) = after.reminder.take() {
                self.writes.remove_existing(key);
            }
            if let Some((kind, due_at)) = new.deadline {
                self.deadlines_delta += 1;
                let entry = DeadlineEntry {
                    dispute_id: id.clone(),
                    deadline: kind,
                    due_at,
                    fires_at: due_at,
                    key: vec![],
                };
                self.writes.insert_new(
                    due_key(b"d\0", due_at, id, kind),
                    serde_json::to_vec(&entry).expect("entry"),
                );
                self.schedule_reminder(after, kind, due_at, envelope.occurred_at);
            }
        }
        Ok(())
    }

    /// A reminder at `due_at − reminder_lead`, unless the deadline was set less than that before it.
    fn schedule_reminder(
        &mut self,
        record: &mut Record,
        kind: DeadlineKind,
        due_at: DateTime<Utc>,
        set_at: DateTime<Utc>,
    ) {
        let lead = self.policy.reminder_lead;
        if lead <= chrono::TimeDelta::zero() || due_at - set_at < lead {
            return;
        }
        let fires_at = due_at - lead;
        let entry = DeadlineEntry {
            dispute_id: record.dispute_id.clone(),
            deadline: kind,
            due_at,
            fires_at,
            key: vec![],
        };
        let key = due_key(b"r\0", fires_at, &record.dispute_id, kind);
        self.writes
            .insert_new(key.clone(), serde_json::to_vec(&entry).expect("entry"));
        record.reminder = Some(key);
    }

    /// Counts a status change (and a resolution) in the stats of all disputes and of the seller's.
    fn count(
        &mut self,
        old_status: Option<Status>,
        new_status: Status,
        seller: &str,
        event: &Event,
    ) -> Result<(), ProjectionError> {
        let resolved = match event {
            Event::DisputeResolved { basis, .. } => Some(basis.as_str()),
            _ => None,
        };
        if old_status == Some(new_status) && resolved.is_none() {
            return Ok(());
        }
        for key in [stats_key(None), stats_key(Some(seller))] {
            let mut stats = match self.stats.remove(&key) {
                Some(stats) => stats,
                None => get_json(self.tree, &key)?.unwrap_or_default(),
            };
            if old_status != Some(new_status) {
                if let Some(old) = old_status {
                    *stats.by_status.entry(old.as_str().to_owned()).or_default() -= 1;
                } else {
                    stats.total += 1;
                    stats.open += 1;
                }
                *stats
                    .by_status
                    .entry(new_status.as_str().to_owned())
                    .or_default() += 1;
            }
            if let Some(basis) = resolved {
                stats.open -= 1;
                *stats.resolved_by_basis.entry(basis.to_owned()).or_default() += 1;
            }
            stats.by_status.retain(|_, n| *n > 0);
            self.stats.insert(key, stats);
        }
        Ok(())
    }

    fn into_writes(self) -> Vec<KeyWrite> {
        let mut writes: Vec<KeyWrite> = self.writes.pending.into_iter().collect();
        for (id, record) in &self.records {
            let value = serde_json::to_vec(record).expect("records serialize");
            writes.push((view_key(id), Some(value)));
        }
        for (key, stats) in self.stats {
            let value = serde_json::to_vec(&stats).expect("stats serialize");
            writes.push((key, Some(value)));
        }
        writes
    }
}

/// What of a record moves its index entries, deadline and counters (its buyer and seller never
/// change; its stage follows its status).
#[derive(Clone, Copy)]
struct Keys {
    status: Status,
    deadline: Option<(DeadlineKind, DateTime<Utc>)>,
}

impl Keys {
    fn of(d: &domain::Dispute) -> Keys {
        Keys {
            status: d.status(),
            deadline: d.deadline().map(|dl| (dl.kind(), dl.due_at())),
        }
    }
}

fn active(state: &State) -> Option<&domain::Dispute> {
    match state {
        State::Active(d) => Some(d),
        State::Initial => None,
    }
}

/// The dispute view D of protocol.md, with the actions each role may take at `now`.
pub fn view(record: &Record, now: DateTime<Utc>) -> Value {
    serde_json::to_value(DisputeView::new(record, now)).expect("views serialize")
}

/// [`view`] serialized, written straight from the record (no `Value` built on the way).
pub fn view_bytes(record: &Record, now: DateTime<Utc>) -> Vec<u8> {
    serde_json::to_vec(&DisputeView::new(record, now)).expect("views serialize")
}

/// The dispute view D of protocol.md, borrowing from its record.
#[derive(Serialize)]
struct DisputeView<'a> {
    dispute_id: &'a str,
    order_id: &'a domain::OrderId,
    buyer_id: &'a domain::PartyId,
    seller_id: &'a domain::PartyId,
    reason: domain::Reason,
    stage: domain::Stage,
    status: Status,
    order_amount: domain::Money,
    proposal: domain::Proposal,
    deadline: Option<DeadlineView>,
    resolution: Option<ResolutionView>,
    actions: domain::Actions,
    version: u64,
    opened_at: String,
    updated_at: String,
}

#[derive(Serialize)]
struct DeadlineView {
    deadline: DeadlineKind,
    due_at: String,
}

#[derive(Serialize)]
struct ResolutionView {
    solution: domain::Solution,
    refund_amount: u64,
    release_amount: u64,
    basis: domain::ResolutionBasis,
}

impl<'a> DisputeView<'a> {
    fn new(record: &'a Record, now: DateTime<Utc>) -> DisputeView<'a> {
        let State::Active(d) = &record.state else {
            unreachable!("records hold opened disputes")
        };
        DisputeView {
            dispute_id: &record.dispute_id,
            order_id: d.order_id(),
            buyer_id: d.buyer_id(),
            seller_id: d.seller_id(),
            reason: d.reason(),
            stage: d.stage(),
            status: d.status(),
            order_amount: d.order_amount(),
            proposal: d.proposal(),
            deadline: d.deadline().map(|dl| DeadlineView {
                deadline: dl.kind(),
                due_at: domain::time::format(dl.due_at()),
            }),
            resolution: d.resolution().map(|r| ResolutionView {
                solution: r.solution(),
                refund_amount: r.refund_amount(),
                release_amount: r.release_amount(),
                basis: r.basis(),
            }),
            actions: domain::actions(&record.state, now),
            version: d.version(),
            opened_at: domain::time::format(record.opened_at),
            updated_at: domain::time::format(record.updated_at),
        }
    }
}

fn view_key(dispute_id: &str) -> Vec<u8> {
    [b"v\0".as_slice(), dispute_id.as_bytes()].concat()
}

fn index_prefix(field: &str, value: &str) -> Vec<u8> {
    [b"i\0", field.as_bytes(), b"\0", value.as_bytes(), b"\0"].concat()
}

fn stats_key(seller_id: Option<&str>) -> Vec<u8> {
    match seller_id {
        None => b"s\0".to_vec(),
        Some(seller) => [b"s\0", seller.as_bytes()].concat(),
    }
}

/// Sorts by time: milliseconds since the epoch, big-endian, then the dispute and kind.
fn due_key(prefix: &[u8], at: DateTime<Utc>, dispute_id: &str, kind: DeadlineKind) -> Vec<u8> {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    [
        prefix,
        &ms.to_be_bytes(),
        dispute_id.as_bytes(),
        b"\0",
        kind.as_str().as_bytes(),
    ]
    .concat()
}

fn read_checkpoint(tree: &sled::Tree) -> Result<u64, ProjectionError> {
    match tree.get(CHECKPOINT_KEY)? {
        None => Ok(0),
        Some(bytes) => Ok(u64::from_be_bytes(bytes.as_ref().try_into().map_err(
            |_| ProjectionError::Corrupt {
                key: "checkpoint".into(),
                reason: "not 8 bytes".into(),
            },
        )?)),
    }
}

fn get_json<T: for<'de> Deserialize<'de>>(
    tree: &sled::Tree,
    key: &[u8],
) -> Result<Option<T>, ProjectionError> {
    match tree.get(key)? {
        None => Ok(None),
        Some(bytes) => decode_json(key, &bytes).map(Some),
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(
    key: &[u8],
    bytes: &[u8],
) -> Result<T, ProjectionError> {
    serde_json::from_slice(bytes).map_err(|e| ProjectionError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeDelta;
    use disputes_store::{EventStore, SledStore};
    use serde_json::json;

    use super::*;
    use disputes_command::{CommandHandler, Reply};
    use disputes_domain::Limits;

    fn pending(writes: &Writes, key: &[u8]) -> Option<Option<Vec<u8>>> {
        writes.pending.get(key).cloned()
    }

    #[test]
    fn a_key_inserted_and_removed_in_one_batch_is_never_written() {
        let mut writes = Writes::default();
        writes.insert_new(b"k".to_vec(), b"v".to_vec());
        writes.remove_existing(b"k".to_vec());
        assert_eq!(pending(&writes, b"k"), None);
    }

    #[test]
    fn a_held_key_removed_reinserted_and_removed_again_is_removed() {
        let mut writes = Writes::default();
        writes.remove_existing(b"k".to_vec());
        writes.insert_new(b"k".to_vec(), b"v".to_vec());
        assert_eq!(pending(&writes, b"k"), Some(Some(b"v".to_vec())));
        writes.remove_existing(b"k".to_vec());
        assert_eq!(pending(&writes, b"k"), Some(None));
    }

    /// A `not_as_described` dispute that passes `under_review` (status) and `escalated` (stage)
    /// twice, through a return and a reported problem, then resolves.
    fn recurring_lifecycle(handler: &CommandHandler<SledStore>, now: DateTime<Utc>) {
        let buyer = json!({"role": "buyer", "id": "b-1"});
        let seller = json!({"role": "seller", "id": "s-1"});
        let mediator = json!({"role": "mediator", "id": "m-1"});
        let steps = [
            (
                "open",
                &buyer,
                json!({"order_id": "o-1", "seller_id": "s-1", "reason": "not_as_described",
                "order_amount": {"amount": 10000, "currency": "USD"}, "proposal": {"solution": "full_refund"}}),
            ),
            (
                "counter_propose",
                &seller,
                json!({"proposal": {"solution": "partial_refund", "amount": 2000}}),
            ),
            ("reject_proposal", &buyer, json!({})),
            (
                "submit_evidence",
                &buyer,
                json!({"description": "scratched", "attachments": []}),
            ),
            (
                "rule",
                &mediator,
                json!({"outcome": "return_and_refund", "responsible_party": "seller"}),
            ),
            (
                "provide_return_address",
                &seller,
                json!({"address": "1 Main St"}),
            ),
            (
                "provide_return_tracking",
                &buyer,
                json!({"carrier": "DHL", "tracking_number": "T1"}),
            ),
            (
                "report_return_problem",
                &seller,
                json!({"problem": "damaged"}),
            ),
            (
                "rule",
                &mediator,
                json!({"outcome": "partial_refund", "amount": 4000, "responsible_party": "logistics"}),
            ),
        ];
        for (i, (ty, actor, data)) in steps.into_iter().enumerate() {
            let body = json!({"command_id": format!("c-{i}"), "dispute_id": "d-1", "actor": actor, "data": data});
            let reply = handler.handle(ty, &serde_json::to_vec(&body).unwrap(), now);
            assert!(matches!(reply, Reply::Accepted(_)), "{ty}: {reply:?}");
        }
    }

    /// The events of [`recurring_lifecycle`], as the log holds them.
    fn recurring_events() -> Vec<Envelope> {
        let store = Arc::new(SledStore::open_temporary().unwrap());
        let handler = CommandHandler::new(store.clone(), Policy::default(), Limits::default());
        let now = "2026-11-27T08:00:00Z".parse::<DateTime<Utc>>().unwrap();
        recurring_lifecycle(&handler, now + TimeDelta::seconds(1));
        store.read_from(1, 1_000).unwrap()
    }

    fn contents(projections: &Projections) -> Vec<(Vec<u8>, Vec<u8>)> {
        projections.rows().collect()
    }

    #[test]
    fn read_models_folded_in_any_batches_equal_those_folded_event_by_event() {
        let policy = Policy::default();
        let events = recurring_events();
        assert!(events.len() > 12, "the lifecycle appended {}", events.len());
        let dir = tempfile::tempdir().unwrap();
        let by_event = Projections::open(&dir.path().join("each"), policy).unwrap();
        for event in &events {
            by_event.apply(std::slice::from_ref(event)).unwrap();
        }
        // Every split in two batches: the second starts with keys the tree holds (a status that
        // is left, re-entered and left again inside it).
        for split in 1..=events.len() {
            let path = dir.path().join(format!("split-{split}"));
            let two_batches = Projections::open(&path, policy).unwrap();
            two_batches.apply(&events[..split]).unwrap();
            two_batches.apply(&events[split..]).unwrap();
            assert_eq!(
                contents(&two_batches),
                contents(&by_event),
                "split at {split}"
            );
        }
        let one_batch = Projections::open(&dir.path().join("one"), policy).unwrap();
        one_batch.apply(&events).unwrap();
        assert_eq!(contents(&one_batch), contents(&by_event));
        let status = |p: &Projections| p.record("d-1").unwrap().unwrap();
        assert_eq!(status(&one_batch), status(&by_event));
    }

    #[test]
    fn read_models_opened_again_hold_the_same_rows_and_keep_their_subscribers() {
        let policy = Policy::default();
        let events = recurring_events();
        let dir = tempfile::tempdir().unwrap();
        let projections = Projections::open(dir.path(), policy).unwrap();
        let (split, last) = (events.len() / 2, events.last().unwrap().seq);
        projections.apply(&events[..split]).unwrap();
        let mut applied = projections.subscribe();
        let wanted = projections.wanted();
        let before = contents(&projections);
        let reopened = projections.reopen().unwrap();
        assert_eq!(contents(&reopened), before);
        assert_eq!(reopened.checkpoint(), events[split - 1].seq);
        // The subscriptions taken before go on with the reopened read models.
        reopened.apply(&events[split..]).unwrap();
        assert!(applied.has_changed().unwrap());
        assert_eq!(*applied.borrow_and_update(), last);
        reopened.want(last + 1);
        assert_eq!(*wanted.borrow(), last + 1);
        // And it is the same db on disk: opened once more, from scratch, it holds every row.
        let after = contents(&reopened);
        drop(reopened);
        assert_eq!(
            contents(&Projections::open(dir.path(), policy).unwrap()),
            after
        );
    }

    /// The view is protocol.md's D, field for field, and its bytes (what `get` and `list` send)
    /// say the same as the value (what `disputes audit state` prints).
    #[test]
    fn a_view_has_exactly_the_fields_of_the_contract_and_its_bytes_equal_its_value() {
        let store = Arc::new(SledStore::open_temporary().unwrap());
        let policy = Policy::default();
        let handler = CommandHandler::new(store.clone(), policy, Limits::default());
        let now = "2026-11-27T08:00:00Z".parse::<DateTime<Utc>>().unwrap();
        recurring_lifecycle(&handler, now + TimeDelta::seconds(1));
        let dir = tempfile::tempdir().unwrap();
        let projections = Projections::open(dir.path(), policy).unwrap();
        projections
            .apply(&store.read_from(1, 1_000).unwrap())
            .unwrap();
        let record = projections.record("d-1").unwrap().unwrap();
        let value = view(&record, now);
        let fields: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut contract = [
            "dispute_id",
            "order_id",
            "buyer_id",
            "seller_id",
            "reason",
            "stage",
            "status",
            "order_amount",
            "proposal",
            "deadline",
            "resolution",
            "actions",
            "version",
            "opened_at",
            "updated_at",
        ];
        contract.sort_unstable();
        assert_eq!(fields, contract);
        assert_eq!(value["resolution"]["refund_amount"], 4000);
        assert_eq!(value["resolution"]["basis"], "ruling");
        assert_eq!(value["deadline"], Value::Null);
        assert_eq!(
            value["actions"],
            json!({"buyer": [], "seller": [], "mediator": []})
        );
        let bytes: Value = serde_json::from_slice(&view_bytes(&record, now)).unwrap();
        assert_eq!(bytes, value);
    }

    /// Disputes `d-t-0` … `d-t-{n-1}`, the n-th taken through the first `1 + n % 5` commands of the
    /// bench's lifecycle: by turns awaiting the seller, the buyer, shipping proof, under review and
    /// resolved. Their events folded into fresh read models.
    fn read_models_at_every_step(n: usize) -> (tempfile::TempDir, Projections) {
        let store = Arc::new(SledStore::open_temporary().unwrap());
        let handler = CommandHandler::new(store.clone(), Policy::default(), Limits::default());
        let now = "2026-11-27T08:00:00Z".parse::<DateTime<Utc>>().unwrap();
        for i in 0..n {
            for (ty, body) in disputes_testkit::workload::lifecycle("t", i)
                .into_iter()
                .take(1 + i % 5)
            {
                let reply = handler.handle(ty, &body, now);
                assert!(matches!(reply, Reply::Accepted(_)), "{reply:?}");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let projections = Projections::open(dir.path(), Policy::default()).unwrap();
        projections
            .apply(&store.read_from(1, 10_000).unwrap())
            .unwrap();
        (dir, projections)
    }

    #[test]
    fn a_stage_lists_the_disputes_of_all_its_statuses_in_id_order_page_by_page() {
        let (_dir, projections) = read_models_at_every_step(23);
        let all = ListFilter::default();
        let (every, next) = projections.list(&all, 500).unwrap();
        assert_eq!((every.len(), next), (23, None));
        for stage in ["agreement", "escalated", "closed"] {
            let expected: Vec<String> = every
                .iter()
                .filter(|r| active(&r.state).unwrap().stage().as_str() == stage)
                .map(|r| r.dispute_id.clone())
                .collect();
            assert!(expected.len() >= 4, "{stage}: {expected:?}");
            let mut filter = ListFilter {
                stage: Some(stage.into()),
                ..ListFilter::default()
            };
            let mut listed = Vec::new();
            loop {
                let (page, next) = projections.list(&filter, 3).unwrap();
                assert!(page.len() <= 3);
                listed.extend(page.into_iter().map(|r| r.dispute_id));
                match next {
                    Some(cursor) => filter.after = Some(cursor),
                    None => break,
                }
            }
            assert_eq!(listed, expected, "{stage}");
        }
    }

    #[test]
    fn read_models_of_an_older_form_are_rebuilt_when_opened() {
        let (dir, projections) = read_models_at_every_step(5);
        assert!(projections.checkpoint() > 0);
        projections.tree.remove(FORMAT_KEY).unwrap(); // as the first form, which had no marker
        drop(projections);
        let reopened = Projections::open(dir.path(), Policy::default()).unwrap();
        assert_eq!(reopened.checkpoint(), 0);
        let form = (FORMAT_KEY.to_vec(), FORMAT.to_vec());
        assert_eq!(contents(&reopened), vec![form]);
    }
}
