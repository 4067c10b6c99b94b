//! Invariants of rules.md over random sequences of commands from random actors (right and wrong
//! roles and ids) at random, increasing times, checked after every step.

use chrono::{DateTime, TimeDelta, Utc};
use disputes_domain::{
    actions, decide, evolve, fold, senders, Actor, Command, CommandType, Currency, DeadlineKind,
    ErrorCode, Event, Money, Open, OrderId, Policy, ProposalTerms, Reason, Refusal, Request,
    ResponsibleParty, ReturnProblem, Role, RulingTerms, State, Status,
};
use proptest::prelude::*;

use crate::support::{amount, id, t0, BUYER, MEDIATOR, SELLER};

/// Property cases: `PROPTEST_CASES` (10,000 in CI, `./x test`), else a quick 1,000.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000)
}
/// Random walks the coverage check takes: enough to reach every status, basis and refusal.
const COVERAGE_WALKS: u32 = 10_000;
const STEPS_MAX: usize = 30;

/// Who sends a step's command.
#[derive(Clone, Debug)]
enum Who {
    /// A role that may send the command, with the dispute's own id (the index picks among senders).
    Proper(usize),
    Role(Role),
    StrangerBuyer,
    StrangerSeller,
}

#[derive(Clone, Debug)]
enum What {
    Open {
        reason: Reason,
        order_amount: u64,
        proposal: ProposalTerms,
    },
    Party(Command),
    /// The scheduler's expiry of whatever deadline is active (if any).
    ExpireActive,
    /// An expiry of `kind` due `offset_minutes` from now: usually stale, early or unknown.
    ExpireOther {
        kind: DeadlineKind,
        offset_minutes: i64,
    },
}

#[derive(Clone, Debug)]
enum When {
    After {
        minutes: i64,
    },
    /// Exactly at the active deadline's due time (no move when there is none or it passed).
    AtDue,
}

#[derive(Clone, Debug)]
enum Version {
    Absent,
    Current,
    Other(u64),
}

#[derive(Clone, Debug)]
struct Step {
    who: Who,
    what: What,
    when: When,
    version: Version,
}

fn minor_units() -> impl Strategy<Value = u64> {
    prop_oneof![1..=3u64, 1..=20_000u64, Just(12_999u64)]
}

fn proposal_terms() -> impl Strategy<Value = ProposalTerms> {
    prop_oneof![
        Just(ProposalTerms::FullRefund),
        minor_units().prop_map(|m| ProposalTerms::PartialRefund(amount(m))),
        proptest::option::of(minor_units())
            .prop_map(|m| ProposalTerms::ReturnAndRefund(m.map(amount))),
    ]
}

fn ruling_terms() -> impl Strategy<Value = RulingTerms> {
    prop_oneof![
        Just(RulingTerms::FullRefund),
        minor_units().prop_map(|m| RulingTerms::PartialRefund(amount(m))),
        proptest::option::of(minor_units())
            .prop_map(|m| RulingTerms::ReturnAndRefund(m.map(amount))),
        Just(RulingTerms::ReleaseFunds),
    ]
}

fn kind() -> impl Strategy<Value = DeadlineKind> {
    proptest::sample::select(DeadlineKind::ALL)
}

fn reason() -> impl Strategy<Value = Reason> {
    prop_oneof![Just(Reason::NotReceived), Just(Reason::NotAsDescribed)]
}

fn open() -> impl Strategy<Value = What> {
    (reason(), minor_units(), proposal_terms()).prop_map(|(reason, order_amount, proposal)| {
        What::Open {
            reason,
            order_amount,
            proposal,
        }
    })
}

