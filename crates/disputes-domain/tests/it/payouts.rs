//! "How each resolution pays out": solution, refund and release for each basis; the sum is the
//! order amount and the currency is the order's.

use disputes_domain::{
    decide, fold, Command, Currency, DeadlineKind, Event, Money, OrderId, Policy, Proposal,
    ProposalTerms, Reason, Request, ResolutionBasis, Solution, State,
};

use crate::support::*;

/// The DisputeResolved that `request` at `now` appends to `history`.
fn resolution(history: &[Event], request: Request, now: chrono::DateTime<chrono::Utc>) -> Event {
    let events = decide(&fold(history), &request, now, &Policy::default()).unwrap();
    events
        .into_iter()
        .find(|e| matches!(e, Event::DisputeResolved { .. }))
        .expect("a resolution")
}

fn split(event: &Event) -> (Solution, u64, u64, ResolutionBasis) {
    let Event::DisputeResolved {
        solution,
        refund_amount,
        release_amount,
        basis,
        ..
    } = event
    else {
        unreachable!()
    };
    (*solution, *refund_amount, *release_amount, *basis)
}

#[test]
fn a_partial_refund_splits_the_order_amount() {
    let resolved = resolution(
        &opened(Reason::NotReceived, partial(2500)),
        seller(Command::AcceptProposal),
        hours(10),
    );
    assert_eq!(
        split(&resolved),
        (
            Solution::PartialRefund,
            2500,
            ORDER_AMOUNT - 2500,
            ResolutionBasis::Agreement
        )
    );
}

#[test]
fn a_return_of_part_of_the_order_refunds_that_part_and_releases_the_rest() {
    let resolved = resolution(
        &awaiting_return_receipt(9000),
        seller(Command::ConfirmReturnReceived),
        hours(10),
    );
    assert_eq!(
        split(&resolved),
        (
            Solution::ReturnAndRefund,
            9000,
            3999,
            ResolutionBasis::ReturnReceived
        )
    );
}

#[test]
fn return_timeouts_refund_the_returns_amount_not_the_order_amount() {
    for (history, kind, basis) in [
        (
            awaiting_return_address(7000),
            DeadlineKind::ReturnAddress,
            ResolutionBasis::ReturnAddressTimeout,
        ),
        (
            awaiting_return_receipt(7000),
            DeadlineKind::ReturnReceipt,
            ResolutionBasis::ReturnReceiptTimeout,
        ),
    ] {
        let due = due_at(&history);
        let resolved = resolution(&history, Request::expiry(kind, due), due);
        assert_eq!(
            split(&resolved),
            (Solution::ReturnAndRefund, 7000, ORDER_AMOUNT - 7000, basis)
        );
    }
}

#[test]
fn release_bases_pay_nothing_back_and_everything_to_the_seller() {
    let evidence = escalated(Reason::NotAsDescribed);
    let shipment = awaiting_return_shipment(5000);
    let cases = [
        resolution(
            &evidence,
            Request::expiry(DeadlineKind::BuyerEvidence, due_at(&evidence)),
            due_at(&evidence),
        ),
        resolution(
            &shipment,
            Request::expiry(DeadlineKind::ReturnShipment, due_at(&shipment)),
            due_at(&shipment),
        ),
        resolution(
            &shipment,
            buyer(Command::Withdraw { reason: None }),
            hours(10),
        ),
    ];
    for resolved in cases {
        let (solution, refund, release, _) = split(&resolved);
        assert_eq!(
            (solution, refund, release),
            (Solution::ReleaseFunds, 0, ORDER_AMOUNT)
        );
    }
}

#[test]
fn timeouts_that_execute_the_buyers_proposal_pay_it_per_the_money_table() {
    let history = opened(Reason::NotReceived, partial(100));
    let resolved = resolution(
        &history,
        Request::expiry(DeadlineKind::SellerResponse, due_at(&history)),
        due_at(&history),
    );
    assert_eq!(
        split(&resolved),
        (
            Solution::PartialRefund,
            100,
            ORDER_AMOUNT - 100,
            ResolutionBasis::SellerResponseTimeout
        )
    );
}

#[test]
fn the_resolution_is_in_the_orders_currency() {
    let open = Command::Open(disputes_domain::Open {
        order_id: OrderId::parse("o-9").unwrap(),
        seller_id: id(SELLER),
        reason: Reason::NotReceived,
        order_amount: Money::new(amount(500), Currency::parse("JPY").unwrap()),
        proposal: ProposalTerms::FullRefund,
        description: None,
    });
    let policy = Policy::default();
    let events = decide(&State::Initial, &buyer(open), t0(), &policy).unwrap();
    let accepted = decide(
        &fold(&events),
        &seller(Command::AcceptProposal),
        hours(1),
        &policy,
    )
    .unwrap();
    let Event::DisputeResolved {
        currency,
        refund_amount,
        ..
    } = &accepted[1]
    else {
        panic!("{accepted:?}")
    };
    assert_eq!((currency.as_str(), *refund_amount), ("JPY", 500));
}

#[test]
fn a_resolved_dispute_records_its_payout() {
    let dispute = dispute_of(&fold(&resolved_by_agreement())).clone();
    let resolution = dispute.resolution().unwrap();
    assert_eq!(resolution.solution(), Solution::FullRefund);
    assert_eq!(
        resolution.refund_amount() + resolution.release_amount(),
        ORDER_AMOUNT
    );
    assert_eq!(resolution.basis(), ResolutionBasis::Agreement);
    assert_eq!(dispute.proposal(), Proposal::FullRefund);
}
