//! `disputes-client` against the real service over a real NATS: every command type through the
//! typed API, a retry after a lost reply, the typed refusals, `min_seq` reads, and the event
//! subscription across a restart of the service.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use disputes_client::{
    Accepted, Client, Error, ErrorCode, Options, Outgoing, Position, Subscription,
};
use disputes_domain::{
    Actor, Command, Currency, DisputeId, Event, Money, Open, OrderId, PartyId, ProposalTerms,
    Reason, ResponsibleParty, ReturnProblem, Role, RulingTerms, Status,
};

use crate::kit::{self, NatsServer, Service};
use crate::support::unique;

/// One dispute's parties, and the typed commands they send.
pub(crate) struct Parties {
    client: Client,
    dispute: DisputeId,
    buyer: Actor,
    seller: Actor,
    mediator: Actor,
}

impl Parties {
    pub(crate) fn new(client: &Client) -> Parties {
        let party = |role, prefix| Actor::new(role, PartyId::parse(&unique(prefix)).unwrap());
        Parties {
            client: client.clone(),
            dispute: DisputeId::parse(&unique("d")).unwrap(),
            buyer: party(Role::Buyer, "b"),
            seller: party(Role::Seller, "s"),
            mediator: party(Role::Mediator, "m"),
        }
    }

    pub(crate) fn open_command(&self, reason: Reason, proposal: ProposalTerms) -> Outgoing {
        let open = Open {
            order_id: OrderId::parse(&unique("o")).unwrap(),
            seller_id: self.seller.id.clone(),
            reason,
            order_amount: Money::new(
                disputes_domain::Amount::new(12_999).unwrap(),
                Currency::parse("USD").unwrap(),
            ),
            proposal,
            description: Some("it never came".into()),
        };
        Outgoing::new(&self.dispute, self.buyer.clone(), Command::Open(open))
    }

    /// Sends `command` from `actor`; checks the reply against a `min_seq` read of the view.
    async fn send(&self, actor: &Actor, command: Command) -> Accepted {
        let outgoing = Outgoing::new(&self.dispute, actor.clone(), command);
        self.expect_accepted(&outgoing).await
    }

    async fn expect_accepted(&self, outgoing: &Outgoing) -> Accepted {
        let accepted = self
            .client
            .send(outgoing)
            .await
            .unwrap_or_else(|e| panic!("{:?} refused: {e}", outgoing.command_type()));
        let view = self
            .client
            .after(accepted.seq)
            .get(&self.dispute)
            .await
            .expect("get")
            .expect("the dispute exists");
        assert_eq!(view.status, accepted.status);
        assert_eq!(view.version, accepted.version);
        accepted
    }
}

/// A nats-server and a `disputes serve` (with `config` added) of the test's own, ready.
async fn own_service(config: &str) -> (NatsServer, Service) {
    let nats = NatsServer::start();
    let mut service = Service::start(&nats.url(), config);
    service
        .wait_ready(&kit::Client::connect(&nats.url()).await)
        .await;
    (nats, service)
}

fn amount(minor: u64) -> disputes_domain::Amount {
    disputes_domain::Amount::new(minor).unwrap()
}

/// The 13 command types, typed, each accepted, each reply read back through `min_seq`.
#[tokio::test]
async fn every_command_type_goes_through_the_typed_client() {
    let client = Client::new(crate::support::shared_client().await.nats().clone());
    let a = Parties::new(&client);
    not_received_through_a_ruling(&a).await;
    let b = Parties::new(&client);
    not_as_described_through_a_return_problem(&b).await;
    let c = Parties::new(&client);
    an_agreed_return_received(&c).await;
    let d = Parties::new(&client);
    d.expect_accepted(&d.open_command(Reason::NotReceived, ProposalTerms::FullRefund))
        .await;
    let withdrawn = d.send(&d.buyer, Command::Withdraw { reason: None }).await;
    assert_eq!(withdrawn.status, Status::Resolved);
    let history = client.reads().history(&b.dispute).await.expect("history");
    assert_eq!(history.len() as u64, history.last().unwrap().version);
}

