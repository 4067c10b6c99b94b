//! `disputes audit` as an auditor runs it: the real binary, on a stopped service's data dir (or a
//! tampered copy of it) and on the `DISPUTE_EVENTS` stream alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::kit::service::{disputes_bin, local_log, sled_only};
use crate::kit::{Client, NatsServer, Service};
use chrono::{DateTime, TimeDelta, Utc};
use disputes_store::layout::{
    decode_events, seq_key, set_stored_event, stored_event, EVENTS_TREE, EVENT_SCHEMA_V1,
};
use disputes_store::{compute_hash, Envelope};
use serde_json::{json, Value};

use crate::support::{unique, Dispute};

/// The expiry path needs one short deadline; every other deadline stays days away.
const POLICY: &str = "[policy]\nbuyer_evidence = \"2s\"\n";

/// What `disputes audit …` did.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn ok(self, what: &str) -> Run {
        assert_eq!(
            self.code, 0,
            "{what}: exit {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// Runs `disputes audit <args>` (no config from the environment) and waits for it.
pub(crate) fn audit(args: &[&str]) -> Run {
    let output = Command::new(disputes_bin())
        .arg("audit")
        .args(args)
        .env_remove("DISPUTES_CONFIG")
        .env_remove("DISPUTES_NATS_URL")
        .env_remove("DISPUTES_DATA_DIR")
        .env_remove("NATS_URL")
        .env_remove("NATS_CONTEXT")
        .env_remove("NATS_CREDS")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run disputes audit");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

/// `audit <command…> --data-dir <dir>`. One at a time: sled lets one process open a data dir, and
/// the tests share one.
pub(crate) fn on_dir(dir: &Path, command: &[&str]) -> Run {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = path_arg(dir);
    let mut args = command.to_vec();
    args.extend(["--data-dir", &dir]);
    audit(&args)
}

/// `audit <command…> --nats-url <url>`, through a consumer of its own (tests run side by side).
pub(crate) fn on_stream(url: &str, command: &[&str]) -> Run {
    let consumer = unique("audit");
    let mut args = command.to_vec();
    args.extend(["--nats-url", url, "--consumer", &consumer]);
    audit(&args)
}

pub(crate) fn ndjson(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("{value} is not RFC 3339"))
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A dispute whose every step was timed: the status after each step, from the instant it happened.
struct Timeline {
    id: String,
    /// (occurred_at of the step's events, status after it), in order.
    steps: Vec<(DateTime<Utc>, String)>,
}

/// Sends a command that must be accepted, and records when it happened and the status after it.
async fn step(d: &Dispute, timeline: &mut Timeline, command: &str, role: &str, data: Value) {
    tokio::time::sleep(Duration::from_millis(15)).await; // steps at distinct milliseconds
    let reply = d.ok(command, role, data).await;
    let at = time(&reply["events"][0]["occurred_at"]);
    timeline
        .steps
        .push((at, reply["status"].as_str().unwrap().to_owned()));
}

/// What `run_paths` made.
struct Paths {
    /// The timed dispute: an escalation to a ruling.
    timeline: Timeline,
    /// The dispute whose buyer_evidence deadline expired.
    expired: String,
    all: Vec<Dispute>,
}

/// Several disputes through several paths, one left open, one refusal, one expiry.
async fn run_paths(client: &Client) -> Paths {
    let agreed = agree_on_a_full_refund(client).await;
    let (ruled, timeline) = escalate_to_a_timed_ruling(client).await;
    let returned = return_the_item_for_a_refund(client).await;
    let withdrawn = withdraw_once_it_arrived(client).await;
    let open = leave_open_after_a_refused_ruling(client).await;
    let expired = let_the_buyer_evidence_deadline_expire(client).await;
    Paths {
        timeline,
        expired: expired.id.clone(),
        all: vec![agreed, ruled, returned, withdrawn, open, expired],
    }
}

/// The seller accepts the buyer's full refund.
async fn agree_on_a_full_refund(client: &Client) -> Dispute {
    let agreed = Dispute::new(client);
    agreed
        .open("not_received", 12999, json!({"solution": "full_refund"}))
        .await;
    agreed.ok("accept_proposal", "seller", json!({})).await;
    agreed
}

/// A counter-proposal, its rejection, the shipping proof and a ruling, each step timed.
async fn escalate_to_a_timed_ruling(client: &Client) -> (Dispute, Timeline) {
    let ruled = Dispute::new(client);
    let mut timeline = Timeline {
        id: ruled.id.clone(),
        steps: Vec::new(),
    };
    let open = json!({"order_id": ruled.order, "seller_id": ruled.seller, "reason": "not_received",
        "order_amount": {"amount": 4000, "currency": "USD"}, "proposal": {"solution": "full_refund"}});
    step(&ruled, &mut timeline, "open", "buyer", open).await;
    let counter = json!({"proposal": {"solution": "partial_refund", "amount": 100}});
    step(&ruled, &mut timeline, "counter_propose", "seller", counter).await;
    step(&ruled, &mut timeline, "reject_proposal", "buyer", json!({})).await;
    let proof = json!({"carrier": "DHL", "tracking_number": "JD0001"});
    step(
        &ruled,
        &mut timeline,
        "submit_shipping_proof",
        "seller",
        proof,
    )
    .await;
    let ruling =
        json!({"outcome": "partial_refund", "amount": 1500, "responsible_party": "logistics"});
    step(&ruled, &mut timeline, "rule", "mediator", ruling).await;
    (ruled, timeline)
}

/// An agreed return: address, tracking, and the seller confirms receipt.
async fn return_the_item_for_a_refund(client: &Client) -> Dispute {
    let returned = Dispute::new(client);
    returned
        .open(
            "not_as_described",
            8000,
            json!({"solution": "return_and_refund"}),
        )
        .await;
    returned.ok("accept_proposal", "seller", json!({})).await;
    let address = json!({"address": "1 Return St"});
    returned
        .ok("provide_return_address", "seller", address)
        .await;
    let tracking = json!({"carrier": "UPS", "tracking_number": "1Z"});
    returned
        .ok("provide_return_tracking", "buyer", tracking)
        .await;
    returned
        .ok("confirm_return_received", "seller", json!({}))
        .await;
    returned
}

/// The buyer withdraws: the order arrived.
async fn withdraw_once_it_arrived(client: &Client) -> Dispute {
    let withdrawn = Dispute::new(client);
    withdrawn
        .open("not_received", 700, json!({"solution": "full_refund"}))
        .await;
    withdrawn
        .ok("withdraw", "buyer", json!({"reason": "arrived"}))
        .await;
    withdrawn
}

/// Left open with a message, after the seller is refused a ruling.
async fn leave_open_after_a_refused_ruling(client: &Client) -> Dispute {
    let open = Dispute::new(client);
    open.open(
        "not_received",
        2500,
        json!({"solution": "partial_refund", "amount": 1000}),
    )
    .await;
    open.ok(
        "post_message",
        "seller",
        json!({"text": "shipped on Monday"}),
    )
    .await;
    open.refused(
        "rule",
        "seller",
        json!({"outcome": "release_funds", "responsible_party": "buyer"}),
        "forbidden",
    )
    .await;
    open
}

/// Escalated without evidence: the short buyer_evidence deadline expires and resolves it.
async fn let_the_buyer_evidence_deadline_expire(client: &Client) -> Dispute {
    let expired = Dispute::new(client);
    expired
        .open("not_as_described", 900, json!({"solution": "full_refund"}))
        .await;
    let counter = json!({"proposal": {"solution": "partial_refund", "amount": 300}});
    expired.ok("counter_propose", "seller", counter).await;
    expired.ok("reject_proposal", "buyer", json!({})).await;
    for _ in 0..200 {
        if expired.types().await.iter().any(|t| t == "DisputeResolved") {
            return expired;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the buyer_evidence deadline of {} never expired",
        expired.id
    );
}

/// A history made by a real service that was then stopped with SIGTERM; its NATS still runs.
struct Stopped {
    nats: NatsServer,
    service: Service,
    timeline: Timeline,
    expired: String,
    /// `audit export` of the data dir.
    export: Vec<Value>,
}

impl Stopped {
    fn data_dir(&self) -> &Path {
        self.service.data_dir()
    }

    /// The envelope at `seq`.
    fn event(&self, seq: u64) -> &Value {
        &self.export[seq as usize - 1]
    }

    /// The seq of the first event of `event_type` that `pick` accepts.
    fn seq_of(&self, event_type: &str, pick: impl Fn(&Value) -> bool) -> u64 {
        self.export
            .iter()
            .find(|e| e["type"] == event_type && pick(e))
            .and_then(|e| e["seq"].as_u64())
            .unwrap_or_else(|| panic!("no {event_type} in the history"))
    }

    fn of(&self, dispute_id: &str) -> Vec<Value> {
        self.export
            .iter()
            .filter(|e| e["dispute_id"] == dispute_id)
            .cloned()
            .collect()
    }
}

fn stopped() -> &'static Stopped {
    static STOPPED: OnceLock<Stopped> = OnceLock::new();
    STOPPED.get_or_init(|| {
        let nats = NatsServer::start();
        let mut service = Service::start(&nats.url(), POLICY);
        let url = nats.url();
        let (mut service, timeline, expired) = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = Client::connect(&url).await;
                service.wait_ready(&client).await;
                let paths = run_paths(&client).await;
                (service, paths.timeline, paths.expired)
            })
        })
        .join()
        .expect("the scenario runs");
        let status = service
            .terminate(Duration::from_secs(30))
            .expect("the service stops on SIGTERM");
        assert!(status.success(), "stopped with {status}: {}", service.log());
        let export = ndjson(&on_dir(service.data_dir(), &["export"]).ok("export").stdout);
        Stopped {
            nats,
            service,
            timeline,
            expired,
            export,
        }
    })
}

