#!/usr/bin/env bash
# `npm run bench`: build (the cold-start figure uses dist/ like a real user), then measure.
# Like the tests, it runs in a private D-Bus session with gnome-keyring when one is available,
# so the keyring cold-start figure is real.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build
if [ -z "${DBUS_SESSION_BUS_ADDRESS:-}" ] && command -v dbus-run-session >/dev/null 2>&1 \
  && command -v gnome-keyring-daemon >/dev/null 2>&1; then
  exec dbus-run-session -- bash scripts/with-keyring.sh node --import tsx bench/run.ts "$@"
fi
exec node --import tsx bench/run.ts "$@"
