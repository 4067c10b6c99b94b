//! The state a dispute's events fold into. No `Default`: `State::Initial` is the explicit start.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{OrderId, PartyId};
use crate::money::{Amount, Money};
use crate::status::{DeadlineKind, ResolutionBasis, Stage, Status};
use crate::terms::{Proposal, Solution};
use crate::vocab::{Reason, ReturnProblem};

/// A dispute's state: nothing yet, or an opened dispute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Initial,
    Active(Dispute),
}

impl State {
    /// The number of events folded: 0 before the dispute is opened.
    pub fn version(&self) -> u64 {
        match self {
            State::Initial => 0,
            State::Active(dispute) => dispute.version(),
        }
    }

    pub fn dispute(&self) -> Option<&Dispute> {
        match self {
            State::Initial => None,
            State::Active(dispute) => Some(dispute),
        }
    }

    /// Whether no command can change it any more.
    pub fn is_terminal(&self) -> bool {
        self.dispute()
            .is_some_and(|d| d.status() == Status::Resolved)
    }
}

/// The deadline a waiting status is under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ActiveDeadline {
    pub(crate) kind: DeadlineKind,
    #[serde(with = "crate::time::serde_rfc3339")]
    pub(crate) due_at: DateTime<Utc>,
}

impl ActiveDeadline {
    pub fn kind(&self) -> DeadlineKind {
        self.kind
    }

    pub fn due_at(&self) -> DateTime<Utc> {
        self.due_at
    }

    /// Whether its due time has come at `now` (at or after `due_at`).
    pub fn has_come(&self, now: DateTime<Utc>) -> bool {
        now >= self.due_at
    }
}

/// How a resolved dispute was paid out: `refund_amount + release_amount` = order amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resolution {
    pub(crate) solution: Solution,
    pub(crate) refund_amount: u64,
    pub(crate) release_amount: u64,
    pub(crate) basis: ResolutionBasis,
}

impl Resolution {
    pub fn solution(&self) -> Solution {
        self.solution
    }

    pub fn refund_amount(&self) -> u64 {
        self.refund_amount
    }

    pub fn release_amount(&self) -> u64 {
        self.release_amount
    }

    pub fn basis(&self) -> ResolutionBasis {
        self.basis
    }
}

/// An opened dispute. Fields are set only by `evolve`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispute {
    pub(crate) order_id: OrderId,
    pub(crate) buyer_id: PartyId,
    pub(crate) seller_id: PartyId,
    pub(crate) reason: Reason,
    pub(crate) order_amount: Money,
    /// The proposal the buyer opened the dispute with.
    pub(crate) buyer_proposal: Proposal,
    /// The proposal on the table now.
    pub(crate) proposal: Proposal,
    pub(crate) status: Status,
    pub(crate) deadline: Option<ActiveDeadline>,
    /// The amount of the return being executed, once a `return_and_refund` is agreed, ruled or executed.
    pub(crate) return_amount: Option<Amount>,
    /// Set once the seller reported a problem with the return: no second return may be ruled.
    pub(crate) return_problem: Option<ReturnProblem>,
    pub(crate) resolution: Option<Resolution>,
    pub(crate) version: u64,
}

impl Dispute {
    pub fn order_id(&self) -> &OrderId {
        &self.order_id
    }

    pub fn buyer_id(&self) -> &PartyId {
        &self.buyer_id
    }

    pub fn seller_id(&self) -> &PartyId {
        &self.seller_id
    }

    pub fn reason(&self) -> Reason {
        self.reason
    }

    pub fn order_amount(&self) -> Money {
        self.order_amount
    }

    /// The proposal the buyer opened the dispute with ("the buyer's proposal" of rules.md).
    pub fn buyer_proposal(&self) -> Proposal {
        self.buyer_proposal
    }

    /// The proposal on the table now: the buyer's, or the seller's counter-proposal.
    pub fn proposal(&self) -> Proposal {
        self.proposal
    }

    pub fn status(&self) -> Status {
        self.status
    }

    /// A function of the status: `under_review` is always `escalated`.
    pub fn stage(&self) -> Stage {
        self.status.stage()
    }

    pub fn deadline(&self) -> Option<ActiveDeadline> {
        self.deadline
    }

    /// The amount a return refunds, once a return is being executed.
    pub fn return_amount(&self) -> Option<Amount> {
        self.return_amount
    }

    pub fn return_problem(&self) -> Option<ReturnProblem> {
        self.return_problem
    }

    pub fn resolution(&self) -> Option<Resolution> {
        self.resolution
    }

    /// The number of events folded into this state.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn is_resolved(&self) -> bool {
        self.status == Status::Resolved
    }
}
