//! [`EventFeed`]: where the read side takes its events from.

use disputes_store::{Envelope, EventStore, StoreError};
use tokio::sync::watch;

/// The committed event log, in seq order: what the read models are folded from. The sled log
/// feeds it today (every [`EventStore`] is a feed); another backend (a JetStream consumer) can
/// tomorrow, without the read side knowing.
pub trait EventFeed: Send + Sync {
    /// Committed events with `seq >= from_seq`, in seq order, gap-free, at most `limit`.
    fn read_from(&self, from_seq: u64, limit: usize) -> Result<Vec<Envelope>, StoreError>;
    /// The last committed seq (0: none).
    fn head(&self) -> u64;
    /// The head, updated on every commit: wait on it instead of polling.
    fn subscribe(&self) -> watch::Receiver<u64>;
}

impl<S: EventStore + ?Sized> EventFeed for S {
    fn read_from(&self, from_seq: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        EventStore::read_from(self, from_seq, limit)
    }

    fn head(&self) -> u64 {
        EventStore::head(self)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        EventStore::subscribe(self)
    }
}
