//! The workloads that run commands for a while and watch something else meanwhile:
//! - `lag`: the `nats` lifecycle for `--secs` (default 60); every 100 ms the service's own
//!   `/metrics` say which seq is published on JetStream and which is applied to the read models,
//!   and the age of the oldest event acknowledged but not yet published (or projected) is the lag.
//! - `queries`: `get` and `list` over NATS while four clients run the lifecycle, against an echo
//!   responder on the same NATS answering with replies of the same size.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use disputes_testkit::workload::lifecycle;
use disputes_testkit::NatsServer;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::nats::{drive, echo_responder, fan_out, nats_for, start_service};
use crate::report::{
    cpu_of, cpu_split, percentile, report, Bound, CpuSpent, Goal, Measured, Report,
};
use crate::BenchArgs;

/// When each command's last event was acknowledged, by that event's seq.
type Acked = Arc<Mutex<BTreeMap<u64, Instant>>>;

/// One sample: when, and the lags (µs) to published and to projected.
struct Sample {
    at: Duration,
    published_us: u64,
    projected_us: u64,
}

pub(crate) async fn lag(dir: &Path, args: &BenchArgs) -> anyhow::Result<Report> {
    let secs = args.secs.unwrap_or(60);
    let concurrency = args.concurrency.unwrap_or(16);
    let (_server, url) = nats_for(args);
    let port = free_port()?;
    let (trigger, task, client) = start_service(
        &url,
        &dir.join("data"),
        Default::default(),
        &format!("127.0.0.1:{port}"),
    )
    .await?;
    let acked: Acked = Arc::default();
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let mut drivers = Vec::new();
    for t in 0..concurrency {
        let (client, acked) = (client.clone(), acked.clone());
        drivers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = t;
            while Instant::now() < until {
                for (ty, body) in lifecycle("lag", n) {
                    let subject = format!("disputes.cmd.{ty}");
                    let (latency, v) = crate::nats::request(&client, subject, body, true).await?;
                    let now = Instant::now();
                    latencies.push(latency);
                    let seq = v["seq"].as_u64().unwrap_or(0);
                    acked.lock().expect("acked").insert(seq, now);
                }
                n += concurrency;
            }
            anyhow::Ok((latencies, Instant::now()))
        }));
    }
    let samples = sample_lags(port, &acked, started, until).await?;
    let (mut latencies, mut ended) = (Vec::new(), started);
    for driver in drivers {
        let (driven, at) = driver.await??;
        latencies.extend(driven);
        ended = ended.max(at);
    }
    let elapsed = ended - started;
    latencies.sort_unstable();
    trigger.trip();
    task.await??;
    Ok(lag_report(&samples, elapsed, &latencies))
}

/// Every 100 ms until `until`, then until both have caught up (at most 10 s more).
async fn sample_lags(
    port: u16,
    acked: &Acked,
    started: Instant,
    until: Instant,
) -> anyhow::Result<Vec<Sample>> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let metrics = http_get(port, "/metrics").await?;
        let (published, projected) = (
            gauge(&metrics, "disputes_published_seq"),
            gauge(&metrics, "disputes_projected_seq"),
        );
        let now = Instant::now();
        let (published_us, projected_us, caught_up) = {
            let acked = acked.lock().expect("acked");
            let age = |done: u64| {
                acked.range(done + 1..).next().map_or(0, |(_, at)| {
                    now.saturating_duration_since(*at).as_micros() as u64
                })
            };
            let last = acked.keys().next_back().copied().unwrap_or(0);
            (
                age(published),
                age(projected),
                published >= last && projected >= last,
            )
        };
        samples.push(Sample {
            at: now - started,
            published_us,
            projected_us,
        });
        if now >= until && (caught_up || now > until + Duration::from_secs(10)) {
            return Ok(samples);
        }
    }
}

