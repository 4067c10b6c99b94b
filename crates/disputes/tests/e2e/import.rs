//! `disputes store import`: a sled log to a JetStream log and back, envelope for envelope; a
//! stream with one changed byte refused at that event.

use std::process::Command;
use std::time::Duration;

use async_nats::jetstream;
use serde_json::{json, Value};

use crate::audit::{audit, ndjson, on_dir, Run};
use crate::kit::service::disputes_bin;
use crate::kit::{Client, NatsServer, Service};
use crate::support::Dispute;

/// `disputes store import <args>` against the NATS at `url`.
fn import(url: &str, args: &[&str]) -> Run {
    let output = Command::new(disputes_bin())
        .args(["store", "import", "--nats-url", url])
        .args(args)
        .env_remove("DISPUTES_CONFIG")
        .env_remove("DISPUTES_NATS_URL")
        .env_remove("DISPUTES_DATA_DIR")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run disputes store import");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// `data`'s log imported into a new log stream (replicas 1) at `url`; it must succeed.
fn to_stream(url: &str, data: &std::path::Path) -> Run {
    let data = data.to_str().unwrap();
    let run = import(
        url,
        &["--from-data-dir", data, "--to-stream", "--replicas", "1"],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    run
}

/// The log stream at `url` imported into a new sled log in `target`.
fn from_stream(url: &str, target: &std::path::Path) -> Run {
    import(
        url,
        &["--from-stream", "--to-data-dir", target.to_str().unwrap()],
    )
}

/// A stopped sled service's data dir holding lifecycles, messages and expiries; and the last
/// command it accepted, with its reply.
async fn a_sled_log(nats: &NatsServer) -> (tempfile::TempDir, (Value, Value)) {
    let dir = tempfile::tempdir().unwrap();
    let policy = "[policy]\nseller_response = \"1s\"\n";
    let mut service = Service::start_custom_on(dir.path(), &nats.url(), "", "", policy);
    let client = Client::connect(&nats.url()).await;
    service.wait_ready(&client).await;
    let mut sent = (Value::Null, Value::Null);
    for i in 0..6u64 {
        let d = Dispute::new(&client);
        d.open(
            "not_received",
            1_000 + i,
            json!({"solution": "full_refund"}),
        )
        .await;
        let body = d.body("buyer", json!({"text": format!("note {i}")}));
        let reply = client.cmd("post_message", body.clone()).await;
        assert_eq!(reply["ok"], true, "{reply}");
        sent = (body, reply);
    }
    // Let the seller's 1 s run out: expiries append events of no command.
    tokio::time::sleep(Duration::from_secs(4)).await;
    service
        .terminate(Duration::from_secs(20))
        .expect("a clean stop");
    (dir, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sled_log_goes_to_jetstream_and_back_envelope_for_envelope_and_keeps_its_commands() {
    let source_nats = NatsServer::start();
    let (source, (body, first_reply)) = a_sled_log(&source_nats).await;
    let data = source.path().join("data");
    let exported = on_dir(&data, &["export"]).ok("export the source");
    let events = ndjson(&exported.stdout);
    assert!(
        events.iter().any(|e| e["type"] == "DeadlineExpired"),
        "expiries in the log"
    );

    let cluster = NatsServer::start();
    let to_stream = to_stream(&cluster.url(), &data);
    assert!(
        to_stream
            .stdout
            .contains(&format!("imported {} events", events.len())),
        "{}",
        to_stream.stdout
    );
    let back = tempfile::tempdir().unwrap();
    let back_data = back.path().join("data");
    let to_dir = from_stream(&cluster.url(), &back_data);
    assert_eq!(to_dir.code, 0, "{}\n{}", to_dir.stdout, to_dir.stderr);
    assert_eq!(
        on_dir(&back_data, &["export"]).ok("export the copy").stdout,
        exported.stdout
    );
    on_dir(&back_data, &["verify"]).ok("verify the copy");
    // A machine whose disk died: its sled log rebuilt from what its publisher put on the stream.
    let rebuilt = tempfile::tempdir().unwrap();
    let rebuilt_data = rebuilt.path().join("data");
    let run = from_stream(&source_nats.url(), &rebuilt_data);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        on_dir(&rebuilt_data, &["export"])
            .ok("export the rebuilt log")
            .stdout,
        exported.stdout
    );

    // The imported stream is a log a cluster-mode service takes over: a repeat of a command sent
    // before the move is answered from its first reply.
    let mut service = Service::start_jetstream(&cluster.url(), "");
    let client = Client::connect(&cluster.url()).await;
    service.wait_ready(&client).await;
    let again = client.cmd("post_message", body).await;
    assert_eq!(again["replayed"], true, "{again}");
    assert_eq!(again["events"], first_reply["events"]);
    let stats = client.query("stats", json!({})).await;
    assert_eq!(stats["stats"]["total"], 6, "{stats}");
}

/// `from`'s log stream copied to a new stream on `to`, message by message with our headers, one
/// value in the data of the event at `changed_at` changed (its envelope still parses).
async fn copy_with_one_change(from: &NatsServer, to: &NatsServer, changed_at: u64) {
    let (from, to) = (
        jetstream::new(async_nats::connect(from.url()).await.unwrap()),
        jetstream::new(async_nats::connect(to.url()).await.unwrap()),
    );
    to.create_stream(jetstream::stream::Config {
        name: "DISPUTE_EVENTS".into(),
        subjects: vec!["disputes.evt.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let source_stream = from.get_stream("DISPUTE_EVENTS").await.unwrap();
    let last = source_stream.cached_info().state.last_sequence;
    for seq in 1..=last {
        let message = source_stream.get_raw_message(seq).await.unwrap();
        let mut payload = message.payload.to_vec();
        if seq == changed_at {
            let text = String::from_utf8(payload).unwrap();
            let at = text.find("\"data\":").expect("data") + "\"data\":".len();
            let (head, tail) = text.split_at(at);
            // A different value of the same shape: the envelope still parses.
            let tail = tail.replacen("note", "nose", 1).replacen("100", "101", 1);
            payload = format!("{head}{tail}").into_bytes();
        }
        // The envelope and our headers; not JetStream's own (batch, expectations).
        let mut headers = async_nats::HeaderMap::new();
        for (name, values) in message.headers.iter() {
            let name: &str = name.as_ref();
            if !name.starts_with("Nats-") || name == "Nats-Msg-Id" {
                for value in values {
                    headers.append(name, value.as_str());
                }
            }
        }
        to.publish_with_headers(message.subject.to_string(), headers, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_from_a_stream_with_one_changed_byte_is_refused_naming_the_first_bad_event() {
    let source_nats = NatsServer::start();
    let (source, _) = a_sled_log(&source_nats).await;
    let data = source.path().join("data");
    let good = NatsServer::start();
    to_stream(&good.url(), &data);
    let bad = NatsServer::start();
    let changed_at = 9;
    copy_with_one_change(&good, &bad, changed_at).await;
    let rebuilt = tempfile::tempdir().unwrap();
    let target = rebuilt.path().join("data");
    let run = from_stream(&bad.url(), &target);
    assert_eq!(run.code, 5, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("does not verify at seq {changed_at}")),
        "{}",
        run.stdout
    );
    let exported = audit(&["export", "--data-dir", target.to_str().unwrap()]);
    let kept = ndjson(&exported.stdout);
    assert!(
        kept.iter().all(|e| e["seq"].as_u64().unwrap() < changed_at),
        "nothing from it on"
    );
}
