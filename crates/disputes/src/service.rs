//! `disputes serve`: wires the store, the command handler, the read models, the publisher, the
//! scheduler and the NATS endpoints together, and stops them in order.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream;
use bytes::Bytes;
use disputes_store::EventStore;
use futures::StreamExt;
use tokio::sync::{watch, Semaphore};

use crate::clock::now;
use crate::config::{ActorTokens, Backend, Config};
use crate::leader;
use crate::lease::{Lease, LeaseLost, RENEW_EVERY};
use crate::log::Log;
use crate::metrics::{Dropped, Metrics};
use crate::micro::{Group, Micro, ServiceError};
use crate::publisher::Publisher;
use crate::scheduler::{consume_expiries, Scheduler};
use crate::shutdown::{self, Shutdown};
use crate::wire::{command_reply_json, refusal_json, reply_code, WireError as _};
use crate::{http, nats, storage};
use disputes_command::{CommandHandler, Reply};
use disputes_domain::{ErrorCode, Refusal};
use disputes_readside::projector::{self, FoldError};
use disputes_readside::{ProjectionError, Projections, Queries};

pub const SERVICE_NAME: &str = "disputes";
pub const QUEUE_GROUP: &str = "disputes";
/// The version the services API reports.
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// How long a stop waits for the requests in flight.
const DRAIN_MAX: Duration = Duration::from_secs(15);
/// How long a clean stop waits for the publisher to send what the store holds.
const PUBLISH_GRACE: Duration = Duration::from_secs(5);
/// Room kept in a reply for what NATS adds to a message (headers of a service error).
const REPLY_HEADROOM_BYTES: usize = 1024;
/// How much longer than its request a command's reply can be: the envelopes' own fields
/// (ids, hashes, times) around the data the request carried, for the events of one command.
const COMMAND_REPLY_OVERHEAD_BYTES: usize = 16 * 1024;

/// The read models, in the data dir (derived from the log; the log is `Log`'s).
pub fn open_projections(config: &Config) -> anyhow::Result<Projections> {
    let path = config.store.path.join("projections");
    let cache_bytes = config.store.read_models_cache_mb * 1024 * 1024;
    Projections::open_with_cache(&path, config.policy.to_policy()?, cache_bytes)
        .with_context(|| format!("open the read models at {}", path.display()))
}

/// Serves until SIGTERM or SIGINT.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(watch_signals(trigger));
    serve_until(config, shutdown).await
}

/// Serves until `shutdown` trips (in-process use: the benchmarks). The steps: open the data dir,
/// connect to NATS and take the writer lease, catch the read models up, start the background
/// tasks, serve the endpoints, then stop in order.
pub async fn serve_until(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    // First the HTTP port: from here on a probe is not refused. Its connections wait in the backlog
    // while the data dir opens, then hear "starting: …" until the service serves.
    let listener = bind_http(&config).await?;
    let Some((local, connected)) = open_local(&config, &shutdown).await? else {
        return Ok(());
    };
    let site = Arc::new(Site::new(&local, &config));
    let http = listener
        .map(|listener| tokio::spawn(http::serve(listener, site.clone(), shutdown.clone())));
    tokio::spawn(watchdog(shutdown.clone()));
    let (remote, lease) = match connected {
        // The stream's expected-sequence checks keep writers apart: no writer lease.
        Some(remote) => (remote, None),
        None => {
            site.set_phase(Phase::Starting(
                "connecting to NATS and taking the writer lease",
            ));
            let Some(remote) = until_stopped(&shutdown, Remote::connect(&config)).await? else {
                return Ok(());
            };
            let lease =
                Lease::acquire(&remote.js, &config.nats.subject_prefix, &config.store.path).await?;
            (remote, Some(lease))
        }
    };
    let local = local.catch_up(&site).await?;
    let queries = Arc::new(Queries {
        store: local.store.clone(),
        projections: local.projections.clone(),
        list_limit_max: config.limits.list_limit_max,
        limits: config.limits.to_limits(),
        reply_bytes_max: remote.reply_bytes_max,
    });
    let _ = site.queries.set(queries.clone());
    let (restart_trigger, restart) = shutdown::channel();
    let running = start_tasks(&config, &local, &remote, lease, restart_trigger, &shutdown)?;
    let _ = site.remote.set(RemoteHealth {
        client: remote.client.clone(),
        published: running.published.clone(),
        publisher_problem: running.publisher_problem.clone(),
    });
    let endpoints = Endpoints::new(&config, &local, queries);
    let serving = || {
        tracing::info!(url = %config.nats.url, data = %config.store.path.display(), "disputes serving");
        site.set_phase(Phase::Serving);
    };
    let served = endpoints
        .serve(
            &remote.client,
            config.limits.inflight_max,
            &shutdown,
            &restart,
            serving,
        )
        .await;
    site.set_phase(Phase::Stopping);
    served?;
    if restart.is_set() {
        // sled must not be touched again (dropping it flushes, which waits forever after a failed
        // write): leave at once; everything acknowledged is on disk.
        let _ = tokio::time::timeout(Duration::from_secs(5), remote.client.flush()).await;
        std::process::exit(storage::EXIT_STORAGE_FAILED);
    }
    let stopped = stop(local, remote.client, running).await;
    if let Some(http) = http {
        let _ = tokio::time::timeout(Duration::from_secs(5), http).await;
    }
    stopped
}