#[test]
fn verify_passes_on_a_real_history_from_the_data_dir_and_from_the_stream() {
    let s = stopped();
    let events = s.export.len();
    assert!(
        events > 30,
        "several disputes, several paths: {events} events"
    );
    let summary = format!("ok: {events} events, 6 disputes, 5 resolved; chain intact; head hash ");
    let head_hash = s.export.last().unwrap()["hash"].as_str().unwrap();

    let run = on_dir(s.data_dir(), &["verify"]).ok("verify the data dir");
    assert_eq!(run.stdout, format!("{summary}{head_hash}\n"));
    let run = on_stream(&s.nats.url(), &["verify"]).ok("verify the stream");
    assert_eq!(run.stdout, format!("{summary}{head_hash}\n"));

    let run = on_dir(s.data_dir(), &["verify", "--json"]).ok("verify --json");
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        report,
        json!({"ok": true, "events": events, "disputes": 6, "resolved": 5,
               "head_hash": head_hash, "first_break": null})
    );
}

#[test]
fn export_of_the_data_dir_equals_the_events_read_back_from_jetstream() {
    let s = stopped();
    let store = on_dir(s.data_dir(), &["export"]).ok("export the data dir");
    let stream = on_stream(&s.nats.url(), &["export"]).ok("export the stream");
    let (store, stream): (Vec<&str>, Vec<&str>) = (
        store.stdout.lines().collect(),
        stream.stdout.lines().collect(),
    );
    assert_eq!(store.len(), s.export.len());
    assert_eq!(store.len(), stream.len(), "as many events on both");
    for (n, (a, b)) in store.iter().zip(&stream).enumerate() {
        assert_eq!(a, b, "line {}", n + 1);
    }
    for (n, e) in s.export.iter().enumerate() {
        assert_eq!(e["seq"], json!(n + 1), "in seq order, from 1, without gaps");
    }

    let tail = on_dir(s.data_dir(), &["export", "--from-seq", "10"]).ok("export --from-seq");
    assert_eq!(tail.stdout.lines().collect::<Vec<_>>(), store[9..]);
    let tail = on_stream(&s.nats.url(), &["export", "--from-seq", "10"]).ok("--from-seq");
    assert_eq!(tail.stdout.lines().collect::<Vec<_>>(), stream[9..]);
}

