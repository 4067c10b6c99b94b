//! Reply subjects, against the shipped NATS users: the service answers only `_INBOX.` replies,
//! so a user that may send one request cannot aim the service's reply at the service's own
//! lease, streams or endpoints; a request without a reply subject is not applied either.

use std::time::Duration;

use crate::kit::nats::free_port;
use crate::kit::{Client, Service};
use async_nats::jetstream;
use serde_json::{json, Value};

use crate::shipped;

async fn login(url: &str, user: &str) -> Client {
    let options = async_nats::ConnectOptions::with_user_and_password(
        user.into(),
        shipped::dev_password(user),
    );
    Client::connect_with(url, options).await
}

/// The service as shipped: the `disputes` user, a metrics port.
fn start_service(url: &str, http_port: u16, extra: &str) -> Service {
    let password = shipped::dev_password("disputes");
    Service::start_with_nats(
        url,
        &format!("user = \"disputes\"\npassword = {password:?}"),
        &format!("[http]\nlisten = \"127.0.0.1:{http_port}\"\n{extra}"),
    )
}

async fn metrics(port: u16) -> String {
    tokio::task::spawn_blocking(move || disputes_testkit::http::get(port, "/metrics"))
        .await
        .unwrap()
        .expect("metrics port")
        .body
}

/// Messages on the events stream, as the auditor sees them.
async fn events_on_stream(auditor: &Client) -> u64 {
    let js = jetstream::new(auditor.nats().clone());
    let mut stream = js.get_stream("DISPUTE_EVENTS").await.unwrap();
    stream.info().await.unwrap().state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_aimed_at_the_services_own_subjects_are_dropped_and_counted() {
    let server = shipped::start_single_node();
    let port = free_port();
    let mut service = start_service(&server.url(), port, "");
    let dashboard = login(&server.url(), "dashboard").await;
    let buyer = login(&server.url(), "buyer_gateway").await;
    let auditor = login(&server.url(), "auditor").await;
    service.wait_ready(&dashboard).await;
    let events_before = events_on_stream(&auditor).await;

    // Each vector of the finding: the writer lease, a forged event, a command, a query.
    let vectors = [
        "$KV.DISPUTES_LEASES.disputes",
        "disputes.evt.d-forged.DisputeResolved",
        "disputes.cmd.rule",
        "disputes.query.stats",
    ];
    for reply in vectors {
        dashboard
            .nats()
            .publish_with_reply("disputes.query.stats", reply, "{}".into())
            .await
            .unwrap();
    }
    // And a command published without a reply subject: it would open a dispute.
    let open = json!({"command_id": "c-no-reply", "dispute_id": "d-no-reply",
        "actor": {"role": "buyer", "id": "b-1"}, "data": {"order_id": "o-no-reply",
        "seller_id": "s-1", "reason": "not_received",
        "order_amount": {"amount": 100, "currency": "USD"}, "proposal": {"solution": "full_refund"}}});
    buyer
        .nats()
        .publish(
            "disputes.cmd.open",
            serde_json::to_vec(&open).unwrap().into(),
        )
        .await
        .unwrap();
    dashboard.nats().flush().await.unwrap();
    buyer.nats().flush().await.unwrap();

    // Past two lease renewals: a service whose lease was overwritten would have exited (code 3).
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(
        service.try_wait().is_none(),
        "the service still runs:\n{}",
        service.log()
    );
    let stats = dashboard.query("stats", json!({})).await;
    assert_eq!(stats["ok"], true, "{stats}");
    assert_eq!(
        stats["stats"]["total"], 0,
        "the command without a reply subject was not applied"
    );
    assert_eq!(
        events_on_stream(&auditor).await,
        events_before,
        "nothing was added to the stream"
    );
    let text = metrics(port).await;
    for (reason, n) in [("reply_subject_refused", 4), ("no_reply_subject", 1)] {
        let line = format!("disputes_requests_dropped_total{{reason=\"{reason}\"}} {n}");
        assert!(text.contains(&line), "{line} in:\n{text}");
    }
    // An inbox is answered, and the same command with one is applied.
    let reply = buyer.cmd("open", open).await;
    assert_eq!(reply["ok"], true, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_actor_tokens_off_and_nats_auth_on_the_service_warns_at_start() {
    let server = shipped::start_single_node();
    let mut service = start_service(&server.url(), free_port(), "");
    let dashboard = login(&server.url(), "dashboard").await;
    service.wait_ready(&dashboard).await;
    let log = service.log();
    assert!(
        log.contains("actor tokens are off"),
        "a warning names the risk:\n{log}"
    );
    let _: Value = dashboard.query("stats", json!({})).await;
}
