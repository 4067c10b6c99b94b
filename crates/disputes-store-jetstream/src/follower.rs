//! The follower: the log stream, in order, into this instance's copy of the log (the replica),
//! every append checked on the way in (`SledStore::import`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use disputes_store::{parse_envelope, Envelope, EventStore, SealedAppend, SledStore, StoreError};
use futures::{FutureExt as _, StreamExt as _};

use crate::header::{AppendHeader, APPEND_HEADER};
use crate::log_stream::{ordered_from, LogConfig};

/// Appends gathered before they go to the replica in one call (one or a few group commits).
const IMPORT_APPENDS_MAX: usize = 512;
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// The failure that stopped the log: the follower met a history that does not verify, or the
/// replica failed. Appends are refused from then on.
#[derive(Default)]
pub(crate) struct Failure(Mutex<Option<StoreError>>);

impl Failure {
    pub(crate) fn get(&self) -> Option<StoreError> {
        self.0.lock().expect("failure lock").clone()
    }

    pub(crate) fn set(&self, error: StoreError) {
        let mut failure = self.0.lock().expect("failure lock");
        if failure.is_none() {
            tracing::error!(%error, "the log stopped: refusing appends");
            *failure = Some(error);
        }
    }
}

/// Why following stopped.
enum Stop {
    /// NATS went away or refused: follow again from the replica's head.
    Retry(String),
    /// The stream holds what does not continue the log, or the replica failed: for good.
    Fail(StoreError),
}

pub(crate) struct Follower {
    pub js: jetstream::Context,
    pub config: LogConfig,
    pub replica: SledStore,
    pub failure: Arc<Failure>,
}

/// An append whose events are not all read yet.
pub(crate) struct Partial {
    header: AppendHeader,
    events: Vec<Envelope>,
}

impl Follower {
    /// Until the log fails (or the task is aborted, when the store is dropped).
    pub(crate) async fn run(self) {
        loop {
            match self.follow().await {
                Stop::Retry(why) => {
                    tracing::warn!(%why, head = self.replica.head(), "following the log stream again");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
                Stop::Fail(error) => {
                    self.failure.set(error);
                    return;
                }
            }
        }
    }

    async fn follow(&self) -> Stop {
        let start = self.replica.head() + 1;
        let mut messages = match ordered_from(&self.js, &self.config.stream, start).await {
            Ok(messages) => messages,
            Err(why) => return Stop::Retry(why),
        };
        let (mut expected, mut partial, mut ready) = (start, None::<Partial>, Vec::new());
        loop {
            let next = if ready.is_empty() {
                messages.next().await
            } else if let Some(next) = messages.next().now_or_never() {
                next
            } else {
                // Nothing more waiting: what is complete goes to the replica now.
                if let Err(stop) = self.import(std::mem::take(&mut ready)).await {
                    return stop;
                }
                continue;
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Stop::Retry(format!("reading the stream: {e}")),
                None => return Stop::Retry("the stream's consumer ended".into()),
            };
            let seq = match message.info() {
                Ok(info) => info.stream_sequence,
                Err(e) => return Stop::Retry(format!("a message without its info: {e}")),
            };
            if seq < expected {
                continue;
            }
            if seq > expected {
                let reason = format!("stream sequence {seq} follows {}: a gap", expected - 1);
                return Stop::Fail(StoreError::corrupt(expected, reason));
            }
            expected = seq + 1;
            match take(seq, &message, &mut partial, true) {
                Ok(Some(append)) => ready.push(append),
                Ok(None) => {}
                Err(error) => return Stop::Fail(error),
            }
            if ready.len() >= IMPORT_APPENDS_MAX {
                if let Err(stop) = self.import(std::mem::take(&mut ready)).await {
                    return stop;
                }
            }
        }
    }

    async fn import(&self, ready: Vec<SealedAppend>) -> Result<(), Stop> {
        let replica = self.replica.clone();
        let imported = tokio::task::spawn_blocking(move || replica.import(ready))
            .await
            .map_err(|e| Stop::Fail(StoreError::Unavailable(format!("import task: {e}"))))?;
        imported.map(|_| ()).map_err(Stop::Fail)
    }
}

/// The message at stream sequence `seq` added to the append being read; the append once all its
/// events are read. `at_own_seq`: the message must be at its envelope's seq (the log stream).
pub(crate) fn take(
    seq: u64,
    message: &jetstream::Message,
    partial: &mut Option<Partial>,
    at_own_seq: bool,
) -> Result<Option<SealedAppend>, StoreError> {
    let envelope =
        parse_envelope(&message.payload).map_err(|reason| StoreError::corrupt(seq, reason))?;
    if at_own_seq && envelope.seq != seq {
        let reason = format!(
            "stream sequence {seq} holds the event of seq {}",
            envelope.seq
        );
        return Err(StoreError::corrupt(seq, reason));
    }
    let header = message
        .headers
        .as_ref()
        .and_then(|h| h.get(APPEND_HEADER))
        .map(|v| AppendHeader::decode(seq, v.as_str()))
        .transpose()?;
    let current = match (partial.take(), header) {
        (None, Some(header)) => Partial {
            header,
            events: Vec::with_capacity(1),
        },
        (None, None) => {
            let reason = format!("an event without {APPEND_HEADER} starts no append (a stream published before the header existed carries none: import from the data dir)");
            return Err(StoreError::corrupt(seq, reason));
        }
        (Some(_), Some(_)) => {
            let reason = "an append starts before the one before it ended";
            return Err(StoreError::corrupt(seq, reason));
        }
        (Some(open), None) => open,
    };
    let mut current = current;
    current.events.push(envelope);
    if current.events.len() < current.header.count {
        *partial = Some(current);
        return Ok(None);
    }
    Ok(Some(SealedAppend {
        command: current.header.record(),
        reserve_order: current.header.reserve_order.clone(),
        events: current.events,
    }))
}
