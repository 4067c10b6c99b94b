//! The command side: parse, answer repeats, rebuild the dispute, decide, append durably, reply.
//!
//! Each command's decision is made on the caller's thread; its append is queued and the reply
//! follows once the events are on disk. The NATS edge awaits it on the command's own task
//! ([`CommandHandler::handle_traced_async`]); [`CommandHandler::handle`] and the expiries wait on
//! that same path with `block_on`; the scheduler awaits a batch of expiries
//! ([`CommandHandler::expire_many_async`]).
//! Everything here is deterministic given `now`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use disputes_domain::{
    self as domain, DeadlineKind, ErrorCode, Event, Limits, Policy, Refusal, Request, State,
};
use disputes_store::{
    ActorRef, AppendOutcome, AppendRequest, CommandOutcome, CommandRecord, Envelope, EventStore,
    NewEvent, StoreError,
};
use serde_json::{json, Value};
use sha2::Digest as _;

use crate::tokens::{self, TokenError, Verifier};

/// What a caller sent beside a command to follow it (the NATS headers `Disputes-Correlation-Id`
/// and `traceparent`, read and checked by the service's edge). Kept in the command's record, not
/// in the events: the envelope is the contract's, and the hash covers exactly it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    pub correlation_id: Option<String>,
    pub traceparent: Option<String>,
}

impl Trace {
    /// The record's `meta` fields: `correlation_id` and `traceparent` when present.
    fn to_meta(&self) -> Value {
        let mut meta = json!({});
        if let Some(id) = &self.correlation_id {
            meta["correlation_id"] = json!(id);
        }
        if let Some(traceparent) = &self.traceparent {
            meta["traceparent"] = json!(traceparent);
        }
        meta
    }

    /// The trace a command's record `meta` holds.
    pub fn from_meta(meta: &Value) -> Trace {
        let field = |key: &str| meta.get(key).and_then(Value::as_str).map(str::to_owned);
        Trace {
            correlation_id: field("correlation_id"),
            traceparent: field("traceparent"),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.correlation_id.is_none() && self.traceparent.is_none()
    }
}

/// A command that loses the optimistic race this many times in a row is answered `unavailable`.
pub const APPEND_ATTEMPTS_MAX: usize = 64;

/// What a command gets back.
#[derive(Debug)]
pub enum Reply {
    Accepted(Accepted),
    Refused(Rejection),
}

/// Why a command was not accepted: the domain's refusal, or what failed under it. Nothing was
/// appended. The service maps each to its wire code (`disputes::errors`).
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// The rules refuse it (every code of `docs/rules.md`, "Which refusal wins").
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The store could not take or read it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Its actor token does not hold, or the nonce store cannot say.
    #[error(transparent)]
    Token(#[from] TokenError),
}

#[derive(Debug, Clone)]
pub struct Accepted {
    pub dispute_id: String,
    pub version: u64,
    pub seq: u64,
    pub status: String,
    pub events: Vec<Envelope>,
    pub replayed: bool,
}

/// The result of applying one deadline expiry.
#[derive(Debug)]
pub enum ExpiryOutcome {
    /// The expiry was due and active: these events were appended.
    Applied(Vec<Envelope>),
    /// Stale (the dispute moved on), early, or for an unknown dispute: nothing changed.
    Ignored,
}

pub struct CommandHandler<S> {
    store: Arc<S>,
    policy: Policy,
    limits: Limits,
    /// With `[auth] actor_tokens = "required"`: every command's `actor_token` is checked.
    actor_tokens: Option<Verifier>,
    cache: StateCache,
}

impl<S: EventStore> CommandHandler<S> {
    pub fn new(store: Arc<S>, policy: Policy, limits: Limits) -> Self {
        CommandHandler {
            store,
            policy,
            limits,
            actor_tokens: None,
            cache: StateCache::default(),
        }
    }

    /// Requires a valid `actor_token` on every command (docs/actor-tokens.md).
    pub fn with_actor_tokens(self, verifier: Verifier) -> Self {
        CommandHandler {
            actor_tokens: Some(verifier),
            ..self
        }
    }

    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Handles one command body received on `<prefix>.cmd.<command_type>`.
    pub fn handle(&self, command_type: &str, body: &[u8], now: DateTime<Utc>) -> Reply {
        self.handle_traced(command_type, body, &Trace::default(), now)
    }

    /// [`CommandHandler::handle`] for a command that came with a [`Trace`]: recorded with the
    /// command, so the events it appends are published with it. Blocks this thread until the
    /// append is durable.
    pub fn handle_traced(
        &self,
        command_type: &str,
        body: &[u8],
        trace: &Trace,
        now: DateTime<Utc>,
    ) -> Reply {
        futures::executor::block_on(self.handle_traced_async(command_type, body, trace, now))
    }

