//! The envelope, its canonical bytes, its hash, and its stored form.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canonical;
use crate::error::StoreError;
use crate::layout::EVENT_SCHEMA_V1;

/// `prev_hash` of the event at seq 1: 64 ASCII zeros.
pub const GENESIS_PREV_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// Who caused an event: `{"role", "id"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ActorRef {
    pub role: String,
    pub id: String,
}

/// An event as the command side hands it to [`crate::EventStore::append`]; the store adds the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: String,
    pub data: Value,
    pub occurred_at: DateTime<Utc>,
    pub actor: ActorRef,
    pub command_id: Option<String>,
}

/// A stored event, exactly the envelope of `protocol.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub event_id: String,
    pub seq: u64,
    pub dispute_id: String,
    pub version: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(with = "rfc3339")]
    pub occurred_at: DateTime<Utc>,
    pub command_id: Option<String>,
    pub actor: ActorRef,
    pub data: Value,
    pub prev_hash: String,
    pub hash: String,
}

mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_time(at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(D::Error::custom)
    }
}

/// The envelope's time format: RFC 3339 in UTC with `Z`, fractional seconds only when present.
pub(crate) fn format_time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The canonical bytes of an envelope: the envelope without `hash`, as JSON with the keys of every
/// object sorted by code point and no whitespace. This is what [`compute_hash`] hashes.
pub fn canonical_bytes(envelope: &Envelope) -> Vec<u8> {
    write_canonical(envelope, &canonical::to_vec(&envelope.data), Hash::Without)
}

/// `hash` of an envelope: lowercase hex SHA-256 of `prev_hash` (its 64 ASCII characters) followed
/// by the envelope's [`canonical_bytes`]. `envelope.hash` itself is ignored.
pub fn compute_hash(prev_hash: &str, envelope: &Envelope) -> String {
    hash_with_data(prev_hash, envelope, &canonical::to_vec(&envelope.data))
}

