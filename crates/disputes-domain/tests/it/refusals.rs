//! Each refusal of rules.md that needs the dispute: not_found, already_exists, forbidden,
//! version_conflict, invalid_state, deadline_passed, and invalid_value judged against the dispute.

use disputes_domain::{
    Command, ErrorCode, Event, Proposal, ProposalTerms, Reason, ResponsibleParty, Role, RulingTerms,
};

use crate::support::*;

fn message() -> Command {
    Command::PostMessage {
        text: "hi".into(),
        attachments: vec![],
    }
}

fn rule(outcome: RulingTerms) -> Command {
    Command::Rule {
        outcome,
        responsible_party: ResponsibleParty::Platform,
        note: None,
    }
}

// not_found, already_exists

#[test]
fn a_command_on_a_missing_dispute_is_not_found() {
    given_nothing()
        .when(seller(Command::AcceptProposal))
        .then_refused(ErrorCode::NotFound);
    given_nothing()
        .when(buyer(message()))
        .then_refused(ErrorCode::NotFound);
}

#[test]
fn opening_an_existing_dispute_is_already_exists() {
    given(opened(Reason::NotReceived, Proposal::FullRefund))
        .when(buyer(open_command(
            Reason::NotReceived,
            ProposalTerms::FullRefund,
        )))
        .then_refused(ErrorCode::AlreadyExists);
}

#[test]
fn opening_a_resolved_dispute_again_is_already_exists() {
    given(resolved_by_agreement())
        .when(buyer(open_command(
            Reason::NotReceived,
            ProposalTerms::FullRefund,
        )))
        .then_refused(ErrorCode::AlreadyExists);
}

// forbidden

#[test]
fn opening_by_anyone_but_a_buyer_is_forbidden() {
    for (role, actor_id) in [
        (Role::Seller, SELLER),
        (Role::Mediator, MEDIATOR),
        (Role::System, "scheduler"),
    ] {
        given_nothing()
            .when(as_actor(
                role,
                actor_id,
                open_command(Reason::NotReceived, ProposalTerms::FullRefund),
            ))
            .then_refused(ErrorCode::Forbidden);
    }
}

#[test]
fn buyer_counter_proposing_is_forbidden() {
    given(opened(Reason::NotReceived, Proposal::FullRefund))
        .when(buyer(Command::CounterPropose {
            proposal: ProposalTerms::FullRefund,
        }))
        .then_refused(ErrorCode::Forbidden);
}

#[test]
fn mediator_accepting_a_proposal_is_forbidden() {
    given(opened(Reason::NotReceived, Proposal::FullRefund))
        .when(mediator(Command::AcceptProposal))
        .then_refused(ErrorCode::Forbidden);
}

#[test]
fn a_party_ruling_is_forbidden() {
    for request in [buyer, seller] {
        given(under_review(Reason::NotReceived))
            .when(request(rule(RulingTerms::ReleaseFunds)))
            .then_refused(ErrorCode::Forbidden);
    }
}

#[test]
fn seller_withdrawing_is_forbidden() {
    given(opened(Reason::NotReceived, Proposal::FullRefund))
        .when(seller(Command::Withdraw { reason: None }))
        .then_refused(ErrorCode::Forbidden);
}

#[test]
fn each_command_from_a_role_that_may_never_send_it_is_forbidden() {
    let cases: Vec<(Role, &str, Command)> = vec![
        (
            Role::Buyer,
            BUYER,
            Command::SubmitShippingProof {
                carrier: "c".into(),
                tracking_number: "t".into(),
            },
        ),
        (
            Role::Seller,
            SELLER,
            Command::SubmitEvidence {
                description: "d".into(),
                attachments: vec![],
            },
        ),
        (
            Role::Seller,
            SELLER,
            Command::RejectProposal { reason: None },
        ),
        (
            Role::Buyer,
            BUYER,
            Command::ProvideReturnAddress {
                address: "a".into(),
            },
        ),
        (
            Role::Seller,
            SELLER,
            Command::ProvideReturnTracking {
                carrier: "c".into(),
                tracking_number: "t".into(),
            },
        ),
        (Role::Buyer, BUYER, Command::ConfirmReturnReceived),
        (
            Role::Buyer,
            BUYER,
            Command::ReportReturnProblem {
                problem: disputes_domain::ReturnProblem::Damaged,
                note: None,
            },
        ),
        (Role::Mediator, MEDIATOR, Command::Withdraw { reason: None }),
    ];
    for (role, actor_id, command) in cases {
        given(opened(Reason::NotReceived, Proposal::FullRefund))
            .when(as_actor(role, actor_id, command))
            .then_refused(ErrorCode::Forbidden);
    }
}

