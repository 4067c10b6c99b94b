//! The disputes service: the NATS edge, wiring, the publisher, the scheduler and the audit tool.
//!
//! The rules live in `disputes-domain`, the log in `disputes-store`, the command side in
//! `disputes-command`, the read models and queries in `disputes-readside`; this crate is the
//! edges that connect them to NATS, HTTP, the clock and the operator.

pub mod audit;
mod clock;
pub mod config;
mod http;
mod lease;
mod metrics;
mod nats;
mod publisher;
mod scheduler;
pub mod service;
pub mod shutdown;
mod storage;
mod wire;

#[cfg(test)]
mod contract_tests;
