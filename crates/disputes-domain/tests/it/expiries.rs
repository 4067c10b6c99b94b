//! Rule 13 and "Time": each deadline's expiry and its consequence; stale and early expiries.

use disputes_domain::{
    Command, DeadlineKind, ErrorCode, EscalationCause, Event, Proposal, Reason, Request,
    ResolutionBasis, Role, Solution, Status,
};

use crate::support::*;

/// The history's active deadline, expired at its due time: the scheduler's request and the time.
fn expiry_of(history: &[Event], kind: DeadlineKind) -> (Request, chrono::DateTime<chrono::Utc>) {
    let due = due_at(history);
    (Request::expiry(kind, due), due)
}

fn expired(kind: DeadlineKind, history: &[Event]) -> Event {
    Event::DeadlineExpired {
        deadline: kind,
        due_at: due_at(history),
    }
}

#[test]
fn seller_response_expiry_executes_the_buyers_full_refund() {
    let history = opened(Reason::NotReceived, Proposal::FullRefund);
    let (request, due) = expiry_of(&history, DeadlineKind::SellerResponse);
    let expected = vec![
        expired(DeadlineKind::SellerResponse, &history),
        resolved(
            Solution::FullRefund,
            ORDER_AMOUNT,
            ResolutionBasis::SellerResponseTimeout,
        ),
    ];
    given(history).at(due).when(request).then(expected);
}

#[test]
fn seller_response_expiry_executes_the_buyers_partial_refund() {
    let history = opened(Reason::NotReceived, partial(400));
    let (request, due) = expiry_of(&history, DeadlineKind::SellerResponse);
    let expected = vec![
        expired(DeadlineKind::SellerResponse, &history),
        resolved(
            Solution::PartialRefund,
            400,
            ResolutionBasis::SellerResponseTimeout,
        ),
    ];
    given(history).at(due).when(request).then(expected);
}

#[test]
fn seller_response_expiry_of_a_return_proposal_awaits_the_return_address() {
    let history = opened(Reason::NotAsDescribed, ret(5000));
    let (request, due) = expiry_of(&history, DeadlineKind::SellerResponse);
    let expected = vec![
        expired(DeadlineKind::SellerResponse, &history),
        set(DeadlineKind::ReturnAddress, due),
    ];
    let dispute = given(history).at(due).when(request).then(expected);
    assert_eq!(dispute.status(), Status::AwaitingReturnAddress);
    assert_eq!(
        dispute.return_amount(),
        Some(amount(5000)),
        "the buyer's return is executed"
    );
}

#[test]
fn buyer_decision_expiry_escalates_as_if_rejected() {
    for reason in [Reason::NotReceived, Reason::NotAsDescribed] {
        let history = countered(reason, partial(10));
        let (request, due) = expiry_of(&history, DeadlineKind::BuyerDecision);
        let expected = vec![
            expired(DeadlineKind::BuyerDecision, &history),
            Event::DisputeEscalated {
                cause: EscalationCause::BuyerDecisionTimeout,
                reason: None,
            },
            set(DeadlineKind::of_escalation(reason), due),
        ];
        let dispute = given(history).at(due).when(request).then(expected);
        assert_eq!(
            dispute.resolution(),
            None,
            "a buyer decision timeout does not resolve"
        );
    }
}

#[test]
fn shipping_proof_expiry_executes_the_buyers_opening_proposal_not_the_counter() {
    let history = escalated(Reason::NotReceived);
    let (request, due) = expiry_of(&history, DeadlineKind::ShippingProof);
    let expected = vec![
        expired(DeadlineKind::ShippingProof, &history),
        resolved(
            Solution::FullRefund,
            ORDER_AMOUNT,
            ResolutionBasis::ShippingProofTimeout,
        ),
    ];
    given(history).at(due).when(request).then(expected);
}

#[test]
fn buyer_evidence_expiry_releases_the_funds() {
    let history = escalated(Reason::NotAsDescribed);
    let (request, due) = expiry_of(&history, DeadlineKind::BuyerEvidence);
    let expected = vec![
        expired(DeadlineKind::BuyerEvidence, &history),
        resolved(
            Solution::ReleaseFunds,
            0,
            ResolutionBasis::BuyerEvidenceTimeout,
        ),
    ];
    given(history).at(due).when(request).then(expected);
}

#[test]
fn return_address_expiry_refunds_the_returns_amount() {
    let history = awaiting_return_address(9000);
    let (request, due) = expiry_of(&history, DeadlineKind::ReturnAddress);
    let expected = vec![
        expired(DeadlineKind::ReturnAddress, &history),
        resolved(
            Solution::ReturnAndRefund,
            9000,
            ResolutionBasis::ReturnAddressTimeout,
        ),
    ];
    given(history).at(due).when(request).then(expected);
}