fn party_command() -> impl Strategy<Value = Command> {
    let text = || Just("t".to_owned());
    prop_oneof![
        3 => Just(Command::AcceptProposal),
        2 => proposal_terms().prop_map(|proposal| Command::CounterPropose { proposal }),
        2 => Just(Command::RejectProposal { reason: None }),
        2 => Just(Command::SubmitShippingProof { carrier: "DHL".into(), tracking_number: "1".into() }),
        2 => Just(Command::SubmitEvidence { description: "d".into(), attachments: vec![] }),
        4 => (ruling_terms(), proptest::sample::select(ResponsibleParty::ALL))
            .prop_map(|(outcome, responsible_party)| Command::Rule { outcome, responsible_party, note: None }),
        2 => text().prop_map(|address| Command::ProvideReturnAddress { address }),
        2 => Just(Command::ProvideReturnTracking { carrier: "UPS".into(), tracking_number: "1Z".into() }),
        2 => Just(Command::ConfirmReturnReceived),
        2 => proptest::sample::select(ReturnProblem::ALL).prop_map(|problem| Command::ReportReturnProblem { problem, note: None }),
        1 => Just(Command::Withdraw { reason: None }),
        1 => text().prop_map(|text| Command::PostMessage { text, attachments: vec![] }),
    ]
}

fn what() -> impl Strategy<Value = What> {
    prop_oneof![
        12 => party_command().prop_map(What::Party),
        4 => Just(What::ExpireActive),
        1 => (kind(), -10_000..10_000i64).prop_map(|(kind, offset_minutes)| What::ExpireOther { kind, offset_minutes }),
        1 => open(),
    ]
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        12 => (0..3usize).prop_map(Who::Proper),
        1 => proptest::sample::select(Role::ALL).prop_map(Who::Role),
        1 => Just(Who::StrangerBuyer),
        1 => Just(Who::StrangerSeller),
    ]
}

fn when() -> impl Strategy<Value = When> {
    prop_oneof![
        6 => (0..600i64).prop_map(|minutes| When::After { minutes }),
        3 => (0..(10 * 24 * 60i64)).prop_map(|minutes| When::After { minutes }),
        1 => (0..(40 * 24 * 60i64)).prop_map(|minutes| When::After { minutes }),
        2 => Just(When::AtDue),
    ]
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![8 => Just(Version::Absent), 2 => Just(Version::Current), 1 => (0..40u64).prop_map(Version::Other)]
}

fn step(what: impl Strategy<Value = What>) -> impl Strategy<Value = Step> {
    (who(), what, when(), version()).prop_map(|(who, what, when, version)| Step {
        who,
        what,
        when,
        version,
    })
}

/// A dispute's life: (almost always) an open, then up to `STEPS_MAX` random steps.
fn steps() -> impl Strategy<Value = Vec<Step>> {
    (
        step(open()),
        proptest::collection::vec(step(what()), 0..STEPS_MAX),
    )
        .prop_map(|(first, rest)| {
            let mut steps = vec![first];
            steps.extend(rest);
            steps
        })
}

/// What each check sees after a step.
struct Observed<'a> {
    before: &'a State,
    request: &'a Request,
    now: DateTime<Utc>,
    result: &'a Result<Vec<Event>, Refusal>,
    after: &'a State,
    history: &'a [Event],
    policy: &'a Policy,
}

fn advance(now: DateTime<Utc>, when: &When, state: &State) -> DateTime<Utc> {
    match when {
        When::After { minutes } => now + TimeDelta::minutes(*minutes),
        When::AtDue => match state.dispute().and_then(|d| d.deadline()) {
            Some(deadline) if deadline.due_at() > now => deadline.due_at(),
            _ => now,
        },
    }
}

fn actor(who: &Who, command_type: CommandType) -> Actor {
    let role = match who {
        Who::Proper(i) => senders(command_type)[i % senders(command_type).len()],
        Who::Role(role) => *role,
        Who::StrangerBuyer => return Actor::new(Role::Buyer, id("b-stranger")),
        Who::StrangerSeller => return Actor::new(Role::Seller, id("s-stranger")),
    };
    let actor_id = match role {
        Role::Buyer => BUYER,
        Role::Seller => SELLER,
        Role::Mediator => MEDIATOR,
        Role::System => "scheduler",
    };
    Actor::new(role, id(actor_id))
}

