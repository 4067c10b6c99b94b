//! Helpers shared by the test modules.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use chrono::{DateTime, Utc};
use disputes_store::{
    ActorRef, AppendOutcome, AppendRequest, CommandRecord, Envelope, EventStore, NewEvent,
    SledStore, StoreError, StoreOptions,
};
use serde_json::{json, Value};

pub(crate) fn at() -> DateTime<Utc> {
    "2026-11-27T08:00:00Z".parse().unwrap()
}

pub(crate) fn actor() -> ActorRef {
    ActorRef {
        role: "buyer".into(),
        id: "b-1".into(),
    }
}

pub(crate) fn event(event_type: &str, data: Value, command_id: Option<&str>) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        data,
        occurred_at: at(),
        actor: actor(),
        command_id: command_id.map(str::to_owned),
    }
}

/// A request for `count` events on `dispute_id` at `expected_version`, under `command_id`.
pub(crate) fn request(
    dispute_id: &str,
    expected_version: u64,
    command_id: Option<&str>,
    count: usize,
) -> AppendRequest {
    AppendRequest {
        dispute_id: dispute_id.into(),
        expected_version,
        command: command_id.map(|id| CommandRecord {
            command_id: id.into(),
            fingerprint: format!("fp-{id}"),
            meta: json!({"status": "awaiting_seller_response"}),
        }),
        reserve_order: None,
        events: (0..count)
            .map(|i| {
                event(
                    "Thing",
                    json!({"i": i, "nested": {"b": [1, 2], "a": null}}),
                    command_id,
                )
            })
            .collect(),
    }
}

pub(crate) fn appended(outcome: Result<AppendOutcome, StoreError>) -> Vec<Envelope> {
    match outcome {
        Ok(AppendOutcome::Appended(envelopes)) => envelopes,
        other => panic!("expected an append, got {other:?}"),
    }
}

pub(crate) fn open(path: &Path) -> SledStore {
    SledStore::open(path, StoreOptions::default()).expect("store opens")
}

/// Every durable event, in seq order, in pages.
pub(crate) fn read_all(store: &impl EventStore) -> Vec<Envelope> {
    let mut all: Vec<Envelope> = Vec::new();
    loop {
        let next = all.last().map_or(1, |e| e.seq + 1);
        let page = store.read_from(next, 1_000).unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// Seqs are 1..=head without a gap, each `prev_hash` is the previous `hash`, `verify` is clean.
pub(crate) fn assert_log_intact(store: &impl EventStore) -> Vec<Envelope> {
    let all = read_all(store);
    assert_eq!(
        all.len() as u64,
        store.head(),
        "every seq up to the head is readable"
    );
    let mut prev = disputes_store::GENESIS_PREV_HASH.to_owned();
    for (i, envelope) in all.iter().enumerate() {
        assert_eq!(envelope.seq, i as u64 + 1, "gap-free seq");
        assert_eq!(envelope.prev_hash, prev, "chained at seq {}", envelope.seq);
        assert_eq!(disputes_store::compute_hash(&prev, envelope), envelope.hash);
        prev = envelope.hash.clone();
    }
    let report = store.verify().unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!((report.events, report.head), (store.head(), store.head()));
    assert_eq!(report.head_hash, prev);
    all
}

/// Runs a future to completion on this thread (the store's crate has no async runtime).
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// A small xorshift generator, seeded from the clock unless `DISPUTES_STORE_SEED` is set.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn seeded(name: &str) -> Rng {
        let seed = std::env::var("DISPUTES_STORE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{name}: DISPUTES_STORE_SEED={seed}");
        Rng(seed | 1)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}