/// Opens the log and the read models. The sled log opens before NATS is reached; the JetStream
/// log needs NATS to open at all (then returned too). `None`: a stop came first.
async fn open_local(
    config: &Config,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<(Local, Option<Remote>)>> {
    match config.store.backend {
        Backend::Sled => Ok(Some((Local::open(config, Log::open_sled(config)?)?, None))),
        Backend::Jetstream => {
            let Some(remote) = until_stopped(shutdown, Remote::connect(config)).await? else {
                return Ok(None);
            };
            let opening = Log::open_jetstream(config, remote.client.clone());
            let Some(log) = until_stopped(shutdown, opening).await? else {
                return Ok(None);
            };
            Ok(Some((Local::open(config, log)?, Some(remote))))
        }
    }
}

/// `step`'s result, or `None` when a stop is asked for first (NATS may be unreachable for long).
async fn until_stopped<T>(
    shutdown: &Shutdown,
    step: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<Option<T>> {
    tokio::select! {
        done = step => done.map(Some),
        _ = shutdown.wait() => {
            tracing::info!("stopped before start-up finished");
            Ok(None)
        }
    }
}

async fn bind_http(config: &Config) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let Some(addr) = config.http.addr()? else {
        return Ok(None);
    };
    let listener = http::bind(addr)
        .await
        .with_context(|| format!("listen on [http] {addr}"))?;
    Ok(Some(listener))
}

/// Tells systemd the process is alive, when its unit sets `WatchdogSec=`: from the async runtime,
/// so a runtime that stopped making progress is restarted.
async fn watchdog(shutdown: Shutdown) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) {
        return;
    }
    let every = Duration::from_micros(usec / 2);
    loop {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        if shutdown.sleep(every).await {
            return;
        }
    }
}

/// What lives in the data dir, and what works on it in this process.
struct Local {
    store: Arc<Log>,
    projections: Arc<Projections>,
    handler: Arc<CommandHandler<Log>>,
    metrics: Arc<Metrics>,
    fault: Arc<storage::Fault>,
}

impl Local {
    fn open(config: &Config, log: Log) -> anyhow::Result<Local> {
        let policy = config.policy.to_policy()?;
        let store = Arc::new(log);
        let projections = Arc::new(open_projections(config)?);
        let mut handler = CommandHandler::new(store.clone(), policy, config.limits.to_limits());
        if let Some(verifier) = config.auth.verifier(&config.store.path, now())? {
            tracing::info!(
                keys = verifier.keys_count(),
                "actor tokens required on every command"
            );
            handler = handler.with_actor_tokens(verifier);
        }
        Ok(Local {
            store,
            projections,
            handler: Arc::new(handler),
            metrics: Arc::new(Metrics::default()),
            fault: Arc::new(storage::Fault::default()),
        })
    }

