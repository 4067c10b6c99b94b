//! Statuses, stages, deadline kinds and resolution bases, with the fixed tables that link them.

use crate::actor::Party;
use crate::macros::wire_enum;
use crate::vocab::Reason;

wire_enum! {
    /// Where a dispute is: what, if anything, it waits for.
    pub enum Status {
        AwaitingSellerResponse = "awaiting_seller_response",
        AwaitingBuyerDecision = "awaiting_buyer_decision",
        AwaitingShippingProof = "awaiting_shipping_proof",
        AwaitingBuyerEvidence = "awaiting_buyer_evidence",
        UnderReview = "under_review",
        AwaitingReturnAddress = "awaiting_return_address",
        AwaitingReturnShipment = "awaiting_return_shipment",
        AwaitingReturnReceipt = "awaiting_return_receipt",
        Resolved = "resolved",
    }
}

wire_enum! {
    /// The three stages of the source, plus the end.
    pub enum Stage {
        Agreement = "agreement",
        Escalated = "escalated",
        Execution = "execution",
        Closed = "closed",
    }
}

wire_enum! {
    /// The deadline of each waiting status but `under_review`.
    pub enum DeadlineKind {
        SellerResponse = "seller_response",
        BuyerDecision = "buyer_decision",
        ShippingProof = "shipping_proof",
        BuyerEvidence = "buyer_evidence",
        ReturnAddress = "return_address",
        ReturnShipment = "return_shipment",
        ReturnReceipt = "return_receipt",
    }
}

wire_enum! {
    /// Why a dispute was resolved; each expiry basis is named after its deadline.
    pub enum ResolutionBasis {
        Agreement = "agreement",
        Ruling = "ruling",
        Withdrawn = "withdrawn",
        ReturnReceived = "return_received",
        SellerResponseTimeout = "seller_response_timeout",
        /// Named for completeness: a buyer decision timeout escalates, it never resolves.
        BuyerDecisionTimeout = "buyer_decision_timeout",
        ShippingProofTimeout = "shipping_proof_timeout",
        BuyerEvidenceTimeout = "buyer_evidence_timeout",
        ReturnAddressTimeout = "return_address_timeout",
        ReturnShipmentTimeout = "return_shipment_timeout",
        ReturnReceiptTimeout = "return_receipt_timeout",
    }
}

/// What an applied expiry does (rules.md, the "on expiry" column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnExpiry {
    /// The buyer's opening proposal is executed, as an agreed one would be.
    ExecuteBuyerProposal,
    /// The dispute escalates, as if the buyer had rejected the counter-proposal.
    Escalate,
    /// The funds are released to the seller.
    ReleaseFunds,
    /// The buyer is refunded the return's amount.
    RefundReturn,
}

impl Status {
    /// The stage of each status; `under_review` is always `escalated`.
    pub fn stage(self) -> Stage {
        match self {
            Status::AwaitingSellerResponse | Status::AwaitingBuyerDecision => Stage::Agreement,
            Status::AwaitingShippingProof | Status::AwaitingBuyerEvidence | Status::UnderReview => {
                Stage::Escalated
            }
            Status::AwaitingReturnAddress
            | Status::AwaitingReturnShipment
            | Status::AwaitingReturnReceipt => Stage::Execution,
            Status::Resolved => Stage::Closed,
        }
    }

    /// The deadline this status waits under; `None` for `under_review` and `resolved`.
    pub fn deadline_kind(self) -> Option<DeadlineKind> {
        DeadlineKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.status() == self)
    }
}

impl DeadlineKind {
    /// The waiting status this deadline belongs to (one each).
    pub fn status(self) -> Status {
        match self {
            DeadlineKind::SellerResponse => Status::AwaitingSellerResponse,
            DeadlineKind::BuyerDecision => Status::AwaitingBuyerDecision,
            DeadlineKind::ShippingProof => Status::AwaitingShippingProof,
            DeadlineKind::BuyerEvidence => Status::AwaitingBuyerEvidence,
            DeadlineKind::ReturnAddress => Status::AwaitingReturnAddress,
            DeadlineKind::ReturnShipment => Status::AwaitingReturnShipment,
            DeadlineKind::ReturnReceipt => Status::AwaitingReturnReceipt,
        }
    }

    /// The party who must act before this deadline (the one a reminder warns).
    pub fn awaited_party(self) -> Party {
        match self {
            DeadlineKind::BuyerDecision
            | DeadlineKind::BuyerEvidence
            | DeadlineKind::ReturnShipment => Party::Buyer,
            DeadlineKind::SellerResponse
            | DeadlineKind::ShippingProof
            | DeadlineKind::ReturnAddress
            | DeadlineKind::ReturnReceipt => Party::Seller,
        }
    }

    /// What happens when this deadline expires.
    pub fn on_expiry(self) -> OnExpiry {
        match self {
            DeadlineKind::SellerResponse | DeadlineKind::ShippingProof => {
                OnExpiry::ExecuteBuyerProposal
            }
            DeadlineKind::BuyerDecision => OnExpiry::Escalate,
            DeadlineKind::BuyerEvidence | DeadlineKind::ReturnShipment => OnExpiry::ReleaseFunds,
            DeadlineKind::ReturnAddress | DeadlineKind::ReturnReceipt => OnExpiry::RefundReturn,
        }
    }

    /// The deadline an escalation waits under: shipping proof or buyer evidence, by reason.
    pub fn of_escalation(reason: Reason) -> DeadlineKind {
        match reason {
            Reason::NotReceived => DeadlineKind::ShippingProof,
            Reason::NotAsDescribed => DeadlineKind::BuyerEvidence,
        }
    }
}

impl ResolutionBasis {
    /// `<deadline>_timeout`.
    pub fn timeout(kind: DeadlineKind) -> ResolutionBasis {
        match kind {
            DeadlineKind::SellerResponse => ResolutionBasis::SellerResponseTimeout,
            DeadlineKind::BuyerDecision => ResolutionBasis::BuyerDecisionTimeout,
            DeadlineKind::ShippingProof => ResolutionBasis::ShippingProofTimeout,
            DeadlineKind::BuyerEvidence => ResolutionBasis::BuyerEvidenceTimeout,
            DeadlineKind::ReturnAddress => ResolutionBasis::ReturnAddressTimeout,
            DeadlineKind::ReturnShipment => ResolutionBasis::ReturnShipmentTimeout,
            DeadlineKind::ReturnReceipt => ResolutionBasis::ReturnReceiptTimeout,
        }
    }
}
