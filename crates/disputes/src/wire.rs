//! Replies on the wire (`docs/protocol.md`), and the one map from what went wrong to its code:
//! every error a reply can carry implements [`WireError`]; [`refusal_json`] writes
//! `{"ok": false, "error": {"code", "message"}}`, [`command_reply_json`] a command's reply.
//!
//! A storage failure is `unavailable` (retry later); what is the caller's fault never is.

use disputes_command::tokens::TokenError;
use disputes_command::{Rejection, Reply};
use disputes_domain::{ErrorCode, Refusal};
use disputes_readside::{ProjectionError, QueryError};
use disputes_store::StoreError;
use serde_json::{json, Value};

/// An error with its code of `docs/protocol.md`, "Error codes".
pub(crate) trait WireError: std::fmt::Display {
    fn code(&self) -> ErrorCode;

    /// For people; the code is what clients branch on.
    fn message(&self) -> String {
        self.to_string()
    }
}

impl WireError for Refusal {
    fn code(&self) -> ErrorCode {
        Refusal::code(self)
    }

    fn message(&self) -> String {
        Refusal::message(self).to_owned()
    }
}

impl WireError for StoreError {
    fn code(&self) -> ErrorCode {
        match self {
            StoreError::VersionConflict { .. } => ErrorCode::VersionConflict,
            StoreError::OrderTaken { .. } => ErrorCode::AlreadyExists,
            // A limit or rule of the store's own that the request broke: the caller's fault.
            StoreError::Invalid(_) => ErrorCode::InvalidRequest,
            StoreError::Unavailable(_) | StoreError::Corrupt { .. } => ErrorCode::Unavailable,
        }
    }

    fn message(&self) -> String {
        match self.code() {
            ErrorCode::Unavailable => format!("the store cannot take this now: {self}"),
            _ => self.to_string(),
        }
    }
}

impl WireError for TokenError {
    fn code(&self) -> ErrorCode {
        match self {
            TokenError::Unavailable(_) => ErrorCode::Unavailable,
            _ => ErrorCode::Forbidden,
        }
    }
}

impl WireError for ProjectionError {
    fn code(&self) -> ErrorCode {
        ErrorCode::Unavailable
    }

    fn message(&self) -> String {
        format!("the read models cannot answer now: {self}")
    }
}

impl WireError for Rejection {
    fn code(&self) -> ErrorCode {
        match self {
            Rejection::Refused(refusal) => WireError::code(refusal),
            Rejection::Store(error) => error.code(),
            Rejection::Token(error) => error.code(),
        }
    }

    fn message(&self) -> String {
        match self {
            Rejection::Refused(refusal) => WireError::message(refusal),
            Rejection::Store(error) => error.message(),
            Rejection::Token(error) => error.message(),
        }
    }
}

impl WireError for QueryError {
    fn code(&self) -> ErrorCode {
        match self {
            QueryError::Refused(refusal) => WireError::code(refusal),
            QueryError::Projections(error) => error.code(),
            QueryError::Store(error) => error.code(),
        }
    }

    fn message(&self) -> String {
        match self {
            QueryError::Refused(refusal) => WireError::message(refusal),
            QueryError::Projections(error) => error.message(),
            QueryError::Store(error) => error.message(),
        }
    }
}

/// `{"ok": false, "error": {"code": …, "message": …}}`.
pub(crate) fn refusal_json(error: &(impl WireError + ?Sized)) -> Value {
    json!({"ok": false, "error": {"code": error.code().as_str(), "message": error.message()}})
}

/// A command's reply: `{"ok": true, "dispute_id", "version", "seq", "status", "events",
/// "replayed"?}`, or a refusal.
pub(crate) fn command_reply_json(reply: &Reply) -> Value {
    match reply {
        Reply::Accepted(a) => {
            let mut reply = json!({
                "ok": true,
                "dispute_id": a.dispute_id,
                "version": a.version,
                "seq": a.seq,
                "status": a.status,
                "events": a.events,
            });
            if a.replayed {
                reply["replayed"] = Value::Bool(true);
            }
            reply
        }
        Reply::Refused(rejection) => refusal_json(rejection),
    }
}

/// The code a command's reply carries, or `"ok"`: the metrics' label.
pub(crate) fn reply_code(reply: &Reply) -> &'static str {
    match reply {
        Reply::Accepted(_) => "ok",
        Reply::Refused(rejection) => rejection.code().as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_error_that_is_the_callers_fault_is_never_unavailable() {
        let invalid = StoreError::Invalid("an empty command id".into());
        assert_eq!(invalid.code(), ErrorCode::InvalidRequest);
        let conflict = StoreError::VersionConflict {
            expected: 1,
            actual: 2,
        };
        assert_eq!(conflict.code(), ErrorCode::VersionConflict);
        let taken = StoreError::OrderTaken {
            order_id: "o-1".into(),
            dispute_id: "d-1".into(),
        };
        assert_eq!(taken.code(), ErrorCode::AlreadyExists);
        let gone = StoreError::Unavailable("disk full".into());
        assert_eq!(gone.code(), ErrorCode::Unavailable);
        let json = refusal_json(&Rejection::Store(gone));
        assert_eq!(json["error"]["code"], "unavailable");
    }

    #[test]
    fn a_token_is_forbidden_unless_its_nonces_cannot_be_checked() {
        assert_eq!(TokenError::Missing.code(), ErrorCode::Forbidden);
        assert_eq!(TokenError::Replayed.code(), ErrorCode::Forbidden);
        let down = TokenError::Unavailable("sled".into());
        assert_eq!(down.code(), ErrorCode::Unavailable);
    }
}
