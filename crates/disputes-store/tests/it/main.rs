//! The store's one integration-test binary (one module per area).

mod bench;
mod canonical;
mod child;
mod concurrency;
mod crash;
mod import;
mod migrate;
mod properties;
mod reads;
mod refusals;
mod reopen;
mod strace;
mod support;
mod tamper;