    /// Catches the read models up with the log. After a catch-up they are opened again, which
    /// gives back the memory sled grew during it (about 100 MiB after a rebuild of 2,000,000
    /// events); for a short one that costs a few milliseconds.
    async fn catch_up(self, site: &Site<Log>) -> anyhow::Result<Local> {
        site.set_phase(Phase::Starting("catching up the read models"));
        if projector::catch_up(&self.store, &self.projections).await? == 0 {
            return Ok(self);
        }
        site.set_phase(Phase::Starting(
            "opening the read models again after the catch-up",
        ));
        self.reopen_projections(site).await
    }

    /// [`Projections::reopen`], before anything but the HTTP site holds them (it lets go
    /// meanwhile). Should anything else still hold them, they stay as they are.
    async fn reopen_projections(self, site: &Site<Log>) -> anyhow::Result<Local> {
        let Local {
            store,
            projections,
            handler,
            metrics,
            fault,
        } = self;
        site.let_go_of_projections();
        let projections = match Arc::try_unwrap(projections) {
            Ok(projections) => {
                let started = Instant::now();
                let reopened = tokio::task::spawn_blocking(move || projections.reopen())
                    .await?
                    .context("open the read models again after the catch-up")?;
                tracing::info!(
                    secs = started.elapsed().as_secs_f64(),
                    "read models opened again after the catch-up"
                );
                Arc::new(reopened)
            }
            Err(projections) => {
                tracing::warn!("the read models are still in use: not opened again");
                projections
            }
        };
        site.hold_projections(projections.clone());
        Ok(Local {
            store,
            projections,
            handler,
            metrics,
            fault,
        })
    }
}

/// The NATS side: connected, the streams there.
struct Remote {
    client: async_nats::Client,
    connected: watch::Receiver<u64>,
    js: jetstream::Context,
    reply_bytes_max: usize,
}

impl Remote {
    /// Connects and ensures the streams (the JetStream log ensures its own).
    async fn connect(config: &Config) -> anyhow::Result<Remote> {
        let (client, connected) = nats::connect(&config.nats, SERVICE_NAME).await?;
        let js = jetstream::new(client.clone());
        if config.store.backend == Backend::Sled {
            nats::ensure_events_stream(&js, &config.nats).await?;
        }
        nats::ensure_deadlines_stream(&js, &config.nats).await?;
        // Connected now (JetStream answered): the server's INFO is known.
        let reply_bytes_max = reply_bytes_max(&client, config)?;
        if config.auth.actor_tokens == ActorTokens::Off && client.server_info().auth_required {
            tracing::warn!(
                "actor tokens are off while NATS requires credentials: a NATS user that may send a command type may send it as any actor that type allows (a buyer gateway may send accept_proposal as the seller, post_message as the mediator); require actor tokens with keys bound to roles (docs/operations.md, \"Signed actors\")"
            );
        }
        Ok(Remote {
            client,
            connected,
            js,
            reply_bytes_max,
        })
    }
}

/// The background tasks, and what stopping waits for.
struct Running {
    tasks: tokio::task::JoinSet<()>,
    lease: tokio::task::JoinHandle<Option<Lease>>,
    published: watch::Receiver<u64>,
    publisher_problem: watch::Receiver<Option<String>>,
}

