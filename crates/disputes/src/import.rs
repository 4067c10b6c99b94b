//! `disputes store import`: a log of either backend built from another, or from the events stream
//! alone, every event checked on the way (its seq, its link, its recomputed hash); a history that
//! does not verify is refused, naming the first bad event, and nothing after it is written.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use async_nats::jetstream;
use disputes_store::{
    Chain, Durability, Envelope, LogReader, SealedAppend, SledStore, StoreOptions,
};
use disputes_store_jetstream::{ensure_log_stream, write_appends, AppendReader, LogConfig};

use crate::config::Config;

/// Appends written together (one import call, one or a few group commits or batches).
const CHUNK_APPENDS: usize = 1_000;

/// Where the log comes from.
pub enum ImportFrom {
    /// A data dir's log (`events`, or a JetStream log's copy `events-copy`); the service stopped.
    DataDir(PathBuf),
    /// The events stream (`[nats] events_stream`) alone.
    Stream,
}

/// Where it goes: a new, empty log.
pub enum ImportTo {
    /// A new sled log in this data dir (`events`).
    DataDir(PathBuf),
    /// The log stream `[nats] events_stream` with `[store] replicas`, empty or missing.
    Stream,
}

/// What an import did.
pub struct Imported {
    pub events: u64,
    pub appends: u64,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The source's history does not verify: nothing from this event on was written.
    #[error("the history does not verify at seq {seq}: {reason}")]
    Broken { seq: u64, reason: String },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<disputes_store::StoreError> for ImportError {
    fn from(error: disputes_store::StoreError) -> Self {
        match error {
            disputes_store::StoreError::Corrupt { seq, reason } => {
                ImportError::Broken { seq, reason }
            }
            other => ImportError::Other(other.into()),
        }
    }
}

pub async fn import(
    config: &Config,
    from: ImportFrom,
    to: ImportTo,
) -> Result<Imported, ImportError> {
    let mut sink = Sink::open(config, to).await?;
    let mut chain = Chain::new();
    let bar = crate::audit::progress("events imported", None);
    let mut chunk = Vec::with_capacity(CHUNK_APPENDS);
    let mut imported = Imported {
        events: 0,
        appends: 0,
    };
    let mut take = |append: SealedAppend, chunk: &mut Vec<SealedAppend>| {
        check(&mut chain, &append)?;
        bar.inc(append.events.len() as u64);
        chunk.push(append);
        Ok::<_, ImportError>(chunk.len() >= CHUNK_APPENDS)
    };
    match from {
        ImportFrom::DataDir(dir) => {
            let reader = open_reader(&dir)?;
            let mut appends = DataDirAppends::new(&reader)?;
            while let Some(append) = appends.next_append()? {
                if take(append, &mut chunk)? {
                    sink.write(std::mem::take(&mut chunk), &mut imported)
                        .await?;
                }
            }
        }
        ImportFrom::Stream => {
            let js = jetstream::new(connect(config).await?);
            let mut appends = AppendReader::open(&js, &config.nats.events_stream).await?;
            bar.set_length(appends.last);
            while let Some(append) = appends.next().await? {
                if take(append, &mut chunk)? {
                    sink.write(std::mem::take(&mut chunk), &mut imported)
                        .await?;
                }
            }
        }
    }
    sink.write(chunk, &mut imported).await?;
    bar.finish_and_clear();
    Ok(imported)
}

/// `append`'s events checked against the chain, event by event, as the source gives them.
fn check(chain: &mut Chain, append: &SealedAppend) -> Result<(), ImportError> {
    for e in &append.events {
        chain
            .check(e)
            .map_err(|reason| ImportError::Broken { seq: e.seq, reason })?;
    }
    Ok(())
}

fn open_reader(dir: &Path) -> anyhow::Result<LogReader> {
    let path = crate::log::local_log_dir(dir);
    LogReader::open(&path).with_context(|| {
        format!(
            "open the event log at {} (stop the service that holds it first)",
            path.display()
        )
    })
}

async fn connect(config: &Config) -> anyhow::Result<async_nats::Client> {
    let options = async_nats::ConnectOptions::new().name("disputes-import");
    let options = crate::nats::with_credentials(options, &config.nats).await?;
    options
        .connect(config.nats.servers())
        .await
        .with_context(|| format!("connect to NATS at {}", config.nats.url))
}

/// A data dir's log as appends: a command's events (its record says which) are one append with
/// its record; the events of no command (expiries) one append per run of one dispute's events;
/// the dispute's first append carries the order it holds.
struct DataDirAppends<'a> {
    entries: Box<dyn Iterator<Item = disputes_store::Entry> + 'a>,
    reader: &'a LogReader,
    orders: HashMap<String, String>,
    held: Option<Envelope>,
}

