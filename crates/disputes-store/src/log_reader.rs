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
use crate::layout::{decode_u64, seq_key, stream_prefix, CommandRow, FORMAT, FORMAT_KEY};
use crate::sled_store::Trees;
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

pub struct LogReader {
    trees: Trees,
    _db: sled::Db,
}

impl LogReader {
    /// Opens the store at `path` (a store's own directory), which must be a disputes store.
    /// Only one process may have a store open: a running service's log is read from its stream.
    pub fn open(path: &Path) -> Result<LogReader, StoreError> {
        if !path.join("db").exists() {
            return Err(StoreError::Unavailable(format!(
                "no event store at {}",
                path.display()
            )));
        }
        let db = crate::open_sled(&sled::Config::new().path(path))?;
        let trees = Trees::open(&db)?;
        if trees.meta.get(FORMAT_KEY)?.as_deref() != Some(FORMAT) {
            return Err(StoreError::corrupt(
                0,
                format!(
                    "{} is not a disputes event store (no format marker)",
                    path.display()
                ),
            ));
        }
        Ok(LogReader { trees, _db: db })
    }

    /// Every entry of seq ≥ `from_seq`, in seq order. A storage failure (sled finding a bad
    /// checksum, say) is the last entry: [`Unreadable`] at the seq after the last one read.
    pub fn entries(&self, from_seq: u64) -> impl Iterator<Item = Entry> + '_ {
        let mut next = from_seq.max(1);
        let mut failed = false;
        self.trees
            .events
            .range(seq_key(from_seq)..)
            .map_while(move |item| {
                if failed {
                    return None;
                }
                let entry = match item {
                    Ok((key, bytes)) => match decode_u64(&key) {
                        Some(seq) => decode(seq, &bytes),
                        None => Err(Unreadable {
                            seq: next,
                            reason: "an event key is not 8 bytes".into(),
                        }),
                    },
                    Err(error) => {
                        failed = true;
                        Err(Unreadable {
                            seq: next,
                            reason: format!("the log cannot be read past here: {error}"),
                        })
                    }
                };
                next = match &entry {
                    Ok(envelope) => envelope.seq + 1,
                    Err(unreadable) => unreadable.seq + 1,
                };
                Some(entry)
            })
    }

    /// The record of command `command_id` (its fingerprint and meta, as a repeat is answered
    /// from) and where its events are.
    pub fn command_record(&self, command_id: &str) -> Result<Option<CommandPlace>, StoreError> {
        let Some(bytes) = self.trees.commands.get(command_id.as_bytes())? else {
            return Ok(None);
        };
        Ok(Some(
            CommandRow::decode(command_id, &bytes)?.place(command_id),
        ))
    }

    /// Every order reservation, by the dispute holding it.
    pub fn reservations(&self) -> Result<HashMap<String, String>, StoreError> {
        let mut by_dispute = HashMap::new();
        for item in self.trees.orders.iter() {
            let (order, dispute) = item?;
            let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
            by_dispute.insert(text(&dispute), text(&order));
        }
        Ok(by_dispute)
    }

    /// The entry at `seq`, if there is one.
    pub fn entry(&self, seq: u64) -> Option<Entry> {
        match self.trees.events.get(seq_key(seq)) {
            Ok(bytes) => bytes.map(|bytes| decode(seq, &bytes)),
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
        let index = self.trees.streams.scan_prefix(stream_prefix(dispute_id));
        index.filter_map(move |item| {
            let seq = match item {
                Ok((_, value)) => decode_u64(&value),
                Err(error) => {
                    return Some(Err(Unreadable {
                        seq: from_seq,
                        reason: format!("the stream index cannot be read: {error}"),
                    }))
                }
            };
            let Some(seq) = seq else {
                return Some(Err(Unreadable {
                    seq: from_seq,
                    reason: format!("an index entry of {dispute_id} is not 8 bytes"),
                }));
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
