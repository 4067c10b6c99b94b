//! Queries whose answers can grow: every reply fits in one NATS message, or the query is refused.

use crate::kit::{Client, NatsServer, Service};
use serde_json::{json, Value};

use crate::support::Dispute;

/// The shipped `max_payload` (deploy/nats/nats.conf).
const MAX_PAYLOAD: usize = 262_144;

async fn service_with_shipped_max_payload() -> (NatsServer, Service, Client) {
    let nats = NatsServer::start_with_config(&format!(
        "listen: \"127.0.0.1:{{{{port}}}}\"\nmax_payload: {MAX_PAYLOAD}\n\
         jetstream {{ store_dir: \"{{{{store_dir}}}}\", sync_interval: always }}\n"
    ));
    let mut service = Service::start(&nats.url(), "");
    let client = Client::connect(&nats.url()).await;
    service.wait_ready(&client).await;
    (nats, service, client)
}

/// The raw reply to a query: its size on the wire, and its JSON.
async fn query_raw(client: &Client, name: &str, body: Value) -> (usize, Value) {
    let reply = client
        .nats()
        .request(
            format!("disputes.query.{name}"),
            serde_json::to_vec(&body).unwrap().into(),
        )
        .await
        .unwrap_or_else(|e| panic!("{name} {body} is answered: {e}"));
    let json = serde_json::from_slice(&reply.payload).unwrap();
    (reply.payload.len(), json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_events_that_together_exceed_max_payload() {
    let (_nats, _service, client) = service_with_shipped_max_payload().await;
    let d = Dispute::new(&client);
    d.open("not_received", 5000, json!({"solution": "full_refund"}))
        .await;
    // Five messages of about 57 KB each (4-byte characters, at the limits of text and attachments).
    let text = "\u{1F600}".repeat(4000);
    let attachments: Vec<String> = (0..20).map(|_| "\u{1F4CE}".repeat(512)).collect();
    for _ in 0..5 {
        let reply = d
            .ok(
                "post_message",
                "buyer",
                json!({"text": text, "attachments": attachments}),
            )
            .await;
        assert!(serde_json::to_vec(&reply).unwrap().len() > 56_000);
    }
    let mut events = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let (size, page) = query_raw(
            &client,
            "history",
            json!({"dispute_id": d.id, "after": after}),
        )
        .await;
        assert_eq!(page["ok"], true, "{}", page["error"]);
        assert!(size <= MAX_PAYLOAD, "a page of {size} bytes");
        let page_events = page["events"].as_array().unwrap();
        assert!(!page_events.is_empty());
        events.extend(page_events.iter().cloned());
        pages += 1;
        match &page["next"] {
            Value::Null => break,
            next => after = next.as_u64().expect("next is a version"),
        }
    }
    assert!(pages >= 2, "the history did not fit in one page");
    let versions: Vec<u64> = events
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, (1..=7).collect::<Vec<u64>>());
    // `limit` pages too, and a page after the end is empty and complete.
    let (_, page) = query_raw(&client, "history", json!({"dispute_id": d.id, "limit": 1})).await;
    assert_eq!(
        (page["events"].as_array().unwrap().len(), &page["next"]),
        (1, &json!(1))
    );
    let (_, page) = query_raw(&client, "history", json!({"dispute_id": d.id, "after": 7})).await;
    assert_eq!(page, json!({"ok": true, "events": [], "next": null}));
    for bad in [
        json!({"dispute_id": d.id, "limit": 1001}),
        json!({"dispute_id": d.id, "limit": 0}),
        json!({"dispute_id": d.id, "after": -1}),
    ] {
        let (_, answer) = query_raw(&client, "history", bad.clone()).await;
        assert_eq!(answer["error"]["code"], "invalid_value", "{bad}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_page_that_would_not_fit_is_shorter_with_next_set() {
    let (_nats, _service, client) = service_with_shipped_max_payload().await;
    let mut opens = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let client = client.clone();
        opens.spawn(async move {
            for i in 0..30 {
                let d = Dispute::new(&client);
                let _ = (worker, i);
                d.open("not_received", 100, json!({"solution": "full_refund"}))
                    .await;
            }
        });
    }
    while let Some(done) = opens.join_next().await {
        done.unwrap();
    }
    let (size, first) = query_raw(&client, "list", json!({"limit": 480, "min_seq": 960})).await;
    assert_eq!(first["ok"], true, "{}", first["error"]);
    assert!(size <= MAX_PAYLOAD, "a page of {size} bytes");
    let shown = first["disputes"].as_array().unwrap().len();
    assert!(shown < 480, "{shown} disputes in one page of {size} bytes");
    let next = first["next"]
        .as_str()
        .expect("next is set on a shortened page");
    assert_eq!(first["disputes"][shown - 1]["dispute_id"], next);
    let (_, rest) = query_raw(&client, "list", json!({"limit": 480, "after": next})).await;
    let rest = rest["disputes"].as_array().unwrap().len();
    assert_eq!(shown + rest, 480, "the next page holds the rest");
}
