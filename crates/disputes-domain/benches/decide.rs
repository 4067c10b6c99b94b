//! `decide` + `evolve` of one command: the cost of the domain in every command's path.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use disputes_domain::{
    decide, evolve, fold, Actor, Amount, Command, Currency, Event, Money, Open, OrderId, PartyId,
    Policy, ProposalTerms, Reason, Request, Role, State,
};

fn party(role: Role, id: &str) -> Actor {
    Actor::new(role, PartyId::parse(id).unwrap())
}

fn open_request() -> Request {
    Request::new(
        party(Role::Buyer, "b-1"),
        Command::Open(Open {
            order_id: OrderId::parse("o-1").unwrap(),
            seller_id: PartyId::parse("s-42").unwrap(),
            reason: Reason::NotReceived,
            order_amount: Money::new(
                Amount::new(12_999).unwrap(),
                Currency::parse("USD").unwrap(),
            ),
            proposal: ProposalTerms::FullRefund,
            description: None,
        }),
    )
}

/// `decide` then `evolve` of every event it gives: what a command costs the domain.
fn step(state: State, request: &Request, policy: &Policy) -> State {
    let now = Utc.with_ymd_and_hms(2026, 11, 21, 8, 0, 0).unwrap();
    let events: Vec<Event> = decide(&state, request, now, policy).expect("accepted");
    events.iter().fold(state, evolve)
}

fn bench(c: &mut Criterion) {
    let policy = Policy::default();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0).unwrap();
    let opened = fold(&decide(&State::Initial, &open_request(), t0, &policy).unwrap());
    let counter = Request::new(
        party(Role::Seller, "s-42"),
        Command::CounterPropose {
            proposal: ProposalTerms::PartialRefund(Amount::new(5_000).unwrap()),
        },
    );
    let accept = Request::new(party(Role::Seller, "s-42"), Command::AcceptProposal);
    let open = open_request();

    c.bench_function("decide+evolve open", |b| {
        b.iter(|| step(State::Initial, black_box(&open), &policy))
    });
    c.bench_function("decide+evolve counter_propose", |b| {
        b.iter_batched(
            || opened.clone(),
            |state| step(state, black_box(&counter), &policy),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("decide+evolve accept_proposal (resolves)", |b| {
        b.iter_batched(
            || opened.clone(),
            |state| step(state, black_box(&accept), &policy),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
