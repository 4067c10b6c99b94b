//! The wire and disk forms of protocol.md, checked against literal JSON.

use chrono::{TimeZone, Utc};
use disputes_domain::{
    actions, fold, time, Actor, CommandType, DeadlineKind, DisputeId, ErrorCode, EscalationCause,
    Event, Money, Party, Proposal, Reason, ResolutionBasis, ResponsibleParty, ReturnProblem, Role,
    Solution, Stage, State, Status, WireEnum, EVENT_TYPES,
};
use serde_json::{json, Value};

use crate::support::*;

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

#[track_caller]
fn round_trip(event: Event, expected: Value) {
    assert_eq!(to_json(&event), expected);
    assert_eq!(serde_json::from_value::<Event>(expected).unwrap(), event);
}

#[test]
fn the_protocol_request_example_parses() {
    let raw = br#"{
      "command_id": "c-7f3a",
      "dispute_id": "d-1001",
      "actor": {"role": "seller", "id": "s-42"},
      "expected_version": 1,
      "data": { }
    }"#;
    let parsed =
        disputes_domain::parse_command("accept_proposal", raw, &Default::default()).unwrap();
    assert_eq!(parsed.command_id.as_str(), "c-7f3a");
    assert_eq!(parsed.dispute_id, DisputeId::parse("d-1001").unwrap());
    assert_eq!(parsed.request.actor, Actor::new(Role::Seller, id("s-42")));
    assert_eq!(parsed.request.expected_version, Some(1));
    assert_eq!(
        parsed.request.command,
        disputes_domain::Command::AcceptProposal
    );
}

#[test]
fn every_command_of_the_protocol_table_parses_from_its_literal_data() {
    let table = [
        (
            "open",
            "buyer",
            json!({"order_id": "o-1", "seller_id": "s-42", "reason": "not_as_described",
            "order_amount": {"amount": 12999, "currency": "USD"}, "proposal": {"solution": "return_and_refund", "amount": 12999},
            "description": "torn"}),
        ),
        ("accept_proposal", "seller", json!({})),
        (
            "counter_propose",
            "seller",
            json!({"proposal": {"solution": "partial_refund", "amount": 5000}}),
        ),
        ("reject_proposal", "buyer", json!({"reason": "too little"})),
        (
            "submit_shipping_proof",
            "seller",
            json!({"carrier": "DHL", "tracking_number": "JD0001"}),
        ),
        (
            "submit_evidence",
            "buyer",
            json!({"description": "torn", "attachments": ["https://x/a.jpg"]}),
        ),
        (
            "rule",
            "mediator",
            json!({"outcome": "partial_refund", "amount": 3000, "responsible_party": "logistics", "note": "n"}),
        ),
        (
            "provide_return_address",
            "seller",
            json!({"address": "1 Return St"}),
        ),
        (
            "provide_return_tracking",
            "buyer",
            json!({"carrier": "UPS", "tracking_number": "1Z"}),
        ),
        ("confirm_return_received", "seller", json!({})),
        (
            "report_return_problem",
            "seller",
            json!({"problem": "different_item", "note": "a brick"}),
        ),
        ("withdraw", "buyer", json!({"reason": "arrived"})),
        (
            "post_message",
            "mediator",
            json!({"text": "hello", "attachments": ["x.png"]}),
        ),
    ];
    assert_eq!(table.len(), CommandType::ALL.len() - 1);
    for (command_type, role, data) in table {
        let body = json!({"command_id": "c-1", "dispute_id": "d-1", "actor": {"role": role, "id": format!("{role}-1")}, "data": data});
        let parsed = disputes_domain::parse_command(
            command_type,
            &serde_json::to_vec(&body).unwrap(),
            &Default::default(),
        )
        .unwrap_or_else(|r| panic!("{command_type}: {r}"));
        assert_eq!(parsed.request.command_type().as_str(), command_type);
    }
}

#[test]
fn proposals_have_exactly_the_protocol_forms() {
    assert_eq!(
        to_json(&Proposal::FullRefund),
        json!({"solution": "full_refund"})
    );
    assert_eq!(
        to_json(&partial(5000)),
        json!({"solution": "partial_refund", "amount": 5000})
    );
    assert_eq!(
        to_json(&ret(12999)),
        json!({"solution": "return_and_refund", "amount": 12999})
    );
    let back: Proposal =
        serde_json::from_value(json!({"solution": "partial_refund", "amount": 5000})).unwrap();
    assert_eq!(back, partial(5000));
    assert!(
        serde_json::from_value::<Proposal>(json!({"solution": "partial_refund", "amount": 0}))
            .is_err()
    );
}

