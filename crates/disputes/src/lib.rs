//! The disputes service: the NATS edge, wiring, the publisher, the scheduler and the audit tool.
//!
//! The rules live in `disputes-domain`, the log in `disputes-store`, the command side in
//! `disputes-command`, the read models and queries in `disputes-readside`; this crate is the
//! edges that connect them to NATS, HTTP, the clock and the operator.

/// The commit this binary was built from (`build.rs`), or "unknown".
pub const COMMIT: &str = env!("DISPUTES_COMMIT");
/// `disputes --version`: the version and the commit.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("DISPUTES_COMMIT"),
    ")"
);

pub mod audit;
mod clock;
pub mod config;
pub mod exit;
pub mod healthcheck;
mod http;
pub mod huge_pages;
pub mod import;
mod leader;
mod lease;
pub mod log;
pub mod memory;
mod metrics;
mod micro;
mod nats;
pub mod nats_context;
mod publisher;
mod scheduler;
pub mod service;
pub mod shutdown;
mod storage;
mod trace;
mod wire;

#[cfg(test)]
mod contract_tests;
