//! The dispute process as a pure decider: commands, events, rules.
//!
//! **No IO, no async, no clock.** Time comes in as a parameter (`now`), durations as a [`Policy`].
//! The core is [`decide`] (a request against a state gives events or a [`Refusal`]), [`evolve`]
//! (folds one event into a state; cannot fail) and [`actions`] (what each role may send now,
//! from the same rules as `decide`). [`parse_command`] turns a request body into a typed
//! [`Request`].

mod macros;

mod actions;
mod actor;
mod command;
mod consequences;
mod decide;
mod error;
mod event;
mod evolve;
mod expiry;
mod ids;
mod money;
mod policy;
mod rules;
mod state;
mod status;
mod terms;
pub mod time;
mod upcast;
mod vocab;
mod wire;

pub use actions::{actions, Actions};
pub use actor::{Actor, Party, Role, SCHEDULER_ID};
pub use command::{Command, CommandType, Open, Request};
pub use decide::decide;
pub use error::{ErrorCode, Refusal};
pub use event::{Event, EVENT_TYPES};
pub use evolve::evolve;
pub use ids::{is_valid_id, CommandId, DisputeId, OrderId, PartyId, ID_BYTES_MAX, ID_PATTERN};
pub use macros::WireEnum;
pub use money::{Amount, Currency, Money, AMOUNT_MAX};
pub use policy::{Policy, DAY};
pub use rules::{allows, permits, senders};
pub use state::{ActiveDeadline, Dispute, Resolution, State};
pub use status::{DeadlineKind, OnExpiry, ResolutionBasis, Stage, Status};
pub use terms::{Proposal, ProposalTerms, RulingTerms, Settlement, Solution};
pub use upcast::{DecodeError, UpcastError, Upcaster, Upcasters};
pub use vocab::{EscalationCause, Reason, ResponsibleParty, ReturnProblem};
pub use wire::{
    parse_command, parse_command_value, public_command_type, read_body, read_json, Limits,
    ParsedCommand, ATTACHMENTS_MAX, ATTACHMENT_CHARS_MAX, BODY_BYTES_MAX, TEXT_CHARS_MAX,
};

/// Folds a history from `State::Initial`: how a dispute's state is rebuilt.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> State {
    events.into_iter().fold(State::Initial, evolve)
}
