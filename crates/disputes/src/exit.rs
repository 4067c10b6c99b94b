//! The process's exit codes, one meaning each (docs/operations.md, "Exit codes"), so that a
//! supervisor or a script can tell a typo from a tamper alert.

/// Stopped cleanly, or the command did what it was asked.
pub const OK: u8 = 0;
/// Could not start, or failed: the message says why.
pub const ERROR: u8 = 1;
/// The command line could not be parsed (clap's own code).
pub const USAGE: u8 = 2;
/// Another instance took the writer lease while this one ran: it stopped at once.
pub const LEASE_TAKEN: u8 = 3;
/// The storage failed and the data dir takes writes again: start the service afresh.
pub const STORAGE_FAILED: u8 = 4;
/// `disputes audit verify` found the history broken, or `disputes store import` refused it.
pub const HISTORY_BROKEN: u8 = 5;
