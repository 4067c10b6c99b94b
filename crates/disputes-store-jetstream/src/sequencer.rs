//! The sequencer: judges appends against the replica, seals them, and writes each group commit to
//! the log stream as one atomic batch that names the last sequence it expects.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use disputes_store::limits::ENVELOPE_BYTES_MAX;
use disputes_store::{
    check_stream_version, AppendOutcome, AppendRequest, Draft, Envelope, EventStore, StoreError,
    GENESIS_PREV_HASH,
};
use tokio::sync::{mpsc, oneshot};

use crate::batch::{publish_batch, BatchMessage};
use crate::follower::Failure;
use crate::header::AppendHeader;
use crate::log_stream::{last_sequence, LogConfig};
use crate::store::HeadersFor;
use crate::view::LogView;

/// Events in one atomic batch, at most (the server's limit is 1,000 messages).
const BATCH_EVENTS_MAX: usize = 512;
/// How long the replica may take to reach a sequence the stream has.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a wait for the copy looks for a failure that would end it.
const FAILURE_POLL: Duration = Duration::from_millis(100);
/// Failed attempts at one batch before its appends are refused `Unavailable`.
const ATTEMPTS_MAX: u32 = 6;

pub(crate) type Reply = Result<AppendOutcome, StoreError>;

/// One append, checked and drafted in the caller's thread.
pub(crate) struct Request {
    pub req: AppendRequest,
    pub drafted: Vec<(String, Draft)>,
    pub reply: tokio::sync::oneshot::Sender<Reply>,
}

impl Request {
    fn answer(self, reply: Reply) {
        let _gone = self.reply.send(reply); // the caller may have stopped waiting
    }
}

/// The log's last event as the sequencer knows it.
#[derive(Debug, Clone)]
struct Tip {
    seq: u64,
    hash: String,
}

/// An append judged and sealed, waiting for its batch to commit.
pub(crate) struct Sealed {
    pub request: Request,
    pub envelopes: Vec<Envelope>,
    payloads: Vec<Bytes>,
}

pub(crate) struct Sequencer {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub config: LogConfig,
    /// The copy and what this sequencer committed that the copy does not hold yet.
    pub view: LogView,
    pub failure: Arc<Failure>,
    pub headers_for: Option<HeadersFor>,
    pub counters: Arc<Counters>,
}

/// What the sequencer did since the store opened.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub batches: AtomicU64,
    pub appends: AtomicU64,
    pub retries: AtomicU64,
}

impl Sequencer {
    /// Catches up, says so on `ready`, then serves appends until every sender is gone.
    pub(crate) async fn run(
        mut self,
        mut requests: mpsc::Receiver<Request>,
        ready: oneshot::Sender<Result<(), StoreError>>,
    ) {
        let mut tip = loop {
            match self.resync().await {
                Ok(tip) => {
                    let _ = ready.send(Ok(()));
                    break tip;
                }
                // NATS or the stream's leader not there yet: wait for it.
                Err(error @ StoreError::Unavailable(_)) if self.failure.get().is_none() => {
                    tracing::warn!(%error, "catching up with the log stream; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(error) => {
                    let _ = ready.send(Err(error));
                    return;
                }
            }
        };
        let mut deferred: Vec<Request> = Vec::new();
        loop {
            let mut batch = std::mem::take(&mut deferred);
            if batch.is_empty() {
                match requests.recv().await {
                    Some(request) => batch.push(request),
                    None => return,
                }
            }
            let mut events: usize = batch.iter().map(|r| r.drafted.len()).sum();
            while events + disputes_store::limits::EVENTS_PER_APPEND_MAX <= BATCH_EVENTS_MAX {
                match requests.try_recv() {
                    Ok(request) => {
                        events += request.drafted.len();
                        batch.push(request);
                    }
                    Err(_) => break,
                }
            }
            deferred = self.commit(batch, &mut tip).await;
        }
    }

    /// Commits what of `batch` is accepted, answering every request but those deferred to the next
    /// batch (a command id repeated inside this one), which it returns.
    async fn commit(&mut self, batch: Vec<Request>, tip: &mut Tip) -> Vec<Request> {
        let (mut pending, mut deferred, mut resynced) = (batch, Vec::new(), false);
        for attempt in 1..=ATTEMPTS_MAX {
            if let Some(error) = self.failure.get() {
                refuse_all(pending, &unavailable(&error));
                return deferred;
            }
            self.view.committed().prune(self.view.replica.head());
            let (sealed, later) = self.judge(pending, tip, resynced);
            deferred.extend(later);
            if sealed.is_empty() {
                return deferred;
            }
            // Durable once the stream committed it: answered then, judged against from then on,
            // without waiting for the copy to hold it.
            let error = match self.publish(&sealed, tip).await {
                Ok(last) => {
                    let hash = sealed.last().and_then(|s| s.envelopes.last());
                    *tip = Tip {
                        seq: last,
                        hash: hash.expect("a sealed append has events").hash.clone(),
                    };
                    self.counters.batches.fetch_add(1, Ordering::Relaxed);
                    let appends = sealed.len() as u64;
                    self.counters.appends.fetch_add(appends, Ordering::Relaxed);
                    for s in sealed {
                        self.view.committed().record(&s);
                        s.request.answer(Ok(AppendOutcome::Appended(s.envelopes)));
                    }
                    return deferred;
                }
                Err(error) => error,
            };
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%error, attempt, "a batch of the log did not commit; reading the stream again");
            pending = sealed.into_iter().map(|s| s.request).collect();
            tokio::time::sleep(Duration::from_millis(50 << attempt.min(5))).await;
            match self.resync().await {
                Ok(fresh) => {
                    // The copy holds the whole stream now, whatever this sequencer committed.
                    self.view.committed().clear();
                    *tip = fresh;
                    resynced = true;
                }
                Err(error) => tracing::warn!(%error, "reading the log stream failed"),
            }
        }
        let error = StoreError::Unavailable("the log stream did not take the append".into());
        refuse_all(pending, &error);
        deferred
    }

