//! Deadline expiry: applied if, and only if, the deadline named is the active one and its
//! due time has come. Otherwise it changes nothing (a stale or early expiry is not an error).

use chrono::{DateTime, Utc};

use crate::consequences::{escalate, execute, refund_return, release_funds};
use crate::event::Event;
use crate::policy::Policy;
use crate::state::Dispute;
use crate::status::{DeadlineKind, OnExpiry, ResolutionBasis};
use crate::vocab::EscalationCause;

/// `DeadlineExpired` first, then its consequence; nothing when stale or early.
pub(crate) fn expire(
    dispute: &Dispute,
    kind: DeadlineKind,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Vec<Event> {
    let Some(active) = dispute.deadline() else {
        return Vec::new();
    };
    if active.kind() != kind || active.due_at() != due_at || !active.has_come(now) {
        return Vec::new();
    }
    let mut events = vec![Event::DeadlineExpired {
        deadline: kind,
        due_at,
    }];
    let basis = ResolutionBasis::timeout(kind);
    match kind.on_expiry() {
        OnExpiry::ExecuteBuyerProposal => {
            events.push(execute(
                dispute,
                dispute.buyer_proposal().settlement(),
                basis,
                now,
                policy,
            ));
        }
        OnExpiry::Escalate => {
            events.extend(escalate(
                dispute,
                EscalationCause::BuyerDecisionTimeout,
                None,
                now,
                policy,
            ));
        }
        OnExpiry::ReleaseFunds => events.push(release_funds(dispute, basis)),
        OnExpiry::RefundReturn => events.push(refund_return(dispute, basis)),
    }
    events
}
