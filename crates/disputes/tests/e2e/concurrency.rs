//! Commands racing on one dispute: exactly one wins, nothing is appended twice.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::support::{shared_client, Dispute};

#[tokio::test]
async fn thirty_concurrent_conflicting_commands_on_one_dispute_let_exactly_one_succeed() {
    let d = Dispute::new(&shared_client().await);
    d.open("not_received", 5000, json!({"solution": "full_refund"}))
        .await;
    let mut tasks = Vec::new();
    for i in 0..30 {
        let client = d.client.clone();
        // Half accept, half counter-propose: every one of them leaves awaiting_seller_response.
        let (ty, data) = if i % 2 == 0 {
            ("accept_proposal", json!({}))
        } else {
            (
                "counter_propose",
                json!({"proposal": {"solution": "partial_refund", "amount": 100 + i}}),
            )
        };
        let body = d.body("seller", data);
        tasks.push(tokio::spawn(async move { client.cmd(ty, body).await }));
    }
    let mut replies: Vec<Value> = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    let winners = replies.iter().filter(|r| r["ok"] == true).count();
    assert_eq!(winners, 1, "exactly one succeeds: {replies:#?}");
    for loser in replies.iter().filter(|r| r["ok"] == false) {
        assert_eq!(loser["error"]["code"], "invalid_state", "{loser}");
    }
    let history = d.history().await;
    let ids: HashSet<&str> = history
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), history.len(), "no duplicate events");
    let versions: Vec<u64> = history
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        versions,
        (1..=history.len() as u64).collect::<Vec<_>>(),
        "versions gap-free"
    );
}

#[tokio::test]
async fn concurrent_copies_of_one_command_append_once_and_all_get_the_first_reply() {
    let d = Dispute::new(&shared_client().await);
    d.open("not_received", 5000, json!({"solution": "full_refund"}))
        .await;
    let body = d.body("seller", json!({}));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (client, body) = (d.client.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            client.cmd("accept_proposal", body).await
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }
    assert!(replies.iter().all(|r| r["ok"] == true), "{replies:#?}");
    let first: Vec<&Value> = replies.iter().map(|r| &r["events"]).collect();
    assert!(
        first.windows(2).all(|w| w[0] == w[1]),
        "every copy gets the same events"
    );
    assert_eq!(
        d.types()
            .await
            .iter()
            .filter(|t| *t == "DisputeResolved")
            .count(),
        1
    );
}
