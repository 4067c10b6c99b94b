//! The event subscription: `DISPUTE_EVENTS` through a durable JetStream consumer, each envelope
//! verified, handed over in `seq` order, each event once.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, AckKind};
use disputes_domain::Event;
use disputes_envelope::{parse_envelope, Chain, Envelope, GENESIS_PREV_HASH};
use futures::StreamExt;

use crate::client::Client;
use crate::commands::{CORRELATION_ID_HEADER, TRACEPARENT_HEADER};
use crate::error::Error;

/// Where a consumer is in the log: the last event it handled, `seq` and `hash`. Store it in the
/// same transaction as what you did with the event; give it back to [`Subscription::resume_after`]
/// after a restart, and nothing is handed over twice, nothing skipped, and the chain is checked
/// across the restart.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub seq: u64,
    pub hash: String,
}

impl Position {
    /// After the event at `seq` whose hash is `hash` (64 lowercase hex digits).
    pub fn new(seq: u64, hash: &str) -> Result<Position, Error> {
        if !disputes_envelope::is_hash(hash) {
            return Err(Error::Unreadable {
                seq: Some(seq),
                reason: format!("{hash:?} is not a hash (64 lowercase hex digits)"),
            });
        }
        Ok(Position {
            seq,
            hash: hash.to_owned(),
        })
    }

    /// Before the first event.
    pub fn start() -> Position {
        Position {
            seq: 0,
            hash: GENESIS_PREV_HASH.to_owned(),
        }
    }
}

/// How to follow the events: the durable consumer's name, and where you are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    durable: String,
    after: Option<Position>,
    ack_wait: Duration,
}

impl Subscription {
    /// Follows the events through the durable consumer `durable` (created if missing; JetStream
    /// keeps its acknowledged position across restarts of your service and of ours).
    pub fn durable(name: &str) -> Subscription {
        Subscription {
            durable: name.to_owned(),
            after: None,
            ack_wait: Duration::from_secs(30),
        }
    }

    /// You have handled every event up to `position`: older ones are acknowledged and skipped,
    /// and the next one must link to `position.hash`. Without it the first event received is
    /// trusted as the start (its own hash still checked; at seq 1 its link to 64 zeros too).
    pub fn resume_after(mut self, position: Position) -> Subscription {
        self.after = Some(position);
        self
    }

    /// How long JetStream waits for an acknowledgement before it delivers an event again (30 s).
    pub fn ack_wait(mut self, ack_wait: Duration) -> Subscription {
        self.ack_wait = ack_wait;
        self
    }
}

/// One event handed over: its envelope (hash verified), the domain event it carries, and the
/// correlation headers it was published with. [`EventStream::ack`] it once you have handled it.
#[derive(Debug)]
pub struct Delivered {
    pub envelope: Envelope,
    pub event: Event,
    /// The `Disputes-Correlation-Id` of the command that caused it, if it had one.
    pub correlation_id: Option<String>,
    /// The W3C `traceparent` of that command, if it had one.
    pub traceparent: Option<String>,
    message: jetstream::Message,
}

impl Delivered {
    /// Where the consumer is once this event is handled.
    pub fn position(&self) -> Position {
        Position {
            seq: self.envelope.seq,
            hash: self.envelope.hash.clone(),
        }
    }
}

/// Events in `seq` order, each once, each verified. See [`Client::subscribe`].
pub struct EventStream {
    messages: pull::Stream,
    /// The last event acknowledged (or the resume position): where the stream is.
    last: Option<Position>,
    /// Events received again and dropped (already handed over or before the resume position).
    duplicates: u64,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("last", &self.last)
            .field("duplicates", &self.duplicates)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Follows `DISPUTE_EVENTS` as `subscription` says. The consumer delivers one event at a time
    /// (`max_ack_pending` 1), so events come in the log's order even when one is delivered again.
    pub async fn subscribe(&self, subscription: Subscription) -> Result<EventStream, Error> {
        let js = jetstream::new(self.nats.clone());
        let stream = js
            .get_stream(&self.events_stream)
            .await
            .map_err(Error::nats)?;
        let config = pull::Config {
            durable_name: Some(subscription.durable.clone()),
            filter_subject: format!("{}.evt.>", self.prefix),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: subscription.ack_wait,
            max_ack_pending: 1,
            ..Default::default()
        };
        let consumer: jetstream::consumer::Consumer<pull::Config> = stream
            .get_or_create_consumer(&subscription.durable, config.clone())
            .await
            .map_err(Error::nats)?;
        check_consumer(&consumer.cached_info().config, &config)?;
        let messages = consumer.messages().await.map_err(Error::nats)?;
        Ok(EventStream {
            messages,
            last: subscription.after,
            duplicates: 0,
        })
    }
}

