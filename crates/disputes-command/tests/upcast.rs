//! Event revisions end to end in the process: an event written by today's command side (revision
//! 1), read back from the store, its chain verified, then upcast to a revision 2 defined here, as a
//! later build would. The stored bytes do not change: the store still verifies.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use disputes_command::{CommandHandler, Reply};
use disputes_domain::{Limits, Policy, Upcasters};
use disputes_store::{Chain, EventStore, SledStore, StoreOptions};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Revision 2 of `DisputeEscalated` in this test's imagined later build: the buyer's text moves
/// from `reason` to `buyer_reason`, and `cause` is kept.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct EscalatedV2 {
    cause: String,
    buyer_reason: Option<String>,
}

fn rename_reason(data: &mut Map<String, Value>) -> Result<(), String> {
    let reason = data
        .remove("reason")
        .ok_or("revision 1 has a reason field")?;
    data.insert("buyer_reason".into(), reason);
    Ok(())
}

fn send(handler: &CommandHandler<SledStore>, ty: &str, body: Value) {
    let at = Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0).unwrap();
    let reply = handler.handle(ty, &serde_json::to_vec(&body).unwrap(), at);
    assert!(matches!(reply, Reply::Accepted(_)), "{ty}: {reply:?}");
}

#[test]
fn a_revision_1_event_written_today_is_upcast_after_its_hash_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path(), StoreOptions::buffered()).unwrap());
    let handler = CommandHandler::new(store.clone(), Policy::default(), Limits::default());
    let buyer = json!({"role": "buyer", "id": "b-1"});
    let seller = json!({"role": "seller", "id": "s-1"});
    let open = json!({"order_id": "o-1", "seller_id": "s-1", "reason": "not_as_described",
        "order_amount": {"amount": 5000, "currency": "EUR"}, "proposal": {"solution": "full_refund"}});
    let steps = [
        ("open", &buyer, open),
        (
            "counter_propose",
            &seller,
            json!({"proposal": {"solution": "partial_refund", "amount": 1000}}),
        ),
        ("reject_proposal", &buyer, json!({"reason": "too little"})),
    ];
    for (i, (ty, actor, data)) in steps.into_iter().enumerate() {
        let body = json!({"command_id": format!("c-{i}"), "dispute_id": "d-1", "actor": actor, "data": data});
        send(&handler, ty, body);
    }
    let stored = store.read_from(1, 100).unwrap();
    let mut chain = Chain::new();
    for envelope in &stored {
        chain.check(envelope).expect("today's events verify");
    }
    let escalated = stored
        .iter()
        .find(|e| e.event_type == "DisputeEscalated")
        .expect("the rejection escalated");
    assert_eq!(
        escalated.revision, None,
        "today's code writes revision 1, without the field"
    );
    assert_eq!(escalated.revision(), 1);
    let later = Upcasters::at_revision_one().with_step("DisputeEscalated", rename_reason);
    let data = later
        .upcast(&escalated.event_type, escalated.revision(), &escalated.data)
        .expect("revision 1 upcasts to 2");
    let v2: EscalatedV2 = serde_json::from_value(data.into_owned()).unwrap();
    assert_eq!(
        v2,
        EscalatedV2 {
            cause: "buyer_rejected".into(),
            buyer_reason: Some("too little".into())
        }
    );
    // The stored bytes are what they were: the whole log still verifies, the event unchanged.
    assert!(store.verify().unwrap().is_intact());
    assert_eq!(&store.read_from(escalated.seq, 1).unwrap()[0], escalated);
    // Today's build reads its own revision as it is.
    let today = Upcasters::shipped()
        .upcast(&escalated.event_type, 1, &escalated.data)
        .unwrap();
    assert_eq!(*today, escalated.data);
}
