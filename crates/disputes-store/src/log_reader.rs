//! [`LogReader`]: a store's log opened for reading only, as an auditor reads it.
//!
//! Unlike [`crate::SledStore::open`] it makes no start-up check (the store refuses a log whose
//! tail does not check out, where an auditor wants to be shown its first broken seq), starts no
//! writer and writes nothing. It reads every entry as stored, whatever the head and indexes say;
//! what does not read back as the envelope of its seq is an [`Unreadable`] entry, not an error.

use std::collections::HashMap;
use std::path::Path;

use crate::api::CommandPlace;
use crate::error::StoreError;
use crate::layout::{
    decode_events, decode_u64, seq_key, stream_prefix, CommandRow, StreamRecord, COMMANDS_TREE,
    DISPUTES_TREE, EVENTS_TREE, FORMAT, FORMAT_KEY, FORMAT_V1, META_TREE, ORDERS_TREE,
    STREAMS_TREE,
};
use crate::reads;
use crate::stored::decode_stored;
use disputes_envelope::Envelope;

/// What is wrong with the entry of the log at `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The seq the entry is stored under (or the one expected next, when sled could not read on).
    pub seq: u64,
    pub reason: String,
}

/// One entry of the log as read: the envelope, or why it is not one.
pub type Entry = Result<Envelope, Unreadable>;

/// Where a dispute's events are, by the store's format.
enum StreamIndex {
    /// `disputes`: one stream record per dispute.
    Records(sled::Tree),
    /// A format 1 store not yet migrated: `streams`, a key per event.
    V1(sled::Tree),
}

pub struct LogReader {
    events: sled::Tree,
    commands: sled::Tree,
    orders: sled::Tree,
    index: StreamIndex,
    _db: sled::Db,
}

impl LogReader {
    /// Opens the store at `path` (a store's own directory), which must be a disputes store, of the
    /// current format or of the first (read as it is, not migrated).
    /// Only one process may have a store open: a running service's log is read from its stream.
    pub fn open(path: &Path) -> Result<LogReader, StoreError> {
        if !path.join("db").exists() {
            return Err(StoreError::Unavailable(format!(
                "no event store at {}",
                path.display()
            )));
        }
        let db = crate::open_sled(&sled::Config::new().path(path))?;
        let format = db.open_tree(META_TREE)?.get(FORMAT_KEY)?;
        let index = match format.as_deref() {
            Some(FORMAT) => StreamIndex::Records(db.open_tree(DISPUTES_TREE)?),
            Some(FORMAT_V1) => StreamIndex::V1(db.open_tree(STREAMS_TREE)?),
            _ => {
                return Err(StoreError::corrupt(
                    0,
                    format!(
                        "{} is not a disputes event store (no format marker)",
                        path.display()
                    ),
                ))
            }
        };
        Ok(LogReader {
            events: db.open_tree(EVENTS_TREE)?,
            commands: db.open_tree(COMMANDS_TREE)?,
            orders: db.open_tree(ORDERS_TREE)?,
            index,
            _db: db,
        })
    }

