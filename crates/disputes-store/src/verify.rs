//! `verify`: the whole log, every hash, every link, seq continuity and the stream records.

use crate::api::{VerifyBreak, VerifyReport};
use crate::error::StoreError;
use crate::layout::StreamRecord;
use crate::reads;
use crate::recovery::check_event;
use crate::sled_store::Trees;
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
        count += record.durable(head).map(|(_, n)| u64::from(n)).sum::<u64>();
    }
    if count != head {
        return find_stray_entry(trees, head, count);
    }
    Ok(None)
}

/// More events placed than stored: the first append a record places where its dispute's events
/// are not (reading each record's stream as a command would).
fn find_stray_entry(
    trees: &Trees,
    head: u64,
    count: u64,
) -> Result<Option<VerifyBreak>, StoreError> {
    for entry in trees.disputes.iter() {
        let (key, _) = entry?;
        let dispute_id = String::from_utf8_lossy(&key);
        match reads::read_stream(trees, &dispute_id, head) {
            Ok(_) => {}
            Err(StoreError::Corrupt { seq, reason }) => {
                let reason = format!("the stream record of {dispute_id:?}: {reason}");
                return Ok(Some(VerifyBreak { seq, reason }));
            }
            Err(other) => return Err(other),
        }
    }
    let reason = format!("the stream records place {count} events for {head} stored");
    Ok(Some(VerifyBreak { seq: head, reason }))
}
