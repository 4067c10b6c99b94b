//! A whole log into or out of a stream (`disputes store import`): appends read back from a stream
//! with their `Disputes-Append` headers, and sealed appends written to an empty log stream.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use disputes_store::{canonical_bytes_with_hash, SealedAppend, StoreError};
use futures::StreamExt as _;

use crate::batch::{publish_batch, BatchMessage};
use crate::follower::{take, Partial};
use crate::header::AppendHeader;
use crate::log_stream::{last_sequence, ordered_from, LogConfig};

/// Events in one batch of an import, at most.
const IMPORT_BATCH_EVENTS_MAX: usize = 512;

/// The appends of a stream, in order, each with its `Disputes-Append` record, from its first
/// message through its last sequence when opened.
pub struct AppendReader {
    messages: consumer::pull::Ordered,
    partial: Option<Partial>,
    /// The stream's last sequence when opened: where reading stops.
    pub last: u64,
    done: bool,
    stream: String,
}

impl AppendReader {
    pub async fn open(js: &jetstream::Context, stream: &str) -> Result<AppendReader, StoreError> {
        let nats = |e: String| StoreError::Unavailable(format!("the stream {stream}: {e}"));
        let last = last_sequence(js, stream).await.map_err(nats)?;
        let messages = ordered_from(js, stream, 1).await.map_err(nats)?;
        Ok(AppendReader {
            messages,
            partial: None,
            last,
            done: last == 0,
            stream: stream.to_owned(),
        })
    }

    /// The next append; `None` past the last sequence. A message that is not an envelope, or an
    /// append not complete and in order, is `Corrupt` at its stream sequence.
    pub async fn next(&mut self) -> Result<Option<SealedAppend>, StoreError> {
        let nats = |e: String| StoreError::Unavailable(format!("the stream {}: {e}", self.stream));
        while !self.done {
            let next = tokio::time::timeout(Duration::from_secs(30), self.messages.next()).await;
            let message = match next {
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(e))) => return Err(nats(e.to_string())),
                Ok(None) | Err(_) => return Err(nats("no message came for 30 s".into())),
            };
            let seq = message
                .info()
                .map_err(|e| nats(e.to_string()))?
                .stream_sequence;
            let append = take(seq, &message, &mut self.partial, false)?;
            if seq >= self.last {
                self.done = true;
                if self.partial.is_some() {
                    return Err(StoreError::corrupt(seq, "the stream ends inside an append"));
                }
            }
            if append.is_some() {
                return Ok(append);
            }
        }
        Ok(None)
    }
}

/// Writes `appends` to the log stream right after `expected_last` (the stream's last sequence),
/// as atomic batches of whole appends; the stream's last sequence after them.
pub async fn write_appends(
    client: &async_nats::Client,
    config: &LogConfig,
    appends: &[SealedAppend],
    mut expected_last: u64,
) -> Result<u64, StoreError> {
    let mut start = 0;
    while start < appends.len() {
        let mut end = start;
        let mut events = 0;
        while end < appends.len()
            && (end == start || events + appends[end].events.len() <= IMPORT_BATCH_EVENTS_MAX)
        {
            events += appends[end].events.len();
            end += 1;
        }
        let mut messages = Vec::with_capacity(events);
        for append in &appends[start..end] {
            let header = AppendHeader::new(
                append.events.len(),
                append.command.as_ref(),
                append.reserve_order.as_ref(),
            );
            let mut header = Some(header.encode());
            for envelope in &append.events {
                let payload = Bytes::from(canonical_bytes_with_hash(envelope));
                messages.push(BatchMessage {
                    envelope,
                    payload,
                    append: header.take(),
                    extra: Vec::new(),
                });
            }
        }
        expected_last = publish_batch(client, config, messages, expected_last).await?;
        start = end;
    }
    Ok(expected_last)
}
