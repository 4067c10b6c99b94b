//! [`Chain`]: the hash chain's check, event by event. The store's own checks (start-up, `verify`)
//! and `disputes audit verify` use this one, so a future envelope version is checked once.

use crate::envelope::{compute_hash, Envelope, GENESIS_PREV_HASH};

/// Where a chain is, walking it in seq order from seq 1 (or from any seq, given the hash before it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    next_seq: u64,
    prev_hash: String,
}

impl Default for Chain {
    fn default() -> Self {
        Chain::new()
    }
}

impl Chain {
    /// Before seq 1.
    pub fn new() -> Chain {
        Chain::after(0, GENESIS_PREV_HASH.to_owned())
    }

    /// After the event at `seq` whose hash is `hash`.
    pub fn after(seq: u64, hash: String) -> Chain {
        Chain {
            next_seq: seq + 1,
            prev_hash: hash,
        }
    }

    /// The seq the next event must have.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The hash of the last event that checked out (64 zeros before the first).
    pub fn head_hash(&self) -> &str {
        &self.prev_hash
    }

    /// Checks that `e` comes next (its seq, its link to the previous event) and that its hash is
    /// its content's; then moves past it. The reason, when it does not.
    pub fn check(&mut self, e: &Envelope) -> Result<(), String> {
        let expected = self.next_seq;
        if e.seq < expected {
            return Err(format!(
                "seq {} appears again after seq {}: the history holds an event twice",
                e.seq,
                expected - 1
            ));
        }
        if e.seq != expected {
            return Err(format!(
                "seq {} where {expected} was expected: an event is missing or out of order",
                e.seq
            ));
        }
        if e.prev_hash != self.prev_hash {
            return Err(format!(
                "prev_hash {} is not the previous event's hash {}: the chain is broken",
                e.prev_hash, self.prev_hash
            ));
        }
        let hash = compute_hash(&e.prev_hash, e);
        if hash != e.hash {
            return Err(format!(
                "hash {} is not the recomputed {hash}: the event was changed after it was written",
                e.hash
            ));
        }
        self.next_seq = e.seq + 1;
        self.prev_hash = hash;
        Ok(())
    }
}