/// Open, a message, a counter-proposal, rejected, shipping proof, a ruling.
async fn not_received_through_a_ruling(a: &Parties) {
    a.expect_accepted(&a.open_command(Reason::NotReceived, ProposalTerms::FullRefund))
        .await;
    let text = "where is it?".to_owned();
    a.send(
        &a.buyer,
        Command::PostMessage {
            text,
            attachments: vec![],
        },
    )
    .await;
    let counter = ProposalTerms::PartialRefund(amount(5_000));
    a.send(&a.seller, Command::CounterPropose { proposal: counter })
        .await;
    a.send(&a.buyer, Command::RejectProposal { reason: None })
        .await;
    let proof = Command::SubmitShippingProof {
        carrier: "DHL".into(),
        tracking_number: "JD0146".into(),
    };
    a.send(&a.seller, proof).await;
    let rule = Command::Rule {
        outcome: RulingTerms::PartialRefund(amount(8_000)),
        responsible_party: ResponsibleParty::Logistics,
        note: None,
    };
    assert_eq!(a.send(&a.mediator, rule).await.status, Status::Resolved);
}

/// Evidence, a ruled return, a problem with it, a second ruling.
async fn not_as_described_through_a_return_problem(b: &Parties) {
    b.expect_accepted(&b.open_command(Reason::NotAsDescribed, ProposalTerms::FullRefund))
        .await;
    let counter = ProposalTerms::ReturnAndRefund(None);
    b.send(&b.seller, Command::CounterPropose { proposal: counter })
        .await;
    b.send(
        &b.buyer,
        Command::RejectProposal {
            reason: Some("no".into()),
        },
    )
    .await;
    let evidence = Command::SubmitEvidence {
        description: "scratched".into(),
        attachments: vec!["https://example.invalid/1.jpg".into()],
    };
    b.send(&b.buyer, evidence).await;
    let rule = Command::Rule {
        outcome: RulingTerms::ReturnAndRefund(None),
        responsible_party: ResponsibleParty::Seller,
        note: Some("send it back".into()),
    };
    b.send(&b.mediator, rule).await;
    let address = Command::ProvideReturnAddress {
        address: "1 Main St".into(),
    };
    b.send(&b.seller, address).await;
    let tracking = Command::ProvideReturnTracking {
        carrier: "UPS".into(),
        tracking_number: "1Z".into(),
    };
    b.send(&b.buyer, tracking).await;
    let problem = Command::ReportReturnProblem {
        problem: ReturnProblem::Damaged,
        note: None,
    };
    b.send(&b.seller, problem).await;
    let rule = Command::Rule {
        outcome: RulingTerms::FullRefund,
        responsible_party: ResponsibleParty::Logistics,
        note: None,
    };
    assert_eq!(b.send(&b.mediator, rule).await.status, Status::Resolved);
}

/// The seller accepts a return and refund; the return arrives.
async fn an_agreed_return_received(c: &Parties) {
    c.expect_accepted(
        &c.open_command(Reason::NotAsDescribed, ProposalTerms::ReturnAndRefund(None)),
    )
    .await;
    c.send(&c.seller, Command::AcceptProposal).await;
    let address = Command::ProvideReturnAddress {
        address: "2 Main St".into(),
    };
    c.send(&c.seller, address).await;
    let tracking = Command::ProvideReturnTracking {
        carrier: "UPS".into(),
        tracking_number: "1Z".into(),
    };
    c.send(&c.buyer, tracking).await;
    let received = c.send(&c.seller, Command::ConfirmReturnReceived).await;
    assert_eq!(received.status, Status::Resolved);
}

