//! The envelope, its canonical bytes, its hash, and its stored form.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canonical;

/// `prev_hash` of the event at seq 1: 64 ASCII zeros.
pub const GENESIS_PREV_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// Who caused an event: `{"role", "id"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

/// A stored event, exactly the envelope of `docs/protocol.md`. Reading one refuses an unknown
/// field, which no hash would cover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// The revision of this event type's `data` shape; absent means 1 (`docs/protocol.md`, "Event
    /// revisions"). Every event written today is revision 1, so none carries the field; a reader
    /// still accepts it (and the hash covers it), so a later revision breaks no reader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
}

impl Envelope {
    /// The revision of `data`'s shape: the `revision` field, or 1 without one.
    pub fn revision(&self) -> u32 {
        self.revision.unwrap_or(1)
    }
}

mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        at: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_time(at))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(D::Error::custom)
    }
}

/// The envelope's time format: RFC 3339 in UTC with `Z`, fractional seconds only when present.
pub fn format_time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The canonical bytes of an envelope: the envelope without `hash`, as JSON with the keys of every
/// object sorted by code point and no whitespace. This is what [`compute_hash`] hashes.
pub fn canonical_bytes(envelope: &Envelope) -> Vec<u8> {
    write_canonical(envelope, &canonical::to_vec(&envelope.data), Hash::Without)
}

/// The whole envelope, `hash` included, as canonical JSON: the form the store keeps, which must be
/// exactly these bytes.
pub fn canonical_bytes_with_hash(envelope: &Envelope) -> Vec<u8> {
    write_canonical(envelope, &canonical::to_vec(&envelope.data), Hash::With)
}

/// `hash` of an envelope: lowercase hex SHA-256 of `prev_hash` (its 64 ASCII characters) followed
/// by the envelope's [`canonical_bytes`]. `envelope.hash` itself is ignored.
pub fn compute_hash(prev_hash: &str, envelope: &Envelope) -> String {
    hash_with_data(prev_hash, envelope, &canonical::to_vec(&envelope.data))
}

