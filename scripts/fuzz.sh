#!/usr/bin/env bash
# `npm run fuzz`: the nightly-sized fuzz run, 100 000 cases per property (LATCHKEY_FUZZ_RUNS
# overrides; LATCHKEY_FUZZ_SEED replays a reported failure). `npm test` runs the same files
# with 2000 cases. The files run one after another (the machine's cores are shared), and
# without the suite's 5-minute file timeout: each property sets its own, scaled to its runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export LATCHKEY_FUZZ_RUNS="${LATCHKEY_FUZZ_RUNS:-100000}"
echo "latchkey fuzz: ${LATCHKEY_FUZZ_RUNS} cases per property"
exec node --import tsx --test --test-concurrency=1 --test-timeout=86400000 --test-reporter=spec test/fuzz/*.test.ts "$@"
