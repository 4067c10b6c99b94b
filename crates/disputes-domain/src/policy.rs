//! The configurable durations of rules.md (protocol.md's `[policy]` keys).

use chrono::TimeDelta;

use crate::status::DeadlineKind;

/// One natural (calendar) day: a deadline is `entered_at + N × 24 h`, in UTC.
pub const DAY: TimeDelta = TimeDelta::days(1);

/// How long each waiting status waits, and how early a reminder goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub seller_response: TimeDelta,
    /// [policy] in rules.md.
    pub buyer_decision: TimeDelta,
    pub shipping_proof: TimeDelta,
    pub buyer_evidence: TimeDelta,
    pub return_address: TimeDelta,
    pub return_shipment: TimeDelta,
    /// [policy] in rules.md.
    pub return_receipt: TimeDelta,
    /// A reminder goes out this long before a deadline is due.
    pub reminder_lead: TimeDelta,
}

impl Policy {
    /// How long a dispute waits under a deadline of `kind`.
    pub fn duration(&self, kind: DeadlineKind) -> TimeDelta {
        match kind {
            DeadlineKind::SellerResponse => self.seller_response,
            DeadlineKind::BuyerDecision => self.buyer_decision,
            DeadlineKind::ShippingProof => self.shipping_proof,
            DeadlineKind::BuyerEvidence => self.buyer_evidence,
            DeadlineKind::ReturnAddress => self.return_address,
            DeadlineKind::ReturnShipment => self.return_shipment,
            DeadlineKind::ReturnReceipt => self.return_receipt,
        }
    }
}

/// The defaults of rules.md and protocol.md. (Config, not a state: a default is meaningful.)
impl Default for Policy {
    fn default() -> Policy {
        Policy {
            seller_response: DAY * 5,
            buyer_decision: DAY * 5,
            shipping_proof: DAY * 3,
            buyer_evidence: DAY * 3,
            return_address: DAY * 5,
            return_shipment: DAY * 7,
            return_receipt: DAY * 30,
            reminder_lead: TimeDelta::hours(24),
        }
    }
}
