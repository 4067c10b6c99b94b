//! The dispute view's `actions`: what each role may send now.

use disputes_domain::{actions, fold, Actions, CommandType as C, Event, Proposal, Reason, State};

use crate::support::*;

fn at(history: &[Event], now: chrono::DateTime<chrono::Utc>) -> Actions {
    actions(&fold(history), now)
}

#[test]
fn nothing_is_listed_before_the_dispute_exists_and_open_is_never_listed() {
    let none = Actions {
        buyer: vec![],
        seller: vec![],
        mediator: vec![],
    };
    assert_eq!(actions(&State::Initial, t0()), none);
}

#[test]
fn awaiting_the_sellers_response_the_seller_accepts_or_counter_proposes() {
    let listed = at(&opened(Reason::NotReceived, Proposal::FullRefund), hours(1));
    assert_eq!(
        listed.seller,
        vec![C::AcceptProposal, C::CounterPropose, C::PostMessage]
    );
    assert_eq!(listed.buyer, vec![C::Withdraw, C::PostMessage]);
    assert_eq!(listed.mediator, vec![C::PostMessage]);
}

#[test]
fn awaiting_the_buyers_decision_the_buyer_accepts_or_rejects() {
    let listed = at(&countered(Reason::NotReceived, partial(10)), hours(2));
    assert_eq!(
        listed.buyer,
        vec![
            C::AcceptProposal,
            C::RejectProposal,
            C::Withdraw,
            C::PostMessage
        ]
    );
    assert_eq!(listed.seller, vec![C::PostMessage]);
}

#[test]
fn escalated_the_awaited_party_submits_proof_or_evidence() {
    assert_eq!(
        at(&escalated(Reason::NotReceived), hours(3)).seller,
        vec![C::SubmitShippingProof, C::PostMessage]
    );
    let listed = at(&escalated(Reason::NotAsDescribed), hours(3));
    assert_eq!(
        listed.buyer,
        vec![C::SubmitEvidence, C::Withdraw, C::PostMessage]
    );
    assert_eq!(listed.seller, vec![C::PostMessage]);
}

#[test]
fn under_review_the_mediator_rules() {
    let listed = at(&under_review(Reason::NotReceived), hours(4));
    assert_eq!(listed.mediator, vec![C::Rule, C::PostMessage]);
    assert_eq!(listed.buyer, vec![C::Withdraw, C::PostMessage]);
    assert_eq!(listed.seller, vec![C::PostMessage]);
}

#[test]
fn in_execution_each_step_is_listed_for_its_party() {
    assert_eq!(
        at(&awaiting_return_shipment(100), hours(3)).buyer,
        vec![C::ProvideReturnTracking, C::Withdraw, C::PostMessage]
    );
    assert_eq!(
        at(&awaiting_return_receipt(100), hours(4)).seller,
        vec![
            C::ConfirmReturnReceived,
            C::ReportReturnProblem,
            C::PostMessage
        ]
    );
}

#[test]
fn once_the_deadline_has_come_a_partys_list_holds_only_post_message() {
    let history = opened(Reason::NotReceived, Proposal::FullRefund);
    let listed = at(&history, due_at(&history));
    assert_eq!(listed.seller, vec![C::PostMessage]);
    assert_eq!(listed.buyer, vec![C::PostMessage]);
    assert_eq!(listed.mediator, vec![C::PostMessage]);
}

#[test]
fn a_resolved_dispute_lists_nothing() {
    let listed = at(&resolved_by_agreement(), hours(2));
    assert_eq!(
        listed,
        Actions {
            buyer: vec![],
            seller: vec![],
            mediator: vec![]
        }
    );
}
