//! Solutions, proposals and rulings: what a dispute may end in, and how much.

use serde::{Deserialize, Serialize};

use crate::error::Refusal;
use crate::macros::wire_enum;
use crate::money::Amount;

wire_enum! {
    /// How a dispute ends: the Money table of rules.md.
    pub enum Solution {
        FullRefund = "full_refund",
        PartialRefund = "partial_refund",
        ReturnAndRefund = "return_and_refund",
        /// "Loan" in the source: the payment is released to the seller.
        ReleaseFunds = "release_funds",
    }
}

/// A party's proposal as a dispute holds it, with its effective amount:
/// `{"solution": "full_refund"}`, `{"solution": "partial_refund", "amount": 5000}`,
/// `{"solution": "return_and_refund", "amount": 12999}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "solution", rename_all = "snake_case")]
pub enum Proposal {
    FullRefund,
    PartialRefund { amount: Amount },
    ReturnAndRefund { amount: Amount },
}

/// A proposal as a command states it: a `return_and_refund` may leave its amount out
/// (the order amount). Judged against the order amount by [`ProposalTerms::against`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProposalTerms {
    FullRefund,
    PartialRefund(Amount),
    ReturnAndRefund(Option<Amount>),
}

/// A mediator's ruling outcome as the `rule` command states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RulingTerms {
    FullRefund,
    PartialRefund(Amount),
    ReturnAndRefund(Option<Amount>),
    ReleaseFunds,
}

/// What is being carried out, with its effective amount: an agreed, ruled or timed-out solution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Settlement {
    FullRefund,
    PartialRefund(Amount),
    ReturnAndRefund(Amount),
    ReleaseFunds,
}

impl Proposal {
    pub fn solution(self) -> Solution {
        self.settlement().solution()
    }

    /// The refund amount of a partial refund or a return; `None` for a full refund.
    pub fn amount(self) -> Option<Amount> {
        self.settlement().amount()
    }

    pub fn settlement(self) -> Settlement {
        match self {
            Proposal::FullRefund => Settlement::FullRefund,
            Proposal::PartialRefund { amount } => Settlement::PartialRefund(amount),
            Proposal::ReturnAndRefund { amount } => Settlement::ReturnAndRefund(amount),
        }
    }
}

impl ProposalTerms {
    pub fn solution(self) -> Solution {
        match self {
            ProposalTerms::FullRefund => Solution::FullRefund,
            ProposalTerms::PartialRefund(_) => Solution::PartialRefund,
            ProposalTerms::ReturnAndRefund(_) => Solution::ReturnAndRefund,
        }
    }

    /// The effective proposal for an order of `order_amount`; `invalid_value` when a partial refund
    /// is not below the order amount or a return's amount is over it.
    pub fn against(self, order_amount: Amount) -> Result<Proposal, Refusal> {
        match self {
            ProposalTerms::FullRefund => Ok(Proposal::FullRefund),
            ProposalTerms::PartialRefund(amount) => {
                partial_below(amount, order_amount).map(|amount| Proposal::PartialRefund { amount })
            }
            ProposalTerms::ReturnAndRefund(amount) => return_within(amount, order_amount)
                .map(|amount| Proposal::ReturnAndRefund { amount }),
        }
    }
}

impl RulingTerms {
    pub fn solution(self) -> Solution {
        match self {
            RulingTerms::FullRefund => Solution::FullRefund,
            RulingTerms::PartialRefund(_) => Solution::PartialRefund,
            RulingTerms::ReturnAndRefund(_) => Solution::ReturnAndRefund,
            RulingTerms::ReleaseFunds => Solution::ReleaseFunds,
        }
    }

    /// The effective settlement for an order of `order_amount` (amounts judged as for proposals).
    pub fn against(self, order_amount: Amount) -> Result<Settlement, Refusal> {
        match self {
            RulingTerms::FullRefund => Ok(Settlement::FullRefund),
            RulingTerms::PartialRefund(amount) => {
                partial_below(amount, order_amount).map(Settlement::PartialRefund)
            }
            RulingTerms::ReturnAndRefund(amount) => {
                return_within(amount, order_amount).map(Settlement::ReturnAndRefund)
            }
            RulingTerms::ReleaseFunds => Ok(Settlement::ReleaseFunds),
        }
    }
}

impl Settlement {
    pub fn solution(self) -> Solution {
        match self {
            Settlement::FullRefund => Solution::FullRefund,
            Settlement::PartialRefund(_) => Solution::PartialRefund,
            Settlement::ReturnAndRefund(_) => Solution::ReturnAndRefund,
            Settlement::ReleaseFunds => Solution::ReleaseFunds,
        }
    }

    /// The amount of a partial refund or a return; `None` otherwise.
    pub fn amount(self) -> Option<Amount> {
        match self {
            Settlement::PartialRefund(amount) | Settlement::ReturnAndRefund(amount) => Some(amount),
            Settlement::FullRefund | Settlement::ReleaseFunds => None,
        }
    }

    /// The amount of a return; `None` for any other settlement.
    pub fn return_amount(self) -> Option<Amount> {
        match self {
            Settlement::ReturnAndRefund(amount) => Some(amount),
            _ => None,
        }
    }
}

/// A partial refund `a` must satisfy `0 < a < order amount`.
fn partial_below(amount: Amount, order_amount: Amount) -> Result<Amount, Refusal> {
    if amount < order_amount {
        return Ok(amount);
    }
    Err(Refusal::invalid_value(format!(
        "a partial_refund amount ({amount}) must be below the order amount ({order_amount})"
    )))
}

/// A return's amount `a` must satisfy `0 < a ≤ order amount`; absent, it is the order amount.
fn return_within(amount: Option<Amount>, order_amount: Amount) -> Result<Amount, Refusal> {
    let amount = amount.unwrap_or(order_amount);
    if amount <= order_amount {
        return Ok(amount);
    }
    Err(Refusal::invalid_value(format!(
        "a return_and_refund amount ({amount}) must not be over the order amount ({order_amount})"
    )))
}
