//! For tests and benchmarks only (never a dependency of the service): a real `nats-server` on its
//! own port and store dir ([`NatsServer`]), and realistic event logs made by the real command
//! handler ([`workload`]).

pub mod http;
pub mod nats;
pub mod reaper;
pub mod workload;

use std::path::PathBuf;

pub use nats::NatsServer;

/// The workspace root (this crate lives in `crates/disputes-testkit`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/disputes-testkit has a workspace root")
        .to_path_buf()
}
