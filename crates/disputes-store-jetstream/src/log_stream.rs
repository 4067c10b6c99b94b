//! The log stream: created with safe settings, or an existing one checked before it is used.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

/// Where the log lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The stream's name (`[nats] events_stream`, `DISPUTE_EVENTS` by default).
    pub stream: String,
    /// The subject prefix: events go to `<prefix>.evt.<dispute_id>.<type>`.
    pub subject_prefix: String,
    /// `[store] replicas`: 3 in production, 1 for development.
    pub replicas: usize,
}

impl LogConfig {
    pub(crate) fn subjects(&self) -> String {
        format!("{}.evt.>", self.subject_prefix)
    }

    pub(crate) fn subject(&self, dispute_id: &str, event_type: &str) -> String {
        format!("{}.evt.{dispute_id}.{event_type}", self.subject_prefix)
    }
}

/// Why the log stream cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LogStreamError {
    /// NATS did not answer, or refused.
    #[error("the log stream {stream}: {reason}")]
    Nats { stream: String, reason: String },
    /// The stream exists with settings that could lose or change the history.
    #[error("the log stream {stream} is unsafe: {reason}")]
    Unsafe { stream: String, reason: String },
}

/// Creates the log stream, or checks the existing one: file storage, `replicas` replicas, nothing
/// deleted, purged or aged out, atomic batches allowed.
pub async fn ensure_log_stream(
    js: &jetstream::Context,
    config: &LogConfig,
) -> Result<stream::Stream, LogStreamError> {
    let wanted = stream::Config {
        name: config.stream.clone(),
        subjects: vec![config.subjects()],
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        deny_delete: true,
        deny_purge: true,
        allow_atomic_publish: true,
        allow_direct: true,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    let nats = |reason: String| LogStreamError::Nats {
        stream: config.stream.clone(),
        reason,
    };
    let mut stream = js
        .get_or_create_stream(wanted)
        .await
        .map_err(|e| nats(format!("get or create: {e}")))?;
    let info = stream
        .info()
        .await
        .map_err(|e| nats(format!("info: {e}")))?;
    check(&info.config, config).map_err(|reason| LogStreamError::Unsafe {
        stream: config.stream.clone(),
        reason,
    })?;
    Ok(stream)
}

/// The stream's last sequence (0: empty).
pub(crate) async fn last_sequence(js: &jetstream::Context, stream: &str) -> Result<u64, String> {
    let mut stream = js.get_stream(stream).await.map_err(|e| e.to_string())?;
    let info = stream.info().await.map_err(|e| e.to_string())?;
    Ok(info.state.last_sequence)
}

/// The stream's messages from sequence `start` on, in order, through an ordered consumer.
pub(crate) async fn ordered_from(
    js: &jetstream::Context,
    stream: &str,
    start: u64,
) -> Result<consumer::pull::Ordered, String> {
    let stream = js.get_stream(stream).await.map_err(|e| e.to_string())?;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start.max(1),
            },
            ..Default::default()
        })
        .await
        .map_err(|e| format!("create an ordered consumer: {e}"))?;
    consumer.messages().await.map_err(|e| e.to_string())
}

/// Why `actual` is not safe to keep the log in, naming the setting to change.
pub(crate) fn check(actual: &stream::Config, config: &LogConfig) -> Result<(), String> {
    if actual.storage != stream::StorageType::File {
        return Err("it keeps its messages in memory (storage must be file)".into());
    }
    if actual.num_replicas.max(1) != config.replicas {
        return Err(format!(
            "it has {} replicas where [store] replicas = {}",
            actual.num_replicas.max(1),
            config.replicas
        ));
    }
    if !actual.deny_delete || !actual.deny_purge {
        return Err(
            "it allows deleting or purging messages (deny_delete and deny_purge must be set)"
                .into(),
        );
    }
    if !actual.allow_atomic_publish {
        return Err("it does not allow atomic batch publish (allow_atomic)".into());
    }
    let limited = actual.max_age != Duration::ZERO
        || actual.max_messages > 0
        || actual.max_bytes > 0
        || actual.max_messages_per_subject > 0;
    if limited {
        return Err("it has a limit (max_age, max_msgs, max_bytes or max_msgs_per_subject) that would drop events".into());
    }
    if !actual.subjects.contains(&config.subjects()) {
        return Err(format!(
            "its subjects {:?} do not include {}",
            actual.subjects,
            config.subjects()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LogConfig {
        LogConfig {
            stream: "DISPUTE_EVENTS".into(),
            subject_prefix: "disputes".into(),
            replicas: 3,
        }
    }

    fn safe() -> stream::Config {
        stream::Config {
            name: "DISPUTE_EVENTS".into(),
            subjects: vec!["disputes.evt.>".into()],
            storage: stream::StorageType::File,
            num_replicas: 3,
            deny_delete: true,
            deny_purge: true,
            allow_atomic_publish: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_stream_that_could_lose_or_change_events_is_refused_naming_the_setting() {
        assert_eq!(check(&safe(), &config()), Ok(()));
        type Spoil = fn(&mut stream::Config);
        let cases: Vec<(&str, Spoil)> = vec![
            ("memory", |c| c.storage = stream::StorageType::Memory),
            ("replicas", |c| c.num_replicas = 1),
            ("deny_delete", |c| c.deny_delete = false),
            ("deny_purge", |c| c.deny_purge = false),
            ("allow_atomic", |c| c.allow_atomic_publish = false),
            ("max_age", |c| c.max_age = Duration::from_secs(60)),
            ("max_msgs", |c| c.max_messages = 10),
            ("subjects", |c| c.subjects = vec!["other.>".into()]),
        ];
        for (setting, spoil) in cases {
            let mut config_ = safe();
            spoil(&mut config_);
            let reason = check(&config_, &config()).unwrap_err();
            assert!(reason.contains(setting), "{setting}: {reason}");
        }
    }
}