/// Starts the projector, the storage watch, the publisher, the scheduler, the expiry consumer
/// and the lease keeper.
fn start_tasks(
    config: &Config,
    local: &Local,
    remote: &Remote,
    lease: Option<Lease>,
    restart: shutdown::Trigger,
    shutdown: &Shutdown,
) -> anyhow::Result<Running> {
    let prefix = &config.nats.subject_prefix;
    let mut tasks = tokio::task::JoinSet::new();
    let fault = local.fault.clone();
    tasks.spawn(projector::run(
        local.store.clone(),
        local.projections.clone(),
        move |error| {
            if let FoldError::Projections(error @ ProjectionError::Storage(_)) = error {
                fault.report("the read models", error);
            }
        },
        shutdown.receiver(),
    ));
    let data_dir = config.store.path.clone();
    let (store, fault) = (local.store.clone(), local.fault.clone());
    tasks.spawn(storage::watch(
        store,
        fault,
        data_dir,
        restart,
        shutdown.clone(),
    ));
    let (published, publisher_problem) = if local.store.is_stream() {
        // The log is the events stream: whatever it holds is published.
        (local.store.subscribe(), watch::channel(None).1)
    } else {
        let events_stream = config.nats.events_stream.clone();
        let publisher = Publisher::new(
            local.store.clone(),
            remote.js.clone(),
            events_stream,
            prefix.clone(),
        );
        let watches = (publisher.published(), publisher.problem());
        tasks.spawn(publisher.run(remote.connected.clone(), shutdown.clone()));
        watches
    };
    spawn_scheduler(&mut tasks, local, remote, prefix, shutdown);
    tasks.spawn(consume_expiries(
        remote.js.clone(),
        config.nats.deadlines_stream.clone(),
        prefix.clone(),
        local.handler.clone(),
        local.metrics.clone(),
        shutdown.clone(),
    ));
    let lease = match lease {
        Some(lease) => tokio::spawn(keep_lease(lease, shutdown.clone())),
        None => tokio::spawn(std::future::ready(None)),
    };
    Ok(Running {
        tasks,
        lease,
        published,
        publisher_problem,
    })
}

/// The scheduler: on the sled log the writer lease already makes this the only instance; on the
/// JetStream log several instances may share it, and one schedules at a time (`leader`).
fn spawn_scheduler(
    tasks: &mut tokio::task::JoinSet<()>,
    local: &Local,
    remote: &Remote,
    prefix: &str,
    shutdown: &Shutdown,
) {
    let scheduler = {
        let (projections, js) = (local.projections.clone(), remote.js.clone());
        let (prefix, metrics) = (prefix.to_owned(), local.metrics.clone());
        move |shutdown: Shutdown| {
            let scheduler = Scheduler {
                projections: projections.clone(),
                js: js.clone(),
                prefix: prefix.clone(),
                metrics: metrics.clone(),
            };
            scheduler.run(shutdown)
        }
    };
    if local.store.is_stream() {
        let key = format!("{prefix}.scheduler");
        let js = remote.js.clone();
        tasks.spawn(leader::lead(js, key, shutdown.clone(), scheduler));
    } else {
        tasks.spawn(scheduler(shutdown.clone()));
    }
}

/// After the endpoints stopped: let the publisher send what the store holds, stop the tasks,
/// give the lease back, flush the read models.
async fn stop(local: Local, client: async_nats::Client, running: Running) -> anyhow::Result<()> {
    wait_published(&local.store, running.published).await;
    shutdown_tasks(running.tasks).await;
    if let Ok(Some(lease)) = running.lease.await {
        // Bounded: with NATS unreachable the lease lapses by itself.
        if tokio::time::timeout(Duration::from_secs(5), lease.release())
            .await
            .is_err()
        {
            tracing::warn!("could not release the writer lease in time; it lapses by itself");
        }
    }
    local.projections.flush()?;
    let _ = tokio::time::timeout(Duration::from_secs(5), client.flush()).await;
    tracing::info!("disputes stopped cleanly");
    Ok(())
}

/// The longest reply the service may send: the server's `max_payload`, less headroom. Refuses to
/// start when a command's reply could not fit (`[limits] body_bytes_max` against `max_payload`).
fn reply_bytes_max(client: &async_nats::Client, config: &Config) -> anyhow::Result<usize> {
    let max_payload = client.server_info().max_payload;
    let needed = config.limits.body_bytes_max + COMMAND_REPLY_OVERHEAD_BYTES + REPLY_HEADROOM_BYTES;
    anyhow::ensure!(
        max_payload >= needed,
        "the NATS server's max_payload ({max_payload} bytes) is too small for [limits] body_bytes_max = {}: a command's reply can take {needed} bytes; raise max_payload or lower body_bytes_max",
        config.limits.body_bytes_max
    );
    Ok(max_payload - REPLY_HEADROOM_BYTES)
}

