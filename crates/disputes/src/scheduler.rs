//! Deadlines: the scheduler publishes due expiries (and reminders) on JetStream; the expiry
//! consumer applies them through the command handler, exactly once.
//!
//! The durable index of active deadlines is the projections' `d\0` index: it is rebuilt from the
//! log like every read model, so nothing can hold a deadline the log does not. The scheduler runs
//! at its own pace, in batches: it wakes at the next due time, when the read models change, or
//! once a second, whichever is first. Publishing is idempotent (`Nats-Msg-Id`), and applying is
//! idempotent in the domain (an expiry only acts on the deadline that is active now), so a
//! restart that publishes a due deadline again changes nothing twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, AckKind};
use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use disputes_domain::{self as domain, DeadlineKind};
use disputes_store::EventStore;
use futures::{FutureExt as _, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use disputes_command::{CommandHandler, Expiry, ExpiryOutcome, Rejection};
use disputes_readside::{DeadlineEntry, Projections};

/// Deadlines (or reminders) published per round.
const ROUND_MAX: usize = 2_000;
/// The longest the scheduler sleeps without looking.
const IDLE_MAX: Duration = Duration::from_secs(1);
/// The shortest time between two rounds.
const ROUND_INTERVAL_MIN: Duration = Duration::from_millis(5);
/// How often the published-but-not-yet-applied deadlines are checked against the index.
const PRUNE_EVERY: Duration = Duration::from_millis(500);
/// Expiries applied together by the consumer: those already delivered when a batch starts, up to
/// this many, are judged on one task and their appends made durable by one group commit
/// (`CommandHandler::expire_many_async`; no thread waits for the commit). Before, each expiry
/// waited in a blocking thread of its own, 32 at once: about 70 threads and several hundred MiB
/// more resident after a burst of 10,000 (`disputes bench scheduler`, docs/performance.md).
const APPLY_BATCH_MAX: usize = 256;
/// Batches applied at once: the next is judged and drafted while the one before is made durable.
const APPLY_BATCHES_IN_FLIGHT: usize = 2;
pub(crate) const CONSUMER: &str = "disputes-expiry";

/// The body of an expiry or a reminder message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeadlineMessage {
    pub dispute_id: String,
    pub deadline: DeadlineKind,
    #[serde(with = "domain::time::serde_rfc3339")]
    pub due_at: DateTime<Utc>,
}

impl DeadlineMessage {
    fn of(entry: &DeadlineEntry) -> Self {
        DeadlineMessage {
            dispute_id: entry.dispute_id.clone(),
            deadline: entry.deadline,
            due_at: entry.due_at,
        }
    }

    /// `<dispute_id>:<deadline>:<due_at>`, as protocol.md says.
    pub(crate) fn msg_id(&self) -> String {
        format!(
            "{}:{}:{}",
            self.dispute_id,
            self.deadline.as_str(),
            domain::time::format(self.due_at)
        )
    }
}

pub(crate) struct Scheduler {
    pub projections: Arc<Projections>,
    pub js: jetstream::Context,
    pub prefix: String,
    pub metrics: Arc<Metrics>,
}

impl Scheduler {
    pub(crate) async fn run(self, shutdown: Shutdown) {
        let mut changed = self.projections.subscribe();
        // Published this run and not yet gone from the index: not published again each round.
        let mut published: HashSet<Vec<u8>> = HashSet::new();
        let mut pruned_at = Instant::now();
        loop {
            let now = Utc::now();
            // Forget what was applied (gone from the index): now and then, not every round.
            if pruned_at.elapsed() >= PRUNE_EVERY {
                published.retain(|key| self.projections.has_key(key));
                pruned_at = Instant::now();
            }
            if let Err(e) = self.round(now, &mut published).await {
                tracing::warn!(error = %format!("{e:#}"), "scheduler round failed; retrying");
                if shutdown.sleep(Duration::from_millis(500)).await {
                    return;
                }
                continue;
            }
            let wait = self
                .until_next(now, &published)
                .unwrap_or(IDLE_MAX)
                .min(IDLE_MAX);
            // Rounds in batches, not one per event: the read models may change thousands of
            // times a second.
            if shutdown.sleep(ROUND_INTERVAL_MIN.min(wait)).await {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = changed.changed() => {}
                _ = shutdown.wait() => return,
            }
        }
    }

