//! What can go wrong talking to the service, typed: a refusal with its contract code, or a
//! transport, contract or verification failure.

use disputes_domain::ErrorCode;

/// An error of [`crate::Client`] or [`crate::EventStream`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The service refused: `{"ok": false, "error": {"code", "message"}}`. Nothing was appended.
    #[error("refused, {code}: {message}")]
    Refused { code: ErrorCode, message: String },
    /// No reply within the timeout, on every attempt. A command may still have been applied:
    /// send the same [`crate::Outgoing`] again (same `command_id`) to learn its outcome.
    #[error("no reply from {subject} after {attempts} attempts")]
    TimedOut { subject: String, attempts: u32 },
    /// Nobody serves the subject (the service is down), on every attempt.
    #[error("no service answers on {subject} (tried {attempts} times)")]
    NoResponders { subject: String, attempts: u32 },
    /// The NATS connection or JetStream failed.
    #[error("NATS: {0}")]
    Nats(String),
    /// The service answered something that is not the contract (`docs/protocol.md`).
    #[error("not the contract: {0}")]
    Protocol(String),
    /// An event does not verify: its hash, its link to the event before it, or its order (events
    /// missing). The history was changed or lost: alert, do not skip it.
    #[error("event seq {seq} does not verify: {reason}")]
    Verification { seq: u64, reason: String },
    /// A message this build cannot read: not an envelope, or an event of a type or revision it
    /// does not know (a newer service: upgrade the reader).
    #[error("event {} unreadable: {reason}", seq.map_or("?".to_owned(), |s| format!("seq {s}")))]
    Unreadable { seq: Option<u64>, reason: String },
}

impl Error {
    /// The contract's code, for a refusal.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether sending the same request again may succeed: `unavailable`, a timeout, no responders.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Refused {
                code: ErrorCode::Unavailable,
                ..
            } | Error::TimedOut { .. }
                | Error::NoResponders { .. }
        )
    }

    pub(crate) fn nats(error: impl std::fmt::Display) -> Error {
        Error::Nats(error.to_string())
    }
}