struct Endpoints<S> {
    handler: Arc<CommandHandler<S>>,
    queries: Arc<Queries<S>>,
    metrics: Arc<Metrics>,
    prefix: String,
    /// Which reply subjects are answered.
    nats: crate::config::NatsConfig,
    inflight: Arc<Semaphore>,
    /// The services API: identity, endpoints and their statistics.
    micro: Arc<Micro>,
}

impl Endpoints<Log> {
    fn new(config: &Config, local: &Local, queries: Arc<Queries<Log>>) -> Self {
        let prefix = &config.nats.subject_prefix;
        Endpoints {
            handler: local.handler.clone(),
            queries,
            metrics: local.metrics.clone(),
            prefix: prefix.clone(),
            nats: config.nats.clone(),
            inflight: Arc::new(Semaphore::new(config.limits.inflight_max)),
            micro: Arc::new(Micro::new(SERVICE_NAME, VERSION, prefix, QUEUE_GROUP)),
        }
    }
}

impl<S: EventStore + 'static> Endpoints<S> {
    /// Serves until shutdown, then stops taking requests and drains those in flight.
    async fn serve(
        &self,
        client: &async_nats::Client,
        inflight_max: usize,
        shutdown: &Shutdown,
        restart: &Shutdown,
        on_serving: impl FnOnce(),
    ) -> anyhow::Result<()> {
        let mut commands = client
            .queue_subscribe(format!("{}.cmd.*", self.prefix), QUEUE_GROUP.to_owned())
            .await
            .map_err(|e| anyhow::anyhow!("subscribe to the commands: {e}"))?;
        let mut queries = client
            .queue_subscribe(format!("{}.query.*", self.prefix), QUEUE_GROUP.to_owned())
            .await
            .map_err(|e| anyhow::anyhow!("subscribe to the queries: {e}"))?;
        let mut discovery = self
            .micro
            .subscribe(client)
            .await
            .map_err(|e| anyhow::anyhow!("subscribe to the services API ($SRV): {e}"))?;
        on_serving();
        loop {
            tokio::select! {
                Some(request) = commands.next() => self.spawn_command(client, request).await,
                Some(request) = queries.next() => self.spawn_query(client, request).await,
                Some(request) = discovery.subs.next() => self.discover(client, request).await,
                _ = shutdown.wait() => break,
                _ = restart.wait() => break,
            }
        }
        tracing::info!("stopping: no new requests; draining those in flight");
        let drain = async {
            let _ = commands.unsubscribe().await;
            let _ = queries.unsubscribe().await;
            drop(discovery);
            let _ = self.inflight.acquire_many(inflight_max as u32).await;
        };
        // Every acknowledged command is already durable: a drain that cannot finish (NATS gone,
        // a stuck request) must not keep the process from stopping.
        if tokio::time::timeout(DRAIN_MAX, drain).await.is_err() {
            tracing::warn!(
                "in-flight requests did not finish within {DRAIN_MAX:?}; stopping anyway"
            );
        }
        Ok(())
    }

    /// Whether to work on a request at all: only one whose reply subject we may answer on. Any
    /// other is dropped, neither applied nor answered, and counted. The reply subject, when admitted.
    fn admit(&self, request: &async_nats::Message) -> Option<async_nats::Subject> {
        let refused = match request.reply.as_ref() {
            None => Dropped::NoReplySubject,
            Some(reply) if !self.nats.answers_on(reply) => Dropped::ReplySubjectRefused,
            Some(reply) => return Some(reply.clone()),
        };
        tracing::debug!(subject = %request.subject, reason = refused.label(), "request dropped");
        self.metrics.dropped(refused);
        None
    }

    /// `$SRV.PING`, `INFO`, `STATS`: answered on an admitted reply subject like any request.
    async fn discover(&self, client: &async_nats::Client, request: async_nats::Message) {
        let Some(reply) = self.admit(&request) else {
            return;
        };
        if let Some(answer) = self.micro.answer(&request.subject) {
            if let Err(e) = client.publish(reply, answer).await {
                tracing::warn!(error = %e, "could not answer a services API request");
            }
        }
    }

    async fn spawn_command(&self, client: &async_nats::Client, request: async_nats::Message) {
        let Some(reply_to) = self.admit(&request) else {
            return;
        };
        let permit = self
            .inflight
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore open");
        let handler = self.handler.clone();
        let (metrics, micro, client) = (self.metrics.clone(), self.micro.clone(), client.clone());
        let command_type = token_after(&request.subject, &self.prefix, "cmd");
        tokio::spawn(async move {
            let started = Instant::now();
            let traced = crate::trace::read(request.headers.as_ref());
            let body = request.payload;
            let ty = command_type.clone();
            // Judged on this task; the append is awaited, no thread blocked for it.
            let reply = match traced {
                Ok(trace) => handler.handle_traced_async(&ty, &body, &trace, now()).await,
                Err(refusal) => Reply::Refused(refusal.into()),
            };
            let code = reply_code(&reply);
            let label = if code == "unknown_command" {
                "unknown"
            } else {
                command_type.as_str()
            };
            metrics.command(label, code);
            let error = match &reply {
                Reply::Refused(rejection) => {
                    if rejection.code() == ErrorCode::Unavailable {
                        tracing::error!(error = %rejection, "a command could not be served");
                    }
                    Some(ServiceError::new(rejection.code(), &rejection.message()))
                }
                Reply::Accepted(accepted) => {
                    if !accepted.replayed {
                        metrics.events_appended.inc_by(accepted.events.len() as u64);
                    }
                    None
                }
            };
            let payload =
                serde_json::to_vec(&command_reply_json(&reply)).expect("replies serialize");
            respond(&client, reply_to, payload, error.as_ref()).await;
            let took = started.elapsed();
            micro.record(Group::Cmd, &command_type, took, error.as_ref());
            metrics.command_latency.observe(took.as_secs_f64());
            drop(permit);
        });
    }

    async fn spawn_query(&self, client: &async_nats::Client, request: async_nats::Message) {
        let Some(reply_to) = self.admit(&request) else {
            return;
        };
        let permit = self
            .inflight
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore open");
        let (queries, metrics) = (self.queries.clone(), self.metrics.clone());
        let (micro, client) = (self.micro.clone(), client.clone());
        let name = token_after(&request.subject, &self.prefix, "query");
        tokio::spawn(async move {
            let started = Instant::now();
            let answer = answer_query(&queries, &metrics, &name, &request.payload).await;
            let error = answer
                .refusal
                .map(|(code, message)| ServiceError::new(code, &message));
            respond(&client, reply_to, answer.bytes, error.as_ref()).await;
            micro.record(Group::Query, &name, started.elapsed(), error.as_ref());
            drop(permit);
        });
    }
}