#[test]
fn money_actor_and_scheduler_have_the_protocol_forms() {
    assert_eq!(
        to_json(&usd(12999)),
        json!({"amount": 12999, "currency": "USD"})
    );
    assert_eq!(
        serde_json::from_value::<Money>(json!({"amount": 12999, "currency": "USD"})).unwrap(),
        usd(12999)
    );
    assert!(serde_json::from_value::<Money>(json!({"amount": 12999, "currency": "usd"})).is_err());
    assert_eq!(
        to_json(&Actor::new(Role::Seller, id("s-42"))),
        json!({"role": "seller", "id": "s-42"})
    );
    assert_eq!(
        to_json(&Actor::scheduler()),
        json!({"role": "system", "id": "scheduler"})
    );
}

#[test]
fn ids_serialize_as_plain_strings_and_deserialize_only_when_valid() {
    assert_eq!(
        to_json(&DisputeId::parse("d-1001").unwrap()),
        json!("d-1001")
    );
    assert!(serde_json::from_value::<DisputeId>(json!("d 1001")).is_err());
    assert_eq!(
        DisputeId::parse("d.1").unwrap_err().code(),
        ErrorCode::InvalidValue
    );
}

#[test]
fn timestamps_are_rfc_3339_utc_with_a_z() {
    let at = Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap();
    assert_eq!(time::format(at), "2026-11-27T08:00:00Z");
    assert_eq!(
        time::format(at + chrono::TimeDelta::milliseconds(5)),
        "2026-11-27T08:00:00.005Z"
    );
    assert_eq!(time::parse("2026-11-27T08:00:00Z"), Some(at));
    assert_eq!(time::parse("2026-11-27T09:00:00+01:00"), Some(at));
    assert_eq!(time::parse("yesterday"), None);
    let fine = at + chrono::TimeDelta::nanoseconds(123_456_789);
    assert_eq!(
        time::parse(&time::format(fine)),
        Some(fine),
        "formatting loses nothing"
    );
}

#[test]
fn dispute_opened_has_the_protocol_data_with_a_null_description() {
    let event = opened(Reason::NotReceived, Proposal::FullRefund).remove(0);
    round_trip(
        event,
        json!({"type": "DisputeOpened", "data": {
            "order_id": "o-1", "buyer_id": "b-1", "seller_id": "s-42", "reason": "not_received",
            "order_amount": {"amount": 12999, "currency": "USD"}, "proposal": {"solution": "full_refund"},
            "description": null,
        }}),
    );
}

#[test]
fn agreement_events_have_the_protocol_data() {
    round_trip(
        Event::ProposalAccepted {
            by: Party::Seller,
            proposal: ret(12999),
        },
        json!({"type": "ProposalAccepted", "data": {"by": "seller", "proposal": {"solution": "return_and_refund", "amount": 12999}}}),
    );
    round_trip(
        Event::CounterProposed {
            proposal: partial(5000),
        },
        json!({"type": "CounterProposed", "data": {"proposal": {"solution": "partial_refund", "amount": 5000}}}),
    );
    round_trip(
        Event::DisputeEscalated {
            cause: EscalationCause::BuyerDecisionTimeout,
            reason: None,
        },
        json!({"type": "DisputeEscalated", "data": {"cause": "buyer_decision_timeout", "reason": null}}),
    );
}

#[test]
fn escalation_and_ruling_events_have_the_protocol_data() {
    round_trip(
        Event::ShippingProofSubmitted {
            carrier: "DHL".into(),
            tracking_number: "JD0001".into(),
        },
        json!({"type": "ShippingProofSubmitted", "data": {"carrier": "DHL", "tracking_number": "JD0001"}}),
    );
    round_trip(
        Event::EvidenceSubmitted {
            description: "torn".into(),
            attachments: vec!["a.jpg".into()],
        },
        json!({"type": "EvidenceSubmitted", "data": {"description": "torn", "attachments": ["a.jpg"]}}),
    );
    round_trip(
        Event::RulingIssued {
            outcome: Solution::PartialRefund,
            amount: Some(amount(3000)),
            responsible_party: ResponsibleParty::Logistics,
            note: None,
        },
        json!({"type": "RulingIssued", "data": {"outcome": "partial_refund", "amount": 3000, "responsible_party": "logistics", "note": null}}),
    );
    round_trip(
        Event::RulingIssued {
            outcome: Solution::ReleaseFunds,
            amount: None,
            responsible_party: ResponsibleParty::Buyer,
            note: Some("ok".into()),
        },
        json!({"type": "RulingIssued", "data": {"outcome": "release_funds", "amount": null, "responsible_party": "buyer", "note": "ok"}}),
    );
}

