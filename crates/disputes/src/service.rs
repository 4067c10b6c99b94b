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

/// Serves until `shutdown` trips (in-process use: the benchmarks).
pub async fn serve_until(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let policy = config.policy.to_policy()?;
    std::fs::create_dir_all(&config.store.path)
        .with_context(|| format!("create data dir {}", config.store.path.display()))?;
    let store = Arc::new(open_store(&config)?);
    let projections = Arc::new(open_projections(&config)?);
    let mut handler = CommandHandler::new(store.clone(), policy, config.limits.to_limits());
    if let Some(verifier) = config.auth.verifier(&config.store.path, now())? {
        tracing::info!(
            keys = verifier.keys_count(),
            "actor tokens required on every command"
        );
        handler = handler.with_actor_tokens(verifier);
    }
    let handler = Arc::new(handler);
    let metrics = Arc::new(Metrics::default());
    let fault = Arc::new(storage::Fault::default());
    let (restart_trigger, restart) = shutdown::channel();

    let prefix = config.nats.subject_prefix.clone();
    let (client, connected) = nats::connect(&config.nats, SERVICE_NAME).await?;
    let js = jetstream::new(client.clone());
    nats::ensure_events_stream(&js, &config.nats).await?;
    nats::ensure_deadlines_stream(&js, &config.nats).await?;
    // Connected now (JetStream answered): the server's INFO is known.
    let reply_bytes_max = reply_bytes_max(&client, &config)?;
    if config.auth.actor_tokens == ActorTokens::Off && client.server_info().auth_required {
        tracing::warn!(
            "actor tokens are off while NATS requires credentials: a NATS user that may send a command type may send it as any actor that type allows (a buyer gateway may send accept_proposal as the seller, post_message as the mediator); require actor tokens with keys bound to roles (docs/operations.md, \"Signed actors\")"
        );
    }
    let lease = Lease::acquire(&js, &prefix, &config.store.path).await?;

    projector::catch_up(&store, &projections).await?;
    let mut tasks = tokio::task::JoinSet::new();
    let read_models_fault = fault.clone();
    tasks.spawn(projector::run(
        store.clone(),
        projections.clone(),
        move |error| {
            if let FoldError::Projections(error @ ProjectionError::Storage(_)) = error {
                read_models_fault.report("the read models", error);
            }
        },
        shutdown.receiver(),
    ));
    tasks.spawn(storage::watch(
        store.clone(),
        fault.clone(),
        config.store.path.clone(),
        restart_trigger,
        shutdown.clone(),
    ));
    let publisher = Publisher::new(
        store.clone(),
        js.clone(),
        config.nats.events_stream.clone(),
        prefix.clone(),
    );
    let published = publisher.published();
    let publisher_problem = publisher.problem();
    tasks.spawn(publisher.run(connected, shutdown.clone()));
    let scheduler = Scheduler {
        projections: projections.clone(),
        js: js.clone(),
        prefix: prefix.clone(),
        metrics: metrics.clone(),
    };
    tasks.spawn(scheduler.run(shutdown.clone()));
    tasks.spawn(consume_expiries(
        js.clone(),
        config.nats.deadlines_stream.clone(),
        prefix.clone(),
        handler.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let lease_task = tokio::spawn(keep_lease(lease, shutdown.clone()));
    if let Some(addr) = config.http.addr()? {
        let listener = http::bind(addr)
            .await
            .with_context(|| format!("listen on [http] {addr}"))?;
        let routes = Arc::new(Routes {
            metrics: metrics.clone(),
            store: store.clone(),
            projections: projections.clone(),
            published: published.clone(),
            publisher_problem,
            fault: fault.clone(),
            client: client.clone(),
        });
        tasks.spawn(http::serve(listener, routes, shutdown.clone()));
    }

    let queries = Arc::new(Queries {
        store: store.clone(),
        projections: projections.clone(),
        list_limit_max: config.limits.list_limit_max,
        limits: config.limits.to_limits(),
        reply_bytes_max,
    });
    let endpoints = Endpoints {
        handler,
        queries,
        metrics,
        prefix,
        nats: config.nats.clone(),
        inflight: Arc::new(Semaphore::new(config.limits.inflight_max)),
    };
    tracing::info!(url = %config.nats.url, data = %config.store.path.display(), "disputes serving");
    endpoints
        .serve(&client, config.limits.inflight_max, &shutdown, &restart)
        .await?;
    if restart.is_set() {
        // sled must not be touched again (dropping it flushes, which waits forever after a failed
        // write): leave at once; everything acknowledged is on disk.
        let _ = tokio::time::timeout(Duration::from_secs(5), client.flush()).await;
        std::process::exit(storage::EXIT_STORAGE_FAILED);
    }

    wait_published(&store, published).await;
    shutdown_tasks(tasks).await;
    if let Ok(Some(lease)) = lease_task.await {
        // Bounded: with NATS unreachable the lease lapses by itself.
        if tokio::time::timeout(Duration::from_secs(5), lease.release())
            .await
            .is_err()
        {
            tracing::warn!("could not release the writer lease in time; it lapses by itself");
        }
    }
    projections.flush()?;
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
            *self
                .metrics
                .disputes_by_status
                .lock()
                .expect("metrics lock") = stats.by_status;
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
