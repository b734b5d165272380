#!/usr/bin/env bash
# Inside a D-Bus session: start gnome-keyring's Secret Service with an unlocked (empty-password)
# keyring, then run the given command. Used by scripts/test.sh and .ci/run.
set -euo pipefail
eval "$(echo '' | gnome-keyring-daemon --unlock --components=secrets 2>/dev/null)" || true
export GNOME_KEYRING_CONTROL
exec "$@"
