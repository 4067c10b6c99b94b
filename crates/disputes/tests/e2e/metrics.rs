//! `/metrics` and `/healthz` over plain TCP, after a scenario whose every count is known.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::kit::nats::free_port;
use crate::kit::{Client, NatsServer, Service};
use serde_json::{json, Value};

use crate::support::Dispute;

/// `METHOD path` (the request line's first two words): the status line and the body, whose
/// length is the one the head announced.
fn http(port: u16, request_line: &str) -> (String, String) {
    let mut words = request_line.split_whitespace();
    let (method, path) = (words.next().unwrap(), words.next().unwrap());
    let response = disputes_testkit::http::request(port, method, path, "").expect("a response");
    let length: usize = response
        .header("content-length")
        .expect("content-length")
        .parse()
        .unwrap();
    assert_eq!(length, response.body.len(), "content-length is the body's");
    let status = response.head.lines().next().unwrap().to_owned();
    (status, response.body)
}

/// Every sample of a Prometheus text exposition: `name{labels}` → value.
fn scrape(port: u16) -> BTreeMap<String, f64> {
    let (status, body) = http(port, "GET /metrics HTTP/1.1");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let mut samples = BTreeMap::new();
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample is `series value`");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "{series} twice"
        );
    }
    samples
}

fn sample(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

fn commands(command_type: &str, code: &str) -> String {
    format!("disputes_commands_total{{type=\"{command_type}\",code=\"{code}\"}}")
}

fn events(reply: &Value) -> usize {
    reply["events"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn metrics_count_what_a_scenario_did() {
    let nats = NatsServer::start();
    let port = free_port();
    let config =
        format!("[http]\nlisten = \"127.0.0.1:{port}\"\n\n[policy]\nseller_response = \"2s\"\n");
    let mut service = Service::start(&nats.url(), &config);
    let client = Client::connect(&nats.url()).await;
    service.wait_ready(&client).await;

    healthz_answers_and_other_routes_do_not(port);
    let mut appended = 0;
    appended += resolve_one_by_agreement(&client).await;
    appended += leave_one_waiting_after_three_refusals(&client).await;
    appended += let_one_expire_unanswered(&client).await;

    let m = scrape_once_caught_up(port).await;
    every_appended_event_is_stored_published_and_projected(&m, appended as f64);
    every_command_is_counted_once_by_type_and_code(&m);
    disputes_are_counted_by_status_with_their_deadlines(&m);

    assert!(service.terminate(Duration::from_secs(30)).is_some());
}

/// `/healthz` is ok; an unknown path is 404, and a POST to `/metrics` is 405.
fn healthz_answers_and_other_routes_do_not(port: u16) {
    let (status, body) = http(port, "GET /healthz HTTP/1.1");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "ok\n")
    );
    let (status, _) = http(port, "GET /nothing HTTP/1.1");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _) = http(port, "POST /metrics HTTP/1.1");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
}

/// Opened and accepted; returns the number of events appended.
async fn resolve_one_by_agreement(client: &Client) -> usize {
    let agreed = Dispute::new(client);
    let mut appended = events(
        &agreed
            .open("not_received", 5000, json!({"solution": "full_refund"}))
            .await,
    );
    appended += events(&agreed.ok("accept_proposal", "seller", json!({})).await);
    appended
}

/// Waiting for the buyer (a five-day deadline), after three refusals; returns the number of
/// events appended.
async fn leave_one_waiting_after_three_refusals(client: &Client) -> usize {
    let waiting = Dispute::new(client);
    let mut appended = events(
        &waiting
            .open("not_received", 3000, json!({"solution": "full_refund"}))
            .await,
    );
    let counter = json!({"proposal": {"solution": "partial_refund", "amount": 1000}});
    appended += events(&waiting.ok("counter_propose", "seller", counter).await);
    waiting
        .refused("accept_proposal", "seller", json!({}), "invalid_state")
        .await;
    let ruling = json!({"outcome": "release_funds", "responsible_party": "buyer"});
    waiting.refused("rule", "seller", ruling, "forbidden").await;
    let reply = client
        .cmd("nonsense", waiting.body("buyer", json!({})))
        .await;
    assert_eq!(reply["error"]["code"], "unknown_command");
    appended
}

