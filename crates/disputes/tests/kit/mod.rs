//! What the end-to-end suites share: the real `disputes` binary that cargo built for them, a test
//! client, TLS material and actor tokens. The `nats-server` launcher is `disputes-testkit`'s (the
//! benchmarks use the same one).

#![allow(dead_code, unused_imports)] // each suite uses its own part of the kit

pub(crate) mod client;
pub(crate) mod service;
pub(crate) mod tls;
pub(crate) mod tokens;

pub(crate) use client::Client;
pub(crate) use disputes_testkit::{nats, workspace_root, NatsServer};
pub(crate) use service::Service;
