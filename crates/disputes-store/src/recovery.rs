//! Start-up checks: what sled recovered must be a store of ours whose tail is intact, before any
//! of it is served.

use std::collections::BTreeMap;

use crate::error::StoreError;
use crate::layout::{
    decode_events, decode_u64, CommandRow, FORMAT, FORMAT_KEY, FORMAT_V1, HEAD_KEY, LAST_HASH_KEY,
};
use crate::reads;
use crate::sled_store::Trees;
use crate::stored::decode_stored;
use crate::validate;
use disputes_envelope::{Chain, Envelope, GENESIS_PREV_HASH};

/// The formats a store opens in: the current one, and the first, which it migrates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    V1,
    V2,
}

/// The head recorded in `meta` (0: empty).
pub(crate) fn recorded_head(trees: &Trees) -> Result<u64, StoreError> {
    match trees.meta.get(HEAD_KEY)? {
        None => Ok(0),
        Some(bytes) => decode_u64(&bytes).ok_or_else(|| StoreError::corrupt(0, "head unreadable")),
    }
}

/// Whether the database holds nothing of ours: no format marker, no event, no meta.
pub(crate) fn is_blank(trees: &Trees) -> Result<bool, StoreError> {
    Ok(trees.meta.is_empty() && trees.events.is_empty() && trees.commands.is_empty())
}

/// Writes the format marker of a new store.
pub(crate) fn init_format(trees: &Trees) -> Result<(), StoreError> {
    trees.meta.insert(FORMAT_KEY, FORMAT)?;
    Ok(())
}

pub(crate) fn check_format(trees: &Trees) -> Result<Format, StoreError> {
    match trees.meta.get(FORMAT_KEY)? {
        Some(format) if format.as_ref() == FORMAT => Ok(Format::V2),
        Some(format) if format.as_ref() == FORMAT_V1 => Ok(Format::V1),
        Some(other) => Err(StoreError::corrupt(
            0,
            format!("unknown store format {:?}", String::from_utf8_lossy(&other)),
        )),
        None => Err(StoreError::corrupt(
            0,
            "no store format marker: not a disputes store",
        )),
    }
}

/// Checks the last `tail` events (hash, link, seq, index, command record), that no event lies
/// beyond the head or is missing at either end, and that `meta` and `versions` agree with the log.
/// Returns the head.
pub(crate) fn check_tail(trees: &Trees, tail: u64) -> Result<u64, StoreError> {
    let head = recorded_head(trees)?;
    check_ends(trees, head)?;
    let start = head.saturating_sub(tail) + 1;
    let mut prev_hash = if start <= 1 {
        GENESIS_PREV_HASH.to_owned()
    } else {
        reads::event(trees, start - 1)?.hash
    };
    let mut last_versions = BTreeMap::new();
    if head > 0 {
        reads::each_stored(trees, start, head, |seq, stored| {
            let envelope = check_event(trees, seq, stored, &prev_hash)?;
            prev_hash = envelope.hash;
            last_versions.insert(envelope.dispute_id, envelope.version);
            Ok(())
        })?;
        check_last_hash(trees, head)?;
    }
    for (dispute_id, version) in last_versions {
        let recorded = reads::record(trees, &dispute_id)?.map(|r| r.version());
        if recorded != Some(version) {
            return Err(StoreError::corrupt(
                head,
                format!("version of {dispute_id:?} is {recorded:?}, its last event {version}"),
            ));
        }
    }
    Ok(head)
}

/// The first event is seq 1 and the last is the head.
fn check_ends(trees: &Trees, head: u64) -> Result<(), StoreError> {
    let first = trees.events.first()?.map(|(k, _)| decode_u64(&k));
    let last = trees.events.last()?.map(|(k, v)| {
        let count = decode_events(&v).map_or(1, |stored| stored.len() as u64);
        decode_u64(&k).map(|first| first + count - 1)
    });
    let expected = if head == 0 {
        (None, None)
    } else {
        (Some(Some(1)), Some(Some(head)))
    };
    if (first, last) != expected {
        return Err(StoreError::corrupt(
            head,
            format!("log spans {first:?}..{last:?}, the head is {head}"),
        ));
    }
    Ok(())
}

fn check_last_hash(trees: &Trees, head: u64) -> Result<(), StoreError> {
    let recorded = trees.meta.get(LAST_HASH_KEY)?;
    if recorded.as_deref() != Some(reads::event(trees, head)?.hash.as_bytes()) {
        return Err(StoreError::corrupt(
            head,
            "the recorded head hash is not the head event's hash",
        ));
    }
    Ok(())
}

/// Everything that can be checked of the event at `seq`, `stored` as read, given its
/// predecessor's hash. Any corruption found is reported at `seq`.
pub(crate) fn check_event(
    trees: &Trees,
    seq: u64,
    stored: &[u8],
    prev_hash: &str,
) -> Result<Envelope, StoreError> {
    let at = |error: StoreError| match error {
        StoreError::Corrupt { reason, .. } | StoreError::Invalid(reason) => {
            StoreError::corrupt(seq, reason)
        }
        other => other,
    };
    let envelope = decode_stored(seq, stored).map_err(at)?;
    Chain::after(seq - 1, prev_hash.to_owned())
        .check(&envelope)
        .map_err(|reason| StoreError::corrupt(seq, reason))?;
    check_indexed(trees, &envelope).map_err(at)?;
    Ok(envelope)
}

fn check_indexed(trees: &Trees, envelope: &Envelope) -> Result<(), StoreError> {
    validate::id("dispute_id", &envelope.dispute_id)?;
    let indexed =
        reads::record(trees, &envelope.dispute_id)?.and_then(|r| r.version_at(envelope.seq));
    if envelope.version == 0 || indexed != Some(envelope.version) {
        return Err(StoreError::corrupt(
            envelope.seq,
            "not indexed at its dispute and version",
        ));
    }
    let Some(command_id) = &envelope.command_id else {
        return Ok(());
    };
    validate::id("command_id", command_id)?;
    let row = trees.commands.get(command_id.as_bytes())?;
    let row = row
        .map(|bytes| CommandRow::decode(command_id, &bytes))
        .transpose()?;
    match row {
        Some(row)
            if row.dispute_id == envelope.dispute_id
                && (row.first_seq..=row.last_seq()).contains(&envelope.seq) =>
        {
            Ok(())
        }
        _ => Err(StoreError::corrupt(
            envelope.seq,
            format!("command {command_id:?} does not record this event"),
        )),
    }
}