    /// [`CommandHandler::handle_traced`] for async code: the decision is made on the caller's
    /// thread (a store read when the dispute's state is not cached), the append is queued
    /// ([`EventStore::append_queued`]), and no thread waits for it to become durable.
    pub async fn handle_traced_async(
        &self,
        command_type: &str,
        body: &[u8],
        trace: &Trace,
        now: DateTime<Utc>,
    ) -> Reply {
        match self.try_handle(command_type, body, trace, now).await {
            Ok(reply) => reply,
            Err(rejection) => Reply::Refused(rejection),
        }
    }

    async fn try_handle(
        &self,
        command_type: &str,
        body: &[u8],
        trace: &Trace,
        now: DateTime<Utc>,
    ) -> Result<Reply, Rejection> {
        let command_type = domain::public_command_type(command_type)?;
        let mut body = domain::read_body(body, &self.limits)?;
        // The token is not part of the command: a retry with a fresh token is the same command.
        let token = tokens::take_token(&mut body);
        let fingerprint = fingerprint_of(command_type, &body);
        let judged = self.judge(command_type, body, token, fingerprint.as_ref(), trace, now);
        match judged.await {
            Ok(reply) => Ok(reply),
            // Rule 1 of "which refusal wins": a repeated command id is answered from its first
            // reply, whatever else is wrong with it now (a stale `expected_version`, a state that
            // moved on, a concurrent copy accepted while this one was judged). Looked up only on
            // a refusal: a repeat that would be accepted again reaches the store, which finds its
            // command id before anything else and answers with that first outcome.
            Err(rejection) => match self.replay(fingerprint.as_ref())? {
                Some(reply) => Ok(reply),
                None => Err(rejection),
            },
        }
    }

    /// Parse, check the actor, decide and append.
    async fn judge(
        &self,
        command_type: domain::CommandType,
        body: Value,
        token: Option<Value>,
        fingerprint: Option<&Fingerprint>,
        trace: &Trace,
        now: DateTime<Utc>,
    ) -> Result<Reply, Rejection> {
        let parsed = domain::parse_command_value(command_type, body, &self.limits)?;
        let Some(fingerprint) = fingerprint else {
            unreachable!("a body that parses as a command has a valid command_id");
        };
        debug_assert_eq!(fingerprint.command_id, parsed.command_id.as_str());
        self.check_actor(&parsed, token, &fingerprint.digest, now)?;
        let record = CommandRecord {
            command_id: fingerprint.command_id.clone(),
            fingerprint: fingerprint.digest.clone(),
            meta: trace.to_meta(),
        };
        self.decide_and_append(
            parsed.dispute_id.as_str(),
            &parsed.request,
            Some(record),
            now,
        )
        .await
    }

