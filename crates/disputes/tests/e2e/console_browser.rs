//! The console in a real browser: headless Chromium (Debian's) driven by playwright-core through
//! `tests/browser/console.mjs`, against a real service after a scenario. The script checks what
//! the page shows; this test makes the scenario and, when the script asks, the live event.

use std::process::Stdio;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::operators::serving;
use crate::support::Dispute;

#[tokio::test]
async fn the_console_in_a_browser_lists_disputes_shows_amounts_flags_tampering_and_updates_live() {
    let (_nats, _service, client, port) = serving().await;
    let mut disputes = Vec::new();
    for _ in 0..2 {
        let d = Dispute::new(&client);
        let proposal = json!({"solution": "partial_refund", "amount": 5_000});
        d.open("not_received", 12_999, proposal).await;
        d.ok("accept_proposal", "seller", json!({})).await;
        disputes.push(json!({
            "dispute_id": d.id, "order_amount": 12_999, "currency": "USD",
            "refund": 5_000, "release": 7_999, "status": "resolved",
        }));
    }
    let open = Dispute::new(&client);
    open.open(
        "not_as_described",
        4_500,
        json!({"solution": "full_refund"}),
    )
    .await;
    disputes.push(json!({
        "dispute_id": open.id, "order_amount": 4_500, "currency": "USD",
        "status": "awaiting_seller_response",
    }));
    let args = json!({
        "url": format!("http://127.0.0.1:{port}/console/"),
        "disputes": disputes,
        "open_dispute": open.id,
        // Set to refresh the screenshots of docs/console/.
        "screenshots": std::env::var("DISPUTES_CONSOLE_SCREENSHOTS").ok(),
    });

    let script = disputes_testkit::workspace_root().join("tests/browser/console.mjs");
    let mut browser = tokio::process::Command::new("node")
        .arg(&script)
        .arg(args.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs tests/browser/console.mjs (tools/install.sh installs node, chromium and playwright-core)");
    let mut stdin = browser.stdin.take().unwrap();
    let mut lines = BufReader::new(browser.stdout.take().unwrap()).lines();
    let mut last = Value::Null;
    while let Some(line) = lines.next_line().await.unwrap() {
        last = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if last["ready_for_event"] == true {
            let reply = open
                .ok(
                    "post_message",
                    "buyer",
                    json!({"text": "Where is my refund?"}),
                )
                .await;
            let sent = json!({"sent_seq": reply["seq"]});
            stdin
                .write_all(format!("{sent}\n").as_bytes())
                .await
                .unwrap();
            stdin.flush().await.unwrap();
        }
    }
    let status = browser.wait().await.unwrap();
    assert_eq!(last["ok"], true, "the browser check failed: {last}");
    assert!(status.success(), "{last}");
}