#[test]
fn history_is_a_table_or_json_from_the_data_dir_and_from_the_stream() {
    let s = stopped();
    let id = s.timeline.id.as_str();
    let events = s.of(id);

    let json_dir: Value = serde_json::from_str(
        &on_dir(s.data_dir(), &["history", id, "--json"])
            .ok("--json")
            .stdout,
    )
    .unwrap();
    assert_eq!(
        json_dir,
        Value::Array(events.clone()),
        "the dispute's envelopes"
    );
    let json_stream: Value = serde_json::from_str(
        &on_stream(&s.nats.url(), &["history", id, "--json"])
            .ok("--json")
            .stdout,
    )
    .unwrap();
    assert_eq!(json_stream, json_dir);

    let table = on_dir(s.data_dir(), &["history", id])
        .ok("history table")
        .stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines.len(),
        events.len() + 1,
        "a header and a row per event:\n{table}"
    );
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["seq", "ver", "occurred_at", "type", "actor", "data"]
    );
    for (line, e) in lines[1..].iter().zip(&events) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        let actor = format!(
            "{}:{}",
            e["actor"]["role"].as_str().unwrap(),
            e["actor"]["id"].as_str().unwrap()
        );
        assert_eq!(cells[0], e["seq"].to_string(), "{line}");
        assert_eq!(cells[1], e["version"].to_string(), "{line}");
        assert_eq!(cells[2], e["occurred_at"].as_str().unwrap(), "{line}");
        assert_eq!(cells[3], e["type"].as_str().unwrap(), "{line}");
        assert_eq!(cells[4], actor, "{line}");
        assert!(line.ends_with(&e["data"].to_string()), "{line}");
    }
    let table_stream = on_stream(&s.nats.url(), &["history", id])
        .ok("history table")
        .stdout;
    assert_eq!(table_stream, table);

    let run = on_dir(s.data_dir(), &["history", "d-nobody"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("no events for dispute d-nobody"),
        "{}",
        run.stderr
    );
}

/// `state <id> --at <t>` on both sources; the view's status.
fn status_at(s: &Stopped, id: &str, at: DateTime<Utc>) -> Vec<Result<Value, String>> {
    let at = rfc3339(at);
    let command = ["state", id, "--at", &at];
    [
        on_dir(s.data_dir(), &command),
        on_stream(&s.nats.url(), &command),
    ]
    .into_iter()
    .map(|run| match run.code {
        0 => Ok(serde_json::from_str::<Value>(&run.stdout).expect("a view")),
        _ => Err(run.stderr),
    })
    .collect()
}

#[test]
fn state_at_gives_each_intermediate_status_at_the_instant_it_began() {
    let s = stopped();
    let t = &s.timeline;
    let ms = TimeDelta::milliseconds(1);
    let (opened_at, _) = t.steps[0];
    for answer in status_at(s, &t.id, opened_at - ms) {
        let why = answer.expect_err("no dispute before it was opened");
        assert!(why.contains("did not exist at"), "{why}");
    }
    let statuses: Vec<&str> = t.steps.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "awaiting_seller_response",
            "awaiting_buyer_decision",
            "awaiting_shipping_proof",
            "under_review",
            "resolved"
        ]
    );
    for (n, (at, status)) in t.steps.iter().enumerate() {
        let next = t.steps.get(n + 1).map(|(next, _)| *next);
        let mut instants = vec![*at];
        if let Some(next) = next {
            instants.push(*at + (next - *at) / 2);
            instants.push(next - ms);
        }
        for instant in instants {
            for answer in status_at(s, &t.id, instant) {
                let view = answer.unwrap_or_else(|e| panic!("state at {instant}: {e}"));
                assert_eq!(view["status"], json!(status), "at {instant}: {view}");
                assert_eq!(view["updated_at"], json!(rfc3339(*at)), "{view}");
                assert_eq!(view["opened_at"], json!(rfc3339(opened_at)), "{view}");
            }
        }
    }
    let under_review = &status_at(s, &t.id, t.steps[3].0)[0]
        .as_ref()
        .unwrap()
        .clone();
    assert_eq!(under_review["stage"], "escalated");
    assert_eq!(under_review["deadline"], Value::Null);
    assert_eq!(
        under_review["actions"]["mediator"],
        json!(["rule", "post_message"])
    );
    let resolved = status_at(s, &t.id, t.steps[4].0)[0].clone().unwrap();
    assert_eq!(resolved["resolution"]["refund_amount"], 1500);
    assert_eq!(resolved["resolution"]["release_amount"], 2500);
}