/// The token after `<prefix>.<kind>.` in a subject.
fn token_after(subject: &str, prefix: &str, kind: &str) -> String {
    subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_prefix(kind))
        .and_then(|rest| rest.strip_prefix('.'))
        .unwrap_or_default()
        .to_owned()
}

/// Replies to a request that [`Endpoints::admit`] let in: a refusal carries the services API's
/// error headers beside its JSON body.
async fn respond(
    client: &async_nats::Client,
    reply_to: async_nats::Subject,
    payload: Vec<u8>,
    error: Option<&ServiceError>,
) {
    let sent = match error {
        None => client.publish(reply_to, Bytes::from(payload)).await,
        Some(error) => {
            client
                .publish_with_headers(reply_to, error.headers(), Bytes::from(payload))
                .await
        }
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "could not send a reply");
    }
}

async fn watch_signals(trigger: shutdown::Trigger) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
    trigger.trip();
}

/// Renews the writer lease; if another writer took it, stop serving at once.
async fn keep_lease(mut lease: Lease, shutdown: Shutdown) -> Option<Lease> {
    loop {
        if shutdown.sleep(RENEW_EVERY).await {
            return Some(lease);
        }
        match lease.renew().await {
            Ok(()) => {}
            Err(LeaseLost::Unreachable(why)) => {
                tracing::warn!(%why, "could not renew the writer lease")
            }
            Err(LeaseLost::TakenBy(holder)) => {
                tracing::error!(%holder, "another instance took the writer lease: exiting to avoid two writers");
                std::process::exit(crate::exit::LEASE_TAKEN.into());
            }
        }
    }
}

