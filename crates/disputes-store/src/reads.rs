//! Reads. They only ever show durable events (seq at most the durable head), which also makes them
//! consistent: everything at or below the head was committed whole before the head moved.

use sled::IVec;

use crate::api::{CommandOutcome, CommandPlace};
use crate::error::StoreError;
use crate::layout::{decode_events, decode_u64, seq_key, CommandRow, StreamRecord};
use crate::limits::READ_FROM_EVENTS_MAX;
use crate::sled_store::Trees;
use crate::stored::decode_stored;
use crate::validate;
use disputes_envelope::Envelope;

/// The `events` value that holds `seq` if there is one: the last stored at or before it, with the
/// seq of its key.
pub(crate) fn holding(events: &sled::Tree, seq: u64) -> Result<Option<(u64, IVec)>, StoreError> {
    match events.range(..=seq_key(seq)).next_back() {
        None => Ok(None),
        Some(entry) => {
            let (key, bytes) = entry?;
            let first = decode_u64(&key)
                .ok_or_else(|| StoreError::corrupt(seq, "an event key is not 8 bytes"))?;
            Ok(Some((first, bytes)))
        }
    }
}

/// The event at `seq`, which must exist.
pub(crate) fn event(trees: &Trees, seq: u64) -> Result<Envelope, StoreError> {
    let missing = || StoreError::corrupt(seq, "event missing");
    let (first, bytes) = holding(&trees.events, seq)?.ok_or_else(missing)?;
    let stored = events_at(first, &bytes)?;
    let one = stored.get(usize::try_from(seq - first).map_err(|_| missing())?);
    decode_stored(seq, one.ok_or_else(missing)?)
}

