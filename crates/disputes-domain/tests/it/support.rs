//! Given/when/then, and the fixtures the tests share: parties, times, and histories that put a
//! dispute in each status. Step n of a history happens at `hours(n)`.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use disputes_domain::{
    decide, evolve, fold, Actor, Amount, Command, Currency, DeadlineKind, Dispute, ErrorCode,
    EscalationCause, Event, Money, OrderId, Party, PartyId, Policy, Proposal, ProposalTerms,
    Reason, Refusal, Request, ResolutionBasis, Role, Solution, State, Status,
};

pub(crate) const ORDER_AMOUNT: u64 = 12_999;

/// 2026-11-20T08:00:00Z: when the dispute is opened.
pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0).unwrap()
}

pub(crate) fn hours(n: i64) -> DateTime<Utc> {
    t0() + TimeDelta::hours(n)
}

pub(crate) fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

pub(crate) fn amount(minor_units: u64) -> Amount {
    Amount::new(minor_units).unwrap()
}

pub(crate) fn usd(minor_units: u64) -> Money {
    Money::new(amount(minor_units), Currency::parse("USD").unwrap())
}

pub(crate) fn id(text: &str) -> PartyId {
    PartyId::parse(text).unwrap()
}

pub(crate) const BUYER: &str = "b-1";
pub(crate) const SELLER: &str = "s-42";
pub(crate) const MEDIATOR: &str = "m-7";

pub(crate) fn as_actor(role: Role, actor_id: &str, command: Command) -> Request {
    Request::new(Actor::new(role, id(actor_id)), command)
}

pub(crate) fn buyer(command: Command) -> Request {
    as_actor(Role::Buyer, BUYER, command)
}

pub(crate) fn seller(command: Command) -> Request {
    as_actor(Role::Seller, SELLER, command)
}

pub(crate) fn mediator(command: Command) -> Request {
    as_actor(Role::Mediator, MEDIATOR, command)
}

pub(crate) fn partial(minor_units: u64) -> Proposal {
    Proposal::PartialRefund {
        amount: amount(minor_units),
    }
}

pub(crate) fn ret(minor_units: u64) -> Proposal {
    Proposal::ReturnAndRefund {
        amount: amount(minor_units),
    }
}

pub(crate) fn open_command(reason: Reason, proposal: ProposalTerms) -> Command {
    Command::Open(disputes_domain::Open {
        order_id: OrderId::parse("o-1").unwrap(),
        seller_id: id(SELLER),
        reason,
        order_amount: usd(ORDER_AMOUNT),
        proposal,
        description: None,
    })
}

pub(crate) fn set(kind: DeadlineKind, entered_at: DateTime<Utc>) -> Event {
    Event::DeadlineSet {
        deadline: kind,
        due_at: entered_at + Policy::default().duration(kind),
    }
}

pub(crate) fn resolved(solution: Solution, refund_amount: u64, basis: ResolutionBasis) -> Event {
    Event::DisputeResolved {
        solution,
        refund_amount,
        release_amount: ORDER_AMOUNT - refund_amount,
        currency: Currency::parse("USD").unwrap(),
        basis,
    }
}

/// Step 0: opened by the buyer with `proposal`, awaiting the seller's response.
pub(crate) fn opened(reason: Reason, proposal: Proposal) -> Vec<Event> {
    vec![
        Event::DisputeOpened {
            order_id: OrderId::parse("o-1").unwrap(),
            buyer_id: id(BUYER),
            seller_id: id(SELLER),
            reason,
            order_amount: usd(ORDER_AMOUNT),
            proposal,
            description: None,
        },
        set(DeadlineKind::SellerResponse, t0()),
    ]
}

/// Step 1: the seller counter-proposed `counter` to the buyer's full refund.
pub(crate) fn countered(reason: Reason, counter: Proposal) -> Vec<Event> {
    let mut history = opened(reason, Proposal::FullRefund);
    history.extend([
        Event::CounterProposed { proposal: counter },
        set(DeadlineKind::BuyerDecision, hours(1)),
    ]);
    history
}

/// Step 2: the buyer rejected a partial refund of 1000; escalated by reason.
pub(crate) fn escalated(reason: Reason) -> Vec<Event> {
    let mut history = countered(reason, partial(1000));
    let kind = DeadlineKind::of_escalation(reason);
    history.extend([
        Event::DisputeEscalated {
            cause: EscalationCause::BuyerRejected,
            reason: None,
        },
        set(kind, hours(2)),
    ]);
    history
}

/// Step 3: shipping proof or evidence submitted, by reason.
pub(crate) fn under_review(reason: Reason) -> Vec<Event> {
    let mut history = escalated(reason);
    history.push(match reason {
        Reason::NotReceived => Event::ShippingProofSubmitted {
            carrier: "DHL".into(),
            tracking_number: "JD1".into(),
        },
        Reason::NotAsDescribed => Event::EvidenceSubmitted {
            description: "torn".into(),
            attachments: vec![],
        },
    });
    history
}

