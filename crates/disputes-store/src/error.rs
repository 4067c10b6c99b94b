//! The store's one error type.

/// Every way the store can refuse or fail. Refusals (`VersionConflict`, `OrderTaken`, `Invalid`) leave
/// the store unchanged; `Unavailable` and `Corrupt` are storage failures the caller reports as
/// `unavailable` at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// `expected_version` is not the dispute's current (durable or in-flight) version.
    #[error("version conflict: expected version {expected}, the stream is at version {actual}")]
    VersionConflict { expected: u64, actual: u64 },
    /// Another dispute already reserved this order id.
    #[error("order {order_id} is already taken by dispute {dispute_id}")]
    OrderTaken {
        order_id: String,
        dispute_id: String,
    },
    /// The request breaks a limit or a rule of the store's own (an empty id, too many events, a float).
    #[error("invalid append request: {0}")]
    Invalid(String),
    /// An I/O or sled failure, or the store was shut down or failed earlier: retry later or reopen.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// What is on disk breaks the store's invariants at `seq` (0: not tied to one event).
    #[error("store corrupt at seq {seq}: {reason}")]
    Corrupt { seq: u64, reason: String },
}

impl StoreError {
    pub fn corrupt(seq: u64, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            seq,
            reason: reason.into(),
        }
    }

    pub fn invalid(reason: impl Into<String>) -> StoreError {
        StoreError::Invalid(reason.into())
    }

    /// An append or import after the store's writer stopped (the store is being dropped).
    pub fn shut_down() -> StoreError {
        StoreError::Unavailable("the store is shut down".into())
    }
}

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> StoreError {
        match error {
            sled::Error::Corruption { at, .. } => {
                StoreError::corrupt(0, format!("sled reports corruption at {at:?}"))
            }
            other => StoreError::Unavailable(format!("sled: {other}")),
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(error: std::io::Error) -> StoreError {
        StoreError::Unavailable(format!("io: {error}"))
    }
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(error: sled::transaction::TransactionError<StoreError>) -> StoreError {
        match error {
            sled::transaction::TransactionError::Abort(inner) => inner,
            sled::transaction::TransactionError::Storage(storage) => storage.into(),
        }
    }
}