fn lag_report(samples: &[Sample], elapsed: Duration, latencies: &[u64]) -> Report {
    let p99 = |pick: fn(&Sample) -> u64, from: f64, to: f64| {
        let total = samples.last().map_or(0.0, |s| s.at.as_secs_f64());
        let mut lags: Vec<u64> = samples
            .iter()
            .filter(|s| (from..=to).contains(&(s.at.as_secs_f64() / total.max(1e-9))))
            .map(pick)
            .collect();
        lags.sort_unstable();
        percentile(&lags, 0.99).unwrap_or(0) as f64 / 1e6
    };
    let published = |s: &Sample| s.published_us;
    let projected = |s: &Sample| s.projected_us;
    let extra = json!({
        "samples": samples.len(),
        "published_lag_p99_secs": p99(published, 0.0, 1.0),
        "projected_lag_p99_secs": p99(projected, 0.0, 1.0),
        "published_lag_p99_secs_by_third": [p99(published, 0.0, 1.0/3.0), p99(published, 1.0/3.0, 2.0/3.0), p99(published, 2.0/3.0, 1.0)],
        "projected_lag_p99_secs_by_third": [p99(projected, 0.0, 1.0/3.0), p99(projected, 1.0/3.0, 2.0/3.0), p99(projected, 2.0/3.0, 1.0)],
    });
    let mut report = report(Measured {
        workload: "lag",
        ops: latencies.len() as u64,
        elapsed,
        sorted_latencies: latencies,
        baseline:
            "none: lag from a command's acknowledgement to its events published and projected",
        baseline_ops_per_sec: None,
        extra: Some(extra),
    });
    for (name, pick) in [
        ("published", published as fn(&Sample) -> u64),
        ("projected", projected),
    ] {
        report.goals.push(Goal::new(
            format!("{name} lag p99 (s)"),
            p99(pick, 0.0, 1.0),
            Bound::AtMost,
            1.0,
        ));
        // Not growing: the last third of the run lags no more than the first third, give or
        // take 100 ms.
        report.goals.push(Goal::new(
            format!("{name} lag p99, last third minus first third (s)"),
            p99(pick, 2.0 / 3.0, 1.0) - p99(pick, 0.0, 1.0 / 3.0),
            Bound::AtMost,
            0.1,
        ));
    }
    report
}

pub(crate) async fn queries(dir: &Path, args: &BenchArgs) -> anyhow::Result<Report> {
    let disputes = args.disputes.unwrap_or(2_000);
    let concurrency = args.concurrency.unwrap_or(16);
    let (server, url) = nats_for(args);
    // This process, and the NATS server when it is ours.
    let nats_pids: Vec<u32> = std::iter::once(0)
        .chain(server.as_ref().and_then(NatsServer::pid))
        .collect();
    let (trigger, task, client) =
        start_service(&url, &dir.join("data"), Default::default(), "").await?;
    // Disputes to read: a first run of the lifecycle.
    drive(
        &client,
        "seed",
        (disputes / 4).max(1),
        concurrency,
        |ty| format!("disputes.cmd.{ty}"),
        true,
    )
    .await?;
    let seeded = (disputes / 4).max(1);
    wait_projected(&client, seeded).await?;
    let requests = disputes * 5;
    let query = query_mix(seeded);
    // Baseline: an echo responder answering with a reply of the size of a `get`.
    let (_, get) = query(0);
    let sample = client.request("disputes.query.get", get.into()).await?;
    let (baseline, echo_cpu) = cpu_of(
        &nats_pids,
        echo_rate(&client, sample.payload.len(), requests, concurrency, {
            let query = query.clone();
            move |n| query(n).1
        }),
    )
    .await;
    let baseline = baseline?;
    // Not a goal: the same queries with no commands beside them, to tell what a query costs from
    // what the commands take of the machine.
    let ((alone_elapsed, _), alone_cpu) =
        ask_queries(&client, requests, concurrency, query.clone(), &nats_pids).await?;
    // Commands run beside the queries for the whole measurement.
    let writers = {
        let client = client.clone();
        let commands = |ty: &str| format!("disputes.cmd.{ty}");
        tokio::spawn(async move { drive(&client, "beside", disputes, 4, commands, true).await })
    };
    let asked = ask_queries(&client, requests, concurrency, query, &nats_pids).await;
    writers.abort();
    let ((elapsed, latencies), beside_cpu) = asked?;
    trigger.trip();
    task.await??;
    let mut report = report(Measured {
        workload: "queries",
        ops: requests as u64,
        elapsed,
        sorted_latencies: &latencies,
        baseline: "echo responder on the same NATS, replies of the same size",
        baseline_ops_per_sec: Some(baseline),
        extra: Some(json!({
            "alone_ops_per_sec": requests as f64 / alone_elapsed.as_secs_f64(),
            "cpu": {
                "echo": cpu_split(&echo_cpu, requests as u64),
                "alone": cpu_split(&alone_cpu, requests as u64),
                "beside_commands": cpu_split(&beside_cpu, requests as u64),
            },
        })),
    });
    report.goals.push(Goal::new(
        "queries / echo",
        report.ratio.unwrap_or(0.0),
        Bound::AtLeast,
        0.5,
    ));
    Ok(report)
}