#[test]
fn state_at_shows_a_deadline_expiry_at_the_instant_the_scheduler_applied_it() {
    let s = stopped();
    let history = s.of(&s.expired);
    let expiry = history
        .iter()
        .find(|e| e["type"] == "DeadlineExpired")
        .expect("expired");
    assert_eq!(expiry["command_id"], Value::Null);
    assert_eq!(
        expiry["actor"],
        json!({"role": "system", "id": "scheduler"})
    );
    let stamp = expiry["occurred_at"].as_str().unwrap();
    let fraction = stamp
        .split_once('.')
        .map_or("", |(_, f)| f.trim_end_matches('Z'));
    assert!(
        fraction.len() <= 3,
        "milliseconds, as every stored time: {stamp}"
    );
    let at = time(&expiry["occurred_at"]);
    let due_at = time(&expiry["data"]["due_at"]);
    for answer in status_at(s, &s.expired, at - TimeDelta::milliseconds(1)) {
        let view = answer.unwrap();
        assert_eq!(view["status"], "awaiting_buyer_evidence", "{view}");
        assert_eq!(view["deadline"]["due_at"], json!(rfc3339(due_at)));
        assert_eq!(
            view["actions"]["buyer"],
            json!(["post_message"]),
            "past its due time, before the expiry: only messages"
        );
    }
    for answer in status_at(s, &s.expired, due_at - TimeDelta::milliseconds(1)) {
        let view = answer.unwrap();
        assert_eq!(
            view["actions"]["buyer"],
            json!(["submit_evidence", "withdraw", "post_message"]),
            "{view}"
        );
    }
    for answer in status_at(s, &s.expired, at) {
        let view = answer.unwrap();
        assert_eq!(view["status"], "resolved", "{view}");
        assert_eq!(view["resolution"]["basis"], "buyer_evidence_timeout");
    }
}

// ---------------------------------------------------------------------------------------------
// Tampered copies: each kind of break, found at its seq.
// ---------------------------------------------------------------------------------------------

/// A copy of the stopped service's data dir, its event log opened with sled directly.
struct Tampered {
    _dir: tempfile::TempDir,
    data: PathBuf,
    events: sled::Tree,
    _db: sled::Db,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Sorted keys at every level, no whitespace: the stored form (`docs/store.md`).
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, Value> =
                map.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

impl Tampered {
    fn copy(s: &Stopped) -> Tampered {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        copy_dir(s.data_dir(), &data);
        let db = sled::open(local_log(&data)).expect("open the copy with sled");
        Tampered {
            _dir: dir,
            data,
            events: db.open_tree(EVENTS_TREE).unwrap(),
            _db: db,
        }
    }

    fn head(&self) -> u64 {
        let (key, bytes) = self.events.last().unwrap().expect("events");
        let count = decode_events(&bytes).expect("a value of ours").len() as u64;
        u64::from_be_bytes(key.as_ref().try_into().unwrap()) + count - 1
    }

    fn get(&self, seq: u64) -> Envelope {
        let bytes = stored_event(&self.events, seq).expect("an event");
        assert_eq!(bytes[0], EVENT_SCHEMA_V1);
        serde_json::from_slice(&bytes[1..]).unwrap()
    }

    /// Writes `envelope` under its seq, as it is (hash included).
    fn put(&self, envelope: &Envelope) {
        let json = canonical(&serde_json::to_value(envelope).unwrap());
        let mut bytes = vec![EVENT_SCHEMA_V1];
        bytes.extend(serde_json::to_vec(&json).unwrap());
        if envelope.seq > self.head() {
            self.events.insert(seq_key(envelope.seq), bytes).unwrap();
        } else {
            set_stored_event(&self.events, envelope.seq, Some(bytes));
        }
    }

    /// Changes the event at `seq` and writes it back; its hash stays as it was.
    fn change(&self, seq: u64, edit: impl FnOnce(&mut Envelope)) {
        let mut envelope = self.get(seq);
        edit(&mut envelope);
        self.put(&envelope);
    }

    /// Changes the event at `seq`, then recomputes its hash and every later link and hash, as a
    /// forger would: the chain is whole again, only the invariants can tell.
    fn forge(&self, seq: u64, edit: impl FnOnce(&mut Envelope)) {
        self.change(seq, edit);
        self.rechain(seq);
    }

    fn rechain(&self, from_seq: u64) {
        let mut prev_hash = match from_seq {
            1 => disputes_store::GENESIS_PREV_HASH.to_owned(),
            n => self.get(n - 1).hash,
        };
        for seq in from_seq..=self.head() {
            let mut envelope = self.get(seq);
            envelope.prev_hash = prev_hash;
            envelope.hash = compute_hash(&envelope.prev_hash, &envelope);
            prev_hash = envelope.hash.clone();
            self.put(&envelope);
        }
    }

