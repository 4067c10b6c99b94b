//! Cluster mode on the shipped three-node cluster: two `disputes serve` instances with the log on a
//! three-replica stream, logged in as the shipped `disputes` user, commands from the buyer and
//! seller gateways, while one NATS node is SIGKILLed and restarted and one instance SIGKILLed.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use disputes_store::{parse_envelope, Chain, Envelope};
use futures::StreamExt as _;
use serde_json::{json, Value};

use crate::cluster::start_node;
use crate::kit::nats::free_port;
use crate::kit::{Client, NatsServer, Service};
use crate::shipped::dev_password;

const DISPUTES: u64 = 60;

async fn login(url: &str, user: &str) -> Client {
    let options =
        async_nats::ConnectOptions::new().user_and_password(user.into(), dev_password(user));
    Client::connect_with(url, options).await
}

fn start_instance(urls: &str) -> Service {
    let nats = format!(
        "user = \"disputes\"\npassword = {:?}",
        dev_password("disputes")
    );
    Service::start_custom(urls, &nats, "backend = \"jetstream\"\nreplicas = 3\n", "")
}

/// Open (the buyer proposes a full refund) and the seller accepts: two acknowledged replies.
async fn lifecycle(buyer: Client, seller: Client, i: u64) -> Vec<Value> {
    let (id, amount) = (format!("d-cluster-{i}"), 1_000 + i);
    let open = json!({"command_id": format!("c-open-{i}"), "dispute_id": id,
        "actor": {"role": "buyer", "id": format!("b-{i}")},
        "data": {"order_id": format!("o-cluster-{i}"), "seller_id": format!("s-{i}"), "reason": "not_received",
                 "order_amount": {"amount": amount, "currency": "EUR"}, "proposal": {"solution": "full_refund"}}});
    let accept = json!({"command_id": format!("c-accept-{i}"), "dispute_id": id,
        "actor": {"role": "seller", "id": format!("s-{i}")}, "data": {}});
    let mut replies = Vec::new();
    for (client, subject, body) in [
        (&buyer, "disputes.cmd.open", open),
        (&seller, "disputes.cmd.accept_proposal", accept),
    ] {
        let reply = client.answered(subject, &body).await;
        assert_eq!(reply["ok"], true, "{subject}: {reply}");
        let get = json!({"dispute_id": id, "min_seq": reply["seq"]});
        let view = buyer.answered("disputes.query.get", &get).await;
        assert!(
            view["dispute"]["version"].as_u64() >= reply["version"].as_u64(),
            "{view}"
        );
        replies.push(reply);
    }
    replies
}

/// Every message of the log stream, in order, as the service's user reads it (retried while the
/// restarted node rejoins and the cluster's leaders settle).
async fn the_log(client: &Client) -> Vec<Envelope> {
    let started = Instant::now();
    loop {
        match try_the_log(client).await {
            Ok(log) => return log,
            Err(e) if started.elapsed() < Duration::from_secs(60) => {
                eprintln!("reading the log again: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("the log could not be read: {e}"),
        }
    }
}

async fn try_the_log(client: &Client) -> Result<Vec<Envelope>, String> {
    let js = jetstream::new(client.nats().clone());
    let mut stream = js
        .get_stream("DISPUTE_EVENTS")
        .await
        .map_err(|e| e.to_string())?;
    let last = stream
        .info()
        .await
        .map_err(|e| e.to_string())?
        .state
        .last_sequence;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    let mut log = Vec::new();
    while (log.len() as u64) < last {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .map_err(|_| "no message for 10 s".to_owned())?
            .ok_or("the consumer ended")?
            .map_err(|e| e.to_string())?;
        log.push(parse_envelope(&message.payload).expect("an envelope"));
    }
    Ok(log)
}

/// The chain verifies from seq 1; every acknowledged event is in the log once; one
/// `DisputeResolved` per dispute, refund + release = the order amount.
fn the_log_verifies_and_holds_each_acknowledged_event_once(
    log: &[Envelope],
    acknowledged: &[Value],
) {
    let mut chain = Chain::new();
    for e in log {
        chain
            .check(e)
            .unwrap_or_else(|reason| panic!("the chain breaks at {}: {reason}", e.seq));
    }
    let ids: HashSet<&str> = log.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), log.len(), "no event twice");
    for reply in acknowledged {
        for event in reply["events"].as_array().unwrap() {
            assert!(
                ids.contains(event["event_id"].as_str().unwrap()),
                "acknowledged and in the log"
            );
        }
    }
    let mut resolved: HashMap<&str, Vec<&Envelope>> = HashMap::new();
    for e in log.iter().filter(|e| e.event_type == "DisputeResolved") {
        resolved.entry(e.dispute_id.as_str()).or_default().push(e);
    }
    assert_eq!(resolved.len() as u64, DISPUTES);
    for (dispute, resolutions) in resolved {
        assert_eq!(resolutions.len(), 1, "{dispute}: one DisputeResolved");
        let data = &resolutions[0].data;
        let paid =
            data["refund_amount"].as_u64().unwrap() + data["release_amount"].as_u64().unwrap();
        let i: u64 = dispute.trim_start_matches("d-cluster-").parse().unwrap();
        assert_eq!(
            paid,
            1_000 + i,
            "{dispute}: refund + release = the order amount"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_loses_nothing_acknowledged_when_a_node_and_an_instance_die() {
    let route_ports = [free_port(), free_port(), free_port()];
    let mut nodes: Vec<NatsServer> = (1..=3).map(|n| start_node(n, route_ports)).collect();
    let urls: Vec<String> = nodes.iter().map(NatsServer::url).collect();
    let (buyer, seller) = (
        login(&urls[1], "buyer_gateway").await,
        login(&urls[2], "seller_gateway").await,
    );
    let service_user = login(&urls[2], "disputes").await;
    let mut a = start_instance(&urls.join(","));
    a.wait_ready(&buyer).await;
    let mut b = start_instance(&urls.join(","));
    b.wait_ready(&buyer).await;

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..DISPUTES {
        tasks.spawn(lifecycle(buyer.clone(), seller.clone(), i));
    }
    // Mid-burst: the node the instances dialled first dies, then an instance; the node comes back.
    let at_kill = service_user.stream_holds(30).await;
    nodes[0].kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    nodes[0].restart();
    let mut acknowledged = Vec::new();
    while let Some(done) = tasks.join_next().await {
        acknowledged.extend(done.unwrap());
    }
    assert_eq!(acknowledged.len() as u64, 2 * DISPUTES);
    assert!(
        b.try_wait().is_none(),
        "the surviving instance keeps serving"
    );

    let log = the_log(&service_user).await;
    assert!(
        at_kill < log.len() as u64,
        "killed mid-burst: {at_kill} of {}",
        log.len()
    );
    the_log_verifies_and_holds_each_acknowledged_event_once(&log, &acknowledged);
    // The survivor still answers, on the restarted cluster.
    let stats = buyer
        .answered("disputes.query.stats", &json!({"min_seq": log.len()}))
        .await;
    assert_eq!(stats["stats"]["total"], DISPUTES, "{stats}");
}
