//! Crash test: a child process appends in a loop from 4 threads and prints every acknowledged
//! append; the parent kills it with SIGKILL at a random moment, reopens the store, and checks that
//! every acknowledged append is there, seq is gap-free and `verify` passes; 24 times over one store.
//! (A SIGKILL loses no page cache: this tests recovery and atomicity, not power loss.)

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use disputes_store::EventStore;
use serde_json::json;

use crate::child::{self, say};
use crate::support::{appended, assert_log_intact, open, request, Rng};

const RUNS: u64 = 24;
const CHILD_THREADS: u64 = 4;
const APPENDS_PER_THREAD_MAX: u64 = 1_000_000;
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// In the child: append until killed.
pub(crate) fn child(run: u64, dir: &Path) {
    let store = open(dir);
    say("ready");
    std::thread::scope(|scope| {
        for thread in 0..CHILD_THREADS {
            let store = &store;
            scope.spawn(move || {
                for n in 0..APPENDS_PER_THREAD_MAX {
                    append_one(store, run, thread, n);
                }
            });
        }
    });
}

fn append_one(store: &disputes_store::SledStore, run: u64, thread: u64, n: u64) {
    let dispute = format!("r{run}-t{thread}-d{}", n / 5);
    let version = store.stream_version(&dispute).unwrap();
    let command = format!("r{run}-t{thread}-c{n}");
    let mut req = request(&dispute, version, Some(&command), 1 + (n % 2) as usize);
    if version == 0 {
        req.reserve_order = Some(format!("o-{dispute}"));
    }
    if n % 16 == 3 {
        // An envelope over 128 KiB: sled writes it to a blob file, which the store must sync too.
        req.events[0].data = json!({"text": "x".repeat(130_900), "n": n});
    }
    let envelopes = appended(store.append(req));
    let last = envelopes.last().unwrap();
    say(&format!(
        "ack {command} {} {} {}",
        envelopes[0].seq,
        envelopes.len(),
        last.hash
    ));
}

struct Ack {
    command: String,
    first_seq: u64,
    count: usize,
    last_hash: String,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut words = line.strip_prefix("ack ")?.split(' ');
    let command = words.next()?.to_owned();
    let first_seq = words.next()?.parse().ok()?;
    let count = words.next()?.parse().ok()?;
    let last_hash = words.next().filter(|h| h.len() == 64)?.to_owned();
    Some(Ack {
        command,
        first_seq,
        count,
        last_hash,
    })
}

/// Kills the child if the test fails before it does.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs one child, kills it at a random moment, returns what it acknowledged.
fn run_once(run: u64, dir: &Path, rng: &mut Rng) -> Vec<Ack> {
    let mode = format!("crash:{run}:{}", dir.display());
    let mut command = child::command(&[], &mode);
    let mut child = Killed(command.stdout(Stdio::piped()).spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut seen = Vec::new();
    if rng.below(4) == 0 {
        // Sometimes while it starts up (and may be recovering).
        std::thread::sleep(Duration::from_millis(rng.below(60)));
    } else {
        let deadline = Instant::now() + READY_TIMEOUT;
        while !seen.iter().any(|l: &String| l == "ready") {
            let left = deadline.saturating_duration_since(Instant::now());
            seen.push(received.recv_timeout(left).expect("the child got ready"));
        }
        std::thread::sleep(Duration::from_millis(rng.below(250)));
    }
    drop(child); // SIGKILL, then reap
    reader.join().unwrap();
    seen.extend(received.try_iter());
    seen.iter().filter_map(|line| parse_ack(line)).collect()
}

fn check(dir: &Path, acked: &[Ack]) {
    let store = open(dir); // refuses (Corrupt) if the recovered tail is broken
    assert_log_intact(&store);
    for ack in acked {
        let outcome = store.command(&ack.command).unwrap();
        let outcome = outcome.unwrap_or_else(|| panic!("acknowledged {} is lost", ack.command));
        assert_eq!(outcome.events[0].seq, ack.first_seq, "{}", ack.command);
        assert_eq!(outcome.events.len(), ack.count, "{}", ack.command);
        assert_eq!(
            outcome.events.last().unwrap().hash,
            ack.last_hash,
            "{}",
            ack.command
        );
    }
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let mut rng = Rng::seeded("crash");
    let mut acked = Vec::new();
    let started = Instant::now();
    for run in 0..RUNS {
        let acks = run_once(run, &store_dir, &mut rng);
        acked.extend(acks);
        check(&store_dir, &acked);
    }
    let store = open(&store_dir);
    eprintln!(
        "crash: {RUNS} kills, {} acknowledged appends, {} events, {:.1} s",
        acked.len(),
        store.head(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        acked.len() >= 100,
        "too few appends acknowledged to mean anything: {}",
        acked.len()
    );
}
