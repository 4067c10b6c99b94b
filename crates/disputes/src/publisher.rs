//! Publishes the store's global log to JetStream, in seq order, each event exactly once.
//!
//! The store is the source of truth; the stream says how far it got. Each event goes to
//! `<prefix>.evt.<dispute_id>.<type>` with `Nats-Msg-Id: <event_id>`. Where to resume is decided
//! from the stream itself, never from a checkpoint of ours that may lag it: at start, after every
//! reconnect and after any failed publish, [`Publisher::resume`] reads the stream's last event of
//! ours (skipping foreign messages), checks that it is the store's event at that seq, hash for
//! hash, and publishes from the next seq.
//!
//! Every publish names the stream's last sequence it expects (`Nats-Expected-Last-Sequence`), and
//! every publish after the first of a pipeline also the message id it expects last
//! (`Nats-Expected-Last-Msg-Id`: the event before it). So JetStream stores an event only right
//! after the one before it: an ack lost in transit, a foreign message or a second publisher make
//! the next publish fail instead of storing a repeat or leaving a gap, and we resume from the
//! stream again. JetStream's duplicate window is not relied on; it only lasts two minutes.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream::Stream};
use async_nats::HeaderMap;
use disputes_command::Trace;
use disputes_store::{parse_envelope, Envelope, EventStore};
use disputes_store_jetstream::{append_header, APPEND_HEADER};
use tokio::sync::watch;

use crate::shutdown::Shutdown;

/// Events read from the store and in flight to JetStream at once.
const BATCH_EVENTS_MAX: usize = 256;
const RETRY_DELAY: Duration = Duration::from_millis(500);
/// How long to wait before looking again at a stream that does not match the store.
const DIVERGED_RETRY_DELAY: Duration = Duration::from_secs(10);
/// Messages read back from the stream's end, at most, looking for the last event of ours.
pub(crate) const RESUME_SCAN_MAX: u64 = 1024;

/// Where publishing resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Resume {
    /// The stream's last sequence (0: empty): what the next publish must expect.
    stream_last: u64,
    /// The store seq to publish next.
    next: u64,
}

/// Why the publisher cannot go on.
#[derive(Debug, thiserror::Error)]
enum ResumeError {
    /// NATS did not answer, or answered an error: try again soon.
    #[error(transparent)]
    Unreachable(#[from] anyhow::Error),
    /// The stream holds what the store does not: publishing stops until an operator looks.
    #[error("the events stream does not match the store: {0}")]
    Diverged(String),
}

pub(crate) struct Publisher<S> {
    store: Arc<S>,
    js: jetstream::Context,
    stream_name: String,
    prefix: String,
    /// The last seq the stream is known to hold, for the publish-lag metric.
    published: watch::Sender<u64>,
    /// Why the publisher is stopped, if it is: for `/healthz`.
    problem: watch::Sender<Option<String>>,
}

impl<S: EventStore + 'static> Publisher<S> {
    pub(crate) fn new(
        store: Arc<S>,
        js: jetstream::Context,
        stream_name: String,
        prefix: String,
    ) -> Self {
        Publisher {
            store,
            js,
            stream_name,
            prefix,
            published: watch::Sender::new(0),
            problem: watch::Sender::new(None),
        }
    }

