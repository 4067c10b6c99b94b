//! `verify`: the whole log, every hash, every link, seq continuity and the stream records.

use crate::api::{VerifyBreak, VerifyReport};
use crate::error::StoreError;
use crate::layout::{decode_events, seq_key, StreamRecord};
use crate::reads;
use crate::recovery::check_event;
use crate::sled_store::Trees;
use crate::stored::decode_stored;
use disputes_envelope::GENESIS_PREV_HASH;

pub(crate) fn verify(trees: &Trees, head: u64) -> Result<VerifyReport, StoreError> {
    let mut head_hash = GENESIS_PREV_HASH.to_owned();
    let mut events = 0;
    let mut chain_break = None;
    if head > 0 {
        let walk = reads::each_stored(trees, 1, head, |seq, stored| {
            let envelope = check_event(trees, seq, stored, &head_hash)?;
            head_hash = envelope.hash;
            events += 1;
            Ok(())
        });
        match walk {
            Ok(()) => {}
            Err(StoreError::Corrupt { seq, reason }) => {
                chain_break = Some(VerifyBreak { seq, reason });
            }
            Err(other) => return Err(other),
        }
    }
    let index_break = verify_records(trees, head)?;
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

/// Every stream record reads, and together they place exactly `head` durable events (the chain
/// walk checked that each event is placed at its dispute and version, so more means one places an
/// event that is not its dispute's).
fn verify_records(trees: &Trees, head: u64) -> Result<Option<VerifyBreak>, StoreError> {
    let mut count = 0u64;
    for entry in trees.disputes.iter() {
        let (key, value) = entry?;
        let record = match StreamRecord::decode(&value) {
            Ok(record) => record,
            Err(reason) => {
                let dispute_id = String::from_utf8_lossy(&key);
                let reason = format!("the stream record of {dispute_id:?}: {reason}");
                return Ok(Some(VerifyBreak { seq: 0, reason }));
            }
        };
        count += durable_events(&record, head);
    }
    if count != head {
        return find_stray_entry(trees, head, count);
    }
    Ok(None)
}

/// Events of `record` at or below `head` (those above were appended after the walk began).
fn durable_events(record: &StreamRecord, head: u64) -> u64 {
    record
        .appends
        .iter()
        .filter(|&&(first, count)| first + u64::from(count) - 1 <= head)
        .map(|&(_, count)| u64::from(count))
        .sum()
}

/// More events placed than stored: find the append a record places where its dispute's is not.
fn find_stray_entry(
    trees: &Trees,
    head: u64,
    count: u64,
) -> Result<Option<VerifyBreak>, StoreError> {
    for entry in trees.disputes.iter() {
        let (key, value) = entry?;
        let dispute_id = String::from_utf8_lossy(&key).into_owned();
        let Ok(record) = StreamRecord::decode(&value) else {
            continue;
        };
        let mut version = 0u64;
        for &(first, n) in &record.appends {
            if first + u64::from(n) - 1 > head {
                break;
            }
            let stray = |seq| {
                let reason =
                    format!("the stream record of {dispute_id:?} places {seq}, another event");
                Ok(Some(VerifyBreak { seq, reason }))
            };
            let Some(bytes) = trees.events.get(seq_key(first))? else {
                return stray(first);
            };
            let Ok(stored) = decode_events(&bytes) else {
                return stray(first);
            };
            if stored.len() != n as usize {
                return stray(first);
            }
            for (seq, one) in (first..).zip(stored) {
                version += 1;
                match decode_stored(seq, one) {
                    Ok(e) if e.dispute_id == dispute_id && e.version == version => {}
                    _ => return stray(seq),
                }
            }
        }
    }
    let reason = format!("the stream records place {count} events for {head} stored");
    Ok(Some(VerifyBreak { seq: head, reason }))
}
