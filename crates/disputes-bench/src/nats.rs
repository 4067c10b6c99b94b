//! The NATS workloads of `disputes bench`: they run their own `nats-server` (or `--nats-url`) and an
//! in-process `disputes serve`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use chrono::{TimeDelta, Utc};
use disputes::config::{Config, PolicyConfig};
use disputes::shutdown;
use disputes_client::Outgoing;
use disputes_command::{CommandHandler, Reply};
use disputes_domain::{Limits, Policy};
use disputes_store::{EventStore, SledStore, StoreOptions};
use disputes_testkit::workload::{lifecycle, now};
use disputes_testkit::NatsServer;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::report::{cpu_of, cpu_split, percentile, report, rss_mb, Bound, Goal, Measured, Report};
use crate::BenchArgs;

/// `--nats-url`, or a server of our own (kept alive by the returned guard), configured as
/// shipped: `max_payload` 256 KiB, every write fsynced.
pub(crate) fn nats_for(args: &BenchArgs) -> (Option<NatsServer>, String) {
    match &args.nats_url {
        Some(url) => (None, url.clone()),
        None => {
            let server = NatsServer::start_with_config(
                "listen: \"127.0.0.1:{{port}}\"\nmax_payload: 262144\n\
                 jetstream { store_dir: \"{{store_dir}}\", sync_interval: always }\n",
            );
            let url = server.url();
            (Some(server), url)
        }
    }
}

/// An in-process service on `data_dir`, stopped by the returned trigger; its HTTP endpoints
/// listen on `http_listen` (empty: none).
pub(crate) async fn start_service(
    url: &str,
    data_dir: &Path,
    policy: PolicyConfig,
    http_listen: &str,
) -> anyhow::Result<(
    shutdown::Trigger,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    async_nats::Client,
)> {
    let mut config = Config::default();
    config.nats.url = url.to_owned();
    config.store.path = data_dir.to_owned();
    config.http.listen = http_listen.to_owned();
    config.policy = policy;
    start_service_with(config).await
}

