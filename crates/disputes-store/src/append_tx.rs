//! A group of appends as one sled transaction across the events, streams, versions, commands,
//! orders and meta trees: after a crash all of it is recovered, or none of it. Each request gets its
//! own checks inside that transaction and sees the writes of the requests before it, so a refused
//! request writes nothing and does not fail the others.

use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionalTree,
};
use sled::Transactional;

use crate::api::CommandOutcome;
use crate::error::StoreError;
use crate::layout::{decode_u64, seq_key, stream_key, CommandRow, HEAD_KEY, LAST_HASH_KEY};
use crate::limits::{ENVELOPE_BYTES_MAX, STREAM_EVENTS_MAX};
use crate::sled_store::Trees;
use crate::stored::{decode_stored, stored};
use crate::writer::{Append, Job, Reply, Seal, Written};
use disputes_envelope::{is_hash, Envelope, GENESIS_PREV_HASH};

type TxResult<T> = ConflictableTransactionResult<T, StoreError>;

fn abort<T>(error: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(error))
}

/// Applies every job in order, each appended or refused, in one transaction. `Err`: a storage
/// failure or corruption; then nothing at all was written.
pub(crate) fn apply_batch(trees: &Trees, jobs: &[Job]) -> Result<Vec<Reply>, StoreError> {
    let t = trees;
    (
        &t.events,
        &t.streams,
        &t.versions,
        &t.commands,
        &t.orders,
        &t.meta,
    )
        .transaction(|(events, streams, versions, commands, orders, meta)| {
            let view = View {
                events,
                streams,
                versions,
                commands,
                orders,
                meta,
            };
            let start = view.tip()?;
            let mut tip = start.clone();
            let mut replies = Vec::with_capacity(jobs.len());
            for job in jobs {
                replies.push(view.apply(job, &mut tip)?);
            }
            if tip != start {
                view.meta.insert(HEAD_KEY, &seq_key(tip.head))?;
                view.meta.insert(LAST_HASH_KEY, tip.hash.as_bytes())?;
            }
            Ok(replies)
        })
        .map_err(StoreError::from)
}

/// The head of the log and its hash, as of the requests applied so far.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tip {
    head: u64,
    hash: String,
}

struct View<'a> {
    events: &'a TransactionalTree,
    streams: &'a TransactionalTree,
    versions: &'a TransactionalTree,
    commands: &'a TransactionalTree,
    orders: &'a TransactionalTree,
    meta: &'a TransactionalTree,
}

