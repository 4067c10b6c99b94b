//! Crashes and outages: SIGKILL the service, stop NATS, start a second writer.

use std::collections::HashSet;
use std::time::Duration;

use disputes_tests::{Client, NatsServer, Service};
use serde_json::{json, Value};

use crate::support::Dispute;

async fn fresh() -> (NatsServer, Service, Client) {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats.url(), "");
    let client = Client::connect(&nats.url()).await;
    service.wait_ready(&client).await;
    (nats, service, client)
}

/// Every event id on the events stream, in stream order.
async fn stream_ids(client: &Client) -> Vec<String> {
    client
        .stream_events("*")
        .await
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_service_keeps_every_acknowledged_command_and_publishes_it_once() {
    let (nats, mut service, client) = fresh().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (client, tx) = (client.clone(), tx.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let d = Dispute::new(&client);
                let body = d.body("buyer", json!({"order_id": d.order, "seller_id": d.seller, "reason": "not_received",
                    "order_amount": {"amount": 100, "currency": "EUR"}, "proposal": {"solution": "full_refund"}}));
                let reply = match tokio::time::timeout(Duration::from_secs(2), client.nats().request("disputes.cmd.open", serde_json::to_vec(&body).unwrap().into())).await {
                    Ok(Ok(message)) => serde_json::from_slice::<Value>(&message.payload).unwrap(),
                    _ => return,
                };
                if reply["ok"] == true && tx.send(reply).is_err() {
                    return;
                }
            }
        }));
    }
    drop(tx);
    let mut acked = Vec::new();
    while acked.len() < 60 {
        acked.push(rx.recv().await.expect("commands are acknowledged"));
    }
    service.kill();
    while let Ok(reply) = rx.try_recv() {
        acked.push(reply);
    }
    for sender in senders {
        let _ = sender.await;
    }
    while let Ok(reply) = rx.try_recv() {
        acked.push(reply);
    }

    service.spawn();
    service.wait_ready(&client).await;
    for reply in &acked {
        let history = client.history(reply["dispute_id"].as_str().unwrap()).await;
        for event in reply["events"].as_array().unwrap() {
            assert!(
                history.contains(event),
                "acknowledged event {} is in history",
                event["event_id"]
            );
        }
    }
    let want: HashSet<String> = acked
        .iter()
        .flat_map(|r| {
            r["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["event_id"].as_str().unwrap().to_owned())
        })
        .collect();
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids = stream_ids(&client).await;
        if want.iter().all(|id| ids.contains(id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no event is on JetStream twice");
    assert!(
        want.iter().all(|id| ids.contains(id)),
        "every acknowledged event is on JetStream"
    );
    drop(nats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_reconnects_after_nats_restarts_without_restarting_itself() {
    let (mut nats, mut service, client) = fresh().await;
    let d = Dispute::new(&client);
    d.open("not_received", 100, json!({"solution": "full_refund"}))
        .await;
    nats.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.restart();
    let client = Client::connect(&nats.url()).await;
    let mut d2 = Dispute::new(&client);
    d2.client = client.clone();
    let mut reply = Value::Null;
    for _ in 0..100 {
        let body = d2.body("buyer", json!({"order_id": d2.order, "seller_id": d2.seller, "reason": "not_received",
            "order_amount": {"amount": 100, "currency": "EUR"}, "proposal": {"solution": "full_refund"}}));
        if let Ok(Ok(message)) = tokio::time::timeout(
            Duration::from_secs(1),
            client.nats().request(
                "disputes.cmd.open",
                serde_json::to_vec(&body).unwrap().into(),
            ),
        )
        .await
        {
            reply = serde_json::from_slice(&message.payload).unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reply["ok"], true, "served after NATS came back: {reply}");
    assert!(service.try_wait().is_none(), "the service did not restart");
    let history = client.history(&d.id).await;
    assert_eq!(
        history.len(),
        2,
        "what was acknowledged before the outage is still there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_with_its_own_data_dir_refuses_to_start() {
    let (nats, _service, _client) = fresh().await;
    let dir = tempfile::tempdir().unwrap();
    let mut second = Service::start_on(dir.path(), &nats.url(), "");
    let status = second
        .wait_exit(Duration::from_secs(30))
        .expect("the second instance exits by itself");
    assert!(!status.success());
    assert!(
        second
            .log()
            .contains("another `disputes serve` is the writer"),
        "a clear message: {}",
        second.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_service_cleanly_and_a_restart_serves_the_same_data() {
    let (nats, mut service, client) = fresh().await;
    let d = Dispute::new(&client);
    d.open("not_received", 100, json!({"solution": "full_refund"}))
        .await;
    let status = service
        .terminate(Duration::from_secs(20))
        .expect("stops within 20 s");
    assert!(
        status.success(),
        "exit 0 on SIGTERM: {status}; log:\n{}",
        service.log()
    );
    service.spawn();
    service.wait_ready(&client).await;
    assert_eq!(client.history(&d.id).await.len(), 2);
    d.ok("accept_proposal", "seller", json!({})).await;
    drop(nats);
}
