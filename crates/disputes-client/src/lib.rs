//! A typed client of the disputes service (`docs/protocol.md`), for the Rust services that send
//! its commands, read its queries and act on its events.
//!
//! - **Commands** are the domain's own types ([`disputes_domain::Command`]), wrapped in an
//!   [`Outgoing`] that carries a `command_id` generated once per logical command: every retry
//!   sends the same id, so a command whose reply was lost is answered from its first reply
//!   (`replayed: true`) and never applied twice. [`Client::send`] retries, a bounded number of
//!   times, on `unavailable`, on a timeout and when no service answers; a refusal comes back as
//!   [`Error::Refused`] with its [`ErrorCode`].
//! - **Queries** are typed ([`DisputeView`], [`Page`], [`Stats`]…); [`Client::after`] reads your
//!   own writes (`min_seq`: pass the `seq` of an [`Accepted`] reply).
//! - **Events**: [`Client::subscribe`] follows `DISPUTE_EVENTS` with a durable JetStream consumer
//!   and hands events over in `seq` order, each one's hash recomputed and its link to the event
//!   before it checked, duplicates dropped. `docs/consuming-events.md` is the guide.
//!
//! ```no_run
//! use disputes_client::{Client, Outgoing};
//! use disputes_domain::{Actor, Command, DisputeId, PartyId, Role};
//!
//! # async fn run() -> Result<(), disputes_client::Error> {
//! let client = Client::connect("nats://127.0.0.1:4222").await?;
//! let dispute = DisputeId::parse("d-1001").expect("an id");
//! let seller = Actor::new(Role::Seller, PartyId::parse("s-42").expect("an id"));
//! let accept = Outgoing::new(&dispute, seller, Command::AcceptProposal);
//! match client.send(&accept).await {
//!     Ok(accepted) => {
//!         // Read your own write: the view includes this command's events.
//!         let view = client.after(accepted.seq).get(&dispute).await?;
//!         println!("{:?}", view.map(|v| v.status));
//!     }
//!     Err(e) if e.code() == Some(disputes_domain::ErrorCode::DeadlinePassed) => {
//!         println!("too late: the deadline's expiry wins");
//!     }
//!     Err(e) => return Err(e),
//! }
//! # Ok(())
//! # }
//! ```

mod client;
mod commands;
mod error;
mod events;
mod queries;

pub use client::{Client, Options};
pub use commands::{Accepted, Outgoing, CORRELATION_ID_HEADER, TRACEPARENT_HEADER};
pub use disputes_domain::ErrorCode;
pub use disputes_envelope::Envelope;
pub use error::Error;
pub use events::{Delivered, EventStream, Position, Subscription};
pub use queries::{
    DeadlineEntry, DeadlineView, DisputeView, ListFilter, Page, Reads, ResolutionView, Stats,
};