    /// Appends a well-chained event after the head: `like` moved to the end, as the next event of
    /// its dispute.
    fn append(&self, like: u64, edit: impl FnOnce(&mut Envelope)) -> u64 {
        let head = self.get(self.head());
        let mut envelope = self.get(like);
        let last_version = (1..=head.seq)
            .map(|seq| self.get(seq))
            .filter(|e| e.dispute_id == envelope.dispute_id)
            .map(|e| e.version)
            .max()
            .unwrap();
        envelope.seq = head.seq + 1;
        envelope.version = last_version + 1;
        envelope.event_id = unique("forged");
        edit(&mut envelope);
        envelope.prev_hash = head.hash;
        envelope.hash = compute_hash(&envelope.prev_hash, &envelope);
        self.put(&envelope);
        envelope.seq
    }

    /// Closes sled (another process may then open the copy) and runs `verify` on the copy.
    fn verify(self) -> (Run, Value, Closed) {
        self._db.flush().unwrap();
        let closed = Closed {
            _dir: self._dir,
            data: self.data,
        };
        drop((self.events, self._db));
        let run = on_dir(&closed.data, &["verify"]);
        let report = on_dir(&closed.data, &["verify", "--json"]);
        assert_eq!(report.code, run.code);
        (run, serde_json::from_str(&report.stdout).unwrap(), closed)
    }
}

/// A tampered copy, closed.
struct Closed {
    _dir: tempfile::TempDir,
    data: PathBuf,
}

/// `verify` exits 2, names `seq` and a reason containing `why`, and counts `verified` good events.
fn assert_broken(tampered: Tampered, seq: u64, verified: u64, why: &str) -> Closed {
    let last_good = match verified {
        0 => disputes_store::GENESIS_PREV_HASH.to_owned(),
        n => tampered.get(n).hash,
    };
    let (run, report, closed) = tampered.verify();
    assert_eq!(
        run.code, 5,
        "verify must fail:\n{}{}",
        run.stdout, run.stderr
    );
    let first_line = run.stdout.lines().next().unwrap_or_default();
    assert!(
        first_line.starts_with(&format!("BROKEN at seq {seq}: ")) && first_line.contains(why),
        "expected a break at seq {seq} ({why}), got:\n{}{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_break"]["seq"], seq);
    assert_eq!(report["events"], verified, "{report}");
    assert_eq!(report["head_hash"], last_good, "{report}");
    closed
}

#[test]
fn verify_finds_an_event_whose_bytes_were_changed() {
    let s = stopped();
    let t = Tampered::copy(s);
    let seq = s.seq_of("DisputeResolved", |e| e["data"]["basis"] == "agreement");
    t.change(seq, |e| e.data["refund_amount"] = json!(1));
    let t = assert_broken(
        t,
        seq,
        seq - 1,
        "the event was changed after it was written",
    );

    // The store itself refuses to serve it; the auditor's reader reads it anyway (above), and
    // `rebuild`, which needs the store, says where to look.
    let run = on_dir(&t.data, &["rebuild"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stderr.contains("disputes audit verify"),
        "{}",
        run.stderr
    );
}

#[test]
fn verify_finds_a_broken_link_in_the_chain() {
    let s = stopped();
    let t = Tampered::copy(s);
    // A changed message whose own hash was recomputed: the next event no longer links to it.
    let seq = s.seq_of("MessagePosted", |_| true);
    t.change(seq, |e| {
        e.data["text"] = json!("never shipped");
        e.hash = compute_hash(&e.prev_hash, e);
    });
    assert_broken(t, seq + 1, seq, "the chain is broken");

    let t = Tampered::copy(s);
    t.change(7, |e| {
        e.prev_hash = "ab".repeat(32);
        e.hash = compute_hash(&e.prev_hash, e);
    });
    assert_broken(t, 7, 6, "is not the previous event's hash");
}

#[test]
fn verify_finds_a_resolution_that_does_not_conserve_money() {
    let s = stopped();
    let t = Tampered::copy(s);
    let seq = s.seq_of("DisputeResolved", |e| e["data"]["basis"] == "ruling");
    t.forge(seq, |e| e.data["release_amount"] = json!(2600));
    assert_broken(
        t,
        seq,
        seq - 1,
        "resolved with refund 1500 + release 2600 = 4100, not its order amount 4000",
    );
}

#[test]
fn verify_finds_a_second_resolution_and_an_event_after_one() {
    let s = stopped();
    let first = s.seq_of("DisputeResolved", |e| e["data"]["basis"] == "agreement");
    let dispute = s.event(first)["dispute_id"].as_str().unwrap().to_owned();

    let t = Tampered::copy(s);
    let seq = t.append(first, |_| {});
    assert_broken(
        t,
        seq,
        seq - 1,
        &format!("a second DisputeResolved for dispute {dispute} (the first is seq {first})"),
    );

    let t = Tampered::copy(s);
    let message = s.seq_of("MessagePosted", |_| true);
    let seq = t.append(message, |e| e.dispute_id = dispute.clone());
    assert_broken(
        t,
        seq,
        seq - 1,
        &format!("MessagePosted after dispute {dispute} was resolved (seq {first})"),
    );
}

#[test]
fn verify_finds_a_version_gap_and_a_missing_event() {
    let s = stopped();
    let t = Tampered::copy(s);
    let seq = s.seq_of("CounterProposed", |_| true);
    let e = s.event(seq);
    let (dispute, version) = (
        e["dispute_id"].as_str().unwrap(),
        e["version"].as_u64().unwrap(),
    );
    t.forge(seq, |e| e.version += 1);
    assert_broken(
        t,
        seq,
        seq - 1,
        &format!(
            "dispute {dispute} has version {} after version {}",
            version + 1,
            version - 1
        ),
    );

    let t = Tampered::copy(s);
    set_stored_event(&t.events, 12, None);
    assert_broken(
        t,
        13,
        11,
        "seq 13 where 12 was expected: an event is missing",
    );

    let t = Tampered::copy(s);
    let garbage = b"\x01{\"not\": \"an envelope\"}".to_vec();
    set_stored_event(&t.events, 5, Some(garbage));
    assert_broken(t, 5, 4, "not an envelope");
}

#[test]
fn verify_of_an_intact_copy_passes_and_the_copy_still_rebuilds() {
    let s = stopped();
    let t = Tampered::copy(s);
    t.rechain(1); // rewrites every event exactly as it was
    let (run, report, t) = t.verify();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(report["events"], s.export.len());
    let run = on_dir(&t.data, &["rebuild"]).ok("rebuild the copy");
    assert_eq!(
        run.stdout,
        format!("rebuilt the read models from {} events\n", s.export.len())
    );
}

// ---------------------------------------------------------------------------------------------
// Rebuild, and a running service's data dir.
// ---------------------------------------------------------------------------------------------

/// Every read model answer a dashboard can get about `disputes`, read after `min_seq`.
async fn read_models(client: &Client, disputes: &[Dispute], min_seq: u64) -> Value {
    let q = |name: &'static str, mut body: Value| {
        body["min_seq"] = json!(min_seq);
        let client = client.clone();
        async move {
            let answer = client.query(name, body.clone()).await;
            assert_eq!(answer["ok"], true, "{name} {body}: {answer}");
            answer
        }
    };
    let mut answers = serde_json::Map::new();
    answers.insert("list".into(), q("list", json!({"limit": 500})).await);
    answers.insert("stats".into(), q("stats", json!({})).await);
    answers.insert("deadlines".into(), q("deadlines", json!({})).await);
    for status in ["resolved", "awaiting_seller_response", "under_review"] {
        let answer = q("list", json!({ "status": status })).await;
        answers.insert(format!("list status {status}"), answer);
    }
    for stage in ["agreement", "closed"] {
        let answer = q("list", json!({ "stage": stage, "limit": 2 })).await;
        answers.insert(format!("list stage {stage}"), answer);
    }
    for d in disputes {
        let get = q("get", json!({"dispute_id": d.id})).await;
        answers.insert(format!("get {}", d.id), get);
        let seller = json!({"seller_id": d.seller});
        answers.insert(
            format!("list {}", d.seller),
            q("list", seller.clone()).await,
        );
        answers.insert(format!("stats {}", d.seller), q("stats", seller).await);
        let buyer = json!({"buyer_id": d.buyer});
        answers.insert(format!("list {}", d.buyer), q("list", buyer).await);
    }
    Value::Object(answers)
}

