//! The on-disk layout: sled trees, their keys and values (see `docs/store.md`). Nothing outside
//! this crate reads it: auditors read a data dir through [`crate::LogReader`].

// Public only with the `testing` feature (tests that damage a store); private otherwise.
#![cfg_attr(not(feature = "testing"), allow(unreachable_pub))]

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;
use crate::limits::EVENTS_PER_APPEND_MAX;

/// `seq_key(seq)` → [`EVENT_SCHEMA_V1`] ‖ the envelope as canonical JSON (its `hash` included).
pub const EVENTS_TREE: &str = "events";
/// `stream_key(dispute_id, version)` → `seq_key(seq)`.
pub const STREAMS_TREE: &str = "streams";
/// dispute id → its latest version, 8 bytes big-endian.
pub const VERSIONS_TREE: &str = "versions";
/// command id → [`COMMAND_SCHEMA_V1`] ‖ JSON `{"fingerprint","meta","dispute_id","first_seq","count"}`.
pub const COMMANDS_TREE: &str = "commands";
/// order id → the dispute id that reserved it.
pub const ORDERS_TREE: &str = "orders";
/// [`FORMAT_KEY`], [`HEAD_KEY`], [`LAST_HASH_KEY`].
pub const META_TREE: &str = "meta";

/// `meta` key: [`FORMAT`], written once when the store is created.
pub const FORMAT_KEY: &[u8] = b"format";
/// The store's format marker.
pub const FORMAT: &[u8] = b"disputes-store/1";
/// `meta` key: the last appended seq, 8 bytes big-endian (absent: empty store).
pub const HEAD_KEY: &[u8] = b"head";
/// `meta` key: the `hash` of the event at the head, 64 ASCII hex digits.
pub const LAST_HASH_KEY: &[u8] = b"last_hash";

/// First byte of a stored envelope: the form that follows. A new form gets a new byte and an upcaster.
pub const EVENT_SCHEMA_V1: u8 = 1;
/// First byte of a stored command record.
pub const COMMAND_SCHEMA_V1: u8 = 1;

/// Key of the event at `seq`: big-endian, so sled's key order is seq order.
pub fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Prefix of one dispute's stream keys: its length (one byte) then its bytes, so that no dispute
/// id's prefix is another's. `dispute_id` is at most [`crate::limits::ID_BYTES_MAX`] bytes.
pub fn stream_prefix(dispute_id: &str) -> Vec<u8> {
    let len = u8::try_from(dispute_id.len()).expect("ids are at most 255 bytes");
    let mut key = Vec::with_capacity(dispute_id.len() + 9);
    key.push(len);
    key.extend_from_slice(dispute_id.as_bytes());
    key
}

/// Key of a dispute's event at `version`.
pub fn stream_key(dispute_id: &str, version: u64) -> Vec<u8> {
    let mut key = stream_prefix(dispute_id);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// `(dispute_id, version)` of a stream key, if it is one.
pub fn parse_stream_key(key: &[u8]) -> Option<(String, u64)> {
    let (&len, rest) = key.split_first()?;
    let len = usize::from(len);
    if rest.len() != len + 8 {
        return None;
    }
    let dispute_id = std::str::from_utf8(&rest[..len]).ok()?.to_owned();
    Some((dispute_id, decode_u64(&rest[len..])?))
}

/// An 8-byte big-endian u64.
pub fn decode_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// What the store keeps of an accepted command: enough to answer a repeat with the first outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommandRow {
    pub fingerprint: String,
    pub meta: Value,
    pub dispute_id: String,
    /// The command's events are `first_seq .. first_seq + count` (one append is contiguous).
    pub first_seq: u64,
    pub count: u64,
}

impl CommandRow {
    /// The record of `command_id` this row holds, and where its events are.
    pub(crate) fn place(self, command_id: &str) -> crate::api::CommandPlace {
        crate::api::CommandPlace {
            first_seq: self.first_seq,
            count: self.count,
            record: crate::api::CommandRecord {
                command_id: command_id.to_owned(),
                fingerprint: self.fingerprint,
                meta: self.meta,
            },
        }
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.first_seq + self.count - 1
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        assert!(
            self.first_seq >= 1 && self.count >= 1,
            "a recorded command appended events"
        );
        let mut bytes = vec![COMMAND_SCHEMA_V1];
        serde_json::to_writer(&mut bytes, self).expect("a command row serializes");
        bytes
    }

    pub(crate) fn decode(command_id: &str, bytes: &[u8]) -> Result<CommandRow, StoreError> {
        let corrupt =
            |reason: String| StoreError::corrupt(0, format!("command {command_id:?}: {reason}"));
        let (&schema, json) = bytes
            .split_first()
            .ok_or_else(|| corrupt("empty record".into()))?;
        if schema != COMMAND_SCHEMA_V1 {
            return Err(corrupt(format!("unknown record schema version {schema}")));
        }
        let row: CommandRow = serde_json::from_slice(json).map_err(|e| corrupt(format!("{e}")))?;
        let count_ok = (1..=EVENTS_PER_APPEND_MAX as u64).contains(&row.count);
        if row.first_seq == 0 || !count_ok || row.first_seq.checked_add(row.count).is_none() {
            return Err(corrupt(format!(
                "bad seq range {}+{}",
                row.first_seq, row.count
            )));
        }
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_of_one_dispute_never_prefix_another() {
        assert!(!stream_key("d-10", 1).starts_with(&stream_prefix("d-1")));
        assert_eq!(
            parse_stream_key(&stream_key("d-1", 7)),
            Some(("d-1".to_owned(), 7))
        );
        assert!(stream_key("d", 2) > stream_key("d", 1));
    }

    #[test]
    fn command_rows_round_trip() {
        let row = CommandRow {
            fingerprint: "f".into(),
            meta: serde_json::json!({"status": "x"}),
            dispute_id: "d".into(),
            first_seq: 3,
            count: 2,
        };
        assert_eq!(CommandRow::decode("c", &row.encode()).unwrap(), row);
        assert_eq!(row.last_seq(), 4);
        assert!(CommandRow::decode("c", &[9, b'{', b'}']).is_err());
    }
}