#[test]
fn a_seller_who_is_not_this_disputes_seller_is_forbidden() {
    given(opened(Reason::NotReceived, Proposal::FullRefund))
        .when(as_actor(
            Role::Seller,
            "s-someone-else",
            Command::AcceptProposal,
        ))
        .then_refused(ErrorCode::Forbidden);
}

#[test]
fn a_buyer_who_is_not_this_disputes_buyer_is_forbidden() {
    given(opened(Reason::NotReceived, Proposal::FullRefund))
        .when(as_actor(
            Role::Buyer,
            "b-other",
            Command::Withdraw { reason: None },
        ))
        .then_refused(ErrorCode::Forbidden);
}

#[test]
fn a_stranger_posting_a_message_as_buyer_is_forbidden() {
    given(opened(Reason::NotReceived, Proposal::FullRefund))
        .when(as_actor(Role::Buyer, "b-other", message()))
        .then_refused(ErrorCode::Forbidden);
}

#[test]
fn the_system_role_sending_a_party_command_is_forbidden() {
    given(opened(Reason::NotReceived, Proposal::FullRefund))
        .when(as_actor(Role::System, "scheduler", Command::AcceptProposal))
        .then_refused(ErrorCode::Forbidden);
}

#[test]
fn any_mediator_id_may_rule() {
    given(under_review(Reason::NotReceived))
        .when(as_actor(
            Role::Mediator,
            "m-other",
            rule(RulingTerms::FullRefund),
        ))
        .then(vec![
            Event::RulingIssued {
                outcome: disputes_domain::Solution::FullRefund,
                amount: None,
                responsible_party: ResponsibleParty::Platform,
                note: None,
            },
            resolved(
                disputes_domain::Solution::FullRefund,
                ORDER_AMOUNT,
                disputes_domain::ResolutionBasis::Ruling,
            ),
        ]);
}

// version_conflict

#[test]
fn a_stale_expected_version_is_version_conflict() {
    let mut request = seller(Command::AcceptProposal);
    request.expected_version = Some(1);
    given(opened(Reason::NotReceived, Proposal::FullRefund))
        .when(request)
        .then_refused(ErrorCode::VersionConflict);
}

#[test]
fn the_current_expected_version_is_accepted() {
    let mut request = seller(Command::AcceptProposal);
    request.expected_version = Some(2);
    let dispute = given(opened(Reason::NotReceived, Proposal::FullRefund))
        .when(request)
        .then(vec![
            Event::ProposalAccepted {
                by: disputes_domain::Party::Seller,
                proposal: Proposal::FullRefund,
            },
            resolved(
                disputes_domain::Solution::FullRefund,
                ORDER_AMOUNT,
                disputes_domain::ResolutionBasis::Agreement,
            ),
        ]);
    assert_eq!(dispute.version(), 4);
}

#[test]
fn opening_with_an_expected_version_other_than_zero_is_version_conflict() {
    let mut request = buyer(open_command(Reason::NotReceived, ProposalTerms::FullRefund));
    request.expected_version = Some(1);
    given_nothing()
        .when(request)
        .then_refused(ErrorCode::VersionConflict);
    let mut request = buyer(open_command(Reason::NotReceived, ProposalTerms::FullRefund));
    request.expected_version = Some(0);
    given_nothing()
        .at(t0())
        .when(request)
        .then(opened(Reason::NotReceived, Proposal::FullRefund));
}

// invalid_state

#[test]
fn buyer_accepting_while_awaiting_the_sellers_response_is_invalid_state() {
    given(opened(Reason::NotReceived, Proposal::FullRefund))
        .when(buyer(Command::AcceptProposal))
        .then_refused(ErrorCode::InvalidState);
}

#[test]
fn seller_accepting_while_awaiting_the_buyers_decision_is_invalid_state() {
    given(countered(Reason::NotReceived, partial(10)))
        .when(seller(Command::AcceptProposal))
        .then_refused(ErrorCode::InvalidState);
}

#[test]
fn a_second_counter_proposal_is_invalid_state_one_round_only() {
    given(countered(Reason::NotReceived, partial(10)))
        .when(seller(Command::CounterPropose {
            proposal: ProposalTerms::PartialRefund(amount(20)),
        }))
        .then_refused(ErrorCode::InvalidState);
}

#[test]
fn rejecting_with_no_counter_proposal_on_the_table_is_invalid_state() {
    given(opened(Reason::NotReceived, Proposal::FullRefund))
        .when(buyer(Command::RejectProposal { reason: None }))
        .then_refused(ErrorCode::InvalidState);
}