#[test]
fn return_events_have_the_protocol_data() {
    round_trip(
        Event::ReturnAddressProvided {
            address: "1 Return St".into(),
        },
        json!({"type": "ReturnAddressProvided", "data": {"address": "1 Return St"}}),
    );
    round_trip(
        Event::ReturnTrackingProvided {
            carrier: "UPS".into(),
            tracking_number: "1Z".into(),
        },
        json!({"type": "ReturnTrackingProvided", "data": {"carrier": "UPS", "tracking_number": "1Z"}}),
    );
    round_trip(
        Event::ReturnReceived {},
        json!({"type": "ReturnReceived", "data": {}}),
    );
    round_trip(
        Event::ReturnProblemReported {
            problem: ReturnProblem::InvalidTracking,
            note: None,
        },
        json!({"type": "ReturnProblemReported", "data": {"problem": "invalid_tracking", "note": null}}),
    );
}

#[test]
fn deadline_message_and_end_events_have_the_protocol_data() {
    let due_at = Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap();
    round_trip(
        Event::DeadlineSet {
            deadline: DeadlineKind::SellerResponse,
            due_at,
        },
        json!({"type": "DeadlineSet", "data": {"deadline": "seller_response", "due_at": "2026-11-27T08:00:00Z"}}),
    );
    round_trip(
        Event::DeadlineExpired {
            deadline: DeadlineKind::ReturnReceipt,
            due_at,
        },
        json!({"type": "DeadlineExpired", "data": {"deadline": "return_receipt", "due_at": "2026-11-27T08:00:00Z"}}),
    );
    round_trip(
        Event::MessagePosted {
            text: "hi".into(),
            attachments: vec![],
        },
        json!({"type": "MessagePosted", "data": {"text": "hi", "attachments": []}}),
    );
    round_trip(
        Event::DisputeWithdrawn { reason: None },
        json!({"type": "DisputeWithdrawn", "data": {"reason": null}}),
    );
    round_trip(
        resolved(Solution::PartialRefund, 2500, ResolutionBasis::Agreement),
        json!({"type": "DisputeResolved", "data": {"solution": "partial_refund", "refund_amount": 2500,
            "release_amount": 10499, "currency": "USD", "basis": "agreement"}}),
    );
}

#[test]
fn event_type_names_the_serde_tag() {
    let events = [
        opened(Reason::NotReceived, Proposal::FullRefund),
        after_return_problem(100),
        countered(Reason::NotAsDescribed, ret(10)),
        under_review(Reason::NotAsDescribed),
        resolved_by_agreement(),
    ]
    .concat();
    for event in events {
        assert_eq!(to_json(&event)["type"], json!(event.event_type()));
        assert!(EVENT_TYPES.contains(&event.event_type()));
    }
}

#[test]
fn wire_enums_serialize_as_their_as_str() {
    fn check<
        E: WireEnum + serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    >() {
        for value in E::ALL {
            assert_eq!(to_json(value), json!(value.as_str()));
            assert_eq!(
                serde_json::from_value::<E>(json!(value.as_str())).unwrap(),
                *value
            );
            assert_eq!(E::parse(value.as_str()), Some(*value));
        }
    }
    check::<Status>();
    check::<Stage>();
    check::<DeadlineKind>();
    check::<ResolutionBasis>();
    check::<CommandType>();
    check::<ErrorCode>();
    check::<Role>();
    check::<Solution>();
    check::<ReturnProblem>();
    check::<ResponsibleParty>();
    assert_eq!(Status::ALL.len(), 9);
    assert_eq!(DeadlineKind::ALL.len(), 7);
    assert_eq!(ResolutionBasis::ALL.len(), 11);
    assert_eq!(CommandType::ALL.len(), 14);
    assert_eq!(ErrorCode::VersionConflict.as_str(), "version_conflict");
}

#[test]
fn actions_have_the_protocol_form() {
    let state = fold(&awaiting_return_address(100));
    assert_eq!(
        to_json(&actions(&state, hours(2))),
        json!({"buyer": ["withdraw", "post_message"], "seller": ["provide_return_address", "post_message"], "mediator": ["post_message"]})
    );
}

#[test]
fn a_state_survives_a_json_round_trip() {
    for history in [
        Vec::new(),
        after_return_problem(100),
        resolved_by_agreement(),
        escalated(Reason::NotReceived),
    ] {
        let state = fold(&history);
        let back: State = serde_json::from_slice(&serde_json::to_vec(&state).unwrap()).unwrap();
        assert_eq!(back, state);
    }
}