impl<'a> DataDirAppends<'a> {
    fn new(reader: &'a LogReader) -> anyhow::Result<Self> {
        Ok(DataDirAppends {
            entries: Box::new(reader.entries(1)),
            reader,
            orders: reader.reservations()?,
            held: None,
        })
    }

    fn next_event(&mut self) -> Result<Option<Envelope>, ImportError> {
        if let Some(held) = self.held.take() {
            return Ok(Some(held));
        }
        match self.entries.next() {
            None => Ok(None),
            Some(Ok(e)) => Ok(Some(e)),
            Some(Err(unreadable)) => Err(ImportError::Broken {
                seq: unreadable.seq,
                reason: unreadable.reason,
            }),
        }
    }

    fn next_append(&mut self) -> Result<Option<SealedAppend>, ImportError> {
        let Some(first) = self.next_event()? else {
            return Ok(None);
        };
        let reserve_order = (first.version == 1)
            .then(|| self.orders.get(&first.dispute_id).cloned())
            .flatten();
        let (command, count) = match &first.command_id {
            Some(id) => {
                let place = self
                    .reader
                    .command_record(id)?
                    .ok_or_else(|| ImportError::Broken {
                        seq: first.seq,
                        reason: format!("command {id:?} has no record"),
                    })?;
                let (record, first_seq, count) = (place.record, place.first_seq, place.count);
                if first_seq != first.seq {
                    let reason = format!("command {id:?} recorded from seq {first_seq}");
                    return Err(ImportError::Broken {
                        seq: first.seq,
                        reason,
                    });
                }
                (Some(record), Some(count))
            }
            None => (None, None),
        };
        let mut events = vec![first];
        loop {
            if count.is_some_and(|count| events.len() as u64 >= count) {
                break;
            }
            let Some(next) = self.next_event()? else {
                break;
            };
            let same =
                next.command_id == events[0].command_id && next.dispute_id == events[0].dispute_id;
            if !same {
                self.held = Some(next);
                break;
            }
            events.push(next);
        }
        if let Some(count) = count.filter(|count| events.len() as u64 != *count) {
            let seq = events.last().expect("an append has events").seq;
            let reason = format!(
                "the command's record counts {count} events, the log {}",
                events.len()
            );
            return Err(ImportError::Broken { seq, reason });
        }
        Ok(Some(SealedAppend {
            command,
            reserve_order,
            events,
        }))
    }
}

/// Where the imported appends are written.
enum Sink {
    Sled(SledStore),
    Stream {
        client: async_nats::Client,
        log: LogConfig,
        last: u64,
    },
}

impl Sink {
    async fn open(config: &Config, to: ImportTo) -> anyhow::Result<Sink> {
        match to {
            ImportTo::DataDir(dir) => {
                let path = dir.join(crate::log::EVENTS_DIR);
                anyhow::ensure!(
                    !path.exists(),
                    "{} exists: an import makes a new log (move it away first)",
                    path.display()
                );
                std::fs::create_dir_all(&dir)?;
                let options = StoreOptions {
                    durability: Durability::Fsync,
                    ..StoreOptions::default()
                };
                let store = SledStore::open(&path, options)
                    .with_context(|| format!("create the event log at {}", path.display()))?;
                Ok(Sink::Sled(store))
            }
            ImportTo::Stream => {
                let client = connect(config).await?;
                let log = crate::log::log_config(config);
                let js = jetstream::new(client.clone());
                let mut stream = ensure_log_stream(&js, &log).await?;
                let last = stream.info().await?.state.last_sequence;
                anyhow::ensure!(
                    last == 0,
                    "the stream {} holds {last} messages: an import makes a new log",
                    log.stream
                );
                Ok(Sink::Stream { client, log, last })
            }
        }
    }

    async fn write(
        &mut self,
        appends: Vec<SealedAppend>,
        imported: &mut Imported,
    ) -> Result<(), ImportError> {
        if appends.is_empty() {
            return Ok(());
        }
        let events: u64 = appends.iter().map(|a| a.events.len() as u64).sum();
        let count = appends.len() as u64;
        match self {
            Sink::Sled(store) => {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.import(appends))
                    .await
                    .context("the import task")??;
            }
            Sink::Stream { client, log, last } => {
                *last = write_appends(client, log, &appends, *last).await?;
            }
        }
        imported.events += events;
        imported.appends += count;
        Ok(())
    }
}