async fn wait_published<S: EventStore>(store: &Arc<S>, mut published: watch::Receiver<u64>) {
    let head = store.head();
    let _ = tokio::time::timeout(PUBLISH_GRACE, published.wait_for(|seq| *seq >= head)).await;
}

async fn shutdown_tasks(mut tasks: tokio::task::JoinSet<()>) {
    let deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { return },
            _ = &mut deadline => {
                tracing::warn!("background tasks did not stop in time; aborting them");
                tasks.abort_all();
                return;
            }
        }
    }
}

/// Where start-up stands: `/readyz`, `disputes_ready`, and systemd's `STATUS=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting(&'static str),
    Serving,
    Stopping,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Starting(step) => write!(f, "starting: {step}"),
            Phase::Serving => f.write_str("serving"),
            Phase::Stopping => f.write_str("stopping"),
        }
    }
}

/// The NATS side's health, once connected and the publisher runs.
struct RemoteHealth {
    client: async_nats::Client,
    published: watch::Receiver<u64>,
    publisher_problem: watch::Receiver<Option<String>>,
}

/// What the HTTP side reads ([`http::Site`]), filled in as start-up proceeds.
struct Site<S> {
    metrics: Arc<Metrics>,
    store: Arc<S>,
    /// `None` only while start-up opens them again (`Local::reopen_projections`).
    projections: std::sync::RwLock<Option<Arc<Projections>>>,
    /// The read models' checkpoint, which stays subscribed across that.
    projected: watch::Receiver<u64>,
    fault: Arc<storage::Fault>,
    prefix: String,
    phase: watch::Sender<Phase>,
    remote: OnceLock<RemoteHealth>,
    queries: OnceLock<Arc<Queries<S>>>,
}

impl Site<Log> {
    fn new(local: &Local, config: &Config) -> Site<Log> {
        Site {
            metrics: local.metrics.clone(),
            store: local.store.clone(),
            projections: std::sync::RwLock::new(Some(local.projections.clone())),
            projected: local.projections.subscribe(),
            fault: local.fault.clone(),
            prefix: config.nats.subject_prefix.clone(),
            phase: watch::Sender::new(Phase::Starting("opening the data dir")),
            remote: OnceLock::new(),
            queries: OnceLock::new(),
        }
    }
}

impl<S> Site<S> {
    fn let_go_of_projections(&self) {
        *self.projections.write().expect("the site's read models") = None;
    }

    fn hold_projections(&self, projections: Arc<Projections>) {
        *self.projections.write().expect("the site's read models") = Some(projections);
    }

    /// Moves start-up on, and tells systemd (when it runs the service with `Type=notify`).
    fn set_phase(&self, phase: Phase) {
        self.phase.send_replace(phase);
        let status = phase.to_string();
        let mut states = vec![sd_notify::NotifyState::Status(&status)];
        match phase {
            Phase::Serving => states.push(sd_notify::NotifyState::Ready),
            Phase::Stopping => states.push(sd_notify::NotifyState::Stopping),
            Phase::Starting(step) => tracing::info!("starting: {step}"),
        }
        // Without NOTIFY_SOCKET (not under systemd) this does nothing.
        let _ = sd_notify::notify(false, &states);
    }
}

