//! Cluster mode (`[store] backend = "jetstream"`), whatever backend the rest of the suite runs on:
//! several `disputes serve` instances on one log stream, any of them taking any command, one
//! killed while commands run.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};

use crate::audit::on_stream;
use crate::kit::{Client, NatsServer, Service};
use crate::support::Dispute;

/// Every event on the events stream, in stream order.
async fn stream_events(client: &Client) -> Vec<Value> {
    client.stream_events("*").await
}

/// Takes one dispute from `open` to an agreed full refund (3 commands), each reply read back with
/// `min_seq` from whichever instance answers; returns the accepted replies. A command whose reply
/// was lost (its instance killed) is sent again with its id: answered from its first outcome.
async fn lifecycle(client: &Client, amount: u64) -> Vec<Value> {
    let d = Dispute::new(client);
    let steps = [
        (
            "open",
            "buyer",
            json!({"order_id": d.order, "seller_id": d.seller, "reason": "not_received",
            "order_amount": {"amount": amount, "currency": "EUR"}, "proposal": {"solution": "partial_refund", "amount": amount / 2}}),
        ),
        ("post_message", "seller", json!({"text": "looking into it"})),
        ("accept_proposal", "seller", json!({})),
    ];
    let mut replies = Vec::new();
    for (command, role, data) in steps {
        let body = d.body(role, data);
        let reply = client
            .answered(&format!("disputes.cmd.{command}"), &body)
            .await;
        assert_eq!(reply["ok"], true, "{command}: {reply}");
        let get = json!({"dispute_id": d.id, "min_seq": reply["seq"]});
        let view = client.answered("disputes.query.get", &get).await;
        let (seen, written) = (
            view["dispute"]["version"].as_u64(),
            reply["version"].as_u64(),
        );
        assert!(
            seen >= written,
            "read-your-writes on either instance: {view}"
        );
        replies.push(reply);
    }
    replies
}

/// Every acknowledged command's events are in the log exactly once; each of the `disputes`
/// disputes has one `DisputeResolved`, whose refund and release add up to the order amount.
fn every_acknowledged_event_once_and_one_resolution_each(
    events: &[Value],
    acknowledged: &[Value],
    disputes: usize,
) {
    // Every acknowledged command's events are in the log exactly once.
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "no event twice"
    );
    for reply in acknowledged {
        for event in reply["events"].as_array().unwrap() {
            let id = event["event_id"].as_str().unwrap();
            assert!(ids.contains(&id), "acknowledged event {id} is in the log");
        }
    }
    // One resolution per dispute, refund + release = the order amount.
    let mut resolved: HashMap<&str, Vec<&Value>> = HashMap::new();
    for e in events.iter().filter(|e| e["type"] == "DisputeResolved") {
        resolved
            .entry(e["dispute_id"].as_str().unwrap())
            .or_default()
            .push(e);
    }
    assert_eq!(resolved.len(), disputes, "every dispute resolved");
    for (dispute, resolutions) in &resolved {
        assert_eq!(resolutions.len(), 1, "{dispute}: one DisputeResolved");
        let data = &resolutions[0]["data"];
        let total =
            data["refund_amount"].as_u64().unwrap() + data["release_amount"].as_u64().unwrap();
        let opened = events
            .iter()
            .find(|e| e["dispute_id"] == *dispute && e["type"] == "DisputeOpened")
            .unwrap();
        assert_eq!(
            total,
            opened["data"]["order_amount"]["amount"].as_u64().unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_serve_one_log_and_losing_one_mid_burst_loses_nothing_acknowledged() {
    let nats = NatsServer::start();
    let client = Client::connect(&nats.url()).await;
    let mut a = Service::start_jetstream(&nats.url(), "");
    a.wait_ready(&client).await;
    let mut b = Service::start_jetstream(&nats.url(), "");
    b.wait_ready(&client).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24u64 {
        let client = client.clone();
        tasks.spawn(async move { lifecycle(&client, 1_000 + i).await });
    }
    // Killed mid-burst: once the log holds some of it, long before all of it.
    client.stream_holds(30).await;
    a.kill();
    let mut acknowledged = Vec::new();
    while let Some(done) = tasks.join_next().await {
        acknowledged.extend(done.unwrap());
    }
    assert!(
        b.try_wait().is_none(),
        "the surviving instance keeps serving"
    );
    assert_eq!(acknowledged.len(), 24 * 3);
    let events = stream_events(&client).await;
    every_acknowledged_event_once_and_one_resolution_each(&events, &acknowledged, 24);
    // The stream is the log: its chain verifies as the sled mode's does.
    let run = on_stream(&nats.url(), &["verify"]).ok("verify the stream");
    let verified = format!(
        "ok: {} events, 24 disputes, 24 resolved; chain intact",
        events.len()
    );
    assert!(run.stdout.starts_with(&verified), "{}", run.stdout);
    // A restarted instance rebuilds its copy from the stream and serves the same history.
    a.spawn();
    a.wait_ready(&client).await;
    let again = lifecycle(&client, 7).await;
    let first = again[0]["events"][0]["seq"].as_u64().unwrap();
    assert_eq!(
        first,
        events.len() as u64 + 1,
        "the log goes on after what it held"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedulers_instance_killed_while_deadlines_come_due_every_deadline_still_fires_once() {
    let nats = NatsServer::start();
    let client = Client::connect(&nats.url()).await;
    let policy = "[policy]\nseller_response = \"4s\"\n";
    let mut instances = [
        Service::start_jetstream(&nats.url(), policy),
        Service::start_jetstream(&nats.url(), policy),
    ];
    for instance in &mut instances {
        instance.wait_ready(&client).await;
    }
    let leads = |s: &Service| s.log().contains("lease taken");
    let mut waited = 0;
    while !instances.iter().any(leads) {
        assert!(waited < 200, "no instance took the scheduler's lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    let leader = instances.iter().position(leads).unwrap();
    let mut disputes = Vec::new();
    for _ in 0..10 {
        let d = Dispute::new(&client);
        d.open("not_received", 100, json!({"solution": "full_refund"}))
            .await;
        disputes.push(d);
    }
    // Before the seller's 4 s are up: the scheduler's instance dies.
    instances[leader].kill();
    let survivor = &instances[1 - leader];
    for d in &disputes {
        let mut types = Vec::new();
        for _ in 0..600 {
            types = d.types().await;
            if types.iter().any(|t| t == "DisputeResolved") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let count = |t: &str| types.iter().filter(|x| *x == t).count();
        assert_eq!(
            count("DeadlineExpired"),
            1,
            "{}: {types:?}\n{}",
            d.id,
            survivor.log()
        );
        assert_eq!(count("DisputeResolved"), 1, "{}: {types:?}", d.id);
    }
    assert!(leads(survivor), "the survivor took the lease over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_events_stream_that_could_lose_events_is_refused_at_start_naming_the_setting() {
    let nats = NatsServer::start();
    let client = Client::connect(&nats.url()).await;
    // The stream as the sled mode's publisher makes it: no atomic batches.
    let js = async_nats::jetstream::new(client.nats().clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "DISPUTE_EVENTS".into(),
        subjects: vec!["disputes.evt.>".into()],
        storage: async_nats::jetstream::stream::StorageType::File,
        deny_delete: true,
        deny_purge: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut service = Service::start_jetstream(&nats.url(), "");
    let status = service
        .wait_exit(Duration::from_secs(30))
        .expect("the instance refuses to start");
    assert!(!status.success());
    let log = service.log();
    assert!(
        log.contains("DISPUTE_EVENTS is unsafe") && log.contains("allow_atomic"),
        "{log}"
    );
}
