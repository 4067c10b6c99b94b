//! What the end-to-end suites share: the real `disputes` binary that cargo built for them, a test
//! client, TLS material and actor tokens. The `nats-server` launcher is `disputes-testkit`'s (the
//! benchmarks use the same one).

#![allow(dead_code, unused_imports)] // each suite uses its own part of the kit

pub mod client;
pub mod service;
pub mod tls;
pub mod tokens;

pub use client::Client;
pub use disputes_testkit::{nats, workspace_root, NatsServer};
pub use service::Service;
