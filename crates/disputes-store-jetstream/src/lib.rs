//! The event log on a NATS JetStream stream: the cluster backend of the `EventStore` contract.
//!
//! The log is the events stream itself (`DISPUTE_EVENTS`, subjects `<prefix>.evt.<dispute>.<type>`,
//! `Nats-Msg-Id` the event id), with file storage, the configured replicas, deny-delete and
//! deny-purge; an event's `seq` is its stream sequence, and the global hash chain runs in that order,
//! exactly as in the sled mode. One sequencer writes it at a time: it judges each append against its
//! copy of the log (idempotency, version, order), seals the events (seq, version, hashes) and writes
//! the appends of a group commit as one JetStream atomic batch whose first message names the last
//! sequence it expects (`Nats-Expected-Last-Sequence`). So a second writer, or a retry of a batch
//! whose ack was lost, cannot append: its batch fails, and the sequencer reads the stream again.
//!
//! Each instance keeps a follower copy of the log in a local sled store (the *replica*), fed from
//! the stream by an ordered consumer and checked event by event on the way in (chain, seq, version,
//! command ids, orders: `SledStore::import`). Reads are answered from it; it is derived, and
//! rebuilt from the stream when deleted. The first event of each append carries the append's
//! command record and order reservation in the `Disputes-Append` header, so the copy (and any
//! other instance's) answers a repeated command id from its first reply forever, not only inside
//! JetStream's duplicate window. See `docs/cluster.md`.

mod batch;
mod follower;
mod header;
mod import;
mod log_stream;
mod sequencer;
mod store;
mod view;

pub use header::{append_header, APPEND_HEADER};
pub use import::{write_appends, AppendReader};
pub use log_stream::{ensure_log_stream, LogConfig, LogStreamError};
pub use store::{HeadersFor, JetStreamStore, LogStats, OpenError};
