use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use disputes::audit::{self, Source};
use disputes::config::Config;
use disputes::exit;
use disputes::nats_context::NatsContext;

/// disputes: the marketplace's buyer/seller dispute process, event-sourced over NATS.
///
/// Exit codes: 0 ok, 1 error, 2 usage, 3 the writer lease was taken, 4 the storage failed and
/// recovered (start again), 5 the history does not verify.
#[derive(Parser)]
#[command(name = "disputes", version = disputes::VERSION, about, long_about = None)]
struct Cli {
    /// How to log on stderr: `text` (coloured on a terminal only) or `json` (one object a line,
    /// for journald, Docker and Loki).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "DISPUTES_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve commands and queries over NATS; publish events; run the scheduler.
    Serve {
        /// TOML config (every key has a default; DISPUTES_NATS_URL, DISPUTES_NATS_PASSWORD and
        /// DISPUTES_DATA_DIR override).
        #[arg(long, env = "DISPUTES_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Read the history as an auditor: from a stopped service's data dir, or from the stream.
    Audit {
        #[command(subcommand)]
        command: AuditCmd,
    },
    /// Move a log between backends, or rebuild one from the events stream alone.
    Store {
        #[command(subcommand)]
        command: StoreCmd,
    },
    /// Ask a running service's HTTP endpoint whether it is ready (or healthy): exit 0 if so, else
    /// 1 with the reason. For container health checks, where there is no curl.
    Healthcheck {
        /// The service's config, for its `[http] listen` address.
        #[arg(long, env = "DISPUTES_CONFIG")]
        config: Option<PathBuf>,
        /// The address to ask instead (host:port).
        #[arg(long)]
        addr: Option<String>,
        /// Ask `/healthz` (the process works) instead of `/readyz` (it serves).
        #[arg(long)]
        health: bool,
    },
    /// Measure throughput and latency against a baseline in the same run (runs the
    /// `disputes-bench` binary installed beside this one; `disputes bench --help` lists its workloads).
    #[command(disable_help_flag = true)]
    Bench {
        /// The arguments of `disputes-bench`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

/// Where a data dir is: every audit command takes these.
#[derive(Args)]
struct DirArgs {
    /// The service's config (for its data dir, stream names and NATS credentials).
    #[arg(long, env = "DISPUTES_CONFIG")]
    config: Option<PathBuf>,
    /// The service's data dir (overrides the config's [store] path).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// A data dir, or the events stream over NATS.
#[derive(Args)]
struct SourceArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// Read the events stream at this NATS server instead of the data dir (also NATS_URL when no
    /// --data-dir is given). Credentials, TLS, prefix and stream name come from the config's
    /// [nats] or from --context.
    #[arg(long)]
    nats_url: Option<String>,
    /// Read the events stream with a saved NATS context (`nats context save`): its server and
    /// credentials.
    #[arg(long, env = "NATS_CONTEXT")]
    context: Option<String>,
    /// A NATS `.creds` file for the stream (overrides the config's and the context's).
    #[arg(long, env = "NATS_CREDS")]
    creds: Option<PathBuf>,
    /// The pull consumer to read the stream through (the auditor's NATS permissions name it).
    #[arg(long, default_value = audit::AUDITOR_CONSUMER)]
    consumer: String,
}

#[derive(Subcommand)]
enum AuditCmd {
    /// One dispute's events, as a table or --json.
    History {
        /// The dispute.
        dispute_id: String,
        /// Print the envelopes as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        from: SourceArgs,
    },
    /// The whole log as NDJSON, one envelope a line, in seq order.
    Export {
        /// The first seq to export.
        #[arg(long, default_value_t = 1)]
        from_seq: u64,
        #[command(flatten)]
        from: SourceArgs,
    },
    /// The dispute as it stood at an RFC 3339 time.
    State {
        /// The dispute.
        dispute_id: String,
        /// The time, RFC 3339 (`2026-11-27T08:00:00Z`).
        #[arg(long)]
        at: String,
        #[command(flatten)]
        from: SourceArgs,
    },
    /// Recompute the hash chain and check the invariants over the whole history (exit code 5
    /// when it does not verify).
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        from: SourceArgs,
    },
    /// Drop the read models and rebuild them from the log (data dir only, service stopped).
    Rebuild {
        #[command(flatten)]
        dir: DirArgs,
    },
}

#[derive(Subcommand)]
enum StoreCmd {
    /// Build a new log from another, checking every event's seq, link and hash on the way: from a
    /// stopped service's data dir or from the events stream alone, into a new data dir (sled) or
    /// an empty log stream (`[store] backend = "jetstream"`). A history that does not verify is
    /// refused, naming its first bad event (exit code 5); nothing from that event on is written.
    Import {
        /// Read the log of this data dir (its `events`, or a JetStream log's copy).
        #[arg(long, group = "from", required = true)]
        from_data_dir: Option<PathBuf>,
        /// Read the events stream (`[nats] events_stream` at `[nats] url`).
        #[arg(long, group = "from")]
        from_stream: bool,
        /// Write a new sled log into this data dir.
        #[arg(long, group = "to", required = true)]
        to_data_dir: Option<PathBuf>,
        /// Write the log stream (`[nats] events_stream`, `[store] replicas`), which must be empty.
        #[arg(long, group = "to")]
        to_stream: bool,
        /// The config: NATS url, credentials, prefix, stream name and replicas.
        #[arg(long, env = "DISPUTES_CONFIG")]
        config: Option<PathBuf>,
        /// The NATS server (overrides the config's [nats] url).
        #[arg(long)]
        nats_url: Option<String>,
        /// The new log stream's replicas (overrides the config's [store] replicas, default 3).
        #[arg(long)]
        replicas: Option<usize>,
    },
}

/// The service allocates per request (JSON bodies, envelopes, read-model records); mimalloc
/// spends less CPU on that than glibc's malloc (docs/performance.md, "Fourth session").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // An auditor's output is the answer; the service's is its log.
    let default_filter = match cli.command {
        Cmd::Audit { .. } | Cmd::Healthcheck { .. } | Cmd::Store { .. } => "warn",
        _ => "info",
    };
    init_logs(cli.log_format, default_filter);
    if let Err(error) = disputes::huge_pages::decline() {
        tracing::warn!(%error, "transparent huge pages not declined: resident memory may grow up to twice as large");
    }
    disputes::memory::purge_at_once();
    match run(cli) {
        Ok(code) => code,
        // `disputes audit export | head`: the reader has what it wanted.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}

fn init_logs(format: LogFormat, default_filter: &str) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    // The NATS client logs each of its events at INFO, which `nats.rs` already logs once, naming
    // the server: keep only its warnings, unless RUST_LOG asks for it by name.
    if !std::env::var("RUST_LOG").is_ok_and(|f| f.contains("async_nats")) {
        filter = filter.add_directive("async_nats=warn".parse().expect("a valid directive"));
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
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
        Cmd::Audit { command } => runtime.block_on(run_audit(command)),
        Cmd::Healthcheck {
            config,
            addr,
            health,
        } => healthcheck(config, addr, health),
        Cmd::Bench { args } => bench(&args),
        Cmd::Store { command } => runtime.block_on(run_store(command)),
    }
}

async fn run_store(command: StoreCmd) -> anyhow::Result<ExitCode> {
    use disputes::import::{import, ImportError, ImportFrom, ImportTo};
    let StoreCmd::Import {
        from_data_dir,
        from_stream: _,
        to_data_dir,
        to_stream: _,
        config,
        nats_url,
        replicas,
    } = command;
    let mut config = Config::load(config.as_deref())?;
    if let Some(url) = nats_url {
        config.nats.url = url;
    }
    if let Some(replicas) = replicas {
        anyhow::ensure!(
            (1..=5).contains(&replicas),
            "--replicas must be from 1 to 5"
        );
        config.store.replicas = replicas;
    }
    let from = from_data_dir.map_or(ImportFrom::Stream, ImportFrom::DataDir);
    let to = to_data_dir.map_or(ImportTo::Stream, ImportTo::DataDir);
    anyhow::ensure!(
        !matches!((&from, &to), (ImportFrom::Stream, ImportTo::Stream)),
        "--from-stream and --to-stream name the same stream ([nats] events_stream)"
    );
    match import(&config, from, to).await {
        Ok(done) => {
            println!(
                "imported {} events in {} appends; chain intact",
                done.events, done.appends
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error @ ImportError::Broken { .. }) => {
            println!("REFUSED: {error}; nothing from that event on was written");
            Ok(ExitCode::from(exit::HISTORY_BROKEN))
        }
        Err(ImportError::Other(error)) => Err(error),
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

fn healthcheck(
    config: Option<PathBuf>,
    addr: Option<String>,
    health: bool,
) -> anyhow::Result<ExitCode> {
    let addr = match addr {
        Some(addr) => addr,
        None => {
            let config = Config::load(config.as_deref())?;
            let addr = config
                .http
                .addr()?
                .context("[http] listen is empty: the service serves no HTTP to probe")?;
            addr.to_string()
        }
    };
    let path = if health { "/healthz" } else { "/readyz" };
    let (status, body) = disputes::healthcheck::get(&addr, path)?;
    let mut out = std::io::stdout().lock();
    write!(out, "{body}")?;
    Ok(match status {
        200 => ExitCode::SUCCESS,
        _ => ExitCode::from(exit::ERROR),
    })
}

impl DirArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(dir) = &self.data_dir {
            config.store.path = dir.clone();
        }
        Ok(config)
    }
}

impl SourceArgs {
    /// The stream when a NATS server is named (--nats-url, --context, or NATS_URL without
    /// --data-dir), else the data dir.
    fn source(self) -> anyhow::Result<(Source, Config)> {
        let config = self.dir.config()?;
        let env_url = std::env::var("NATS_URL")
            .ok()
            .filter(|url| !url.is_empty() && self.dir.data_dir.is_none());
        if self.nats_url.is_none() && self.context.is_none() && env_url.is_none() {
            return Ok((Source::Store(config.store.path.clone()), config));
        }
        let mut nats = config.nats.clone();
        if let Some(name) = &self.context {
            NatsContext::load(name)?.apply(&mut nats);
        }
        if let Some(url) = self.nats_url.or(env_url) {
            nats.url = url;
        }
        if let Some(creds) = self.creds {
            nats.creds = Some(creds);
        }
        let source = Source::Nats(Box::new(audit::StreamSource {
            nats,
            consumer: self.consumer,
        }));
        Ok((source, config))
    }
}

async fn run_audit(command: AuditCmd) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        AuditCmd::History {
            dispute_id,
            json,
            from,
        } => {
            let (source, _) = from.source()?;
            audit::history(&source, &dispute_id, json, &mut out).await?
        }
        AuditCmd::Export { from_seq, from } => {
            let (source, _) = from.source()?;
            audit::export(&source, from_seq, &mut out).await?;
        }
        AuditCmd::State {
            dispute_id,
            at,
            from,
        } => {
            let (source, _) = from.source()?;
            let at = disputes_domain::time::parse(&at)
                .with_context(|| format!("--at {at:?} is not RFC 3339"))?;
            let view = audit::state_at(&source, &dispute_id, at).await?;
            writeln!(out, "{}", serde_json::to_string_pretty(&view)?)?;
        }
        AuditCmd::Verify { json, from } => {
            let (source, _) = from.source()?;
            let report = audit::verify(&source).await?;
            if json {
                writeln!(out, "{}", audit::audit_json(&report))?;
            } else {
                audit::print_audit(&report, &mut out)?;
            }
            if report.first_break.is_some() {
                return Ok(ExitCode::from(exit::HISTORY_BROKEN));
            }
        }
        AuditCmd::Rebuild { dir } => {
            let config = dir.config()?;
            let applied = audit::rebuild(&config.store.path, config.policy.to_policy()?)?;
            writeln!(out, "rebuilt the read models from {applied} events")?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_option_and_argument_of_every_command_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "disputes", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }
}
