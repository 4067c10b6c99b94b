//! The disputes event store: an append-only, gap-free, hash-chained, durable log of event envelopes.
//!
//! The store is domain-agnostic: it knows envelopes, streams (one per dispute id), command ids and
//! order reservations, never the dispute rules. [`EventStore`] is the contract the command side,
//! the publisher and the projections code against; [`SledStore`] is its embedded implementation.
//!
//! Everything about the on-disk form, the append algorithm, the durability guarantee and recovery
//! is written down in `docs/store.md`.

mod api;
mod append_tx;
#[cfg(feature = "bench")]
pub mod bench;
mod disk;
mod error;
#[cfg(feature = "testing")]
pub mod layout;
#[cfg(not(feature = "testing"))]
mod layout;
pub mod limits;
mod log_reader;
mod migrate;
mod reads;
mod recovery;
mod sled_open;
mod sled_store;
mod stored;
mod validate;
mod verify;
mod writer;

pub use api::{
    AppendOutcome, AppendRequest, CommandOutcome, CommandPlace, CommandRecord, Durability,
    EventStore, PendingAppend, SealedAppend, StoreOptions, VerifyBreak, VerifyReport,
};
// The envelope, its canonical bytes and the chain check live in `disputes-envelope` (pure, shared
// with the client crate); re-exported so the store's users see one API.
pub use disputes_envelope::{
    canonical_bytes, canonical_bytes_with_hash, canonical_json, compute_hash, parse_envelope,
    ActorRef, Chain, Draft, Envelope, NewEvent, GENESIS_PREV_HASH,
};
pub use error::StoreError;
pub use log_reader::{Entry, LogReader, Unreadable};
pub use sled_open::open_sled;
pub use sled_store::{SledStore, StoreStats};
pub use validate::{check_stream_version, draft_events};
