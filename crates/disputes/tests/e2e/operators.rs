//! What operators and dashboards meet: the HTTP port from the first moment (starting, ready),
//! the JSON query API and its events, the console, logs, and the CLI's exit codes.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use disputes_testkit::http;
use serde_json::{json, Value};

use crate::kit::nats::free_port;
use crate::kit::service::{disputes_bin, sled_only};
use crate::kit::{Client, NatsServer, Service};
use crate::support::Dispute;

/// Polls `path` until its status is `want` (or panics after `within`): the last response.
fn wait_status(port: u16, path: &str, want: u16, within: Duration) -> http::Response {
    let started = Instant::now();
    loop {
        let response = http::get(port, path);
        match response {
            Ok(r) if r.status == want => return r,
            other if started.elapsed() > within => {
                panic!("{path} did not answer {want} within {within:?}: {other:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The service declines transparent huge pages (`disputes::huge_pages`): with them, each first
/// touch of a 2 MiB region of the allocator's arenas was faulted in and zeroed whole.
#[tokio::test]
async fn the_service_runs_without_transparent_huge_pages() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats.url(), "");
    service
        .wait_ready(&Client::connect(&nats.url()).await)
        .await;
    let pid = service.pid().expect("the service runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l == "THP_enabled:\t0"),
        "the service allows transparent huge pages:\n{status}"
    );
}

fn healthcheck(port: u16) -> (i32, String) {
    let out = Command::new(disputes_bin())
        .args(["healthcheck", "--addr", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn the_http_port_says_starting_until_nats_is_back_and_ready_once_serving() {
    let mut nats = NatsServer::start();
    nats.kill();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("disputes.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "[nats]\nurl = {:?}\n\n[store]\npath = {:?}\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n",
            nats.url(),
            data.display().to_string()
        ),
    )
    .unwrap();
    let mut child = serve_with_json_logs(&config);

    // NATS is down: the port answers at once, not ready, and says why (first, briefly, that the
    // data dir is opening; then that NATS is awaited, for as long as it is down).
    let started = Instant::now();
    let starting = loop {
        let starting = wait_status(port, "/readyz", 503, Duration::from_secs(10));
        if !starting.body.starts_with("starting: opening the data dir")
            || started.elapsed() > Duration::from_secs(10)
        {
            break starting;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        starting.body.starts_with("starting: connecting to NATS"),
        "{starting:?}"
    );
    assert_eq!(http::get(port, "/healthz").unwrap().status, 503);
    let metrics = http::get(port, "/metrics").unwrap();
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("\ndisputes_ready 0\n"),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains("disputes_build_info{version=\""),
        "{}",
        metrics.body
    );
    let head = http::request(port, "HEAD", "/metrics", "").unwrap();
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    let query = http::get(port, "/api/v1/query/stats").unwrap();
    assert_eq!(query.status, 503, "{query:?}");
    let (code, said) = healthcheck(port);
    assert_eq!(code, 1, "{said}");

    // NATS back: the service finishes starting by itself.
    std::thread::sleep(Duration::from_secs(1));
    nats.restart();
    wait_status(port, "/readyz", 200, Duration::from_secs(30));
    assert_eq!(healthcheck(port).0, 0);
    let info: Value = serde_json::from_str(&http::get(port, "/api/v1/info").unwrap().body).unwrap();
    assert_eq!(info["ready"], true, "{info}");
    assert_eq!(
        info["commit"].as_str().map(str::is_empty),
        Some(false),
        "{info}"
    );

    // SIGTERM: a clean stop.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    every_line_is_json_and_each_nats_problem_names_the_server(child, &nats.url());
}

fn serve_with_json_logs(config: &std::path::Path) -> std::process::Child {
    let child = Command::new(disputes_bin())
        .args(["--log-format", "json", "serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    disputes_testkit::reaper::track(child.id());
    child
}

fn every_line_is_json_and_each_nats_problem_names_the_server(
    mut child: std::process::Child,
    url: &str,
) {
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let problems: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "nats connection problem")
        .collect();
    // The client's own copy of each event is not logged beside ours.
    assert!(
        !log.contains("client error"),
        "each problem is logged once: {log}"
    );
    assert!(!problems.is_empty(), "{log}");
    for problem in problems {
        assert_eq!(problem["server"], url, "{problem}");
    }
}

#[tokio::test]
async fn a_stop_while_nats_is_unreachable_is_obeyed_at_once() {
    let mut nats = NatsServer::start();
    nats.kill();
    let mut service = Service::start(&nats.url(), "");
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let status = service.terminate(Duration::from_secs(10)).expect("stopped");
    assert_eq!(status.code(), Some(0), "{}", service.log());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !service.log().contains('\u{1b}'),
        "no ANSI colours in a file: {}",
        service.log()
    );
}

/// The service with an `[http]` port, ready, and a client on its NATS.
pub(crate) async fn serving() -> (NatsServer, Service, Client, u16) {
    let nats = NatsServer::start();
    let port = free_port();
    let mut service = Service::start(
        &nats.url(),
        &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let client = Client::connect(&nats.url()).await;
    service.wait_ready(&client).await;
    (nats, service, client, port)
}

fn http_json(port: u16, path: &str) -> (u16, Value) {
    let r = http::get(port, path).unwrap();
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    (r.status, serde_json::from_str(&r.body).unwrap())
}

#[tokio::test]
async fn the_http_query_api_answers_exactly_as_the_nats_queries_do() {
    let (_nats, _service, client, port) = serving().await;
    let d = Dispute::new(&client);
    let opened = d
        .open("not_received", 12_999, json!({"solution": "full_refund"}))
        .await;
    let seq = opened["seq"].as_u64().unwrap();
    every_query_answers_as_over_nats(&client, port, &d, seq).await;
    refusals_are_the_same_with_a_status_per_code(&client, port).await;
    queries_are_counted(port);
}

async fn every_query_answers_as_over_nats(client: &Client, port: u16, d: &Dispute, seq: u64) {
    let id = d.id.clone();
    let (status, over_http) = http_json(
        port,
        &format!("/api/v1/query/get?dispute_id={id}&min_seq={seq}"),
    );
    assert_eq!(status, 200);
    assert_eq!(
        over_http,
        client.query("get", json!({"dispute_id": id})).await
    );
    let list = format!("seller_id={}&limit=5", d.seller);
    let (status, over_http) = http_json(port, &format!("/api/v1/query/list?{list}"));
    assert_eq!(status, 200);
    let over_nats = client
        .query("list", json!({"seller_id": d.seller, "limit": 5}))
        .await;
    assert_eq!(over_http, over_nats);
    let (_, over_http) = http_json(
        port,
        &format!("/api/v1/query/history?dispute_id={id}&after=0"),
    );
    assert_eq!(
        over_http,
        client
            .query("history", json!({"dispute_id": id, "after": 0}))
            .await
    );
    for name in ["deadlines", "stats"] {
        let (status, over_http) = http_json(port, &format!("/api/v1/query/{name}"));
        assert_eq!(
            (status, over_http),
            (200, client.query(name, json!({})).await)
        );
    }
    let post = http::request(
        port,
        "POST",
        "/api/v1/query/get",
        &json!({"dispute_id": id}).to_string(),
    )
    .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&post.body).unwrap()["dispute"]["dispute_id"],
        id.as_str()
    );
}

async fn refusals_are_the_same_with_a_status_per_code(client: &Client, port: u16) {
    // The same refusals, with an HTTP status for each code.
    for (path, nats_query, status, code) in [
        (
            "get?dispute_id=d-none",
            json!({"dispute_id": "d-none"}),
            404,
            "not_found",
        ),
        ("list?limit=0", json!({"limit": 0}), 400, "invalid_value"),
        (
            "list?limit=ten",
            json!({"limit": "ten"}),
            400,
            "invalid_request",
        ),
        (
            "get?dispute_id=a&colour=red",
            json!({"dispute_id": "a", "colour": "red"}),
            400,
            "invalid_request",
        ),
        (
            "get?dispute_id=a&min_seq=999999",
            json!({"dispute_id": "a", "min_seq": 999_999}),
            504,
            "timeout",
        ),
    ] {
        let (got, over_http) = http_json(port, &format!("/api/v1/query/{path}"));
        let name = path.split('?').next().unwrap();
        assert_eq!(
            (got, &over_http["error"]["code"]),
            (status, &json!(code)),
            "{path}: {over_http}"
        );
        assert_eq!(over_http, client.query(name, nats_query).await, "{path}");
    }
    let (status, twice) = http_json(port, "/api/v1/query/get?dispute_id=a&dispute_id=b");
    assert_eq!(
        (status, &twice["error"]["code"]),
        (400, &json!("invalid_request"))
    );
    let (status, unknown) = http_json(port, "/api/v1/query/everything");
    assert_eq!(
        (status, &unknown["error"]["code"]),
        (404, &json!("unknown_command"))
    );
}

fn queries_are_counted(port: u16) {
    let metrics = http::get(port, "/metrics").unwrap().body;
    assert!(
        metrics.contains("disputes_queries_total{query=\"get\",code=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("disputes_queries_total{query=\"unknown\",code=\"unknown_command\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("disputes_http_requests_total{route=\"/api/v1/query\",status=\"200\"}"),
        "{metrics}"
    );
    the_shipped_metric_names_are_exactly_the_exported_ones(&metrics);
}

/// `deploy/prometheus/metric-names.txt`, which the shipped alert rules and dashboard are checked
/// against (`tools/check-observability.sh`), names every series the service exports and no other
/// (but Prometheus's own `up`).
fn the_shipped_metric_names_are_exactly_the_exported_ones(metrics: &str) {
    let file = disputes_testkit::workspace_root().join("deploy/prometheus/metric-names.txt");
    let shipped: std::collections::BTreeSet<String> = std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter(|name| !name.is_empty() && *name != "up")
        .map(str::to_owned)
        .collect();
    let exported: std::collections::BTreeSet<String> = metrics
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap().to_owned())
        .collect();
    assert_eq!(shipped, exported);
}

#[tokio::test]
async fn the_console_is_served_and_its_chain_check_accepts_real_history_and_catches_a_change() {
    let (_nats, _service, client, port) = serving().await;
    let d = Dispute::new(&client);
    d.open("not_received", 12_999, json!({"solution": "full_refund"}))
        .await;
    d.ok("accept_proposal", "seller", json!({})).await;

    let page = http::get(port, "/console/").unwrap();
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html"),
        "{page:?}"
    );
    assert!(page.body.contains("console.js"), "{}", page.body);
    for asset in ["console.js", "chain.js", "console.css"] {
        assert_eq!(
            http::get(port, &format!("/console/{asset}"))
                .unwrap()
                .status,
            200,
            "{asset}"
        );
    }
    let root = http::get(port, "/").unwrap();
    assert_eq!(
        (root.status, root.header("location")),
        (303, Some("/console/"))
    );

    // The page's own hash check (chain.js, run by node) on the history the API returns.
    let (_, history) = http_json(port, &format!("/api/v1/query/history?dispute_id={}", d.id));
    let events = history["events"].clone();
    assert!(events.as_array().unwrap().len() >= 3, "{history}");
    let (ok, said) = check_chain(&events);
    assert!(ok, "{said}");
    let mut changed = events.clone();
    changed[1]["data"]["by"] = json!("buyer");
    let (ok, said) = check_chain(&changed);
    assert!(!ok, "a changed event must not verify: {said}");
}

/// Runs the console's `check-chain.mjs` (node) on `events`: whether every check passed, and its report.
fn check_chain(events: &Value) -> (bool, String) {
    let script = disputes_testkit::workspace_root().join("crates/disputes/console/check-chain.mjs");
    let mut node = Command::new("node")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (tools/install.sh installs it) runs the console's chain check");
    node.stdin
        .take()
        .unwrap()
        .write_all(events.to_string().as_bytes())
        .unwrap();
    let out = node.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[tokio::test]
async fn the_events_endpoint_tells_a_page_each_time_the_read_models_advance() {
    let (_nats, _service, client, port) = serving().await;
    let socket = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(&socket, "GET /api/v1/events HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut lines = BufReader::new(socket).lines().map(Result::unwrap);
    let mut next_seq = || {
        lines
            .by_ref()
            .find_map(|line| line.strip_prefix("data: ")?.parse::<Value>().ok())
            .expect("a projected event")["seq"]
            .as_u64()
            .unwrap()
    };
    let first = next_seq();
    let d = Dispute::new(&client);
    let seq = d
        .open("not_received", 12_999, json!({"solution": "full_refund"}))
        .await["seq"]
        .as_u64()
        .unwrap();
    assert!(seq > first);
    let mut seen = next_seq();
    while seen < seq {
        seen = next_seq();
    }
    assert_eq!(seen, seq);
}

#[test]
fn exit_codes_tell_a_typo_from_a_broken_history_and_a_closed_pipe_is_quiet() {
    let run = |args: &[&str]| {
        Command::new(disputes_bin())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    assert_eq!(run(&["audit", "verfy"]).status.code(), Some(2));
    let rebuild = run(&["audit", "rebuild", "--nats-url", "nats://127.0.0.1:1"]);
    assert_eq!(rebuild.status.code(), Some(2), "rebuild reads no stream");
    let help = String::from_utf8(run(&["audit", "rebuild", "--help"]).stdout).unwrap();
    assert!(
        help.contains("--data-dir") && !help.contains("--nats-url"),
        "{help}"
    );
    let version = String::from_utf8(run(&["--version"]).stdout).unwrap();
    assert!(version.contains("commit"), "{version}");

    // `audit export | head -1`: the reader closes the pipe early; the exporter stops, quietly.
    let dir = tempfile::tempdir().unwrap();
    drop(disputes_testkit::workload::fill(
        &dir.path().join("events"),
        2_000,
        2,
    ));
    let mut export = Command::new(disputes_bin())
        .args(["audit", "export", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(export.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("{\"event_id\""), "{first}");
    let out = export.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[tokio::test]
async fn readiness_is_503_while_the_read_models_catch_up_then_200() {
    // The log is filled in the data dir's sled files directly.
    if sled_only("a log filled on disk before the start") {
        return;
    }
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    // A log of some 90,000 events and no read models: the start catches them up from the log.
    drop(disputes_testkit::workload::fill(
        &dir.path().join("data/events"),
        10_000,
        2,
    ));
    let port = free_port();
    let listen = format!("[http]\nlisten = \"127.0.0.1:{port}\"\n");
    let service = Service::start_on(dir.path(), &nats.url(), &listen);
    let started = Instant::now();
    let mut steps = Vec::new();
    // Until the process has bound its port, nothing listens; from then on every probe is answered.
    let mut bound = false;
    loop {
        let response = match http::get(port, "/readyz") {
            Ok(response) => response,
            Err(e) if !bound => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(e) => panic!("refused after answering once: {e}"),
        };
        bound = true;
        if response.status == 200 {
            break;
        }
        assert_eq!(response.status, 503, "{response:?}");
        if steps.last() != Some(&response.body) {
            steps.push(response.body);
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not ready: {steps:?}\n{}",
            service.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        steps.contains(&"starting: catching up the read models\n".to_owned()),
        "{steps:?}"
    );
    let client = Client::connect(&nats.url()).await;
    let stats = client.query("stats", json!({})).await;
    assert_eq!(stats["stats"]["total"], 10_000, "{stats}");
}

#[tokio::test]
async fn the_service_logs_in_to_nats_with_the_password_from_password_file() {
    let nats = NatsServer::start_with_config(
        "listen: \"127.0.0.1:{{port}}\"\n\
         jetstream { store_dir: \"{{store_dir}}\", sync_interval: always }\n\
         authorization { user: disputes, password: \"from-a-file\" }\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nats-password");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let keys = format!("user = \"disputes\"\npassword_file = {file:?}");
    let mut service = Service::start_with_nats(&nats.url(), &keys, "");
    let options =
        async_nats::ConnectOptions::with_user_and_password("disputes".into(), "from-a-file".into());
    let client = Client::connect_with(&nats.url(), options).await;
    service.wait_ready(&client).await;
    let stats = client.query("stats", json!({})).await;
    assert_eq!(stats["ok"], true, "{stats}");
}
