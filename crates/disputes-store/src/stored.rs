//! The stored form of an envelope: [`EVENT_SCHEMA_V1`], then the whole envelope (hash included)
//! as canonical JSON (`disputes-envelope`), and its check on the way back from the disk.

use disputes_envelope::{canonical_bytes_with_hash, parse_envelope, Draft, Envelope};

use crate::error::StoreError;
use crate::layout::EVENT_SCHEMA_V1;

/// The stored form of a draft sealed by the writer.
pub(crate) fn stored(draft: &Draft, tail: &[u8], hash: &str) -> Vec<u8> {
    draft.sealed_after(&[EVENT_SCHEMA_V1], tail, hash)
}

/// The stored form of an envelope another log sealed (an import).
pub(crate) fn stored_envelope(envelope: &Envelope) -> Vec<u8> {
    let mut bytes = vec![EVENT_SCHEMA_V1];
    bytes.extend_from_slice(&canonical_bytes_with_hash(envelope));
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
    let envelope = parse_envelope(json).map_err(|reason| StoreError::corrupt(seq, reason))?;
    if canonical_bytes_with_hash(&envelope) != json {
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
    use disputes_envelope::{canonical_json, compute_hash, ActorRef, GENESIS_PREV_HASH};
    use serde_json::{json, Value};

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

    fn stored(envelope: &Envelope) -> Vec<u8> {
        [&[EVENT_SCHEMA_V1][..], &canonical_bytes_with_hash(envelope)].concat()
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
    fn stored_envelopes_with_fields_no_hash_covers_do_not_read_back() {
        let mut envelope = sample();
        envelope.hash = compute_hash(GENESIS_PREV_HASH, &envelope);
        assert_eq!(decode_stored(1, &stored(&envelope)), Ok(envelope.clone()));
        let reason = |r: Result<Envelope, StoreError>| match r.unwrap_err() {
            StoreError::Corrupt { reason, .. } => reason,
            other => panic!("{other}"),
        };
        assert!(reason(decode_stored(2, &stored(&envelope))).contains("says seq 1"));
        let with = |edit: fn(&mut Value)| {
            let mut value = serde_json::to_value(&envelope).unwrap();
            edit(&mut value);
            [&[EVENT_SCHEMA_V1][..], &canonical_json(&value)].concat()
        };
        let note = with(|v| v["actor"]["note"] = json!("unhashed"));
        assert!(reason(decode_stored(1, &note)).contains("unknown field"));
        let extra = with(|v| v["extra"] = json!(1));
        assert!(reason(decode_stored(1, &extra)).contains("unknown field"));
        let mut schema_2 = stored(&envelope);
        schema_2[0] = 2;
        assert!(reason(decode_stored(1, &schema_2)).contains("schema version 2"));
    }
}
