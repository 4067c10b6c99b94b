//! The deployment files under `deploy/`, tested against real `nats-server` processes.
//!
//! The point is that what ships is what is tested: every server here runs the shipped
//! `deploy/nats` files, with only ports and directories changed (`shipped`), and every user logs
//! in with its shipped dev password. A refusal is observed as the server's own
//! `Permissions Violation` error for that exact subject (`probe`).

#[path = "../kit/mod.rs"]
mod kit;

mod cluster;
mod cluster_mode;
mod permissions;
mod probe;
mod replies;
mod shipped;
mod tls;
mod validity;