    pub(crate) fn published(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// `Some(why)` while the publisher cannot publish.
    pub(crate) fn problem(&self) -> watch::Receiver<Option<String>> {
        self.problem.subscribe()
    }

    /// Runs until shutdown: resume from the stream, then follow the store's head.
    pub(crate) async fn run(self, mut connected: watch::Receiver<u64>, shutdown: Shutdown) {
        let mut head = self.store.subscribe();
        let mut at: Option<Resume> = None;
        loop {
            let resume = match at {
                Some(resume) => resume,
                None => match self.resume().await {
                    Ok(resume) => {
                        self.problem.send_replace(None);
                        resume
                    }
                    Err(e) => {
                        let delay = self.stalled(&e);
                        if shutdown.sleep(delay).await {
                            return;
                        }
                        continue;
                    }
                },
            };
            match self.publish_from(resume).await {
                Ok(Some(after)) => {
                    at = Some(after);
                    continue;
                }
                Ok(None) => at = Some(resume),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "publisher: publish failed; resuming from the stream");
                    at = None;
                    if shutdown.sleep(RETRY_DELAY).await {
                        return;
                    }
                    continue;
                }
            }
            // Caught up: wait for a new append, a reconnect (resume), or shutdown.
            tokio::select! {
                changed = head.changed() => if changed.is_err() { return },
                changed = connected.changed() => {
                    if changed.is_err() { return }
                    at = None;
                }
                _ = shutdown.wait() => return,
            }
        }
    }

    /// Logs why the publisher cannot go on; how long to wait before trying again.
    fn stalled(&self, error: &ResumeError) -> Duration {
        let why = format!("{error:#}");
        match error {
            ResumeError::Unreachable(_) => {
                tracing::warn!(error = %why, "publisher: cannot read the events stream; retrying");
                RETRY_DELAY
            }
            ResumeError::Diverged(_) => {
                tracing::error!(error = %why, "publisher: stopped; nothing more is published until the stream and the store agree (docs/operations.md)");
                self.problem.send_replace(Some(why));
                DIVERGED_RETRY_DELAY
            }
        }
    }

    /// Finds the last event of ours on the stream and checks it against the store.
    async fn resume(&self) -> Result<Resume, ResumeError> {
        let mut stream = self
            .js
            .get_stream(&self.stream_name)
            .await
            .context("get events stream")?;
        let info = stream.info().await.context("events stream info")?;
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        let mut resume = Resume {
            stream_last: last,
            next: 1,
        };
        if info.state.messages == 0 {
            self.published.send_replace(0);
            return Ok(resume);
        }
        let lowest = first.max(last.saturating_sub(RESUME_SCAN_MAX - 1)).max(1);
        for stream_seq in (lowest..=last).rev() {
            let Some(envelope) = self.ours_at(&stream, stream_seq).await? else {
                continue;
            };
            self.check_against_store(&envelope).await?;
            resume.next = envelope.seq + 1;
            self.published.send_replace(envelope.seq);
            return Ok(resume);
        }
        if lowest > first.max(1) {
            return Err(ResumeError::Diverged(format!(
                "none of the stream's last {RESUME_SCAN_MAX} messages (up to stream seq {last}) is an event of ours"
            )));
        }
        // Only foreign messages: nothing of ours was published yet.
        self.published.send_replace(0);
        Ok(resume)
    }

    /// The event of ours at `stream_seq`, or `None` for a foreign message (logged) or a gap.
    async fn ours_at(&self, stream: &Stream, stream_seq: u64) -> anyhow::Result<Option<Envelope>> {
        let message = match stream.get_raw_message(stream_seq).await {
            Ok(message) => message,
            Err(e) if e.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => {
                return Ok(None)
            }
            Err(e) => return Err(e).context("read a message of the events stream"),
        };
        let msg_id = message
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.as_str().to_owned());
        let envelope = parse_envelope(&message.payload).ok().filter(|e| {
            msg_id.as_deref() == Some(e.event_id.as_str())
                && message.subject.as_str() == event_subject(&self.prefix, e)
        });
        if envelope.is_none() {
            tracing::warn!(
                stream_seq,
                subject = %message.subject,
                "the events stream holds a message that is not an event of ours; skipping it"
            );
        }
        Ok(envelope)
    }

    /// The stream's event must be the store's event at its seq, byte for byte in its hash.
    async fn check_against_store(&self, envelope: &Envelope) -> Result<(), ResumeError> {
        let store = self.store.clone();
        let seq = envelope.seq;
        let stored = tokio::task::spawn_blocking(move || store.read_from(seq, 1))
            .await
            .context("read the store")?
            .context("read the store")?;
        match stored.first() {
            Some(ours) if ours.hash == envelope.hash => Ok(()),
            Some(ours) => Err(ResumeError::Diverged(format!(
                "the stream's event at seq {seq} has hash {}, the store's {}",
                envelope.hash, ours.hash
            ))),
            None => Err(ResumeError::Diverged(format!(
                "the stream holds seq {seq}, beyond the store's head {}",
                self.store.head()
            ))),
        }
    }

    /// Publishes one batch from `at`; where to go on after it, or `None` when there was nothing
    /// to send. Any error means: look at the stream again before publishing anything more.
    async fn publish_from(&self, at: Resume) -> anyhow::Result<Option<Resume>> {
        let store = self.store.clone();
        let (events, headers) = tokio::task::spawn_blocking(move || {
            let events = store.read_from(at.next, BATCH_EVENTS_MAX)?;
            let headers = headers_of(&*store, &events)?;
            Ok::<_, disputes_store::StoreError>((events, headers))
        })
        .await??;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(None);
        };
        assert_eq!(events[0].seq, at.next, "the store's log is gap-free");
        let extra = headers;
        let mut acks = Vec::with_capacity(events.len());
        let mut previous: Option<&str> = None;
        for (i, envelope) in events.iter().enumerate() {
            let mut headers = HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                envelope.event_id.as_str(),
            );
            let expected_last = at.stream_last + i as u64;
            headers.insert(
                async_nats::header::NATS_EXPECTED_LAST_SEQUENCE,
                expected_last.to_string().as_str(),
            );
            if let Some(previous) = previous {
                headers.insert(async_nats::header::NATS_EXPECTED_LAST_MESSAGE_ID, previous);
            }
            previous = Some(envelope.event_id.as_str());
            let (trace, append) = &extra[i];
            crate::trace::add(&mut headers, trace);
            if let Some(append) = append {
                headers.insert(APPEND_HEADER, append.as_str());
            }
            let subject = event_subject(&self.prefix, envelope);
            let payload = serde_json::to_vec(envelope).expect("envelopes serialize");
            acks.push(
                self.js
                    .publish_with_headers(subject, headers, payload.into())
                    .await?,
            );
        }
        for (i, ack) in acks.into_iter().enumerate() {
            let ack = ack
                .await
                .with_context(|| format!("JetStream refused event seq {}", at.next + i as u64))?;
            let expected = at.stream_last + i as u64 + 1;
            anyhow::ensure!(
                !ack.duplicate && ack.sequence == expected,
                "JetStream stored event seq {} at stream seq {} (duplicate: {}), not {expected}",
                at.next + i as u64,
                ack.sequence,
                ack.duplicate
            );
            self.published.send_replace(at.next + i as u64);
        }
        Ok(Some(Resume {
            stream_last: at.stream_last + events.len() as u64,
            next: last + 1,
        }))
    }
}