fn command(what: &What, state: &State, now: DateTime<Utc>) -> Command {
    match what {
        What::Open {
            reason,
            order_amount,
            proposal,
        } => Command::Open(Open {
            order_id: OrderId::parse("o-1").unwrap(),
            seller_id: id(SELLER),
            reason: *reason,
            order_amount: Money::new(amount(*order_amount), Currency::parse("EUR").unwrap()),
            proposal: *proposal,
            description: None,
        }),
        What::Party(command) => command.clone(),
        What::ExpireActive => match state.dispute().and_then(|d| d.deadline()) {
            Some(deadline) => Command::ExpireDeadline {
                deadline: deadline.kind(),
                due_at: deadline.due_at(),
            },
            None => Command::ExpireDeadline {
                deadline: DeadlineKind::SellerResponse,
                due_at: now,
            },
        },
        What::ExpireOther {
            kind,
            offset_minutes,
        } => Command::ExpireDeadline {
            deadline: *kind,
            due_at: now + TimeDelta::minutes(*offset_minutes),
        },
    }
}

fn request(step: &Step, state: &State, now: DateTime<Utc>) -> Request {
    let command = command(&step.what, state, now);
    let expected_version = match step.version {
        Version::Absent => None,
        Version::Current => Some(state.version()),
        Version::Other(version) => Some(version),
    };
    Request {
        actor: actor(&step.who, command.command_type()),
        expected_version,
        command,
    }
}

/// Runs `steps` through `decide` and `evolve`, calling `check` after each.
fn run(steps: &[Step], mut check: impl FnMut(&Observed)) {
    let policy = Policy::default();
    let mut state = State::Initial;
    let mut history: Vec<Event> = Vec::new();
    let mut now = t0();
    for step in steps {
        now = advance(now, &step.when, &state);
        let request = request(step, &state, now);
        let result = decide(&state, &request, now, &policy);
        let before = state.clone();
        if let Ok(events) = &result {
            history.extend(events.iter().cloned());
            state = events.iter().fold(state, evolve);
        }
        check(&Observed {
            before: &before,
            request: &request,
            now,
            result: &result,
            after: &state,
            history: &history,
            policy: &policy,
        });
    }
}

