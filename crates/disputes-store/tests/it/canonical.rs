//! The canonical bytes and the hash, against values computed independently (Python's `json` and
//! `hashlib`: `json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`).

use disputes_store::{canonical_bytes, compute_hash, ActorRef, Envelope, EventStore};
use serde_json::json;

use crate::support::{appended, open, request};

fn protocol_example() -> Envelope {
    Envelope {
        event_id: "018f0000-0000-7000-8000-000000000001".into(),
        seq: 5120,
        dispute_id: "d-1001".into(),
        version: 2,
        event_type: "CounterProposed".into(),
        occurred_at: "2026-11-27T08:00:00Z".parse().unwrap(),
        command_id: Some("c-7f3a".into()),
        actor: ActorRef {
            role: "seller".into(),
            id: "s-42".into(),
        },
        data: json!({
            "proposal": {"solution": "partial_refund", "amount": 5000},
            "note": "é \"q\"\n",
            "list": [{"b": 1, "a": 2}, null, true]
        }),
        prev_hash: "ab".repeat(32),
        hash: "ignored by the hash".into(),
        revision: None,
    }
}

const CANONICAL: &str = concat!(
    r#"{"actor":{"id":"s-42","role":"seller"},"command_id":"c-7f3a","#,
    r#""data":{"list":[{"a":2,"b":1},null,true],"note":"é \"q\"\n","proposal":{"amount":5000,"solution":"partial_refund"}},"#,
    r#""dispute_id":"d-1001","event_id":"018f0000-0000-7000-8000-000000000001","occurred_at":"2026-11-27T08:00:00Z","#,
    r#""prev_hash":"abababababababababababababababababababababababababababababababab","seq":5120,"type":"CounterProposed","version":2}"#
);

#[test]
fn canonical_bytes_sort_every_object_and_drop_the_hash() {
    let envelope = protocol_example();
    assert_eq!(
        String::from_utf8(canonical_bytes(&envelope)).unwrap(),
        CANONICAL
    );
}

#[test]
fn canonical_bytes_are_serde_json_with_its_default_sorted_map() {
    let mut envelope = protocol_example();
    envelope.command_id = None;
    envelope.occurred_at = "2026-11-27T08:00:00.250Z".parse().unwrap();
    let mut value = serde_json::to_value(&envelope).unwrap();
    value.as_object_mut().unwrap().remove("hash");
    assert_eq!(
        canonical_bytes(&envelope),
        serde_json::to_vec(&value).unwrap()
    );
    let text = String::from_utf8(canonical_bytes(&envelope)).unwrap();
    assert!(
        text.contains(r#""command_id":null"#)
            && text.contains(r#""occurred_at":"2026-11-27T08:00:00.250Z""#)
    );
}

#[test]
fn hash_is_sha256_of_prev_hash_then_canonical_bytes() {
    let envelope = protocol_example();
    let expected = "e486fa3e05bc56524be973fb20ccc264e64a7c6e27fb3603ec68ccc1ee32bcbd";
    assert_eq!(compute_hash(&envelope.prev_hash, &envelope), expected);
}

#[test]
fn the_envelope_serializes_as_the_protocol_says() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let envelope = appended(store.append(request("d-1", 0, None, 1))).remove(0);
    let value = serde_json::to_value(&envelope).unwrap();
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let expected = [
        "actor",
        "command_id",
        "data",
        "dispute_id",
        "event_id",
        "hash",
        "occurred_at",
        "prev_hash",
        "seq",
        "type",
        "version",
    ];
    assert_eq!(keys, expected);
    assert_eq!(value["occurred_at"], "2026-11-27T08:00:00Z");
    assert_eq!(value["command_id"], serde_json::Value::Null);
    assert_eq!(value["prev_hash"], "0".repeat(64));
    assert_eq!(value["actor"], json!({"role": "buyer", "id": "b-1"}));
    let id = uuid::Uuid::parse_str(&envelope.event_id).expect("event ids are UUIDs");
    assert_eq!(id.get_version_num(), 7);
    let back: Envelope = serde_json::from_value(value).unwrap();
    assert_eq!(back, envelope);
    assert_eq!(store.head(), 1);
}
