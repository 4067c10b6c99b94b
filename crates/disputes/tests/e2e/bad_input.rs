//! Bad input gets its error code and appends nothing (checked through `history`).

use serde_json::{json, Value};

use crate::support::{shared_client, unique, Dispute};

async fn opened() -> Dispute {
    let d = Dispute::new(&shared_client().await);
    d.open("not_received", 12999, json!({"solution": "full_refund"}))
        .await;
    d
}

async fn assert_code(d: &Dispute, command_type: &str, body: impl Into<bytes::Bytes>, code: &str) {
    let reply = d.client.cmd_raw(command_type, body).await;
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["error"]["code"], json!(code), "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "a message says why: {reply}"
    );
}

#[tokio::test]
async fn malformed_bodies_are_invalid_request_and_append_nothing() {
    let d = opened().await;
    bodies_that_are_no_json_object_are_invalid_request(&d).await;
    counter_proposals_of_the_wrong_shape_are_invalid_request(&d).await;
    an_unknown_field_a_missing_actor_or_an_oversized_body_is_invalid_request(&d).await;
    assert_eq!(d.history().await.len(), 2, "only the open's two events");
}

async fn bodies_that_are_no_json_object_are_invalid_request(d: &Dispute) {
    assert_code(d, "accept_proposal", "not json", "invalid_request").await;
    assert_code(d, "accept_proposal", "[1,2]", "invalid_request").await;
}

/// Fractional, textual or missing amounts, unknown solutions, unknown or missing fields.
async fn counter_proposals_of_the_wrong_shape_are_invalid_request(d: &Dispute) {
    let counter = |data: Value| {
        let mut body = d.body("seller", json!({}));
        body["data"] = data;
        serde_json::to_vec(&body).unwrap()
    };
    assert_code(
        d,
        "counter_propose",
        counter(json!({"proposal": {"solution": "partial_refund", "amount": 10.5}})),
        "invalid_request",
    )
    .await;
    assert_code(
        d,
        "counter_propose",
        counter(json!({"proposal": {"solution": "partial_refund", "amount": "10"}})),
        "invalid_request",
    )
    .await;
    assert_code(
        d,
        "counter_propose",
        counter(json!({"proposal": {"solution": "store_credit"}})),
        "invalid_request",
    )
    .await;
    assert_code(
        d,
        "counter_propose",
        counter(json!({"proposal": {"solution": "full_refund", "amount": 5}})),
        "invalid_request",
    )
    .await;
    assert_code(
        d,
        "counter_propose",
        counter(json!({"proposal": {"solution": "partial_refund"}})),
        "invalid_request",
    )
    .await;
    assert_code(d, "counter_propose", counter(json!({})), "invalid_request").await;
    assert_code(
        d,
        "counter_propose",
        counter(json!({"proposal": {"solution": "full_refund"}, "extra": 1})),
        "invalid_request",
    )
    .await;
}

