//! Crashes and outages: SIGKILL the service, stop NATS, start a second writer.

use std::collections::HashSet;
use std::time::Duration;

use crate::kit::service::sled_only;
use crate::kit::{Client, NatsServer, Service};
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
    let acked = kill_it_while_four_senders_open_disputes(&mut service, &client).await;

    service.spawn();
    service.wait_ready(&client).await;
    every_acknowledged_event_is_in_its_history(&client, &acked).await;
    every_acknowledged_event_is_on_jetstream_once(&client, &acked).await;
    drop(nats);
}

/// Four senders open disputes until at least 60 are acknowledged; then the service is
/// SIGKILLed. Returns every acknowledged reply, including those that came in before the senders
/// stopped.
async fn kill_it_while_four_senders_open_disputes(
    service: &mut Service,
    client: &Client,
) -> Vec<Value> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let mut senders = Vec::new();
    for _ in 0..4 {
        senders.push(tokio::spawn(keep_opening_disputes(
            client.clone(),
            tx.clone(),
        )));
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
    acked
}

/// Opens new disputes one after another, sending each acknowledged reply to `acked`, until a
/// request fails or times out, or nobody receives any more.
async fn keep_opening_disputes(client: Client, acked: tokio::sync::mpsc::UnboundedSender<Value>) {
    loop {
        let d = Dispute::new(&client);
        let body = d.body("buyer", json!({"order_id": d.order, "seller_id": d.seller, "reason": "not_received",
            "order_amount": {"amount": 100, "currency": "EUR"}, "proposal": {"solution": "full_refund"}}));
        let reply = match tokio::time::timeout(
            Duration::from_secs(2),
            client.nats().request(
                "disputes.cmd.open",
                serde_json::to_vec(&body).unwrap().into(),
            ),
        )
        .await
        {
            Ok(Ok(message)) => serde_json::from_slice::<Value>(&message.payload).unwrap(),
            _ => return,
        };
        if reply["ok"] == true && acked.send(reply).is_err() {
            return;
        }
    }
}

async fn every_acknowledged_event_is_in_its_history(client: &Client, acked: &[Value]) {
    for reply in acked {
        let history = client.history(reply["dispute_id"].as_str().unwrap()).await;
        for event in reply["events"].as_array().unwrap() {
            assert!(
                history.contains(event),
                "acknowledged event {} is in history",
                event["event_id"]
            );
        }
    }
}