/// [`ask`] the query mix, and the CPU it took this process and the NATS server (`pids`).
async fn ask_queries(
    client: &async_nats::Client,
    requests: usize,
    concurrency: usize,
    query: impl Fn(usize) -> (&'static str, Vec<u8>) + Send + Sync + Clone + 'static,
    pids: &[u32],
) -> anyhow::Result<((Duration, Vec<u64>), CpuSpent)> {
    let asked = ask(client, requests, concurrency, move |n| {
        let (name, body) = query(n);
        (format!("disputes.query.{name}"), body)
    });
    let (asked, cpu) = cpu_of(pids, asked).await;
    Ok((asked?, cpu))
}

/// Until the read models hold `disputes` disputes (the seeding's last events may still be on
/// their way to them).
async fn wait_projected(client: &async_nats::Client, disputes: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let reply = client.request("disputes.query.stats", "{}".into()).await?;
        let stats: Value = serde_json::from_slice(&reply.payload)?;
        if stats["stats"]["total"].as_u64().unwrap_or(0) >= disputes as u64 {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the read models did not reach {disputes} disputes: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every other request a `get` of one of the `seeded` disputes, the others a page of 10 of one
/// seller's disputes.
fn query_mix(seeded: usize) -> impl Fn(usize) -> (&'static str, Vec<u8>) + Send + Sync + Clone {
    move |n: usize| {
        let (name, body) = match n % 2 {
            0 => (
                "get",
                json!({"dispute_id": format!("d-seed-{}", n % seeded)}),
            ),
            _ => (
                "list",
                json!({"seller_id": format!("s-seed-{}", n % 97), "limit": 10}),
            ),
        };
        (name, serde_json::to_vec(&body).expect("json"))
    }
}

/// Requests per second an echo responder on the same NATS answers, with replies of `reply_len`
/// bytes, to the same requests.
async fn echo_rate(
    client: &async_nats::Client,
    reply_len: usize,
    requests: usize,
    concurrency: usize,
    body: impl Fn(usize) -> Vec<u8> + Send + Sync + Clone + 'static,
) -> anyhow::Result<f64> {
    let echo_task = echo_responder(client, reply_len).await?;
    let (elapsed, _) = ask(client, requests, concurrency, move |n| {
        ("bench.echo".to_owned(), body(n))
    })
    .await?;
    echo_task.abort();
    Ok(requests as f64 / elapsed.as_secs_f64())
}

/// `requests` requests from `concurrency` clients; each reply must be ok (or come from the echo).
async fn ask(
    client: &async_nats::Client,
    requests: usize,
    concurrency: usize,
    request: impl Fn(usize) -> (String, Vec<u8>) + Send + Sync + Clone + 'static,
) -> anyhow::Result<(Duration, Vec<u64>)> {
    fan_out(client, requests, concurrency, move |client, n| {
        let (subject, body) = request(n);
        async move {
            let check = subject.starts_with("disputes.");
            Ok(vec![
                crate::nats::request(&client, subject, body, check).await?.0,
            ])
        }
    })
    .await
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The body of a plain HTTP/1.0 GET on loopback.
async fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}

/// A gauge without labels from a Prometheus exposition (0 when absent).
fn gauge(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}