/// Step 1: the seller accepted a return of `return_amount`; awaiting the return address.
pub(crate) fn awaiting_return_address(return_amount: u64) -> Vec<Event> {
    let mut history = opened(Reason::NotAsDescribed, ret(return_amount));
    history.extend([
        Event::ProposalAccepted {
            by: Party::Seller,
            proposal: ret(return_amount),
        },
        set(DeadlineKind::ReturnAddress, hours(1)),
    ]);
    history
}

/// Step 2: the return address given; awaiting the buyer's return shipment.
pub(crate) fn awaiting_return_shipment(return_amount: u64) -> Vec<Event> {
    let mut history = awaiting_return_address(return_amount);
    history.extend([
        Event::ReturnAddressProvided {
            address: "1 Return St".into(),
        },
        set(DeadlineKind::ReturnShipment, hours(2)),
    ]);
    history
}

/// Step 3: the return shipped; awaiting the seller's receipt.
pub(crate) fn awaiting_return_receipt(return_amount: u64) -> Vec<Event> {
    let mut history = awaiting_return_shipment(return_amount);
    history.extend([
        Event::ReturnTrackingProvided {
            carrier: "UPS".into(),
            tracking_number: "1Z".into(),
        },
        set(DeadlineKind::ReturnReceipt, hours(3)),
    ]);
    history
}

/// Step 4: the seller reported the return damaged; under review again.
pub(crate) fn after_return_problem(return_amount: u64) -> Vec<Event> {
    let mut history = awaiting_return_receipt(return_amount);
    history.push(Event::ReturnProblemReported {
        problem: disputes_domain::ReturnProblem::Damaged,
        note: None,
    });
    history
}

/// Step 1: the seller accepted the buyer's full refund.
pub(crate) fn resolved_by_agreement() -> Vec<Event> {
    let mut history = opened(Reason::NotReceived, Proposal::FullRefund);
    history.extend([
        Event::ProposalAccepted {
            by: Party::Seller,
            proposal: Proposal::FullRefund,
        },
        resolved(
            Solution::FullRefund,
            ORDER_AMOUNT,
            ResolutionBasis::Agreement,
        ),
    ]);
    history
}

/// The active deadline of a history's state.
pub(crate) fn due_at(history: &[Event]) -> DateTime<Utc> {
    dispute_of(&fold(history))
        .deadline()
        .expect("an active deadline")
        .due_at()
}

pub(crate) fn dispute_of(state: &State) -> &Dispute {
    state.dispute().expect("an opened dispute")
}

pub(crate) fn given(history: Vec<Event>) -> Scenario {
    Scenario {
        history,
        now: hours(10),
        policy: Policy::default(),
    }
}

pub(crate) fn given_nothing() -> Scenario {
    given(Vec::new())
}

pub(crate) struct Scenario {
    history: Vec<Event>,
    now: DateTime<Utc>,
    policy: Policy,
}

impl Scenario {
    pub(crate) fn at(mut self, now: DateTime<Utc>) -> Scenario {
        self.now = now;
        self
    }

    pub(crate) fn when(self, request: Request) -> Outcome {
        let state = fold(&self.history);
        let result = decide(&state, &request, self.now, &self.policy);
        Outcome { state, result }
    }
}

pub(crate) struct Outcome {
    state: State,
    result: Result<Vec<Event>, Refusal>,
}

impl Outcome {
    /// Expects exactly `expected`; returns the dispute they lead to.
    #[track_caller]
    pub(crate) fn then(self, expected: Vec<Event>) -> Dispute {
        let events = self
            .result
            .unwrap_or_else(|refusal| panic!("refused: {refusal}"));
        assert_eq!(events, expected);
        let state = events.iter().fold(self.state, evolve);
        dispute_of(&state).clone()
    }

    /// Expects a refusal with `code` (and a message).
    #[track_caller]
    pub(crate) fn then_refused(self, code: ErrorCode) -> Refusal {
        match self.result {
            Ok(events) => panic!("expected {code}, got events {events:?}"),
            Err(refusal) => {
                assert_eq!(refusal.code(), code, "{refusal}");
                assert!(!refusal.message().is_empty());
                refusal
            }
        }
    }

    /// Expects acceptance with no events (a stale or early expiry).
    #[track_caller]
    pub(crate) fn then_nothing(self) {
        assert_eq!(self.result, Ok(vec![]));
    }
}

/// The status a history leads to.
pub(crate) fn status_of(history: &[Event]) -> Status {
    dispute_of(&fold(history)).status()
}
