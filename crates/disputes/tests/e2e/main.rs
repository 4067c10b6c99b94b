//! End to end over NATS: a real `nats-server` and the real `disputes` binary.
//! One test binary (faster linking); one module per area.

#[path = "../kit/mod.rs"]
mod kit;

mod audit;
mod auth;
mod bad_input;
mod client;
mod cluster;
mod concurrency;
mod console_browser;
mod deadlines;
mod faults;
mod import;
mod lifecycle;
mod metrics;
mod operators;
mod queries;
mod support;
