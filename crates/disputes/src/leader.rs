//! One instance at a time runs a role (in cluster mode: the scheduler), through a lease in the
//! bucket `DISPUTES_LEASES`: whoever creates the key leads and renews it every
//! [`RENEW_EVERY`]; the others try again at that pace, and take it once it lapses
//! ([`LEASE_TTL`] after its holder's last renewal: a dead or cut-off leader). A leader that cannot
//! renew for longer than that stops its role before another can have taken it over.
//!
//! Two leaders at once are still possible for a moment (a leader paused past its lease); the role
//! must tolerate it. The scheduler does: a deadline published twice is one message
//! (`Nats-Msg-Id`), and an expiry applied twice changes nothing.

use std::future::Future;
use std::time::Instant;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;

use crate::lease::{bucket, hostname_pid, LEASE_TTL, RENEW_EVERY};
use crate::shutdown::{self, Shutdown};

/// Runs `role` whenever this instance holds the lease `key`, until `shutdown`.
pub(crate) async fn lead<F, Fut>(js: jetstream::Context, key: String, shutdown: Shutdown, role: F)
where
    F: Fn(Shutdown) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let me = Bytes::from(format!(
        "{}:{}",
        hostname_pid(),
        uuid::Uuid::now_v7().simple()
    ));
    let kv = loop {
        match bucket(&js).await {
            Ok(kv) => break kv,
            Err(e) => tracing::warn!(error = %format!("{e:#}"), %key, "lease bucket unreachable"),
        }
        if shutdown.sleep(RENEW_EVERY).await {
            return;
        }
    };
    loop {
        match kv.create(&key, me.clone()).await {
            Ok(revision) => {
                tracing::info!(%key, "lease taken: this instance runs the role");
                let (trip, held) = shutdown::channel();
                let running = tokio::spawn(role(held));
                let kept = hold(&kv, &key, &me, revision, &shutdown).await;
                trip.trip();
                let _ = running.await;
                if let Some(revision) = kept {
                    // A clean stop: give it up, so another instance takes over at once.
                    let _ = kv.delete_expect_revision(&key, Some(revision)).await;
                    return;
                }
                tracing::warn!(%key, "lease lost: another instance runs the role");
            }
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => tracing::warn!(error = %e, %key, "could not try the lease"),
        }
        if shutdown.sleep(RENEW_EVERY).await {
            return;
        }
    }
}

/// Renews until `shutdown` (`Some(revision)`: still ours) or until the lease is lost (`None`):
/// another holder, or no renewal for longer than another instance waits before taking it.
async fn hold(
    kv: &kv::Store,
    key: &str,
    me: &Bytes,
    mut revision: u64,
    shutdown: &Shutdown,
) -> Option<u64> {
    let mut renewed = Instant::now();
    loop {
        if shutdown.sleep(RENEW_EVERY).await {
            return Some(revision);
        }
        match kv.update(key, me.clone(), revision).await {
            Ok(next) => {
                revision = next;
                renewed = Instant::now();
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => return None,
            Err(e) => {
                tracing::warn!(error = %e, key, "could not renew the lease");
                if renewed.elapsed() + RENEW_EVERY >= LEASE_TTL {
                    return None;
                }
            }
        }
    }
}
