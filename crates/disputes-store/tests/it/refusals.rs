//! Each refusal leaves the store unchanged; a refused request does not fail its batch-mates.

use std::sync::Barrier;

use disputes_store::{AppendOutcome, EventStore, SledStore, StoreError};
use serde_json::json;

use crate::support::{appended, assert_log_intact, event, open, request};

#[test]
fn version_conflict_is_refused_and_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    appended(store.append(request("d-1", 0, Some("c-1"), 2)));
    let refused = store.append(request("d-1", 0, Some("c-2"), 1));
    assert_eq!(
        refused,
        Err(StoreError::VersionConflict {
            expected: 0,
            actual: 2
        })
    );
    let refused = store.append(request("d-1", 7, Some("c-3"), 1));
    assert_eq!(
        refused,
        Err(StoreError::VersionConflict {
            expected: 7,
            actual: 2
        })
    );
    assert_eq!((store.head(), store.stream_version("d-1").unwrap()), (2, 2));
    // A refused command id was not recorded: the same id appends once the version is right.
    assert_eq!(store.command("c-2").unwrap(), None);
    let envelopes = appended(store.append(request("d-1", 2, Some("c-2"), 1)));
    assert_eq!((envelopes[0].seq, envelopes[0].version), (3, 3));
}

#[test]
fn repeated_command_id_returns_the_first_outcome_and_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let first = appended(store.append(request("d-1", 0, Some("c-1"), 2)));
    // Same id, another body, another dispute, another fingerprint: still the first outcome.
    let mut again = request("d-2", 0, Some("c-1"), 3);
    again.command.as_mut().unwrap().fingerprint = "another".into();
    let Ok(AppendOutcome::Duplicate(outcome)) = store.append(again) else {
        panic!("expected a duplicate")
    };
    assert_eq!(outcome.fingerprint, "fp-c-1");
    assert_eq!(outcome.meta, json!({"status": "awaiting_seller_response"}));
    assert_eq!(outcome.dispute_id, "d-1");
    assert_eq!(outcome.events, first);
    assert_eq!(store.head(), 2);
    assert_eq!(store.stream_version("d-2").unwrap(), 0);
    assert_eq!(store.command("c-1").unwrap(), Some(outcome));
}

#[test]
fn a_second_dispute_on_an_order_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut open_1 = request("d-1", 0, Some("c-1"), 1);
    open_1.reserve_order = Some("o-1".into());
    appended(store.append(open_1));
    let mut open_2 = request("d-2", 0, Some("c-2"), 1);
    open_2.reserve_order = Some("o-1".into());
    let refused = store.append(open_2.clone());
    let taken = StoreError::OrderTaken {
        order_id: "o-1".into(),
        dispute_id: "d-1".into(),
    };
    assert_eq!(refused, Err(taken));
    assert_eq!((store.head(), store.stream_version("d-2").unwrap()), (1, 0));
    assert_eq!(
        store.command("c-2").unwrap(),
        None,
        "a refused command is not recorded"
    );
    // The holder may reserve its own order again; the refused dispute may take another order.
    let mut again = request("d-1", 1, Some("c-3"), 1);
    again.reserve_order = Some("o-1".into());
    appended(store.append(again));
    open_2.reserve_order = Some("o-2".into());
    appended(store.append(open_2));
}

#[test]
fn requests_breaking_a_limit_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut cases = vec![request("d-1", 0, Some("c-1"), 0), request("", 0, None, 1)];
    cases.push(request(
        "d-1",
        0,
        Some("c-1"),
        disputes_store::limits::EVENTS_PER_APPEND_MAX + 1,
    ));
    let mut mismatch = request("d-1", 0, Some("c-1"), 1);
    mismatch.events[0].command_id = Some("c-other".into());
    cases.push(mismatch);
    let mut float = request("d-1", 0, None, 1);
    float.events[0] = event("Thing", json!({"amount": 1.5}), None);
    cases.push(float);
    let mut big = request("d-1", 0, None, 1);
    big.events[0] = event(
        "Thing",
        json!({"text": "x".repeat(disputes_store::limits::DATA_BYTES_MAX)}),
        None,
    );
    cases.push(big);
    let mut deep = json!(1);
    for _ in 0..disputes_store::limits::DATA_DEPTH_MAX {
        deep = json!([deep]);
    }
    let mut nested = request("d-1", 0, None, 1);
    nested.events[0] = event("Thing", deep, None);
    cases.push(nested);
    for case in cases {
        let refused = store.append(case.clone());
        assert!(
            matches!(refused, Err(StoreError::Invalid(_))),
            "{case:?} gave {refused:?}"
        );
    }
    assert_eq!(store.head(), 0);
}

#[test]
fn one_refusal_does_not_fail_the_requests_committed_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let threads = 32;
    let barrier = Barrier::new(threads);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (store, barrier): (&SledStore, _) = (&store, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    // Everyone races for version 1 of "shared"; each also owns a dispute of its own.
                    let shared = store.append(request("shared", 0, Some(&format!("s-{i}")), 1));
                    let own =
                        store.append(request(&format!("own-{i}"), 0, Some(&format!("o-{i}")), 1));
                    (shared, own)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners = results.iter().filter(|(shared, _)| shared.is_ok()).count();
    assert_eq!(winners, 1);
    for (shared, own) in &results {
        if let Err(error) = shared {
            assert_eq!(
                *error,
                StoreError::VersionConflict {
                    expected: 0,
                    actual: 1
                }
            );
        }
        assert!(matches!(own, Ok(AppendOutcome::Appended(_))), "{own:?}");
    }
    assert_eq!(store.head(), threads as u64 + 1);
    crate::support::assert_log_intact(&store);
}

#[test]
fn appends_submitted_together_are_judged_each_on_its_own_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    appended(store.append(request("d-2", 0, Some("c-0"), 1)));
    let outcomes = store.append_many(vec![
        request("d-1", 0, Some("c-1"), 2),
        // The version the one before took: a conflict, not a failure of the others.
        request("d-1", 0, Some("c-2"), 1),
        request("d-1", 2, Some("c-3"), 1),
        // A repeated command id: its first outcome.
        request("d-2", 1, Some("c-0"), 1),
        request("d-2", 1, None, 1),
    ]);
    let seqs = |outcome: &Result<AppendOutcome, StoreError>| -> Vec<u64> {
        match outcome {
            Ok(AppendOutcome::Appended(envelopes)) => envelopes.iter().map(|e| e.seq).collect(),
            other => panic!("expected an append, got {other:?}"),
        }
    };
    assert_eq!(outcomes.len(), 5);
    assert_eq!(seqs(&outcomes[0]), vec![2, 3]);
    assert_eq!(
        outcomes[1],
        Err(StoreError::VersionConflict {
            expected: 0,
            actual: 2
        })
    );
    assert_eq!(seqs(&outcomes[2]), vec![4]);
    assert!(
        matches!(&outcomes[3], Ok(AppendOutcome::Duplicate(first)) if first.events.len() == 1 && first.events[0].seq == 1),
        "{:?}",
        outcomes[3]
    );
    assert_eq!(seqs(&outcomes[4]), vec![5]);
    assert_eq!(
        store.command("c-2").unwrap(),
        None,
        "the conflict recorded nothing"
    );
    assert_log_intact(&store);
}