async fn an_unknown_field_a_missing_actor_or_an_oversized_body_is_invalid_request(d: &Dispute) {
    let mut unknown_top = d.body("seller", json!({}));
    unknown_top["surprise"] = json!(true);
    assert_code(
        d,
        "accept_proposal",
        serde_json::to_vec(&unknown_top).unwrap(),
        "invalid_request",
    )
    .await;
    let mut no_actor = d.body("seller", json!({}));
    no_actor.as_object_mut().unwrap().remove("actor");
    assert_code(
        d,
        "accept_proposal",
        serde_json::to_vec(&no_actor).unwrap(),
        "invalid_request",
    )
    .await;
    let mut huge = d.body("seller", json!({"text": "x".repeat(70 * 1024)}));
    huge["data"]["attachments"] = json!([]);
    assert_code(
        d,
        "post_message",
        serde_json::to_vec(&huge).unwrap(),
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn out_of_range_values_are_invalid_value_and_append_nothing() {
    let d = opened().await;
    out_of_range_proposals_are_invalid_value(&d).await;
    a_too_long_message_or_too_many_attachments_are_invalid_value(&d).await;
    ids_with_forbidden_characters_are_invalid_value(&d).await;
    assert_eq!(d.history().await.len(), 2);
}

/// A zero, negative or whole-order partial refund, and a solution the seller may not propose.
async fn out_of_range_proposals_are_invalid_value(d: &Dispute) {
    let counter = |data: Value| serde_json::to_vec(&d.body("seller", data)).unwrap();
    assert_code(
        d,
        "counter_propose",
        counter(json!({"proposal": {"solution": "partial_refund", "amount": 0}})),
        "invalid_value",
    )
    .await;
    assert_code(
        d,
        "counter_propose",
        counter(json!({"proposal": {"solution": "partial_refund", "amount": -5}})),
        "invalid_value",
    )
    .await;
    assert_code(
        d,
        "counter_propose",
        counter(json!({"proposal": {"solution": "partial_refund", "amount": 12999}})),
        "invalid_value",
    )
    .await;
    assert_code(
        d,
        "counter_propose",
        counter(json!({"proposal": {"solution": "release_funds"}})),
        "invalid_value",
    )
    .await;
}

async fn a_too_long_message_or_too_many_attachments_are_invalid_value(d: &Dispute) {
    let message = |data: Value| serde_json::to_vec(&d.body("buyer", data)).unwrap();
    assert_code(
        d,
        "post_message",
        message(json!({"text": "x".repeat(4001)})),
        "invalid_value",
    )
    .await;
    let attachments: Vec<String> = (0..21).map(|i| format!("a{i}")).collect();
    assert_code(
        d,
        "post_message",
        message(json!({"text": "x", "attachments": attachments})),
        "invalid_value",
    )
    .await;
}

/// A dispute id with a space and an actor id with a dot.
async fn ids_with_forbidden_characters_are_invalid_value(d: &Dispute) {
    let mut bad_id = d.body("seller", json!({}));
    bad_id["dispute_id"] = json!("d 1001");
    assert_code(
        d,
        "accept_proposal",
        serde_json::to_vec(&bad_id).unwrap(),
        "invalid_value",
    )
    .await;
    let mut bad_actor = d.body("seller", json!({}));
    bad_actor["actor"]["id"] = json!("s.42");
    assert_code(
        d,
        "accept_proposal",
        serde_json::to_vec(&bad_actor).unwrap(),
        "invalid_value",
    )
    .await;
}

#[tokio::test]
async fn open_judges_amounts_and_currency_before_the_dispute_exists() {
    let client = shared_client().await;
    let d = Dispute::new(&client);
    let open = |amount: Value, currency: &str, proposal: Value| {
        serde_json::to_vec(&d.body(
            "buyer",
            json!({"order_id": d.order, "seller_id": d.seller, "reason": "not_received",
            "order_amount": {"amount": amount, "currency": currency}, "proposal": proposal}),
        ))
        .unwrap()
    };
    assert_code(
        &d,
        "open",
        open(json!(0), "USD", json!({"solution": "full_refund"})),
        "invalid_value",
    )
    .await;
    assert_code(
        &d,
        "open",
        open(json!(100), "usd", json!({"solution": "full_refund"})),
        "invalid_value",
    )
    .await;
    assert_code(
        &d,
        "open",
        open(json!(100), "USDT", json!({"solution": "full_refund"})),
        "invalid_value",
    )
    .await;
    assert_code(
        &d,
        "open",
        open(
            json!(100),
            "USD",
            json!({"solution": "partial_refund", "amount": 100}),
        ),
        "invalid_value",
    )
    .await;
    assert_code(
        &d,
        "open",
        open(
            json!(100),
            "USD",
            json!({"solution": "return_and_refund", "amount": 101}),
        ),
        "invalid_value",
    )
    .await;
    assert_code(
        &d,
        "open",
        open(json!(100.0), "USD", json!({"solution": "full_refund"})),
        "invalid_request",
    )
    .await;
    assert!(d.history().await.is_empty(), "nothing appended");
    let exists = client.query("get", json!({"dispute_id": d.id})).await;
    assert_eq!(exists["error"]["code"], "not_found", "{exists}");
}

#[tokio::test]
async fn unknown_commands_missing_disputes_and_the_system_role_are_refused() {
    let d = opened().await;
    assert_code(
        &d,
        "escalate",
        serde_json::to_vec(&d.body("buyer", json!({}))).unwrap(),
        "unknown_command",
    )
    .await;
    assert_code(
        &d,
        "expire_deadline",
        serde_json::to_vec(&d.body("buyer", json!({}))).unwrap(),
        "unknown_command",
    )
    .await;
    let mut missing = d.body("seller", json!({}));
    missing["dispute_id"] = json!(unique("nope"));
    assert_code(
        &d,
        "accept_proposal",
        serde_json::to_vec(&missing).unwrap(),
        "not_found",
    )
    .await;
    let mut system = d.body("seller", json!({}));
    system["actor"] = json!({"role": "system", "id": "scheduler"});
    assert_code(
        &d,
        "accept_proposal",
        serde_json::to_vec(&system).unwrap(),
        "forbidden",
    )
    .await;
    let mut role = d.body("seller", json!({}));
    role["actor"]["role"] = json!("admin");
    assert_code(
        &d,
        "accept_proposal",
        serde_json::to_vec(&role).unwrap(),
        "invalid_request",
    )
    .await;
    assert_eq!(d.history().await.len(), 2);
}

/// `body` as text with `FIELD` replaced: for what `json!` cannot write.
fn text_body(d: &Dispute, role: &str, data: &str) -> Vec<u8> {
    let mut body = serde_json::to_string(&d.body(role, json!({}))).unwrap();
    body = body.replace("\"data\":{}", &format!("\"data\":{data}"));
    assert!(body.contains(data), "{body}");
    body.into_bytes()
}

#[tokio::test]
async fn integers_out_of_range_are_invalid_value_however_they_are_written() {
    let d = opened().await;
    for amount in ["-0", "0", "-3", "9007199254740992", "18446744073709551616"] {
        let data = format!(r#"{{"proposal":{{"solution":"partial_refund","amount":{amount}}}}}"#);
        let body = text_body(&d, "seller", &data);
        assert_code(&d, "counter_propose", body, "invalid_value").await;
    }
    for amount in ["-0.0", "5.5", "1e3"] {
        let data = format!(r#"{{"proposal":{{"solution":"partial_refund","amount":{amount}}}}}"#);
        let body = text_body(&d, "seller", &data);
        assert_code(&d, "counter_propose", body, "invalid_request").await;
    }
    assert_eq!(d.history().await.len(), 2, "nothing appended");
}

#[tokio::test]
async fn a_key_given_twice_is_invalid_request_in_commands_and_queries() {
    let d = opened().await;
    // The last value would make the buyer the sender of an `accept_proposal` it may not send.
    let body = serde_json::to_string(&d.body("mediator", json!({}))).unwrap();
    let twice = body.replace(
        "\"role\":\"mediator\"",
        "\"role\":\"mediator\",\"role\":\"seller\"",
    );
    assert_ne!(body, twice);
    assert_code(&d, "accept_proposal", twice, "invalid_request").await;
    let reply = d
        .client
        .nats()
        .request(
            "disputes.query.get",
            format!(r#"{{"dispute_id":"{0}","dispute_id":"{0}"}}"#, d.id).into(),
        )
        .await
        .unwrap();
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["error"]["code"], "invalid_request", "{reply}");
    assert_eq!(d.history().await.len(), 2, "nothing appended");
}

#[tokio::test]
async fn a_list_cursor_the_service_did_not_hand_out_is_invalid_value() {
    let client = shared_client().await;
    for after in ["zzzz-not-a-dispute", &unique("d")] {
        let answer = client.query("list", json!({ "after": after })).await;
        assert_eq!(
            answer["error"]["code"], "invalid_value",
            "{after}: {answer}"
        );
    }
    let answer = client
        .query("list", json!({"after": "not a cursor!"}))
        .await;
    assert_eq!(answer["error"]["code"], "invalid_value", "{answer}");
    // A cursor handed out is taken (read once the read models hold the dispute).
    let d = Dispute::new(&client);
    let seq = d
        .open("not_received", 12999, json!({"solution": "full_refund"}))
        .await["seq"]
        .clone();
    let answer = client
        .query("list", json!({ "after": d.id, "min_seq": seq }))
        .await;
    assert_eq!(answer["ok"], true, "{answer}");
}

#[tokio::test]
async fn an_id_not_matching_the_pattern_is_invalid_value_on_every_path() {
    let d = opened().await;
    for command_id in ["", "has space", &"x".repeat(65)] {
        let mut body = d.body("buyer", json!({"text": "hello"}));
        body["command_id"] = json!(command_id);
        let reply = d.client.cmd("post_message", body).await;
        assert_eq!(
            reply["error"]["code"], "invalid_value",
            "command_id {command_id:?}: {reply}"
        );
    }
    let mut body = d.body("buyer", json!({"text": "hello"}));
    body["dispute_id"] = json!("");
    let reply = d.client.cmd("post_message", body).await;
    assert_eq!(reply["error"]["code"], "invalid_value", "{reply}");
    assert_eq!(d.history().await.len(), 2, "nothing appended");
}

#[tokio::test]
async fn an_open_naming_an_order_that_has_a_dispute_is_already_exists_whoever_sends_it() {
    let first = opened().await;
    let mut second = Dispute::new(&first.client);
    second.order = first.order.clone();
    second.seller = first.seller.clone();
    let open = json!({"order_id": first.order, "seller_id": first.seller, "reason": "not_received",
        "order_amount": {"amount": 100, "currency": "USD"}, "proposal": {"solution": "full_refund"}});
    // Step 3 (already_exists) comes before step 4 (forbidden) and step 5 (version_conflict).
    second
        .refused("open", "seller", open.clone(), "already_exists")
        .await;
    second
        .refused("open", "mediator", open.clone(), "already_exists")
        .await;
    let mut body = second.body("buyer", open);
    body["expected_version"] = json!(7);
    let reply = second.client.cmd("open", body).await;
    assert_eq!(reply["error"]["code"], "already_exists", "{reply}");
    assert!(second.history().await.is_empty());
    // A new order by the seller is still forbidden.
    let third = Dispute::new(&first.client);
    let open = json!({"order_id": third.order, "seller_id": third.seller, "reason": "not_received",
        "order_amount": {"amount": 100, "currency": "USD"}, "proposal": {"solution": "full_refund"}});
    third.refused("open", "seller", open, "forbidden").await;
}
