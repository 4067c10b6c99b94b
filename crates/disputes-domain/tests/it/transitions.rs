//! One test per transition of rules.md, "Transitions".

use disputes_domain::{
    Command, DeadlineKind, EscalationCause, Event, Party, Proposal, ProposalTerms, Reason,
    ResolutionBasis, ResponsibleParty, ReturnProblem, RulingTerms, Solution, Stage, Status,
};

use crate::support::*;

// 1. open

#[test]
fn buyer_opening_a_dispute_awaits_the_sellers_response_for_five_days() {
    let dispute = given_nothing()
        .at(t0())
        .when(buyer(open_command(
            Reason::NotReceived,
            ProposalTerms::FullRefund,
        )))
        .then(opened(Reason::NotReceived, Proposal::FullRefund));
    assert_eq!(dispute.status(), Status::AwaitingSellerResponse);
    assert_eq!(dispute.stage(), Stage::Agreement);
    assert_eq!(dispute.deadline().unwrap().due_at(), t0() + days(5));
    assert_eq!(dispute.buyer_id().as_str(), BUYER);
    assert_eq!(dispute.version(), 2);
}

#[test]
fn opening_with_a_return_without_amount_proposes_a_return_of_the_order_amount() {
    let dispute = given_nothing()
        .at(t0())
        .when(buyer(open_command(
            Reason::NotAsDescribed,
            ProposalTerms::ReturnAndRefund(None),
        )))
        .then(opened(Reason::NotAsDescribed, ret(ORDER_AMOUNT)));
    assert_eq!(dispute.buyer_proposal(), ret(ORDER_AMOUNT));
    assert_eq!(dispute.proposal(), ret(ORDER_AMOUNT));
}

// 2. accept_proposal

