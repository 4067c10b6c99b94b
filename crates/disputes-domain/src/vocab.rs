//! The small closed vocabularies of the dispute process.

use crate::macros::wire_enum;

wire_enum! {
    /// Why the buyer opened the dispute; it decides the escalation path.
    pub enum Reason {
        NotReceived = "not_received",
        NotAsDescribed = "not_as_described",
    }
}

wire_enum! {
    /// Who the mediator holds responsible in a ruling.
    pub enum ResponsibleParty {
        Buyer = "buyer",
        Seller = "seller",
        Logistics = "logistics",
        Platform = "platform",
    }
}

wire_enum! {
    /// What the seller reports wrong with a return.
    pub enum ReturnProblem {
        NotReceived = "not_received",
        Damaged = "damaged",
        DifferentItem = "different_item",
        InvalidTracking = "invalid_tracking",
    }
}

wire_enum! {
    /// Why a dispute escalated to the mediation center.
    pub enum EscalationCause {
        BuyerRejected = "buyer_rejected",
        BuyerDecisionTimeout = "buyer_decision_timeout",
    }
}