#[test]
fn return_shipment_expiry_releases_the_funds() {
    let history = awaiting_return_shipment(9000);
    let (request, due) = expiry_of(&history, DeadlineKind::ReturnShipment);
    let expected = vec![
        expired(DeadlineKind::ReturnShipment, &history),
        resolved(
            Solution::ReleaseFunds,
            0,
            ResolutionBasis::ReturnShipmentTimeout,
        ),
    ];
    given(history).at(due).when(request).then(expected);
}

#[test]
fn return_receipt_expiry_refunds_the_returns_amount() {
    let history = awaiting_return_receipt(9000);
    let (request, due) = expiry_of(&history, DeadlineKind::ReturnReceipt);
    let expected = vec![
        expired(DeadlineKind::ReturnReceipt, &history),
        resolved(
            Solution::ReturnAndRefund,
            9000,
            ResolutionBasis::ReturnReceiptTimeout,
        ),
    ];
    given(history).at(due).when(request).then(expected);
}

#[test]
fn an_expiry_after_its_due_time_applies_and_the_next_deadline_runs_from_when_it_is_applied() {
    let history = countered(Reason::NotReceived, partial(10));
    let (request, due) = expiry_of(&history, DeadlineKind::BuyerDecision);
    let late = due + days(2);
    let dispute = given(history).at(late).when(request).then(vec![
        Event::DeadlineExpired {
            deadline: DeadlineKind::BuyerDecision,
            due_at: due,
        },
        Event::DisputeEscalated {
            cause: EscalationCause::BuyerDecisionTimeout,
            reason: None,
        },
        set(DeadlineKind::ShippingProof, late),
    ]);
    assert_eq!(dispute.deadline().unwrap().due_at(), late + days(3));
}

#[test]
fn an_early_expiry_changes_nothing() {
    let history = opened(Reason::NotReceived, Proposal::FullRefund);
    let (request, due) = expiry_of(&history, DeadlineKind::SellerResponse);
    given(history)
        .at(due - chrono::TimeDelta::nanoseconds(1))
        .when(request)
        .then_nothing();
}

#[test]
fn a_stale_expiry_of_another_deadline_kind_changes_nothing() {
    let history = countered(Reason::NotReceived, partial(10));
    let stale = Request::expiry(DeadlineKind::SellerResponse, t0() + days(5));
    given(history)
        .at(t0() + days(20))
        .when(stale)
        .then_nothing();
}

#[test]
fn a_stale_expiry_of_another_due_time_changes_nothing() {
    let history = opened(Reason::NotReceived, Proposal::FullRefund);
    let due = due_at(&history);
    let other = Request::expiry(DeadlineKind::SellerResponse, due - days(1));
    given(history).at(due + days(1)).when(other).then_nothing();
}

#[test]
fn an_expiry_under_review_changes_nothing() {
    let stale = Request::expiry(DeadlineKind::ShippingProof, hours(2) + days(3));
    given(under_review(Reason::NotReceived))
        .at(hours(2) + days(4))
        .when(stale)
        .then_nothing();
}

#[test]
fn an_expiry_on_a_resolved_dispute_changes_nothing() {
    let stale = Request::expiry(DeadlineKind::SellerResponse, t0() + days(5));
    given(resolved_by_agreement())
        .at(t0() + days(6))
        .when(stale)
        .then_nothing();
}

#[test]
fn an_expiry_applies_exactly_once() {
    let mut history = opened(Reason::NotReceived, Proposal::FullRefund);
    let (request, due) = expiry_of(&history, DeadlineKind::SellerResponse);
    let first = disputes_domain::decide(
        &disputes_domain::fold(&history),
        &request,
        due,
        &disputes_domain::Policy::default(),
    )
    .unwrap();
    history.extend(first);
    given(history)
        .at(due + days(1))
        .when(request)
        .then_nothing();
}

#[test]
fn an_expiry_for_a_missing_dispute_is_not_found() {
    given_nothing()
        .when(Request::expiry(DeadlineKind::SellerResponse, t0()))
        .then_refused(ErrorCode::NotFound);
}

#[test]
fn expire_deadline_from_a_party_or_the_mediator_is_forbidden() {
    let history = opened(Reason::NotReceived, Proposal::FullRefund);
    let due = due_at(&history);
    let command = Command::ExpireDeadline {
        deadline: DeadlineKind::SellerResponse,
        due_at: due,
    };
    for (role, actor_id) in [
        (Role::Buyer, BUYER),
        (Role::Seller, SELLER),
        (Role::Mediator, MEDIATOR),
    ] {
        given(history.clone())
            .at(due)
            .when(as_actor(role, actor_id, command.clone()))
            .then_refused(ErrorCode::Forbidden);
    }
}
