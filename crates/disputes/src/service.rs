//! `disputes serve`: wires the store, the command handler, the read models, the publisher, the
//! scheduler and the NATS endpoints together, and stops them in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream;
use async_nats::service::{self, ServiceExt};
use bytes::Bytes;
use disputes_store::{EventStore, SledStore, StoreOptions};
use futures::StreamExt;
use tokio::sync::{watch, Semaphore};

use crate::clock::now;
use crate::config::{ActorTokens, Config};
use crate::lease::{Lease, LeaseLost, RENEW_EVERY};
use crate::metrics::{Dropped, Metrics};
use crate::publisher::Publisher;
use crate::scheduler::{consume_expiries, Scheduler};
use crate::shutdown::{self, Shutdown};
use crate::wire::{command_reply_json, refusal_json, reply_code, WireError as _};
use crate::{http, nats, storage};
use disputes_command::{CommandHandler, Reply};
use disputes_domain::ErrorCode;
use disputes_readside::projector::{self, FoldError};
use disputes_readside::{ProjectionError, Projections, Queries};

pub const SERVICE_NAME: &str = "disputes";
pub const QUEUE_GROUP: &str = "disputes";
/// How long a stop waits for the requests in flight.
const DRAIN_MAX: Duration = Duration::from_secs(15);
/// How long a clean stop waits for the publisher to send what the store holds.
const PUBLISH_GRACE: Duration = Duration::from_secs(5);
/// Room kept in a reply for what NATS adds to a message (headers of a service error).
const REPLY_HEADROOM_BYTES: usize = 1024;
/// How much longer than its request a command's reply can be: the envelopes' own fields
/// (ids, hashes, times) around the data the request carried, for the events of one command.
const COMMAND_REPLY_OVERHEAD_BYTES: usize = 16 * 1024;

/// The data dir's two sled dbs: the event log (the truth) and the read models (derived).
pub fn open_store(config: &Config) -> anyhow::Result<SledStore> {
    let path = config.store.path.join("events");
    SledStore::open(&path, StoreOptions::default())
        .with_context(|| format!("open the event store at {}", path.display()))
}

pub fn open_projections(config: &Config) -> anyhow::Result<Projections> {
    let path = config.store.path.join("projections");
    Projections::open(&path, config.policy.to_policy()?)
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
    let local = Local::open(&config)?;
    let (remote, lease) = Remote::connect(&config).await?;
    projector::catch_up(&local.store, &local.projections).await?;
    let (restart_trigger, restart) = shutdown::channel();
    let running = start_tasks(&config, &local, &remote, lease, restart_trigger, &shutdown).await?;
    let endpoints = Endpoints {
        handler: local.handler.clone(),
        queries: Arc::new(Queries {
            store: local.store.clone(),
            projections: local.projections.clone(),
            list_limit_max: config.limits.list_limit_max,
            limits: config.limits.to_limits(),
            reply_bytes_max: remote.reply_bytes_max,
        }),
        metrics: local.metrics.clone(),
        prefix: config.nats.subject_prefix.clone(),
        nats: config.nats.clone(),
        inflight: Arc::new(Semaphore::new(config.limits.inflight_max)),
    };
    tracing::info!(url = %config.nats.url, data = %config.store.path.display(), "disputes serving");
    endpoints
        .serve(
            &remote.client,
            config.limits.inflight_max,
            &shutdown,
            &restart,
        )
        .await?;
    if restart.is_set() {
        // sled must not be touched again (dropping it flushes, which waits forever after a failed
        // write): leave at once; everything acknowledged is on disk.
        let _ = tokio::time::timeout(Duration::from_secs(5), remote.client.flush()).await;
        std::process::exit(storage::EXIT_STORAGE_FAILED);
    }
    stop(local, remote.client, running).await
}

/// What lives in the data dir, and what works on it in this process.
struct Local {
    store: Arc<SledStore>,
    projections: Arc<Projections>,
    handler: Arc<CommandHandler<SledStore>>,
    metrics: Arc<Metrics>,
    fault: Arc<storage::Fault>,
}

