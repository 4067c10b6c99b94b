//! The disputes service: the NATS edge, the read models, the scheduler, the audit and bench tools.
//!
//! The rules live in `disputes-domain`, the log in `disputes-store`; this crate is the edges.

pub mod audit;
pub mod auth;
pub mod bench;
pub mod bench_nats;
pub mod clock;
pub mod config;
pub mod handler;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod nats;
pub mod projections;
pub mod projector;
pub mod publisher;
pub mod queries;
pub mod scheduler;
pub mod service;
pub mod shutdown;
pub mod storage;
