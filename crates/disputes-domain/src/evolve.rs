//! `evolve`: folds one event into the state. It cannot fail and holds no business rule: it sets
//! fields. A waiting status is entered by its `DeadlineSet`; `under_review` and `resolved` by the
//! events that lead there. An event that makes no sense for the state is a corrupt history: panic.

use crate::event::Event;
use crate::state::{ActiveDeadline, Dispute, Resolution, State};
use crate::status::{OnExpiry, Status};
use crate::terms::Solution;

/// The state after `event`. Folding a history from `State::Initial` rebuilds a dispute.
pub fn evolve(state: State, event: &Event) -> State {
    match state {
        State::Initial => State::Active(opened(event)),
        State::Active(mut dispute) => {
            apply(&mut dispute, event);
            dispute.version += 1;
            State::Active(dispute)
        }
    }
}

fn opened(event: &Event) -> Dispute {
    let Event::DisputeOpened {
        order_id,
        buyer_id,
        seller_id,
        reason,
        order_amount,
        proposal,
        ..
    } = event
    else {
        panic!(
            "corrupt history: {} before DisputeOpened",
            event.event_type()
        );
    };
    Dispute {
        order_id: order_id.clone(),
        buyer_id: buyer_id.clone(),
        seller_id: seller_id.clone(),
        reason: *reason,
        order_amount: *order_amount,
        buyer_proposal: *proposal,
        proposal: *proposal,
        status: Status::AwaitingSellerResponse,
        deadline: None,
        return_amount: None,
        return_problem: None,
        resolution: None,
        version: 1,
    }
}

fn apply(dispute: &mut Dispute, event: &Event) {
    debug_assert!(
        !dispute.is_resolved(),
        "corrupt history: {} after DisputeResolved",
        event.event_type()
    );
    match event {
        Event::DisputeOpened { .. } => panic!("corrupt history: a second DisputeOpened"),
        Event::MessagePosted { .. } => {}
        Event::DeadlineSet { deadline, due_at } => {
            dispute.status = deadline.status();
            dispute.deadline = Some(ActiveDeadline {
                kind: *deadline,
                due_at: *due_at,
            });
        }
        Event::DeadlineExpired { deadline, .. } => {
            dispute.deadline = None;
            if deadline.on_expiry() == OnExpiry::ExecuteBuyerProposal {
                dispute.return_amount = dispute.buyer_proposal.settlement().return_amount();
            }
        }
        Event::ProposalAccepted { proposal, .. } => {
            dispute.deadline = None;
            dispute.return_amount = proposal.settlement().return_amount();
        }
        Event::CounterProposed { proposal } => {
            dispute.deadline = None;
            dispute.proposal = *proposal;
        }
        Event::RulingIssued {
            outcome, amount, ..
        } => {
            if *outcome == Solution::ReturnAndRefund {
                dispute.return_amount = Some(amount.expect("a ruled return has an amount"));
            }
        }
        event => apply_step(dispute, event),
    }
}

/// Events that end the current wait, some of them entering `under_review` or `resolved`.
fn apply_step(dispute: &mut Dispute, event: &Event) {
    dispute.deadline = None;
    match event {
        Event::ShippingProofSubmitted { .. } | Event::EvidenceSubmitted { .. } => {
            dispute.status = Status::UnderReview;
        }
        Event::ReturnProblemReported { problem, .. } => {
            dispute.status = Status::UnderReview;
            dispute.return_problem = Some(*problem);
        }
        Event::DisputeResolved {
            solution,
            refund_amount,
            release_amount,
            basis,
            ..
        } => {
            debug_assert_eq!(
                refund_amount + release_amount,
                dispute.order_amount.amount().get()
            );
            dispute.status = Status::Resolved;
            dispute.resolution = Some(Resolution {
                solution: *solution,
                refund_amount: *refund_amount,
                release_amount: *release_amount,
                basis: *basis,
            });
        }
        _ => {}
    }
}