impl Local {
    fn open(config: &Config) -> anyhow::Result<Local> {
        let policy = config.policy.to_policy()?;
        std::fs::create_dir_all(&config.store.path)
            .with_context(|| format!("create data dir {}", config.store.path.display()))?;
        let store = Arc::new(open_store(config)?);
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
}

/// The NATS side: connected, the streams there.
struct Remote {
    client: async_nats::Client,
    connected: watch::Receiver<u64>,
    js: jetstream::Context,
    reply_bytes_max: usize,
}

impl Remote {
    /// Connects, ensures the streams, and takes the writer lease.
    async fn connect(config: &Config) -> anyhow::Result<(Remote, Lease)> {
        let (client, connected) = nats::connect(&config.nats, SERVICE_NAME).await?;
        let js = jetstream::new(client.clone());
        nats::ensure_events_stream(&js, &config.nats).await?;
        nats::ensure_deadlines_stream(&js, &config.nats).await?;
        // Connected now (JetStream answered): the server's INFO is known.
        let reply_bytes_max = reply_bytes_max(&client, config)?;
        if config.auth.actor_tokens == ActorTokens::Off && client.server_info().auth_required {
            tracing::warn!(
                "actor tokens are off while NATS requires credentials: a NATS user that may send a command type may send it as any actor that type allows (a buyer gateway may send accept_proposal as the seller, post_message as the mediator); require actor tokens with keys bound to roles (docs/operations.md, \"Signed actors\")"
            );
        }
        let lease = Lease::acquire(&js, &config.nats.subject_prefix, &config.store.path).await?;
        let remote = Remote {
            client,
            connected,
            js,
            reply_bytes_max,
        };
        Ok((remote, lease))
    }
}

/// The background tasks, and what stopping waits for.
struct Running {
    tasks: tokio::task::JoinSet<()>,
    lease: tokio::task::JoinHandle<Option<Lease>>,
    published: watch::Receiver<u64>,
}

/// Starts the projector, the storage watch, the publisher, the scheduler, the expiry consumer,
/// the lease keeper and the HTTP endpoint.
async fn start_tasks(
    config: &Config,
    local: &Local,
    remote: &Remote,
    lease: Lease,
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
    let events_stream = config.nats.events_stream.clone();
    let publisher = Publisher::new(
        local.store.clone(),
        remote.js.clone(),
        events_stream,
        prefix.clone(),
    );
    let (published, publisher_problem) = (publisher.published(), publisher.problem());
    tasks.spawn(publisher.run(remote.connected.clone(), shutdown.clone()));
    let scheduler = Scheduler {
        projections: local.projections.clone(),
        js: remote.js.clone(),
        prefix: prefix.clone(),
        metrics: local.metrics.clone(),
    };
    tasks.spawn(scheduler.run(shutdown.clone()));
    tasks.spawn(consume_expiries(
        remote.js.clone(),
        config.nats.deadlines_stream.clone(),
        prefix.clone(),
        local.handler.clone(),
        local.metrics.clone(),
        shutdown.clone(),
    ));
    if let Some(addr) = config.http.addr()? {
        let listener = http::bind(addr)
            .await
            .with_context(|| format!("listen on [http] {addr}"))?;
        let routes = Arc::new(Routes {
            metrics: local.metrics.clone(),
            store: local.store.clone(),
            projections: local.projections.clone(),
            published: published.clone(),
            publisher_problem,
            fault: local.fault.clone(),
            client: remote.client.clone(),
        });
        tasks.spawn(http::serve(listener, routes, shutdown.clone()));
    }
    let lease = tokio::spawn(keep_lease(lease, shutdown.clone()));
    Ok(Running {
        tasks,
        lease,
        published,
    })
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
}

impl<S: EventStore + 'static> Endpoints<S> {
    /// Serves until shutdown, then stops taking requests and drains those in flight.
    async fn serve(
        &self,
        client: &async_nats::Client,
        inflight_max: usize,
        shutdown: &Shutdown,
        restart: &Shutdown,
    ) -> anyhow::Result<()> {
        let service = client
            .service_builder()
            .queue_group(QUEUE_GROUP)
            .description("marketplace buyer/seller disputes: commands and queries")
            .start(SERVICE_NAME, env!("CARGO_PKG_VERSION"))
            .await
            .map_err(|e| anyhow::anyhow!("start the NATS service: {e}"))?;
        let mut commands = service
            .endpoint_builder()
            .name("commands")
            .add(format!("{}.cmd.*", self.prefix))
            .await
            .map_err(|e| anyhow::anyhow!("add the commands endpoint: {e}"))?;
        let mut queries = service
            .endpoint_builder()
            .name("queries")
            .add(format!("{}.query.*", self.prefix))
            .await
            .map_err(|e| anyhow::anyhow!("add the queries endpoint: {e}"))?;
        loop {
            tokio::select! {
                Some(request) = commands.next() => self.spawn_command(request).await,
                Some(request) = queries.next() => self.spawn_query(request).await,
                _ = shutdown.wait() => break,
                _ = restart.wait() => break,
            }
        }
        tracing::info!("stopping: no new requests; draining those in flight");
        let drain = async {
            let _ = commands.stop().await;
            let _ = queries.stop().await;
            let _ = service.stop().await;
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
    /// other is dropped, neither applied nor answered, and counted.
    fn admit(&self, request: &service::Request) -> bool {
        let refused = match request.message.reply.as_deref() {
            None => Dropped::NoReplySubject,
            Some(reply) if !self.nats.answers_on(reply) => Dropped::ReplySubjectRefused,
            Some(_) => return true,
        };
        tracing::debug!(subject = %request.message.subject, reason = refused.label(), "request dropped");
        self.metrics.dropped(refused);
        false
    }

    async fn spawn_command(&self, request: service::Request) {
        if !self.admit(&request) {
            return;
        }
        let permit = self
            .inflight
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore open");
        let handler = self.handler.clone();
        let metrics = self.metrics.clone();
        let command_type = token_after(&request.message.subject, &self.prefix, "cmd");
        tokio::spawn(async move {
            let started = Instant::now();
            let body = request.message.payload.clone();
            let ty = command_type.clone();
            let reply =
                tokio::task::spawn_blocking(move || handler.handle(&ty, &body, now())).await;
            let reply = match reply {
                Ok(reply) => reply,
                Err(e) => {
                    tracing::error!(error = %e, "command task failed");
                    return;
                }
            };
            let code = reply_code(&reply);
            let label = if code == "unknown_command" {
                "unknown"
            } else {
                command_type.as_str()
            };
            metrics.command(label, code);
            if let Reply::Refused(rejection) = &reply {
                if rejection.code() == ErrorCode::Unavailable {
                    tracing::error!(error = %rejection, "a command could not be served");
                }
            }
            if let Reply::Accepted(accepted) = &reply {
                if !accepted.replayed {
                    metrics.events_appended.inc_by(accepted.events.len() as u64);
                }
            }
            respond(
                &request,
                serde_json::to_vec(&command_reply_json(&reply)).expect("replies serialize"),
            )
            .await;
            metrics
                .command_latency
                .observe(started.elapsed().as_secs_f64());
            drop(permit);
        });
    }

    async fn spawn_query(&self, request: service::Request) {
        if !self.admit(&request) {
            return;
        }
        let permit = self
            .inflight
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore open");
        let queries = self.queries.clone();
        let name = token_after(&request.message.subject, &self.prefix, "query");
        tokio::spawn(async move {
            let answer = queries.answer(&name, &request.message.payload, now()).await;
            let answer = answer.unwrap_or_else(|error| {
                if error.code() == ErrorCode::Unavailable {
                    tracing::error!(%error, "a query could not be answered");
                }
                serde_json::to_vec(&refusal_json(&error)).expect("refusals serialize")
            });
            respond(&request, answer).await;
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

/// Replies to a request that [`Endpoints::admit`] let in.
async fn respond(request: &service::Request, payload: Vec<u8>) {
    if let Err(e) = request.respond(Ok(Bytes::from(payload))).await {
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
                std::process::exit(3);
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

struct Routes<S> {
    metrics: Arc<Metrics>,
    store: Arc<S>,
    projections: Arc<Projections>,
    published: watch::Receiver<u64>,
    publisher_problem: watch::Receiver<Option<String>>,
    fault: Arc<storage::Fault>,
    client: async_nats::Client,
}

impl<S: EventStore + 'static> http::Routes for Routes<S> {
    fn metrics(&self) -> String {
        self.metrics.store_seq.set(self.store.head() as i64);
        self.metrics
            .published_seq
            .set(*self.published.borrow() as i64);
        self.metrics
            .projected_seq
            .set(self.projections.checkpoint() as i64);
        self.metrics
            .pending_deadlines
            .set(self.projections.deadlines_count() as i64);
        if let Ok(stats) = self.projections.stats(None) {
            self.metrics.set_disputes_by_status(&stats.by_status);
        }
        self.metrics.render()
    }

    fn healthy(&self) -> Result<(), String> {
        if let Some(error) = self.store.failure() {
            return Err(format!("storage: the event store failed: {error}"));
        }
        if let Some(failure) = self.fault.failure() {
            return Err(format!("storage: {failure}"));
        }
        if let Some(problem) = self.publisher_problem.borrow().as_ref() {
            return Err(format!("publisher stopped: {problem}"));
        }
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(format!("nats {state:?}")),
        }
    }
}
