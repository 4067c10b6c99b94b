//! `verify`: the whole log, every hash, every link, seq continuity and the stream index.

use crate::api::{VerifyBreak, VerifyReport};
use crate::error::StoreError;
use crate::layout::{decode_u64, parse_stream_key};
use crate::reads;
use crate::recovery::check_event;
use crate::sled_store::Trees;
use disputes_envelope::GENESIS_PREV_HASH;

pub(crate) fn verify(trees: &Trees, head: u64) -> Result<VerifyReport, StoreError> {
    let mut head_hash = GENESIS_PREV_HASH.to_owned();
    let mut events = 0;
    let mut chain_break = None;
    for seq in 1..=head {
        match check_event(trees, seq, &head_hash) {
            Ok(envelope) => {
                head_hash = envelope.hash;
                events += 1;
            }
            Err(StoreError::Corrupt { seq, reason }) => {
                chain_break = Some(VerifyBreak { seq, reason });
                break;
            }
            Err(other) => return Err(other),
        }
    }
    let index_break = verify_index(trees, head)?;
    let first_break = match (chain_break, index_break) {
        (Some(a), Some(b)) => Some(if b.seq < a.seq { b } else { a }),
        (a, b) => a.or(b),
    };
    Ok(VerifyReport {
        events,
        head,
        head_hash,
        first_break,
    })
}

/// Every durable stream entry: versions count from 1 in each dispute, the `versions` tree is not
/// behind, and there are exactly `head` entries (the chain walk checked each event is indexed).
fn verify_index(trees: &Trees, head: u64) -> Result<Option<VerifyBreak>, StoreError> {
    let mut last: Option<(String, u64)> = None;
    let mut count = 0u64;
    for entry in trees.streams.iter() {
        let (key, value) = entry?;
        let seq = decode_u64(&value).unwrap_or(0);
        let Some((dispute_id, version)) = parse_stream_key(&key) else {
            return Ok(Some(VerifyBreak {
                seq,
                reason: "malformed stream index key".into(),
            }));
        };
        if seq > head {
            continue; // appended after the walk began
        }
        let same = last.as_ref().is_some_and(|(d, _)| *d == dispute_id);
        if !same {
            if let Some(found) = check_version_tree(trees, last.take(), seq)? {
                return Ok(Some(found));
            }
        }
        let expected = if same {
            last.as_ref().map_or(1, |(_, v)| v + 1)
        } else {
            1
        };
        if version != expected {
            let reason =
                format!("stream {dispute_id:?} has version {version} where {expected} belongs");
            return Ok(Some(VerifyBreak { seq, reason }));
        }
        last = Some((dispute_id, version));
        count += 1;
    }
    if let Some(found) = check_version_tree(trees, last, head)? {
        return Ok(Some(found));
    }
    if count != head {
        return find_stray_entry(trees, head, count);
    }
    Ok(None)
}

fn check_version_tree(
    trees: &Trees,
    last: Option<(String, u64)>,
    seq: u64,
) -> Result<Option<VerifyBreak>, StoreError> {
    let Some((dispute_id, version)) = last else {
        return Ok(None);
    };
    let recorded = trees
        .versions
        .get(dispute_id.as_bytes())?
        .and_then(|v| decode_u64(&v))
        .unwrap_or(0);
    if recorded < version {
        let reason = format!(
            "versions tree says {recorded} for {dispute_id:?}, its stream reaches {version}"
        );
        return Ok(Some(VerifyBreak { seq, reason }));
    }
    Ok(None)
}

/// More stream entries than events: find the entry whose event is not what it claims.
fn find_stray_entry(
    trees: &Trees,
    head: u64,
    count: u64,
) -> Result<Option<VerifyBreak>, StoreError> {
    for entry in trees.streams.iter() {
        let (key, value) = entry?;
        let (Some((dispute_id, version)), Some(seq)) = (parse_stream_key(&key), decode_u64(&value))
        else {
            continue;
        };
        if seq == 0 || seq > head {
            continue;
        }
        let envelope = match reads::event(trees, seq) {
            Ok(envelope) => envelope,
            Err(StoreError::Corrupt { reason, .. }) => {
                return Ok(Some(VerifyBreak { seq, reason }))
            }
            Err(other) => return Err(other),
        };
        if envelope.dispute_id != dispute_id || envelope.version != version {
            let reason =
                format!("stream entry {dispute_id:?} version {version} points at another event");
            return Ok(Some(VerifyBreak { seq, reason }));
        }
    }
    let reason = format!("the stream index holds {count} entries for {head} events");
    Ok(Some(VerifyBreak { seq: head, reason }))
}
