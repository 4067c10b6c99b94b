//! Every input and every queue of the store is bounded by one of these.

/// Bytes in any id: dispute, command, order, event type, actor role and id, checkpoint name.
pub const ID_BYTES_MAX: usize = 128;
/// Bytes in a command fingerprint.
pub const FINGERPRINT_BYTES_MAX: usize = 256;
/// Events in one append.
pub const EVENTS_PER_APPEND_MAX: usize = 64;
/// Canonical JSON bytes of one event's `data`.
pub const DATA_BYTES_MAX: usize = 128 * 1024;
/// Nesting depth of one event's `data` (and of a command's `meta`).
pub const DATA_DEPTH_MAX: usize = 32;
/// Canonical JSON bytes of a command's `meta`.
pub const COMMAND_META_BYTES_MAX: usize = 64 * 1024;
/// Stored bytes of one envelope (its schema byte included).
pub const ENVELOPE_BYTES_MAX: usize = 192 * 1024;
/// Events in one dispute's stream.
pub const STREAM_EVENTS_MAX: u64 = 65_536;
/// Envelopes returned by one `read_from`, whatever `limit` asks.
pub const READ_FROM_EVENTS_MAX: usize = 10_000;
/// Default: events checked at start-up, from the head down.
pub const RECOVERY_TAIL_EVENTS_DEFAULT: u64 = 1_000;
/// Default: append requests waiting for the writer (callers block beyond it).
pub const APPEND_QUEUE_DEFAULT: usize = 1_024;
/// Default: append requests in one group commit (one flush + fdatasync).
pub const GROUP_COMMIT_DEFAULT: usize = 256;
/// Upper bound for both of the above, whatever the options say.
pub const QUEUE_MAX: usize = 65_536;
/// sled's page cache of the event log by default (`[store] cache_mb`).
pub const CACHE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