/// A command whose reply was lost (sent to a subject nobody listens on) is answered from its
/// first reply when the client sends the same `Outgoing` again; and the client's own retry,
/// while the service is frozen past the first attempt's timeout, applies the command once.
#[tokio::test]
async fn a_retry_after_a_lost_reply_is_answered_from_the_first_reply() {
    let (nats, service) = own_service("").await;
    let connection = async_nats::connect(nats.url()).await.unwrap();
    let client = Client::new(connection.clone());
    let p = Parties::new(&client);
    let open = p.open_command(Reason::NotReceived, ProposalTerms::FullRefund);
    // The first attempt's reply goes nowhere.
    let body = serde_json::to_vec(&open.body()).unwrap();
    connection
        .publish_with_reply("disputes.cmd.open", "_INBOX.lost.reply", body.into())
        .await
        .unwrap();
    connection.flush().await.unwrap();
    let mut replayed = None;
    for _ in 0..100 {
        let reply = client.send(&open).await.expect("open");
        if reply.replayed {
            replayed = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let replayed = replayed.expect("the retry is answered from the first reply");
    assert_eq!((replayed.version, replayed.events.len()), (2, 2));
    // The client's own retries: the service is frozen past the first attempt's timeout.
    let impatient = client.clone().with_options(Options {
        timeout: Duration::from_millis(300),
        attempts: 20,
        backoff: Duration::from_millis(50),
    });
    let post = Outgoing::new(
        &p.dispute,
        p.seller.clone(),
        Command::PostMessage {
            text: "on its way".into(),
            attachments: vec![],
        },
    );
    service.signal(libc::SIGSTOP);
    let thaw = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        service.signal(libc::SIGCONT);
        service
    });
    let accepted = impatient.send(&post).await.expect("accepted after retries");
    let _service = thaw.await.unwrap();
    let history = client
        .after(accepted.seq)
        .history(&p.dispute)
        .await
        .unwrap();
    let posted = history
        .iter()
        .filter(|e| e.command_id.as_deref() == Some(post.command_id().as_str()))
        .count();
    assert_eq!(posted, 1, "applied once: {history:?}");
    // Whichever attempt the store took first (the service ran the queued copies concurrently),
    // the reply is that one outcome.
    let applied: Vec<_> = history
        .iter()
        .filter(|e| e.command_id.as_deref() == Some(post.command_id().as_str()))
        .cloned()
        .collect();
    assert_eq!(accepted.events, applied);
    assert_eq!(accepted.version, history.last().unwrap().version);
}

/// Each refusal the typed client can meet comes back as `Error::Refused` with its code.
#[tokio::test]
async fn refusals_come_back_typed_with_their_codes() {
    let client = Client::new(crate::support::shared_client().await.nats().clone());
    let code = |result: Result<Accepted, Error>| result.unwrap_err().code();
    let p = Parties::new(&client);
    let accept = Outgoing::new(&p.dispute, p.seller.clone(), Command::AcceptProposal);
    assert_eq!(code(client.send(&accept).await), Some(ErrorCode::NotFound));
    let open = p.open_command(
        Reason::NotReceived,
        ProposalTerms::PartialRefund(amount(20_000)),
    );
    assert_eq!(
        code(client.send(&open).await),
        Some(ErrorCode::InvalidValue)
    );
    let open = p.open_command(Reason::NotReceived, ProposalTerms::FullRefund);
    let opened = client.send(&open).await.expect("open");
    let again = p.open_command(Reason::NotReceived, ProposalTerms::FullRefund);
    assert_eq!(
        code(client.send(&again).await),
        Some(ErrorCode::AlreadyExists)
    );
    let withdraw = Command::Withdraw { reason: None };
    let by_seller = Outgoing::new(&p.dispute, p.seller.clone(), withdraw);
    assert_eq!(
        code(client.send(&by_seller).await),
        Some(ErrorCode::Forbidden)
    );
    let reject = Outgoing::new(
        &p.dispute,
        p.buyer.clone(),
        Command::RejectProposal { reason: None },
    );
    assert_eq!(
        code(client.send(&reject).await),
        Some(ErrorCode::InvalidState)
    );
    let stale = Outgoing::new(&p.dispute, p.seller.clone(), Command::AcceptProposal)
        .expecting_version(opened.version - 1);
    assert_eq!(
        code(client.send(&stale).await),
        Some(ErrorCode::VersionConflict)
    );
    // The same command_id with another body.
    let reused = Outgoing::with_id(
        open.command_id().clone(),
        &p.dispute,
        p.buyer.clone(),
        Command::Withdraw { reason: None },
    );
    assert_eq!(
        code(client.send(&reused).await),
        Some(ErrorCode::InvalidRequest)
    );
    // A read that waits for a seq nobody wrote.
    let later = client.after(opened.seq + 1_000_000).get(&p.dispute).await;
    assert_eq!(later.unwrap_err().code(), Some(ErrorCode::Timeout));
    let other = DisputeId::parse(&unique("d")).unwrap();
    assert_eq!(client.get(&other).await.unwrap(), None);
}

