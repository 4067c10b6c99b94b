//! The event log of either backend (`[store] backend`): the embedded sled store, or the events
//! stream on a NATS JetStream cluster. Everything above the store codes against [`Log`].

use std::sync::Arc;

use anyhow::Context as _;
use disputes_command::Trace;
use disputes_store::{
    AppendRequest, CommandOutcome, CommandPlace, Envelope, EventStore, PendingAppend, SledStore,
    StoreError, StoreOptions, VerifyReport,
};
use disputes_store_jetstream::{JetStreamStore, LogConfig};
use tokio::sync::watch;

use crate::config::Config;

/// Where a data dir keeps its log: `events` (the sled log) or, with `backend = "jetstream"`,
/// `events-copy` (this instance's copy of the stream, which `disputes audit` reads the same way).
pub fn local_log_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    let (sled, copy) = (data_dir.join(EVENTS_DIR), data_dir.join(COPY_DIR));
    if !sled.exists() && copy.exists() {
        copy
    } else {
        sled
    }
}

/// The sled log, in the data dir.
pub(crate) const EVENTS_DIR: &str = "events";
/// The JetStream log's local copy, in the data dir.
const COPY_DIR: &str = "events-copy";

/// Where the JetStream log is: `[nats] events_stream` and `subject_prefix`, `[store] replicas`.
pub(crate) fn log_config(config: &Config) -> LogConfig {
    LogConfig {
        stream: config.nats.events_stream.clone(),
        subject_prefix: config.nats.subject_prefix.clone(),
        replicas: config.store.replicas,
    }
}

/// The log's sled options: `[store] cache_mb`.
fn log_options(config: &Config) -> StoreOptions {
    StoreOptions {
        cache_bytes: config.store.cache_mb * 1024 * 1024,
        ..StoreOptions::default()
    }
}

/// The event log.
#[derive(Clone)]
pub enum Log {
    Sled(SledStore),
    JetStream(JetStreamStore),
}

impl Log {
    /// The embedded log in `<data>/events`.
    pub fn open_sled(config: &Config) -> anyhow::Result<Log> {
        let data = &config.store.path;
        std::fs::create_dir_all(data)
            .with_context(|| format!("create data dir {}", data.display()))?;
        let path = data.join(EVENTS_DIR);
        SledStore::open(&path, log_options(config))
            .map(Log::Sled)
            .with_context(|| format!("open the event store at {}", path.display()))
    }

    /// The log on the events stream, its local copy in `<data>/events-copy`: returns once the copy
    /// holds the whole stream.
    pub async fn open_jetstream(
        config: &Config,
        client: async_nats::Client,
    ) -> anyhow::Result<Log> {
        let path = config.store.path.join(COPY_DIR);
        let headers_for: disputes_store_jetstream::HeadersFor =
            Arc::new(|meta| crate::trace::pairs(&Trace::from_meta(meta)));
        let (log, options) = (log_config(config), log_options(config));
        let store = JetStreamStore::open(client, log, &path, options, Some(headers_for))
            .await
            .context("open the event log on JetStream ([store] backend = \"jetstream\")")?;
        Ok(Log::JetStream(store))
    }

    /// True when the log is the events stream itself (nothing to publish).
    pub fn is_stream(&self) -> bool {
        matches!(self, Log::JetStream(_))
    }

    fn store(&self) -> &dyn EventStore {
        match self {
            Log::Sled(store) => store,
            Log::JetStream(store) => store,
        }
    }
}

impl EventStore for Log {
    fn append_queued(&self, req: AppendRequest) -> PendingAppend {
        self.store().append_queued(req)
    }
    fn read_stream(&self, dispute_id: &str) -> Result<Vec<Envelope>, StoreError> {
        self.store().read_stream(dispute_id)
    }
    fn read_from(&self, from_seq: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        self.store().read_from(from_seq, limit)
    }
    fn head(&self) -> u64 {
        self.store().head()
    }
    fn subscribe(&self) -> watch::Receiver<u64> {
        self.store().subscribe()
    }
    fn command(&self, command_id: &str) -> Result<Option<CommandOutcome>, StoreError> {
        self.store().command(command_id)
    }
    fn command_record(&self, command_id: &str) -> Result<Option<CommandPlace>, StoreError> {
        self.store().command_record(command_id)
    }
    fn order_holder(&self, order_id: &str) -> Result<Option<String>, StoreError> {
        self.store().order_holder(order_id)
    }
    fn stream_version(&self, dispute_id: &str) -> Result<u64, StoreError> {
        self.store().stream_version(dispute_id)
    }
    fn failure(&self) -> Option<StoreError> {
        self.store().failure()
    }
    fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.store().verify()
    }
}
