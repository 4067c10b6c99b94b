//! Every path of rules.md over NATS: replies, statuses, amounts, history and the events on JetStream.

use serde_json::{json, Value};

use crate::support::{assert_payout, shared_client, Dispute};

#[tokio::test]
async fn seller_accepting_a_full_refund_resolves_by_agreement() {
    let d = Dispute::new(&shared_client().await);
    let opened = d
        .open("not_received", 12999, json!({"solution": "full_refund"}))
        .await;
    assert_eq!(opened["status"], "awaiting_seller_response");
    assert_eq!(
        opened["version"], 2,
        "DisputeOpened + DeadlineSet: {opened}"
    );
    assert_eq!(opened["events"][0]["type"], "DisputeOpened");
    assert_eq!(opened["events"][1]["type"], "DeadlineSet");
    assert_eq!(opened["events"][1]["data"]["deadline"], "seller_response");

    let accepted = d.ok("accept_proposal", "seller", json!({})).await;
    assert_eq!(accepted["status"], "resolved");
    assert_payout(&d.resolution().await, "full_refund", 12999, 0, "agreement");

    let view = d.view(&accepted["seq"]).await;
    assert_eq!(view["status"], "resolved");
    assert_eq!(view["stage"], "closed");
    assert_eq!(view["deadline"], Value::Null);
    assert_eq!(view["resolution"]["refund_amount"], 12999);
    assert_eq!(
        view["actions"],
        json!({"buyer": [], "seller": [], "mediator": []})
    );

    let history = d.history().await;
    let on_stream = wait_stream(&d, history.len()).await;
    let ids = |events: &[Value]| {
        events
            .iter()
            .map(|e| e["event_id"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&on_stream),
        ids(&history),
        "JetStream holds the history, once each, in order"
    );
    assert_eq!(
        on_stream, history,
        "the same envelopes, byte for byte as JSON"
    );
}

#[tokio::test]
async fn seller_accepting_a_partial_refund_splits_the_order_amount() {
    let d = Dispute::new(&shared_client().await);
    d.open(
        "not_as_described",
        10000,
        json!({"solution": "partial_refund", "amount": 2500}),
    )
    .await;
    d.ok("accept_proposal", "seller", json!({})).await;
    assert_payout(
        &d.resolution().await,
        "partial_refund",
        2500,
        7500,
        "agreement",
    );
}

#[tokio::test]
async fn an_agreed_return_runs_address_tracking_and_receipt_to_a_refund() {
    let d = Dispute::new(&shared_client().await);
    d.open(
        "not_as_described",
        8000,
        json!({"solution": "return_and_refund"}),
    )
    .await;
    let r = d.ok("accept_proposal", "seller", json!({})).await;
    assert_eq!(r["status"], "awaiting_return_address");
    let view = d.view(&r["seq"]).await;
    assert_eq!(view["stage"], "execution");
    assert_eq!(view["deadline"]["deadline"], "return_address");
    assert_eq!(
        view["actions"]["seller"],
        json!(["provide_return_address", "post_message"])
    );

    let r = d
        .ok(
            "provide_return_address",
            "seller",
            json!({"address": "1 Return St"}),
        )
        .await;
    assert_eq!(r["status"], "awaiting_return_shipment");
    let r = d
        .ok(
            "provide_return_tracking",
            "buyer",
            json!({"carrier": "UPS", "tracking_number": "1Z"}),
        )
        .await;
    assert_eq!(r["status"], "awaiting_return_receipt");
    let r = d.ok("confirm_return_received", "seller", json!({})).await;
    assert_eq!(r["status"], "resolved");
    assert_payout(
        &d.resolution().await,
        "return_and_refund",
        8000,
        0,
        "return_received",
    );
}

#[tokio::test]
async fn buyer_accepting_the_counter_proposal_resolves_on_its_terms() {
    let d = Dispute::new(&shared_client().await);
    d.open("not_received", 5000, json!({"solution": "full_refund"}))
        .await;
    let r = d
        .ok(
            "counter_propose",
            "seller",
            json!({"proposal": {"solution": "partial_refund", "amount": 1000}}),
        )
        .await;
    assert_eq!(r["status"], "awaiting_buyer_decision");
    let view = d.view(&r["seq"]).await;
    assert_eq!(
        view["proposal"],
        json!({"solution": "partial_refund", "amount": 1000})
    );
    d.ok("accept_proposal", "buyer", json!({})).await;
    assert_payout(
        &d.resolution().await,
        "partial_refund",
        1000,
        4000,
        "agreement",
    );
}

#[tokio::test]
async fn not_received_escalates_to_shipping_proof_and_a_ruling() {
    let d = Dispute::new(&shared_client().await);
    d.open("not_received", 4000, json!({"solution": "full_refund"}))
        .await;
    d.ok(
        "counter_propose",
        "seller",
        json!({"proposal": {"solution": "partial_refund", "amount": 100}}),
    )
    .await;
    let r = d
        .ok("reject_proposal", "buyer", json!({"reason": "no"}))
        .await;
    assert_eq!(r["status"], "awaiting_shipping_proof");
    assert!(
        r["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "DisputeEscalated" && e["data"]["cause"] == "buyer_rejected"),
        "{r}"
    );
    let view = d.view(&r["seq"]).await;
    assert_eq!(view["stage"], "escalated");
    let r = d
        .ok(
            "submit_shipping_proof",
            "seller",
            json!({"carrier": "DHL", "tracking_number": "JD0001"}),
        )
        .await;
    assert_eq!(r["status"], "under_review");
    let view = d.view(&r["seq"]).await;
    assert_eq!(
        view["deadline"],
        Value::Null,
        "under_review has no deadline"
    );
    d.refused(
        "rule",
        "mediator",
        json!({"outcome": "return_and_refund", "responsible_party": "seller"}),
        "invalid_value",
    )
    .await;
    d.refused(
        "rule",
        "seller",
        json!({"outcome": "release_funds", "responsible_party": "buyer"}),
        "forbidden",
    )
    .await;
    let r = d
        .ok(
            "rule",
            "mediator",
            json!({"outcome": "release_funds", "responsible_party": "buyer", "note": "delivered"}),
        )
        .await;
    assert_eq!(r["status"], "resolved");
    assert_payout(&d.resolution().await, "release_funds", 0, 4000, "ruling");
}

#[tokio::test]
async fn the_escalation_carries_the_text_the_buyer_gave_when_rejecting_or_null() {
    for reason in [json!("the counter-offer is too low"), Value::Null] {
        let d = Dispute::new(&shared_client().await);
        d.open("not_received", 4000, json!({"solution": "full_refund"}))
            .await;
        d.ok(
            "counter_propose",
            "seller",
            json!({"proposal": {"solution": "partial_refund", "amount": 100}}),
        )
        .await;
        let data = match &reason {
            Value::Null => json!({}),
            text => json!({ "reason": text }),
        };
        let r = d.ok("reject_proposal", "buyer", data).await;
        let events = r["events"].as_array().unwrap();
        let escalated = events
            .iter()
            .find(|e| e["type"] == "DisputeEscalated")
            .unwrap();
        assert_eq!(escalated["data"]["cause"], "buyer_rejected");
        assert_eq!(escalated["data"]["reason"], reason, "{escalated}");
    }
}

#[tokio::test]
async fn not_as_described_escalates_to_evidence_and_a_ruled_return_with_a_problem() {
    let d = Dispute::new(&shared_client().await);
    d.open("not_as_described", 9000, json!({"solution": "full_refund"}))
        .await;
    d.ok(
        "counter_propose",
        "seller",
        json!({"proposal": {"solution": "partial_refund", "amount": 100}}),
    )
    .await;
    let r = d.ok("reject_proposal", "buyer", json!({})).await;
    assert_eq!(r["status"], "awaiting_buyer_evidence");
    let evidence = json!({"description": "torn", "attachments": ["a.jpg"]});
    let r = d.ok("submit_evidence", "buyer", evidence).await;
    assert_eq!(r["status"], "under_review");
    let ruling =
        json!({"outcome": "return_and_refund", "amount": 6000, "responsible_party": "seller"});
    let r = d.ok("rule", "mediator", ruling).await;
    assert_eq!(r["status"], "awaiting_return_address");
    let address = json!({"address": "2 Return St"});
    d.ok("provide_return_address", "seller", address).await;
    let tracking = json!({"carrier": "UPS", "tracking_number": "1Z2"});
    d.ok("provide_return_tracking", "buyer", tracking).await;
    let problem = json!({"problem": "damaged", "note": "smashed"});
    let r = d.ok("report_return_problem", "seller", problem).await;
    assert_eq!(r["status"], "under_review");
    let view = d.view(&r["seq"]).await;
    assert_eq!(
        view["stage"], "escalated",
        "a return problem sends the dispute back to escalated"
    );
    let second_return = json!({"outcome": "return_and_refund", "responsible_party": "seller"});
    d.refused("rule", "mediator", second_return, "invalid_value")
        .await;
    let ruling =
        json!({"outcome": "partial_refund", "amount": 3000, "responsible_party": "logistics"});
    d.ok("rule", "mediator", ruling).await;
    let resolution = d.resolution().await;
    assert_payout(&resolution, "partial_refund", 3000, 6000, "ruling");
}

#[tokio::test]
async fn every_status_can_be_reached_by_the_shortest_path() {
    let client = shared_client().await;
    let statuses = [
        ("not_received", "awaiting_seller_response"),
        ("not_received", "awaiting_buyer_decision"),
        ("not_received", "awaiting_shipping_proof"),
        ("not_as_described", "awaiting_buyer_evidence"),
        ("not_received", "under_review"),
        ("not_as_described", "awaiting_return_address"),
        ("not_as_described", "awaiting_return_shipment"),
        ("not_as_described", "awaiting_return_receipt"),
        ("not_received", "resolved"),
    ];
    for (reason, status) in statuses {
        let d = Dispute::new(&client);
        let reply = d.drive_to(reason, 5000, status).await;
        assert_eq!(d.view(&reply["seq"]).await["status"], status);
    }
}

#[tokio::test]
async fn withdrawing_releases_the_funds_and_ends_the_dispute() {
    let d = Dispute::new(&shared_client().await);
    d.open("not_received", 700, json!({"solution": "full_refund"}))
        .await;
    d.ok(
        "post_message",
        "seller",
        json!({"text": "shipped yesterday"}),
    )
    .await;
    let r = d
        .ok("withdraw", "buyer", json!({"reason": "arrived"}))
        .await;
    assert_eq!(r["status"], "resolved");
    assert_payout(&d.resolution().await, "release_funds", 0, 700, "withdrawn");
    d.refused(
        "post_message",
        "buyer",
        json!({"text": "thanks"}),
        "invalid_state",
    )
    .await;
    d.refused("withdraw", "buyer", json!({}), "invalid_state")
        .await;
}

#[tokio::test]
async fn messages_append_to_the_thread_without_changing_the_status() {
    let d = Dispute::new(&shared_client().await);
    d.open("not_received", 700, json!({"solution": "full_refund"}))
        .await;
    for role in ["buyer", "seller", "mediator"] {
        let r = d
            .ok(
                "post_message",
                role,
                json!({"text": format!("hello from {role}"), "attachments": ["x.png"]}),
            )
            .await;
        assert_eq!(r["status"], "awaiting_seller_response");
    }
    let types = d.types().await;
    assert_eq!(types.iter().filter(|t| *t == "MessagePosted").count(), 3);
}

#[tokio::test]
async fn a_second_dispute_on_the_same_order_already_exists() {
    let client = shared_client().await;
    let d = Dispute::new(&client);
    d.open("not_received", 700, json!({"solution": "full_refund"}))
        .await;
    let mut again = Dispute::new(&client);
    again.order = d.order.clone();
    again.buyer = d.buyer.clone();
    let reply = again
        .send("open", "buyer", json!({"order_id": again.order, "seller_id": again.seller, "reason": "not_received",
            "order_amount": {"amount": 700, "currency": "USD"}, "proposal": {"solution": "full_refund"}}))
        .await;
    assert_eq!(reply["error"]["code"], "already_exists", "{reply}");
    assert!(
        again.history().await.is_empty(),
        "nothing appended for the refused open"
    );
    let same_id = d
        .send("open", "buyer", json!({"order_id": "o-other", "seller_id": d.seller, "reason": "not_received",
            "order_amount": {"amount": 700, "currency": "USD"}, "proposal": {"solution": "full_refund"}}))
        .await;
    assert_eq!(same_id["error"]["code"], "already_exists", "{same_id}");
}

#[tokio::test]
async fn a_repeated_command_id_appends_once_and_replays_the_first_reply() {
    let d = Dispute::new(&shared_client().await);
    d.open("not_received", 700, json!({"solution": "full_refund"}))
        .await;
    let body = d.body("seller", json!({"text": "once"}));
    let first = d.client.cmd("post_message", body.clone()).await;
    let second = d.client.cmd("post_message", body.clone()).await;
    assert_eq!(first["ok"], true);
    assert_eq!(second["replayed"], true, "{second}");
    assert_eq!(second["events"], first["events"]);
    assert_eq!(second["seq"], first["seq"]);
    let mut other = body.clone();
    other["data"]["text"] = json!("twice");
    let reused = d.client.cmd("post_message", other).await;
    assert_eq!(reused["error"]["code"], "invalid_request", "{reused}");
    assert_eq!(
        d.types()
            .await
            .iter()
            .filter(|t| *t == "MessagePosted")
            .count(),
        1
    );
}

#[tokio::test]
async fn the_wrong_party_is_forbidden_and_the_wrong_status_is_invalid_state() {
    let d = Dispute::new(&shared_client().await);
    d.open("not_received", 700, json!({"solution": "full_refund"}))
        .await;
    d.refused(
        "counter_propose",
        "buyer",
        json!({"proposal": {"solution": "full_refund"}}),
        "forbidden",
    )
    .await;
    let mut body = d.body("seller", json!({}));
    body["actor"]["id"] = json!("s-someone-else");
    let reply = d.client.cmd("accept_proposal", body).await;
    assert_eq!(reply["error"]["code"], "forbidden", "{reply}");
    d.refused("accept_proposal", "buyer", json!({}), "invalid_state")
        .await;
    d.refused(
        "submit_shipping_proof",
        "seller",
        json!({"carrier": "DHL", "tracking_number": "1"}),
        "invalid_state",
    )
    .await;
    d.refused(
        "rule",
        "mediator",
        json!({"outcome": "full_refund", "responsible_party": "seller"}),
        "invalid_state",
    )
    .await;
    let mut stale = d.body("seller", json!({}));
    stale["expected_version"] = json!(1);
    let reply = d.client.cmd("accept_proposal", stale).await;
    assert_eq!(reply["error"]["code"], "version_conflict", "{reply}");
    assert_eq!(d.history().await.len(), 2, "refusals append nothing");
}

#[tokio::test]
async fn list_deadlines_and_stats_answer_from_the_read_models() {
    let client = shared_client().await;
    let d = Dispute::new(&client);
    let r = d
        .open("not_received", 700, json!({"solution": "full_refund"}))
        .await;
    let seq = r["seq"].clone();
    let list = client
        .query("list", json!({"seller_id": d.seller, "min_seq": seq}))
        .await;
    assert_eq!(list["ok"], true, "{list}");
    assert_eq!(list["disputes"][0]["dispute_id"], json!(d.id));
    assert_eq!(list["next"], Value::Null);
    let by_status = client
        .query(
            "list",
            json!({"status": "awaiting_seller_response", "buyer_id": d.buyer}),
        )
        .await;
    assert_eq!(
        by_status["disputes"].as_array().unwrap().len(),
        1,
        "{by_status}"
    );
    let deadlines = client.query("deadlines", json!({"limit": 500})).await;
    assert!(
        deadlines["deadlines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["dispute_id"] == json!(d.id)),
        "{deadlines}"
    );
    let stats = client.query("stats", json!({"seller_id": d.seller})).await;
    assert_eq!(stats["stats"]["total"], 1, "{stats}");
    assert_eq!(stats["stats"]["open"], 1);
    assert_eq!(stats["stats"]["by_status"]["awaiting_seller_response"], 1);
    let r = d.ok("withdraw", "buyer", json!({})).await;
    let stats = client
        .query("stats", json!({"seller_id": d.seller, "min_seq": r["seq"]}))
        .await;
    assert_eq!(stats["stats"]["open"], 0, "{stats}");
    assert_eq!(
        stats["stats"]["resolved_by_basis"]["withdrawn"], 1,
        "{stats}"
    );
    assert_eq!(stats["stats"]["by_status"]["resolved"], 1, "{stats}");
}

/// Waits until JetStream holds `n` events of the dispute, then returns them.
pub(crate) async fn wait_stream(d: &Dispute, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let events = d.client.stream_events(&d.id).await;
        if events.len() >= n {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("JetStream did not get {n} events of {}", d.id);
}

#[tokio::test]
async fn the_service_answers_the_standard_nats_micro_discovery() {
    let client = shared_client().await;
    let ping = client
        .nats()
        .request("$SRV.PING.disputes", "".into())
        .await
        .expect("$SRV.PING");
    let ping: Value = serde_json::from_slice(&ping.payload).unwrap();
    assert_eq!(ping["name"], "disputes", "{ping}");
    let info = client
        .nats()
        .request("$SRV.INFO.disputes", "".into())
        .await
        .expect("$SRV.INFO");
    let info: Value = serde_json::from_slice(&info.payload).unwrap();
    let subjects: Vec<&str> = info["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert!(
        subjects.contains(&"disputes.cmd.*") && subjects.contains(&"disputes.query.*"),
        "{info}"
    );
    assert!(
        info["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["queue_group"] == "disputes"),
        "{info}"
    );
    let stats = client
        .nats()
        .request("$SRV.STATS.disputes", "".into())
        .await
        .expect("$SRV.STATS");
    let stats: Value = serde_json::from_slice(&stats.payload).unwrap();
    assert_eq!(stats["name"], "disputes", "{stats}");
}

/// A refusal is a JSON body *and* the services API's error headers, and `$SRV.STATS` counts it as
/// an error of the endpoint of its command type: after N refusals, N errors.
#[tokio::test]
async fn refusals_carry_nats_service_error_headers_and_count_in_srv_stats() {
    let nats = crate::kit::NatsServer::start();
    let mut service = crate::kit::Service::start(&nats.url(), "");
    let client = crate::kit::Client::connect(&nats.url()).await;
    service.wait_ready(&client).await;
    let d = Dispute::new(&client);
    let reply = d
        .open("not_received", 12999, json!({"solution": "full_refund"}))
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    const N: u64 = 7;
    for _ in 0..N {
        // The seller may not withdraw: forbidden, every time.
        let body = serde_json::to_vec(&d.body("seller", json!({}))).unwrap();
        let reply = client
            .nats()
            .request("disputes.cmd.withdraw", body.into())
            .await
            .expect("withdraw");
        let headers = reply.headers.as_ref().expect("a refusal has headers");
        assert_eq!(
            headers.get("Nats-Service-Error-Code").map(|v| v.as_str()),
            Some("403")
        );
        let text = headers.get("Nats-Service-Error").expect("error text");
        assert!(text.as_str().starts_with("forbidden: "), "{text:?}");
        let body: Value = serde_json::from_slice(&reply.payload).expect("JSON body");
        assert_eq!(body["error"]["code"], "forbidden", "{body}");
    }
    // `min_seq`: the read models may not hold the open yet (they follow the log).
    let get = json!({"dispute_id": d.id, "min_seq": reply["seq"]});
    let accepted = client
        .nats()
        .request(
            "disputes.query.get",
            serde_json::to_vec(&get).unwrap().into(),
        )
        .await
        .expect("get");
    assert!(accepted.headers.is_none(), "an answer has no error headers");
    let stats = client
        .nats()
        .request("$SRV.STATS.disputes", "".into())
        .await
        .expect("$SRV.STATS");
    let stats: Value = serde_json::from_slice(&stats.payload).unwrap();
    assert_eq!(stats["type"], "io.nats.micro.v1.stats_response", "{stats}");
    let endpoint = |name: &str| {
        stats["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no endpoint {name}: {stats}"))
    };
    assert_eq!(endpoint("withdraw")["num_requests"], N, "{stats}");
    assert_eq!(endpoint("withdraw")["num_errors"], N, "{stats}");
    assert_eq!(endpoint("open")["num_requests"], 1, "{stats}");
    assert_eq!(endpoint("open")["num_errors"], 0, "{stats}");
    assert_eq!(endpoint("get")["num_errors"], 0, "{stats}");
    assert_eq!(endpoint("withdraw")["subject"], "disputes.cmd.withdraw");
    let errors: u64 = stats["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["num_errors"].as_u64().unwrap())
        .sum();
    assert_eq!(errors, N, "{stats}");
}

/// The services API answers only on admitted reply subjects, like every request: a `$SRV.PING`
/// whose reply subject is not an `_INBOX.` one gets no answer; the same on an inbox does.
#[tokio::test]
async fn srv_discovery_answers_only_on_admitted_reply_subjects() {
    use futures::StreamExt as _;
    let client = shared_client().await;
    let nats = client.nats();
    let ask = |reply: &'static str| async move {
        let mut answers = nats.subscribe(reply).await.unwrap();
        nats.publish_with_reply("$SRV.PING.disputes", reply, "".into())
            .await
            .unwrap();
        nats.flush().await.unwrap();
        tokio::time::timeout(std::time::Duration::from_millis(700), answers.next())
            .await
            .ok()
            .flatten()
    };
    assert!(
        ask("elsewhere.srv.reply").await.is_none(),
        "answered a refused reply subject"
    );
    let answer = ask("_INBOX.srvtest.reply")
        .await
        .expect("answered on an inbox");
    let ping: Value = serde_json::from_slice(&answer.payload).unwrap();
    assert_eq!(ping["type"], "io.nats.micro.v1.ping_response");
}