/// Waits (up to 10 s) for the acknowledged events to be published; none may be there twice.
async fn every_acknowledged_event_is_on_jetstream_once(client: &Client, acked: &[Value]) {
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
        ids = stream_ids(client).await;
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
    // One command, sent again with its id until answered (an answer may come after a retry went
    // out: the retry is then answered from the first reply).
    let body = d2.body("buyer", json!({"order_id": d2.order, "seller_id": d2.seller, "reason": "not_received",
        "order_amount": {"amount": 100, "currency": "EUR"}, "proposal": {"solution": "full_refund"}}));
    for _ in 0..100 {
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
    // On the JetStream log a second instance serves beside the first: `cluster.rs`.
    if sled_only("the writer lease") {
        return;
    }
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

/// The store seq of every event on `DISPUTE_EVENTS`, in stream order.
async fn stream_seqs(client: &Client) -> Vec<u64> {
    client
        .stream_events("*")
        .await
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect()
}

/// The stream's last sequence number.
async fn stream_last(js: &async_nats::jetstream::Context) -> u64 {
    let mut stream = js.get_stream("DISPUTE_EVENTS").await.unwrap();
    stream.info().await.unwrap().state.last_sequence
}

/// Waits until the stream's last sequence reaches `n`.
async fn wait_stream_last(js: &async_nats::jetstream::Context, n: u64) {
    for _ in 0..2_000 {
        if stream_last(js).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the stream did not reach {n}");
}

/// Opens `n` disputes, 8 at a time; the highest seq acknowledged.
async fn open_many(client: &Client, n: usize) -> u64 {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let client = client.clone();
        tasks.spawn(async move {
            let mut head = 0;
            for _ in (worker..n).step_by(8) {
                let d = Dispute::new(&client);
                let reply = d
                    .open("not_received", 100, json!({"solution": "full_refund"}))
                    .await;
                head = head.max(reply["seq"].as_u64().unwrap());
            }
            head
        });
    }
    let mut head = 0;
    while let Some(done) = tasks.join_next().await {
        head = head.max(done.unwrap());
    }
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_published_once_when_the_service_restarts_after_the_duplicate_window() {
    let nats = NatsServer::start();
    let client = Client::connect(&nats.url()).await;
    // The events stream as the service makes it, but with a duplicate window of one second, so
    // that a restart can come after the window without waiting JetStream's two minutes.
    let js = async_nats::jetstream::new(client.nats().clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "DISPUTE_EVENTS".into(),
        subjects: vec!["disputes.evt.>".into()],
        storage: async_nats::jetstream::stream::StorageType::File,
        deny_delete: true,
        deny_purge: true,
        duplicate_window: Duration::from_secs(1),
        // What the JetStream log needs as well (the sled mode's publisher does not use it).
        allow_atomic_publish: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut service = Service::start(&nats.url(), "");
    service.wait_ready(&client).await;
    let mut head = 0;
    for _ in 0..3 {
        head = open_many(&client, 40).await;
        // Killed the moment the stream holds everything: whatever the publisher keeps of its own
        // progress may lag what the stream holds.
        wait_stream_last(&js, head).await;
        service.kill();
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        service.spawn();
        service.wait_ready(&client).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_stream_last(&js, head).await;
    let seqs = stream_seqs(&client).await;
    assert_eq!(
        seqs,
        (1..=head).collect::<Vec<u64>>(),
        "every event on the stream once, in seq order"
    );
}

/// A tmpfs of its own, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "this test mounts a small tmpfs to fill a disk: it needs root (CI runs as root)"
        );
        Tmpfs { dir }
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "remount the tmpfs");
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// A full disk keeps refusing `unavailable`, also through the typed client, which retries it (it
/// is transient) and then returns it typed.
async fn still_unavailable(client: &Client) {
    let d = Dispute::new(client);
    d.refused(
        "open",
        "buyer",
        json!({"order_id": d.order, "seller_id": d.seller,
        "reason": "not_received", "order_amount": {"amount": 100, "currency": "USD"},
        "proposal": {"solution": "full_refund"}}),
        "unavailable",
    )
    .await;
    let typed = disputes_client::Client::new(client.nats().clone()).with_options(
        disputes_client::Options {
            timeout: Duration::from_secs(5),
            attempts: 3,
            backoff: Duration::from_millis(20),
        },
    );
    let parties = crate::client::Parties::new(&typed);
    let open = parties.open_command(
        disputes_domain::Reason::NotReceived,
        disputes_domain::ProposalTerms::FullRefund,
    );
    let error = typed.send(&open).await.expect_err("the full disk refuses");
    assert_eq!(
        error.code(),
        Some(disputes_client::ErrorCode::Unavailable),
        "{error}"
    );
    assert!(error.is_transient());
}

async fn healthz(port: u16) -> (u16, String) {
    tokio::task::spawn_blocking(move || disputes_testkit::http::get(port, "/healthz"))
        .await
        .unwrap()
        .map_or((0, String::new()), |r| (r.status, r.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_commands_loses_nothing_and_the_service_starts_afresh_once_there_is_room(
) {
    let nats = NatsServer::start();
    let client = Client::connect(&nats.url()).await;
    let disk = Tmpfs::mount("8m");
    let port = crate::kit::nats::free_port();
    let http = format!("[http]\nlisten = \"127.0.0.1:{port}\"\n");
    let mut service = Service::start_on(disk.path(), &nats.url(), &http);
    service.wait_ready(&client).await;

    // Fill the disk with opens carrying long descriptions, until the store refuses.
    let description = "\u{1F4E6}".repeat(4000);
    let mut acked: Vec<Value> = Vec::new();
    let refusal = loop {
        let d = Dispute::new(&client);
        let reply = d
            .send(
                "open",
                "buyer",
                json!({"order_id": d.order, "seller_id": d.seller,
                "reason": "not_received", "order_amount": {"amount": 100, "currency": "USD"},
                "proposal": {"solution": "full_refund"}, "description": description}),
            )
            .await;
        if reply["ok"] != true {
            break reply;
        }
        acked.push(reply);
        assert!(acked.len() < 2_000, "the 8 MiB disk never filled");
    };
    assert_eq!(refusal["error"]["code"], "unavailable", "{refusal}");
    let (status, text) = healthz(port).await;
    assert_eq!(
        status,
        503,
        "health reports the failed store: {text}; the refusal: {refusal}; the log:\n{}",
        service.log()
    );
    still_unavailable(&client).await;

    // Room again: the service notices, stops and exits 4 for its supervisor; we are its supervisor.
    disk.resize("64m");
    let status = service
        .wait_exit(Duration::from_secs(60))
        .expect("the service exits once the disk has room");
    assert_eq!(status.code(), Some(4), "log:\n{}", service.log());
    service.spawn();
    service.wait_ready(&client).await;
    for reply in &acked {
        let history = client.history(reply["dispute_id"].as_str().unwrap()).await;
        assert_eq!(&history[..], reply["events"].as_array().unwrap().as_slice());
    }
    let d = Dispute::new(&client);
    let last = d
        .open("not_received", 100, json!({"solution": "full_refund"}))
        .await;
    let head = last["seq"].as_u64().unwrap();
    let js = async_nats::jetstream::new(client.nats().clone());
    wait_stream_last(&js, head).await;
    assert_eq!(
        stream_seqs(&client).await,
        (1..=head).collect::<Vec<u64>>(),
        "each event published once"
    );
    let (status, _) = healthz(port).await;
    assert_eq!(status, 200);
    drop(service);
}

/// Damages the read models as bit rot would, in the way sled 0.34 refuses to open rather than
/// silently recovering less: a snapshot file whose bytes no longer check out. (A flipped byte in
/// its log file mostly makes sled recover a shorter prefix, which the catch-up refills.)
fn damage_read_models(data_dir: &std::path::Path) {
    let snapshot = data_dir.join("projections/snap.0000000000100000");
    std::fs::write(snapshot, [7u8; 300]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_read_models_are_dropped_and_rebuilt_from_the_log_at_start_and_by_rebuild() {
    let (nats, mut service, client) = fresh().await;
    let head = open_many(&client, 300).await;
    let before = client.query("stats", json!({ "min_seq": head })).await;
    assert_eq!(before["stats"]["total"], 300);
    service.terminate(Duration::from_secs(20)).expect("stops");
    damage_read_models(service.data_dir());
    service.spawn();
    service.wait_ready(&client).await;
    let after = client.query("stats", json!({ "min_seq": head })).await;
    assert_eq!(after, before);
    assert!(
        service.log().contains("the read models are damaged"),
        "{}",
        service.log()
    );
    // Opened again after the catch-up (which gives back what sled grew): still answering above.
    assert!(
        service
            .log()
            .contains("read models opened again after the catch-up"),
        "{}",
        service.log()
    );

    service.terminate(Duration::from_secs(20)).expect("stops");
    damage_read_models(service.data_dir());
    let rebuilt = std::process::Command::new(crate::kit::service::disputes_bin())
        .args(["audit", "rebuild", "--data-dir"])
        .arg(service.data_dir())
        .output()
        .unwrap();
    assert!(
        rebuilt.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    service.spawn();
    service.wait_ready(&client).await;
    assert_eq!(client.query("stats", json!({})).await, before);
    drop(nats);
}
