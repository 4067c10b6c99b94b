//! `disputes bench cluster`: the lifecycle over NATS with the log on a three-node loopback cluster
//! (`[store] backend = "jetstream"`, replicas 3, every write fsynced), beside the raw JetStream
//! baseline of the same run: the very appends the service made (each as one atomic batch of the
//! same messages) published again, by as many publishers as there were clients, to a second
//! three-replica stream on the same cluster.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use disputes::config::{Backend, Config};
use disputes_store_jetstream::APPEND_HEADER;
use disputes_testkit::nats::{start_cluster, NatsServer};
use futures::StreamExt as _;
use serde_json::json;

use crate::nats::{drive_client, start_service_with};
use crate::report::{cpu_of, cpu_split, report, Bound, Goal, Measured, Report};
use crate::BenchArgs;

const RAW_STREAM: &str = "BENCH_RAW";
const FOLLOWED_STREAM: &str = "BENCH_FOLLOWED";

pub(crate) async fn cluster(dir: &Path, args: &BenchArgs) -> anyhow::Result<Report> {
    let (disputes, concurrency) = (
        args.disputes.unwrap_or(1_000),
        args.concurrency.unwrap_or(16),
    );
    let nodes = start_cluster(3);
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    let mut config = Config::default();
    config.nats.url = urls.join(",");
    config.store.path = dir.join("data");
    config.store.backend = Backend::Jetstream;
    config.store.replicas = 3;
    config.http.listen = String::new();
    let (trigger, task, client) = start_service_with(config).await?;
    // This process (the service and the bench's clients) and the three nodes.
    let pids: Vec<u32> = std::iter::once(0)
        .chain(nodes.iter().filter_map(NatsServer::pid))
        .collect();
    tracing::info!(?pids, "cluster: the service's lifecycles start");
    let (driven, service_cpu) = cpu_of(
        &pids,
        drive_client(&client, "cluster", disputes, concurrency),
    )
    .await;
    let (elapsed, latencies) = driven?;
    tracing::info!("cluster: the service's lifecycles done");
    trigger.trip();
    task.await??;
    let (appends, service_batches) = appends_of_the_log(&client).await?;
    let batches = appends.len();
    // The other shape the issue names: one message per append carrying its events, in one publish.
    let single_elapsed = raw_single_messages(&client, &appends, concurrency).await?;
    tracing::info!("cluster: raw batches start");
    let raw = raw_batches(&client, appends.clone(), concurrency, RAW_STREAM, false);
    let (raw_elapsed, raw_cpu) = cpu_of(&pids, raw).await;
    let raw_elapsed = raw_elapsed?;
    // The same again with a consumer reading every message back as it is stored: what feeding an
    // instance's copy of the log costs the nodes (not part of the baseline).
    let followed = raw_batches(&client, appends, concurrency, FOLLOWED_STREAM, true);
    let (followed_elapsed, followed_cpu) = cpu_of(&pids, followed).await;
    let followed_elapsed = followed_elapsed?;
    // The raw side's rate in commands: the same appends (one per command) in its own time.
    let raw_ops_per_sec = batches as f64 / raw_elapsed.as_secs_f64();
    let ops = (disputes * 5) as u64;
    let mut report = report(Measured {
        workload: "cluster",
        ops,
        elapsed,
        sorted_latencies: &latencies,
        baseline: "the same appends as raw JetStream atomic batches (3 replicas, fsync always)",
        baseline_ops_per_sec: Some(raw_ops_per_sec),
        extra: Some(
            json!({"appends": batches, "service_batches": service_batches,
            "appends_per_batch": batches as f64 / service_batches.max(1) as f64,
            "raw_secs": raw_elapsed.as_secs_f64(),
            "raw_followed_ops_per_sec": batches as f64 / followed_elapsed.as_secs_f64(),
            "raw_one_message_per_append_ops_per_sec": batches as f64 / single_elapsed.as_secs_f64(),
            "cpu": {
                "service": cpu_split(&service_cpu, ops),
                "raw_batches": cpu_split(&raw_cpu, batches as u64),
                "raw_batches_followed": cpu_split(&followed_cpu, batches as u64),
            }}),
        ),
    });
    report.goals.push(Goal::new(
        "cluster / raw JetStream batches (same run)",
        report.ops_per_sec / raw_ops_per_sec,
        Bound::AtLeast,
        0.5,
    ));
    drop(nodes);
    Ok(report)
}

/// Every append of the log stream (its messages' subjects and payloads, in log order), and how
/// many atomic batches the service wrote them in.
async fn appends_of_the_log(
    client: &async_nats::Client,
) -> anyhow::Result<(Vec<Vec<(String, Bytes)>>, usize)> {
    let js = jetstream::new(client.clone());
    let mut stream = js.get_stream("DISPUTE_EVENTS").await?;
    let last = stream.info().await?.state.last_sequence;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig::default())
        .await?;
    let mut messages = consumer.messages().await?;
    let mut appends: Vec<Vec<(String, Bytes)>> = Vec::new();
    let mut batches = std::collections::HashSet::new();
    for _ in 0..last {
        let message = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the log stream ended early"))??;
        if let Some(id) = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Batch-Id"))
        {
            batches.insert(id.as_str().to_owned());
        }
        let starts = message
            .headers
            .as_ref()
            .is_some_and(|h| h.get(APPEND_HEADER).is_some());
        if starts || appends.is_empty() {
            appends.push(Vec::new());
        }
        let subject = message
            .subject
            .as_str()
            .replacen("disputes.evt", "bench.raw", 1);
        appends
            .last_mut()
            .expect("an append")
            .push((subject, message.payload.clone()));
    }
    Ok((appends, batches.len()))
}

