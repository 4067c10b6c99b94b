//! A group of appends as one sled transaction across the events, disputes, commands, orders and
//! meta trees: after a crash all of it is recovered, or none of it. Each request gets its
//! own checks inside that transaction and sees the writes of the requests before it, so a refused
//! request writes nothing and does not fail the others.

use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionalTree,
};
use sled::Transactional;

use crate::api::{CommandOutcome, CommandRecord, SealedAppend};
use crate::error::StoreError;
use crate::layout::{
    decode_u64, encode_events, seq_key, CommandRow, StreamRecord, HEAD_KEY, LAST_HASH_KEY,
};
use crate::limits::ENVELOPE_BYTES_MAX;
use crate::sled_store::Trees;
use crate::stored::{decode_stored, stored, stored_envelope};
use crate::writer::{Append, Job, Reply, Seal, Work, Written};
use crate::{reads, validate};
use disputes_envelope::{is_hash, Chain, Envelope, GENESIS_PREV_HASH};

type TxResult<T> = ConflictableTransactionResult<T, StoreError>;
/// Each event's seal with its stored bytes.
type SealedBytes = Vec<(Seal, Vec<u8>)>;

fn abort<T>(error: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(error))
}

/// Applies every job in order, each appended or refused, in one transaction. `Err`: a storage
/// failure or corruption; then nothing at all was written.
pub(crate) fn apply_batch(trees: &Trees, jobs: &[Job]) -> Result<Vec<Reply>, StoreError> {
    let t = trees;
    (&t.events, &t.disputes, &t.commands, &t.orders, &t.meta)
        .transaction(|(events, disputes, commands, orders, meta)| {
            let view = View {
                events,
                disputes,
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
    disputes: &'a TransactionalTree,
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
        let req = match &job.req {
            Work::Append(req) => req,
            Work::Import(import) => return self.import(import, tip),
        };
        if let Some(outcome) = self.duplicate(req)? {
            return Ok(Ok(Written::Duplicate(outcome)));
        }
        let mut stream = self.stream(&req.dispute_id)?;
        let version = stream.version();
        if let Err(refusal) =
            validate::check_stream_version(req.expected_version, version, req.drafts.len())
        {
            return Ok(Err(refusal));
        }
        if let Err(refusal) = self.check_order(req)? {
            return Ok(Err(refusal));
        }
        let sealed = match seal_all(req, tip) {
            Ok(sealed) => sealed,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let command = req.command.as_ref();
        let order = req.reserve_order.as_ref();
        self.write(&req.dispute_id, &mut stream, command, order, &sealed)?;
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
        let events = self.events_of(&row)?;
        Ok(Some(CommandOutcome {
            fingerprint: row.fingerprint,
            meta: row.meta,
            dispute_id: row.dispute_id,
            events,
        }))
    }

    /// The events a command row places, read by key: its append stored them under its first seq
    /// (a format 1 store, one under each seq).
    fn events_of(&self, row: &CommandRow) -> TxResult<Vec<Envelope>> {
        let missing = |seq| StoreError::corrupt(seq, "a recorded command's event is missing");
        let mut events = Vec::with_capacity(usize::try_from(row.count).unwrap_or(0));
        let mut seq = row.first_seq;
        while seq <= row.last_seq() {
            let Some(bytes) = self.events.get(seq_key(seq))? else {
                return abort(missing(seq));
            };
            let stored = reads::events_at(seq, &bytes).or_else(abort)?;
            for one in stored {
                if seq > row.last_seq() {
                    return abort(StoreError::corrupt(seq, "an append runs past its command"));
                }
                events.push(decode_stored(seq, one).or_else(abort)?);
                seq += 1;
            }
        }
        Ok(events)
    }

    fn check_order(&self, req: &Append) -> TxResult<Result<(), StoreError>> {
        let Some(order_id) = &req.reserve_order else {
            return Ok(Ok(()));
        };
        match self.other_holder(order_id, &req.dispute_id)? {
            Some(dispute_id) => Ok(Err(StoreError::OrderTaken {
                order_id: order_id.clone(),
                dispute_id,
            })),
            None => Ok(Ok(())),
        }
    }

    /// The dispute other than `dispute_id` that holds `order_id`, if one does.
    fn other_holder(&self, order_id: &str, dispute_id: &str) -> TxResult<Option<String>> {
        Ok(self
            .orders
            .get(order_id.as_bytes())?
            .filter(|holder| holder.as_ref() != dispute_id.as_bytes())
            .map(|holder| String::from_utf8_lossy(&holder).into_owned()))
    }

    /// An import: `Ok(Err(Corrupt))` unless `import` continues the log exactly; written if it does.
    fn import(&self, import: &SealedAppend, tip: &mut Tip) -> TxResult<Reply> {
        let sealed = match self.check_import(import, tip)? {
            Ok(sealed) => sealed,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let dispute_id = &import.events[0].dispute_id;
        let (command, order) = (import.command.as_ref(), import.reserve_order.as_ref());
        let mut stream = self.stream(dispute_id)?;
        self.write(dispute_id, &mut stream, command, order, &sealed)?;
        let last = &sealed.last().expect("an import has events").0;
        *tip = Tip {
            head: last.seq,
            hash: last.hash.clone(),
        };
        Ok(Ok(Written::Appended(
            sealed.into_iter().map(|(seal, _)| seal).collect(),
        )))
    }

    /// The seals and stored bytes of `import`'s events, or why they do not continue the log.
    fn check_import(
        &self,
        import: &SealedAppend,
        tip: &Tip,
    ) -> TxResult<Result<SealedBytes, StoreError>> {
        let first = &import.events[0];
        let refuse = |seq: u64, reason: String| Ok(Err(StoreError::corrupt(seq, reason)));
        let command_id = import.command.as_ref().map(|c| c.command_id.as_str());
        let version = self.stream(&first.dispute_id)?.version();
        let mut chain = Chain::after(tip.head, tip.hash.clone());
        let mut sealed = Vec::with_capacity(import.events.len());
        for (offset, e) in (1u64..).zip(&import.events) {
            if e.dispute_id != first.dispute_id {
                return refuse(e.seq, "one append's events name two disputes".into());
            }
            if e.command_id.as_deref() != command_id {
                return refuse(e.seq, format!("not an event of command {command_id:?}"));
            }
            if let Err(reason) = chain.check(e) {
                return refuse(e.seq, reason);
            }
            if e.version != version + offset {
                let expected = version + offset;
                return refuse(
                    e.seq,
                    format!("version {} where {expected} was expected", e.version),
                );
            }
            let bytes = stored_envelope(e);
            if bytes.len() > ENVELOPE_BYTES_MAX {
                return refuse(e.seq, format!("over {ENVELOPE_BYTES_MAX} bytes"));
            }
            let seal = Seal {
                seq: e.seq,
                version: e.version,
                prev_hash: e.prev_hash.clone(),
                hash: e.hash.clone(),
            };
            sealed.push((seal, bytes));
        }
        if let Some(command_id) = command_id {
            if self.commands.get(command_id.as_bytes())?.is_some() {
                let reason = format!("command {command_id:?} was recorded before");
                return refuse(first.seq, reason);
            }
        }
        if let Some(order_id) = &import.reserve_order {
            if let Some(holder) = self.other_holder(order_id, &first.dispute_id)? {
                let reason = format!("order {order_id:?} is held by dispute {holder:?}");
                return refuse(first.seq, reason);
            }
        }
        Ok(Ok(sealed))
    }

    /// Where `dispute_id`'s appends are (none yet: an empty record).
    fn stream(&self, dispute_id: &str) -> TxResult<StreamRecord> {
        match self.disputes.get(dispute_id.as_bytes())? {
            None => Ok(StreamRecord::default()),
            Some(bytes) => StreamRecord::read(dispute_id, &bytes).or_else(abort),
        }
    }

    /// Everything an accepted request writes: its events under the first one's seq (one key, however
    /// many), the dispute's record with this append added, the order and the command record.
    fn write(
        &self,
        dispute_id: &str,
        stream: &mut StreamRecord,
        command: Option<&CommandRecord>,
        reserve_order: Option<&String>,
        sealed: &[(Seal, Vec<u8>)],
    ) -> TxResult<()> {
        let first = &sealed[0].0;
        let stored: Vec<&[u8]> = sealed.iter().map(|(_, bytes)| bytes.as_slice()).collect();
        // sled's transactional insert reads the old value anyway: there must be none.
        let replaced = self
            .events
            .insert(&seq_key(first.seq), encode_events(&stored))?;
        if replaced.is_some() {
            return abort(StoreError::corrupt(
                first.seq,
                "an event is stored beyond the head",
            ));
        }
        stream.push(first.seq, sealed.len());
        self.disputes
            .insert(dispute_id.as_bytes(), stream.encode())?;
        if let Some(order_id) = reserve_order {
            self.orders
                .insert(order_id.as_bytes(), dispute_id.as_bytes())?;
        }
        if let Some(command) = command {
            let row = CommandRow {
                fingerprint: command.fingerprint.clone(),
                meta: command.meta.clone(),
                dispute_id: dispute_id.to_owned(),
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
