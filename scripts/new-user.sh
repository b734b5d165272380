#!/usr/bin/env bash
# A new user, literally: a fresh clone in a fresh HOME runs the README's install command
# (install, then `latchkey demo`) and checks that the demo completes every step; then logs
# in to the test harness's server and makes a working `latchkey call`; then runs the
# README's test command. The commands are read from the README, not copied here.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
cleanup() {
  [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The machine's npm set-up is kept: its download cache, and its user config (registry, CA,
# the Node headers native addons build against). A new user of this machine has them too;
# what is new is the HOME latchkey sees: no store, no keyring entry, no config.
export npm_config_cache="${npm_config_cache:-$HOME/.npm}"
if [ -z "${npm_config_userconfig:-}" ] && [ -f "$HOME/.npmrc" ]; then
  export npm_config_userconfig="$HOME/.npmrc"
fi
export HOME="$work/home"
mkdir -p "$HOME"
unset LATCHKEY_HOME LATCHKEY_KEY
git clone -q "$repo" "$work/latchkey"
cd "$work/latchkey"

# The ```sh block right after the README's `<!-- new-user: NAME -->` marker.
readme_block() {
  awk -v tag="<!-- new-user: $1 -->" '
    $0 == tag { found = 1; next }
    found && /^```sh/ { inside = 1; next }
    inside && /^```/ { exit }
    inside { print }
  ' README.md
}
install_cmd="$(readme_block install)"
test_cmd="$(readme_block test)"
[ -n "$install_cmd" ] && [ -n "$test_cmd" ] || { echo "new-user: README markers not found" >&2; exit 1; }

echo "new-user: \$ $install_cmd" >&2
bash -c "$install_cmd" </dev/null 2>&1 | tee "$work/demo.log" >&2
for step in '[1/5] Log in' '[2/5] Call a tool' '[3/5] Let the access token expire' '[4/5] latchkey status' '[5/5] Log out' 'Done.'; do
  grep -qF -- "$step" "$work/demo.log" || { echo "new-user: the demo never reached: $step" >&2; exit 1; }
done
echo "new-user: the demo completed every step" >&2

# A working `latchkey call` against the harness's real AS and MCP server.
mkfifo "$work/serve.in"
node --import tsx test/fixtures/harness-serve.ts <"$work/serve.in" >"$work/serve.out" &
serve_pid=$!
exec 3>"$work/serve.in"
for _ in $(seq 100); do [ -s "$work/serve.out" ] && break; sleep 0.1; done
url="$(head -n1 "$work/serve.out")"
[ -n "$url" ] || { echo "new-user: the harness did not start" >&2; exit 1; }
BROWSER="$PWD/test/fixtures/headless-browser.ts" npx latchkey login "$url" --browser
answer="$(npx latchkey call "$url" echo '{"text":"hello from a new user"}')"
echo "new-user: latchkey call -> $answer" >&2
[ "$answer" = "hello from a new user" ] || { echo "new-user: latchkey call gave: $answer" >&2; exit 1; }
npx latchkey logout "$url"
exec 3>&-

echo "new-user: \$ $test_cmd" >&2
bash -c "$test_cmd"