impl EventStream {
    /// The next event, waiting for it. An event that does not verify is an error (and is not
    /// acknowledged: it stays in the consumer for whoever looks into it). A missed heartbeat
    /// (NATS briefly away) is waited out, not returned.
    pub async fn next(&mut self) -> Result<Delivered, Error> {
        loop {
            let message = match self.messages.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) if e.kind() == pull::MessagesErrorKind::MissingHeartbeat => {
                    tracing::debug!(error = %e, "waiting for the consumer's messages");
                    continue;
                }
                Some(Err(e)) => return Err(Error::nats(e)),
                None => return Err(Error::Nats("the consumer's message stream ended".into())),
            };
            let envelope = parse_envelope(&message.payload)
                .map_err(|reason| Error::Unreadable { seq: None, reason })?;
            if let Some(last) = &self.last {
                if envelope.seq <= last.seq {
                    // Handled before (or before the resume position): acknowledge, skip.
                    self.duplicates += 1;
                    message.ack_with(AckKind::Ack).await.map_err(Error::nats)?;
                    continue;
                }
            }
            verify(self.last.as_ref(), &envelope)?;
            let event =
                Event::decode_revision(&envelope.event_type, envelope.revision(), &envelope.data)
                    .map_err(|e| Error::Unreadable {
                    seq: Some(envelope.seq),
                    reason: e.to_string(),
                })?;
            let header = |name: &str| {
                message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .map(|v| v.as_str().to_owned())
            };
            let (correlation_id, traceparent) =
                (header(CORRELATION_ID_HEADER), header(TRACEPARENT_HEADER));
            return Ok(Delivered {
                envelope,
                event,
                correlation_id,
                traceparent,
                message,
            });
        }
    }

    /// Tells JetStream `delivered` is handled (waiting for the server's confirmation) and moves
    /// the stream past it: the next event follows. Until then the stream has not moved: an event
    /// you could not handle (your transaction failed) comes again, after [`Subscription::ack_wait`]
    /// or at once with [`EventStream::retry`].
    pub async fn ack(&mut self, delivered: &Delivered) -> Result<(), Error> {
        delivered.message.double_ack().await.map_err(Error::nats)?;
        self.last = Some(delivered.position());
        Ok(())
    }

    /// Asks JetStream to deliver `delivered` again after `delay`, without moving the stream.
    pub async fn retry(&mut self, delivered: &Delivered, delay: Duration) -> Result<(), Error> {
        delivered
            .message
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(Error::nats)
    }

    /// The last event acknowledged, or the resume position.
    pub fn position(&self) -> Option<&Position> {
        self.last.as_ref()
    }

    /// How many events were received again and dropped.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}

/// An existing consumer of that name must deliver as this stream needs: every event, explicit
/// acknowledgements, one at a time, no delivery limit.
fn check_consumer(found: &jetstream::consumer::Config, wanted: &pull::Config) -> Result<(), Error> {
    let fine = found.deliver_policy == jetstream::consumer::DeliverPolicy::All
        && found.ack_policy == wanted.ack_policy
        && found.max_ack_pending == wanted.max_ack_pending
        && found.filter_subject == wanted.filter_subject
        && found.max_deliver <= 0;
    if fine {
        return Ok(());
    }
    Err(Error::Protocol(format!(
        "the consumer {:?} exists with other settings (deliver {:?}, ack {:?}, max_ack_pending {}, \
         filter {:?}, max_deliver {}): it needs deliver all, ack explicit, max_ack_pending 1, \
         filter {:?}, no max_deliver; delete it or use another name",
        found.durable_name.as_deref().unwrap_or_default(),
        found.deliver_policy,
        found.ack_policy,
        found.max_ack_pending,
        found.filter_subject,
        found.max_deliver,
        wanted.filter_subject,
    )))
}

/// `envelope`'s own hash, and its place right after `last` (the seq after it, linked to its hash),
/// through the envelope crate's one chain check. Without a position the first event is trusted as
/// the start (at seq 1: after 64 zeros).
fn verify(last: Option<&Position>, envelope: &Envelope) -> Result<(), Error> {
    let mut chain = match last {
        Some(last) => Chain::after(last.seq, last.hash.clone()),
        None if envelope.seq == 1 => Chain::new(),
        None => return check_own_hash(envelope),
    };
    chain.check(envelope).map_err(|reason| Error::Verification {
        seq: envelope.seq,
        reason,
    })
}

/// `envelope`'s hash recomputes from its content and its `prev_hash` (its link is not checked).
pub(crate) fn check_own_hash(envelope: &Envelope) -> Result<(), Error> {
    let start = envelope.seq.saturating_sub(1);
    Chain::after(start, envelope.prev_hash.clone())
        .check(envelope)
        .map_err(|reason| Error::Verification {
            seq: envelope.seq,
            reason,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use disputes_envelope::{compute_hash, ActorRef};
    use serde_json::json;

    fn event(seq: u64, prev_hash: &str) -> Envelope {
        let mut e = Envelope {
            event_id: format!("e-{seq}"),
            seq,
            dispute_id: "d-1".into(),
            version: seq,
            event_type: "MessagePosted".into(),
            occurred_at: "2026-11-27T08:00:00Z".parse().unwrap(),
            command_id: Some(format!("c-{seq}")),
            actor: ActorRef {
                role: "buyer".into(),
                id: "b-1".into(),
            },
            data: json!({"text": "hi", "attachments": []}),
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
            revision: None,
        };
        e.hash = compute_hash(prev_hash, &e);
        e
    }

    #[test]
    fn an_event_must_link_to_the_one_handed_over_before_it() {
        let first = event(1, GENESIS_PREV_HASH);
        assert_eq!(verify(None, &first), Ok(()));
        let at = Position {
            seq: 1,
            hash: first.hash.clone(),
        };
        assert_eq!(verify(Some(&at), &event(2, &first.hash)), Ok(()));
        let unlinked = event(2, &"ab".repeat(32));
        assert!(verify(Some(&at), &unlinked)
            .unwrap_err()
            .to_string()
            .contains("prev_hash"));
        assert!(verify(Some(&at), &event(3, &first.hash))
            .unwrap_err()
            .to_string()
            .contains("missing"));
    }

    #[test]
    fn a_changed_event_does_not_verify() {
        let mut first = event(1, GENESIS_PREV_HASH);
        first.data = json!({"text": "changed", "attachments": []});
        assert!(verify(None, &first)
            .unwrap_err()
            .to_string()
            .contains("changed after"));
    }

    #[test]
    fn the_first_event_of_the_log_links_to_64_zeros() {
        let forged = event(1, &"11".repeat(32));
        assert!(verify(None, &forged).is_err());
    }
}