/// [`compute_hash`] with `envelope.data` already in canonical form.
pub(crate) fn hash_with_data(prev_hash: &str, envelope: &Envelope, data: &[u8]) -> String {
    let draft = Draft::of_envelope(envelope, data);
    draft.hash(
        prev_hash,
        &draft.tail(envelope.seq, envelope.version, prev_hash),
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Hash {
    With,
    Without,
}

/// An event's canonical bytes but for the four parts only the store's writer knows: `seq`,
/// `version`, `prev_hash` and `hash`. Callers build drafts in their own threads, so the single writer
/// only splices in two integers and two hex strings and hashes.
///
/// Canonical key order: `actor`, `command_id`, `data`, `dispute_id`, `event_id`, [`hash`],
/// `occurred_at`, `prev_hash`, [`revision`], `seq`, `type`, `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// `{"actor":…,"command_id":…,"data":…,"dispute_id":…,"event_id":…`
    head: Vec<u8>,
    /// `,"occurred_at":"…"`
    occurred_at: Vec<u8>,
    /// `,"type":"…"`
    event_type: Vec<u8>,
    /// `,"revision":N`, or nothing (revision 1)
    revision: Vec<u8>,
}

impl Draft {
    /// The draft of `event` in `dispute_id`'s stream under `event_id`; `data` is `event.data` in
    /// canonical form.
    pub fn new(dispute_id: &str, event_id: &str, event: &NewEvent, data: &[u8]) -> Draft {
        let NewEvent {
            event_type,
            data: _,
            occurred_at,
            actor,
            command_id,
        } = event;
        let parts = Parts {
            actor,
            command_id: command_id.as_deref(),
            data,
            dispute_id,
            event_id,
            occurred_at,
            event_type,
            // The store writes every event at revision 1, which has no field.
            revision: None,
        };
        Draft::of(&parts)
    }

    fn of_envelope(envelope: &Envelope, data: &[u8]) -> Draft {
        // Destructured without `..`: a new field will not compile until written here.
        let Envelope {
            event_id,
            seq: _,
            dispute_id,
            version: _,
            event_type,
            occurred_at,
            command_id,
            actor,
            data: _,
            prev_hash: _,
            hash: _,
            revision,
        } = envelope;
        Draft::of(&Parts {
            actor,
            command_id: command_id.as_deref(),
            data,
            dispute_id,
            event_id,
            occurred_at,
            event_type,
            revision: *revision,
        })
    }

    fn of(parts: &Parts<'_>) -> Draft {
        let ActorRef { role, id } = parts.actor;
        let mut head = Vec::with_capacity(parts.data.len() + 256);
        text(&mut head, b"{\"actor\":{\"id\":", id);
        text(&mut head, b",\"role\":", role);
        match parts.command_id {
            Some(command_id) => text(&mut head, b"},\"command_id\":", command_id),
            None => head.extend_from_slice(b"},\"command_id\":null"),
        }
        head.extend_from_slice(b",\"data\":");
        head.extend_from_slice(parts.data);
        text(&mut head, b",\"dispute_id\":", parts.dispute_id);
        text(&mut head, b",\"event_id\":", parts.event_id);
        let mut occurred_at = Vec::with_capacity(48);
        text(
            &mut occurred_at,
            b",\"occurred_at\":",
            &format_time(parts.occurred_at),
        );
        let mut event_type = Vec::with_capacity(parts.event_type.len() + 12);
        text(&mut event_type, b",\"type\":", parts.event_type);
        let revision = parts
            .revision
            .map(|r| format!(",\"revision\":{r}").into_bytes())
            .unwrap_or_default();
        Draft {
            head,
            occurred_at,
            event_type,
            revision,
        }
    }

    /// Everything after `hash`: `,"occurred_at":…,"prev_hash":…,"seq":…,"type":…,"version":…}`.
    pub fn tail(&self, seq: u64, version: u64, prev_hash: &str) -> Vec<u8> {
        let mut tail = Vec::with_capacity(self.occurred_at.len() + self.event_type.len() + 128);
        tail.extend_from_slice(&self.occurred_at);
        text(&mut tail, b",\"prev_hash\":", prev_hash);
        tail.extend_from_slice(&self.revision);
        tail.extend_from_slice(format!(",\"seq\":{seq}").as_bytes());
        tail.extend_from_slice(&self.event_type);
        tail.extend_from_slice(format!(",\"version\":{version}}}").as_bytes());
        tail
    }

    /// `hash`: SHA-256 of `prev_hash` and the canonical bytes (draft ‖ `tail`).
    pub fn hash(&self, prev_hash: &str, tail: &[u8]) -> String {
        let mut hasher = Sha256::new();
        hasher.update(prev_hash.as_bytes());
        hasher.update(&self.head);
        hasher.update(tail);
        hex(&hasher.finalize())
    }

    /// The canonical bytes, with or without `hash`.
    fn canonical(&self, tail: &[u8], hash: Option<&str>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + tail.len() + 80);
        out.extend_from_slice(&self.head);
        if let Some(hash) = hash {
            text(&mut out, b",\"hash\":", hash);
        }
        out.extend_from_slice(tail);
        out
    }

    /// Asserts that this draft, completed, reads back as `event` in `dispute_id` under `event_id`:
    /// the check before the write, made in the caller's thread (the writer only splices in two
    /// integers and two hex strings).
    pub fn assert_reads_back(&self, dispute_id: &str, event_id: &str, event: &NewEvent) {
        let tail = self.tail(1, 1, GENESIS_PREV_HASH);
        let bytes = self.sealed(&tail, GENESIS_PREV_HASH);
        let back: Envelope =
            serde_json::from_slice(&bytes).expect("a freshly drafted envelope parses");
        let expected = Envelope {
            event_id: event_id.to_owned(),
            seq: 1,
            dispute_id: dispute_id.to_owned(),
            version: 1,
            event_type: event.event_type.clone(),
            occurred_at: event.occurred_at,
            command_id: event.command_id.clone(),
            actor: event.actor.clone(),
            data: back.data.clone(),
            prev_hash: GENESIS_PREV_HASH.to_owned(),
            hash: GENESIS_PREV_HASH.to_owned(),
            revision: None,
        };
        assert!(
            back == expected && back.data == event.data,
            "the drafted form of a {} event does not read back",
            event.event_type
        );
    }

    /// The whole envelope, `hash` included, as canonical JSON, after `prefix` (the store's
    /// schema byte; nothing for a message on the wire).
    pub fn sealed_after(&self, prefix: &[u8], tail: &[u8], hash: &str) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(prefix.len() + self.head.len() + tail.len() + 80);
        bytes.extend_from_slice(prefix);
        bytes.extend_from_slice(&self.head);
        text(&mut bytes, b",\"hash\":", hash);
        bytes.extend_from_slice(tail);
        bytes
    }

    /// The whole envelope, `hash` included, as canonical JSON.
    pub fn sealed(&self, tail: &[u8], hash: &str) -> Vec<u8> {
        self.sealed_after(&[], tail, hash)
    }
}

