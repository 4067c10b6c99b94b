//! [`JetStreamStore`]: the `EventStore` contract on the log stream.

use std::path::Path;
use std::sync::Arc;

use async_nats::jetstream;
use disputes_store::{
    draft_events, AppendOutcome, AppendRequest, CommandOutcome, CommandPlace, Durability, Envelope,
    EventStore, PendingAppend, SledStore, StoreError, StoreOptions, VerifyReport,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::follower::{Failure, Follower};
use crate::log_stream::{ensure_log_stream, LogConfig, LogStreamError};
use crate::sequencer::{Counters, Request, Sequencer};
use crate::view::LogView;

/// Extra headers for every event of a command, from its record's `meta` (the service's trace
/// context: correlation id, `traceparent`).
pub type HeadersFor = Arc<dyn Fn(&serde_json::Value) -> Vec<(String, String)> + Send + Sync>;

/// Why the store did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Stream(#[from] LogStreamError),
    #[error("the log's local copy at {path}: {source}")]
    Replica { path: String, source: StoreError },
    #[error("catching up with the log stream: {0}")]
    CatchUp(StoreError),
}

/// The event log on a JetStream stream. Cheap to clone; the sequencer and the follower stop when
/// the last clone is dropped.
#[derive(Clone)]
pub struct JetStreamStore {
    inner: Arc<Inner>,
}

/// What the log's writer did since the store opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogStats {
    /// Atomic batches committed to the stream.
    pub batches: u64,
    /// Appends those batches held.
    pub appends: u64,
    /// Batches that did not commit at the first try (another writer moved the stream, a lost
    /// ack, NATS away) and were judged again after reading the stream.
    pub retries: u64,
}

struct Inner {
    view: LogView,
    counters: Arc<Counters>,
    requests: mpsc::Sender<Request>,
    failure: Arc<Failure>,
    follower: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl JetStreamStore {
    /// Ensures (or checks) the log stream, opens the local copy at `replica_path` (created if
    /// missing, rebuilt from the stream when deleted), and returns once the copy holds the whole
    /// stream. Appends are taken from then on. Call inside a tokio runtime.
    pub async fn open(
        client: async_nats::Client,
        config: LogConfig,
        replica_path: &Path,
        options: StoreOptions,
        headers_for: Option<HeadersFor>,
    ) -> Result<JetStreamStore, OpenError> {
        let js = jetstream::new(client.clone());
        // A cluster that is starting (no JetStream leader yet) is waited for; an unsafe stream is not.
        loop {
            match ensure_log_stream(&js, &config).await {
                Ok(_) => break,
                Err(error @ LogStreamError::Unsafe { .. }) => return Err(error.into()),
                Err(error) => {
                    tracing::warn!(%error, "the log stream is not reachable yet; trying again");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
        // The copy is derived from the stream: it needs no fsync of its own.
        let replica_options = StoreOptions {
            durability: Durability::Buffered,
            ..options.clone()
        };
        let path = replica_path.to_owned();
        let replica = tokio::task::spawn_blocking(move || SledStore::open(&path, replica_options))
            .await
            .expect("opening the copy does not panic")
            .map_err(|source| OpenError::Replica {
                path: replica_path.display().to_string(),
                source,
            })?;
        let failure = Arc::new(Failure::default());
        let counters = Arc::new(Counters::default());
        let view = LogView::new(replica.clone());
        let follower = tokio::spawn(
            Follower {
                js: js.clone(),
                config: config.clone(),
                replica: replica.clone(),
                failure: failure.clone(),
            }
            .run(),
        );
        let (requests, queue) = mpsc::channel(options.append_queue_max);
        let (ready, caught_up) = oneshot::channel();
        let sequencer = Sequencer {
            client,
            js,
            config,
            view: view.clone(),
            failure: failure.clone(),
            headers_for,
            counters: counters.clone(),
        };
        tokio::spawn(sequencer.run(queue, ready));
        let inner = Inner {
            view,
            counters,
            requests,
            failure,
            follower,
        };
        let stopped = StoreError::Unavailable("the sequencer stopped".into());
        caught_up
            .await
            .unwrap_or(Err(stopped))
            .map_err(OpenError::CatchUp)?;
        Ok(JetStreamStore {
            inner: Arc::new(inner),
        })
    }

    pub fn stats(&self) -> LogStats {
        let c = &self.inner.counters;
        let read = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
        LogStats {
            batches: read(&c.batches),
            appends: read(&c.appends),
            retries: read(&c.retries),
        }
    }

    /// `req` with its events drafted, for the sequencer, and where its answer will arrive.
    fn request(&self, req: AppendRequest) -> Result<(Request, Answer), StoreError> {
        if let Some(error) = self.failure() {
            return Err(StoreError::Unavailable(format!(
                "the log failed earlier ({error}); it takes no appends until the service is started again"
            )));
        }
        let drafted = draft_events(&req)?;
        let (reply, answer) = oneshot::channel();
        let request = Request {
            req,
            drafted,
            reply,
        };
        Ok((request, answer))
    }
}

/// Where the sequencer's answer to one append arrives.
type Answer = oneshot::Receiver<Result<AppendOutcome, StoreError>>;

impl EventStore for JetStreamStore {
    /// Handed to the sequencer at once; while its queue is full, when first polled (waiting
    /// without blocking for room, so a later append may be judged first).
    fn append_queued(&self, req: AppendRequest) -> PendingAppend {
        let (request, answer) = match self.request(req) {
            Ok(queued) => queued,
            Err(error) => return Box::pin(std::future::ready(Err(error))),
        };
        let waiting = match self.inner.requests.try_send(request) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(request)) => {
                Some((self.inner.requests.clone(), request))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Box::pin(std::future::ready(Err(StoreError::shut_down())))
            }
        };
        Box::pin(async move {
            if let Some((requests, request)) = waiting {
                requests
                    .send(request)
                    .await
                    .map_err(|_| StoreError::shut_down())?;
            }
            answer.await.map_err(|_| StoreError::shut_down())?
        })
    }

    /// The copy's events, and after them what this instance appended that the copy does not hold
    /// yet (an append is answered once the stream has it, a moment before the copy does).
    fn read_stream(&self, dispute_id: &str) -> Result<Vec<Envelope>, StoreError> {
        self.inner.view.read_stream(dispute_id)
    }

    fn read_from(&self, from_seq: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        self.inner.view.replica.read_from(from_seq, limit)
    }

    fn head(&self) -> u64 {
        self.inner.view.head()
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.view.replica.subscribe()
    }

    fn command(&self, command_id: &str) -> Result<Option<CommandOutcome>, StoreError> {
        self.inner.view.command(command_id)
    }

    fn command_record(&self, command_id: &str) -> Result<Option<CommandPlace>, StoreError> {
        self.inner.view.command_record(command_id)
    }

    fn order_holder(&self, order_id: &str) -> Result<Option<String>, StoreError> {
        self.inner.view.order_holder(order_id)
    }

    fn stream_version(&self, dispute_id: &str) -> Result<u64, StoreError> {
        self.inner.view.stream_version(dispute_id)
    }

    fn failure(&self) -> Option<StoreError> {
        self.inner
            .failure
            .get()
            .or_else(|| self.inner.view.replica.failure())
    }

    fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.inner.view.replica.verify()
    }
}
