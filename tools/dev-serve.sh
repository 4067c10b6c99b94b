#!/usr/bin/env bash
# `./x serve`: the service on config/dev.toml, with the pinned dev nats-server on 127.0.0.1:4333
# started first if nothing listens there, and stopped again when the service exits (Ctrl-C) if
# this script started it. The binary is $1 (the justfile passes the one in CARGO_TARGET_DIR).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$1
started=no
if ! (exec 3<>/dev/tcp/127.0.0.1/4333) 2>/dev/null; then
  "$root/tools/dev-nats.sh" start
  started=yes
fi
stop_nats() {
  if [ "$started" = yes ]; then "$root/tools/dev-nats.sh" stop; fi
}
trap stop_nats EXIT
# Ctrl-C reaches the service too, which stops cleanly; this script waits for it, then stops NATS.
trap ':' INT TERM
cd "$root"
status=0
"$bin" serve --config config/dev.toml || status=$?
exit "$status"
