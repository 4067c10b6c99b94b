//! Parsing request bodies, step 2 of "Which refusal wins": unknown_command, then invalid_request
//! (the shape), then invalid_value (what is judged without the dispute).

use disputes_domain::{
    parse_command, Command, ErrorCode, Limits, ParsedCommand, ProposalTerms, Refusal, Role,
    RulingTerms,
};
use serde_json::{json, Value};

use crate::support::amount;

fn body(role: &str, data: Value) -> Value {
    let actor_id = match role {
        "buyer" => "b-1",
        "seller" => "s-42",
        _ => "m-7",
    };
    json!({
        "command_id": "c-7f3a",
        "dispute_id": "d-1001",
        "actor": {"role": role, "id": actor_id},
        "data": data,
    })
}

fn parse(command_type: &str, body: &Value) -> Result<ParsedCommand, Refusal> {
    parse_command(
        command_type,
        &serde_json::to_vec(body).unwrap(),
        &Limits::default(),
    )
}

#[track_caller]
fn refused(command_type: &str, body: &Value, code: ErrorCode) -> String {
    match parse(command_type, body) {
        Ok(parsed) => panic!("expected {code}, parsed {parsed:?}"),
        Err(refusal) => {
            assert_eq!(refusal.code(), code, "{refusal}");
            refusal.message().to_owned()
        }
    }
}

#[track_caller]
fn command(command_type: &str, body: &Value) -> Command {
    parse(command_type, body)
        .unwrap_or_else(|r| panic!("{r}"))
        .request
        .command
}

fn open_data() -> Value {
    json!({
        "order_id": "o-1", "seller_id": "s-42", "reason": "not_received",
        "order_amount": {"amount": 12999, "currency": "USD"},
        "proposal": {"solution": "full_refund"},
    })
}

fn counter(proposal: Value) -> Value {
    body("seller", json!({"proposal": proposal}))
}

// unknown_command

#[test]
fn an_unknown_command_type_is_unknown_command_whatever_the_body() {
    refused(
        "escalate",
        &json!("not even an object"),
        ErrorCode::UnknownCommand,
    );
    let reply = parse_command("escalate", b"not json", &Limits::default()).unwrap_err();
    assert_eq!(reply.code(), ErrorCode::UnknownCommand);
}

#[test]
fn expire_deadline_has_no_subject_and_is_unknown_command() {
    refused(
        "expire_deadline",
        &body("system", json!({})),
        ErrorCode::UnknownCommand,
    );
}

// invalid_request

#[test]
fn a_body_over_64_kib_is_invalid_request() {
    let big = body("seller", json!({"text": "x".repeat(70 * 1024)}));
    let message = refused("post_message", &big, ErrorCode::InvalidRequest);
    assert!(message.contains("65536"), "{message}");
}

#[test]
fn a_body_of_exactly_the_limit_is_judged_on_its_content() {
    let mut data = body("seller", json!({"text": ""}));
    let overhead = serde_json::to_vec(&data).unwrap().len();
    data["data"]["text"] = json!("x".repeat(disputes_domain::BODY_BYTES_MAX - overhead));
    assert_eq!(
        serde_json::to_vec(&data).unwrap().len(),
        disputes_domain::BODY_BYTES_MAX
    );
    refused("post_message", &data, ErrorCode::InvalidValue);
}

