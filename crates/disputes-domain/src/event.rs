//! Events: the facts a dispute's history is made of. Their serde form is a promise to auditors
//! (protocol.md, "Events"): `{"type": "CounterProposed", "data": {...}}`, optional fields as `null`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::actor::Party;
use crate::ids::{OrderId, PartyId};
use crate::money::{Amount, Currency, Money};
use crate::status::{DeadlineKind, ResolutionBasis};
use crate::terms::{Proposal, Solution};
use crate::vocab::{EscalationCause, Reason, ResponsibleParty, ReturnProblem};

/// One event of protocol.md's table, with exactly its data fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    DisputeOpened {
        order_id: OrderId,
        buyer_id: PartyId,
        seller_id: PartyId,
        reason: Reason,
        order_amount: Money,
        proposal: Proposal,
        description: Option<String>,
    },
    ProposalAccepted {
        by: Party,
        proposal: Proposal,
    },
    CounterProposed {
        proposal: Proposal,
    },
    DisputeEscalated {
        cause: EscalationCause,
        /// The buyer's reason for rejecting, if given; `null` on a timeout.
        reason: Option<String>,
    },
    ShippingProofSubmitted {
        carrier: String,
        tracking_number: String,
    },
    EvidenceSubmitted {
        description: String,
        attachments: Vec<String>,
    },
    RulingIssued {
        outcome: Solution,
        /// The effective amount of a `partial_refund` or `return_and_refund`; `null` otherwise.
        amount: Option<Amount>,
        responsible_party: ResponsibleParty,
        note: Option<String>,
    },
    ReturnAddressProvided {
        address: String,
    },
    ReturnTrackingProvided {
        carrier: String,
        tracking_number: String,
    },
    ReturnReceived {},
    ReturnProblemReported {
        problem: ReturnProblem,
        note: Option<String>,
    },
    DeadlineSet {
        deadline: DeadlineKind,
        #[serde(with = "crate::time::serde_rfc3339")]
        due_at: DateTime<Utc>,
    },
    DeadlineExpired {
        deadline: DeadlineKind,
        #[serde(with = "crate::time::serde_rfc3339")]
        due_at: DateTime<Utc>,
    },
    MessagePosted {
        text: String,
        attachments: Vec<String>,
    },
    DisputeWithdrawn {
        reason: Option<String>,
    },
    DisputeResolved {
        solution: Solution,
        refund_amount: u64,
        release_amount: u64,
        currency: Currency,
        basis: ResolutionBasis,
    },
}

/// Every event type, in protocol.md's order.
pub const EVENT_TYPES: [&str; 16] = [
    "DisputeOpened",
    "ProposalAccepted",
    "CounterProposed",
    "DisputeEscalated",
    "ShippingProofSubmitted",
    "EvidenceSubmitted",
    "RulingIssued",
    "ReturnAddressProvided",
    "ReturnTrackingProvided",
    "ReturnReceived",
    "ReturnProblemReported",
    "DeadlineSet",
    "DeadlineExpired",
    "MessagePosted",
    "DisputeWithdrawn",
    "DisputeResolved",
];

impl Event {
    /// The event of type `event_type` with `data`, as an envelope carries them (read in place,
    /// without copying `data`). An error means the pair is no event of ours.
    pub fn decode(event_type: &str, data: &serde_json::Value) -> Result<Event, serde_json::Error> {
        use serde::de::value::MapDeserializer;
        let tag = serde_json::Value::String(event_type.to_owned());
        let fields = [("type", &tag), ("data", data)];
        Event::deserialize(MapDeserializer::new(fields.into_iter()))
    }

    /// The `type` of the envelope (and the last token of its subject).
    pub fn event_type(&self) -> &'static str {
        EVENT_TYPES[self.index()]
    }

    fn index(&self) -> usize {
        match self {
            Event::DisputeOpened { .. } => 0,
            Event::ProposalAccepted { .. } => 1,
            Event::CounterProposed { .. } => 2,
            Event::DisputeEscalated { .. } => 3,
            Event::ShippingProofSubmitted { .. } => 4,
            Event::EvidenceSubmitted { .. } => 5,
            Event::RulingIssued { .. } => 6,
            Event::ReturnAddressProvided { .. } => 7,
            Event::ReturnTrackingProvided { .. } => 8,
            Event::ReturnReceived {} => 9,
            Event::ReturnProblemReported { .. } => 10,
            Event::DeadlineSet { .. } => 11,
            Event::DeadlineExpired { .. } => 12,
            Event::MessagePosted { .. } => 13,
            Event::DisputeWithdrawn { .. } => 14,
            Event::DisputeResolved { .. } => 15,
        }
    }
}