/// Calls `each` with the seq and stored envelope of every event `from..=last`, in seq order. A
/// missing event, or one stored twice, is `Corrupt` at its seq.
pub(crate) fn each_stored(
    trees: &Trees,
    from: u64,
    last: u64,
    mut each: impl FnMut(u64, &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let gap = |seq| StoreError::corrupt(seq, "event missing (gap in seq)");
    let Some((start, _)) = holding(&trees.events, from)? else {
        return Err(gap(from));
    };
    let mut next = from;
    for entry in trees.events.range(seq_key(start)..=seq_key(last)) {
        let (key, bytes) = entry?;
        let first = decode_u64(&key)
            .ok_or_else(|| StoreError::corrupt(next, "an event key is not 8 bytes"))?;
        if first > next {
            return Err(gap(next));
        }
        if first != start && first < next {
            return Err(StoreError::corrupt(first, "an event is stored twice"));
        }
        let stored = events_at(first, &bytes)?;
        for (seq, one) in (first..).zip(stored) {
            if seq >= next && seq <= last {
                each(seq, one)?;
                next = seq + 1;
            }
        }
    }
    if next <= last {
        return Err(gap(next));
    }
    Ok(())
}

/// The stored envelopes of the `events` value stored under `first`: `Corrupt` at `first` when it
/// is not one of ours.
pub(crate) fn events_at(first: u64, bytes: &[u8]) -> Result<Vec<&[u8]>, StoreError> {
    decode_events(bytes).map_err(|reason| StoreError::corrupt(first, reason))
}

/// `dispute_id`'s stream record, if it has one.
pub(crate) fn record(trees: &Trees, dispute_id: &str) -> Result<Option<StreamRecord>, StoreError> {
    let bytes = trees.disputes.get(dispute_id.as_bytes())?;
    bytes
        .map(|bytes| StreamRecord::read(dispute_id, &bytes))
        .transpose()
}

/// Where `dispute_id`'s appends are (an empty record: none yet).
fn stream_record(trees: &Trees, dispute_id: &str) -> Result<StreamRecord, StoreError> {
    validate::id("dispute_id", dispute_id)?;
    Ok(record(trees, dispute_id)?.unwrap_or_default())
}

pub(crate) fn read_stream(
    trees: &Trees,
    dispute_id: &str,
    head: u64,
) -> Result<Vec<Envelope>, StoreError> {
    let record = stream_record(trees, dispute_id)?;
    let mut envelopes = Vec::new();
    for (first, count) in record.durable(head) {
        let bytes = trees.events.get(seq_key(first))?.ok_or_else(|| {
            StoreError::corrupt(
                first,
                format!("stream {dispute_id:?} names an append missing here"),
            )
        })?;
        let stored = events_at(first, &bytes)?;
        if stored.len() != count as usize {
            return Err(StoreError::corrupt(
                first,
                format!(
                    "stream {dispute_id:?} says {count} events, the log holds {}",
                    stored.len()
                ),
            ));
        }
        for (seq, one) in (first..).zip(stored) {
            let envelope = decode_stored(seq, one)?;
            let version = envelopes.len() as u64 + 1;
            if envelope.dispute_id != dispute_id || envelope.version != version {
                return Err(StoreError::corrupt(
                    seq,
                    format!("indexed as {dispute_id:?} version {version}"),
                ));
            }
            envelopes.push(envelope);
        }
    }
    Ok(envelopes)
}

pub(crate) fn stream_version(
    trees: &Trees,
    dispute_id: &str,
    head: u64,
) -> Result<u64, StoreError> {
    let record = stream_record(trees, dispute_id)?;
    Ok(record.durable(head).map(|(_, n)| u64::from(n)).sum())
}

pub(crate) fn read_from(
    trees: &Trees,
    from_seq: u64,
    limit: usize,
    head: u64,
) -> Result<Vec<Envelope>, StoreError> {
    let from = from_seq.max(1);
    let limit = limit.min(READ_FROM_EVENTS_MAX) as u64;
    if from > head || limit == 0 {
        return Ok(Vec::new());
    }
    let last = head.min(from + limit - 1);
    let mut envelopes = Vec::with_capacity((last - from + 1) as usize);
    each_stored(trees, from, last, |seq, stored| {
        envelopes.push(decode_stored(seq, stored)?);
        Ok(())
    })?;
    Ok(envelopes)
}

/// [`command`]'s record and where its events are, without reading them.
pub(crate) fn command_record(
    trees: &Trees,
    command_id: &str,
    head: u64,
) -> Result<Option<CommandPlace>, StoreError> {
    validate::id("command_id", command_id)?;
    let Some(bytes) = trees.commands.get(command_id.as_bytes())? else {
        return Ok(None);
    };
    let row = CommandRow::decode(command_id, &bytes)?;
    Ok((row.last_seq() <= head).then(|| row.place(command_id)))
}

pub(crate) fn command(
    trees: &Trees,
    command_id: &str,
    head: u64,
) -> Result<Option<CommandOutcome>, StoreError> {
    validate::id("command_id", command_id)?;
    let Some(bytes) = trees.commands.get(command_id.as_bytes())? else {
        return Ok(None);
    };
    let row = CommandRow::decode(command_id, &bytes)?;
    if row.last_seq() > head {
        return Ok(None); // recorded, not yet durable: not yet an outcome
    }
    let mut events = Vec::with_capacity(row.count as usize);
    each_stored(trees, row.first_seq, row.last_seq(), |seq, stored| {
        let envelope = decode_stored(seq, stored)?;
        if envelope.command_id.as_deref() != Some(command_id) {
            return Err(StoreError::corrupt(
                seq,
                format!("not an event of command {command_id:?}"),
            ));
        }
        events.push(envelope);
        Ok(())
    })?;
    Ok(Some(CommandOutcome {
        fingerprint: row.fingerprint,
        meta: row.meta,
        dispute_id: row.dispute_id,
        events,
    }))
}

/// The dispute that reserved `order_id`, once its events are durable.
pub(crate) fn order_holder(
    trees: &Trees,
    order_id: &str,
    head: u64,
) -> Result<Option<String>, StoreError> {
    validate::id("order_id", order_id)?;
    let Some(bytes) = trees.orders.get(order_id.as_bytes())? else {
        return Ok(None);
    };
    let dispute_id = String::from_utf8(bytes.to_vec())
        .map_err(|_| StoreError::corrupt(0, format!("order {order_id:?} holder unreadable")))?;
    let durable = stream_version(trees, &dispute_id, head)? > 0;
    Ok(durable.then_some(dispute_id))
}
