//! One writer per subject prefix: a lease in the JetStream KV bucket `DISPUTES_LEASES`.
//!
//! The embedded store belongs to one process. A second `disputes serve` with another data dir on
//! the same NATS and prefix would split commands across two stores, so it must not start. The
//! lease names the holder's store id (a random id kept in the data dir): the same data dir may take
//! its lease back at once after a crash (sled's own file lock already keeps two processes off one
//! dir); another data dir must wait until the holder's lease lapses.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub(crate) const BUCKET: &str = "DISPUTES_LEASES";
/// A lease not renewed for this long lapses.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(15);
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Holder {
    store_id: String,
    host: String,
    pid: u32,
    data_dir: String,
}

pub(crate) struct Lease {
    kv: kv::Store,
    key: String,
    holder: Holder,
    revision: u64,
}

/// The store id of a data dir, created on first use.
pub(crate) fn store_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("store-id");
    match std::fs::read_to_string(&path) {
        Ok(id) => Ok(id.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)?;
            let id = uuid_like();
            std::fs::write(&path, &id).with_context(|| format!("write {}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
    }
}

fn uuid_like() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// The bucket of leases: a key not renewed for [`LEASE_TTL`] lapses.
pub(crate) async fn bucket(js: &jetstream::Context) -> anyhow::Result<kv::Store> {
    js.create_or_update_key_value(kv::Config {
        bucket: BUCKET.into(),
        history: 1,
        max_age: LEASE_TTL,
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .context("create the lease bucket")
}

pub(crate) fn hostname_pid() -> String {
    format!("{}:{}", hostname(), std::process::id())
}

impl Lease {
    /// Takes the writer lease for `prefix`, or fails with who holds it.
    pub(crate) async fn acquire(
        js: &jetstream::Context,
        prefix: &str,
        data_dir: &Path,
    ) -> anyhow::Result<Lease> {
        let kv = bucket(js).await?;
        let holder = Holder {
            store_id: store_id(data_dir)?,
            host: hostname(),
            pid: std::process::id(),
            data_dir: data_dir.display().to_string(),
        };
        let key = prefix.to_owned();
        let value = Bytes::from(serde_json::to_vec(&holder)?);
        let revision = match kv.create(&key, value.clone()).await {
            Ok(revision) => revision,
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                let entry = kv
                    .entry(&key)
                    .await?
                    .context("lease vanished while taking it")?;
                let current: Holder = serde_json::from_slice(&entry.value).unwrap_or(Holder {
                    store_id: "?".into(),
                    host: "?".into(),
                    pid: 0,
                    data_dir: "?".into(),
                });
                anyhow::ensure!(
                    current.store_id == holder.store_id,
                    "another `disputes serve` is the writer for subject prefix {prefix:?}: data dir {} \
                     (pid {} on {}) holds the lease in NATS KV bucket {BUCKET}. The embedded store \
                     belongs to one process; stop that instance, use another subject_prefix, or wait \
                     {}s for its lease to lapse if it is gone",
                    current.data_dir,
                    current.pid,
                    current.host,
                    LEASE_TTL.as_secs()
                );
                kv.update(&key, value, entry.revision)
                    .await
                    .context("take back our own lease")?
            }
            Err(e) => return Err(e).context("take the writer lease"),
        };
        tracing::info!(prefix, store_id = %holder.store_id, "writer lease taken");
        Ok(Lease {
            kv,
            key,
            holder,
            revision,
        })
    }

    /// Renews the lease; an error means another writer took it (or NATS is unreachable for now).
    pub(crate) async fn renew(&mut self) -> Result<(), LeaseLost> {
        let value = Bytes::from(serde_json::to_vec(&self.holder).expect("holder serializes"));
        match self
            .kv
            .update(&self.key, value.clone(), self.revision)
            .await
        {
            Ok(revision) => {
                self.revision = revision;
                Ok(())
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                // Lapsed while NATS was unreachable: retake it if nobody else did.
                match self.kv.entry(&self.key).await {
                    Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
                        let current: Option<Holder> = serde_json::from_slice(&entry.value).ok();
                        if current.as_ref() != Some(&self.holder) {
                            return Err(LeaseLost::TakenBy(format!("{current:?}")));
                        }
                        self.revision = entry.revision;
                        Ok(())
                    }
                    Ok(_) => match self.kv.create(&self.key, value).await {
                        Ok(revision) => {
                            self.revision = revision;
                            Ok(())
                        }
                        Err(e) => Err(LeaseLost::Unreachable(e.to_string())),
                    },
                    Err(e) => Err(LeaseLost::Unreachable(e.to_string())),
                }
            }
            Err(e) => Err(LeaseLost::Unreachable(e.to_string())),
        }
    }

    /// Gives the lease up on a clean stop, so a successor need not wait.
    pub(crate) async fn release(self) {
        if let Err(e) = self
            .kv
            .delete_expect_revision(&self.key, Some(self.revision))
            .await
        {
            tracing::warn!(error = %e, "could not release the writer lease; it lapses by itself");
        }
    }
}

#[derive(Debug)]
pub(crate) enum LeaseLost {
    TakenBy(String),
    Unreachable(String),
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}