/// A payment service's consumer: every event once, in `seq` order, chained, across a restart of
/// the service and a restart of the consumer itself (resuming from its stored position); each
/// dispute's `DisputeResolved` acted on exactly once.
#[tokio::test]
async fn the_event_subscription_misses_and_doubles_nothing_across_a_service_restart() {
    let (nats, mut service) = own_service("").await;
    let client = Client::new(async_nats::connect(nats.url()).await.unwrap());
    let mut stream = client
        .subscribe(Subscription::durable("payments"))
        .await
        .expect("subscribe");
    let mut seen: Vec<(u64, String)> = Vec::new();
    let mut resolved: BTreeMap<String, u32> = BTreeMap::new();
    let mut last_seq = run_disputes(&client, 6).await;
    let mut position = drain(&mut stream, last_seq, &mut seen, &mut resolved).await;
    // The consumer stops (its process dies) while the service restarts and takes more commands.
    drop(stream);
    assert!(service.terminate(Duration::from_secs(20)).is_some());
    service.spawn();
    service
        .wait_ready(&kit::Client::connect(&nats.url()).await)
        .await;
    last_seq = run_disputes(&client, 6).await;
    let mut stream = client
        .subscribe(Subscription::durable("payments").resume_after(position.clone()))
        .await
        .expect("resubscribe");
    position = drain(&mut stream, last_seq, &mut seen, &mut resolved).await;
    assert_eq!(position.seq, last_seq);
    let seqs: Vec<u64> = seen.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(
        seqs,
        (1..=last_seq).collect::<Vec<_>>(),
        "each seq once, in order"
    );
    let ids: HashSet<&String> = seen.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), seen.len(), "each event_id once");
    assert_eq!(resolved.len(), 12);
    assert!(resolved.values().all(|n| *n == 1), "{resolved:?}");
}

/// Opens and resolves `n` disputes (open, then the seller accepts the full refund); the last seq.
async fn run_disputes(client: &Client, n: usize) -> u64 {
    let mut last = 0;
    for _ in 0..n {
        let p = Parties::new(client);
        p.expect_accepted(&p.open_command(Reason::NotReceived, ProposalTerms::FullRefund))
            .await;
        last = p.send(&p.seller, Command::AcceptProposal).await.seq;
    }
    last
}

/// Handles events until `until_seq`, acknowledging each; the position reached.
async fn drain(
    stream: &mut disputes_client::EventStream,
    until_seq: u64,
    seen: &mut Vec<(u64, String)>,
    resolved: &mut BTreeMap<String, u32>,
) -> Position {
    loop {
        let delivered = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("the next event within 20 s")
            .expect("a verified event");
        let envelope = &delivered.envelope;
        seen.push((envelope.seq, envelope.event_id.clone()));
        if let Event::DisputeResolved { .. } = delivered.event {
            *resolved.entry(envelope.dispute_id.clone()).or_default() += 1;
        }
        stream.ack(&delivered).await.expect("ack");
        if envelope.seq >= until_seq {
            return delivered.position();
        }
    }
}

/// A command's correlation id and `traceparent` travel with the events it appends: published on
/// `DISPUTE_EVENTS` with the same headers; a command without them publishes none; a malformed
/// correlation id is refused and appends nothing.
#[tokio::test]
async fn the_events_of_a_command_keep_its_correlation_id_and_traceparent() {
    let (nats, _service) = own_service("").await;
    let client = Client::new(async_nats::connect(nats.url()).await.unwrap());
    let p = Parties::new(&client);
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let open = p
        .open_command(Reason::NotReceived, ProposalTerms::FullRefund)
        .correlation_id("checkout-7731")
        .traceparent(traceparent);
    let opened = p.expect_accepted(&open).await;
    let bad = Outgoing::new(
        &p.dispute,
        p.buyer.clone(),
        Command::Withdraw { reason: None },
    )
    .correlation_id("two words");
    let refused = client.send(&bad).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::InvalidRequest), "{refused}");
    let accepted = p.send(&p.seller, Command::AcceptProposal).await;
    let mut stream = client
        .subscribe(Subscription::durable("tracer"))
        .await
        .unwrap();
    let mut by_seq = BTreeMap::new();
    while by_seq.len() < accepted.seq as usize {
        let delivered = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("an event within 20 s")
            .expect("verified");
        stream.ack(&delivered).await.unwrap();
        let command = delivered.envelope.command_id.clone();
        by_seq.insert(
            delivered.envelope.seq,
            (command, delivered.correlation_id, delivered.traceparent),
        );
    }
    for (seq, (command, correlation, trace)) in &by_seq {
        if command.as_deref() == Some(open.command_id().as_str()) {
            assert!(*seq <= opened.seq);
            assert_eq!(correlation.as_deref(), Some("checkout-7731"));
            assert_eq!(trace.as_deref(), Some(traceparent));
        } else {
            assert_eq!((correlation, trace), (&None, &None), "seq {seq}");
        }
    }
    assert_eq!(
        by_seq.len() as u64,
        accepted.seq,
        "nothing appended by the refused command"
    );
}