/// Each event's trace (its command's record `meta`) and, on the first event of each append, its
/// `Disputes-Append` header (docs/cluster.md: the count, the command record, the order), so that
/// the stream alone can rebuild the log with every command record (`disputes store import
/// --from-stream`). One lookup per command, as a command's events are consecutive; an event of no
/// command (an expiry) is an append of its own.
fn headers_of<S: EventStore + ?Sized>(
    store: &S,
    events: &[Envelope],
) -> Result<Vec<(Trace, Option<String>)>, disputes_store::StoreError> {
    let mut out = Vec::with_capacity(events.len());
    let mut last: Option<(&str, Trace)> = None;
    for envelope in events {
        let Some(id) = envelope.command_id.as_deref() else {
            out.push((Trace::default(), Some(append_header(1, None, None))));
            continue;
        };
        if let Some((last_id, trace)) = &last {
            if *last_id == id {
                out.push((trace.clone(), None));
                continue;
            }
        }
        let (trace, header) = match store.command_record(id)? {
            Some(place) => {
                let header = match place.first_seq == envelope.seq {
                    true => {
                        let order = reserved_order(store, envelope)?;
                        let count = usize::try_from(place.count).unwrap_or(usize::MAX);
                        Some(append_header(count, Some(&place.record), order.as_ref()))
                    }
                    false => None,
                };
                (Trace::from_meta(&place.record.meta), header)
            }
            None => (Trace::default(), None),
        };
        last = Some((id, trace.clone()));
        out.push((trace, header));
    }
    Ok(out)
}

/// The order a dispute's opening append reserved: its `DisputeOpened`'s, as the store holds it.
fn reserved_order<S: EventStore + ?Sized>(
    store: &S,
    envelope: &Envelope,
) -> Result<Option<String>, disputes_store::StoreError> {
    if envelope.version != 1 || envelope.event_type != "DisputeOpened" {
        return Ok(None);
    }
    let Some(order) = envelope.data["order_id"].as_str() else {
        return Ok(None);
    };
    let held = store.order_holder(order)?;
    Ok((held.as_deref() == Some(envelope.dispute_id.as_str())).then(|| order.to_owned()))
}

pub(crate) fn event_subject(prefix: &str, envelope: &Envelope) -> String {
    format!(
        "{prefix}.evt.{}.{}",
        envelope.dispute_id, envelope.event_type
    )
}