/// An in-process service on `config`, stopped by the returned trigger, once it answers queries.
pub(crate) async fn start_service_with(
    config: Config,
) -> anyhow::Result<(
    shutdown::Trigger,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    async_nats::Client,
)> {
    let servers: Vec<String> = config
        .nats
        .servers()
        .into_iter()
        .map(String::from)
        .collect();
    let (trigger, shutdown) = shutdown::channel();
    let task = tokio::spawn(disputes::service::serve_until(config, shutdown));
    let client = async_nats::connect(servers).await?;
    let started = Instant::now();
    loop {
        if let Ok(Ok(reply)) = tokio::time::timeout(
            Duration::from_millis(500),
            client.request("disputes.query.stats", "{}".into()),
        )
        .await
        {
            if serde_json::from_slice::<Value>(&reply.payload).is_ok_and(|v| v["ok"] == true) {
                break;
            }
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the service did not become ready"
        );
        anyhow::ensure!(!task.is_finished(), "the service stopped during start-up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((trigger, task, client))
}

/// One request: its latency in µs and, with `check`, its reply, which must say `"ok": true`
/// (`Value::Null` without).
pub(crate) async fn request(
    client: &async_nats::Client,
    subject: String,
    body: Vec<u8>,
    check: bool,
) -> anyhow::Result<(u64, Value)> {
    let t0 = Instant::now();
    let reply = client.request(subject.clone(), body.into()).await?;
    let latency = t0.elapsed().as_micros() as u64;
    if !check {
        return Ok((latency, Value::Null));
    }
    let v: Value = serde_json::from_slice(&reply.payload)?;
    anyhow::ensure!(v["ok"] == true, "{subject} refused: {v}");
    Ok((latency, v))
}

/// Items `0..count` over `concurrency` clients (client `t` takes `t`, `t + concurrency`, …, in
/// order), each run by `item`, which gives its requests' latencies; elapsed, and every latency
/// sorted.
pub(crate) async fn fan_out<F, Fut>(
    client: &async_nats::Client,
    count: usize,
    concurrency: usize,
    item: F,
) -> anyhow::Result<(Duration, Vec<u64>)>
where
    F: Fn(async_nats::Client, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Vec<u64>>> + Send + 'static,
{
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let (client, item) = (client.clone(), item.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for n in (t..count).step_by(concurrency) {
                latencies.extend(item(client.clone(), n).await?);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Ok((elapsed, latencies))
}

/// Runs `disputes` lifecycles over NATS with `concurrency` clients; returns elapsed and latencies.
pub(crate) async fn drive(
    client: &async_nats::Client,
    run: &str,
    disputes: usize,
    concurrency: usize,
    subject: impl Fn(&str) -> String + Send + Sync + 'static,
    check: bool,
) -> anyhow::Result<(Duration, Vec<u64>)> {
    let (subject, run) = (Arc::new(subject), Arc::new(run.to_owned()));
    fan_out(client, disputes, concurrency, move |client, n| {
        let (subject, run) = (subject.clone(), run.clone());
        async move {
            let mut latencies = Vec::new();
            for (ty, body) in lifecycle(&run, n) {
                latencies.push(request(&client, subject(ty), body, check).await?.0);
            }
            Ok(latencies)
        }
    })
    .await
}

/// The lifecycle of dispute `n` as `disputes-client` commands: the very bodies of
/// [`lifecycle`], read back into the domain's types (so both workloads send the same commands).
pub(crate) fn typed_lifecycle(run: &str, n: usize) -> Vec<Outgoing> {
    lifecycle(run, n)
        .into_iter()
        .map(|(ty, body)| {
            let parsed = disputes_domain::parse_command(ty, &body, &Limits::default())
                .expect("the lifecycle's commands parse");
            let request = parsed.request;
            let mut outgoing = Outgoing::with_id(
                parsed.command_id,
                &parsed.dispute_id,
                request.actor,
                request.command,
            );
            if let Some(version) = request.expected_version {
                outgoing = outgoing.expecting_version(version);
            }
            outgoing
        })
        .collect()
}

/// Runs `disputes` lifecycles through `disputes-client` (typed commands, each reply decoded and
/// its events' hashes checked) with `concurrency` clients; elapsed and latencies.
pub(crate) async fn drive_client(
    client: &async_nats::Client,
    run: &str,
    disputes: usize,
    concurrency: usize,
) -> anyhow::Result<(Duration, Vec<u64>)> {
    let run = Arc::new(run.to_owned());
    fan_out(client, disputes, concurrency, move |client, n| {
        let run = run.clone();
        async move {
            let client = disputes_client::Client::new(client);
            let mut latencies = Vec::new();
            for command in typed_lifecycle(&run, n) {
                let t0 = Instant::now();
                client.send(&command).await?;
                latencies.push(t0.elapsed().as_micros() as u64);
            }
            Ok(latencies)
        }
    })
    .await
}

/// A responder on `bench.echo` answering every request with `reply_len` bytes: the baseline of
/// the NATS workloads. Abort the handle to stop it.
pub(crate) async fn echo_responder(
    client: &async_nats::Client,
    reply_len: usize,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let reply_bytes = bytes::Bytes::from(vec![b'x'; reply_len]);
    let mut echo = client.queue_subscribe("bench.echo", "bench".into()).await?;
    let responder = client.clone();
    Ok(tokio::spawn(async move {
        while let Some(message) = echo.next().await {
            if let Some(reply) = message.reply {
                let _ = responder.publish(reply, reply_bytes.clone()).await;
            }
        }
    }))
}

pub(crate) async fn nats(dir: &Path, args: &BenchArgs) -> anyhow::Result<Report> {
    let (disputes, concurrency) = (
        args.disputes.unwrap_or(2_000),
        args.concurrency.unwrap_or(16),
    );
    // The goal's baseline: the same lifecycle in process, durable, without NATS, in this run.
    let inproc_dir = dir.join("inproc");
    let inproc = tokio::task::spawn_blocking(move || {
        crate::inproc::inproc(&inproc_dir, disputes, concurrency)
    });
    let (inproc, inproc_cpu) = cpu_of(&[0], inproc).await;
    let inproc = inproc??;
    let (server, url) = nats_for(args);
    // This process, and the NATS server when it is ours.
    let pids: Vec<u32> = std::iter::once(0)
        .chain(server.as_ref().and_then(NatsServer::pid))
        .collect();
    let (trigger, task, client) =
        start_service(&url, &dir.join("data"), Default::default(), "").await?;

    let baseline = echo_baseline(&client, disputes, concurrency).await?;

    // The same commands as raw requests (body bytes out, `ok` checked): what the client costs.
    let raw_requests = drive(
        &client,
        "raw",
        disputes,
        concurrency,
        |ty| format!("disputes.cmd.{ty}"),
        true,
    );
    let (driven, raw_cpu) = cpu_of(&pids, raw_requests).await;
    let (raw_elapsed, _) = driven?;
    let raw = (disputes * 5) as f64 / raw_elapsed.as_secs_f64();
    tracing::info!(?pids, "nats: the service's lifecycles start");
    let (driven, service_cpu) =
        cpu_of(&pids, drive_client(&client, "nats", disputes, concurrency)).await;
    let (elapsed, latencies) = driven?;
    trigger.trip();
    task.await??;
    let ops = (disputes * 5) as u64;
    let mut report = report(Measured {
        workload: "nats",
        ops,
        elapsed,
        sorted_latencies: &latencies,
        baseline: "echo responder on the same NATS",
        baseline_ops_per_sec: Some(baseline),
        extra: Some(json!({"inproc_ops_per_sec": inproc.ops_per_sec,
        "raw_requests_ops_per_sec": raw,
        "client_over_raw": report_ratio(disputes, elapsed, raw),
        "cpu": {
            "inproc": cpu_split(&inproc_cpu, ops),
            "raw_requests": cpu_split(&raw_cpu, ops),
            "service": cpu_split(&service_cpu, ops),
        }})),
    });
    report.goals.push(Goal::new(
        "nats / inproc (same run)",
        report.ops_per_sec / inproc.ops_per_sec,
        Bound::AtLeast,
        0.5,
    ));
    Ok(report)
}

/// The `nats` baseline: commands/s of an echo responder answering with a reply of the service's
/// typical size, on the same NATS, the same lifecycle's requests.
async fn echo_baseline(
    client: &async_nats::Client,
    disputes: usize,
    concurrency: usize,
) -> anyhow::Result<f64> {
    // Baseline: an echo responder answering with a reply of the service's typical size.
    let probe = client
        .request(
            "disputes.cmd.open",
            lifecycle("probe", 0)[0].1.clone().into(),
        )
        .await?;
    let echo_task = echo_responder(client, probe.payload.len()).await?;
    let (base_elapsed, _) = drive(
        client,
        "echo",
        disputes,
        concurrency,
        |_| "bench.echo".to_owned(),
        false,
    )
    .await?;
    echo_task.abort();
    let baseline = (disputes * 5) as f64 / base_elapsed.as_secs_f64();
    Ok(baseline)
}

/// The client's rate over the raw requests' rate.
fn report_ratio(disputes: usize, elapsed: Duration, raw_ops_per_sec: f64) -> f64 {
    (disputes * 5) as f64 / elapsed.as_secs_f64() / raw_ops_per_sec
}

/// Pending deadlines far in the future, plus a burst due at one instant: firing lag to DisputeResolved.
pub(crate) async fn scheduler(dir: &Path, args: &BenchArgs) -> anyhow::Result<Report> {
    let pending = args.disputes.unwrap_or(1_000_000);
    let burst = 10_000;
    let data = dir.join("data");
    let fill_dir = data.join("events");
    let (rss_pending, pending_secs, due_at) = {
        let dir = fill_dir.clone();
        tokio::task::spawn_blocking(move || fill_deadlines(&dir, pending, burst)).await??
    };
    let (server, url) = nats_for(args);
    // The service in a process of its own (the `disputes` binary beside this one), so its
    // resident memory is its own, not the fill's.
    let mut service = ServiceProcess::spawn(&url, &data)?;
    let client = service.wait_ready(&url).await?;
    let (rss_ready, _, _) = service.resident_mb();
    // Positive: the service was up (read models caught up) before the burst came due.
    let ready_margin_secs = (due_at - Utc::now()).num_milliseconds() as f64 / 1000.0;
    wait_resolved(&client, burst).await?;
    let (rss_serving, rss_peak, threads) = service.resident_mb();
    service.stop()?;
    // Started again on the same data: read models current, nothing to rebuild, every deadline
    // pending (the burst resolved): what serving them costs in steady state.
    let mut service = ServiceProcess::spawn(&url, &data)?;
    service.wait_ready(&url).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss_restarted, _, _) = service.resident_mb();
    service.stop()?;
    let (lags, expiries, appended) = firing_lags(&fill_dir, burst, due_at)?;
    let fired_secs = lags.last().copied().unwrap_or(0) as f64 / 1e6;
    // The baseline: the expiry messages alone, the least JetStream must store before the burst
    // is applied; then the events they appended, which the service publishes meanwhile.
    let raw_messages = expiries.len() + appended.len();
    let raw_expiries_secs = raw_burst(&client, expiries).await?.as_secs_f64();
    let raw_secs = raw_expiries_secs + raw_burst(&client, appended).await?.as_secs_f64();
    let extra = json!({
        "pending_deadlines": pending,
        "burst": burst,
        "rss_mb_with_pending_in_store": rss_pending,
        "rss_mb_serving": rss_serving,
        "rss_mb_serving_peak": rss_peak,
        "rss_mb_restarted": rss_restarted,
        "rss_mb_ready_after_rebuild": rss_ready,
        "service_threads_after_burst": threads,
        "fill_secs": pending_secs,
        "ready_before_due_secs": ready_margin_secs,
        "fired_secs": fired_secs,
        "raw_burst_messages": raw_messages,
        "raw_burst_secs": raw_secs,
        "raw_expiries_secs": raw_expiries_secs,
        "p50_lag_ms": percentile(&lags, 0.5).map(|us| us as f64 / 1000.0),
        "p99_lag_ms": percentile(&lags, 0.99).map(|us| us as f64 / 1000.0),
    });
    drop(server);
    let mut report = report(Measured {
        workload: "scheduler",
        ops: burst as u64,
        elapsed: Duration::from_secs_f64(fired_secs.max(1e-6)),
        sorted_latencies: &lags,
        baseline: "the burst's expiry messages published straight to JetStream on the same server (fsync always), 256 in flight",
        baseline_ops_per_sec: Some(burst as f64 / raw_expiries_secs.max(1e-6)),
        extra: Some(extra),
    });
    scheduler_goals(&mut report, &lags, pending, rss_serving, rss_restarted);
    Ok(report)
}

/// The scheduler's goals: the burst's p99 lag, and resident memory with 1,000,000 pending.
fn scheduler_goals(
    report: &mut Report,
    lags: &[u64],
    pending: usize,
    rss_serving: f64,
    rss_restarted: f64,
) {
    let burst = lags.len();
    let p99_secs = percentile(lags, 0.99).unwrap_or(0) as f64 / 1e6;
    report.goals.push(Goal::new(
        format!("p99 firing lag of {burst} due at once (s)"),
        p99_secs,
        Bound::AtMost,
        1.0,
    ));
    if pending >= 1_000_000 {
        report.goals.push(Goal::new(
            format!("resident MiB serving {pending} pending deadlines, after rebuilding the read models and the burst"),
            rss_serving,
            Bound::AtMost,
            512.0,
        ));
        report.goals.push(Goal::new(
            format!(
                "resident MiB serving {pending} pending deadlines, restarted (read models current)"
            ),
            rss_restarted,
            Bound::AtMost,
            512.0,
        ));
    }
}

/// `disputes serve` as a child process on `data` (config written there), killed on drop.
struct ServiceProcess {
    child: std::process::Child,
}

impl ServiceProcess {
    fn spawn(url: &str, data: &Path) -> anyhow::Result<ServiceProcess> {
        let bin = std::env::current_exe()?.with_file_name("disputes");
        anyhow::ensure!(
            bin.exists(),
            "{} is not there: build it with `cargo build --release -p disputes`",
            bin.display()
        );
        let config = data.with_file_name("service.toml");
        // `DISPUTES_BENCH_STORE`: more `[store]` keys for the service under test (cache sizes).
        let store_extra = std::env::var("DISPUTES_BENCH_STORE").unwrap_or_default();
        let toml = format!(
            "[nats]\nurl = {url:?}\n[http]\nlisten = \"\"\n[store]\npath = {:?}\n{store_extra}\n",
            data.display().to_string()
        );
        std::fs::write(&config, toml)?;
        let log = std::fs::File::create(data.with_file_name("service.log"))?;
        let child = std::process::Command::new(bin)
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .env_remove("DISPUTES_NATS_URL")
            .env_remove("DISPUTES_DATA_DIR")
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        Ok(ServiceProcess { child })
    }

    async fn wait_ready(&mut self, url: &str) -> anyhow::Result<async_nats::Client> {
        let client = async_nats::connect(url).await?;
        let started = Instant::now();
        loop {
            let asked = tokio::time::timeout(
                Duration::from_millis(500),
                client.request("disputes.query.stats", "{}".into()),
            )
            .await;
            if let Ok(Ok(reply)) = asked {
                if serde_json::from_slice::<Value>(&reply.payload).is_ok_and(|v| v["ok"] == true) {
                    return Ok(client);
                }
            }
            anyhow::ensure!(
                self.child.try_wait()?.is_none(),
                "the service exited during start-up"
            );
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(300),
                "the service did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `VmRSS` and `VmHWM` (the peak) of the service, in MiB, and its thread count.
    fn resident_mb(&self) -> (f64, f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"), field("Threads:") * 1024.0)
    }

    /// SIGTERM, and waits for the exit (SIGKILL after 30 s).
    fn stop(&mut self) -> anyhow::Result<()> {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let started = Instant::now();
        while self.child.try_wait()?.is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                self.child.kill()?;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the whole burst is resolved by its seller_response timeout.
async fn wait_resolved(client: &async_nats::Client, burst: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let stats: Value = serde_json::from_slice(
            &client
                .request("disputes.query.stats", "{}".into())
                .await?
                .payload,
        )?;
        let resolved = stats["stats"]["resolved_by_basis"]["seller_response_timeout"]
            .as_u64()
            .unwrap_or(0);
        if resolved >= burst as u64 {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the burst did not resolve ({resolved}/{burst})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Messages to publish: subject and payload.
type Messages = Vec<(String, Bytes)>;

/// Each burst dispute's firing lag (due time to `DisputeResolved` appended, in µs), sorted; and
/// the messages the burst made JetStream store: each expiry, and each event an expiry appended.
fn firing_lags(
    dir: &Path,
    burst: usize,
    due_at: chrono::DateTime<Utc>,
) -> anyhow::Result<(Vec<u64>, Messages, Messages)> {
    let store = SledStore::open(dir, StoreOptions::default())?;
    let mut lags = Vec::with_capacity(burst);
    let (mut expiries, mut appended) = (Vec::with_capacity(burst), Vec::with_capacity(2 * burst));
    for n in 0..burst {
        let dispute = format!("d-burst-{n}");
        let events = store.read_stream(&dispute)?;
        let resolved = events
            .iter()
            .find(|e| e.event_type == "DisputeResolved")
            .context("burst dispute resolved")?;
        lags.push(
            (resolved.occurred_at - due_at)
                .num_microseconds()
                .unwrap_or(0)
                .max(0) as u64,
        );
        let expiry =
            json!({"dispute_id": dispute, "deadline": "seller_response", "due_at": due_at});
        expiries.push((
            format!("bench.burst.deadline.{dispute}"),
            Bytes::from(serde_json::to_vec(&expiry)?),
        ));
        // What the expiry appended: everything after the due time.
        for event in events.iter().filter(|e| e.occurred_at >= due_at) {
            appended.push((
                format!("bench.burst.evt.{dispute}.{}", event.event_type),
                Bytes::from(serde_json::to_vec(event)?),
            ));
        }
    }
    lags.sort_unstable();
    Ok((lags, expiries, appended))
}

/// Publishes `messages` straight to file streams on the same server, 256 at once, each with a
/// message id and its ack awaited, as the service's scheduler and publisher send theirs: how
/// long JetStream takes to store them (with `sync_interval: always`, one fsync each).
async fn raw_burst(client: &async_nats::Client, messages: Messages) -> anyhow::Result<Duration> {
    let js = async_nats::jetstream::new(client.clone());
    // Two streams, as the service's expiries and events go to two.
    for (name, subjects) in [
        ("BENCH_BURST_DEADLINES", "bench.burst.deadline.>"),
        ("BENCH_BURST_EVENTS", "bench.burst.evt.>"),
    ] {
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: name.into(),
            subjects: vec![subjects.into()],
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    }
    let numbered = messages.into_iter().enumerate().collect();
    crate::cluster::in_parallel(numbered, 256, move |(n, (subject, payload))| {
        let js = js.clone();
        async move {
            let publish = async_nats::jetstream::message::PublishMessage::build()
                .message_id(format!("{subject}-{n}"))
                .payload(payload);
            js.send_publish(subject, publish).await?.await?;
            Ok(())
        }
    })
    .await
}

/// Opens `pending` disputes whose deadline is days away, then `burst` whose deadline is one
/// instant: far enough ahead for a service started afterwards to catch its read models up first.
fn fill_deadlines(
    dir: &Path,
    pending: usize,
    burst: usize,
) -> anyhow::Result<(f64, f64, chrono::DateTime<Utc>)> {
    let started = Instant::now();
    let store = Arc::new(SledStore::open(dir, StoreOptions::buffered())?);
    let policy = Policy::default();
    let seller_response = policy.seller_response;
    let handler = CommandHandler::new(store.clone(), policy, Limits::default());
    let open = |id: &str, at| {
        let body = json!({"command_id": format!("c-{id}"), "dispute_id": id, "actor": {"role": "buyer", "id": "b-1"},
            "data": {"order_id": format!("o-{id}"), "seller_id": "s-1", "reason": "not_received",
            "order_amount": {"amount": 100, "currency": "USD"}, "proposal": {"solution": "full_refund"}}});
        let reply = handler.handle("open", &serde_json::to_vec(&body).expect("json"), at);
        assert!(matches!(reply, Reply::Accepted(_)), "{reply:?}");
    };
    let in_threads = |count: usize, name: &str, at: &(dyn Fn() -> chrono::DateTime<Utc> + Sync)| {
        std::thread::scope(|scope| {
            for t in 0..4 {
                let open = &open;
                scope.spawn(move || {
                    for n in (t..count).step_by(4) {
                        open(&format!("d-{name}-{n}"), at());
                    }
                });
            }
        })
    };
    in_threads(pending, "pending", &now);
    let fill_secs = started.elapsed().as_secs_f64();
    // Start-up applies every event (two per dispute) to the read models before serving.
    let catch_up = TimeDelta::milliseconds((2 * (pending + burst) / 30) as i64);
    // Plus a margin for the service's start (NATS, streams, lease): `ready_before_due_secs`
    // in the report says whether it was enough.
    let due_at = now() + catch_up + TimeDelta::seconds(8);
    in_threads(burst, "burst", &|| due_at - seller_response);
    Ok((rss_mb(), fill_secs, due_at))
}