/// Removes every dispute record and every stats entry from the read models, keeping their
/// checkpoint: a service started on them would not notice.
fn damage_read_models(data: &Path) {
    let db = sled::open(data.join("projections")).expect("open the read models");
    let tree = db.open_tree("read_models").unwrap();
    let doomed: Vec<_> = tree
        .iter()
        .keys()
        .map(Result::unwrap)
        .filter(|k| k.starts_with(b"v\0") || k.starts_with(b"s\0"))
        .collect();
    assert!(!doomed.is_empty());
    for key in doomed {
        tree.remove(key).unwrap();
    }
    db.flush().unwrap();
}

#[tokio::test]
async fn rebuild_gives_the_read_models_the_live_ones_had() {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats.url(), POLICY);
    let client = Client::connect(&nats.url()).await;
    service.wait_ready(&client).await;
    let paths = run_paths(&client).await;
    let mut head = 0;
    for d in &paths.all {
        let last = d.history().await.last().unwrap()["seq"].as_u64().unwrap();
        head = head.max(last);
    }
    let live = read_models(&client, &paths.all, head).await;
    assert_eq!(live["stats"]["stats"]["total"], 6, "{live:#}");

    // A running service holds its data dir: the store's own reader, and the auditor's, say so.
    let data = service.data_dir().to_owned();
    let run = on_dir(&data, &["rebuild"]);
    assert_ne!(
        run.code, 0,
        "rebuild under a running service: {}",
        run.stdout
    );
    assert!(run.stderr.contains("stop it first"), "{}", run.stderr);
    let run = on_dir(&data, &["verify"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stderr.contains("--nats-url"), "{}", run.stderr);

    assert!(service.terminate(Duration::from_secs(30)).is_some());
    damage_read_models(&data);
    let dir = data.parent().unwrap();
    let mut damaged = Service::start_on(dir, &nats.url(), POLICY);
    damaged.wait_ready(&client).await;
    let answer = client
        .query(
            "get",
            json!({"dispute_id": paths.all[0].id, "min_seq": head}),
        )
        .await;
    assert_eq!(answer["error"]["code"], "not_found", "the damage shows");
    assert!(damaged.terminate(Duration::from_secs(30)).is_some());

    let run = on_dir(&data, &["rebuild"]).ok("rebuild");
    assert_eq!(
        run.stdout,
        format!("rebuilt the read models from {head} events\n")
    );
    let mut rebuilt = Service::start_on(dir, &nats.url(), POLICY);
    rebuilt.wait_ready(&client).await;
    let after = read_models(&client, &paths.all, head).await;
    assert_eq!(
        after, live,
        "the rebuilt read models answer as the live ones did"
    );
    assert!(rebuilt.terminate(Duration::from_secs(30)).is_some());
}

