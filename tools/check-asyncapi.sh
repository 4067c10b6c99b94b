#!/usr/bin/env bash
# Checks the machine-readable contract:
#   1. docs/asyncapi.yaml with the official AsyncAPI CLI (`asyncapi validate`, pinned by
#      tools/asyncapi/package-lock.json): the AsyncAPI 3.0 document, every $ref (into docs/schemas/
#      too) and every payload and headers schema as an AsyncAPI Schema Object; warnings fail too;
#   2. tools/asyncapi/check-schemas.mjs: each docs/schemas/*.json is a valid JSON Schema draft
#      2020-12 (Ajv, strict mode), the examples in docs/schemas/examples/ are accepted and those in
#      examples/invalid/ rejected, the docs' own JSON examples are accepted, hashes chain.
# Installs the pinned npm packages first when they are missing or the lock file changed (npm ci into
# tools/asyncapi/node_modules: about 1.5 GB, a few minutes). Exits non-zero on any failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/tools/asyncapi"
stamp="$dir/node_modules/.installed-$(sha256sum "$dir/package-lock.json" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  # No install scripts: nothing needed here runs one, and none may download a binary.
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  touch "$stamp"
fi

# The CLI would send anonymous usage metrics and look for a newer version of itself: neither here.
metrics=$(mktemp)
trap 'rm -f "$metrics"' EXIT
printf '{"analyticsEnabled":"false","infoMessageShown":"true","userID":"none"}\n' >"$metrics"
export ASYNCAPI_METRICS_CONFIG_PATH="$metrics" ASYNCAPI_SKIP_NEW_VERSION_CHECK=true

cd "$root"
echo "asyncapi validate docs/asyncapi.yaml ($("$dir/node_modules/.bin/asyncapi" --version 2>/dev/null | head -1))"
"$dir/node_modules/.bin/asyncapi" validate docs/asyncapi.yaml --fail-severity warn
node "$dir/check-schemas.mjs" "$root"
