#!/usr/bin/env bash
# The development nats-server (the pinned one) on 127.0.0.1:4333: JetStream, fsync always.
#   tools/dev-nats.sh start   start it unless something already listens there
#   tools/dev-nats.sh stop    stop the one this script started (pid in .data/nats/nats.pid)
# Its data and log live in .data/nats/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pidfile="$root/.data/nats/nats.pid"
listening() { (exec 3<>/dev/tcp/127.0.0.1/4333) 2>/dev/null; }

case "${1:-start}" in
start)
  if listening; then
    echo "nats: something already listens on 127.0.0.1:4333; using it"
    exit 0
  fi
  mkdir -p "$root/.data/nats"
  "$root/.tools/bin/nats-server" -c "$root/config/nats-dev.conf" \
    --store_dir "$root/.data/nats" -l "$root/.data/nats/nats.log" -P "$pidfile" &
  for _ in $(seq 1 100); do
    if listening; then
      echo "nats: started the pinned nats-server on 127.0.0.1:4333 (log: .data/nats/nats.log; \`./x stop\` stops it)"
      exit 0
    fi
    sleep 0.1
  done
  echo "nats: the pinned nats-server did not start; see .data/nats/nats.log" >&2
  exit 1
  ;;
stop)
  if [ ! -f "$pidfile" ] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "nats: no dev nats-server of ours is running"
    rm -f "$pidfile"
    exit 0
  fi
  pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; echo "nats: stopped the dev nats-server"; exit 0; }
    sleep 0.1
  done
  echo "nats: the dev nats-server (pid $pid) did not stop within 10 s" >&2
  exit 1
  ;;
*)
  echo "usage: tools/dev-nats.sh start|stop" >&2
  exit 2
  ;;
esac