#[test]
fn a_body_that_is_not_json_or_not_an_object_is_invalid_request() {
    for raw in [&b"not json"[..], b"[1,2]", b"42", b"\"text\"", b"null", b""] {
        let refusal = parse_command("accept_proposal", raw, &Limits::default()).unwrap_err();
        assert_eq!(
            refusal.code(),
            ErrorCode::InvalidRequest,
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn a_float_or_string_amount_is_invalid_request() {
    refused(
        "counter_propose",
        &counter(json!({"solution": "partial_refund", "amount": 10.5})),
        ErrorCode::InvalidRequest,
    );
    refused(
        "counter_propose",
        &counter(json!({"solution": "partial_refund", "amount": 100.0})),
        ErrorCode::InvalidRequest,
    );
    let message = refused(
        "counter_propose",
        &counter(json!({"solution": "partial_refund", "amount": "10"})),
        ErrorCode::InvalidRequest,
    );
    assert!(
        message.contains("data.proposal.amount"),
        "the message names the field: {message}"
    );
    let mut open = open_data();
    open["order_amount"]["amount"] = json!(100.0);
    refused("open", &body("buyer", open), ErrorCode::InvalidRequest);
}

/// A body as text, for what `json!` cannot write: `-0`, integers past `u64`, a key twice.
#[track_caller]
fn refused_text(command_type: &str, text: &str, code: ErrorCode) -> String {
    match parse_command(command_type, text.as_bytes(), &Limits::default()) {
        Ok(parsed) => panic!("expected {code}, parsed {parsed:?}"),
        Err(refusal) => {
            assert_eq!(refusal.code(), code, "{text}: {refusal}");
            refusal.message().to_owned()
        }
    }
}

const COUNTER_TEXT: &str = r#"{"command_id": "c-1", "dispute_id": "d-1", "actor": {"role": "seller", "id": "s-42"}, "data": {"proposal": {"solution": "partial_refund", "amount": AMOUNT}}}"#;

#[test]
fn an_integer_amount_out_of_range_is_invalid_value_however_it_is_written() {
    for amount in [
        "0",
        "-0",
        "-1",
        "9007199254740992",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775809",
        "100000000000000000000000000000",
    ] {
        let message = refused_text(
            "counter_propose",
            &COUNTER_TEXT.replace("AMOUNT", amount),
            ErrorCode::InvalidValue,
        );
        assert!(
            message.contains("from 1 to 9007199254740991"),
            "{amount}: {message}"
        );
    }
}

#[test]
fn an_amount_of_2_pow_53_minus_1_is_the_largest_accepted() {
    let text = COUNTER_TEXT.replace("AMOUNT", "9007199254740991");
    let parsed = parse_command("counter_propose", text.as_bytes(), &Limits::default()).unwrap();
    let Command::CounterPropose { proposal } = parsed.request.command else {
        panic!("a counter-proposal")
    };
    assert_eq!(
        proposal,
        ProposalTerms::PartialRefund(amount(9_007_199_254_740_991))
    );
}

#[test]
fn a_float_amount_is_invalid_request_however_it_is_written() {
    for amount in ["-0.0", "0.0", "1.5", "1e3", "1E400", "12.0"] {
        refused_text(
            "counter_propose",
            &COUNTER_TEXT.replace("AMOUNT", amount),
            ErrorCode::InvalidRequest,
        );
    }
}

#[test]
fn a_key_given_twice_in_any_object_is_invalid_request() {
    let texts = [
        r#"{"command_id": "c-1", "command_id": "c-1", "dispute_id": "d-1", "actor": {"role": "seller", "id": "s-42"}, "data": {}}"#,
        r#"{"command_id": "c-1", "dispute_id": "d-1", "actor": {"role": "mediator", "role": "seller", "id": "s-42"}, "data": {}}"#,
        r#"{"command_id": "c-1", "dispute_id": "d-1", "actor": {"role": "seller", "id": "s-42"}, "data": {"x": 1, "x": 1}}"#,
    ];
    for text in texts {
        let message = refused_text("accept_proposal", text, ErrorCode::InvalidRequest);
        assert!(message.contains("twice"), "{message}");
    }
}

#[test]
fn an_unknown_enum_value_is_invalid_request() {
    refused(
        "counter_propose",
        &counter(json!({"solution": "store_credit"})),
        ErrorCode::InvalidRequest,
    );
    let mut admin = body("seller", json!({}));
    admin["actor"]["role"] = json!("admin");
    let message = refused("accept_proposal", &admin, ErrorCode::InvalidRequest);
    assert!(
        message.contains("actor.role") && message.contains("mediator"),
        "{message}"
    );
    let mut open = open_data();
    open["reason"] = json!("changed_my_mind");
    refused("open", &body("buyer", open), ErrorCode::InvalidRequest);
    let problem = body("seller", json!({"problem": "late"}));
    refused("report_return_problem", &problem, ErrorCode::InvalidRequest);
}

#[test]
fn a_missing_field_is_invalid_request_at_every_level() {
    for field in ["command_id", "dispute_id", "actor", "data"] {
        let mut missing = body("seller", json!({}));
        missing.as_object_mut().unwrap().remove(field);
        let message = refused("accept_proposal", &missing, ErrorCode::InvalidRequest);
        assert!(message.contains(field), "{message}");
    }
    let mut no_role = body("seller", json!({}));
    no_role["actor"].as_object_mut().unwrap().remove("role");
    refused("accept_proposal", &no_role, ErrorCode::InvalidRequest);
    refused(
        "counter_propose",
        &body("seller", json!({})),
        ErrorCode::InvalidRequest,
    );
    refused(
        "counter_propose",
        &counter(json!({"amount": 5})),
        ErrorCode::InvalidRequest,
    );
    refused(
        "submit_evidence",
        &body("buyer", json!({"description": "d"})),
        ErrorCode::InvalidRequest,
    );
}

#[test]
fn an_unknown_field_is_invalid_request_at_every_level() {
    let mut top = body("seller", json!({}));
    top["surprise"] = json!(true);
    let message = refused("accept_proposal", &top, ErrorCode::InvalidRequest);
    assert!(message.contains("surprise"), "{message}");
    let mut actor = body("seller", json!({}));
    actor["actor"]["name"] = json!("Sam");
    refused("accept_proposal", &actor, ErrorCode::InvalidRequest);
    refused(
        "accept_proposal",
        &body("seller", json!({"extra": 1})),
        ErrorCode::InvalidRequest,
    );
    let message = refused(
        "counter_propose",
        &counter(json!({"solution": "full_refund", "currency": "USD"})),
        ErrorCode::InvalidRequest,
    );
    assert!(message.contains("data.proposal.currency"), "{message}");
    let mut open = open_data();
    open["order_amount"]["cents"] = json!(1);
    refused("open", &body("buyer", open), ErrorCode::InvalidRequest);
}

#[test]
fn an_unknown_field_given_as_null_is_still_unknown() {
    refused(
        "accept_proposal",
        &body("seller", json!({"extra": null})),
        ErrorCode::InvalidRequest,
    );
}

#[test]
fn a_wrong_json_type_is_invalid_request() {
    let mut numeric_id = body("seller", json!({}));
    numeric_id["command_id"] = json!(7);
    refused("accept_proposal", &numeric_id, ErrorCode::InvalidRequest);
    refused(
        "accept_proposal",
        &body("seller", json!([])),
        ErrorCode::InvalidRequest,
    );
    refused(
        "counter_propose",
        &body("seller", json!({"proposal": ["full_refund"]})),
        ErrorCode::InvalidRequest,
    );
    refused(
        "post_message",
        &body("seller", json!({"text": "t", "attachments": "a.png"})),
        ErrorCode::InvalidRequest,
    );
    refused(
        "post_message",
        &body("seller", json!({"text": "t", "attachments": [1]})),
        ErrorCode::InvalidRequest,
    );
    let mut version = body("seller", json!({}));
    version["expected_version"] = json!(-1);
    refused("accept_proposal", &version, ErrorCode::InvalidRequest);
    version["expected_version"] = json!("2");
    refused("accept_proposal", &version, ErrorCode::InvalidRequest);
}

#[test]
fn an_amount_with_full_refund_or_release_funds_is_invalid_request() {
    refused(
        "counter_propose",
        &counter(json!({"solution": "full_refund", "amount": 5})),
        ErrorCode::InvalidRequest,
    );
    refused(
        "counter_propose",
        &counter(json!({"solution": "release_funds", "amount": 5})),
        ErrorCode::InvalidRequest,
    );
    let rule = body(
        "mediator",
        json!({"outcome": "full_refund", "amount": 5, "responsible_party": "seller"}),
    );
    refused("rule", &rule, ErrorCode::InvalidRequest);
    let rule = body(
        "mediator",
        json!({"outcome": "release_funds", "amount": 5, "responsible_party": "seller"}),
    );
    refused("rule", &rule, ErrorCode::InvalidRequest);
}

#[test]
fn a_partial_refund_without_amount_is_invalid_request() {
    let message = refused(
        "counter_propose",
        &counter(json!({"solution": "partial_refund"})),
        ErrorCode::InvalidRequest,
    );
    assert!(message.contains("amount"), "{message}");
    let rule = body(
        "mediator",
        json!({"outcome": "partial_refund", "responsible_party": "seller"}),
    );
    refused("rule", &rule, ErrorCode::InvalidRequest);
}

#[test]
fn an_optional_field_given_as_null_counts_as_absent() {
    let parsed = command(
        "counter_propose",
        &counter(json!({"solution": "full_refund", "amount": null})),
    );
    assert_eq!(
        parsed,
        Command::CounterPropose {
            proposal: ProposalTerms::FullRefund
        }
    );
    let parsed = command("reject_proposal", &body("buyer", json!({"reason": null})));
    assert_eq!(parsed, Command::RejectProposal { reason: None });
    let mut versioned = body("seller", json!({}));
    versioned["expected_version"] = json!(null);
    assert_eq!(
        parse("accept_proposal", &versioned)
            .unwrap()
            .request
            .expected_version,
        None
    );
    let parsed = command(
        "post_message",
        &body("seller", json!({"text": "t", "attachments": null})),
    );
    assert_eq!(
        parsed,
        Command::PostMessage {
            text: "t".into(),
            attachments: vec![]
        }
    );
}

#[test]
fn a_required_field_given_as_null_is_invalid_request() {
    refused(
        "post_message",
        &body("seller", json!({"text": null})),
        ErrorCode::InvalidRequest,
    );
    refused(
        "accept_proposal",
        &body("seller", Value::Null),
        ErrorCode::InvalidRequest,
    );
}

// invalid_value

#[test]
fn an_id_not_matching_the_pattern_is_invalid_value() {
    for (pointer, bad) in [
        ("/command_id", "c 1"),
        ("/dispute_id", "d 1001"),
        ("/actor/id", "s.42"),
        ("/dispute_id", ""),
        ("/command_id", &"c".repeat(65)),
        ("/dispute_id", "dé"),
    ] {
        let mut wrong = body("seller", json!({}));
        *wrong.pointer_mut(pointer).unwrap() = json!(bad);
        let message = refused("accept_proposal", &wrong, ErrorCode::InvalidValue);
        let field = pointer.trim_start_matches('/').replace('/', ".");
        assert!(message.contains(&field), "{message}");
    }
    let mut longest = body("seller", json!({}));
    longest["dispute_id"] = json!("A-z_9".repeat(12) + "abcd");
    parse("accept_proposal", &longest).unwrap();
}

#[test]
fn ids_of_an_open_not_matching_the_pattern_are_invalid_value() {
    for field in ["order_id", "seller_id"] {
        let mut open = open_data();
        open[field] = json!("no/slashes");
        let message = refused("open", &body("buyer", open), ErrorCode::InvalidValue);
        assert!(message.contains(field), "{message}");
    }
}

#[test]
fn an_amount_not_above_zero_is_invalid_value() {
    refused(
        "counter_propose",
        &counter(json!({"solution": "partial_refund", "amount": 0})),
        ErrorCode::InvalidValue,
    );
    refused(
        "counter_propose",
        &counter(json!({"solution": "partial_refund", "amount": -5})),
        ErrorCode::InvalidValue,
    );
    refused(
        "counter_propose",
        &counter(json!({"solution": "return_and_refund", "amount": 0})),
        ErrorCode::InvalidValue,
    );
    let rule = body(
        "mediator",
        json!({"outcome": "partial_refund", "amount": -1, "responsible_party": "seller"}),
    );
    refused("rule", &rule, ErrorCode::InvalidValue);
    let mut open = open_data();
    open["order_amount"]["amount"] = json!(0);
    let message = refused("open", &body("buyer", open), ErrorCode::InvalidValue);
    assert!(message.contains("data.order_amount.amount"), "{message}");
}

#[test]
fn a_currency_not_three_upper_case_letters_is_invalid_value() {
    for currency in ["usd", "USDT", "US", "U$D", "ÜSD"] {
        let mut open = open_data();
        open["order_amount"]["currency"] = json!(currency);
        refused("open", &body("buyer", open), ErrorCode::InvalidValue);
    }
}

#[test]
fn text_over_4000_characters_is_invalid_value_counting_characters_not_bytes() {
    refused(
        "post_message",
        &body("buyer", json!({"text": "x".repeat(4001)})),
        ErrorCode::InvalidValue,
    );
    let wide = "é".repeat(4000);
    assert_eq!(
        command(
            "post_message",
            &body("buyer", json!({"text": wide.clone()}))
        ),
        Command::PostMessage {
            text: wide,
            attachments: vec![]
        }
    );
    for (command_type, data) in [
        ("reject_proposal", json!({"reason": "r".repeat(4001)})),
        ("withdraw", json!({"reason": "r".repeat(4001)})),
        (
            "submit_evidence",
            json!({"description": "d".repeat(4001), "attachments": []}),
        ),
        (
            "provide_return_address",
            json!({"address": "a".repeat(4001)}),
        ),
        (
            "submit_shipping_proof",
            json!({"carrier": "c", "tracking_number": "t".repeat(4001)}),
        ),
        (
            "rule",
            json!({"outcome": "full_refund", "responsible_party": "seller", "note": "n".repeat(4001)}),
        ),
    ] {
        let message = refused(command_type, &body("buyer", data), ErrorCode::InvalidValue);
        assert!(message.contains("4000"), "{message}");
    }
    let mut open = open_data();
    open["description"] = json!("d".repeat(4001));
    refused("open", &body("buyer", open), ErrorCode::InvalidValue);
}

#[test]
fn blank_required_text_is_invalid_value() {
    refused(
        "post_message",
        &body("buyer", json!({"text": "  "})),
        ErrorCode::InvalidValue,
    );
    refused(
        "provide_return_address",
        &body("seller", json!({"address": ""})),
        ErrorCode::InvalidValue,
    );
}

#[test]
fn more_than_20_attachments_or_one_over_512_characters_is_invalid_value() {
    let many: Vec<String> = (0..21).map(|i| format!("a{i}")).collect();
    refused(
        "post_message",
        &body("buyer", json!({"text": "x", "attachments": many})),
        ErrorCode::InvalidValue,
    );
    let twenty: Vec<String> = (0..20).map(|i| format!("a{i}")).collect();
    parse(
        "post_message",
        &body("buyer", json!({"text": "x", "attachments": twenty})),
    )
    .unwrap();
    let long = body(
        "buyer",
        json!({"description": "d", "attachments": ["a".repeat(513)]}),
    );
    refused("submit_evidence", &long, ErrorCode::InvalidValue);
    let longest = body(
        "buyer",
        json!({"description": "d", "attachments": ["a".repeat(512)]}),
    );
    parse("submit_evidence", &longest).unwrap();
}

#[test]
fn release_funds_proposed_by_a_party_is_invalid_value() {
    refused(
        "counter_propose",
        &counter(json!({"solution": "release_funds"})),
        ErrorCode::InvalidValue,
    );
    let mut open = open_data();
    open["proposal"] = json!({"solution": "release_funds"});
    refused("open", &body("buyer", open), ErrorCode::InvalidValue);
}

#[test]
fn an_opens_proposal_is_judged_against_its_own_order_amount() {
    for (proposal, code) in [
        (
            json!({"solution": "partial_refund", "amount": 12999}),
            Some(ErrorCode::InvalidValue),
        ),
        (json!({"solution": "partial_refund", "amount": 12998}), None),
        (
            json!({"solution": "return_and_refund", "amount": 13000}),
            Some(ErrorCode::InvalidValue),
        ),
        (
            json!({"solution": "return_and_refund", "amount": 12999}),
            None,
        ),
        (json!({"solution": "return_and_refund"}), None),
    ] {
        let mut open = open_data();
        open["proposal"] = proposal.clone();
        match code {
            Some(code) => _ = refused("open", &body("buyer", open), code),
            None => _ = command("open", &body("buyer", open)),
        }
    }
}

#[test]
fn a_counter_proposal_is_not_judged_against_an_order_amount_while_parsing() {
    let parsed = command(
        "counter_propose",
        &counter(json!({"solution": "partial_refund", "amount": 99999999})),
    );
    assert_eq!(
        parsed,
        Command::CounterPropose {
            proposal: ProposalTerms::PartialRefund(amount(99999999))
        }
    );
}

// order within step 2

#[test]
fn a_shape_error_beats_a_value_error_anywhere_in_the_body() {
    let mut both = body("seller", json!({"proposal": {"solution": "release_funds"}}));
    both["dispute_id"] = json!("bad id");
    both["surprise"] = json!(1);
    refused("counter_propose", &both, ErrorCode::InvalidRequest);
    let mut late_shape = body(
        "seller",
        json!({"proposal": {"solution": "partial_refund", "amount": 1.5}}),
    );
    late_shape["command_id"] = json!("bad id");
    refused("counter_propose", &late_shape, ErrorCode::InvalidRequest);
}

#[test]
fn the_system_role_parses_and_is_left_for_decide_to_forbid() {
    let mut system = body("seller", json!({}));
    system["actor"] = json!({"role": "system", "id": "scheduler"});
    assert_eq!(
        parse("accept_proposal", &system)
            .unwrap()
            .request
            .actor
            .role,
        Role::System
    );
}

#[test]
fn the_rule_command_parses_outcome_amount_party_and_note() {
    let rule = body(
        "mediator",
        json!({"outcome": "return_and_refund", "responsible_party": "logistics", "note": "n"}),
    );
    assert_eq!(
        command("rule", &rule),
        Command::Rule {
            outcome: RulingTerms::ReturnAndRefund(None),
            responsible_party: disputes_domain::ResponsibleParty::Logistics,
            note: Some("n".into()),
        }
    );
}

#[test]
fn configured_limits_apply() {
    let limits = Limits {
        text_chars_max: 5,
        ..Limits::default()
    };
    let raw = serde_json::to_vec(&body("buyer", json!({"text": "123456"}))).unwrap();
    assert_eq!(
        parse_command("post_message", &raw, &limits)
            .unwrap_err()
            .code(),
        ErrorCode::InvalidValue
    );
    let limits = Limits {
        body_bytes_max: 10,
        ..Limits::default()
    };
    assert_eq!(
        parse_command("post_message", &raw, &limits)
            .unwrap_err()
            .code(),
        ErrorCode::InvalidRequest
    );
}

#[test]
fn an_open_against_oneself_is_invalid_value_but_a_seller_opening_is_left_for_decide_to_forbid() {
    let mut open = open_data();
    open["seller_id"] = json!("b-1");
    let message = refused("open", &body("buyer", open), ErrorCode::InvalidValue);
    assert!(message.contains("seller_id"), "{message}");
    let parsed = parse("open", &body("seller", open_data())).unwrap();
    assert_eq!(parsed.request.actor.role, Role::Seller);
}
