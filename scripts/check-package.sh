#!/usr/bin/env bash
# `npm run check:package`: lint the package as npm would publish it (run after a build).
# - publint --strict: package.json fields, "exports" and the files they point to;
# - attw, ESM-only profile: every entry's types resolve for node16/nodenext and bundlers
#   (latchkey is ESM only, so CommonJS `require` is not a supported way in);
# - no test-only code ships: the harness's test hooks live in test/, never in dist/.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# --ignore-scripts: `prepare` would build again; the caller has just built.
tarball="$scratch/$(npm pack --ignore-scripts --silent --pack-destination "$scratch")"
npx --no-install publint run --strict "$tarball"
npx --no-install attw --profile esm-only --format ascii "$tarball"
tar -xzf "$tarball" -C "$scratch"
if grep -rlE 'dropAllSessions|breakNextStreams|TestAuthorizationServer|TestMcpServer' "$scratch/package"; then
  echo "check:package: test-only harness code is in the package (above); it belongs in test/harness" >&2
  exit 1
fi
echo "check:package: publint, attw and the shipped files are fine"
