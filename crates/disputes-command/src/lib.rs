//! The command side: a command body in, the dispute's events appended durably, or why not.
//!
//! [`CommandHandler`] parses a body (once, strictly: `disputes-domain`), checks the actor's token
//! when tokens are required ([`tokens`]), rebuilds the dispute's state, lets the domain decide,
//! and appends the events through any [`disputes_store::EventStore`]. It is synchronous and
//! knows nothing of NATS, the clock or wire codes: time comes in as `now`, and what went wrong
//! comes out typed ([`Rejection`]); the service maps it to the wire.

mod handler;
pub mod tokens;

pub use handler::{
    fold, Accepted, CommandHandler, Expiry, ExpiryOutcome, Rejection, Reply, Trace,
    APPEND_ATTEMPTS_MAX,
};
