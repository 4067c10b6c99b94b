# Recipes; run them through ./x (it installs the pinned tools first).
export PATH := justfile_directory() + "/.tools/bin:" + env_var("PATH")
export DISPUTES_NATS_SERVER := justfile_directory() + "/.tools/bin/nats-server"
# Property tests run 10,000 cases here and in CI; a bare `cargo test` runs a quick 1,000.
export PROPTEST_CASES := env_var_or_default("PROPTEST_CASES", "10000")
# Where cargo puts the binaries (it honours CARGO_TARGET_DIR; so do the recipes).
target := env_var_or_default("CARGO_TARGET_DIR", justfile_directory() + "/target")

default:
    @just --list

# Every check CI runs: formatting, lints, all tests (property tests at 10,000 cases), the console's
# script tests, the shipped alert rules and dashboard, the AsyncAPI document with its schemas, and
# every request, reply and event the end-to-end tests exchanged against those schemas.
test:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    rm -rf {{target}}/traffic
    DISPUTES_TRAFFIC_DIR={{target}}/traffic cargo test --workspace --all-targets
    # The end-to-end suite again, every service of it on the JetStream log (one node, replicas 1).
    DISPUTES_TRAFFIC_DIR={{target}}/traffic DISPUTES_TEST_BACKEND=jetstream cargo test --workspace --test e2e
    node --test crates/disputes/console/
    tools/check-observability.sh
    tools/check-asyncapi.sh
    node tools/asyncapi/check-traffic.mjs {{target}}/traffic

# Run the service on the dev config (data in .data/), starting the pinned nats-server on 127.0.0.1:4333
# if nothing listens there, and stopping it again on Ctrl-C. The console is at http://127.0.0.1:9464/console/.
serve:
    cargo build --release -p disputes
    tools/dev-serve.sh {{target}}/release/disputes

# Stop a dev nats-server left running (by `tools/dev-nats.sh start`, or a `./x serve` that was killed).
stop:
    tools/dev-nats.sh stop

# Start the dev setup afresh: stop the dev nats-server and delete .data/ (the dev store and NATS's).
clean: stop
    rm -rf .data

# Walk a dispute through a few commands against a running `./x serve` (no second build: the
# demo is a binary of the release build `./x serve` made).
demo:
    cargo build --release -p disputes --bin disputes-demo
    {{target}}/release/disputes-demo

# Every benchmark workload, sized to finish in about five minutes here (docs/performance.md).
bench:
    cargo build --release -p disputes -p disputes-bench
    {{target}}/release/disputes bench inproc --disputes 4000 --concurrency 16
    {{target}}/release/disputes bench nats --disputes 2000 --concurrency 16
    {{target}}/release/disputes bench queries --disputes 2000 --concurrency 16
    {{target}}/release/disputes bench lag --secs 60 --concurrency 16
    {{target}}/release/disputes bench cluster --disputes 1000 --concurrency 16
    {{target}}/release/disputes bench replay --disputes 111112
    {{target}}/release/disputes bench scheduler --disputes 200000
