//! Publishes the store's global log to JetStream, in seq order, from a durable checkpoint.
//!
//! The store is the source of truth. Each event goes to `<prefix>.evt.<dispute_id>.<type>` with
//! `Nats-Msg-Id: <event_id>`, so JetStream drops re-sends inside its duplicate window. NATS may lose
//! its unsynced tail in a crash, so at start and after every reconnect we read the stream's last
//! event and, when it is behind our checkpoint, publish again from there.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use async_nats::HeaderMap;
use disputes_store::{Envelope, EventStore};
use tokio::sync::watch;

use crate::shutdown::Shutdown;

pub const CHECKPOINT: &str = "publisher";
/// Events read from the store and in flight to JetStream at once.
const BATCH_EVENTS_MAX: usize = 256;
const RETRY_DELAY: Duration = Duration::from_millis(500);

pub struct Publisher<S> {
    store: Arc<S>,
    js: jetstream::Context,
    stream_name: String,
    prefix: String,
    /// The last seq JetStream acknowledged, for the publish-lag metric.
    published: watch::Sender<u64>,
}

impl<S: EventStore + 'static> Publisher<S> {
    pub fn new(store: Arc<S>, js: jetstream::Context, stream_name: String, prefix: String) -> Self {
        let published = watch::Sender::new(0);
        Publisher {
            store,
            js,
            stream_name,
            prefix,
            published,
        }
    }

    pub fn published(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// Runs until shutdown: catch up, then follow the store's head.
    pub async fn run(self, mut connected: watch::Receiver<u64>, shutdown: Shutdown) {
        let mut head = self.store.subscribe();
        let mut next = 0; // 0: reconcile with the stream first
        loop {
            if next == 0 {
                match self.reconcile().await {
                    Ok(seq) => next = seq,
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "publisher: cannot read the events stream; retrying");
                        if shutdown.sleep(RETRY_DELAY).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            match self.publish_from(next).await {
                Ok(Some(after)) => {
                    next = after;
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "publisher: publish failed; will reconcile and retry");
                    next = 0;
                    if shutdown.sleep(RETRY_DELAY).await {
                        return;
                    }
                    continue;
                }
            }
            // Caught up: wait for a new append, a reconnect (reconcile), or shutdown.
            tokio::select! {
                changed = head.changed() => if changed.is_err() { return },
                changed = connected.changed() => {
                    if changed.is_err() { return }
                    next = 0;
                }
                _ = shutdown.wait() => return,
            }
        }
    }

    /// The seq to publish next: after our checkpoint, or earlier when the stream lost its tail.
    async fn reconcile(&self) -> anyhow::Result<u64> {
        let checkpoint = self.checkpoint().await?;
        let stream_last = self.stream_last_seq().await?;
        let next = if stream_last < checkpoint {
            tracing::warn!(
                stream_last,
                checkpoint,
                "the events stream lacks events we published; publishing them again"
            );
            stream_last + 1
        } else {
            checkpoint + 1
        };
        self.published.send_replace(next - 1);
        Ok(next)
    }

    /// The store seq of the stream's last event (0 when empty).
    async fn stream_last_seq(&self) -> anyhow::Result<u64> {
        let mut stream = self
            .js
            .get_stream(&self.stream_name)
            .await
            .context("get events stream")?;
        let info = stream.info().await.context("events stream info")?;
        let last = info.state.last_sequence;
        if info.state.messages == 0 || last == 0 {
            return Ok(0);
        }
        let message = stream
            .get_raw_message(last)
            .await
            .context("read the stream's last event")?;
        let envelope: Envelope = serde_json::from_slice(&message.payload)
            .context("the stream's last message is not an envelope")?;
        Ok(envelope.seq)
    }

    async fn checkpoint(&self) -> anyhow::Result<u64> {
        let store = self.store.clone();
        Ok(tokio::task::spawn_blocking(move || store.checkpoint(CHECKPOINT)).await??)
    }

    /// Publishes one batch from `next`; `Some(seq after it)`, or `None` when there was nothing to send.
    async fn publish_from(&self, next: u64) -> anyhow::Result<Option<u64>> {
        let store = self.store.clone();
        let events =
            tokio::task::spawn_blocking(move || store.read_from(next, BATCH_EVENTS_MAX)).await??;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(None);
        };
        assert_eq!(events[0].seq, next, "the store's log is gap-free");
        let mut acks = Vec::with_capacity(events.len());
        for envelope in &events {
            let subject = event_subject(&self.prefix, envelope);
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", envelope.event_id.as_str());
            let payload = serde_json::to_vec(envelope).expect("envelopes serialize");
            acks.push(
                self.js
                    .publish_with_headers(subject, headers, payload.into())
                    .await?,
            );
        }
        for ack in acks {
            ack.await
                .context("JetStream did not acknowledge an event")?;
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.set_checkpoint(CHECKPOINT, last)).await??;
        self.published.send_replace(last);
        Ok(Some(last + 1))
    }
}

pub fn event_subject(prefix: &str, envelope: &Envelope) -> String {
    format!(
        "{prefix}.evt.{}.{}",
        envelope.dispute_id, envelope.event_type
    )
}
