//! The `Disputes-Append` header: what the first message of each append carries besides its
//! envelope (its command record and order reservation, and how many events the append holds).

use disputes_store::{CommandRecord, StoreError};
use serde::{Deserialize, Serialize};

/// The header on the first event of each append.
pub const APPEND_HEADER: &str = "Disputes-Append";

/// The `Disputes-Append` value for an append of `count` events (for a publisher of another log
/// that writes the same header, so the stream alone can rebuild that log).
pub fn append_header(
    count: usize,
    command: Option<&CommandRecord>,
    reserve_order: Option<&String>,
) -> String {
    AppendHeader::new(count, command, reserve_order).encode()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppendHeader {
    /// The append's events, this one included (1..=64).
    pub count: usize,
    pub command: Option<Command>,
    pub reserve_order: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Command {
    pub command_id: String,
    pub fingerprint: String,
    pub meta: serde_json::Value,
}

impl AppendHeader {
    pub(crate) fn new(
        count: usize,
        command: Option<&CommandRecord>,
        reserve_order: Option<&String>,
    ) -> AppendHeader {
        AppendHeader {
            count,
            command: command.map(|c| Command {
                command_id: c.command_id.clone(),
                fingerprint: c.fingerprint.clone(),
                meta: c.meta.clone(),
            }),
            reserve_order: reserve_order.cloned(),
        }
    }

    /// One line of JSON (a header value holds no line break: serde_json escapes them).
    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).expect("a header serializes")
    }

    pub(crate) fn decode(seq: u64, text: &str) -> Result<AppendHeader, StoreError> {
        let header: AppendHeader = serde_json::from_str(text)
            .map_err(|e| StoreError::corrupt(seq, format!("{APPEND_HEADER} unreadable: {e}")))?;
        if !(1..=disputes_store::limits::EVENTS_PER_APPEND_MAX).contains(&header.count) {
            let reason = format!("{APPEND_HEADER} counts {} events", header.count);
            return Err(StoreError::corrupt(seq, reason));
        }
        Ok(header)
    }

    pub(crate) fn record(&self) -> Option<CommandRecord> {
        self.command.as_ref().map(|c| CommandRecord {
            command_id: c.command_id.clone(),
            fingerprint: c.fingerprint.clone(),
            meta: c.meta.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_on_one_line() {
        let record = CommandRecord {
            command_id: "c-1".into(),
            fingerprint: "fp".into(),
            meta: serde_json::json!({"text": "two\nlines"}),
        };
        let header = AppendHeader::new(3, Some(&record), Some(&"o-1".to_owned()));
        let text = header.encode();
        assert!(!text.contains('\n') && !text.contains('\r'), "{text}");
        assert_eq!(AppendHeader::decode(1, &text).unwrap(), header);
        assert_eq!(header.record(), Some(record));
    }

    #[test]
    fn a_header_counting_no_events_or_with_unknown_fields_is_corrupt() {
        assert!(
            AppendHeader::decode(7, r#"{"count":0,"command":null,"reserve_order":null}"#).is_err()
        );
        let extra = r#"{"count":1,"command":null,"reserve_order":null,"x":1}"#;
        assert!(AppendHeader::decode(7, extra).is_err());
    }
}