/// Left unanswered: the seller_response deadline (2 s) expires and executes the proposal.
/// Returns the number of events appended.
async fn let_one_expire_unanswered(client: &Client) -> usize {
    let expired = Dispute::new(client);
    let mut appended = events(
        &expired
            .open("not_received", 700, json!({"solution": "full_refund"}))
            .await,
    );
    let mut history = Vec::new();
    for _ in 0..150 {
        history = expired.history().await;
        if history.iter().any(|e| e["type"] == "DisputeResolved") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let by_expiry = history.iter().filter(|e| e["command_id"].is_null()).count();
    assert!(
        by_expiry >= 2,
        "DeadlineExpired and DisputeResolved: {history:#?}"
    );
    appended += by_expiry;
    appended
}

/// The samples once publishing and projecting have caught up (both lags 0), or after 10 s.
async fn scrape_once_caught_up(port: u16) -> BTreeMap<String, f64> {
    // Publishing and projecting catch up at their own pace: wait until both lags are 0.
    let mut m = scrape(port);
    for _ in 0..100 {
        if sample(&m, "disputes_publish_lag") == 0.0 && sample(&m, "disputes_projection_lag") == 0.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        m = scrape(port);
    }
    m
}

fn every_appended_event_is_stored_published_and_projected(
    m: &BTreeMap<String, f64>,
    appended: f64,
) {
    assert_eq!(sample(m, "disputes_publish_lag"), 0.0);
    assert_eq!(sample(m, "disputes_projection_lag"), 0.0);
    assert_eq!(sample(m, "disputes_events_appended_total"), appended);
    assert_eq!(sample(m, "disputes_store_seq"), appended);
    assert_eq!(sample(m, "disputes_published_seq"), appended);
    assert_eq!(sample(m, "disputes_projected_seq"), appended);
}

/// The eight commands of the scenario, accepted or refused, each counted and timed once.
fn every_command_is_counted_once_by_type_and_code(m: &BTreeMap<String, f64>) {
    assert_eq!(sample(m, &commands("open", "ok")), 3.0);
    assert_eq!(sample(m, &commands("accept_proposal", "ok")), 1.0);
    assert_eq!(sample(m, &commands("counter_propose", "ok")), 1.0);
    assert_eq!(
        sample(m, &commands("accept_proposal", "invalid_state")),
        1.0
    );
    assert_eq!(sample(m, &commands("rule", "forbidden")), 1.0);
    assert_eq!(sample(m, &commands("unknown", "unknown_command")), 1.0);
    let counted: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("disputes_commands_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(counted, 8.0, "every command counted once");
    assert_eq!(sample(m, "disputes_command_duration_seconds_count"), 8.0);
    assert_eq!(
        sample(m, "disputes_command_duration_seconds_bucket{le=\"+Inf\"}"),
        8.0
    );
    assert!(sample(m, "disputes_command_duration_seconds_sum") > 0.0);
}

/// Two resolved, one waiting for the buyer with one pending deadline, and the one deadline that
/// fired, promptly.
fn disputes_are_counted_by_status_with_their_deadlines(m: &BTreeMap<String, f64>) {
    let status = |s: &str| sample(m, &format!("disputes_disputes{{status=\"{s}\"}}"));
    assert_eq!(status("resolved"), 2.0);
    assert_eq!(status("awaiting_buyer_decision"), 1.0);
    assert_eq!(
        status("awaiting_seller_response"),
        0.0,
        "every status is shown"
    );
    assert_eq!(status("under_review"), 0.0);
    assert_eq!(sample(m, "disputes_pending_deadlines"), 1.0);

    assert_eq!(sample(m, "disputes_deadline_fire_lag_seconds_count"), 1.0);
    let lag = sample(m, "disputes_deadline_fire_lag_seconds_sum");
    assert!(
        (0.0..5.0).contains(&lag),
        "fired {lag} s after its due time"
    );
}