    /// Every entry of seq ≥ `from_seq`, in seq order. A storage failure (sled finding a bad
    /// checksum, say) is the last entry: [`Unreadable`] at the seq after the last one read.
    pub fn entries(&self, from_seq: u64) -> impl Iterator<Item = Entry> + '_ {
        let from = from_seq.max(1);
        // The value holding `from` may be stored under an earlier seq (an append of several).
        let start = match reads::holding(&self.events, from) {
            Ok(Some((first, _))) => first,
            _ => from,
        };
        let mut next = from;
        let mut failed = false;
        self.events
            .range(seq_key(start)..)
            .map_while(move |item| {
                if failed {
                    return None;
                }
                let entries: Vec<Entry> = match item {
                    Ok((key, bytes)) => match decode_u64(&key) {
                        Some(first) => unpack(first, &bytes)
                            .into_iter()
                            .filter(|entry| seq_of(entry) >= from)
                            .collect(),
                        None => vec![Err(Unreadable {
                            seq: next,
                            reason: "an event key is not 8 bytes".into(),
                        })],
                    },
                    Err(error) => {
                        failed = true;
                        vec![Err(Unreadable {
                            seq: next,
                            reason: format!("the log cannot be read past here: {error}"),
                        })]
                    }
                };
                if let Some(last) = entries.last() {
                    next = seq_of(last) + 1;
                }
                Some(entries)
            })
            .flatten()
    }

    /// The record of command `command_id` (its fingerprint and meta, as a repeat is answered
    /// from) and where its events are.
    pub fn command_record(&self, command_id: &str) -> Result<Option<CommandPlace>, StoreError> {
        let Some(bytes) = self.commands.get(command_id.as_bytes())? else {
            return Ok(None);
        };
        Ok(Some(
            CommandRow::decode(command_id, &bytes)?.place(command_id),
        ))
    }

    /// Every order reservation, by the dispute holding it.
    pub fn reservations(&self) -> Result<HashMap<String, String>, StoreError> {
        let mut by_dispute = HashMap::new();
        for item in self.orders.iter() {
            let (order, dispute) = item?;
            let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
            by_dispute.insert(text(&dispute), text(&order));
        }
        Ok(by_dispute)
    }

    /// The entry at `seq`, if there is one.
    pub fn entry(&self, seq: u64) -> Option<Entry> {
        match reads::holding(&self.events, seq).transpose()? {
            Ok((first, bytes)) => {
                let mut entries = unpack(first, &bytes);
                let at = usize::try_from(seq - first).ok()?;
                (at < entries.len()).then(|| entries.swap_remove(at))
            }
            Err(error) => Some(Err(Unreadable {
                seq,
                reason: format!("the log cannot be read here: {error}"),
            })),
        }
    }

    /// The entries of one dispute with seq ≥ `from_seq`, in version order, found through the
    /// store's stream index. An index entry that names no event, or another dispute's, is an
    /// [`Unreadable`] entry at that seq.
    pub fn dispute_entries<'a>(
        &'a self,
        dispute_id: &'a str,
        from_seq: u64,
    ) -> impl Iterator<Item = Entry> + 'a {
        let seqs = match self.indexed_seqs(dispute_id) {
            Ok(seqs) => seqs,
            Err(reason) => vec![Err(Unreadable {
                seq: from_seq,
                reason,
            })],
        };
        seqs.into_iter().filter_map(move |seq| {
            let seq = match seq {
                Ok(seq) => seq,
                Err(unreadable) => return Some(Err(unreadable)),
            };
            if seq < from_seq {
                return None;
            }
            let entry = self.entry(seq).unwrap_or_else(|| {
                Err(Unreadable {
                    seq,
                    reason: format!(
                        "the stream index of {dispute_id} names seq {seq}, which holds no event"
                    ),
                })
            });
            Some(entry.and_then(|e| {
                if e.dispute_id == dispute_id {
                    Ok(e)
                } else {
                    Err(Unreadable {
                        seq,
                        reason: format!(
                            "the stream index of {dispute_id} names seq {seq}, an event of {}",
                            e.dispute_id
                        ),
                    })
                }
            }))
        })
    }

    /// The seqs the stream index gives `dispute_id`, in version order; an index entry that does
    /// not read is an [`Unreadable`] in its place; `Err`: the index cannot be read at all.
    fn indexed_seqs(&self, dispute_id: &str) -> Result<Vec<Result<u64, Unreadable>>, String> {
        let cannot = |error: sled::Error| format!("the stream index cannot be read: {error}");
        match &self.index {
            StreamIndex::Records(disputes) => {
                let Some(bytes) = disputes.get(dispute_id.as_bytes()).map_err(cannot)? else {
                    return Ok(Vec::new());
                };
                let record = StreamRecord::decode(&bytes)
                    .map_err(|reason| format!("the stream record of {dispute_id}: {reason}"))?;
                Ok(record
                    .appends
                    .iter()
                    .flat_map(|&(first, n)| (first..first + u64::from(n)).map(Ok))
                    .collect())
            }
            StreamIndex::V1(streams) => {
                let mut seqs = Vec::new();
                for item in streams.scan_prefix(stream_prefix(dispute_id)) {
                    let (_, value) = item.map_err(cannot)?;
                    seqs.push(decode_u64(&value).ok_or_else(|| Unreadable {
                        seq: 0,
                        reason: format!("an index entry of {dispute_id} is not 8 bytes"),
                    }));
                }
                Ok(seqs)
            }
        }
    }
}

/// The entries of one `events` value stored under `first`: one per event it holds, or one
/// [`Unreadable`] at `first` when it is not a value of ours.
fn unpack(first: u64, bytes: &[u8]) -> Vec<Entry> {
    match decode_events(bytes) {
        Ok(stored) => (first..)
            .zip(stored)
            .map(|(seq, one)| decode(seq, one))
            .collect(),
        Err(reason) => vec![Err(Unreadable { seq: first, reason })],
    }
}

fn seq_of(entry: &Entry) -> u64 {
    match entry {
        Ok(envelope) => envelope.seq,
        Err(unreadable) => unreadable.seq,
    }
}

/// A stored value read back as the envelope of `seq`, byte for byte in its canonical form.
fn decode(seq: u64, bytes: &[u8]) -> Entry {
    decode_stored(seq, bytes).map_err(|error| Unreadable {
        seq,
        reason: match error {
            StoreError::Corrupt { reason, .. } => reason,
            other => other.to_string(),
        },
    })
}