    /// Answers what is refused, a duplicate, or (after a resync) found already in the log; seals
    /// the rest after `tip`. Returns the sealed appends and those to judge in the next batch.
    fn judge(
        &self,
        pending: Vec<Request>,
        tip: &Tip,
        resynced: bool,
    ) -> (Vec<Sealed>, Vec<Request>) {
        let mut overlay = Overlay::default();
        let mut at = tip.clone();
        let (mut sealed, mut later) = (Vec::new(), Vec::new());
        for request in pending {
            if resynced {
                match self.landed(&request) {
                    Ok(Some(events)) => {
                        request.answer(Ok(AppendOutcome::Appended(events)));
                        continue;
                    }
                    Ok(None) => {}
                    Err(error) => {
                        request.answer(Err(error));
                        continue;
                    }
                }
            }
            if let Some(command) = &request.req.command {
                if !overlay.commands.insert(command.command_id.clone()) {
                    later.push(request);
                    continue;
                }
            }
            match self.check(&request.req, &overlay) {
                Ok(None) => {}
                Ok(Some(outcome)) => {
                    request.answer(Ok(outcome));
                    continue;
                }
                Err(refusal) => {
                    request.answer(Err(refusal));
                    continue;
                }
            }
            match seal(&request, &mut at) {
                Ok((envelopes, payloads)) => {
                    overlay.record(&request.req, envelopes.len() as u64);
                    sealed.push(Sealed {
                        request,
                        envelopes,
                        payloads,
                    });
                }
                Err(refusal) => request.answer(Err(refusal)),
            }
        }
        (sealed, later)
    }

    /// `Ok(Some(duplicate))`, `Ok(None)` to append, or the refusal.
    fn check(
        &self,
        req: &AppendRequest,
        overlay: &Overlay,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        if let Some(command) = &req.command {
            if let Some(outcome) = self.view.command(&command.command_id)? {
                return Ok(Some(AppendOutcome::Duplicate(outcome)));
            }
        }
        let actual = match overlay.versions.get(&req.dispute_id) {
            Some(version) => *version,
            None => self.view.stream_version(&req.dispute_id)?,
        };
        check_stream_version(req.expected_version, actual, req.events.len())?;
        if let Some(order_id) = &req.reserve_order {
            let holder = match overlay.orders.get(order_id) {
                Some(holder) => Some(holder.clone()),
                None => self.view.order_holder(order_id)?,
            };
            if let Some(dispute_id) = holder.filter(|h| *h != req.dispute_id) {
                return Err(StoreError::OrderTaken {
                    order_id: order_id.clone(),
                    dispute_id,
                });
            }
        }
        Ok(None)
    }

    /// The request's events if the log already holds them (a batch whose ack was lost).
    fn landed(&self, request: &Request) -> Result<Option<Vec<Envelope>>, StoreError> {
        let first_id = &request.drafted[0].0;
        let events = match &request.req.command {
            Some(command) => match self.view.replica.command(&command.command_id)? {
                Some(outcome) => outcome.events,
                None => return Ok(None),
            },
            None => self.view.replica.read_stream(&request.req.dispute_id)?,
        };
        let Some(start) = events.iter().position(|e| &e.event_id == first_id) else {
            return Ok(None);
        };
        Ok(Some(
            events[start..]
                .iter()
                .take(request.drafted.len())
                .cloned()
                .collect(),
        ))
    }

