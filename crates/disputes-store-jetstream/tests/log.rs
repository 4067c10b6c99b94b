//! The JetStream log against a real nats-server: the store contract, its copy rebuilt from the
//! stream, two sequencers racing on one stream, and a stream holding what does not continue the log.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use disputes_store::{
    ActorRef, AppendOutcome, AppendRequest, CommandRecord, Envelope, EventStore, NewEvent,
    StoreError, StoreOptions,
};
use disputes_store_jetstream::{JetStreamStore, LogConfig, APPEND_HEADER};
use disputes_testkit::NatsServer;
use serde_json::json;

fn config() -> LogConfig {
    LogConfig {
        stream: "DISPUTE_EVENTS".into(),
        subject_prefix: "disputes".into(),
        replicas: 1,
    }
}

async fn open(server: &NatsServer, replica: &Path) -> JetStreamStore {
    let client = async_nats::connect(server.url()).await.unwrap();
    JetStreamStore::open(client, config(), replica, StoreOptions::default(), None)
        .await
        .expect("the store opens")
}

fn at() -> DateTime<Utc> {
    "2026-11-27T08:00:00Z".parse().unwrap()
}

fn request(dispute: &str, version: u64, command: Option<&str>, count: usize) -> AppendRequest {
    AppendRequest {
        dispute_id: dispute.into(),
        expected_version: version,
        command: command.map(|id| CommandRecord {
            command_id: id.into(),
            fingerprint: format!("fp-{id}"),
            meta: json!({"n": 1}),
        }),
        reserve_order: (version == 0).then(|| format!("o-{dispute}")),
        events: (0..count)
            .map(|i| NewEvent {
                event_type: "Thing".into(),
                data: json!({"i": i}),
                occurred_at: at(),
                actor: ActorRef {
                    role: "buyer".into(),
                    id: "b-1".into(),
                },
                command_id: command.map(str::to_owned),
            })
            .collect(),
    }
}

/// A dispute's version from a blocking thread, as the command side reads it (the read waits for
/// the copy to hold this instance's own appends).
async fn version_of(store: &JetStreamStore, dispute: &str) -> u64 {
    let (store, dispute) = (store.clone(), dispute.to_owned());
    tokio::task::spawn_blocking(move || store.stream_version(&dispute))
        .await
        .unwrap()
        .unwrap()
}

/// Two instances (each its own copy and sequencer) on one server's log stream.
async fn two_instances() -> (
    NatsServer,
    tempfile::TempDir,
    JetStreamStore,
    JetStreamStore,
) {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let a = open(&server, &dir.path().join("a")).await;
    let b = open(&server, &dir.path().join("b")).await;
    (server, dir, a, b)
}

/// `append` from a blocking thread, as the command side calls it.
async fn append(store: &JetStreamStore, req: AppendRequest) -> Result<AppendOutcome, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.append(req))
        .await
        .unwrap()
}

fn events(outcome: Result<AppendOutcome, StoreError>) -> Vec<Envelope> {
    match outcome {
        Ok(AppendOutcome::Appended(events)) => events,
        other => panic!("expected an append, got {other:?}"),
    }
}

