//! `disputes-bench <workload>` (also run as `disputes bench <workload>`): throughput and latency
//! of the service beside a baseline measured in the same run (docs/performance.md).
//!
//! | workload | what runs | baseline |
//! |---|---|---|
//! | `inproc` | the 5-command lifecycle through the command handler and the durable sled store | raw sled appends of the same bytes with the same group commit |
//! | `nats` | the same lifecycle over NATS to an in-process `disputes serve` | an echo responder on the same NATS |
//! | `replay` | rebuilding every read model from the log; then `audit verify` and `inproc` on that store | a raw scan + JSON decode of the same log; `inproc` on an empty store |
//! | `verify` | `disputes audit verify` over the whole log | a raw scan + JSON decode of the same log |
//! | `scheduler` | a burst of expiries due at once, with pending deadlines | — (firing lag) |
//! | `lag` | the `nats` lifecycle for `--secs` | — (lag from acknowledged to published and projected) |
//! | `queries` | `get` and `list` over NATS while commands run | an echo responder, replies of the same size |
//!
//! Its own binary, so that the service carries none of this code nor its dependencies.

mod cluster;
mod inproc;
mod nats;
mod report;
mod sustained;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Measure throughput and latency against a baseline in the same run.
#[derive(Parser, Debug, Clone)]
#[command(name = "disputes bench", version)]
pub(crate) struct BenchArgs {
    /// The workload to run.
    #[arg(value_enum)]
    pub workload: Workload,
    /// Disputes to run the lifecycle on (inproc, nats), or to build the log from (replay, verify).
    #[arg(long)]
    pub disputes: Option<usize>,
    /// Concurrent clients.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// One JSON line instead of a readable summary.
    #[arg(long)]
    pub json: bool,
    /// Use this NATS server instead of starting one (nats and scheduler workloads).
    #[arg(long)]
    pub nats_url: Option<String>,
    /// How long the `lag` workload runs, in seconds (default 60).
    #[arg(long)]
    pub secs: Option<u64>,
    /// Where temporary data dirs go (default: the system temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq)]
pub(crate) enum Workload {
    Inproc,
    Nats,
    Replay,
    Scheduler,
    /// `disputes audit verify` over the whole log.
    Verify,
    /// The `nats` lifecycle for `--secs`: lag from acknowledgement to published and to projected.
    Lag,
    /// `get` and `list` over NATS while commands run.
    Queries,
    /// The `nats` lifecycle with the log on a three-node loopback JetStream cluster, beside raw
    /// atomic batches of the same appends.
    Cluster,
}

/// As in the `disputes` binary, so the in-process service runs as it is shipped.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = BenchArgs::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // As the service does (`disputes::huge_pages`); its nats-servers clear it again.
    if let Err(error) = disputes::huge_pages::decline() {
        tracing::warn!(%error, "transparent huge pages not declined");
    }
    disputes::memory::purge_at_once();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("disputes-bench-")
        .tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let report = match args.workload {
        Workload::Inproc => {
            let (disputes, concurrency) = (
                args.disputes.unwrap_or(4_000),
                args.concurrency.unwrap_or(16),
            );
            let dir = tmp.path().to_owned();
            tokio::task::spawn_blocking(move || inproc::inproc(&dir, disputes, concurrency))
                .await??
        }
        Workload::Replay => {
            let disputes = args.disputes.unwrap_or(111_112);
            let dir = tmp.path().to_owned();
            tokio::task::spawn_blocking(move || inproc::replay(&dir, disputes)).await??
        }
        Workload::Verify => inproc::verify(tmp.path(), args.disputes.unwrap_or(111_112)).await?,
        Workload::Nats => nats::nats(tmp.path(), &args).await?,
        Workload::Scheduler => nats::scheduler(tmp.path(), &args).await?,
        Workload::Lag => sustained::lag(tmp.path(), &args).await?,
        Workload::Queries => sustained::queries(tmp.path(), &args).await?,
        Workload::Cluster => cluster::cluster(tmp.path(), &args).await?,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        report::print_report(&report);
    }
    Ok(())
}
