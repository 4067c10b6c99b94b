//! Storage failures: a full disk, an I/O error under the event log or the read models.
//!
//! sled 0.34 cannot go on after a failed write: its next flush waits forever, even once the disk
//! has room again, and dropping it flushes too. So a process whose storage failed cannot heal
//! itself in place. Instead the service degrades and then hands over to a fresh process:
//! - at once, commands are refused `unavailable` (the store's writer refuses every append after
//!   its first failure), and `/healthz` answers 503 with the failure;
//! - it checks every [`PROBE_EVERY`] whether the data dir takes writes again (a
//!   [`PROBE_BYTES`] file written, synced and removed);
//! - once it does, the service stops taking requests, lets those in flight finish, and exits with
//!   [`EXIT_STORAGE_FAILED`] without touching sled again, for its supervisor (the shipped systemd
//!   unit, a container's restart policy) to start it afresh. The new process opens the log as after
//!   a crash: every acknowledged event is there; an event whose append failed is there or not, as
//!   the disk kept it, and its command's retry is answered from it if it is.

use std::fmt::Display;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use disputes_store::EventStore;
use tokio::sync::watch;

use crate::shutdown::{Shutdown, Trigger};

/// The exit code of a service that stopped after a storage failure (docs/operations.md).
pub(crate) const EXIT_STORAGE_FAILED: i32 = crate::exit::STORAGE_FAILED as i32;
/// How often the store is asked whether it failed.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often a failed data dir is probed for room.
pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(5);
/// What the probe writes: room for sled to open its log again and take a few group commits.
pub(crate) const PROBE_BYTES: usize = 4 * 1024 * 1024;
const PROBE_FILE: &str = ".space-probe";

/// The first storage failure any part of the service met, shared.
#[derive(Default)]
pub(crate) struct Fault {
    failure: watch::Sender<Option<String>>,
}

impl Fault {
    /// Records a failure of `what` (the first one stays).
    pub(crate) fn report(&self, what: &str, error: &dyn Display) {
        self.failure.send_if_modified(|failure| {
            if failure.is_some() {
                return false;
            }
            tracing::error!(
                %error,
                "{what} failed: commands are refused `unavailable` until the data dir takes writes again; then the service exits with code {EXIT_STORAGE_FAILED} for its supervisor to start it afresh"
            );
            *failure = Some(format!("{what} failed: {error}"));
            true
        });
    }

    /// The first failure, if any.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure.borrow().clone()
    }
}

/// Watches for a storage failure; once one happened and the data dir takes writes again, trips
/// `restart`. Returns when it did, or at shutdown.
pub(crate) async fn watch<S: EventStore + 'static>(
    store: Arc<S>,
    fault: Arc<Fault>,
    data_dir: PathBuf,
    restart: Trigger,
    shutdown: Shutdown,
) {
    let mut failed = fault.failure.subscribe();
    loop {
        if let Some(error) = store.failure() {
            fault.report("the event store", &error);
        }
        if fault.failure().is_some() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = failed.changed() => {}
            _ = shutdown.wait() => return,
        }
    }
    loop {
        if shutdown.sleep(PROBE_EVERY).await {
            return;
        }
        let dir = data_dir.clone();
        match tokio::task::spawn_blocking(move || probe(&dir)).await {
            Ok(Ok(())) => break,
            Ok(Err(e)) => tracing::warn!(error = %e, "the data dir still takes no writes"),
            Err(e) => tracing::warn!(error = %e, "the space probe failed"),
        }
    }
    tracing::warn!(
        "the data dir takes writes again: stopping, to be started afresh (exit code {EXIT_STORAGE_FAILED})"
    );
    restart.trip();
}

/// Whether `dir` takes [`PROBE_BYTES`] written and synced (the file is removed either way).
pub(crate) fn probe(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(PROBE_FILE);
    let written = (|| {
        let mut file = std::fs::File::create(&path)?;
        let chunk = vec![0u8; 64 * 1024];
        for _ in 0..PROBE_BYTES / chunk.len() {
            file.write_all(&chunk)?;
        }
        file.sync_all()
    })();
    let removed = std::fs::remove_file(&path);
    written?;
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_reported_stays() {
        let fault = Fault::default();
        assert_eq!(fault.failure(), None);
        fault.report("the event store", &"disk full");
        fault.report("the read models", &"later");
        assert_eq!(
            fault.failure().as_deref(),
            Some("the event store failed: disk full")
        );
    }

    #[test]
    fn a_probe_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        probe(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(probe(&dir.path().join("missing")).is_err());
    }
}
