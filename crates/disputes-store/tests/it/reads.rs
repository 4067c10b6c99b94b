//! read_stream, read_from, head, subscribe, command, stream_version.

use std::time::Duration;

use disputes_store::{EventStore, SledStore};
use serde_json::json;

use crate::support::{appended, at, block_on, open, request};

fn three_disputes() -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    appended(store.append(request("d-1", 0, Some("c-1"), 2))); // seq 1, 2
    appended(store.append(request("d-2", 0, Some("c-2"), 1))); // seq 3
    appended(store.append(request("d-1", 2, None, 1))); // seq 4
    appended(store.append(request("d-3", 0, Some("c-3"), 3))); // seq 5, 6, 7
    (dir, store)
}

#[test]
fn read_stream_gives_one_dispute_in_version_order() {
    let (_dir, store) = three_disputes();
    let stream = store.read_stream("d-1").unwrap();
    let positions: Vec<(u64, u64)> = stream.iter().map(|e| (e.version, e.seq)).collect();
    assert_eq!(positions, vec![(1, 1), (2, 2), (3, 4)]);
    assert!(stream.iter().all(|e| e.dispute_id == "d-1"));
    assert_eq!(stream[2].command_id, None);
    assert_eq!(stream[0].command_id.as_deref(), Some("c-1"));
    assert_eq!(stream[0].occurred_at, at());
    assert_eq!(
        stream[0].data,
        json!({"i": 0, "nested": {"a": null, "b": [1, 2]}})
    );
    assert!(store.read_stream("d-unknown").unwrap().is_empty());
    // "d-1" is a prefix of no other id's keys and vice versa.
    appended(store.append(request("d-10", 0, None, 1)));
    assert_eq!(store.read_stream("d-1").unwrap().len(), 3);
    assert_eq!(store.stream_version("d-1").unwrap(), 3);
    assert_eq!(store.stream_version("d-10").unwrap(), 1);
    assert_eq!(store.stream_version("d-unknown").unwrap(), 0);
}

#[test]
fn read_from_pages_through_the_log() {
    let (_dir, store) = three_disputes();
    assert_eq!(store.head(), 7);
    let seqs = |from, limit| -> Vec<u64> {
        store
            .read_from(from, limit)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect()
    };
    assert_eq!(seqs(1, 100), vec![1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(seqs(0, 2), vec![1, 2], "seq 0 reads from the start");
    assert_eq!(seqs(3, 3), vec![3, 4, 5]);
    assert_eq!(seqs(7, 3), vec![7]);
    assert!(seqs(8, 3).is_empty());
    assert!(seqs(1, 0).is_empty());
}

#[test]
fn command_gives_the_recorded_outcome() {
    let (_dir, store) = three_disputes();
    let outcome = store.command("c-3").unwrap().expect("recorded");
    assert_eq!(outcome.dispute_id, "d-3");
    assert_eq!(
        outcome.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
    assert_eq!(outcome.fingerprint, "fp-c-3");
    assert_eq!(store.command("c-unknown").unwrap(), None);
}

#[test]
fn subscribe_follows_the_durable_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut head = store.subscribe();
    assert_eq!(*head.borrow_and_update(), 0);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            appended(store.append(request("d-1", 0, None, 2)))
        })
    };
    block_on(head.changed()).unwrap();
    let seen = *head.borrow_and_update();
    let envelopes = writer.join().unwrap();
    assert_eq!(
        seen, 2,
        "the head moves once per group commit, to its last seq"
    );
    assert_eq!(envelopes.last().unwrap().seq, seen);
    assert_eq!(
        store.read_from(1, 10).unwrap().len(),
        2,
        "what the head says is readable"
    );
    // A late subscriber starts at the current head.
    assert_eq!(*store.subscribe().borrow(), 2);
}

#[test]
fn temporary_store_works_and_disappears() {
    let store = SledStore::open_temporary().unwrap();
    appended(store.append(request("d-1", 0, Some("c-1"), 1)));
    assert_eq!(store.read_stream("d-1").unwrap().len(), 1);
    crate::support::assert_log_intact(&store);
}