fn resolutions(events: &[Event]) -> impl Iterator<Item = &Event> {
    events
        .iter()
        .filter(|e| matches!(e, Event::DisputeResolved { .. }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn refund_plus_release_is_the_order_amount_on_every_resolution(steps in steps()) {
        run(&steps, |o| {
            let Some(dispute) = o.after.dispute() else { return };
            let order_amount = dispute.order_amount();
            for event in resolutions(o.result.as_deref().unwrap_or_default()) {
                let Event::DisputeResolved { refund_amount, release_amount, currency, .. } = event else { unreachable!() };
                assert_eq!(refund_amount + release_amount, order_amount.amount().get(), "{event:?}");
                assert_eq!(*currency, order_amount.currency());
            }
            if let Some(resolution) = dispute.resolution() {
                assert_eq!(resolution.refund_amount() + resolution.release_amount(), order_amount.amount().get());
            }
        });
    }

    #[test]
    fn a_resolved_dispute_never_changes(steps in steps()) {
        run(&steps, |o| {
            if o.before.is_terminal() {
                let changed = o.result.as_ref().is_ok_and(|events| !events.is_empty());
                assert!(!changed, "{:?}", o.result);
                assert_eq!(o.after, o.before);
            }
        });
    }

    #[test]
    fn a_refused_command_produces_no_events_and_an_accepted_one_some(steps in steps()) {
        run(&steps, |o| {
            assert_eq!(decide(o.before, o.request, o.now, o.policy), *o.result, "decide is a function");
            match o.result {
                Err(refusal) => {
                    assert_eq!(o.after, o.before, "{refusal}");
                    assert_ne!(refusal.code(), ErrorCode::Unavailable);
                }
                Ok(events) if events.is_empty() => {
                    assert_eq!(o.request.command_type(), CommandType::ExpireDeadline, "only a stale expiry is a no-op");
                }
                Ok(_) => assert_eq!(o.after.version(), o.history.len() as u64),
            }
        });
    }

    #[test]
    fn every_waiting_status_but_under_review_has_exactly_one_active_deadline(steps in steps()) {
        run(&steps, |o| {
            let Some(dispute) = o.after.dispute() else { return };
            match (dispute.status().deadline_kind(), dispute.deadline()) {
                (Some(kind), Some(deadline)) => assert_eq!(deadline.kind(), kind),
                (None, None) => assert!(matches!(dispute.status(), Status::UnderReview | Status::Resolved)),
                (expected, active) => panic!("{}: expected {expected:?}, active {active:?}", dispute.status()),
            }
            for event in o.result.as_deref().unwrap_or_default() {
                if let Event::DeadlineSet { deadline, due_at } = event {
                    assert_eq!(*due_at, o.now + o.policy.duration(*deadline), "a deadline runs from when it is set");
                }
            }
        });
    }

    #[test]
    fn folding_the_events_from_scratch_equals_the_state_reached_step_by_step(steps in steps()) {
        run(&steps, |o| {
            assert_eq!(fold(o.history), *o.after);
            assert_eq!(o.after.version(), o.history.len() as u64);
        });
    }

    #[test]
    fn a_dispute_is_resolved_at_most_once_and_each_deadline_expires_at_most_once(steps in steps()) {
        run(&steps, |o| {
            assert!(resolutions(o.history).count() <= 1);
            let expired: Vec<_> = o.history.iter().filter_map(|e| match e {
                Event::DeadlineExpired { deadline, due_at } => Some((*deadline, *due_at)),
                _ => None,
            }).collect();
            let mut unique = expired.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), expired.len(), "{expired:?}");
        });
    }

    #[test]
    fn no_party_command_but_post_message_is_accepted_once_the_deadline_has_come(steps in steps()) {
        run(&steps, |o| {
            let due = o.before.dispute().and_then(|d| d.deadline()).is_some_and(|d| d.has_come(o.now));
            let command_type = o.request.command_type();
            if due && o.result.is_ok() && o.request.actor.role != Role::System {
                assert_eq!(command_type, CommandType::PostMessage);
            }
        });
    }

    #[test]
    fn actions_list_exactly_what_decide_permits(steps in steps()) {
        run(&steps, |o| {
            let Some(dispute) = o.before.dispute() else { return };
            let actor = &o.request.actor;
            let own_actor = match actor.role {
                Role::Buyer => actor.id == *dispute.buyer_id(),
                Role::Seller => actor.id == *dispute.seller_id(),
                Role::Mediator | Role::System => true,
            };
            let command_type = o.request.command_type();
            let comparable = own_actor
                && o.request.expected_version.is_none()
                && o.request.actor.role != Role::System
                && command_type.is_public()
                && command_type != CommandType::Open;
            if !comparable {
                return;
            }
            let listed = actions(o.before, o.now).of(o.request.actor.role).contains(&command_type);
            let permitted = !matches!(o.result, Err(r) if matches!(
                r.code(),
                ErrorCode::Forbidden | ErrorCode::InvalidState | ErrorCode::DeadlinePassed
            ));
            assert_eq!(listed, permitted, "{:?} → {:?}", o.request, o.result);
        });
    }

    #[test]
    fn allows_answers_exactly_as_permits_for_every_role_and_type(steps in steps()) {
        run(&steps, |o| {
            let Some(dispute) = o.before.dispute() else { return };
            for role in [Role::Buyer, Role::Seller, Role::Mediator, Role::System] {
                for &command_type in CommandType::ALL {
                    assert_eq!(
                        disputes_domain::allows(dispute, role, command_type, o.now),
                        disputes_domain::permits(dispute, role, command_type, o.now).is_ok(),
                        "{role:?} {command_type:?} on {:?}", dispute.status()
                    );
                }
            }
        });
    }
}