/// [`compute_hash`] with `envelope.data` already in canonical form.
pub(crate) fn hash_with_data(prev_hash: &str, envelope: &Envelope, data: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(write_canonical(envelope, data, Hash::Without));
    hex(&hasher.finalize())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Hash {
    With,
    Without,
}

/// The envelope as canonical JSON, written field by field in sorted key order, with `data` given
/// in canonical form. Destructures without `..`: a new field will not compile until written here.
fn write_canonical(envelope: &Envelope, data: &[u8], hash_field: Hash) -> Vec<u8> {
    let Envelope {
        event_id,
        seq,
        dispute_id,
        version,
        event_type,
        occurred_at,
        command_id,
        actor: ActorRef { role, id },
        data: _,
        prev_hash,
        hash,
    } = envelope;
    let mut out = Vec::with_capacity(data.len() + 512);
    let text = |out: &mut Vec<u8>, key: &[u8], value: &str| {
        out.extend_from_slice(key);
        serde_json::to_writer(&mut *out, value).expect("writing a string into a Vec cannot fail");
    };
    text(&mut out, b"{\"actor\":{\"id\":", id);
    text(&mut out, b",\"role\":", role);
    match command_id {
        Some(command_id) => text(&mut out, b"},\"command_id\":", command_id),
        None => out.extend_from_slice(b"},\"command_id\":null"),
    }
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(data);
    text(&mut out, b",\"dispute_id\":", dispute_id);
    text(&mut out, b",\"event_id\":", event_id);
    if hash_field == Hash::With {
        text(&mut out, b",\"hash\":", hash);
    }
    text(&mut out, b",\"occurred_at\":", &format_time(occurred_at));
    text(&mut out, b",\"prev_hash\":", prev_hash);
    out.extend_from_slice(format!(",\"seq\":{seq}").as_bytes());
    text(&mut out, b",\"type\":", event_type);
    out.extend_from_slice(format!(",\"version\":{version}}}").as_bytes());
    out
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    text
}

/// Whether `text` is a hash as the store writes them: 64 lowercase hex digits.
pub(crate) fn is_hash(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The stored form: the schema byte, then the whole envelope (hash included) as canonical JSON;
/// `data` is `envelope.data` in canonical form.
pub(crate) fn encode_stored(envelope: &Envelope, data: &[u8]) -> Vec<u8> {
    let json = write_canonical(envelope, data, Hash::With);
    let mut bytes = Vec::with_capacity(json.len() + 1);
    bytes.push(EVENT_SCHEMA_V1);
    bytes.extend_from_slice(&json);
    bytes
}

/// Reads a stored envelope back, checking right after the disk read that it is the event at `seq`
/// and that its bytes are exactly the canonical form (so no byte can change unnoticed, even one
/// that deserialization would drop).
pub(crate) fn decode_stored(seq: u64, bytes: &[u8]) -> Result<Envelope, StoreError> {
    let (&schema, json) = bytes
        .split_first()
        .ok_or_else(|| StoreError::corrupt(seq, "empty value"))?;
    let envelope = match schema {
        EVENT_SCHEMA_V1 => decode_v1(seq, json)?,
        other => {
            return Err(StoreError::corrupt(
                seq,
                format!("unknown event schema version {other}"),
            ))
        }
    };
    if envelope.seq != seq {
        return Err(StoreError::corrupt(
            seq,
            format!("stored under seq {seq} but says seq {}", envelope.seq),
        ));
    }
    Ok(envelope)
}

fn decode_v1(seq: u64, json: &[u8]) -> Result<Envelope, StoreError> {
    let envelope: Envelope = serde_json::from_slice(json)
        .map_err(|e| StoreError::corrupt(seq, format!("envelope does not parse: {e}")))?;
    if write_canonical(&envelope, &canonical::to_vec(&envelope.data), Hash::With) != json {
        return Err(StoreError::corrupt(
            seq,
            "stored bytes are not the envelope's canonical form",
        ));
    }
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Envelope {
        Envelope {
            event_id: "e-1".into(),
            seq: 1,
            dispute_id: "d-1".into(),
            version: 1,
            event_type: "DisputeOpened".into(),
            occurred_at: "2026-11-27T08:00:00Z".parse().unwrap(),
            command_id: None,
            actor: ActorRef {
                role: "buyer".into(),
                id: "b-1".into(),
            },
            data: json!({"b": [1, {"d": 2, "c": 3}], "a": "x"}),
            prev_hash: GENESIS_PREV_HASH.into(),
            hash: String::new(),
        }
    }

    fn stored(envelope: &Envelope) -> Vec<u8> {
        encode_stored(envelope, &canonical::to_vec(&envelope.data))
    }

    /// The slow, obviously right way: through serde_json's Value and the generic canonical writer.
    fn generic(envelope: &Envelope, with_hash: bool) -> Vec<u8> {
        let mut value = serde_json::to_value(envelope).unwrap();
        if !with_hash {
            value.as_object_mut().unwrap().remove("hash");
        }
        canonical::to_vec(&value)
    }

    #[test]
    fn field_by_field_writer_is_the_generic_canonical_form() {
        let mut envelope = sample();
        envelope.hash = compute_hash(GENESIS_PREV_HASH, &envelope);
        let data = canonical::to_vec(&envelope.data);
        assert_eq!(
            write_canonical(&envelope, &data, Hash::Without),
            generic(&envelope, false)
        );
        assert_eq!(
            write_canonical(&envelope, &data, Hash::With),
            generic(&envelope, true)
        );
        envelope.command_id = Some("c-\"quoted\" ü \u{7}".into());
        envelope.occurred_at = "2026-11-27T08:00:00.123456Z".parse().unwrap();
        envelope.actor.id = "\u{2028}".into();
        let data = canonical::to_vec(&envelope.data);
        assert_eq!(
            write_canonical(&envelope, &data, Hash::With),
            generic(&envelope, true)
        );
        assert_eq!(canonical_bytes(&envelope), generic(&envelope, false));
    }

    #[test]
    fn stored_form_round_trips() {
        let mut envelope = sample();
        envelope.hash = compute_hash(GENESIS_PREV_HASH, &envelope);
        let bytes = stored(&envelope);
        assert_eq!(bytes[0], EVENT_SCHEMA_V1);
        assert_eq!(decode_stored(1, &bytes).unwrap(), envelope);
    }

    #[test]
    fn unknown_schema_and_wrong_seq_are_corrupt() {
        let mut bytes = stored(&sample());
        assert!(matches!(
            decode_stored(2, &bytes),
            Err(StoreError::Corrupt { seq: 2, .. })
        ));
        bytes[0] = 9;
        assert!(matches!(
            decode_stored(1, &bytes),
            Err(StoreError::Corrupt { seq: 1, .. })
        ));
    }

    #[test]
    fn non_canonical_bytes_are_corrupt() {
        let mut bytes = vec![EVENT_SCHEMA_V1];
        bytes.extend(serde_json::to_vec_pretty(&sample()).unwrap());
        assert!(matches!(
            decode_stored(1, &bytes),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert!(is_hash(GENESIS_PREV_HASH));
        assert!(!is_hash(&"A".repeat(64)));
    }
}