/// Publishes each append as one message (its events' payloads as one JSON array) to a fresh
/// three-replica stream, `concurrency` publishers taking appends in turn, each waiting for its ack;
/// the time it took.
async fn raw_single_messages(
    client: &async_nats::Client,
    appends: &[Vec<(String, Bytes)>],
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let js = jetstream::new(client.clone());
    create_stream(&js, "BENCH_SINGLE", "bench.single.>", false).await?;
    let messages: Vec<(String, Bytes)> = appends
        .iter()
        .map(|append| {
            let subject = append[0].0.replacen("bench.raw", "bench.single", 1);
            let mut body = b"[".to_vec();
            for (i, (_, payload)) in append.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(payload);
            }
            body.push(b']');
            (subject, Bytes::from(body))
        })
        .collect();
    in_parallel(messages, concurrency, move |(subject, body)| {
        let js = js.clone();
        async move {
            js.publish(subject, body).await?.await?;
            Ok(())
        }
    })
    .await
}

/// Publishes each append as one atomic batch to a fresh three-replica stream `name` (the appends'
/// `bench.raw.` subjects moved under `bench.<name>.`), `concurrency` publishers taking appends in
/// turn; with `follow`, an ordered consumer reads every message back as it is stored, as an
/// instance's follower does. The time until every batch was acknowledged (and, following, read).
async fn raw_batches(
    client: &async_nats::Client,
    appends: Vec<Vec<(String, Bytes)>>,
    concurrency: usize,
    name: &str,
    follow: bool,
) -> anyhow::Result<Duration> {
    let js = jetstream::new(client.clone());
    let prefix = format!("bench.{}", name.trim_start_matches("BENCH_").to_lowercase());
    create_stream(&js, name, &format!("{prefix}.>"), true).await?;
    let total: usize = appends.iter().map(Vec::len).sum();
    let appends: Vec<Vec<(String, Bytes)>> = appends
        .into_iter()
        .map(|append| {
            let moved = |(subject, payload): (String, Bytes)| {
                (subject.replacen("bench.raw", &prefix, 1), payload)
            };
            append.into_iter().map(moved).collect()
        })
        .collect();
    let reader = if follow {
        let stream = js.get_stream(name).await?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig::default())
            .await?;
        let mut messages = consumer.messages().await?;
        Some(tokio::spawn(async move {
            for _ in 0..total {
                tokio::time::timeout(Duration::from_secs(30), messages.next())
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("the followed stream ended early"))??;
            }
            anyhow::Ok(())
        }))
    } else {
        None
    };
    let client = client.clone();
    let started = Instant::now();
    in_parallel(appends, concurrency, move |append| {
        let client = client.clone();
        async move { publish_batch(&client, append).await }
    })
    .await?;
    if let Some(reader) = reader {
        reader.await??;
    }
    Ok(started.elapsed())
}

/// A three-replica file stream `name` on `subjects`, retried while the cluster elects its leader.
async fn create_stream(
    js: &jetstream::Context,
    name: &str,
    subjects: &str,
    atomic: bool,
) -> anyhow::Result<()> {
    let config = stream::Config {
        name: name.into(),
        subjects: vec![subjects.into()],
        storage: stream::StorageType::File,
        num_replicas: 3,
        allow_atomic_publish: atomic,
        ..Default::default()
    };
    let started = Instant::now();
    while let Err(e) = js.get_or_create_stream(config.clone()).await {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "no stream {name}: {e}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// `items` through `publish`, `concurrency` tasks taking them in turn; the time it took.
pub(crate) async fn in_parallel<T, F, Fut>(
    items: Vec<T>,
    concurrency: usize,
    publish: F,
) -> anyhow::Result<Duration>
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let queue = Arc::new(Mutex::new(items.into_iter()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (queue, publish) = (queue.clone(), publish.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().expect("queue").next();
                let Some(item) = next else {
                    return anyhow::Ok(());
                };
                publish(item).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(started.elapsed())
}

async fn publish_batch(
    client: &async_nats::Client,
    messages: Vec<(String, Bytes)>,
) -> anyhow::Result<()> {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let count = messages.len();
    for (n, (subject, payload)) in (1..).zip(messages) {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Batch-Id", id.as_str());
        headers.insert("Nats-Batch-Sequence", n.to_string().as_str());
        if n < count {
            client
                .publish_with_headers(subject, headers, payload)
                .await?;
            continue;
        }
        headers.insert("Nats-Batch-Commit", "1");
        let ack = client
            .request_with_headers(subject, headers, payload)
            .await?;
        let ack: serde_json::Value = serde_json::from_slice(&ack.payload)?;
        anyhow::ensure!(ack["error"].is_null(), "raw batch refused: {ack}");
    }
    Ok(())
}
