//! The refusal a command gets, with the wire codes of protocol.md.

use crate::macros::wire_enum;

wire_enum! {
    /// The `error.code` of a refused reply (protocol.md, "Reply, refused").
    pub enum ErrorCode {
        InvalidRequest = "invalid_request",
        InvalidValue = "invalid_value",
        UnknownCommand = "unknown_command",
        NotFound = "not_found",
        AlreadyExists = "already_exists",
        Forbidden = "forbidden",
        InvalidState = "invalid_state",
        DeadlinePassed = "deadline_passed",
        VersionConflict = "version_conflict",
        Unavailable = "unavailable",
        /// Queries only: a `min_seq` the read models did not reach in time.
        Timeout = "timeout",
    }
}

/// Why a command was refused: a wire code and a message for a human.
/// A refused command appends nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Refusal {
    code: ErrorCode,
    message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn invalid_request(message: impl Into<String>) -> Refusal {
        Refusal::new(ErrorCode::InvalidRequest, message)
    }

    pub(crate) fn invalid_value(message: impl Into<String>) -> Refusal {
        Refusal::new(ErrorCode::InvalidValue, message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Refusal {
        Refusal::new(ErrorCode::Forbidden, message)
    }
}