fn all(store: &JetStreamStore) -> Vec<Envelope> {
    store.read_from(1, 10_000).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_land_in_the_stream_at_their_seq_and_repeats_conflicts_and_held_orders_append_nothing(
) {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let store = open(&server, &dir.path().join("copy")).await;
    let first = events(append(&store, request("d-1", 0, Some("c-1"), 3)).await);
    assert_eq!(
        first.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    events(append(&store, request("d-2", 0, Some("c-2"), 1)).await);
    let repeat = append(&store, request("d-1", 3, Some("c-1"), 1))
        .await
        .unwrap();
    match repeat {
        AppendOutcome::Duplicate(outcome) => assert_eq!(outcome.events, first),
        other => panic!("expected the first outcome, got {other:?}"),
    }
    let stale = append(&store, request("d-1", 1, Some("c-3"), 1)).await;
    assert!(
        matches!(
            stale,
            Err(StoreError::VersionConflict {
                expected: 1,
                actual: 3
            })
        ),
        "{stale:?}"
    );
    let mut taken = request("d-3", 0, Some("c-4"), 1);
    taken.reserve_order = Some("o-d-1".into());
    assert!(matches!(
        append(&store, taken).await,
        Err(StoreError::OrderTaken { .. })
    ));
    // Answered once the stream has it; the copy (what reads see) follows a moment later.
    wait_for_head(&store, 4).await;
    assert_eq!(store.head(), 4);
    assert!(store.verify().unwrap().is_intact());
    // The stream holds exactly the log: each event at its own sequence, as published.
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("DISPUTE_EVENTS").await.unwrap();
    for e in all(&store) {
        let message = stream.get_raw_message(e.seq).await.unwrap();
        assert_eq!(
            message.subject.as_str(),
            format!("disputes.evt.{}.Thing", e.dispute_id)
        );
        assert_eq!(disputes_store::parse_envelope(&message.payload).unwrap(), e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_copy_is_rebuilt_from_the_stream_and_still_knows_every_command_and_order() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let store = open(&server, &dir.path().join("copy")).await;
        for i in 0..20 {
            let dispute = format!("d-{}", i % 5);
            let version = version_of(&store, &dispute).await;
            let command = format!("c-{i}");
            events(
                append(
                    &store,
                    request(&dispute, version, Some(&command), 1 + i % 3),
                )
                .await,
            );
        }
        wait_for_head(&store, 39).await;
        all(&store)
    };
    // Another instance, with nothing on its disk.
    let store = open(&server, &dir.path().join("other-copy")).await;
    assert_eq!(all(&store), before);
    let repeat = append(&store, request("d-0", 9, Some("c-5"), 1))
        .await
        .unwrap();
    assert!(matches!(repeat, AppendOutcome::Duplicate(_)), "{repeat:?}");
    let mut taken = request("d-9", 0, Some("c-99"), 1);
    taken.reserve_order = Some("o-d-3".into());
    assert!(matches!(
        append(&store, taken).await,
        Err(StoreError::OrderTaken { .. })
    ));
    let version = version_of(&store, "d-1").await;
    let next = events(append(&store, request("d-1", version, Some("c-100"), 1)).await);
    assert_eq!(next[0].seq, before.len() as u64 + 1);
    assert_eq!(next[0].prev_hash, before.last().unwrap().hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sequencers_racing_on_one_stream_never_both_append_and_the_log_verifies() {
    let (_server, _dir, a, b) = two_instances().await;
    let mut tasks = Vec::new();
    for worker in 0..8u64 {
        let store = if worker % 2 == 0 {
            a.clone()
        } else {
            b.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            for i in 0..15u64 {
                let dispute = format!("d-{}", (worker + i) % 4);
                let version = version_of(&store, &dispute).await;
                let command = format!("c-{worker}-{i}");
                match append(&store, request(&dispute, version, Some(&command), 1)).await {
                    Ok(AppendOutcome::Appended(events)) => accepted.push(events),
                    Err(StoreError::VersionConflict { .. }) => {}
                    other => panic!("{other:?}"),
                }
            }
            accepted
        }));
    }
    let mut accepted = Vec::new();
    for task in tasks {
        accepted.extend(task.await.unwrap());
    }
    let head = accepted.iter().map(|e| e[0].seq).max().unwrap();
    for store in [&a, &b] {
        wait_for_head(store, head).await;
        let log = all(store);
        assert_eq!(log.len() as u64, head);
        assert!(store.verify().unwrap().is_intact());
        // Every acknowledged append is in the log exactly as acknowledged; versions never repeat.
        for events in &accepted {
            assert_eq!(&log[(events[0].seq - 1) as usize], &events[0]);
        }
    }
    assert_eq!(
        accepted.len() as u64,
        head,
        "every event in the log was acknowledged once"
    );
    let (a, b) = (a.stats(), b.stats());
    eprintln!("racing sequencers: a {a:?}, b {b:?}");
    assert!(a.appends > 0 && b.appends > 0, "both wrote: {a:?} {b:?}");
}

async fn wait_for_head(store: &JetStreamStore, head: u64) {
    let mut watch = store.subscribe();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        watch.wait_for(|h| *h >= head),
    )
    .await
    .expect("the copy catches up")
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_message_in_the_log_stream_stops_appends_naming_its_seq() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let store = open(&server, &dir.path().join("copy")).await;
    events(append(&store, request("d-1", 0, Some("c-1"), 1)).await);
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        APPEND_HEADER,
        r#"{"count":1,"command":null,"reserve_order":null}"#,
    );
    js.publish_with_headers(
        "disputes.evt.d-1.Thing",
        headers,
        "{\"not\":\"an envelope\"}".into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let store = Arc::new(store);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.failure().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the follower never stopped"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    match store.failure() {
        Some(StoreError::Corrupt { seq: 2, .. }) => {}
        other => panic!("expected the failure at seq 2, got {other:?}"),
    }
    let refused = append(&store, request("d-1", 1, Some("c-2"), 1)).await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_has_not_seen_the_other_writers_append_is_fenced_and_appends_after_it() {
    let (_server, _dir, a, b) = two_instances().await;
    for i in 0..6u64 {
        // Each writer's last known sequence is its own last append: every turn, the stream moved on.
        let store = if i % 2 == 0 { &a } else { &b };
        let req = request(&format!("d-{i}"), 0, Some(&format!("c-{i}")), 1);
        assert_eq!(events(append(store, req).await)[0].seq, i + 1);
    }
    let (a, b) = (a.stats(), b.stats());
    assert_eq!((a.appends, b.appends), (3, 3));
    assert!(
        a.retries + b.retries >= 5,
        "each turn after the first was fenced: {a:?} {b:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_commands_sent_to_two_instances_append_once_and_read_as_one_judge_in_log_order() {
    let (_server, _dir, a, b) = two_instances().await;
    // Every command goes to both instances at once, as a client retrying on another would send it.
    let mut results = Vec::new();
    for i in 0..24u64 {
        let dispute = format!("d-{}", i % 3);
        let version = version_of(&a, &dispute)
            .await
            .max(version_of(&b, &dispute).await);
        let req = request(
            &dispute,
            version,
            Some(&format!("c-{i}")),
            1 + (i % 2) as usize,
        );
        let (on_a, on_b) = tokio::join!(append(&a, req.clone()), append(&b, req.clone()));
        results.push((req, on_a, on_b));
    }
    let head = a.stats().appends + b.stats().appends;
    let mut log = Vec::new();
    for store in [&a, &b] {
        let mut watch = store.subscribe();
        let want = results
            .iter()
            .filter_map(|(_, x, y)| appended_seq(x).or(appended_seq(y)))
            .max();
        if let Some(want) = want {
            tokio::time::timeout(
                std::time::Duration::from_secs(10),
                watch.wait_for(|h| *h >= want),
            )
            .await
            .unwrap()
            .unwrap();
        }
        log = all(store);
        assert!(store.verify().unwrap().is_intact());
    }
    assert_eq!(
        head as usize,
        results
            .iter()
            .filter(|(_, x, y)| appended_seq(x).or(appended_seq(y)).is_some())
            .count()
    );
    let duplicates = results
        .iter()
        .filter(|(_, x, y)| {
            matches!(x, Ok(AppendOutcome::Duplicate(_)))
                || matches!(y, Ok(AppendOutcome::Duplicate(_)))
        })
        .count();
    // Both instances judged each command; the one that lost the race read the stream and
    // answered from the first outcome (24 of 24 in three runs here).
    assert!(duplicates > 0, "the race path ran");
    one_judge_in_the_logs_order_agrees(&results, log.len());
}

type Sent = (
    AppendRequest,
    Result<AppendOutcome, StoreError>,
    Result<AppendOutcome, StoreError>,
);

/// The same requests, in the log's order, on a fresh store of one instance: each append the
/// cluster accepted lands where the cluster put it; a duplicate was answered with the first outcome.
fn one_judge_in_the_logs_order_agrees(results: &[Sent], log_len: usize) {
    let judge = disputes_store::SledStore::open_temporary().unwrap();
    let mut accepted: Vec<(&AppendRequest, Vec<Envelope>)> = Vec::new();
    for (req, on_a, on_b) in results {
        let (x, y) = (outcome(on_a), outcome(on_b));
        match (x, y) {
            // Both appended: the same command twice in the log.
            (Some(Ok(_)), Some(Ok(_))) => panic!("{:?} appended twice", req.command),
            (Some(Ok(events)), other) | (other, Some(Ok(events))) => {
                // The other instance answered from the first outcome, or lost the race.
                if let Some(Err(first)) = other {
                    assert_eq!(
                        first, events,
                        "a duplicate is answered with the first outcome"
                    );
                }
                accepted.push((req, events));
            }
            _ => {}
        }
    }
    accepted.sort_by_key(|(_, events)| events[0].seq);
    for (req, landed) in &accepted {
        let mut again = (*req).clone();
        again.expected_version = landed[0].version - 1;
        let judged = events(judge.append(again));
        assert_eq!(judged.len(), landed.len());
        assert_eq!(
            (judged[0].seq, judged[0].version),
            (landed[0].seq, landed[0].version),
            "judged in the log's order, each accepted append lands where the cluster put it"
        );
    }
    assert_eq!(
        accepted.iter().map(|(_, e)| e.len()).sum::<usize>(),
        log_len
    );
}

fn appended_seq(outcome: &Result<AppendOutcome, StoreError>) -> Option<u64> {
    match outcome {
        Ok(AppendOutcome::Appended(events)) => events.last().map(|e| e.seq),
        _ => None,
    }
}

/// `Ok(events)` appended, `Err(events)` a duplicate answered with these, `None` refused.
fn outcome(
    outcome: &Result<AppendOutcome, StoreError>,
) -> Option<Result<Vec<Envelope>, Vec<Envelope>>> {
    match outcome {
        Ok(AppendOutcome::Appended(events)) => Some(Ok(events.clone())),
        Ok(AppendOutcome::Duplicate(first)) => Some(Err(first.events.clone())),
        Err(StoreError::VersionConflict { .. }) => None,
        Err(other) => panic!("{other:?}"),
    }
}