/// The properties mean something only if the random walks go everywhere: every status, every
/// resolution basis but `buyer_decision_timeout` (it escalates), and every refusal code of `decide`.
#[test]
fn the_random_walks_reach_every_status_basis_and_refusal() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeSet;

    let mut runner = TestRunner::deterministic();
    let (mut statuses, mut bases, mut codes) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for _ in 0..COVERAGE_WALKS {
        let steps = steps().new_tree(&mut runner).unwrap().current();
        run(&steps, |o| {
            if let Some(dispute) = o.after.dispute() {
                statuses.insert(dispute.status());
                bases.extend(dispute.resolution().map(|r| r.basis()));
            }
            if let Err(refusal) = o.result {
                codes.insert(refusal.code());
            }
        });
    }
    assert_eq!(statuses.len(), Status::ALL.len(), "{statuses:?}");
    assert_eq!(
        bases.len(),
        disputes_domain::ResolutionBasis::ALL.len() - 1,
        "{bases:?}"
    );
    let decided = [
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::Forbidden,
        ErrorCode::VersionConflict,
        ErrorCode::InvalidState,
        ErrorCode::DeadlinePassed,
        ErrorCode::InvalidValue,
    ];
    assert_eq!(codes, decided.into_iter().collect(), "{codes:?}");
}

/// Any public command, with optional fields present or absent and any text.
fn written_command() -> impl Strategy<Value = Command> {
    // Not blank (blank text is `invalid_value`): a visible character first.
    let text = || "[a-zé\"\\\\][ -~é\u{2028}]{0,11}";
    let optional = move || proptest::option::of(text());
    let open = (reason(), minor_units(), proposal_terms(), optional()).prop_map(
        |(reason, order_amount, proposal, description)| {
            Command::Open(Open {
                order_id: OrderId::parse("o-1").unwrap(),
                seller_id: id(SELLER),
                reason,
                order_amount: Money::new(amount(order_amount), Currency::parse("EUR").unwrap()),
                proposal,
                description,
            })
        },
    );
    prop_oneof![
        open,
        party_command(),
        optional().prop_map(|reason| Command::RejectProposal { reason }),
        optional().prop_map(|reason| Command::Withdraw { reason }),
        (ruling_terms(), optional()).prop_map(|(outcome, note)| Command::Rule {
            outcome,
            responsible_party: ResponsibleParty::Platform,
            note
        }),
        (text(), proptest::collection::vec(text(), 0..3))
            .prop_map(|(text, attachments)| Command::PostMessage { text, attachments }),
        (text(), proptest::collection::vec(text(), 0..3)).prop_map(|(description, attachments)| {
            Command::SubmitEvidence {
                description,
                attachments,
            }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// What `Request::body_json` writes (the client crate's commands), the service's parser reads
    /// back as the same request; the only refusal is an `open` whose proposal its own order amount
    /// rules out (`invalid_value`), never a shape error.
    #[test]
    fn a_written_command_parses_back_as_itself(
        command in written_command(),
        role in proptest::sample::select(vec![Role::Buyer, Role::Seller, Role::Mediator]),
        expected_version in proptest::option::of(1..50u64),
    ) {
        let actor = Actor::new(role, id(BUYER));
        let request = Request { actor, expected_version, command };
        let command_id = disputes_domain::CommandId::parse("c-1").unwrap();
        let dispute_id = disputes_domain::DisputeId::parse("d-1").unwrap();
        let body = serde_json::to_vec(&request.body_json(&command_id, &dispute_id)).unwrap();
        let limits = disputes_domain::Limits::default();
        match disputes_domain::parse_command(request.command_type().as_str(), &body, &limits) {
            Ok(parsed) => {
                prop_assert_eq!(parsed.request, request);
                prop_assert_eq!(parsed.command_id, command_id);
                prop_assert_eq!(parsed.dispute_id, dispute_id);
            }
            Err(refusal) => {
                prop_assert_eq!(refusal.code(), ErrorCode::InvalidValue, "{}", refusal);
                prop_assert!(matches!(request.command, Command::Open(_)), "{}", refusal);
            }
        }
    }
}