#[test]
fn shipping_proof_for_a_not_as_described_dispute_is_invalid_state() {
    given(escalated(Reason::NotAsDescribed))
        .when(seller(Command::SubmitShippingProof {
            carrier: "c".into(),
            tracking_number: "t".into(),
        }))
        .then_refused(ErrorCode::InvalidState);
}

#[test]
fn evidence_for_a_not_received_dispute_is_invalid_state() {
    given(escalated(Reason::NotReceived))
        .when(buyer(Command::SubmitEvidence {
            description: "d".into(),
            attachments: vec![],
        }))
        .then_refused(ErrorCode::InvalidState);
}

#[test]
fn ruling_before_review_is_invalid_state() {
    given(escalated(Reason::NotReceived))
        .when(mediator(rule(RulingTerms::FullRefund)))
        .then_refused(ErrorCode::InvalidState);
}

#[test]
fn return_steps_out_of_order_are_invalid_state() {
    given(awaiting_return_address(100))
        .when(buyer(Command::ProvideReturnTracking {
            carrier: "c".into(),
            tracking_number: "t".into(),
        }))
        .then_refused(ErrorCode::InvalidState);
    given(awaiting_return_shipment(100))
        .when(seller(Command::ConfirmReturnReceived))
        .then_refused(ErrorCode::InvalidState);
    given(awaiting_return_shipment(100))
        .when(seller(Command::ProvideReturnAddress {
            address: "again".into(),
        }))
        .then_refused(ErrorCode::InvalidState);
    given(awaiting_return_address(100))
        .when(seller(Command::ReportReturnProblem {
            problem: disputes_domain::ReturnProblem::NotReceived,
            note: None,
        }))
        .then_refused(ErrorCode::InvalidState);
}

#[test]
fn every_command_on_a_resolved_dispute_is_invalid_state() {
    let commands = [
        (Role::Seller, SELLER, Command::AcceptProposal),
        (Role::Buyer, BUYER, Command::Withdraw { reason: None }),
        (Role::Buyer, BUYER, message()),
        (Role::Seller, SELLER, message()),
        (Role::Mediator, MEDIATOR, message()),
        (Role::Mediator, MEDIATOR, rule(RulingTerms::FullRefund)),
        (
            Role::Seller,
            SELLER,
            Command::CounterPropose {
                proposal: ProposalTerms::FullRefund,
            },
        ),
    ];
    for (role, actor_id, command) in commands {
        given(resolved_by_agreement())
            .when(as_actor(role, actor_id, command))
            .then_refused(ErrorCode::InvalidState);
    }
}

// deadline_passed

#[test]
fn counter_proposal_after_deadline_is_deadline_passed() {
    let history = opened(Reason::NotReceived, Proposal::FullRefund);
    let due = due_at(&history);
    given(history)
        .at(due + days(1))
        .when(seller(Command::CounterPropose {
            proposal: ProposalTerms::PartialRefund(amount(10)),
        }))
        .then_refused(ErrorCode::DeadlinePassed);
}

#[test]
fn accepting_exactly_at_the_due_time_is_deadline_passed() {
    let history = opened(Reason::NotReceived, Proposal::FullRefund);
    let due = due_at(&history);
    given(history)
        .at(due)
        .when(seller(Command::AcceptProposal))
        .then_refused(ErrorCode::DeadlinePassed);
}

#[test]
fn accepting_just_before_the_due_time_is_accepted() {
    let history = opened(Reason::NotReceived, partial(10));
    let due = due_at(&history);
    let dispute = given(history)
        .at(due - chrono::TimeDelta::nanoseconds(1))
        .when(seller(Command::AcceptProposal))
        .then(vec![
            Event::ProposalAccepted {
                by: disputes_domain::Party::Seller,
                proposal: partial(10),
            },
            resolved(
                disputes_domain::Solution::PartialRefund,
                10,
                disputes_domain::ResolutionBasis::Agreement,
            ),
        ]);
    assert!(dispute.is_resolved());
}

#[test]
fn withdrawing_after_the_deadline_is_deadline_passed() {
    let history = awaiting_return_shipment(100);
    let due = due_at(&history);
    given(history)
        .at(due)
        .when(buyer(Command::Withdraw { reason: None }))
        .then_refused(ErrorCode::DeadlinePassed);
}

