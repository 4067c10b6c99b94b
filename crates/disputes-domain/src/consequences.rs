//! The events that carry out a decision: deadlines, escalations, executions and payouts.
//! Shared by party commands and expiries, so an executed proposal is executed one way.

use chrono::{DateTime, Utc};

use crate::event::Event;
use crate::policy::Policy;
use crate::state::Dispute;
use crate::status::{DeadlineKind, ResolutionBasis};
use crate::terms::{Settlement, Solution};
use crate::vocab::EscalationCause;

/// Entering a waiting status: its deadline, `policy`'s duration from `now`.
pub(crate) fn deadline_set(kind: DeadlineKind, now: DateTime<Utc>, policy: &Policy) -> Event {
    let due_at = now
        .checked_add_signed(policy.duration(kind))
        .expect("a deadline falls within chrono's range of dates");
    Event::DeadlineSet {
        deadline: kind,
        due_at,
    }
}

/// Carries out an agreed, ruled or timed-out settlement: a refund or a release resolves at once,
/// a return enters `awaiting_return_address`.
pub(crate) fn execute(
    dispute: &Dispute,
    settlement: Settlement,
    basis: ResolutionBasis,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Event {
    let order_amount = dispute.order_amount().amount().get();
    match settlement {
        Settlement::FullRefund => resolved(dispute, Solution::FullRefund, order_amount, basis),
        Settlement::PartialRefund(amount) => {
            resolved(dispute, Solution::PartialRefund, amount.get(), basis)
        }
        Settlement::ReleaseFunds => release_funds(dispute, basis),
        Settlement::ReturnAndRefund(_) => deadline_set(DeadlineKind::ReturnAddress, now, policy),
    }
}

/// Escalation to the mediation center: shipping proof or buyer evidence, by the dispute's reason.
pub(crate) fn escalate(
    dispute: &Dispute,
    cause: EscalationCause,
    reason: Option<String>,
    now: DateTime<Utc>,
    policy: &Policy,
) -> [Event; 2] {
    let kind = DeadlineKind::of_escalation(dispute.reason());
    [
        Event::DisputeEscalated { cause, reason },
        deadline_set(kind, now, policy),
    ]
}

/// All to the seller.
pub(crate) fn release_funds(dispute: &Dispute, basis: ResolutionBasis) -> Event {
    resolved(dispute, Solution::ReleaseFunds, 0, basis)
}

/// The buyer gets the return's amount back; the seller the rest.
pub(crate) fn refund_return(dispute: &Dispute, basis: ResolutionBasis) -> Event {
    let amount = dispute
        .return_amount()
        .expect("a return being executed has an amount");
    resolved(dispute, Solution::ReturnAndRefund, amount.get(), basis)
}

/// The one `DisputeResolved`: `refund_amount` to the buyer, the rest of the order amount to the seller.
fn resolved(
    dispute: &Dispute,
    solution: Solution,
    refund_amount: u64,
    basis: ResolutionBasis,
) -> Event {
    let order_amount = dispute.order_amount();
    let release_amount = order_amount
        .amount()
        .get()
        .checked_sub(refund_amount)
        .expect("a refund is never over the order amount");
    Event::DisputeResolved {
        solution,
        refund_amount,
        release_amount,
        currency: order_amount.currency(),
        basis,
    }
}
