//! A flood of 10,000 malformed commands on one subject, all in flight at once, while a second
//! client runs whole disputes on the same subject: every malformed one gets its refusal, the
//! scenario completes in bounded time, and nothing malformed is stored.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::kit::{Client, NatsServer, Service};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::support::Dispute;

const FLOOD: usize = 10_000;
/// Each scenario command must be answered within this, flood or not.
const SCENARIO_LATENCY_MAX: Duration = Duration::from_secs(5);
/// The whole flood must be answered within this.
const FLOOD_TIME_MAX: Duration = Duration::from_secs(60);

/// The `i`th malformed `open`: six kinds in turn, each refused before the dispute is looked up.
fn malformed(i: usize) -> (Vec<u8>, &'static str) {
    let open = |dispute_id: String, amount: Value, extra: Option<(&str, Value)>| {
        let mut body = json!({
            "command_id": format!("flood-c-{i}"),
            "dispute_id": dispute_id,
            "actor": {"role": "buyer", "id": "flood-b"},
            "data": {
                "order_id": format!("flood-o-{i}"),
                "seller_id": "flood-s",
                "reason": "not_received",
                "order_amount": {"amount": amount, "currency": "USD"},
                "proposal": {"solution": "full_refund"},
            },
        });
        if let Some((key, value)) = extra {
            body[key] = value;
        }
        serde_json::to_vec(&body).unwrap()
    };
    let id = format!("flood-d-{i}");
    match i % 6 {
        0 => (format!("not json {i}").into_bytes(), "invalid_request"),
        1 => (format!("[{i}]").into_bytes(), "invalid_request"),
        2 => (open(id, json!(10.5), None), "invalid_request"),
        3 => (
            open(id, json!(100), Some(("bogus", json!(i)))),
            "invalid_request",
        ),
        4 => (
            open(format!("flood d {i}!"), json!(100), None),
            "invalid_value",
        ),
        _ => (open(id, json!(0), None), "invalid_value"),
    }
}

/// Publishes the whole flood at once, then collects one reply per request.
async fn flood(client: Client) -> (BTreeMap<String, usize>, Duration) {
    let nats = client.nats().clone();
    let inbox = nats.new_inbox();
    let mut replies = nats.subscribe(format!("{inbox}.*")).await.unwrap();
    let started = Instant::now();
    let mut expected = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        let (body, code) = malformed(i);
        expected.push(code);
        let reply_to = format!("{inbox}.{i}");
        nats.publish_with_reply("disputes.cmd.open", reply_to, body.into())
            .await
            .unwrap();
    }
    nats.flush().await.unwrap();
    let mut seen = HashSet::with_capacity(FLOOD);
    let mut codes = BTreeMap::new();
    while seen.len() < FLOOD {
        let left = FLOOD_TIME_MAX.saturating_sub(started.elapsed());
        let message = tokio::time::timeout(left, replies.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {FLOOD} replies in time", seen.len()))
            .expect("subscription open");
        let i: usize = message.subject.rsplit('.').next().unwrap().parse().unwrap();
        assert!(seen.insert(i), "request {i} answered twice");
        let reply: Value = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(reply["ok"], false, "request {i}: {reply}");
        assert_eq!(reply["error"]["code"], expected[i], "request {i}: {reply}");
        let code = reply["error"]["code"].as_str().unwrap().to_owned();
        *codes.entry(code).or_insert(0) += 1;
    }
    (codes, started.elapsed())
}