    /// With actor tokens required, the token must name this command's actor and dispute. Judged
    /// after the body's shape and values (so `invalid_request` still comes first) and before the
    /// dispute is looked up (so a caller without a token learns nothing of it).
    fn check_actor(
        &self,
        parsed: &domain::ParsedCommand,
        token: Option<Value>,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Rejection> {
        let token = match token {
            None | Some(Value::Null) => None,
            Some(Value::String(token)) => Some(token),
            Some(_) => {
                return Err(
                    Refusal::new(ErrorCode::InvalidRequest, "actor_token must be a string").into(),
                )
            }
        };
        let Some(verifier) = &self.actor_tokens else {
            return Ok(());
        };
        let expected = tokens::Expected {
            role: parsed.request.actor.role.as_str(),
            actor_id: parsed.request.actor.id.as_str(),
            dispute_id: parsed.dispute_id.as_str(),
        };
        verifier.verify(token.as_deref(), expected, fingerprint, now)?;
        Ok(())
    }

    /// Rule 1 of "which refusal wins": a repeated command id is answered from its first reply.
    fn replay(&self, fingerprint: Option<&Fingerprint>) -> Result<Option<Reply>, Rejection> {
        let Some(fingerprint) = fingerprint else {
            return Ok(None);
        };
        match self.store.command(&fingerprint.command_id)? {
            None => Ok(None),
            Some(outcome) => Ok(Some(replayed(outcome, &fingerprint.digest)?)),
        }
    }

    async fn decide_and_append(
        &self,
        dispute_id: &str,
        request: &Request,
        record: Option<CommandRecord>,
        now: DateTime<Utc>,
    ) -> Result<Reply, Rejection> {
        let fingerprint = record.as_ref().map(|r| r.fingerprint.clone());
        match self.write(dispute_id, request, record, now).await? {
            Written::Appended { envelopes, status } => Ok(Reply::Accepted(Accepted {
                dispute_id: dispute_id.to_owned(),
                version: envelopes.last().map_or(0, |e| e.version),
                seq: envelopes.last().map_or(0, |e| e.seq),
                status,
                events: envelopes,
                replayed: false,
            })),
            Written::Duplicate(outcome) => Ok(replayed(
                outcome,
                fingerprint.as_deref().unwrap_or_default(),
            )?),
            Written::Nothing => {
                unreachable!("an accepted party command appends at least one event")
            }
        }
    }

    /// Applies the scheduler's expiry of `kind` due at `due_at`, exactly once: a stale or early expiry
    /// decides no events; a repeated one finds the deadline no longer active.
    pub fn expire(
        &self,
        dispute_id: &str,
        kind: DeadlineKind,
        due_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ExpiryOutcome, Rejection> {
        futures::executor::block_on(self.apply_expiry(dispute_id, kind, due_at, now))
    }

    /// [`Self::expire`], awaited.
    async fn apply_expiry(
        &self,
        dispute_id: &str,
        kind: DeadlineKind,
        due_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ExpiryOutcome, Rejection> {
        let request = Request::expiry(kind, due_at);
        expiry_outcome(self.write(dispute_id, &request, None, now).await)
    }

    /// Applies many expiries, each exactly as [`Self::expire`] would, but the appends of those that
    /// append go to the store together (all queued before the first is waited for, as
    /// [`EventStore::append_many`] does), so that one group commit makes them durable, not one
    /// each. An expiry whose append lost a race (a second expiry of the same dispute in
    /// `expiries`, or another writer) is applied again on its own against the dispute's new state.
    /// The outcomes, in the order of `expiries`. The decisions are made on the caller's
    /// thread; no thread waits for the appends to become durable.
    pub async fn expire_many_async(
        &self,
        expiries: &[Expiry],
        now: DateTime<Utc>,
    ) -> Vec<Result<ExpiryOutcome, Rejection>> {
        let mut outcomes: Vec<Option<Result<ExpiryOutcome, Rejection>>> =
            expiries.iter().map(|_| None).collect();
        let (mut queued, mut appending) = (Vec::new(), Vec::new());
        for (i, expiry) in expiries.iter().enumerate() {
            let request = Request::expiry(expiry.kind, expiry.due_at);
            match self.prepare(&expiry.dispute_id, &request, None, now) {
                Ok(Prepared::Append(decided)) => {
                    queued.push(self.store.append_queued(decided.append));
                    appending.push((i, decided.after));
                }
                Ok(Prepared::Nothing) => outcomes[i] = Some(Ok(ExpiryOutcome::Ignored)),
                Ok(Prepared::Again) => {} // judged again on its own, below
                Err(rejection) => outcomes[i] = Some(expiry_outcome(Err(rejection))),
            }
        }
        for ((i, after), written) in appending.into_iter().zip(queued) {
            let result = written.await;
            outcomes[i] = match self.settle(&expiries[i].dispute_id, after, result) {
                Settled::Appended(envelopes) => Some(Ok(ExpiryOutcome::Applied(envelopes))),
                Settled::Duplicate(_) => unreachable!("an expiry has no command id"),
                Settled::Again => None, // judged again on its own, below
                Settled::Failed(error) => Some(Err(error.into())),
            };
        }
        let mut settled = Vec::with_capacity(expiries.len());
        for (outcome, e) in outcomes.into_iter().zip(expiries) {
            settled.push(match outcome {
                Some(outcome) => outcome,
                None => {
                    self.apply_expiry(&e.dispute_id, e.kind, e.due_at, now)
                        .await
                }
            });
        }
        settled
    }

    /// Read, decide, append; on a lost optimistic race, again (the state moved, so the decision may too).
    async fn write(
        &self,
        dispute_id: &str,
        request: &Request,
        record: Option<CommandRecord>,
        now: DateTime<Utc>,
    ) -> Result<Written, Rejection> {
        for _ in 0..APPEND_ATTEMPTS_MAX {
            let decided = match self.prepare(dispute_id, request, record.as_ref(), now)? {
                Prepared::Nothing => return Ok(Written::Nothing),
                Prepared::Again => continue,
                Prepared::Append(decided) => *decided,
            };
            let written = self.store.append_queued(decided.append).await;
            match self.settle(dispute_id, decided.after, written) {
                Settled::Appended(envelopes) => {
                    let status = decided.status;
                    return Ok(Written::Appended { envelopes, status });
                }
                Settled::Duplicate(outcome) => return Ok(Written::Duplicate(outcome)),
                Settled::Again => continue,
                Settled::Failed(StoreError::OrderTaken {
                    order_id,
                    dispute_id,
                }) => return Err(order_taken(&order_id, &dispute_id).into()),
                Settled::Failed(error) => return Err(error.into()),
            }
        }
        Err(Refusal::new(
            ErrorCode::Unavailable,
            "too many concurrent writers on this dispute; retry",
        )
        .into())
    }

    /// What an append's result leaves in the cache: the state after it once appended; nothing once
    /// another writer moved the dispute on (the caller judges again against the store's state).
    fn settle(
        &self,
        dispute_id: &str,
        after: State,
        result: Result<AppendOutcome, StoreError>,
    ) -> Settled {
        match result {
            Ok(AppendOutcome::Appended(envelopes)) => {
                self.cache.put(dispute_id, after);
                Settled::Appended(envelopes)
            }
            Ok(AppendOutcome::Duplicate(outcome)) => Settled::Duplicate(outcome),
            Err(StoreError::VersionConflict { .. }) => {
                self.cache.evict(dispute_id);
                Settled::Again
            }
            Err(error) => Settled::Failed(error),
        }
    }

    /// One pass of [`Self::write`] up to the append: the decision against the dispute's state
    /// (cached, or read from the store), and the append it makes.
    fn prepare(
        &self,
        dispute_id: &str,
        request: &Request,
        record: Option<&CommandRecord>,
        now: DateTime<Utc>,
    ) -> Result<Prepared, Rejection> {
        let (state, source) = self.load(dispute_id)?;
        if let (State::Initial, domain::Command::Open(open)) = (&state, &request.command) {
            self.check_order_free(open.order_id.as_str())?;
        }
        let events = match domain::decide(&state, request, now, &self.policy) {
            Ok(events) if !events.is_empty() => events,
            // A decision against a cached state that changes nothing (a refusal, a stale
            // expiry) stands only if that state is still the store's; an accepted one is
            // checked by `append` itself (`expected_version`).
            _ if source == Source::Cache && !self.is_current(dispute_id, &state)? => {
                self.cache.evict(dispute_id);
                return Ok(Prepared::Again);
            }
            Ok(_) => return Ok(Prepared::Nothing),
            Err(refusal) => return Err(refusal.into()),
        };
        let after = events.iter().fold(state.clone(), domain::evolve);
        let status = status_of(&after);
        let command_id = record.map(|r| r.command_id.clone());
        let actor = actor_ref(&request.actor);
        let append = AppendRequest {
            dispute_id: dispute_id.to_owned(),
            expected_version: version_of(&state),
            reserve_order: opened_order(&events),
            command: record.cloned().map(|mut r| {
                // The reply's status beside the trace (an object, or null without one).
                let mut meta = r.meta.take();
                if !meta.is_object() {
                    meta = json!({});
                }
                meta["status"] = json!(status);
                CommandRecord { meta, ..r }
            }),
            events: events
                .iter()
                .map(|e| new_event(e, &actor, now, command_id.clone()))
                .collect(),
        };
        Ok(Prepared::Append(Box::new(Decided {
            append,
            after,
            status,
        })))
    }

    /// The dispute's state, and where it came from. A cached state is the one this
    /// handler last appended or read; it is the store's current state unless another writer moved
    /// the dispute on since, which `write` catches (an append at a stale version is a conflict; a
    /// decision that changes nothing is checked with [`Self::is_current`]). So the common path, an
    /// accepted command on a dispute in the cache, reads nothing from the store.
    fn load(&self, dispute_id: &str) -> Result<(State, Source), Rejection> {
        if let Some(state) = self.cache.get(dispute_id) {
            return Ok((state, Source::Cache));
        }
        let envelopes = self.store.read_stream(dispute_id)?;
        if envelopes.is_empty() {
            return Ok((State::Initial, Source::Store));
        }
        let state = fold(&envelopes);
        self.cache.put(dispute_id, state.clone());
        Ok((state, Source::Store))
    }

    /// Step 3 of "which refusal wins" for an `open`: an order that already has a dispute is
    /// `already_exists`, whoever sends it, before the actor is judged (step 4). The store's
    /// reservation at append time still decides a race between two new disputes.
    fn check_order_free(&self, order_id: &str) -> Result<(), Rejection> {
        match self.store.order_holder(order_id)? {
            None => Ok(()),
            Some(dispute_id) => Err(order_taken(order_id, &dispute_id).into()),
        }
    }

    /// Whether `state` is at the store's current version of the dispute.
    fn is_current(&self, dispute_id: &str, state: &State) -> Result<bool, Rejection> {
        Ok(self.store.stream_version(dispute_id)? == state.version())
    }
}

/// A command's id and the digest of its type and body: what tells a repeat from another command.
#[derive(Debug, Clone)]
struct Fingerprint {
    command_id: String,
    digest: String,
}

/// The fingerprint of a body with a valid `command_id` (only such a command can have been
/// recorded, so only such a command can be a repeat).
fn fingerprint_of(command_type: domain::CommandType, body: &Value) -> Option<Fingerprint> {
    let command_id = body.get("command_id")?.as_str()?;
    domain::CommandId::parse(command_id).ok()?;
    // "<type> <canonical body>": equal JSON bodies, whatever their key order or whitespace, are
    // the same command. It can be as long as the body; the store keeps its SHA-256.
    let mut hasher = sha2::Sha256::new();
    hasher.update(command_type.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(disputes_store::canonical_json(body));
    let digest = hasher.finalize();
    Some(Fingerprint {
        command_id: command_id.to_owned(),
        digest: digest.iter().map(|b| format!("{b:02x}")).collect(),
    })
}

/// Where [`CommandHandler::load`] found a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// This handler's cache: possibly behind the store.
    Cache,
    /// The store's events, just read.
    Store,
}

/// Recently used dispute states by id, bounded: a shard is cleared when it fills up.
struct StateCache {
    shards: Vec<Mutex<HashMap<String, State>>>,
}

/// Disputes kept in memory, at most (shards × per shard).
const CACHE_SHARDS: usize = 16;
const CACHE_PER_SHARD_MAX: usize = 8_192;

impl Default for StateCache {
    fn default() -> Self {
        StateCache {
            shards: (0..CACHE_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl StateCache {
    fn shard(&self, dispute_id: &str) -> &Mutex<HashMap<String, State>> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(dispute_id, &mut hasher);
        &self.shards[std::hash::Hasher::finish(&hasher) as usize % CACHE_SHARDS]
    }

    fn get(&self, dispute_id: &str) -> Option<State> {
        let shard = self.shard(dispute_id).lock().expect("cache lock");
        shard.get(dispute_id).cloned()
    }

    fn evict(&self, dispute_id: &str) {
        let mut shard = self.shard(dispute_id).lock().expect("cache lock");
        shard.remove(dispute_id);
    }

    fn put(&self, dispute_id: &str, state: State) {
        let mut shard = self.shard(dispute_id).lock().expect("cache lock");
        if shard.len() >= CACHE_PER_SHARD_MAX && !shard.contains_key(dispute_id) {
            shard.clear();
        }
        match shard.get(dispute_id) {
            Some(cached) if cached.version() >= state.version() => {}
            _ => {
                shard.insert(dispute_id.to_owned(), state);
            }
        }
    }
}

/// What [`CommandHandler::prepare`] decided.
enum Prepared {
    /// No events: nothing to append.
    Nothing,
    /// The cached state it judged turned out stale (and is evicted): judge again.
    Again,
    /// Events to append.
    Append(Box<Decided>),
}

/// An accepted decision: its append (at the state's version), the state it leads to, its status.
struct Decided {
    append: AppendRequest,
    after: State,
    status: String,
}

/// What [`CommandHandler::settle`] made of an append's result.
enum Settled {
    Appended(Vec<Envelope>),
    Duplicate(CommandOutcome),
    /// A lost race (the cached state is evicted): judge again.
    Again,
    Failed(StoreError),
}

/// One deadline's expiry, for [`CommandHandler::expire_many_async`].
#[derive(Debug, Clone)]
pub struct Expiry {
    pub dispute_id: String,
    pub kind: DeadlineKind,
    pub due_at: DateTime<Utc>,
}

/// An expiry's outcome from what `write` made of it: an unknown dispute changes nothing.
fn expiry_outcome(written: Result<Written, Rejection>) -> Result<ExpiryOutcome, Rejection> {
    match written {
        Ok(Written::Appended { envelopes, .. }) => Ok(ExpiryOutcome::Applied(envelopes)),
        Ok(Written::Nothing) => Ok(ExpiryOutcome::Ignored),
        Ok(Written::Duplicate(_)) => unreachable!("an expiry has no command id"),
        Err(Rejection::Refused(refusal)) if refusal.code() == ErrorCode::NotFound => {
            Ok(ExpiryOutcome::Ignored)
        }
        Err(rejection) => Err(rejection),
    }
}

enum Written {
    Appended {
        envelopes: Vec<Envelope>,
        status: String,
    },
    Duplicate(CommandOutcome),
    Nothing,
}

/// The first accepted reply again, or `invalid_request` when the id came with another command.
fn replayed(outcome: CommandOutcome, fingerprint: &str) -> Result<Reply, Refusal> {
    if outcome.fingerprint != fingerprint {
        return Err(Refusal::new(
            ErrorCode::InvalidRequest,
            "command_id was already used for another command (type or body differ)",
        ));
    }
    let last = outcome
        .events
        .last()
        .expect("a recorded command appended events");
    Ok(Reply::Accepted(Accepted {
        dispute_id: outcome.dispute_id.clone(),
        version: last.version,
        seq: last.seq,
        status: outcome
            .meta
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        events: outcome.events,
        replayed: true,
    }))
}

/// Folds stored envelopes into a state. A stored event that does not decode is corruption: crash.
pub fn fold(envelopes: &[Envelope]) -> State {
    envelopes.iter().fold(State::Initial, |state, envelope| {
        domain::evolve(state, &decode(envelope))
    })
}

/// The domain event inside an envelope.
pub(crate) fn decode(envelope: &Envelope) -> Event {
    try_decode(envelope).unwrap_or_else(|e| {
        panic!(
            "stored event seq {} ({}) does not decode: {e}",
            envelope.seq, envelope.event_type
        )
    })
}

/// The domain event an envelope holds, read from its `type` and `data` in place (no copy of the data).
pub(crate) fn try_decode(envelope: &Envelope) -> Result<Event, disputes_domain::DecodeError> {
    Event::decode_revision(&envelope.event_type, envelope.revision(), &envelope.data)
}

fn new_event(
    event: &Event,
    actor: &ActorRef,
    now: DateTime<Utc>,
    command_id: Option<String>,
) -> NewEvent {
    let mut tagged = serde_json::to_value(event).expect("events serialize");
    let data = tagged
        .get_mut("data")
        .map(Value::take)
        .unwrap_or_else(|| json!({}));
    NewEvent {
        event_type: event.event_type().to_owned(),
        data,
        occurred_at: now,
        actor: actor.clone(),
        command_id,
    }
}

fn actor_ref(actor: &domain::Actor) -> ActorRef {
    serde_json::from_value(serde_json::to_value(actor).expect("actors serialize"))
        .expect("actor shape")
}

fn version_of(state: &State) -> u64 {
    match state {
        State::Initial => 0,
        State::Active(dispute) => dispute.version(),
    }
}

fn status_of(state: &State) -> String {
    match state {
        State::Active(dispute) => dispute.status().as_str().to_owned(),
        State::Initial => unreachable!("events leave a dispute active"),
    }
}

fn order_taken(order_id: &str, dispute_id: &str) -> Refusal {
    Refusal::new(
        ErrorCode::AlreadyExists,
        format!("order {order_id} already has dispute {dispute_id}"),
    )
}

fn opened_order(events: &[Event]) -> Option<String> {
    events.iter().find_map(|event| match event {
        Event::DisputeOpened { order_id, .. } => Some(order_id.as_str().to_owned()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use disputes_store::SledStore;

    use super::*;

    fn body(command_id: &str, actor: Value, data: Value) -> Vec<u8> {
        let body =
            json!({"command_id": command_id, "dispute_id": "d-1", "actor": actor, "data": data});
        serde_json::to_vec(&body).unwrap()
    }

    fn accepted(reply: &Reply) -> bool {
        matches!(reply, Reply::Accepted(a) if !a.replayed)
    }

    struct TwoHandlers {
        store: Arc<SledStore>,
        a: CommandHandler<SledStore>,
        b: CommandHandler<SledStore>,
        now: DateTime<Utc>,
        buyer: Value,
        seller: Value,
    }

    /// Two handlers on one store, each with its own state cache (as if another writer shared the
    /// store), and dispute `d-1` opened through `a`, so `a` caches it at version 2.
    fn two_handlers_on_one_opened_dispute() -> TwoHandlers {
        let store = Arc::new(SledStore::open_temporary().unwrap());
        let a = CommandHandler::new(store.clone(), Policy::default(), Limits::default());
        let b = CommandHandler::new(store.clone(), Policy::default(), Limits::default());
        let now: DateTime<Utc> = "2026-11-27T08:00:00Z".parse().unwrap();
        let buyer = json!({"role": "buyer", "id": "b-1"});
        let seller = json!({"role": "seller", "id": "s-1"});
        let open = json!({"order_id": "o-1", "seller_id": "s-1", "reason": "not_received",
            "order_amount": {"amount": 10000, "currency": "USD"}, "proposal": {"solution": "full_refund"}});
        let reply = a.handle("open", &body("c-1", buyer.clone(), open), now);
        assert!(accepted(&reply), "{reply:?}");
        TwoHandlers {
            store,
            a,
            b,
            now,
            buyer,
            seller,
        }
    }

    /// A store with disputes `d-0`..`d-{n-1}` opened at `now`, each with its seller-response
    /// deadline active; the handler, and each dispute's active deadline.
    fn opened_disputes(n: usize, now: DateTime<Utc>) -> (CommandHandler<SledStore>, Vec<Expiry>) {
        let store = Arc::new(SledStore::open_temporary().unwrap());
        let handler = CommandHandler::new(store.clone(), Policy::default(), Limits::default());
        let mut deadlines = Vec::new();
        for i in 0..n {
            let dispute_id = format!("d-{i}");
            let body = json!({"command_id": format!("c-{i}"), "dispute_id": dispute_id,
                "actor": {"role": "buyer", "id": "b-1"},
                "data": {"order_id": format!("o-{i}"), "seller_id": "s-1", "reason": "not_received",
                    "order_amount": {"amount": 10000, "currency": "USD"},
                    "proposal": {"solution": "full_refund"}}});
            let reply = handler.handle("open", &serde_json::to_vec(&body).unwrap(), now);
            assert!(accepted(&reply), "{reply:?}");
            let set = store
                .read_stream(&dispute_id)
                .unwrap()
                .into_iter()
                .rfind(|e| e.event_type == "DeadlineSet")
                .expect("an open sets a deadline");
            deadlines.push(Expiry {
                dispute_id,
                kind: serde_json::from_value(set.data["deadline"].clone()).unwrap(),
                due_at: serde_json::from_value(set.data["due_at"].clone()).unwrap(),
            });
        }
        (handler, deadlines)
    }

    fn outcome_label(outcome: &Result<ExpiryOutcome, Rejection>) -> String {
        match outcome {
            Ok(ExpiryOutcome::Applied(events)) => {
                let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
                format!("applied {}", types.join(","))
            }
            Ok(ExpiryOutcome::Ignored) => "ignored".into(),
            Err(rejection) => format!("refused {rejection}"),
        }
    }

    #[test]
    fn expiries_applied_together_have_the_outcomes_of_expiries_applied_one_by_one() {
        let opened: DateTime<Utc> = "2026-11-27T08:00:00Z".parse().unwrap();
        let (together, deadlines) = opened_disputes(6, opened);
        let (one_by_one, _) = opened_disputes(6, opened);
        let mut expiries = deadlines.clone();
        // A repeat of d-0's expiry in the same batch, a stale one (another due time), one of an
        // unknown dispute, and one early (d-5's, judged before it is due: below).
        expiries.push(deadlines[0].clone());
        expiries.push(Expiry {
            due_at: deadlines[1].due_at - chrono::Duration::hours(1),
            ..deadlines[1].clone()
        });
        expiries.push(Expiry {
            dispute_id: "d-unknown".into(),
            ..deadlines[2].clone()
        });
        let now = deadlines[0].due_at + chrono::Duration::minutes(1);
        let early = Expiry {
            due_at: now + chrono::Duration::hours(1),
            ..deadlines[5].clone()
        };
        expiries[5] = early;

        let outcomes = together.expire_many_async(&expiries, now);
        let outcomes: Vec<String> = futures::executor::block_on(outcomes)
            .iter()
            .map(outcome_label)
            .collect();
        let expected: Vec<String> = expiries
            .iter()
            .map(|e| outcome_label(&one_by_one.expire(&e.dispute_id, e.kind, e.due_at, now)))
            .collect();
        assert_eq!(outcomes, expected);
        assert!(outcomes[0].starts_with("applied"), "{outcomes:?}");
        assert_eq!(
            outcomes[6..],
            ["ignored", "ignored", "ignored"],
            "the repeat, the stale and the unknown change nothing"
        );
        assert_eq!(outcomes[5], "ignored", "an early expiry changes nothing");
        // Each dispute's log is the same in both stores: every expiry applied once.
        for i in 0..6 {
            let id = format!("d-{i}");
            let types = |h: &CommandHandler<SledStore>| -> Vec<String> {
                let events = h.store().read_stream(&id).unwrap();
                events.into_iter().map(|e| e.event_type).collect()
            };
            assert_eq!(types(&together), types(&one_by_one), "{id}");
        }
    }

    #[test]
    fn a_refusal_judged_on_a_stale_cached_state_is_judged_again_on_the_store_state() {
        let t = two_handlers_on_one_opened_dispute();
        let counter = json!({"proposal": {"solution": "partial_refund", "amount": 3000}});
        let reply =
            t.b.handle("counter_propose", &body("c-2", t.seller, counter), t.now);
        assert!(accepted(&reply), "{reply:?}");
        // `a` still holds the dispute awaiting the seller, where a buyer may not accept.
        let reply =
            t.a.handle("accept_proposal", &body("c-3", t.buyer, json!({})), t.now);
        assert!(accepted(&reply), "{reply:?}");
    }

    #[test]
    fn an_accepted_decision_on_a_stale_cached_state_is_caught_by_the_store_and_judged_again() {
        let t = two_handlers_on_one_opened_dispute();
        let message = json!({"text": "hello"});
        let reply = t.b.handle(
            "post_message",
            &body("c-2", t.seller.clone(), message),
            t.now,
        );
        assert!(accepted(&reply), "{reply:?}");
        // `a` decides on version 2 (its cache); the store is at 3: a conflict, then a fresh read.
        let reply =
            t.a.handle("accept_proposal", &body("c-3", t.seller, json!({})), t.now);
        let Reply::Accepted(accepted) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(accepted.events.first().map(|e| e.version), Some(4));
        assert_eq!(t.store.stream_version("d-1").unwrap(), accepted.version);
    }

    fn replayed_reply(reply: &Reply) -> &Accepted {
        match reply {
            Reply::Accepted(a) if a.replayed => a,
            other => panic!("not a replay: {other:?}"),
        }
    }

    /// Rule 1 of "which refusal wins", on the path where the repeat is refused before the store
    /// is reached: the state moved on and its `expected_version` is stale.
    #[test]
    fn a_repeat_refused_now_for_its_state_and_version_gets_the_first_reply() {
        let t = two_handlers_on_one_opened_dispute();
        let data = json!({"proposal": {"solution": "partial_refund", "amount": 3000}});
        let mut counter: Value = serde_json::from_slice(&body("c-2", t.seller, data)).unwrap();
        counter["expected_version"] = json!(2);
        let counter = serde_json::to_vec(&counter).unwrap();
        let Reply::Accepted(first) = t.a.handle("counter_propose", &counter, t.now) else {
            panic!("the counter-proposal is accepted")
        };
        let again = t.a.handle("counter_propose", &counter, t.now);
        assert_eq!(replayed_reply(&again).events, first.events);
        assert_eq!(t.store.stream_version("d-1").unwrap(), first.version);
    }

    #[test]
    fn equal_bodies_are_one_command_whatever_their_key_order_or_whitespace() {
        let t = domain::CommandType::PostMessage;
        let a: Value =
            serde_json::from_str(r#"{"command_id":"c","data":{"b":1,"a":[1,{"y":2,"x":"é"}]}}"#)
                .unwrap();
        let b: Value = serde_json::from_str(
            "{ \"data\" : { \"a\" : [1, {\"x\":\"é\", \"y\":2}], \"b\":1 }, \"command_id\":\"c\" }",
        )
        .unwrap();
        let digest = |t, v: &Value| fingerprint_of(t, v).unwrap().digest;
        assert_eq!(digest(t, &a), digest(t, &b));
        let other = json!({"command_id": "c", "data": {"b": 2, "a": [1, {"y": 2, "x": "é"}]}});
        assert_ne!(digest(t, &a), digest(t, &other));
        assert_ne!(digest(t, &a), digest(domain::CommandType::Withdraw, &a));
        assert!(
            fingerprint_of(t, &json!({"command_id": ""})).is_none(),
            "no valid id"
        );
    }

    /// The same rule where the repeat would be accepted again: the store finds its command id.
    #[test]
    fn a_repeat_that_would_be_accepted_again_appends_nothing_and_gets_the_first_reply() {
        let t = two_handlers_on_one_opened_dispute();
        let message = body("c-2", t.buyer, json!({"text": "once"}));
        let Reply::Accepted(first) = t.a.handle("post_message", &message, t.now) else {
            panic!("the message is accepted")
        };
        for handler in [&t.a, &t.b] {
            let again = handler.handle("post_message", &message, t.now);
            assert_eq!(replayed_reply(&again).events, first.events);
        }
        assert_eq!(t.store.stream_version("d-1").unwrap(), first.version);
    }
}
