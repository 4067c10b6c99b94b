//! The event envelope of `docs/protocol.md`: its fields, its canonical bytes, its hash, and the hash
//! chain's check, event by event.
//!
//! Pure (no IO, no storage, no NATS), so the store that writes envelopes, the service and audit tool
//! that read them, and `disputes-client`, which verifies every envelope a consumer receives, share
//! one definition of the bytes an auditor recomputes (`docs/auditing.md`).

mod canonical;
mod chain;
mod envelope;

pub use canonical::{depth as json_depth, has_float as json_has_float, to_vec as canonical_json};
pub use chain::Chain;
pub use envelope::{
    canonical_bytes, canonical_bytes_with_hash, compute_hash, format_time, is_hash, parse_envelope,
    ActorRef, Draft, Envelope, NewEvent, GENESIS_PREV_HASH,
};