    async fn round(
        &self,
        now: DateTime<Utc>,
        published: &mut HashSet<Vec<u8>>,
    ) -> anyhow::Result<()> {
        // Publish what is due and not yet sent.
        let before = now + chrono::TimeDelta::milliseconds(1);
        let fresh = self
            .projections
            .due_deadlines(before, ROUND_MAX, |key| published.contains(key))?;
        let fresh: Vec<&DeadlineEntry> = fresh.iter().collect();
        self.publish(&fresh, "expired", "").await?;
        published.extend(fresh.iter().map(|e| e.key.clone()));
        self.metrics
            .pending_deadlines
            .set(self.projections.deadlines_count() as i64);

        let reminders = self.projections.reminders(now, ROUND_MAX)?;
        let to_send: Vec<&DeadlineEntry> = reminders.iter().filter(|r| r.due_at > now).collect();
        self.publish(&to_send, "reminder", ":reminder").await?;
        for reminder in &reminders {
            self.projections.remove_reminder(reminder)?;
        }
        Ok(())
    }

    /// Publishes each on `<prefix>.deadline.<kind>.<dispute_id>` and waits for JetStream's acks.
    async fn publish(
        &self,
        entries: &[&DeadlineEntry],
        kind: &str,
        id_suffix: &str,
    ) -> anyhow::Result<()> {
        let mut acks = Vec::with_capacity(entries.len());
        for entry in entries {
            let message = DeadlineMessage::of(entry);
            let mut headers = HeaderMap::new();
            headers.insert(
                "Nats-Msg-Id",
                format!("{}{id_suffix}", message.msg_id()).as_str(),
            );
            let subject = format!("{}.deadline.{kind}.{}", self.prefix, message.dispute_id);
            let payload = serde_json::to_vec(&message).expect("deadline messages serialize");
            acks.push(
                self.js
                    .publish_with_headers(subject, headers, payload.into())
                    .await?,
            );
        }
        for ack in acks {
            ack.await?;
        }
        if !entries.is_empty() {
            tracing::debug!(count = entries.len(), kind, "deadline messages published");
        }
        Ok(())
    }

    /// Time until the next unpublished deadline or reminder.
    fn until_next(&self, now: DateTime<Utc>, published: &HashSet<Vec<u8>>) -> Option<Duration> {
        let far = now + chrono::TimeDelta::days(365 * 100);
        let next_deadline = self
            .projections
            .due_deadlines(far, 1, |key| published.contains(key))
            .ok()?
            .first()
            .map(|e| e.fires_at);
        let next_reminder = self.projections.next_due(b"r\0").ok().flatten();
        let next = [next_deadline, next_reminder].into_iter().flatten().min()?;
        Some((next - now).to_std().unwrap_or(Duration::ZERO))
    }
}

/// Consumes `<prefix>.deadline.expired.>` and applies each expiry once.
pub(crate) async fn consume_expiries<S: EventStore + 'static>(
    js: jetstream::Context,
    stream_name: String,
    prefix: String,
    handler: Arc<CommandHandler<S>>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) {
    loop {
        match consume_once(&js, &stream_name, &prefix, &handler, &metrics, &shutdown).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "expiry consumer stopped; restarting");
                if shutdown.sleep(Duration::from_millis(500)).await {
                    return;
                }
            }
        }
    }
}

