//! "Which refusal wins", steps 3 to 6: a command wrong in several ways gets the first code.

use disputes_domain::{
    Command, ErrorCode, Proposal, ProposalTerms, Reason, ResponsibleParty, Role, RulingTerms,
};

use crate::support::*;

fn stale(mut request: disputes_domain::Request) -> disputes_domain::Request {
    request.expected_version = Some(99);
    request
}

#[test]
fn not_found_beats_forbidden_and_version_conflict() {
    given_nothing()
        .when(stale(mediator(Command::AcceptProposal)))
        .then_refused(ErrorCode::NotFound);
}

#[test]
fn already_exists_beats_forbidden() {
    given(opened(Reason::NotReceived, Proposal::FullRefund))
        .when(seller(open_command(
            Reason::NotReceived,
            ProposalTerms::FullRefund,
        )))
        .then_refused(ErrorCode::AlreadyExists);
}

#[test]
fn forbidden_by_role_beats_version_conflict() {
    given(opened(Reason::NotReceived, Proposal::FullRefund))
        .when(stale(mediator(Command::AcceptProposal)))
        .then_refused(ErrorCode::Forbidden);
}

#[test]
fn forbidden_by_id_beats_version_conflict_and_invalid_state() {
    given(resolved_by_agreement())
        .when(stale(as_actor(
            Role::Seller,
            "s-other",
            Command::AcceptProposal,
        )))
        .then_refused(ErrorCode::Forbidden);
}

#[test]
fn version_conflict_beats_invalid_state() {
    given(opened(Reason::NotReceived, Proposal::FullRefund))
        .when(stale(buyer(Command::AcceptProposal)))
        .then_refused(ErrorCode::VersionConflict);
}

#[test]
fn version_conflict_beats_deadline_passed() {
    let history = opened(Reason::NotReceived, Proposal::FullRefund);
    let due = due_at(&history);
    given(history)
        .at(due)
        .when(stale(seller(Command::AcceptProposal)))
        .then_refused(ErrorCode::VersionConflict);
}

#[test]
fn invalid_state_beats_deadline_passed() {
    let history = opened(Reason::NotReceived, Proposal::FullRefund);
    let due = due_at(&history);
    given(history)
        .at(due)
        .when(buyer(Command::AcceptProposal))
        .then_refused(ErrorCode::InvalidState);
}

#[test]
fn deadline_passed_beats_invalid_value_against_the_dispute() {
    let history = opened(Reason::NotReceived, Proposal::FullRefund);
    let due = due_at(&history);
    given(history)
        .at(due)
        .when(seller(Command::CounterPropose {
            proposal: ProposalTerms::PartialRefund(amount(ORDER_AMOUNT)),
        }))
        .then_refused(ErrorCode::DeadlinePassed);
}

#[test]
fn invalid_state_beats_invalid_value_against_the_dispute() {
    let rule = Command::Rule {
        outcome: RulingTerms::ReturnAndRefund(None),
        responsible_party: ResponsibleParty::Seller,
        note: None,
    };
    given(escalated(Reason::NotReceived))
        .when(mediator(rule))
        .then_refused(ErrorCode::InvalidState);
}

#[test]
fn forbidden_beats_invalid_value_against_the_dispute() {
    let rule = Command::Rule {
        outcome: RulingTerms::PartialRefund(amount(ORDER_AMOUNT)),
        responsible_party: ResponsibleParty::Seller,
        note: None,
    };
    given(under_review(Reason::NotReceived))
        .when(seller(rule))
        .then_refused(ErrorCode::Forbidden);
}

#[test]
fn forbidden_beats_version_conflict_for_an_open() {
    given_nothing()
        .when(stale(seller(open_command(
            Reason::NotReceived,
            ProposalTerms::FullRefund,
        ))))
        .then_refused(ErrorCode::Forbidden);
}

#[test]
fn version_conflict_beats_invalid_value_for_an_open() {
    given_nothing()
        .when(stale(buyer(open_command(
            Reason::NotReceived,
            ProposalTerms::PartialRefund(amount(ORDER_AMOUNT)),
        ))))
        .then_refused(ErrorCode::VersionConflict);
}
