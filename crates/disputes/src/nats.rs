//! Connecting to NATS with the configured credentials and TLS, and the JetStream streams we own.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use tokio::sync::watch;

use crate::config::NatsConfig;

/// The longest wait between two connection attempts.
const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(10);
/// How often start-up says it is still waiting for NATS.
const WAITING_NOTICE_EVERY: Duration = Duration::from_secs(15);

/// Connects, retrying until the server answers (the returned future waits for the first
/// connection, logging while it waits), and reports (re)connections on the returned watch: its
/// value is bumped on every `Connected` event, so tasks can re-check what NATS may have lost.
/// Each connection problem is one log line naming the server.
pub(crate) async fn connect(
    config: &NatsConfig,
    name: &str,
) -> anyhow::Result<(async_nats::Client, watch::Receiver<u64>)> {
    let (connected_tx, mut connected_rx) = watch::channel(0u64);
    let server = config.url.clone();
    let options = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None)
        .reconnect_delay_callback(reconnect_delay)
        .event_callback(move |event| {
            let (connected_tx, server) = (connected_tx.clone(), server.clone());
            async move {
                match event {
                    async_nats::Event::Connected => {
                        tracing::info!(%server, "nats connected");
                        connected_tx.send_modify(|n| *n += 1);
                    }
                    async_nats::Event::Disconnected => {
                        tracing::warn!(%server, "nats disconnected; reconnecting")
                    }
                    async_nats::Event::ClientError(error) => {
                        tracing::warn!(%server, %error, "nats connection problem")
                    }
                    async_nats::Event::ServerError(error) => {
                        tracing::warn!(%server, %error, "nats server error")
                    }
                    other => tracing::info!(%server, event = %other, "nats event"),
                }
            }
        });
    let options = with_credentials(options, config).await?;
    let client = options
        .connect(config.servers())
        .await
        .with_context(|| format!("connect to NATS at {}", config.url))?;
    let started = std::time::Instant::now();
    while *connected_rx.borrow_and_update() == 0 {
        if tokio::time::timeout(WAITING_NOTICE_EVERY, connected_rx.changed())
            .await
            .is_ok_and(|changed| changed.is_err())
        {
            anyhow::bail!("the NATS client for {} stopped", config.url);
        }
        if *connected_rx.borrow() == 0 {
            tracing::warn!(server = %config.url, waited_s = started.elapsed().as_secs(), "still waiting for NATS");
        }
    }
    Ok((client, connected_rx))
}

/// The wait before connection attempt `attempts` (1 for the first): none for the first, then
/// doubling from 100 ms up to [`RECONNECT_DELAY_MAX`], each drawn at random from the upper half of
/// its range so that many clients restarted together do not retry in step.
fn reconnect_delay(attempts: usize) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let doublings = (attempts - 2).min(16) as u32;
    let ceiling = Duration::from_millis(100)
        .saturating_mul(1 << doublings)
        .min(RECONNECT_DELAY_MAX);
    let half = ceiling / 2;
    half + half.mul_f64(fastrand::f64())
}

/// Adds the configured credentials and TLS to `options` (shared by the service and `disputes audit`).
pub(crate) async fn with_credentials(
    mut options: async_nats::ConnectOptions,
    config: &NatsConfig,
) -> anyhow::Result<async_nats::ConnectOptions> {
    if let Some(path) = &config.creds {
        options = options
            .credentials_file(path)
            .await
            .with_context(|| format!("read [nats] creds {}", path.display()))?;
    }
    if let (Some(user), Some(password)) = (&config.user, config.password()?) {
        options = options.user_and_password(user.clone(), password);
    }
    if let Some(token) = &config.token {
        options = options.token(token.clone());
    }
    if let Some(path) = &config.nkey_seed_file {
        let seed = std::fs::read_to_string(path)
            .with_context(|| format!("read [nats] nkey_seed_file {}", path.display()))?;
        options = options.nkey(seed.trim().to_owned());
    }
    if let Some(ca) = &config.tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            options = options
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true)
        }
        (None, None) => {}
        _ => anyhow::bail!("[nats] tls_cert and tls_key go together"),
    }
    Ok(options)
}

/// `DISPUTE_EVENTS`: file storage, nothing deleted or purged, ever.
pub(crate) async fn ensure_events_stream(
    js: &jetstream::Context,
    config: &NatsConfig,
) -> anyhow::Result<stream::Stream> {
    let stream_config = stream::Config {
        name: config.events_stream.clone(),
        subjects: vec![format!("{}.evt.>", config.subject_prefix)],
        storage: stream::StorageType::File,
        deny_delete: true,
        deny_purge: true,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    get_or_create(js, stream_config).await
}

/// `DISPUTE_DEADLINES`: expiry and reminder messages; kept a week (long past any redelivery).
pub(crate) async fn ensure_deadlines_stream(
    js: &jetstream::Context,
    config: &NatsConfig,
) -> anyhow::Result<stream::Stream> {
    let stream_config = stream::Config {
        name: config.deadlines_stream.clone(),
        subjects: vec![format!("{}.deadline.>", config.subject_prefix)],
        storage: stream::StorageType::File,
        max_age: Duration::from_secs(7 * 24 * 3600),
        duplicate_window: Duration::from_secs(600),
        ..Default::default()
    };
    get_or_create(js, stream_config).await
}

/// How long start-up waits for JetStream to answer (a cluster that is forming has no leader
/// yet) before it gives up.
const JETSTREAM_READY_MAX: Duration = Duration::from_secs(60);

async fn get_or_create(
    js: &jetstream::Context,
    stream_config: stream::Config,
) -> anyhow::Result<stream::Stream> {
    let name = stream_config.name.clone();
    let started = std::time::Instant::now();
    loop {
        match js.get_or_create_stream(stream_config.clone()).await {
            Ok(stream) => return Ok(stream),
            Err(e) if started.elapsed() < JETSTREAM_READY_MAX => {
                tracing::warn!(error = %e, stream = %name, "JetStream did not answer yet; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("get or create JetStream stream {name}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_grow_exponentially_with_jitter_up_to_the_cap() {
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        for attempts in 2..40 {
            let ceiling = Duration::from_millis(100)
                .saturating_mul(1 << (attempts - 2).min(16))
                .min(RECONNECT_DELAY_MAX);
            let delay = reconnect_delay(attempts);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{attempts}: {delay:?}"
            );
        }
        let draws: std::collections::BTreeSet<_> = (0..20).map(|_| reconnect_delay(30)).collect();
        assert!(draws.len() > 1, "jitter: {draws:?}");
    }
}