// ---------------------------------------------------------------------------------------------
// The auditor of deploy/nats/auth.conf.
// ---------------------------------------------------------------------------------------------

/// `deploy/nats/<file>`.
fn shipped(file: &str) -> String {
    let path = crate::kit::workspace_root().join("deploy/nats").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The dev-only password of `user` (deploy/nats/dev-passwords.txt).
fn dev_password(user: &str) -> String {
    shipped("dev-passwords.txt")
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(char::is_whitespace))
        .find(|(name, _)| *name == user)
        .map(|(_, password)| password.trim().to_owned())
        .unwrap_or_else(|| panic!("no dev password for {user}"))
}

/// A single node from the shipped `nats.conf` and `auth.conf` (as crates/disputes/tests/deploy/shipped.rs does).
fn shipped_nats() -> NatsServer {
    let mut template = shipped("nats.conf");
    for (from, to) in [
        ("listen: \"0.0.0.0:4222\"", "listen: \"127.0.0.1:{{port}}\""),
        (
            "http: \"127.0.0.1:8222\"",
            "# http: (no monitoring port in tests)",
        ),
        (
            "store_dir: \"/var/lib/nats/jetstream\"",
            "store_dir: \"{{store_dir}}\"",
        ),
    ] {
        assert_eq!(template.matches(from).count(), 1, "nats.conf: {from}");
        template = template.replace(from, to);
    }
    let auth = shipped("auth.conf");
    NatsServer::start_in(tempfile::tempdir().unwrap(), &template, move |dir| {
        std::fs::write(dir.join("auth.conf"), auth).unwrap()
    })
}

async fn login(url: &str, user: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.into(), dev_password(user))
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("log in as {user}: {e}"))
}

async fn request(client: &async_nats::Client, subject: &str, body: Value) -> Value {
    let reply = client
        .request(
            subject.to_owned(),
            serde_json::to_vec(&body).unwrap().into(),
        )
        .await
        .unwrap_or_else(|e| panic!("{subject}: {e}"));
    serde_json::from_slice(&reply.payload).unwrap()
}

#[tokio::test]
async fn the_shipped_auditor_user_audits_the_stream_and_nothing_else() {
    let nats = shipped_nats();
    let mut service = start_as_the_disputes_user(&nats.url());
    wait_until_the_dashboard_gets_stats(&nats.url(), &mut service).await;
    let (id, events) = open_and_accept_through_the_gateways(&nats.url()).await;

    let auditor = AsAuditor::new(&nats.url());
    the_auditor_verifies_reads_and_exports_every_event(&auditor, &id, events);
    the_auditor_may_use_no_other_consumer_and_nobody_reads_anonymously(&auditor);
}

/// A service on the shipped NATS: started, then restarted as the `disputes` user (it cannot log
/// in without it).
fn start_as_the_disputes_user(nats_url: &str) -> Service {
    let mut service = Service::start(nats_url, "");
    service.kill(); // it cannot log in yet: give it the `disputes` user
    let config = std::fs::read_to_string(service.config_path()).unwrap();
    let password = dev_password("disputes");
    let config = config.replacen(
        "[nats]\n",
        &format!("[nats]\nuser = \"disputes\"\npassword = {password:?}\n"),
        1,
    );
    std::fs::write(service.config_path(), config).unwrap();
    service.spawn();
    service
}

