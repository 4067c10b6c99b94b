//! One atomic batch (ADR-50) of envelopes on the log stream, after the sequence it expects last.

use std::time::Duration;

use async_nats::header::{NATS_EXPECTED_LAST_SEQUENCE, NATS_MESSAGE_ID};
use async_nats::HeaderMap;
use bytes::Bytes;
use disputes_store::{Envelope, StoreError};
use serde::Deserialize;

use crate::header::APPEND_HEADER;
use crate::log_stream::LogConfig;

/// How long the commit's ack may take before the outcome is read from the stream instead.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

const BATCH_ID: &str = "Nats-Batch-Id";
const BATCH_SEQUENCE: &str = "Nats-Batch-Sequence";
const BATCH_COMMIT: &str = "Nats-Batch-Commit";

/// One message of a batch.
pub(crate) struct BatchMessage<'a> {
    pub envelope: &'a Envelope,
    /// The envelope's canonical bytes, hash included.
    pub payload: Bytes,
    /// `Disputes-Append`, on the first event of each append.
    pub append: Option<String>,
    /// More headers (a command's trace).
    pub extra: Vec<(String, String)>,
}

/// The server's answer to a batch's commit.
#[derive(Debug, Deserialize)]
struct PubAck {
    seq: Option<u64>,
    error: Option<ApiError>,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    err_code: Option<u64>,
    description: Option<String>,
}

/// Writes `messages` as one atomic batch whose first message expects the stream's last sequence
/// to be `expected_last`; the sequence of its last message once a majority of the replicas holds
/// the whole batch. Any error: the batch may or may not be in the stream; read the stream.
pub(crate) async fn publish_batch(
    client: &async_nats::Client,
    config: &LogConfig,
    messages: Vec<BatchMessage<'_>>,
    expected_last: u64,
) -> Result<u64, StoreError> {
    let total = messages.len();
    let batch_id = uuid::Uuid::now_v7().simple().to_string();
    for (n, message) in (1..).zip(messages) {
        let envelope = message.envelope;
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, envelope.event_id.as_str());
        headers.insert(BATCH_ID, batch_id.as_str());
        headers.insert(BATCH_SEQUENCE, n.to_string().as_str());
        if n == 1 {
            headers.insert(
                NATS_EXPECTED_LAST_SEQUENCE,
                expected_last.to_string().as_str(),
            );
        }
        if let Some(append) = &message.append {
            headers.insert(APPEND_HEADER, append.as_str());
        }
        for (name, value) in &message.extra {
            headers.insert(name.as_str(), value.as_str());
        }
        let subject = config.subject(&envelope.dispute_id, &envelope.event_type);
        if n < total {
            client
                .publish_with_headers(subject, headers, message.payload)
                .await
                .map_err(|e| StoreError::Unavailable(format!("publish: {e}")))?;
            continue;
        }
        headers.insert(BATCH_COMMIT, "1");
        let request = async_nats::Request::new()
            .headers(headers)
            .payload(message.payload)
            .timeout(Some(COMMIT_TIMEOUT));
        let ack = client
            .send_request(subject, request)
            .await
            .map_err(|e| StoreError::Unavailable(format!("commit: {e}")))?;
        return committed(&ack.payload, expected_last + total as u64);
    }
    Err(StoreError::invalid("an empty batch"))
}

/// The commit's ack read: the last sequence, which must be `expected`.
fn committed(payload: &[u8], expected: u64) -> Result<u64, StoreError> {
    let ack: PubAck = serde_json::from_slice(payload).map_err(|e| {
        StoreError::Unavailable(format!(
            "the batch's ack is unreadable ({e}): {}",
            String::from_utf8_lossy(payload)
        ))
    })?;
    if let Some(error) = ack.error {
        return Err(StoreError::Unavailable(format!(
            "the stream refused the batch ({}): {}",
            error.err_code.unwrap_or(0),
            error.description.unwrap_or_default()
        )));
    }
    match ack.seq {
        Some(seq) if seq == expected => Ok(seq),
        other => Err(StoreError::Unavailable(format!(
            "the batch's last message is at {other:?}, not {expected}"
        ))),
    }
}
