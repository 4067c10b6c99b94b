//! A test client: commands and queries over NATS, and the events on JetStream.

use std::io::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt;
use serde_json::{json, Value};

use super::service::REQUEST_TIMEOUT;

#[derive(Clone)]
pub(crate) struct Client {
    nats: async_nats::Client,
    prefix: String,
}

impl Client {
    /// Sends `body` to `subject` until an answer other than `unavailable` comes: a request whose
    /// instance (or NATS node) died unanswered goes again, as a client would send it (a command
    /// with the same id, so it appends once).
    pub(crate) async fn answered(&self, subject: &str, body: &Value) -> Value {
        let bytes: bytes::Bytes = serde_json::to_vec(body).unwrap().into();
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(120) {
            let request = self.nats.request(subject.to_owned(), bytes.clone());
            if let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(5), request).await {
                let reply: Value = serde_json::from_slice(&message.payload).unwrap();
                if reply["error"]["code"] != "unavailable" {
                    return reply;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{subject} never answered");
    }

    /// Waits until the events stream holds at least `events` messages (NATS errors meanwhile are
    /// waited out); how many it held then.
    pub(crate) async fn stream_holds(&self, events: u64) -> u64 {
        let js = jetstream::new(self.nats.clone());
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(mut stream) = js.get_stream("DISPUTE_EVENTS").await {
                if let Ok(info) = stream.info().await {
                    if info.state.last_sequence >= events {
                        return info.state.last_sequence;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the events stream never held {events} events");
    }

    pub(crate) async fn connect(url: &str) -> Client {
        Client::connect_with(url, async_nats::ConnectOptions::new()).await
    }

    /// Connects with `options` (TLS, credentials), adding the tests' retry and request timeout.
    pub(crate) async fn connect_with(url: &str, options: async_nats::ConnectOptions) -> Client {
        let nats = options
            .retry_on_initial_connect()
            .request_timeout(Some(REQUEST_TIMEOUT))
            .connect(url)
            .await
            .expect("connect test client");
        Client {
            nats,
            prefix: "disputes".into(),
        }
    }

    pub(crate) fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Sends raw bytes to `disputes.cmd.<type>` and returns the JSON reply.
    pub(crate) async fn cmd_raw(&self, command_type: &str, body: impl Into<bytes::Bytes>) -> Value {
        let subject = format!("{}.cmd.{command_type}", self.prefix);
        let body = body.into();
        let reply = self
            .nats
            .request(subject.clone(), body.clone())
            .await
            .unwrap_or_else(|e| panic!("request {subject}: {e}"));
        record(
            &subject,
            Some(&body),
            &reply.payload,
            reply.headers.as_ref(),
        );
        serde_json::from_slice(&reply.payload).expect("replies are JSON")
    }

    pub(crate) async fn cmd(&self, command_type: &str, body: Value) -> Value {
        self.cmd_raw(command_type, serde_json::to_vec(&body).unwrap())
            .await
    }

    pub(crate) async fn query(&self, name: &str, body: Value) -> Value {
        let subject = format!("{}.query.{name}", self.prefix);
        let body = serde_json::to_vec(&body).unwrap();
        let reply = self
            .nats
            .request(subject.clone(), body.clone().into())
            .await
            .unwrap_or_else(|e| panic!("request {subject}: {e}"));
        record(
            &subject,
            Some(&body),
            &reply.payload,
            reply.headers.as_ref(),
        );
        serde_json::from_slice(&reply.payload).expect("answers are JSON")
    }

    /// The dispute's events, from the `history` query.
    pub(crate) async fn history(&self, dispute_id: &str) -> Vec<Value> {
        let answer = self
            .query("history", json!({ "dispute_id": dispute_id }))
            .await;
        assert_eq!(answer["ok"], json!(true), "history: {answer}");
        answer["events"].as_array().cloned().unwrap_or_default()
    }

    /// The dispute view, read after `seq` was applied.
    pub(crate) async fn get(&self, dispute_id: &str, min_seq: u64) -> Value {
        let answer = self
            .query(
                "get",
                json!({ "dispute_id": dispute_id, "min_seq": min_seq }),
            )
            .await;
        assert_eq!(answer["ok"], json!(true), "get: {answer}");
        answer["dispute"].clone()
    }

    /// Every event on `DISPUTE_EVENTS` for one dispute (or all with `>`), in stream order.
    pub(crate) async fn stream_events(&self, dispute_filter: &str) -> Vec<Value> {
        let js = jetstream::new(self.nats.clone());
        let stream = js
            .get_stream("DISPUTE_EVENTS")
            .await
            .expect("events stream exists");
        let consumer: jetstream::consumer::PullConsumer = stream
            .create_consumer(jetstream::consumer::pull::Config {
                filter_subject: format!("{}.evt.{dispute_filter}.>", self.prefix),
                ack_policy: jetstream::consumer::AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .expect("create an ephemeral consumer");
        let pending = consumer.cached_info().num_pending as usize;
        let mut out = Vec::with_capacity(pending);
        if pending == 0 {
            return out;
        }
        let mut messages = consumer.messages().await.expect("consume");
        while out.len() < pending {
            let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .expect("stream events arrive")
                .expect("stream open")
                .expect("message");
            record(
                &message.subject,
                None,
                &message.payload,
                message.headers.as_ref(),
            );
            out.push(serde_json::from_slice(&message.payload).expect("envelopes are JSON"));
        }
        out
    }
}

/// With `DISPUTES_TRAFFIC_DIR` set (`./x test` sets it), every request and reply this client sends
/// and receives, and every event it reads from the stream, is appended to a file there, one JSON
/// object a line (`subject`, `request` (absent for an event), `message`: the bytes as text,
/// `headers`: the message's NATS headers, name to first value, absent when it has none), for
/// `tools/asyncapi/check-traffic.mjs` to validate against `docs/schemas/`.
fn record(
    subject: &str,
    request: Option<&[u8]>,
    message: &[u8],
    headers: Option<&async_nats::HeaderMap>,
) {
    static FILE: OnceLock<Option<Mutex<std::fs::File>>> = OnceLock::new();
    let file = FILE.get_or_init(|| {
        let dir = std::path::PathBuf::from(std::env::var_os("DISPUTES_TRAFFIC_DIR")?);
        std::fs::create_dir_all(&dir).expect("create DISPUTES_TRAFFIC_DIR");
        let path = dir.join(format!("e2e-{}.ndjson", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        Some(Mutex::new(file))
    });
    let Some(file) = file else { return };
    let mut line = json!({
        "subject": subject,
        "message": String::from_utf8_lossy(message),
    });
    if let Some(request) = request {
        line["request"] = json!(String::from_utf8_lossy(request));
    }
    if let Some(headers) = headers {
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .filter_map(|(name, values)| {
                let value = values.first()?;
                Some((name.to_string(), json!(value.as_str())))
            })
            .collect();
        line["headers"] = Value::Object(headers);
    }
    let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
    writeln!(file, "{line}").expect("record traffic");
}
