//! Support for the end-to-end tests: real `nats-server` processes and the real `disputes` binary.

pub mod client;
pub mod nats;
pub mod reaper;
pub mod service;
pub mod tls;
pub mod tokens;

use std::path::PathBuf;

pub use client::Client;
pub use nats::NatsServer;
pub use service::Service;

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}
