//! The scheduler over NATS with second-long policy durations: each expiry of rules.md fires once.

use std::sync::OnceLock;
use std::time::Duration;

use crate::kit::{Client, NatsServer, Service};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::support::{assert_payout, Dispute};

/// Every deadline 3 s; reminders 2 s before (so a 3 s deadline gets one after 1 s).
const POLICY: &str = "[policy]\nseller_response = \"3s\"\nbuyer_decision = \"3s\"\nshipping_proof = \"3s\"\n\
buyer_evidence = \"3s\"\nreturn_address = \"3s\"\nreturn_shipment = \"3s\"\nreturn_receipt = \"3s\"\nreminder_lead = \"2s\"\n";

struct Fast {
    nats: NatsServer,
    _service: Service,
}

static FAST: OnceLock<Fast> = OnceLock::new();

async fn fast_client() -> Client {
    let fast = FAST.get_or_init(|| {
        let nats = NatsServer::start();
        let mut service = Service::start(&nats.url(), POLICY);
        let url = nats.url();
        let service = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                service.wait_ready(&Client::connect(&url).await).await;
                service
            })
        })
        .join()
        .expect("fast service starts");
        Fast {
            nats,
            _service: service,
        }
    });
    Client::connect(&fast.nats.url()).await
}

/// Waits (up to 15 s) until the history holds an event of `event_type`; returns the history.
async fn wait_for(d: &Dispute, event_type: &str) -> Vec<Value> {
    for _ in 0..150 {
        let history = d.history().await;
        if history.iter().any(|e| e["type"] == event_type) {
            return history;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never got {event_type}: {:#?}", d.id, d.history().await);
}

fn expired_once(history: &[Value], deadline: &str) {
    let n = history
        .iter()
        .filter(|e| e["type"] == "DeadlineExpired" && e["data"]["deadline"] == deadline)
        .count();
    assert_eq!(n, 1, "{deadline} expired exactly once");
    let expired = history
        .iter()
        .find(|e| e["type"] == "DeadlineExpired")
        .unwrap();
    assert_eq!(
        expired["actor"],
        json!({"role": "system", "id": "scheduler"})
    );
    assert_eq!(expired["command_id"], Value::Null);
}

async fn resolved_once_on_stream(d: &Dispute) -> Value {
    let resolved: Vec<Value> = crate::lifecycle::wait_stream(d, d.history().await.len())
        .await
        .into_iter()
        .filter(|e| e["type"] == "DisputeResolved")
        .collect();
    assert_eq!(
        resolved.len(),
        1,
        "DisputeResolved on JetStream exactly once"
    );
    resolved[0]["data"].clone()
}

#[tokio::test]
async fn an_unanswered_seller_response_executes_the_buyers_proposal() {
    let d = Dispute::new(&fast_client().await);
    d.open(
        "not_received",
        1000,
        json!({"solution": "partial_refund", "amount": 400}),
    )
    .await;
    let history = wait_for(&d, "DisputeResolved").await;
    expired_once(&history, "seller_response");
    assert_payout(
        &d.resolution().await,
        "partial_refund",
        400,
        600,
        "seller_response_timeout",
    );
    assert_eq!(
        resolved_once_on_stream(&d).await["basis"],
        "seller_response_timeout"
    );
}

#[tokio::test]
async fn an_unanswered_counter_proposal_escalates_as_if_rejected() {
    let d = Dispute::new(&fast_client().await);
    d.open("not_received", 1000, json!({"solution": "full_refund"}))
        .await;
    d.ok(
        "counter_propose",
        "seller",
        json!({"proposal": {"solution": "partial_refund", "amount": 10}}),
    )
    .await;
    let history = wait_for(&d, "DisputeEscalated").await;
    expired_once(&history, "buyer_decision");
    let escalated = history
        .iter()
        .find(|e| e["type"] == "DisputeEscalated")
        .unwrap();
    assert_eq!(escalated["data"]["cause"], "buyer_decision_timeout");
    assert_eq!(
        escalated["data"]["reason"],
        Value::Null,
        "no text on a timeout"
    );
    let set = history
        .iter()
        .rev()
        .find(|e| e["type"] == "DeadlineSet")
        .unwrap();
    assert_eq!(set["data"]["deadline"], "shipping_proof");
}

#[tokio::test]
async fn missing_shipping_proof_executes_the_buyers_proposal() {
    let d = Dispute::new(&fast_client().await);
    d.open("not_received", 1000, json!({"solution": "full_refund"}))
        .await;
    d.ok(
        "counter_propose",
        "seller",
        json!({"proposal": {"solution": "partial_refund", "amount": 10}}),
    )
    .await;
    d.ok("reject_proposal", "buyer", json!({})).await;
    let history = wait_for(&d, "DisputeResolved").await;
    expired_once(&history, "shipping_proof");
    assert_payout(
        &d.resolution().await,
        "full_refund",
        1000,
        0,
        "shipping_proof_timeout",
    );
    resolved_once_on_stream(&d).await;
}

#[tokio::test]
async fn missing_buyer_evidence_releases_the_funds() {
    let d = Dispute::new(&fast_client().await);
    d.open("not_as_described", 1000, json!({"solution": "full_refund"}))
        .await;
    d.ok(
        "counter_propose",
        "seller",
        json!({"proposal": {"solution": "partial_refund", "amount": 10}}),
    )
    .await;
    d.ok("reject_proposal", "buyer", json!({})).await;
    let history = wait_for(&d, "DisputeResolved").await;
    expired_once(&history, "buyer_evidence");
    assert_payout(
        &d.resolution().await,
        "release_funds",
        0,
        1000,
        "buyer_evidence_timeout",
    );
    resolved_once_on_stream(&d).await;
}

#[tokio::test]
async fn a_missing_return_address_refunds_the_buyer() {
    let d = Dispute::new(&fast_client().await);
    d.open(
        "not_as_described",
        1000,
        json!({"solution": "return_and_refund", "amount": 900}),
    )
    .await;
    d.ok("accept_proposal", "seller", json!({})).await;
    let history = wait_for(&d, "DisputeResolved").await;
    expired_once(&history, "return_address");
    assert_payout(
        &d.resolution().await,
        "return_and_refund",
        900,
        100,
        "return_address_timeout",
    );
    resolved_once_on_stream(&d).await;
}

#[tokio::test]
async fn a_missing_return_shipment_releases_the_funds() {
    let d = Dispute::new(&fast_client().await);
    d.open(
        "not_as_described",
        1000,
        json!({"solution": "return_and_refund"}),
    )
    .await;
    d.ok("accept_proposal", "seller", json!({})).await;
    d.ok(
        "provide_return_address",
        "seller",
        json!({"address": "here"}),
    )
    .await;
    let history = wait_for(&d, "DisputeResolved").await;
    expired_once(&history, "return_shipment");
    assert_payout(
        &d.resolution().await,
        "release_funds",
        0,
        1000,
        "return_shipment_timeout",
    );
    resolved_once_on_stream(&d).await;
}

#[tokio::test]
async fn an_unconfirmed_return_receipt_refunds_the_buyer() {
    let d = Dispute::new(&fast_client().await);
    d.open(
        "not_as_described",
        1000,
        json!({"solution": "return_and_refund"}),
    )
    .await;
    d.ok("accept_proposal", "seller", json!({})).await;
    d.ok(
        "provide_return_address",
        "seller",
        json!({"address": "here"}),
    )
    .await;
    d.ok(
        "provide_return_tracking",
        "buyer",
        json!({"carrier": "UPS", "tracking_number": "1"}),
    )
    .await;
    let history = wait_for(&d, "DisputeResolved").await;
    expired_once(&history, "return_receipt");
    assert_payout(
        &d.resolution().await,
        "return_and_refund",
        1000,
        0,
        "return_receipt_timeout",
    );
    resolved_once_on_stream(&d).await;
}

#[tokio::test]
async fn a_seller_command_just_after_the_due_time_loses_to_the_expiry() {
    let d = Dispute::new(&fast_client().await);
    let opened = d
        .open("not_received", 1000, json!({"solution": "full_refund"}))
        .await;
    let due_at = opened["events"][1]["data"]["due_at"].as_str().unwrap();
    let due_at = chrono::DateTime::parse_from_rfc3339(due_at)
        .unwrap()
        .with_timezone(&chrono::Utc);
    let wait = (due_at - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(2)).await;
    let reply = d.send("accept_proposal", "seller", json!({})).await;
    assert_eq!(reply["ok"], false, "{reply}");
    // Before the expiry is applied the refusal is deadline_passed; once applied, the dispute is resolved.
    let code = reply["error"]["code"].as_str().unwrap();
    assert!(
        code == "deadline_passed" || code == "invalid_state",
        "{reply}"
    );
    let history = wait_for(&d, "DisputeResolved").await;
    expired_once(&history, "seller_response");
    assert_payout(
        &d.resolution().await,
        "full_refund",
        1000,
        0,
        "seller_response_timeout",
    );
    let late = d
        .send("post_message", "seller", json!({"text": "too late"}))
        .await;
    assert_eq!(late["error"]["code"], "invalid_state");
}

#[tokio::test]
async fn a_reminder_goes_out_once_before_the_deadline() {
    let client = fast_client().await;
    let mut reminders = client
        .nats()
        .subscribe("disputes.deadline.reminder.>")
        .await
        .unwrap();
    let d = Dispute::new(&client);
    d.open("not_received", 1000, json!({"solution": "full_refund"}))
        .await;
    let reminder = loop {
        let message = tokio::time::timeout(Duration::from_secs(5), reminders.next())
            .await
            .expect("a reminder")
            .unwrap();
        let body: Value = serde_json::from_slice(&message.payload).unwrap();
        if body["dispute_id"] == json!(d.id) {
            break body;
        }
    };
    assert_eq!(reminder["deadline"], "seller_response");
    let history = d.history().await;
    assert_eq!(reminder["due_at"], history[1]["data"]["due_at"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_that_passes_while_the_service_is_down_fires_once_on_restart() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats.url(), POLICY);
    let client = Client::connect(&nats.url()).await;
    service.wait_ready(&client).await;
    let d = Dispute::new(&client);
    d.open("not_received", 1000, json!({"solution": "full_refund"}))
        .await;
    service.kill();
    tokio::time::sleep(Duration::from_secs(4)).await;
    service.spawn();
    service.wait_ready(&client).await;
    let history = wait_for(&d, "DisputeResolved").await;
    expired_once(&history, "seller_response");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        d.types()
            .await
            .iter()
            .filter(|t| *t == "DisputeResolved")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_expiry_message_is_dropped_not_redelivered_and_holds_up_no_other_expiry() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats.url(), POLICY);
    let client = Client::connect(&nats.url()).await;
    service.wait_ready(&client).await;
    let js = async_nats::jetstream::new(client.nats().clone());
    // Not the scheduler's body: dropped, not retried.
    js.publish(
        "disputes.deadline.expired.d-garbage",
        "not an expiry".into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let disputes: Vec<Dispute> = (0..3).map(|_| Dispute::new(&client)).collect();
    for d in &disputes {
        d.open("not_received", 1000, json!({"solution": "full_refund"}))
            .await;
    }
    for d in &disputes {
        expired_once(&wait_for(d, "DisputeResolved").await, "seller_response");
    }
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = js
        .get_stream("DISPUTE_DEADLINES")
        .await
        .unwrap()
        .get_consumer("disputes-expiry")
        .await
        .unwrap();
    // The malformed message and the three expiries are settled; none came back.
    let mut info = consumer.info().await.unwrap().clone();
    for _ in 0..50 {
        if info.ack_floor.consumer_sequence >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        info = consumer.info().await.unwrap().clone();
    }
    // Four deliveries in all (a redelivery would be a fifth), every one acknowledged or dropped.
    assert_eq!(
        (
            info.delivered.consumer_sequence,
            info.ack_floor.consumer_sequence
        ),
        (4, 4),
        "{info:?}"
    );
    assert_eq!(
        (info.num_ack_pending, info.num_redelivered),
        (0, 0),
        "{info:?}"
    );
}
