//! Feeds the read models from the store's global log.

use std::sync::Arc;
use std::time::Duration;

use disputes_store::EventStore;

use crate::projections::{Projections, BATCH_EVENTS_MAX};
use crate::shutdown::Shutdown;

/// Applies one batch after the checkpoint; the number of events applied.
pub fn step<S: EventStore>(store: &S, projections: &Projections) -> anyhow::Result<usize> {
    let events = store.read_from(projections.checkpoint() + 1, BATCH_EVENTS_MAX)?;
    projections.apply(&events)?;
    Ok(events.len())
}

/// Applies everything the store holds now (before queries are answered).
pub async fn catch_up<S: EventStore + 'static>(
    store: &Arc<S>,
    projections: &Arc<Projections>,
) -> anyhow::Result<()> {
    let (store, projections) = (store.clone(), projections.clone());
    tokio::task::spawn_blocking(move || {
        while step(&*store, &projections)? > 0 {}
        Ok(())
    })
    .await?
}

pub async fn run<S: EventStore + 'static>(
    store: Arc<S>,
    projections: Arc<Projections>,
    shutdown: Shutdown,
) {
    let mut head = store.subscribe();
    loop {
        let (s, p) = (store.clone(), projections.clone());
        match tokio::task::spawn_blocking(move || step(&*s, &p)).await {
            Ok(Ok(n)) if n > 0 => continue,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "projection failed; retrying");
                if shutdown.sleep(Duration::from_millis(500)).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "projection task panicked");
                return;
            }
        }
        tokio::select! {
            changed = head.changed() => if changed.is_err() { return },
            _ = shutdown.wait() => return,
        }
    }
}
