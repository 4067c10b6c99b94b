#!/usr/bin/env bash
# Starts the pinned nats-server for development on 127.0.0.1:4333 (JetStream, fsync always)
# unless something already listens there. Its data and log live in .data/nats/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if (exec 3<>/dev/tcp/127.0.0.1/4333) 2>/dev/null; then
  echo "nats: something already listens on 127.0.0.1:4333; using it"
  exit 0
fi
mkdir -p "$root/.data/nats"
"$root/.tools/bin/nats-server" -c "$root/config/nats-dev.conf" \
  --store_dir "$root/.data/nats" -l "$root/.data/nats/nats.log" &
for _ in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/4333) 2>/dev/null; then
    echo "nats: started the pinned nats-server on 127.0.0.1:4333 (log: .data/nats/nats.log)"
    exit 0
  fi
  sleep 0.1
done
echo "nats: the pinned nats-server did not start; see .data/nats/nats.log" >&2
exit 1
