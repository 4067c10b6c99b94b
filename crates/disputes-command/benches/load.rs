//! What rebuilding a dispute's state costs when the state cache misses: read its stream from the
//! store, decode each envelope (through the upcasters), fold. Measured for histories of 10, 50 and
//! 200 events, beside its baseline in the same run: one durable (fsynced) command on the same
//! machine, to show whether snapshots would pay (`docs/protocol.md`, "Event revisions").

use std::hint::black_box;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use disputes_command::{fold, CommandHandler, Reply};
use disputes_domain::{Limits, Policy};
use disputes_store::{EventStore, SledStore, StoreOptions};
use serde_json::json;

/// A dispute `d-<n>` of `n` events: opened (2 events: DisputeOpened, DeadlineSet), then messages.
fn write_dispute(handler: &CommandHandler<SledStore>, n: usize) -> String {
    let at = Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0).unwrap();
    let dispute = format!("d-{n}");
    let buyer = json!({"role": "buyer", "id": "b-1"});
    let open = json!({"command_id": format!("c-{n}-open"), "dispute_id": dispute, "actor": buyer,
        "data": {"order_id": format!("o-{n}"), "seller_id": "s-1", "reason": "not_received",
                 "order_amount": {"amount": 5000, "currency": "EUR"},
                 "proposal": {"solution": "full_refund"}}});
    let reply = handler.handle("open", &serde_json::to_vec(&open).unwrap(), at);
    assert!(matches!(reply, Reply::Accepted(_)));
    for i in 2..n {
        let text = "Where is my parcel? It was due a week ago; the tracking has not moved.";
        let post = json!({"command_id": format!("c-{n}-{i}"), "dispute_id": dispute,
            "actor": buyer, "data": {"text": text}});
        let reply = handler.handle("post_message", &serde_json::to_vec(&post).unwrap(), at);
        assert!(matches!(reply, Reply::Accepted(_)));
    }
    dispute
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path(), StoreOptions::buffered()).unwrap());
    let handler = CommandHandler::new(store.clone(), Policy::default(), Limits::default());
    for n in [10, 50, 200] {
        let dispute = write_dispute(&handler, n);
        assert_eq!(store.read_stream(&dispute).unwrap().len(), n);
        c.bench_function(&format!("read_stream+fold {n} events"), |b| {
            b.iter(|| fold(&store.read_stream(black_box(&dispute)).unwrap()))
        });
    }
    // The baseline: one post_message, appended and fsynced, as every accepted command is.
    let durable_dir = tempfile::tempdir().unwrap();
    let durable = Arc::new(SledStore::open(durable_dir.path(), StoreOptions::default()).unwrap());
    let handler = CommandHandler::new(durable, Policy::default(), Limits::default());
    let dispute = write_dispute(&handler, 2);
    let at = Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0).unwrap();
    let mut i = 0u64;
    c.bench_function("baseline: one durable command (fsync)", |b| {
        b.iter(|| {
            i += 1;
            let post = json!({"command_id": format!("c-bench-{i}"), "dispute_id": dispute,
                "actor": {"role": "seller", "id": "s-1"}, "data": {"text": "on its way"}});
            handler.handle("post_message", &serde_json::to_vec(&post).unwrap(), at)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