#[test]
fn each_party_step_after_its_deadline_is_deadline_passed() {
    let cases: Vec<(Vec<Event>, disputes_domain::Request)> = vec![
        (
            countered(Reason::NotReceived, partial(10)),
            buyer(Command::RejectProposal { reason: None }),
        ),
        (
            escalated(Reason::NotReceived),
            seller(Command::SubmitShippingProof {
                carrier: "c".into(),
                tracking_number: "t".into(),
            }),
        ),
        (
            escalated(Reason::NotAsDescribed),
            buyer(Command::SubmitEvidence {
                description: "d".into(),
                attachments: vec![],
            }),
        ),
        (
            awaiting_return_address(100),
            seller(Command::ProvideReturnAddress {
                address: "a".into(),
            }),
        ),
        (
            awaiting_return_shipment(100),
            buyer(Command::ProvideReturnTracking {
                carrier: "c".into(),
                tracking_number: "t".into(),
            }),
        ),
        (
            awaiting_return_receipt(100),
            seller(Command::ConfirmReturnReceived),
        ),
    ];
    for (history, request) in cases {
        let due = due_at(&history);
        given(history)
            .at(due + days(1))
            .when(request)
            .then_refused(ErrorCode::DeadlinePassed);
    }
}

// invalid_value against the dispute

#[test]
fn counter_proposing_a_partial_refund_not_below_the_order_amount_is_invalid_value() {
    for minor_units in [ORDER_AMOUNT, ORDER_AMOUNT + 1] {
        given(opened(Reason::NotReceived, Proposal::FullRefund))
            .when(seller(Command::CounterPropose {
                proposal: ProposalTerms::PartialRefund(amount(minor_units)),
            }))
            .then_refused(ErrorCode::InvalidValue);
    }
}

#[test]
fn counter_proposing_a_return_over_the_order_amount_is_invalid_value() {
    given(opened(Reason::NotAsDescribed, Proposal::FullRefund))
        .when(seller(Command::CounterPropose {
            proposal: ProposalTerms::ReturnAndRefund(Some(amount(ORDER_AMOUNT + 1))),
        }))
        .then_refused(ErrorCode::InvalidValue);
}

#[test]
fn counter_proposing_a_return_of_exactly_the_order_amount_is_accepted() {
    given(opened(Reason::NotAsDescribed, Proposal::FullRefund))
        .when(seller(Command::CounterPropose {
            proposal: ProposalTerms::ReturnAndRefund(Some(amount(ORDER_AMOUNT))),
        }))
        .then(vec![
            Event::CounterProposed {
                proposal: ret(ORDER_AMOUNT),
            },
            set(disputes_domain::DeadlineKind::BuyerDecision, hours(10)),
        ]);
}

#[test]
fn ruling_a_return_for_not_received_is_invalid_value() {
    given(under_review(Reason::NotReceived))
        .when(mediator(rule(RulingTerms::ReturnAndRefund(None))))
        .then_refused(ErrorCode::InvalidValue);
}

#[test]
fn ruling_a_return_after_a_return_problem_is_invalid_value() {
    given(after_return_problem(100))
        .when(mediator(rule(RulingTerms::ReturnAndRefund(None))))
        .then_refused(ErrorCode::InvalidValue);
}

#[test]
fn ruling_a_partial_refund_not_below_the_order_amount_is_invalid_value() {
    given(under_review(Reason::NotReceived))
        .when(mediator(rule(RulingTerms::PartialRefund(amount(
            ORDER_AMOUNT,
        )))))
        .then_refused(ErrorCode::InvalidValue);
}

#[test]
fn ruling_a_return_over_the_order_amount_is_invalid_value() {
    given(under_review(Reason::NotAsDescribed))
        .when(mediator(rule(RulingTerms::ReturnAndRefund(Some(amount(
            ORDER_AMOUNT + 1,
        ))))))
        .then_refused(ErrorCode::InvalidValue);
}

#[test]
fn opening_with_a_proposal_not_within_its_own_order_amount_is_invalid_value() {
    for terms in [
        ProposalTerms::PartialRefund(amount(ORDER_AMOUNT)),
        ProposalTerms::ReturnAndRefund(Some(amount(ORDER_AMOUNT + 1))),
    ] {
        given_nothing()
            .when(buyer(open_command(Reason::NotAsDescribed, terms)))
            .then_refused(ErrorCode::InvalidValue);
    }
}

#[test]
fn opening_a_dispute_against_oneself_is_invalid_value() {
    given_nothing()
        .when(as_actor(
            Role::Buyer,
            SELLER,
            open_command(Reason::NotReceived, ProposalTerms::FullRefund),
        ))
        .then_refused(ErrorCode::InvalidValue);
}
