#!/usr/bin/env bash
# Start one throwaway PostgreSQL cluster for a whole test run, export LATCHKEY_TEST_PG_URL
# (test/support/postgres.ts then creates a fresh database per test on it), run the given
# command, and stop the cluster however the command ends. Used by scripts/test.sh.
# initdb refuses to run as root: as root, the cluster runs as the `postgres` user in a 0755
# scratch directory it can traverse. Trust auth, loopback only, fsync off (test data).
set -euo pipefail
if [ -n "${LATCHKEY_TEST_PG_URL:-}" ]; then exec "$@"; fi

bin=""
if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
  bin="$(dirname "$(command -v pg_ctl)")"
else
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then bin="$dir"; break; fi
  done
fi
if [ -z "$bin" ]; then
  echo "with-postgres: initdb/pg_ctl not found (install Debian's postgresql); running without a shared server" >&2
  exec "$@"
fi

root="$(mktemp -d "${TMPDIR:-/tmp}/latchkey-pg-run-XXXXXX")"
chmod 755 "$root"
mkdir -m 700 "$root/data"
as_pg=()
if [ "$(id -u)" = 0 ]; then
  chown postgres: "$root" "$root/data"
  as_pg=(runuser -u postgres --)
fi
port="$(node -e "const s=require('node:net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")"

stop() {
  "${as_pg[@]}" "$bin/pg_ctl" -D "$root/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$root"
}
trap stop EXIT

"${as_pg[@]}" "$bin/initdb" -D "$root/data" -A trust -U latchkey -E UTF8 --no-sync >/dev/null
"${as_pg[@]}" "$bin/pg_ctl" -D "$root/data" -l "$root/log" -w start \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $root -c fsync=off -c max_connections=300" >/dev/null
export LATCHKEY_TEST_PG_URL="postgres://latchkey@127.0.0.1:$port/postgres"
status=0
"$@" || status=$?
exit "$status"
