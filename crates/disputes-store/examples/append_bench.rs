//! Append throughput with 1, 16 and 64 appenders beside raw sled with one flush + fdatasync per
//! write, in one run: `cargo run --release -p disputes-store --example append_bench [DIR] [SECONDS] [APPENDERS]`
//! (SECONDS per case per round; 3 rounds, interleaved; each row is its case's median round;
//! APPENDERS a comma-separated list, default `1,16,64`).
//! The stores go in a new temporary directory under DIR (default: `TMPDIR`), removed at the end.

use std::time::Duration;

use disputes_store::bench::{self, BenchPlan};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let parent = args
        .next()
        .filter(|a| !a.is_empty())
        .map_or_else(std::env::temp_dir, Into::into);
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(2);
    let appenders: Option<Vec<usize>> = args
        .next()
        .map(|list| list.split(',').map(str::parse).collect())
        .transpose()?;
    let temp = tempfile::tempdir_in(parent)?;
    let plan = BenchPlan {
        case_duration: Duration::from_secs(seconds),
        appenders: appenders.unwrap_or_else(|| BenchPlan::default().appenders),
        ..BenchPlan::default()
    };
    let (dir, durability) = (temp.path().display(), plan.durability);
    let rounds = plan.rounds;
    println!(
        "stores under {dir}, {rounds} rounds of {seconds} s per case, durability {durability:?}"
    );
    let rows = bench::run(temp.path(), &plan)?;
    print!("{}", bench::table(&rows));
    Ok(())
}
