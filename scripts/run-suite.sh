#!/usr/bin/env bash
# The test run of `npm test`: every test file (or those matching the arguments), then, for a
# whole-suite run, the lifecycle tests that must hold on both stores (issue 16; the fleet
# refresher's included) once more on PostgreSQL (LATCHKEY_TEST_STORE=postgres:
# test/support/lifecycle-env.ts gives each test a fresh database on the run's server, see
# scripts/with-postgres.sh), and last the fleet tests (test/fleet/: issue 16's three refresher
# processes and issue 17's three serve processes, five minutes each), one at a time so that
# nothing else competes with them for the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
BOTH_STORES=(lifecycle/restart lifecycle/storm lifecycle/crash lifecycle/outage lifecycle/invalid-grant
  lifecycle/visibility lifecycle/refresher lifecycle/rekey-under-load serve/serve-api serve/serve-states
  serve/serve-portal serve/serve-mcp.test serve/serve-events serve/seed serve/serve-scopes)
status=0
node scripts/run-tests.mjs "$@" || status=$?
if [ "$#" -eq 0 ]; then
  echo
  echo "again on PostgreSQL: ${BOTH_STORES[*]}"
  pg_status=0
  LATCHKEY_TEST_STORE=postgres node scripts/run-tests.mjs "${BOTH_STORES[@]}" || pg_status=$?
  echo
  echo "the fleets on PostgreSQL (test/fleet): three refresher processes, 2,000 users, 5 minutes;"
  echo "three serve processes, 200 users, MCP calls for 5 minutes"
  fleet_status=0
  # One file at a time: each fleet needs both cores for itself.
  for fleet in test/fleet/*.test.ts; do
    node scripts/run-tests.mjs "$fleet" || fleet_status=$?
  done
  echo "latchkey tests: whole suite exit $status; lifecycle on PostgreSQL exit $pg_status; fleet exit $fleet_status"
  [ "$pg_status" -eq 0 ] || status=$pg_status
  [ "$fleet_status" -eq 0 ] || status=$fleet_status
fi
exit "$status"
