//! The benchmark module runs (tiny durations: this checks it works, not how fast).

use std::time::Duration;

use disputes_store::bench::{self, BenchPlan};
use disputes_store::Durability;

#[test]
fn bench_runs_the_baseline_the_sled_floor_and_every_case() {
    let dir = tempfile::tempdir().unwrap();
    let plan = BenchPlan {
        appenders: vec![1, 4],
        case_duration: Duration::from_millis(100),
        rounds: 2,
        durability: Durability::Fsync,
    };
    let rows = bench::run(dir.path(), &plan).unwrap();
    assert_eq!(rows.len(), 4);
    assert!(
        rows.iter().all(|r| r.ops > 0 && r.ops_per_sec > 0.0),
        "{rows:?}"
    );
    assert_eq!(rows[0].ops_per_sync, 1.0);
    assert_eq!(rows[1].ops_per_sync, 0.0, "the floor never syncs");
    let table = bench::table(&rows);
    assert_eq!(table.lines().count(), 5, "{table}");
}