/// The fields a draft is made of, borrowed from a [`NewEvent`] or an [`Envelope`].
struct Parts<'a> {
    actor: &'a ActorRef,
    command_id: Option<&'a str>,
    data: &'a [u8],
    dispute_id: &'a str,
    event_id: &'a str,
    revision: Option<u32>,
    occurred_at: &'a DateTime<Utc>,
    event_type: &'a str,
}

/// `key` then `value` as a JSON string, escaped as serde_json does.
fn text(out: &mut Vec<u8>, key: &[u8], value: &str) {
    out.extend_from_slice(key);
    serde_json::to_writer(&mut *out, value).expect("writing a string into a Vec cannot fail");
}

/// The envelope as canonical JSON, with `data` given in canonical form.
fn write_canonical(envelope: &Envelope, data: &[u8], hash_field: Hash) -> Vec<u8> {
    let draft = Draft::of_envelope(envelope, data);
    let tail = draft.tail(envelope.seq, envelope.version, &envelope.prev_hash);
    let hash = (hash_field == Hash::With).then_some(envelope.hash.as_str());
    draft.canonical(&tail, hash)
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

/// Reads an envelope from its JSON as published (a stream message): every field of the contract,
/// no other. Its hash is not checked here: see [`compute_hash`] and the chain checks of `verify`.
pub fn parse_envelope(json: &[u8]) -> Result<Envelope, String> {
    serde_json::from_slice(json).map_err(|e| format!("not an envelope: {e}"))
}

/// Whether `text` is a hash as the store writes them: 64 lowercase hex digits.
pub fn is_hash(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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
            revision: None,
        }
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
    fn a_draft_sealed_by_the_writer_is_the_envelopes_stored_form_and_hash() {
        let envelope = sample();
        let event = NewEvent {
            event_type: envelope.event_type.clone(),
            data: envelope.data.clone(),
            occurred_at: envelope.occurred_at,
            actor: envelope.actor.clone(),
            command_id: Some("c-\"1\"".into()),
        };
        let data = canonical::to_vec(&event.data);
        let draft = Draft::new("d-1", "e-1", &event, &data);
        draft.assert_reads_back("d-1", "e-1", &event);
        let prev_hash = "ab".repeat(32);
        let tail = draft.tail(7, 3, &prev_hash);
        let hash = draft.hash(&prev_hash, &tail);
        let sealed = Envelope {
            seq: 7,
            version: 3,
            command_id: event.command_id.clone(),
            prev_hash: prev_hash.clone(),
            hash: hash.clone(),
            ..envelope
        };
        assert_eq!(hash, compute_hash(&prev_hash, &sealed));
        assert_eq!(
            draft.sealed(&tail, &hash),
            canonical_bytes_with_hash(&sealed)
        );
        assert_eq!(parse_envelope(&draft.sealed(&tail, &hash)).unwrap(), sealed);
        assert_eq!(
            draft.sealed_after(&[1], &tail, &hash)[1..],
            draft.sealed(&tail, &hash)
        );
    }

    #[test]
    #[should_panic(expected = "does not read back")]
    fn a_draft_of_another_event_does_not_read_back() {
        let envelope = sample();
        let event = NewEvent {
            event_type: envelope.event_type.clone(),
            data: envelope.data.clone(),
            occurred_at: envelope.occurred_at,
            actor: envelope.actor.clone(),
            command_id: None,
        };
        let data = canonical::to_vec(&json!({"other": 1}));
        Draft::new("d-1", "e-1", &event, &data).assert_reads_back("d-1", "e-1", &event);
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert!(is_hash(GENESIS_PREV_HASH));
        assert!(!is_hash(&"A".repeat(64)));
    }

    #[test]
    fn a_published_envelope_with_an_unknown_field_is_not_an_envelope() {
        let envelope = sample();
        let mut value = serde_json::to_value(&envelope).unwrap();
        assert_eq!(
            parse_envelope(&serde_json::to_vec(&value).unwrap()),
            Ok(envelope)
        );
        value["extra"] = json!(1);
        assert!(parse_envelope(&serde_json::to_vec(&value).unwrap())
            .unwrap_err()
            .contains("unknown field"));
    }
}
