//! Who sends a command: a role and an id.

use serde::{Deserialize, Serialize};

use crate::ids::PartyId;
use crate::macros::wire_enum;

wire_enum! {
    /// The four roles of rules.md "Parties".
    pub enum Role {
        Buyer = "buyer",
        Seller = "seller",
        Mediator = "mediator",
        /// The deadline scheduler; it only expires deadlines.
        System = "system",
    }
}

wire_enum! {
    /// One of the two parties of a dispute (who accepted a proposal, who must act on a deadline).
    pub enum Party {
        Buyer = "buyer",
        Seller = "seller",
    }
}

impl Party {
    pub fn role(self) -> Role {
        match self {
            Party::Buyer => Role::Buyer,
            Party::Seller => Role::Seller,
        }
    }
}

/// The id of the deadline scheduler's actor.
pub const SCHEDULER_ID: &str = "scheduler";

/// `{"role": "seller", "id": "s-42"}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    pub role: Role,
    pub id: PartyId,
}

impl Actor {
    pub fn new(role: Role, id: PartyId) -> Actor {
        Actor { role, id }
    }

    /// `{"role": "system", "id": "scheduler"}`: the actor of every expiry.
    pub fn scheduler() -> Actor {
        let id = PartyId::parse(SCHEDULER_ID).expect("the scheduler's id matches the id pattern");
        Actor {
            role: Role::System,
            id,
        }
    }
}
