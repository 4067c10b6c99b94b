//! Evidence that an acknowledged append was made durable: run appends in a child process under
//! strace and check that between the start of each append and its acknowledgement, sled wrote
//! the `db` file (`pwrite64`) and then an `fdatasync` of that file completed.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;

use disputes_store::EventStore;

use crate::child::{self, say};
use crate::support::{appended, open, request};

const STRACE: &str = "/usr/bin/strace";
const APPENDS: u64 = 5;

/// In the child: appends, each between a `BEGIN n` and an `ACK n` line on stdout.
pub(crate) fn child(dir: &Path) {
    let store = open(dir);
    for n in 1..=APPENDS {
        say(&format!("BEGIN {n}"));
        let envelopes = appended(store.append(request("d-1", n - 1, Some(&format!("c-{n}")), 1)));
        say(&format!("ACK {n} seq={}", envelopes[0].seq));
    }
}

#[test]
fn every_acknowledged_append_follows_an_fdatasync_of_the_db_file() {
    if !Path::new(STRACE).exists() {
        eprintln!("SKIPPED: {STRACE} is missing; docs/store.md records this check done by hand");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.txt");
    let filter = "trace=write,pwrite64,fdatasync,fsync,sync_file_range";
    let wrapper: Vec<OsString> = [STRACE, "-f", "-y", "-qq", "-e", filter, "-o"]
        .iter()
        .map(OsString::from)
        .chain([trace.clone().into_os_string()])
        .collect();
    let mode = format!("strace:{}", dir.path().join("store").display());
    let output = child::command(&wrapper, &mode).output().unwrap();
    assert!(
        output.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    check_trace(&text);
    println!("strace, from BEGIN 1 to ACK 1:\n{}", window_lines(&text, 1));
}

/// A syscall of interest, completed, in trace order.
#[derive(Debug, PartialEq)]
enum Seen {
    Marker(String),
    DbWrite,
    DbSync,
    Other,
}

/// The raw trace lines from `BEGIN n` to `ACK n`.
fn window_lines(text: &str, n: u64) -> String {
    let lines = text
        .lines()
        .skip_while(|l| !l.contains(&format!("\"BEGIN {n}\\n\"")));
    let mut out = String::new();
    for line in lines {
        out.push_str(line);
        out.push('\n');
        if line.contains(&format!("\"ACK {n} ")) {
            break;
        }
    }
    out
}

/// Checks every append's window.
fn check_trace(text: &str) {
    let mut windows: HashMap<u64, Vec<&Seen>> = HashMap::new();
    let mut open: Option<u64> = None;
    let events = completed(text);
    for seen in &events {
        if let Seen::Marker(marker) = seen {
            let (kind, n) = parse_marker(marker);
            if kind == "BEGIN" {
                open = Some(n);
                continue;
            }
            assert_eq!(open.take(), Some(n), "ACK {n} without its BEGIN");
            let window = windows.get(&n).map(Vec::as_slice).unwrap_or_default();
            let write = window.iter().position(|s| **s == Seen::DbWrite);
            let sync = window.iter().rposition(|s| **s == Seen::DbSync);
            assert!(
                matches!((write, sync), (Some(w), Some(s)) if w < s),
                "append {n}: no pwrite64 then fdatasync of db before its ACK: {window:?}"
            );
            continue;
        }
        if let Some(n) = open {
            windows.entry(n).or_default().push(seen);
        }
    }
    assert_eq!(windows.len() as u64, APPENDS, "every append was seen");
}

fn parse_marker(marker: &str) -> (&str, u64) {
    let mut words = marker.split_whitespace();
    let kind = words.next().unwrap();
    (kind, words.next().unwrap().parse().unwrap())
}

/// The completed syscalls of the trace, matching `<unfinished ...>` with `<... resumed>` by pid.
fn completed(text: &str) -> Vec<Seen> {
    let mut pending: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        if rest.ends_with("<unfinished ...>") {
            pending.insert(pid, rest);
            continue;
        }
        let call = if rest.starts_with("<...") {
            format!("{}{rest}", pending.remove(pid).unwrap_or(""))
        } else {
            rest.to_owned()
        };
        out.push(classify(&call));
    }
    out
}

fn classify(call: &str) -> Seen {
    // strace pads before " = ": the result follows the last one.
    let result = call.rsplit_once(" = ").map(|(_, r)| r.trim());
    let on_db = call.contains("/db>");
    if call.starts_with("write(1") {
        for kind in ["BEGIN", "ACK"] {
            if let Some(start) = call.find(&format!("\"{kind} ")) {
                let marker = &call[start + 1..];
                let marker = &marker[..marker.find("\\n").unwrap_or(marker.len())];
                let marker = marker.split(" seq=").next().unwrap();
                return Seen::Marker(marker.to_owned());
            }
        }
    }
    if call.starts_with("pwrite64(")
        && on_db
        && result.is_some_and(|r| r.parse::<i64>().is_ok_and(|n| n > 0))
    {
        return Seen::DbWrite;
    }
    if call.starts_with("fdatasync(") && on_db && result == Some("0") {
        return Seen::DbSync;
    }
    Seen::Other
}