/// An event the consumer could not handle (not acknowledged) comes again and is handed over again;
/// a consumer of that name with settings that would lose the order is refused, not used.
#[tokio::test]
async fn an_unacknowledged_event_comes_again_and_a_misconfigured_consumer_is_refused() {
    let (nats, _service) = own_service("").await;
    let connection = async_nats::connect(nats.url()).await.unwrap();
    let client = Client::new(connection.clone());
    let last = run_disputes(&client, 1).await;
    assert!(last >= 2);
    let mut stream = client
        .subscribe(Subscription::durable("retrying"))
        .await
        .unwrap();
    let first = stream.next().await.expect("seq 1");
    assert_eq!(first.envelope.seq, 1);
    // The caller's transaction failed: it asks for the event again instead of acknowledging.
    stream.retry(&first, Duration::ZERO).await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("delivered again")
        .unwrap();
    assert_eq!(again.envelope.event_id, first.envelope.event_id);
    stream.ack(&again).await.unwrap();
    let second = stream.next().await.unwrap();
    assert_eq!(second.envelope.seq, 2);
    assert_eq!(stream.duplicates(), 0);
    // Someone made a consumer of another name with room for reordering.
    let js = async_nats::jetstream::new(connection);
    let events = js.get_stream("DISPUTE_EVENTS").await.unwrap();
    events
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("loose".into()),
            max_ack_pending: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let refused = client.subscribe(Subscription::durable("loose")).await;
    let error = refused.expect_err("a consumer that may reorder is refused");
    assert!(error.to_string().contains("max_ack_pending"), "{error}");
}

/// `./x demo` (the `disputes-demo` binary) walks its dispute to a ruling through the client.
#[tokio::test]
async fn the_demo_walks_a_dispute_to_its_ruling_through_the_client() {
    let (nats, _service) = own_service("").await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_disputes-demo"))
        .arg(nats.url())
        .output()
        .await
        .expect("run disputes-demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("rule -> status=resolved"), "{stdout}");
    assert!(stdout.contains("refund_amount: 8000"), "{stdout}");
}

/// A party's command at the deadline's due time, before the expiry is applied, is refused
/// `deadline_passed`, typed; once the expiry is applied the dispute is resolved (`invalid_state`).
/// Which of the two depends on the scheduler's timing, as in `deadlines.rs`; the client types both.
#[tokio::test]
async fn a_command_after_the_due_time_is_refused_typed_deadline_passed_or_invalid_state() {
    let (nats, _service) = own_service("[policy]\nseller_response = \"2s\"\n").await;
    let client = Client::new(async_nats::connect(nats.url()).await.unwrap());
    let p = Parties::new(&client);
    let opened = p
        .expect_accepted(&p.open_command(Reason::NotReceived, ProposalTerms::FullRefund))
        .await;
    let Event::DeadlineSet { due_at, .. } = disputes_domain::Event::decode_revision(
        &opened.events[1].event_type,
        1,
        &opened.events[1].data,
    )
    .unwrap() else {
        panic!("open sets the seller's deadline")
    };
    let wait = (due_at - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(1)).await;
    let accept = Outgoing::new(&p.dispute, p.seller.clone(), Command::AcceptProposal);
    let code = client.send(&accept).await.unwrap_err().code();
    assert!(
        code == Some(ErrorCode::DeadlinePassed) || code == Some(ErrorCode::InvalidState),
        "{code:?}"
    );
}