/// Asks for stats as the `dashboard` user until the service answers (while it keeps running).
async fn wait_until_the_dashboard_gets_stats(nats_url: &str, service: &mut Service) {
    let dashboard = login(nats_url, "dashboard").await;
    for _ in 0..600 {
        let answer = tokio::time::timeout(
            Duration::from_millis(500),
            dashboard.request("disputes.query.stats", "{}".into()),
        )
        .await;
        if matches!(answer, Ok(Ok(_))) {
            break;
        }
        assert!(service.try_wait().is_none(), "{}", service.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The buyer gateway opens a dispute and the seller gateway accepts it; returns its id and the
/// stream's last seq.
async fn open_and_accept_through_the_gateways(nats_url: &str) -> (String, u64) {
    let (buyer, seller) = (
        login(nats_url, "buyer_gateway").await,
        login(nats_url, "seller_gateway").await,
    );
    let id = unique("d");
    let actor = |role: &str, who: &str| json!({"role": role, "id": who});
    let open = request(
        &buyer,
        "disputes.cmd.open",
        json!({"command_id": unique("c"), "dispute_id": id,
        "actor": actor("buyer", "b-1"), "data": {"order_id": unique("o"), "seller_id": "s-1",
        "reason": "not_received", "order_amount": {"amount": 999, "currency": "EUR"},
        "proposal": {"solution": "full_refund"}}}),
    )
    .await;
    assert_eq!(open["ok"], true, "{open}");
    let accept = request(
        &seller,
        "disputes.cmd.accept_proposal",
        json!({"command_id": unique("c"),
        "dispute_id": id, "actor": actor("seller", "s-1"), "data": {}}),
    )
    .await;
    assert_eq!(accept["ok"], true, "{accept}");
    let events = accept["seq"].as_u64().unwrap();
    (id, events)
}

/// `disputes audit … --config <auditor.toml> --nats-url <url>`: the shipped `auditor` user.
struct AsAuditor {
    _dir: tempfile::TempDir,
    config: String,
    url: String,
}

impl AsAuditor {
    fn new(nats_url: &str) -> AsAuditor {
        let dir = tempfile::tempdir().unwrap();
        let auditor = dir.path().join("auditor.toml");
        let keys = format!(
            "[nats]\nuser = \"auditor\"\npassword = {:?}\n",
            dev_password("auditor")
        );
        std::fs::write(&auditor, keys).unwrap();
        AsAuditor {
            config: path_arg(&auditor),
            _dir: dir,
            url: nats_url.to_owned(),
        }
    }

    fn run(&self, command: &[&str]) -> Run {
        let mut args = command.to_vec();
        args.extend(["--config", &self.config, "--nats-url", &self.url]);
        audit(&args)
    }
}

/// `verify` (once publishing has caught up with `events`), `history` and `export`, as the auditor.
fn the_auditor_verifies_reads_and_exports_every_event(auditor: &AsAuditor, id: &str, events: u64) {
    let mut run = auditor.run(&["verify"]);
    for _ in 0..100 {
        if run.stdout.starts_with(&format!("ok: {events} events")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100)); // publishing catches up
        run = auditor.run(&["verify"]);
    }
    let run = run.ok("verify as the auditor");
    assert!(
        run.stdout
            .starts_with(&format!("ok: {events} events, 1 disputes, 1 resolved")),
        "{}",
        run.stdout
    );
    let history = auditor
        .run(&["history", id, "--json"])
        .ok("history as the auditor");
    let history: Value = serde_json::from_str(&history.stdout).unwrap();
    assert_eq!(history.as_array().unwrap().len() as u64, events);
    let export = auditor.run(&["export"]).ok("export as the auditor");
    assert_eq!(export.stdout.lines().count() as u64, events);
}

/// The permissions name the auditor's consumer; and an anonymous reader gets nothing.
fn the_auditor_may_use_no_other_consumer_and_nobody_reads_anonymously(auditor: &AsAuditor) {
    let run = auditor.run(&["verify", "--consumer", "payments"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stderr.contains("payments"), "{}", run.stderr);
    let run = on_stream(&auditor.url, &["verify"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stderr.to_lowercase().contains("authorization"),
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// What the stream holds besides our events, and a log sled cannot read.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_repeated_on_the_stream_is_a_finding_and_publishing_goes_on_past_foreign_messages()
{
    // The JetStream log refuses a foreign message instead: disputes-store-jetstream's
    // `a_foreign_message_in_the_log_stream_stops_appends_naming_its_seq`.
    if sled_only("the publisher skips foreign messages") {
        return;
    }
    let nats = NatsServer::start();
    let mut service = Service::start(&nats.url(), "");
    let client = Client::connect(&nats.url()).await;
    service.wait_ready(&client).await;
    let d = Dispute::new(&client);
    d.open("not_received", 100, json!({"solution": "full_refund"}))
        .await;
    let first = crate::lifecycle::wait_stream(&d, 2).await;
    // Someone with publish rights on the stream's subjects repeats an event (no message id, so
    // JetStream keeps it) and adds a message that is no event at all.
    assert_eq!(first[0]["seq"], 1);
    let js = async_nats::jetstream::new(client.nats().clone());
    let stream = js.get_stream("DISPUTE_EVENTS").await.unwrap();
    let repeat = stream.get_raw_message(1).await.unwrap().payload;
    let subject = format!("disputes.evt.{}.DisputeOpened", d.id);
    js.publish(subject, repeat).await.unwrap().await.unwrap();
    let garbage = format!("disputes.evt.{}.DisputeResolved", unique("d-forged"));
    js.publish(garbage, br#"{"ok":true}"#.to_vec().into())
        .await
        .unwrap()
        .await
        .unwrap();

    // The service keeps publishing after them, each event once.
    d.ok("accept_proposal", "seller", json!({})).await;
    let events = crate::lifecycle::wait_stream(&d, 5).await;
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        vec![1, 2, 1, 3, 4],
        "the repeat stays where it was put; later events follow once"
    );

    // The auditor reports the repeat instead of hiding it.
    let run = on_stream(&nats.url(), &["verify"]);
    assert_eq!(run.code, 5, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .starts_with("BROKEN at seq 1: seq 1 appears again after seq 2"),
        "{}",
        run.stdout
    );
    drop(service);
}

#[test]
fn verify_reports_a_log_sled_cannot_read_as_broken_history() {
    let s = stopped();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(s.data_dir(), &data);
    // Flip a byte inside a stored event: sled's checksum of what holds it no longer matches.
    let db_file = local_log(&data).join("db");
    let mut bytes = std::fs::read(&db_file).unwrap();
    let event_id = s.export[s.export.len() / 2]["event_id"].as_str().unwrap();
    let at = bytes
        .windows(event_id.len())
        .position(|w| w == event_id.as_bytes())
        .expect("the event id is in the log file");
    bytes[at] ^= 0x01;
    std::fs::write(&db_file, bytes).unwrap();
    let run = on_dir(&data, &["verify"]);
    assert_eq!(
        run.code, 5,
        "a broken history, not a failed run:\n{}{}",
        run.stdout, run.stderr
    );
    assert!(run.stdout.starts_with("BROKEN at seq "), "{}", run.stdout);
    let report: Value = serde_json::from_str(&on_dir(&data, &["verify", "--json"]).stdout).unwrap();
    assert_eq!(report["ok"], false, "{report}");
}