async fn consume_once<S: EventStore + 'static>(
    js: &jetstream::Context,
    stream_name: &str,
    prefix: &str,
    handler: &Arc<CommandHandler<S>>,
    metrics: &Arc<Metrics>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let stream = js.get_stream(stream_name).await?;
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            CONSUMER,
            consumer::pull::Config {
                durable_name: Some(CONSUMER.into()),
                filter_subject: format!("{prefix}.deadline.expired.>"),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 10_000,
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    let permits = Arc::new(Semaphore::new(APPLY_BATCHES_IN_FLIGHT));
    let ended = loop {
        let first = tokio::select! {
            message = messages.next() => message,
            _ = shutdown.wait() => break None,
        };
        let mut batch = Vec::new();
        let mut ended = match first {
            Some(Ok(message)) => {
                batch.push(message);
                None
            }
            Some(Err(e)) => Some(anyhow::Error::from(e)),
            None => Some(anyhow::anyhow!("the expiry message stream ended")),
        };
        // What else has been delivered already joins the batch; nothing is waited for.
        while ended.is_none() && batch.len() < APPLY_BATCH_MAX {
            match messages.next().now_or_never() {
                None => break,
                Some(Some(Ok(message))) => batch.push(message),
                Some(Some(Err(e))) => ended = Some(e.into()),
                Some(None) => ended = Some(anyhow::anyhow!("the expiry message stream ended")),
            }
        }
        if !batch.is_empty() {
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore open");
            let (handler, metrics) = (handler.clone(), metrics.clone());
            tokio::spawn(async move {
                apply_batch(&handler, &metrics, batch).await;
                drop(permit);
            });
        }
        if ended.is_some() {
            break ended;
        }
    };
    // Drain: wait for the expiries being applied.
    let _ = permits.acquire_many(APPLY_BATCHES_IN_FLIGHT as u32).await;
    ended.map_or(Ok(()), Err)
}

/// Applies a batch of expiry messages and acks each: JetStream redelivers those not applied.
async fn apply_batch<S: EventStore + 'static>(
    handler: &Arc<CommandHandler<S>>,
    metrics: &Metrics,
    batch: Vec<jetstream::Message>,
) {
    let mut acks = vec![AckKind::Ack; batch.len()];
    let (mut expiries, mut applying) = (Vec::new(), Vec::new());
    for (i, message) in batch.iter().enumerate() {
        match serde_json::from_slice::<DeadlineMessage>(&message.payload) {
            Ok(m) => {
                expiries.push(Expiry {
                    dispute_id: m.dispute_id,
                    kind: m.deadline,
                    due_at: m.due_at,
                });
                applying.push(i);
            }
            Err(e) => {
                tracing::error!(error = %e, "malformed expiry message; dropped");
                acks[i] = AckKind::Term;
            }
        }
    }
    let handler = handler.clone();
    // A task of its own, as each command has: a panic in it fails this batch (redelivered), not
    // the consumer.
    let judged = tokio::spawn(async move {
        // The service's clock (milliseconds), as for commands: every stored timestamp has that form.
        let outcomes = handler
            .expire_many_async(&expiries, crate::clock::now())
            .await;
        (expiries, outcomes)
    })
    .await;
    match judged {
        Ok((expiries, outcomes)) => {
            for ((i, expiry), outcome) in applying.into_iter().zip(&expiries).zip(outcomes) {
                acks[i] = ack_for(metrics, expiry, outcome);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "expiry task failed");
            for i in applying {
                acks[i] = AckKind::Nak(Some(Duration::from_secs(1)));
            }
        }
    }
    for (message, ack) in batch.iter().zip(acks) {
        if let Err(e) = message.ack_with(ack).await {
            tracing::warn!(error = %e, "could not ack an expiry message; it will be redelivered");
        }
    }
}

/// The ack an expiry's outcome gets (redelivered in a second unless applied or ignored).
fn ack_for(
    metrics: &Metrics,
    expiry: &Expiry,
    outcome: Result<ExpiryOutcome, Rejection>,
) -> AckKind {
    match outcome {
        Ok(ExpiryOutcome::Applied(events)) => {
            let lag = (Utc::now() - expiry.due_at)
                .num_microseconds()
                .unwrap_or(0)
                .max(0);
            metrics.deadline_fire_lag.observe(lag as f64 / 1e6);
            metrics.events_appended.inc_by(events.len() as u64);
            tracing::info!(dispute_id = %expiry.dispute_id, deadline = expiry.kind.as_str(), "deadline expired");
            AckKind::Ack
        }
        Ok(ExpiryOutcome::Ignored) => AckKind::Ack,
        Err(refusal) => {
            tracing::warn!(%refusal, "expiry not applied now; will retry");
            AckKind::Nak(Some(Duration::from_secs(1)))
        }
    }
}