    /// Writes `sealed` as one atomic batch after `tip`; the stream's sequence of its last message.
    async fn publish(&self, sealed: &[Sealed], tip: &Tip) -> Result<u64, StoreError> {
        let mut messages = Vec::new();
        for s in sealed {
            let req = &s.request.req;
            let trace = match (&self.headers_for, &req.command) {
                (Some(headers_for), Some(command)) => headers_for(&command.meta),
                _ => Vec::new(),
            };
            let header = AppendHeader::new(
                s.envelopes.len(),
                req.command.as_ref(),
                req.reserve_order.as_ref(),
            );
            let mut header = Some(header.encode());
            for (envelope, payload) in s.envelopes.iter().zip(&s.payloads) {
                messages.push(BatchMessage {
                    envelope,
                    payload: payload.clone(),
                    append: header.take(),
                    extra: trace.clone(),
                });
            }
        }
        publish_batch(&self.client, &self.config, messages, tip.seq).await
    }

    /// Waits until the replica holds the log up to `last`.
    /// A failure of the follower or of the copy ends the wait at once.
    async fn imported(&self, last: u64) -> Result<(), StoreError> {
        let mut head = self.view.replica.subscribe();
        let deadline = tokio::time::Instant::now() + CATCH_UP_TIMEOUT;
        loop {
            if *head.borrow_and_update() >= last {
                return Ok(());
            }
            if let Some(error) = self.failure.get().or_else(|| self.view.replica.failure()) {
                return Err(unavailable(&error));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "the log's copy did not reach seq {last} in time"
                )));
            }
            let _ = tokio::time::timeout(FAILURE_POLL, head.changed()).await;
        }
    }

    /// The stream's last sequence, once the replica holds it, with its hash.
    async fn resync(&self) -> Result<Tip, StoreError> {
        let last = last_sequence(&self.js, &self.config.stream)
            .await
            .map_err(|e| StoreError::Unavailable(format!("the log stream: {e}")))?;
        if self.view.replica.head() > last {
            return Err(StoreError::corrupt(
                last + 1,
                format!(
                    "the local copy of the log holds {} events, the stream {last}: it is another log's copy; delete it to rebuild it from the stream",
                    self.view.replica.head()
                ),
            ));
        }
        self.imported(last).await?;
        if last == 0 {
            return Ok(Tip {
                seq: 0,
                hash: GENESIS_PREV_HASH.to_owned(),
            });
        }
        let events = self.view.replica.read_from(last, 1)?;
        let head = events
            .first()
            .ok_or_else(|| StoreError::corrupt(last, "the copy's head is missing"))?;
        Ok(Tip {
            seq: last,
            hash: head.hash.clone(),
        })
    }
}

/// What the appends sealed so far in this batch changed.
#[derive(Default)]
struct Overlay {
    versions: HashMap<String, u64>,
    orders: HashMap<String, String>,
    commands: HashSet<String>,
}

impl Overlay {
    fn record(&mut self, req: &AppendRequest, count: u64) {
        self.versions
            .insert(req.dispute_id.clone(), req.expected_version + count);
        if let Some(order_id) = &req.reserve_order {
            self.orders.insert(order_id.clone(), req.dispute_id.clone());
        }
    }
}

/// The request's envelopes and payloads sealed after `at`, which moves past them.
fn seal(request: &Request, at: &mut Tip) -> Result<(Vec<Envelope>, Vec<Bytes>), StoreError> {
    let req = &request.req;
    let mut next = at.clone();
    let (mut envelopes, mut payloads) = (Vec::new(), Vec::new());
    for (offset, ((event_id, draft), event)) in
        (1u64..).zip(request.drafted.iter().zip(&req.events))
    {
        let (seq, version, prev_hash) = (
            next.seq + 1,
            req.expected_version + offset,
            next.hash.clone(),
        );
        let tail = draft.tail(seq, version, &prev_hash);
        let hash = draft.hash(&prev_hash, &tail);
        let payload = draft.sealed(&tail, &hash);
        if payload.len() > ENVELOPE_BYTES_MAX {
            return Err(StoreError::invalid(format!(
                "an envelope is over {ENVELOPE_BYTES_MAX} bytes"
            )));
        }
        envelopes.push(Envelope {
            event_id: event_id.clone(),
            seq,
            dispute_id: req.dispute_id.clone(),
            version,
            event_type: event.event_type.clone(),
            occurred_at: event.occurred_at,
            command_id: event.command_id.clone(),
            actor: event.actor.clone(),
            data: event.data.clone(),
            prev_hash,
            hash: hash.clone(),
            revision: None,
        });
        payloads.push(Bytes::from(payload));
        next = Tip { seq, hash };
    }
    *at = next;
    Ok((envelopes, payloads))
}

fn unavailable(error: &StoreError) -> StoreError {
    StoreError::Unavailable(format!(
        "the log failed earlier ({error}); it takes no appends until the service is started again"
    ))
}

fn refuse_all(requests: Vec<Request>, error: &StoreError) {
    for request in requests {
        request.answer(Err(error.clone()));
    }
}
