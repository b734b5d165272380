#!/usr/bin/env bash
# The whole suite: type-check, lint and format check, build and package checks, then every test.
# Tests that use the OS keyring need a Secret Service; when none is running and
# gnome-keyring is installed, run inside a private D-Bus session with an unlocked keyring.
# The Postgres tests share one throwaway server for the run (scripts/with-postgres.sh);
# scripts/run-suite.sh runs the store-sensitive lifecycle tests on both stores.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent typecheck
npm run --silent lint
# The end-to-end tests spawn the installed command, bin/latchkey.cjs, which runs dist/.
npm run --silent build
# What npm would publish: publint, attw, and no test-only code in the package.
npm run --silent check:package
if [ -z "${DBUS_SESSION_BUS_ADDRESS:-}" ] && command -v dbus-run-session >/dev/null 2>&1 \
  && command -v gnome-keyring-daemon >/dev/null 2>&1; then
  exec dbus-run-session -- bash scripts/with-keyring.sh bash scripts/with-postgres.sh \
    bash scripts/run-suite.sh "$@"
fi
exec bash scripts/with-postgres.sh bash scripts/run-suite.sh "$@"
