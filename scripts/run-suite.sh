#!/usr/bin/env bash
# The test run of `npm test`: every test file (or those matching the arguments), then, for a
# whole-suite run, the lifecycle tests that must hold on both stores (issue 16; the fleet
# refresher's included) once more on PostgreSQL (LATCHKEY_TEST_STORE=postgres:
# test/support/lifecycle-env.ts gives each test a fresh database on the run's server, see
# scripts/with-postgres.sh), and last the fleet tests (test/fleet/, issue 16's three refresher
# processes for five minutes), alone so that nothing else competes with them for the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
BOTH_STORES=(lifecycle/restart lifecycle/storm lifecycle/crash lifecycle/outage lifecycle/invalid-grant
  lifecycle/visibility lifecycle/refresher lifecycle/rekey-under-load serve/serve-api serve/serve-states
  serve/serve-portal serve/serve-mcp.test serve/serve-events serve/seed)
status=0
node scripts/run-tests.mjs "$@" || status=$?
if [ "$#" -eq 0 ]; then
  echo
  echo "again on PostgreSQL: ${BOTH_STORES[*]}"
  pg_status=0
  LATCHKEY_TEST_STORE=postgres node scripts/run-tests.mjs "${BOTH_STORES[@]}" || pg_status=$?
  echo
  echo "the fleet on PostgreSQL: three refresher processes, 2,000 users, 5 minutes (test/fleet)"
  fleet_status=0
  node scripts/run-tests.mjs test/fleet/ || fleet_status=$?
  echo "latchkey tests: whole suite exit $status; lifecycle on PostgreSQL exit $pg_status; fleet exit $fleet_status"
  [ "$pg_status" -eq 0 ] || status=$pg_status
  [ "$fleet_status" -eq 0 ] || status=$fleet_status
fi
exit "$status"