impl View<'_> {
    fn tip(&self) -> TxResult<Tip> {
        let Some(bytes) = self.meta.get(HEAD_KEY)? else {
            return Ok(Tip {
                head: 0,
                hash: GENESIS_PREV_HASH.to_owned(),
            });
        };
        let head = decode_u64(&bytes)
            .ok_or_else(|| StoreError::corrupt(0, "head unreadable"))
            .or_else(abort)?;
        let hash = self
            .meta
            .get(LAST_HASH_KEY)?
            .map(|h| String::from_utf8_lossy(&h).into_owned());
        match hash {
            Some(hash) if is_hash(&hash) => Ok(Tip { head, hash }),
            _ => abort(StoreError::corrupt(
                head,
                "the head's hash is missing or malformed",
            )),
        }
    }

    /// One request: `Ok(reply)` whether appended or refused; `Err` aborts the whole transaction.
    fn apply(&self, job: &Job, tip: &mut Tip) -> TxResult<Reply> {
        let req = &job.req;
        if let Some(outcome) = self.duplicate(req)? {
            return Ok(Ok(Written::Duplicate(outcome)));
        }
        if let Err(refusal) = self.check_version(req)? {
            return Ok(Err(refusal));
        }
        if let Err(refusal) = self.check_order(req)? {
            return Ok(Err(refusal));
        }
        let sealed = match seal_all(req, tip) {
            Ok(sealed) => sealed,
            Err(refusal) => return Ok(Err(refusal)),
        };
        self.write(req, &sealed)?;
        let last = &sealed.last().expect("an append has events").0;
        *tip = Tip {
            head: last.seq,
            hash: last.hash.clone(),
        };
        Ok(Ok(Written::Appended(
            sealed.into_iter().map(|(seal, _)| seal).collect(),
        )))
    }

    /// The first outcome of `req`'s command id, if it was recorded.
    fn duplicate(&self, req: &Append) -> TxResult<Option<CommandOutcome>> {
        let Some(command) = &req.command else {
            return Ok(None);
        };
        let Some(bytes) = self.commands.get(command.command_id.as_bytes())? else {
            return Ok(None);
        };
        let row = CommandRow::decode(&command.command_id, &bytes).or_else(abort)?;
        let mut events = Vec::with_capacity(usize::try_from(row.count).unwrap_or(0));
        for seq in row.first_seq..=row.last_seq() {
            events.push(self.event(seq)?);
        }
        Ok(Some(CommandOutcome {
            fingerprint: row.fingerprint,
            meta: row.meta,
            dispute_id: row.dispute_id,
            events,
        }))
    }

    fn event(&self, seq: u64) -> TxResult<Envelope> {
        match self.events.get(seq_key(seq))? {
            Some(bytes) => decode_stored(seq, &bytes).or_else(abort),
            None => abort(StoreError::corrupt(
                seq,
                "a recorded command's event is missing",
            )),
        }
    }

    /// `Ok(Err(refusal))` unless the stream is at `expected_version` and has room.
    fn check_version(&self, req: &Append) -> TxResult<Result<(), StoreError>> {
        let actual = match self.versions.get(req.dispute_id.as_bytes())? {
            None => 0,
            Some(bytes) => decode_u64(&bytes)
                .ok_or_else(|| {
                    StoreError::corrupt(0, format!("version of {:?} unreadable", req.dispute_id))
                })
                .or_else(abort)?,
        };
        if actual != req.expected_version {
            return Ok(Err(StoreError::VersionConflict {
                expected: req.expected_version,
                actual,
            }));
        }
        if actual + req.drafts.len() as u64 > STREAM_EVENTS_MAX {
            return Ok(Err(StoreError::invalid(format!(
                "a stream holds at most {STREAM_EVENTS_MAX} events"
            ))));
        }
        Ok(Ok(()))
    }

    fn check_order(&self, req: &Append) -> TxResult<Result<(), StoreError>> {
        let Some(order_id) = &req.reserve_order else {
            return Ok(Ok(()));
        };
        match self.orders.get(order_id.as_bytes())? {
            Some(holder) if holder.as_ref() != req.dispute_id.as_bytes() => {
                let dispute_id = String::from_utf8_lossy(&holder).into_owned();
                Ok(Err(StoreError::OrderTaken {
                    order_id: order_id.clone(),
                    dispute_id,
                }))
            }
            _ => Ok(Ok(())),
        }
    }

    /// Everything an accepted request writes.
    fn write(&self, req: &Append, sealed: &[(Seal, Vec<u8>)]) -> TxResult<()> {
        for (seal, bytes) in sealed {
            let key = seq_key(seal.seq);
            if self.events.get(key)?.is_some() {
                return abort(StoreError::corrupt(
                    seal.seq,
                    "an event is stored beyond the head",
                ));
            }
            self.events.insert(&key, bytes.as_slice())?;
            self.streams
                .insert(stream_key(&req.dispute_id, seal.version), &key)?;
        }
        let (first, last) = (&sealed[0].0, &sealed[sealed.len() - 1].0);
        self.versions
            .insert(req.dispute_id.as_bytes(), &last.version.to_be_bytes())?;
        if let Some(order_id) = &req.reserve_order {
            self.orders
                .insert(order_id.as_bytes(), req.dispute_id.as_bytes())?;
        }
        if let Some(command) = &req.command {
            let row = CommandRow {
                fingerprint: command.fingerprint.clone(),
                meta: command.meta.clone(),
                dispute_id: req.dispute_id.clone(),
                first_seq: first.seq,
                count: sealed.len() as u64,
            };
            self.commands
                .insert(command.command_id.as_bytes(), row.encode())?;
        }
        Ok(())
    }
}

/// The seals of `req`'s events after `tip` with their stored bytes, or a refusal; writes nothing.
fn seal_all(req: &Append, tip: &Tip) -> Result<Vec<(Seal, Vec<u8>)>, StoreError> {
    let mut sealed: Vec<(Seal, Vec<u8>)> = Vec::with_capacity(req.drafts.len());
    for (offset, draft) in (1u64..).zip(&req.drafts) {
        let prev_hash = sealed
            .last()
            .map_or(&tip.hash, |(seal, _)| &seal.hash)
            .clone();
        let (seq, version) = (tip.head + offset, req.expected_version + offset);
        let tail = draft.tail(seq, version, &prev_hash);
        let hash = draft.hash(&prev_hash, &tail);
        let bytes = stored(draft, &tail, &hash);
        if bytes.len() > ENVELOPE_BYTES_MAX {
            return Err(StoreError::invalid(format!(
                "an envelope is over {ENVELOPE_BYTES_MAX} bytes"
            )));
        }
        let seal = Seal {
            seq,
            version,
            prev_hash,
            hash,
        };
        sealed.push((seal, bytes));
    }
    Ok(sealed)
}