#[test]
fn seller_accepting_a_full_refund_resolves_with_basis_agreement() {
    let dispute = given(opened(Reason::NotReceived, Proposal::FullRefund))
        .when(seller(Command::AcceptProposal))
        .then(vec![
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
    assert_eq!(dispute.status(), Status::Resolved);
    assert_eq!(dispute.stage(), Stage::Closed);
    assert_eq!(dispute.deadline(), None);
}

#[test]
fn seller_accepting_a_partial_refund_resolves_with_basis_agreement() {
    given(opened(Reason::NotAsDescribed, partial(2500)))
        .when(seller(Command::AcceptProposal))
        .then(vec![
            Event::ProposalAccepted {
                by: Party::Seller,
                proposal: partial(2500),
            },
            resolved(Solution::PartialRefund, 2500, ResolutionBasis::Agreement),
        ]);
}

#[test]
fn seller_accepting_a_return_and_refund_awaits_the_return_address() {
    let dispute = given(opened(Reason::NotAsDescribed, ret(9000)))
        .when(seller(Command::AcceptProposal))
        .then(vec![
            Event::ProposalAccepted {
                by: Party::Seller,
                proposal: ret(9000),
            },
            set(DeadlineKind::ReturnAddress, hours(10)),
        ]);
    assert_eq!(dispute.status(), Status::AwaitingReturnAddress);
    assert_eq!(dispute.stage(), Stage::Execution);
    assert_eq!(dispute.return_amount(), Some(amount(9000)));
}

#[test]
fn buyer_accepting_the_counter_proposal_resolves_on_its_terms() {
    given(countered(Reason::NotReceived, partial(1000)))
        .when(buyer(Command::AcceptProposal))
        .then(vec![
            Event::ProposalAccepted {
                by: Party::Buyer,
                proposal: partial(1000),
            },
            resolved(Solution::PartialRefund, 1000, ResolutionBasis::Agreement),
        ]);
}

#[test]
fn buyer_accepting_a_counter_return_awaits_the_return_address() {
    let dispute = given(countered(Reason::NotAsDescribed, ret(4000)))
        .when(buyer(Command::AcceptProposal))
        .then(vec![
            Event::ProposalAccepted {
                by: Party::Buyer,
                proposal: ret(4000),
            },
            set(DeadlineKind::ReturnAddress, hours(10)),
        ]);
    assert_eq!(dispute.return_amount(), Some(amount(4000)));
}

// 3. counter_propose

#[test]
fn seller_counter_proposing_awaits_the_buyers_decision_for_five_days() {
    let dispute = given(opened(Reason::NotReceived, Proposal::FullRefund))
        .when(seller(Command::CounterPropose {
            proposal: ProposalTerms::PartialRefund(amount(1000)),
        }))
        .then(vec![
            Event::CounterProposed {
                proposal: partial(1000),
            },
            set(DeadlineKind::BuyerDecision, hours(10)),
        ]);
    assert_eq!(dispute.status(), Status::AwaitingBuyerDecision);
    assert_eq!(
        dispute.proposal(),
        partial(1000),
        "the counter-proposal is on the table"
    );
    assert_eq!(
        dispute.buyer_proposal(),
        Proposal::FullRefund,
        "the buyer's proposal is kept"
    );
}

#[test]
fn counter_proposal_of_a_return_without_amount_carries_the_order_amount() {
    given(opened(Reason::NotAsDescribed, Proposal::FullRefund))
        .when(seller(Command::CounterPropose {
            proposal: ProposalTerms::ReturnAndRefund(None),
        }))
        .then(vec![
            Event::CounterProposed {
                proposal: ret(ORDER_AMOUNT),
            },
            set(DeadlineKind::BuyerDecision, hours(10)),
        ]);
}

// 4. reject_proposal

#[test]
fn buyer_rejecting_a_not_received_counter_proposal_awaits_shipping_proof_for_three_days() {
    let dispute = given(countered(Reason::NotReceived, partial(1000)))
        .when(buyer(Command::RejectProposal {
            reason: Some("too little".into()),
        }))
        .then(vec![
            Event::DisputeEscalated {
                cause: EscalationCause::BuyerRejected,
                reason: Some("too little".into()),
            },
            set(DeadlineKind::ShippingProof, hours(10)),
        ]);
    assert_eq!(dispute.status(), Status::AwaitingShippingProof);
    assert_eq!(dispute.stage(), Stage::Escalated);
    assert_eq!(dispute.deadline().unwrap().due_at(), hours(10) + days(3));
}

#[test]
fn buyer_rejecting_a_not_as_described_counter_proposal_awaits_buyer_evidence_for_three_days() {
    let dispute = given(countered(Reason::NotAsDescribed, partial(1000)))
        .when(buyer(Command::RejectProposal { reason: None }))
        .then(vec![
            Event::DisputeEscalated {
                cause: EscalationCause::BuyerRejected,
                reason: None,
            },
            set(DeadlineKind::BuyerEvidence, hours(10)),
        ]);
    assert_eq!(dispute.status(), Status::AwaitingBuyerEvidence);
}

// 5, 6. shipping proof and evidence

#[test]
fn seller_submitting_shipping_proof_puts_the_dispute_under_review_without_deadline() {
    let dispute = given(escalated(Reason::NotReceived))
        .when(seller(Command::SubmitShippingProof {
            carrier: "DHL".into(),
            tracking_number: "JD1".into(),
        }))
        .then(vec![Event::ShippingProofSubmitted {
            carrier: "DHL".into(),
            tracking_number: "JD1".into(),
        }]);
    assert_eq!(dispute.status(), Status::UnderReview);
    assert_eq!(dispute.stage(), Stage::Escalated);
    assert_eq!(dispute.deadline(), None);
}

#[test]
fn buyer_submitting_evidence_puts_the_dispute_under_review_without_deadline() {
    let evidence = Command::SubmitEvidence {
        description: "torn".into(),
        attachments: vec!["a.jpg".into()],
    };
    let dispute = given(escalated(Reason::NotAsDescribed))
        .when(buyer(evidence))
        .then(vec![Event::EvidenceSubmitted {
            description: "torn".into(),
            attachments: vec!["a.jpg".into()],
        }]);
    assert_eq!(dispute.status(), Status::UnderReview);
    assert_eq!(dispute.deadline(), None);
}

// 7. rule

fn ruling(outcome: RulingTerms) -> Command {
    Command::Rule {
        outcome,
        responsible_party: ResponsibleParty::Seller,
        note: None,
    }
}

fn issued(outcome: Solution, amount_minor: Option<u64>) -> Event {
    Event::RulingIssued {
        outcome,
        amount: amount_minor.map(amount),
        responsible_party: ResponsibleParty::Seller,
        note: None,
    }
}

#[test]
fn mediator_ruling_a_full_refund_resolves_with_basis_ruling() {
    given(under_review(Reason::NotReceived))
        .when(mediator(ruling(RulingTerms::FullRefund)))
        .then(vec![
            issued(Solution::FullRefund, None),
            resolved(Solution::FullRefund, ORDER_AMOUNT, ResolutionBasis::Ruling),
        ]);
}

#[test]
fn mediator_ruling_a_partial_refund_resolves_with_basis_ruling() {
    given(under_review(Reason::NotReceived))
        .when(mediator(ruling(RulingTerms::PartialRefund(amount(3000)))))
        .then(vec![
            issued(Solution::PartialRefund, Some(3000)),
            resolved(Solution::PartialRefund, 3000, ResolutionBasis::Ruling),
        ]);
}

#[test]
fn mediator_ruling_release_funds_resolves_with_nothing_refunded() {
    given(under_review(Reason::NotAsDescribed))
        .when(mediator(ruling(RulingTerms::ReleaseFunds)))
        .then(vec![
            issued(Solution::ReleaseFunds, None),
            resolved(Solution::ReleaseFunds, 0, ResolutionBasis::Ruling),
        ]);
}

#[test]
fn mediator_ruling_a_return_for_not_as_described_awaits_the_return_address() {
    let dispute = given(under_review(Reason::NotAsDescribed))
        .when(mediator(ruling(RulingTerms::ReturnAndRefund(Some(
            amount(6000),
        )))))
        .then(vec![
            issued(Solution::ReturnAndRefund, Some(6000)),
            set(DeadlineKind::ReturnAddress, hours(10)),
        ]);
    assert_eq!(dispute.status(), Status::AwaitingReturnAddress);
    assert_eq!(dispute.return_amount(), Some(amount(6000)));
}

#[test]
fn ruled_return_without_amount_returns_the_order_amount() {
    let dispute = given(under_review(Reason::NotAsDescribed))
        .when(mediator(ruling(RulingTerms::ReturnAndRefund(None))))
        .then(vec![
            issued(Solution::ReturnAndRefund, Some(ORDER_AMOUNT)),
            set(DeadlineKind::ReturnAddress, hours(10)),
        ]);
    assert_eq!(dispute.return_amount(), Some(amount(ORDER_AMOUNT)));
}

#[test]
fn mediator_ruling_after_a_return_problem_resolves_by_ruling() {
    given(after_return_problem(9000))
        .when(mediator(ruling(RulingTerms::PartialRefund(amount(3000)))))
        .then(vec![
            issued(Solution::PartialRefund, Some(3000)),
            resolved(Solution::PartialRefund, 3000, ResolutionBasis::Ruling),
        ]);
}

// 8, 9, 10. the return

#[test]
fn seller_providing_the_return_address_awaits_the_return_shipment_for_seven_days() {
    let dispute = given(awaiting_return_address(9000))
        .when(seller(Command::ProvideReturnAddress {
            address: "1 Return St".into(),
        }))
        .then(vec![
            Event::ReturnAddressProvided {
                address: "1 Return St".into(),
            },
            set(DeadlineKind::ReturnShipment, hours(10)),
        ]);
    assert_eq!(dispute.status(), Status::AwaitingReturnShipment);
    assert_eq!(dispute.deadline().unwrap().due_at(), hours(10) + days(7));
}

#[test]
fn buyer_providing_return_tracking_awaits_the_return_receipt_for_thirty_days() {
    let dispute = given(awaiting_return_shipment(9000))
        .when(buyer(Command::ProvideReturnTracking {
            carrier: "UPS".into(),
            tracking_number: "1Z".into(),
        }))
        .then(vec![
            Event::ReturnTrackingProvided {
                carrier: "UPS".into(),
                tracking_number: "1Z".into(),
            },
            set(DeadlineKind::ReturnReceipt, hours(10)),
        ]);
    assert_eq!(dispute.status(), Status::AwaitingReturnReceipt);
    assert_eq!(dispute.deadline().unwrap().due_at(), hours(10) + days(30));
}

#[test]
fn seller_confirming_the_return_refunds_the_returns_amount_with_basis_return_received() {
    given(awaiting_return_receipt(9000))
        .when(seller(Command::ConfirmReturnReceived))
        .then(vec![
            Event::ReturnReceived {},
            resolved(
                Solution::ReturnAndRefund,
                9000,
                ResolutionBasis::ReturnReceived,
            ),
        ]);
}

#[test]
fn seller_reporting_a_return_problem_puts_the_dispute_under_review_in_stage_escalated() {
    let report = Command::ReportReturnProblem {
        problem: ReturnProblem::InvalidTracking,
        note: Some("fake".into()),
    };
    let dispute = given(awaiting_return_receipt(9000))
        .when(seller(report))
        .then(vec![Event::ReturnProblemReported {
            problem: ReturnProblem::InvalidTracking,
            note: Some("fake".into()),
        }]);
    assert_eq!(dispute.status(), Status::UnderReview);
    assert_eq!(dispute.stage(), Stage::Escalated);
    assert_eq!(dispute.deadline(), None);
    assert_eq!(
        dispute.return_problem(),
        Some(ReturnProblem::InvalidTracking)
    );
}

// 11. withdraw

#[test]
fn buyer_withdrawing_releases_the_funds_with_basis_withdrawn() {
    given(opened(Reason::NotReceived, Proposal::FullRefund))
        .when(buyer(Command::Withdraw {
            reason: Some("arrived".into()),
        }))
        .then(vec![
            Event::DisputeWithdrawn {
                reason: Some("arrived".into()),
            },
            resolved(Solution::ReleaseFunds, 0, ResolutionBasis::Withdrawn),
        ]);
}

#[test]
fn buyer_may_withdraw_in_every_status_but_resolved() {
    let histories = [
        opened(Reason::NotReceived, Proposal::FullRefund),
        countered(Reason::NotReceived, partial(10)),
        escalated(Reason::NotReceived),
        escalated(Reason::NotAsDescribed),
        under_review(Reason::NotAsDescribed),
        awaiting_return_address(100),
        awaiting_return_shipment(100),
        awaiting_return_receipt(100),
        after_return_problem(100),
    ];
    for history in histories {
        let status = status_of(&history);
        let dispute = given(history)
            .when(buyer(Command::Withdraw { reason: None }))
            .then(vec![
                Event::DisputeWithdrawn { reason: None },
                resolved(Solution::ReleaseFunds, 0, ResolutionBasis::Withdrawn),
            ]);
        assert_eq!(
            dispute.status(),
            Status::Resolved,
            "withdrawn from {status}"
        );
    }
}

// 12. post_message

#[test]
fn post_message_appends_to_the_thread_without_changing_the_status() {
    for request in [buyer, seller, mediator] {
        let message = Command::PostMessage {
            text: "hello".into(),
            attachments: vec!["x.png".into()],
        };
        let dispute = given(countered(Reason::NotReceived, partial(10)))
            .when(request(message))
            .then(vec![Event::MessagePosted {
                text: "hello".into(),
                attachments: vec!["x.png".into()],
            }]);
        assert_eq!(dispute.status(), Status::AwaitingBuyerDecision);
        assert_eq!(
            dispute.deadline().unwrap().due_at(),
            hours(1) + days(5),
            "the deadline is unchanged"
        );
    }
}

#[test]
fn post_message_is_never_blocked_by_a_deadline() {
    let history = opened(Reason::NotReceived, Proposal::FullRefund);
    let due = due_at(&history);
    given(history)
        .at(due + days(1))
        .when(seller(Command::PostMessage {
            text: "late".into(),
            attachments: vec![],
        }))
        .then(vec![Event::MessagePosted {
            text: "late".into(),
            attachments: vec![],
        }]);
}

#[test]
fn each_status_has_its_stage() {
    let expected = [
        (Status::AwaitingSellerResponse, Stage::Agreement),
        (Status::AwaitingBuyerDecision, Stage::Agreement),
        (Status::AwaitingShippingProof, Stage::Escalated),
        (Status::AwaitingBuyerEvidence, Stage::Escalated),
        (Status::UnderReview, Stage::Escalated),
        (Status::AwaitingReturnAddress, Stage::Execution),
        (Status::AwaitingReturnShipment, Stage::Execution),
        (Status::AwaitingReturnReceipt, Stage::Execution),
        (Status::Resolved, Stage::Closed),
    ];
    assert_eq!(expected.len(), Status::ALL.len());
    for (status, stage) in expected {
        assert_eq!(status.stage(), stage, "{status}");
    }
}
