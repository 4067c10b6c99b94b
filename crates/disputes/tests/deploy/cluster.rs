//! The three-node cluster of `deploy/nats/cluster/`, run from the shipped files on loopback:
//! the nodes find each other, JetStream keeps three replicas, and the shipped permissions hold on
//! every node.

use std::time::{Duration, Instant};

use crate::kit::nats::{free_port, NatsServer};
use async_nats::jetstream::{self, stream};

use crate::probe::{Probe, Responder};
use crate::shipped;

/// How long the cluster may take to elect a JetStream leader, or to spread a subscription.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
const NODES: usize = 3;

/// Node `n` (1-based): the shipped `cluster/n<n>.conf` and `auth.conf` verbatim; `common.conf`
/// with loopback ports, the test's route ports and a temporary store.
pub(crate) fn start_node(n: usize, route_ports: [u16; NODES]) -> NatsServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let store_dir = format!("store_dir: \"{}\"", dir.path().join("jetstream").display());
    let route_listen = format!("listen: \"127.0.0.1:{}\"", route_ports[n - 1]);
    let route_hosts: Vec<(String, String)> = (1..=NODES)
        .map(|i| {
            (
                format!("@n{i}:6222"),
                format!("@127.0.0.1:{}", route_ports[i - 1]),
            )
        })
        .collect();
    let mut replacements = vec![
        (
            "listen: \"0.0.0.0:4222\"",
            "# listen: in the test's main file",
        ),
        (
            "http: \"0.0.0.0:8222\"",
            "# http: (no monitoring port in tests)",
        ),
        ("store_dir: \"/data/jetstream\"", store_dir.as_str()),
        ("listen: \"0.0.0.0:6222\"", route_listen.as_str()),
    ];
    replacements.extend(
        route_hosts
            .iter()
            .map(|(from, to)| (from.as_str(), to.as_str())),
    );
    let common = shipped::rewrite(
        "deploy/nats/cluster/common.conf",
        &shipped::read("cluster/common.conf"),
        &replacements,
    );
    let template = format!("include ./cluster/n{n}.conf\nlisten: \"127.0.0.1:{{{{port}}}}\"\n");
    NatsServer::start_in(dir, &template, |dir| {
        shipped::copy_verbatim("auth.conf", dir);
        shipped::copy_verbatim(&format!("cluster/n{n}.conf"), dir);
        std::fs::write(dir.join("cluster/common.conf"), common).expect("write common.conf");
    })
}

#[tokio::test]
async fn three_nodes_from_the_shipped_files_replicate_and_keep_the_permissions() {
    let route_ports = [free_port(), free_port(), free_port()];
    let nodes: Vec<NatsServer> = (1..=NODES).map(|n| start_node(n, route_ports)).collect();

    let service = Probe::connect(&nodes[0].url(), "disputes").await;
    let js = jetstream::new(service.client.clone());
    let mut events = create_the_three_replica_event_stream(&js, &nodes).await;
    publish_once_a_majority_acknowledges(&js, &nodes).await;
    let info = events.info().await.expect("stream info");
    let cluster = info.cluster.as_ref().expect("a clustered stream");
    assert_eq!(
        cluster.replicas.len(),
        NODES - 1,
        "a leader and two replicas: {cluster:?}"
    );

    the_auditor_reads_the_event_on_n3(&nodes).await;
    the_buyer_on_n2_reaches_the_service_on_n3_and_nothing_more(&nodes).await;
}

/// The service user creates DISPUTE_EVENTS with three replicas, retrying until the cluster has
/// a JetStream leader.
async fn create_the_three_replica_event_stream(
    js: &jetstream::Context,
    nodes: &[NatsServer],
) -> stream::Stream {
    let config = stream::Config {
        name: "DISPUTE_EVENTS".into(),
        subjects: vec!["disputes.evt.>".into()],
        storage: stream::StorageType::File,
        deny_delete: true,
        deny_purge: true,
        num_replicas: 3,
        ..Default::default()
    };
    let started = Instant::now();
    loop {
        match js.create_stream(config.clone()).await {
            Ok(stream) => break stream,
            Err(_) if started.elapsed() < SETTLE_TIMEOUT => pause().await,
            Err(e) => panic!(
                "no R3 stream within {SETTLE_TIMEOUT:?}: {e}\n{}",
                logs(nodes)
            ),
        }
    }
}

/// One event is published and acknowledged by a majority of the replicas.
async fn publish_once_a_majority_acknowledges(js: &jetstream::Context, nodes: &[NatsServer]) {
    // A new R3 stream may answer "not found" until its leader is elected: retry until settled.
    let started = Instant::now();
    loop {
        let ack = match js
            .publish("disputes.evt.d-1.DisputeOpened", "{}".into())
            .await
        {
            Ok(pending) => pending.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match ack {
            Ok(()) => break,
            Err(_) if started.elapsed() < SETTLE_TIMEOUT => pause().await,
            Err(e) => panic!(
                "not acknowledged by a majority of replicas within {SETTLE_TIMEOUT:?}: {e}\n{}",
                logs(nodes)
            ),
        }
    }
}

/// The auditor, connected to n3, reads the event published through n1.
async fn the_auditor_reads_the_event_on_n3(nodes: &[NatsServer]) {
    let auditor = Probe::connect(&nodes[2].url(), "auditor").await;
    let from_n3 = jetstream::new(auditor.client.clone())
        .get_stream("DISPUTE_EVENTS")
        .await;
    let first = from_n3
        .expect("stream info on n3")
        .get_raw_message(1)
        .await
        .expect("read on n3");
    assert_eq!(first.subject.as_str(), "disputes.evt.d-1.DisputeOpened");
}

/// The buyer gateway on n2 gets replies from a responder on n3, and is refused a ruling and a
/// forged event there as on a single node.
async fn the_buyer_on_n2_reaches_the_service_on_n3_and_nothing_more(nodes: &[NatsServer]) {
    let responder = Responder::start(&nodes[2].url()).await;
    let mut buyer = Probe::connect(&nodes[1].url(), "buyer_gateway").await;
    let started = Instant::now();
    // The responder's subscription on n3 reaches n2 over the routes a moment later.
    while buyer
        .client
        .request("disputes.cmd.open", "{}".into())
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < SETTLE_TIMEOUT,
            "no reply across the cluster\n{}",
            logs(nodes)
        );
        pause().await;
    }
    buyer.expect_publish_denied("disputes.cmd.rule").await;
    buyer
        .expect_publish_denied("disputes.evt.d-2.DisputeOpened")
        .await;
    buyer.expect_no_more_violations().await;
    assert!(responder.seen().iter().all(|s| s == "disputes.cmd.open"));
}

async fn pause() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

fn logs(nodes: &[NatsServer]) -> String {
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| format!("--- n{} log:\n{}", i + 1, n.log()))
        .collect()
}
