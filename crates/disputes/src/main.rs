use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use disputes::audit::{self, Source};
use disputes::config::Config;

/// disputes: the marketplace's buyer/seller dispute process, event-sourced over NATS.
#[derive(Parser)]
#[command(name = "disputes", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve commands and queries over NATS; publish events; run the scheduler.
    Serve {
        /// TOML config (every key has a default; DISPUTES_NATS_URL and DISPUTES_DATA_DIR override).
        #[arg(long, env = "DISPUTES_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Read the history as an auditor: from a stopped service's data dir, or from the stream.
    Audit {
        #[command(flatten)]
        from: AuditSource,
        #[command(subcommand)]
        command: AuditCmd,
    },
    /// Measure throughput and latency against a baseline in the same run (runs the
    /// `disputes-bench` binary installed beside this one; `disputes bench --help` lists its workloads).
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

#[derive(Args)]
struct AuditSource {
    /// The service's config (for its data dir and stream names).
    #[arg(long, global = true, env = "DISPUTES_CONFIG")]
    config: Option<PathBuf>,
    /// The service's data dir (overrides the config's [store] path).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Read the events stream over NATS instead of the data dir (credentials, TLS, prefix and
    /// stream name come from the config's [nats]).
    #[arg(long, global = true)]
    nats_url: Option<String>,
    /// The pull consumer to read the stream through (the auditor's NATS permissions name it).
    #[arg(long, global = true, default_value = audit::AUDITOR_CONSUMER)]
    consumer: String,
}

#[derive(Subcommand)]
enum AuditCmd {
    /// One dispute's events, as a table or --json.
    History {
        dispute_id: String,
        #[arg(long)]
        json: bool,
    },
    /// The whole log as NDJSON, one envelope a line, in seq order.
    Export {
        #[arg(long, default_value_t = 1)]
        from_seq: u64,
    },
    /// The dispute as it stood at an RFC 3339 time.
    State {
        dispute_id: String,
        #[arg(long)]
        at: String,
    },
    /// Recompute the hash chain and check the invariants over the whole history.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Drop the read models and rebuild them from the log (data dir only, service stopped).
    Rebuild,
}

/// The service allocates per request (JSON bodies, envelopes, read-model records); mimalloc
/// spends less CPU on that than glibc's malloc (docs/performance.md, "Fourth session").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // An auditor's output is the answer; the service's is its log.
    let default_filter = match cli.command {
        Cmd::Audit { .. } => "warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Cmd::Serve { config } => {
            let config = Config::load(config.as_deref())?;
            runtime.block_on(disputes::service::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Audit { from, command } => runtime.block_on(run_audit(from, command)),
        Cmd::Bench { args } => bench(&args),
    }
}

/// `disputes bench …` is `disputes-bench …`, the benchmark binary built beside this one: the
/// service itself carries no benchmark code.
fn bench(args: &[std::ffi::OsString]) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt as _;
    let here = std::env::current_exe().context("find this binary")?;
    let bench = here.with_file_name("disputes-bench");
    anyhow::ensure!(
        bench.exists(),
        "`disputes bench` runs {}, which is not there: build it with `cargo build --release -p disputes-bench` (or run `./x bench`)",
        bench.display()
    );
    let error = std::process::Command::new(&bench).args(args).exec();
    Err(anyhow::Error::new(error).context(format!("run {}", bench.display())))
}

async fn run_audit(from: AuditSource, command: AuditCmd) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(from.config.as_deref())?;
    if let Some(dir) = from.data_dir {
        config.store.path = dir;
    }
    let source = match from.nats_url {
        Some(url) => Source::Nats(Box::new(audit::StreamSource {
            nats: disputes::config::NatsConfig {
                url,
                ..config.nats.clone()
            },
            consumer: from.consumer,
        })),
        None => Source::Store(config.store.path.clone()),
    };
    let mut out = std::io::stdout().lock();
    match command {
        AuditCmd::History { dispute_id, json } => {
            audit::history(&source, &dispute_id, json, &mut out).await?
        }
        AuditCmd::Export { from_seq } => {
            audit::export(&source, from_seq, &mut out).await?;
        }
        AuditCmd::State { dispute_id, at } => {
            let at = disputes_domain::time::parse(&at)
                .with_context(|| format!("--at {at:?} is not RFC 3339"))?;
            let view = audit::state_at(&source, &dispute_id, at).await?;
            println!("{}", serde_json::to_string_pretty(&view)?);
        }
        AuditCmd::Verify { json } => {
            let report = audit::verify(&source).await?;
            if json {
                println!("{}", audit::audit_json(&report));
            } else {
                audit::print_audit(&report, &mut out)?;
            }
            if report.first_break.is_some() {
                return Ok(ExitCode::from(2));
            }
        }
        AuditCmd::Rebuild => {
            let Source::Store(dir) = &source else {
                anyhow::bail!("rebuild works on a data dir, not the stream")
            };
            let applied = audit::rebuild(dir, config.policy.to_policy()?)?;
            println!("rebuilt the read models from {applied} events");
        }
    }
    Ok(ExitCode::SUCCESS)
}
