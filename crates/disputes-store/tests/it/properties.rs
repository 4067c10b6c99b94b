//! Property: whatever the sequence of appends reusing command ids, each id appends once, and
//! every repeat gets the first outcome. `PROPTEST_CASES` cases in all (10,000 in CI; 1,000 by
//! default), in four quarters that run in parallel, each against one temporary buffered store,
//! each case under its own id prefix.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use disputes_store::{AppendOutcome, CommandOutcome, EventStore, SledStore, StoreError};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;

use crate::support::request;

/// One append: which command id (of a few), which dispute (of a few), how many events, and
/// whether to send a stale `expected_version`.
#[derive(Debug, Clone)]
struct Op {
    command: u8,
    dispute: u8,
    events: usize,
    stale: bool,
}

fn op() -> impl Strategy<Value = Op> {
    (0u8..6, 0u8..3, 1usize..4, prop::bool::weighted(0.1)).prop_map(
        |(command, dispute, events, stale)| Op {
            command,
            dispute,
            events,
            stale,
        },
    )
}

#[derive(Default)]
struct Model {
    versions: HashMap<String, u64>,
    outcomes: HashMap<String, CommandOutcome>,
    appended: u64,
}

fn run_ops(store: &SledStore, prefix: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    let head_before = store.head();
    for (i, op) in ops.iter().enumerate() {
        let (command, dispute) = (
            format!("p{prefix}-c{}", op.command),
            format!("p{prefix}-d{}", op.dispute),
        );
        let version = model.versions.get(&dispute).copied().unwrap_or(0);
        let mut req = request(
            &dispute,
            version + u64::from(op.stale),
            Some(&command),
            op.events,
        );
        req.command.as_mut().unwrap().fingerprint = format!("fp-{i}");
        req.command.as_mut().unwrap().meta = json!({"op": i});
        match (store.append(req), model.outcomes.get(&command)) {
            (Ok(AppendOutcome::Duplicate(outcome)), Some(first)) => {
                prop_assert_eq!(&outcome, first)
            }
            (Err(StoreError::VersionConflict { expected, actual }), None) => {
                prop_assert!(op.stale);
                prop_assert_eq!((expected, actual), (version + 1, version));
            }
            (Ok(AppendOutcome::Appended(envelopes)), None) => {
                prop_assert!(!op.stale);
                prop_assert_eq!(envelopes.len(), op.events);
                prop_assert_eq!(envelopes[0].version, version + 1);
                model
                    .versions
                    .insert(dispute.clone(), version + op.events as u64);
                model.appended += op.events as u64;
                let (fingerprint, meta) = (format!("fp-{i}"), json!({"op": i}));
                let outcome = CommandOutcome {
                    fingerprint,
                    meta,
                    dispute_id: dispute,
                    events: envelopes,
                };
                model.outcomes.insert(command, outcome);
            }
            (other, first) => prop_assert!(
                false,
                "op {i} {op:?}: got {other:?}, first outcome {first:?}"
            ),
        }
    }
    check_model(store, prefix, &model, head_before)
}

fn check_model(
    store: &SledStore,
    prefix: u64,
    model: &Model,
    head_before: u64,
) -> Result<(), TestCaseError> {
    for (command, first) in &model.outcomes {
        let recorded = store.command(command).unwrap();
        prop_assert_eq!(recorded.as_ref(), Some(first));
    }
    for dispute in 0..3 {
        let dispute = format!("p{prefix}-d{dispute}");
        let stream = store.read_stream(&dispute).unwrap();
        prop_assert_eq!(
            stream.len() as u64,
            model.versions.get(&dispute).copied().unwrap_or(0)
        );
    }
    prop_assert_eq!(store.head(), head_before + model.appended);
    Ok(())
}

/// A quarter of `PROPTEST_CASES` (else of 1,000).
fn quarter_of_the_cases() -> u32 {
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000);
    cases.div_ceil(4)
}

fn run_cases(first_prefix: u64) {
    let cases = quarter_of_the_cases();
    let store = SledStore::open_temporary().unwrap();
    let prefix = AtomicU64::new(first_prefix);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let ops = prop::collection::vec(op(), 1..12);
    let result = runner.run(&ops, |ops| {
        run_ops(&store, prefix.fetch_add(1, Ordering::Relaxed), &ops)
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    crate::support::assert_log_intact(&store);
}

#[test]
fn repeated_command_ids_append_once_a() {
    run_cases(0);
}

#[test]
fn repeated_command_ids_append_once_b() {
    run_cases(1_000_000);
}

#[test]
fn repeated_command_ids_append_once_c() {
    run_cases(2_000_000);
}

#[test]
fn repeated_command_ids_append_once_d() {
    run_cases(3_000_000);
}
