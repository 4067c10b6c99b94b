//! The domain's tests, one binary: given these events, when this command, then these events or
//! this refusal. Named after the rule each one checks.

mod actions;
mod expiries;
mod payouts;
mod precedence;
mod properties;
mod refusals;
mod serde_forms;
mod support;
mod transitions;
mod wire;
