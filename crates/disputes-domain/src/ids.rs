//! Id newtypes: every id matches `^[A-Za-z0-9_-]{1,64}$`, so it is safe as a NATS subject token.

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::Refusal;

/// The longest id, in bytes (all allowed characters are ASCII).
pub const ID_BYTES_MAX: usize = 64;

/// The pattern every id matches, for messages.
pub const ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

/// Whether `text` matches [`ID_PATTERN`].
pub fn is_valid_id(text: &str) -> bool {
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-';
    (1..=ID_BYTES_MAX).contains(&text.len()) && text.as_bytes().iter().all(allowed)
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Checks `text` against the id pattern (`invalid_value` when it does not match).
            pub fn parse(text: &str) -> Result<$name, Refusal> {
                if is_valid_id(text) {
                    Ok($name(text.to_owned()))
                } else {
                    Err(Refusal::invalid_value(format!(concat!($what, " must match {}"), ID_PATTERN)))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                if is_valid_id(&text) {
                    Ok($name(text))
                } else {
                    Err(serde::de::Error::custom(format!(
                        concat!($what, " {:?} does not match {}"),
                        text, ID_PATTERN
                    )))
                }
            }
        }
    };
}

id_type!(
    /// A dispute's id, chosen by the client that opens it.
    DisputeId,
    "dispute id"
);
id_type!(
    /// The order a dispute is about; one dispute per order, ever.
    OrderId,
    "order id"
);
id_type!(
    /// A buyer, seller, mediator or system actor.
    PartyId,
    "party id"
);
id_type!(
    /// A command's id, unique across the service (idempotency key).
    CommandId,
    "command id"
);
