//! The one timestamp format of the wire and the disk: RFC 3339 in UTC, `2026-11-27T08:00:00Z`
//! (fractional seconds only when there are any). Every crate formats time through here.

use chrono::{DateTime, SecondsFormat, Utc};

/// `2026-11-27T08:00:00Z`; sub-second digits (3, 6 or 9) only when non-zero.
pub fn format(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Any RFC 3339 timestamp, converted to UTC; `None` when `text` is not one.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// `#[serde(with = "disputes_domain::time::serde_rfc3339")]` for a `DateTime<Utc>` field.
pub mod serde_rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("{text:?} is not an RFC 3339 timestamp"))
        })
    }

    /// The same for an `Option<DateTime<Utc>>` field (`null` when absent).
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(
            at: &Option<DateTime<Utc>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match at {
                Some(at) => super::serialize(at, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            match Option::<String>::deserialize(deserializer)? {
                None => Ok(None),
                Some(text) => super::super::parse(&text).map(Some).ok_or_else(|| {
                    serde::de::Error::custom(format!("{text:?} is not an RFC 3339 timestamp"))
                }),
            }
        }
    }
}
