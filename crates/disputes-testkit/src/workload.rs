//! The workload every benchmark and many tests run: the 5-command lifecycle of a dispute, through
//! the real command handler, into a real store.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use disputes_command::{CommandHandler, Reply};
use disputes_domain::{Limits, Policy};
use disputes_store::{Durability, SledStore, StoreOptions};
use serde_json::json;

/// The five commands of one dispute's lifecycle: open → counter_propose → reject_proposal →
/// submit_shipping_proof → rule(partial_refund): nine events.
pub fn lifecycle(run: &str, n: usize) -> Vec<(&'static str, Vec<u8>)> {
    let (dispute, buyer, seller) = (
        format!("d-{run}-{n}"),
        format!("b-{run}-{n}"),
        format!("s-{run}-{}", n % 97),
    );
    let buyer_actor = json!({"role": "buyer", "id": buyer});
    let seller_actor = json!({"role": "seller", "id": seller});
    let steps = [
        (
            "open",
            buyer_actor.clone(),
            json!({"order_id": format!("o-{run}-{n}"), "seller_id": seller, "reason": "not_received",
            "order_amount": {"amount": 12999, "currency": "USD"}, "proposal": {"solution": "full_refund"},
            "description": "the parcel never arrived"}),
        ),
        (
            "counter_propose",
            seller_actor.clone(),
            json!({"proposal": {"solution": "partial_refund", "amount": 5000}}),
        ),
        (
            "reject_proposal",
            buyer_actor,
            json!({"reason": "I want a full refund"}),
        ),
        (
            "submit_shipping_proof",
            seller_actor,
            json!({"carrier": "DHL", "tracking_number": "JD014600003828"}),
        ),
        (
            "rule",
            json!({"role": "mediator", "id": "m-1"}),
            json!({"outcome": "partial_refund", "amount": 8000, "responsible_party": "logistics", "note": "late"}),
        ),
    ];
    steps
        .into_iter()
        .enumerate()
        .map(|(i, (ty, actor, data))| {
            let body = json!({"command_id": format!("c-{run}-{n}-{i}"), "dispute_id": dispute, "actor": actor, "data": data});
            (ty, serde_json::to_vec(&body).expect("json"))
        })
        .collect()
}

/// Runs `each(dispute)` over `disputes` split across `concurrency` threads; per-op latencies in µs,
/// sorted.
pub fn fan_out(
    disputes: usize,
    concurrency: usize,
    each: impl Fn(usize, &mut Vec<u64>) + Sync,
) -> (Duration, Vec<u64>) {
    let started = Instant::now();
    let mut latencies = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency)
            .map(|t| {
                let each = &each;
                scope.spawn(move || {
                    let mut lat = Vec::new();
                    for n in (t..disputes).step_by(concurrency) {
                        each(n, &mut lat);
                    }
                    lat
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("workload thread"))
            .collect::<Vec<u64>>()
    });
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    (elapsed, latencies)
}

/// The current time to the millisecond, as the service stamps events.
pub fn now() -> DateTime<Utc> {
    Utc.timestamp_millis_opt(Utc::now().timestamp_millis())
        .single()
        .expect("a valid instant")
}

/// A store at `dir` (buffered: not durable) holding `disputes` lifecycles, run on `concurrency`
/// threads through the real command handler.
pub fn fill(dir: &Path, disputes: usize, concurrency: usize) -> Arc<SledStore> {
    let options = StoreOptions {
        durability: Durability::Buffered,
        ..StoreOptions::default()
    };
    let store = Arc::new(SledStore::open(dir, options).expect("open a store to fill"));
    let handler = CommandHandler::new(store.clone(), Policy::default(), Limits::default());
    fan_out(disputes, concurrency, |n, _| {
        for (ty, body) in lifecycle("fill", n) {
            let reply = handler.handle(ty, &body, now());
            assert!(
                matches!(reply, Reply::Accepted(_)),
                "{ty} refused: {reply:?}"
            );
        }
    });
    store
}
