//! Reads. They only ever show durable events (seq at most the durable head), which also makes them
//! consistent: everything at or below the head was committed whole before the head moved.

use crate::api::{CommandOutcome, CommandPlace};
use crate::error::StoreError;
use crate::layout::{decode_u64, parse_stream_key, seq_key, stream_prefix, CommandRow};
use crate::limits::{READ_FROM_EVENTS_MAX, STREAM_EVENTS_MAX};
use crate::sled_store::Trees;
use crate::stored::decode_stored;
use crate::validate;
use disputes_envelope::Envelope;

/// The event at `seq`, which must exist.
pub(crate) fn event(trees: &Trees, seq: u64) -> Result<Envelope, StoreError> {
    match trees.events.get(seq_key(seq))? {
        Some(bytes) => decode_stored(seq, &bytes),
        None => Err(StoreError::corrupt(seq, "event missing")),
    }
}

/// `(version, seq)` of a dispute's durable events, in version order, checked to count from 1.
fn stream_index(trees: &Trees, dispute_id: &str, head: u64) -> Result<Vec<(u64, u64)>, StoreError> {
    validate::id("dispute_id", dispute_id)?;
    let mut index = Vec::new();
    for entry in trees.streams.scan_prefix(stream_prefix(dispute_id)) {
        let (key, value) = entry?;
        let seq =
            decode_u64(&value).ok_or_else(|| StoreError::corrupt(0, "stream entry unreadable"))?;
        if seq > head {
            break; // versions grow with seqs: the rest is in flight too
        }
        let version = parse_stream_key(&key).map(|(_, v)| v);
        if version != Some(index.len() as u64 + 1) || index.len() as u64 >= STREAM_EVENTS_MAX {
            return Err(StoreError::corrupt(
                seq,
                format!("stream {dispute_id:?} index out of order"),
            ));
        }
        index.push((index.len() as u64 + 1, seq));
    }
    Ok(index)
}

pub(crate) fn read_stream(
    trees: &Trees,
    dispute_id: &str,
    head: u64,
) -> Result<Vec<Envelope>, StoreError> {
    let index = stream_index(trees, dispute_id, head)?;
    let mut envelopes = Vec::with_capacity(index.len());
    for (version, seq) in index {
        let envelope = event(trees, seq)?;
        if envelope.dispute_id != dispute_id || envelope.version != version {
            return Err(StoreError::corrupt(
                seq,
                format!("indexed as {dispute_id:?} version {version}"),
            ));
        }
        envelopes.push(envelope);
    }
    Ok(envelopes)
}

pub(crate) fn stream_version(
    trees: &Trees,
    dispute_id: &str,
    head: u64,
) -> Result<u64, StoreError> {
    Ok(stream_index(trees, dispute_id, head)?.len() as u64)
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
    for entry in trees.events.range(seq_key(from)..=seq_key(last)) {
        let (key, bytes) = entry?;
        let expected = from + envelopes.len() as u64;
        if decode_u64(&key) != Some(expected) {
            return Err(StoreError::corrupt(expected, "event missing (gap in seq)"));
        }
        envelopes.push(decode_stored(expected, &bytes)?);
    }
    if envelopes.len() as u64 != last - from + 1 {
        return Err(StoreError::corrupt(
            from + envelopes.len() as u64,
            "event missing (gap in seq)",
        ));
    }
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
    for seq in row.first_seq..=row.last_seq() {
        let envelope = event(trees, seq)?;
        if envelope.command_id.as_deref() != Some(command_id) {
            return Err(StoreError::corrupt(
                seq,
                format!("not an event of command {command_id:?}"),
            ));
        }
        events.push(envelope);
    }
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