impl<S: EventStore + 'static> http::Site for Site<S> {
    fn metrics(&self) -> String {
        let m = &self.metrics;
        m.store_seq.set(self.store.head() as i64);
        m.projected_seq.set(*self.projected.borrow() as i64);
        if let Some(projections) = &*self.projections.read().expect("the site's read models") {
            m.pending_deadlines
                .set(projections.deadlines_count() as i64);
            if let Ok(stats) = projections.stats(None) {
                m.set_disputes_by_status(&stats.by_status);
            }
        }
        if let Some(remote) = self.remote.get() {
            m.published_seq.set(*remote.published.borrow() as i64);
            m.publisher_stopped
                .set(remote.publisher_problem.borrow().is_some() as i64);
        }
        let connected = self.remote.get().is_some_and(|r| {
            r.client.connection_state() == async_nats::connection::State::Connected
        });
        m.nats_connected.set(connected as i64);
        m.ready.set(http::Site::ready(self).is_ok() as i64);
        m.render()
    }

    fn healthy(&self) -> Result<(), String> {
        if let Some(error) = self.store.failure() {
            return Err(format!("storage: the event store failed: {error}"));
        }
        if let Some(failure) = self.fault.failure() {
            return Err(format!("storage: {failure}"));
        }
        let Some(remote) = self.remote.get() else {
            return Err(self.phase.borrow().to_string());
        };
        if let Some(problem) = remote.publisher_problem.borrow().as_ref() {
            return Err(format!("publisher stopped: {problem}"));
        }
        match remote.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(format!("nats {state:?}")),
        }
    }

    fn ready(&self) -> Result<(), String> {
        let phase = *self.phase.borrow();
        if phase != Phase::Serving {
            return Err(phase.to_string());
        }
        self.healthy()
    }

    async fn query(&self, name: String, body: Vec<u8>) -> (Vec<u8>, String) {
        let phase = *self.phase.borrow();
        let Some(queries) = self.queries.get().filter(|_| phase == Phase::Serving) else {
            let refusal = Refusal::new(ErrorCode::Unavailable, format!("not ready ({phase})"));
            let body = serde_json::to_vec(&refusal_json(&refusal)).expect("refusals serialize");
            return (body, ErrorCode::Unavailable.as_str().to_owned());
        };
        let answer = answer_query(queries, &self.metrics, &name, &body).await;
        let code = answer.code().to_owned();
        (answer.bytes, code)
    }

    fn projected(&self) -> watch::Receiver<u64> {
        self.projected.clone()
    }

    fn info(&self) -> serde_json::Value {
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "commit": crate::COMMIT,
            "ready": http::Site::ready(self).is_ok(),
            "subject_prefix": self.prefix,
        })
    }

    fn count_request(&self, route: &'static str, status: u16) {
        self.metrics.http_request(route, status);
    }
}

/// A query's answer: the reply's bytes, and its code and message when it is a refusal.
struct Answer {
    bytes: Vec<u8>,
    refusal: Option<(ErrorCode, String)>,
}

impl Answer {
    fn code(&self) -> &'static str {
        self.refusal
            .as_ref()
            .map_or("ok", |(code, _)| code.as_str())
    }
}

/// Answers one query (over NATS or HTTP), counted and timed.
async fn answer_query<S: EventStore + 'static>(
    queries: &Queries<S>,
    metrics: &Metrics,
    name: &str,
    body: &[u8],
) -> Answer {
    let started = Instant::now();
    let answer = match queries.answer(name, body, now()).await {
        Ok(bytes) => Answer {
            bytes,
            refusal: None,
        },
        Err(error) => {
            if error.code() == ErrorCode::Unavailable {
                tracing::error!(%error, "a query could not be answered");
            }
            Answer {
                bytes: serde_json::to_vec(&refusal_json(&error)).expect("refusals serialize"),
                refusal: Some((error.code(), error.message())),
            }
        }
    };
    metrics.query(name, answer.code(), started.elapsed().as_secs_f64());
    answer
}
