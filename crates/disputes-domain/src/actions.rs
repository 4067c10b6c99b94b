//! The command types each role may send now: the dispute view's `actions`, derived from
//! `rules::allows` (`rules::permits` without its refusal messages), the same rules `decide` applies.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::actor::Role;
use crate::command::CommandType;
use crate::rules::allows;
use crate::state::{Dispute, State};

/// `{"buyer": [...], "seller": [...], "mediator": [...]}`, each in protocol.md's command order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actions {
    pub buyer: Vec<CommandType>,
    pub seller: Vec<CommandType>,
    pub mediator: Vec<CommandType>,
}

impl Actions {
    /// The list of `role` (the system role's is always empty: it only expires deadlines).
    pub fn of(&self, role: Role) -> &[CommandType] {
        match role {
            Role::Buyer => &self.buyer,
            Role::Seller => &self.seller,
            Role::Mediator => &self.mediator,
            Role::System => &[],
        }
    }
}

/// What each role may send on the dispute in `state` at `now`. `open` is never listed; nothing is
/// listed before the dispute exists or once it is resolved; once the active deadline's due time has
/// come, a party's list holds only `post_message` until the expiry is applied.
pub fn actions(state: &State, now: DateTime<Utc>) -> Actions {
    match state {
        State::Initial => Actions {
            buyer: Vec::new(),
            seller: Vec::new(),
            mediator: Vec::new(),
        },
        State::Active(dispute) => Actions {
            buyer: permitted(dispute, Role::Buyer, now),
            seller: permitted(dispute, Role::Seller, now),
            mediator: permitted(dispute, Role::Mediator, now),
        },
    }
}

fn permitted(dispute: &Dispute, role: Role, now: DateTime<Utc>) -> Vec<CommandType> {
    CommandType::ALL
        .iter()
        .copied()
        .filter(|command_type| *command_type != CommandType::Open)
        .filter(|command_type| allows(dispute, role, *command_type, now))
        .collect()
}
