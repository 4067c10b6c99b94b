//! The read side: read models folded from the committed event log, and the queries they answer.
//!
//! [`Projections`] keeps the read models in a sled db of their own (never the store's files);
//! [`projector`] folds events into them from an [`EventFeed`] (the sled log today, another
//! backend tomorrow); [`Queries`] answers `get`, `list`, `history`, `deadlines` and `stats`,
//! typed errors out ([`QueryError`]). No NATS here, no wire codes beyond the domain's, no clock:
//! `now` comes in.

mod feed;
pub mod projections;
pub mod projector;
mod queries;

pub use feed::EventFeed;
pub use projections::{
    view, DeadlineEntry, ListFilter, ProjectionError, Projections, Record, Stats,
};
pub use queries::{Queries, QueryError, HISTORY_LIMIT_MAX, MIN_SEQ_WAIT, QUERY_NAMES};
