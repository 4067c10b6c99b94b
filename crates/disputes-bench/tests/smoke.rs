//! Every workload `./x bench` runs, at a tiny size: it finishes, and its JSON report carries the
//! goals docs/performance.md lists for it. (The figures themselves mean nothing at this size.)

use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_disputes-bench"))
        .args(args)
        .arg("--json")
        .output()
        .expect("run disputes-bench");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON report")
}

fn goals(report: &Value) -> Vec<String> {
    report["goals"]
        .as_array()
        .map(|goals| {
            goals
                .iter()
                .map(|g| {
                    assert!(g["value"].is_number() && g["met"].is_boolean(), "{g}");
                    g["goal"].as_str().unwrap().to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_workload_reports_its_goals() {
    let small = ["--disputes", "12", "--concurrency", "3"];
    let inproc = bench(&[&["inproc"], &small[..]].concat());
    assert_eq!(goals(&inproc), ["inproc / raw sled group commit"]);
    // Big enough for its service phase to span several clock ticks of nats-server CPU (checked
    // below): 60 commands took 32 ms once commands stopped waiting in the blocking pool.
    let nats = bench(&["nats", "--disputes", "200", "--concurrency", "3"]);
    assert_eq!(goals(&nats), ["nats / inproc (same run)"]);
    let cluster = bench(&[&["cluster"], &small[..]].concat());
    assert_eq!(
        goals(&cluster),
        ["cluster / raw JetStream batches (same run)"]
    );
    assert_eq!(cluster["extra"]["appends"], 60, "{cluster}");
    // Each phase's CPU, read from /proc (in clock ticks of 10 ms: the raw phases of so small a
    // run may read 0): the service's process and its NATS servers both worked.
    for report in [&cluster, &nats] {
        let cpu = &report["extra"]["cpu"];
        for field in ["process_us_per_op", "nats_us_per_op", "machine_busy"] {
            let value = cpu["service"][field].as_f64().unwrap_or(0.0);
            assert!(value > 0.0, "service.{field} = {value}: {report}");
        }
    }
    assert!(cluster["extra"]["cpu"]["raw_batches"]["nats_us_per_op"].is_f64());
    assert!(cluster["extra"]["cpu"]["raw_batches_followed"]["nats_us_per_op"].is_f64());
    assert!(
        cluster["extra"]["raw_followed_ops_per_sec"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
    assert!(nats["extra"]["cpu"]["raw_requests"]["nats_us_per_op"].is_f64());
    let queries = bench(&[&["queries"], &small[..]].concat());
    assert_eq!(goals(&queries), ["queries / echo"]);
    let lag = bench(&["lag", "--secs", "2", "--concurrency", "2"]);
    assert_eq!(
        goals(&lag),
        [
            "published lag p99 (s)",
            "published lag p99, last third minus first third (s)",
            "projected lag p99 (s)",
            "projected lag p99, last third minus first third (s)"
        ]
    );
    let replay = bench(&["replay", "--disputes", "12"]);
    assert_eq!(
        goals(&replay),
        ["inproc on a store of 108 events / inproc on an empty store"]
    );
    assert!(
        replay["extra"]["verify_events_per_sec"].is_number(),
        "{replay}"
    );
}