/// One dispute from open to resolved; returns its slowest command's latency and its last seq.
async fn scenario(client: &Client) -> (Duration, u64) {
    let d = Dispute::new(client);
    let mut slowest = Duration::ZERO;
    let mut timed = |started: Instant| slowest = slowest.max(started.elapsed());
    let started = Instant::now();
    d.open("not_received", 3000, json!({"solution": "full_refund"}))
        .await;
    timed(started);
    let started = Instant::now();
    let counter = json!({"proposal": {"solution": "partial_refund", "amount": 500}});
    d.ok("counter_propose", "seller", counter).await;
    timed(started);
    let started = Instant::now();
    let r = d.ok("accept_proposal", "buyer", json!({})).await;
    timed(started);
    assert_eq!(r["status"], "resolved");
    assert_eq!(
        d.history().await.len() as u64,
        r["version"].as_u64().unwrap()
    );
    (slowest, r["seq"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_malformed_requests_are_refused_while_another_client_goes_on() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats.url(), "");
    let normal = Client::connect(&nats.url()).await;
    service.wait_ready(&normal).await;
    let flooder = Client::connect(&nats.url()).await;

    let flooding = Arc::new(AtomicBool::new(true));
    let flood_task = tokio::spawn(flood(flooder));
    let scenario_task = tokio::spawn({
        let (normal, flooding) = (normal.clone(), flooding.clone());
        async move {
            let (mut runs, mut during, mut slowest, mut seq) = (0, 0, Duration::ZERO, 0);
            while runs < 3 || flooding.load(Ordering::Relaxed) {
                let was_flooding = flooding.load(Ordering::Relaxed);
                let (latency, last) = scenario(&normal).await;
                (slowest, seq) = (slowest.max(latency), seq.max(last));
                runs += 1;
                during += usize::from(was_flooding);
            }
            (runs, during, slowest, seq)
        }
    });
    let (codes, flood_time) = flood_task.await.expect("flood task");
    flooding.store(false, Ordering::Relaxed);
    let (runs, during, slowest, seq) = scenario_task.await.expect("scenario task");
    eprintln!(
        "flood: {FLOOD} refused in {flood_time:?} ({codes:?}); scenario: {runs} disputes, \
         {during} begun during the flood, slowest command {slowest:?}"
    );
    assert_eq!(codes.values().sum::<usize>(), FLOOD);
    assert!(during >= 1, "the scenario ran during the flood");
    assert!(
        slowest < SCENARIO_LATENCY_MAX,
        "a scenario command took {slowest:?}"
    );

    // Nothing malformed is stored: only the scenario's disputes exist, no flood id has a history.
    let stats = normal.query("stats", json!({"min_seq": seq})).await;
    assert_eq!(stats["stats"]["total"], json!(runs), "{stats}");
    for i in (0..FLOOD).step_by(97).filter(|i| i % 6 != 4) {
        assert!(normal.history(&format!("flood-d-{i}")).await.is_empty());
    }
    assert!(service.try_wait().is_none(), "the service is still up");
}

/// Queries that wait for a seq that was never written must not hold the in-flight slots that
/// everyone shares (each would hold one for 5 s): with `inflight_max = 8`, 64 of them, then a
/// command, all answered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_waiting_for_a_seq_never_written_do_not_hold_up_others() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats.url(), "[limits]\ninflight_max = 8\n");
    let client = Client::connect(&nats.url()).await;
    service.wait_ready(&client).await;
    let nats_client = client.nats().clone();
    let inbox = nats_client.new_inbox();
    let mut replies = nats_client.subscribe(format!("{inbox}.*")).await.unwrap();
    const SLOW: usize = 64;
    for i in 0..SLOW {
        let body = json!({"dispute_id": "d-never", "min_seq": 1u64 << 50});
        let body = serde_json::to_vec(&body).unwrap();
        nats_client
            .publish_with_reply("disputes.query.get", format!("{inbox}.{i}"), body.into())
            .await
            .unwrap();
    }
    nats_client.flush().await.unwrap();

    let started = Instant::now();
    Dispute::new(&client)
        .open("not_received", 3000, json!({"solution": "full_refund"}))
        .await;
    let latency = started.elapsed();
    assert!(
        latency < Duration::from_secs(2),
        "the command took {latency:?}"
    );
    for _ in 0..SLOW {
        let message = tokio::time::timeout(Duration::from_secs(2), replies.next())
            .await
            .expect("each query is answered at once")
            .unwrap();
        let answer: Value = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(answer["error"]["code"], "timeout", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("never written"), "{message}");
    }
}
