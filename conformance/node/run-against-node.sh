#!/usr/bin/env bash
# Runs the conformance suite against the sockjs-node reference server.
#
# Installs the node dependencies if needed (npm ci), starts the server on a free loopback
# port with short delays, runs the suite with the matching flags, stops the server and
# exits with the suite's status. Extra arguments are passed to the suite (e.g. --filter).
#
# Environment: HEARTBEAT_MS (default 1000), DISCONNECT_MS (default 1500),
#              CARGO_PROFILE (default release).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
heartbeat_ms="${HEARTBEAT_MS:-1000}"
disconnect_ms="${DISCONNECT_MS:-1500}"
profile="${CARGO_PROFILE:-release}"

if [ ! -d "$here/node_modules" ]; then
  (cd "$here" && npm ci --no-audit --no-fund)
fi

free_port() {
  node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

port="$(free_port)"
log="$(mktemp)"
node "$here/server.js" --port "127.0.0.1:$port" \
  --heartbeat-ms "$heartbeat_ms" --disconnect-ms "$disconnect_ms" >"$log" 2>&1 &
server_pid=$!

cleanup() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT

# Wait for the server to listen (up to 10 s).
for _ in $(seq 1 100); do
  if grep -q "listening" "$log" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "reference server exited:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
if ! grep -q "listening" "$log"; then
  echo "reference server did not start:" >&2
  cat "$log" >&2
  exit 1
fi

# Deliberate deviations: rules where this suite is stricter than sockjs-node (see
# conformance/README.md). Their failures are reported as skips.
#   s2_iframe_dot_is_literal: node's iframe regex leaves the dot unescaped and serves
#   /iframeXhtml.
#   s7_1_3_heartbeat_rearmed_by_a_write: node arms its heartbeat timer when a receiver
#   attaches and does not restart it when it flushes messages (Session.tryFlush), so the h
#   comes a heartbeat delay after the attach, however recently a frame was written.
expect_fail="s2_iframe_dot_is_literal,s7_1_3_heartbeat_rearmed_by_a_write"

profile_flag=()
if [ "$profile" = "release" ]; then
  profile_flag=(--release)
fi

status=0
(cd "$here/../.." && cargo run --quiet "${profile_flag[@]}" -p conformance -- \
  "http://127.0.0.1:$port" \
  --heartbeat-ms "$heartbeat_ms" --disconnect-ms "$disconnect_ms" \
  --expect-fail "$expect_fail" "$@") || status=$?

if [ -s "$log" ] && grep -qv "listening" "$log"; then
  echo "--- reference server output ---"
  grep -v "listening" "$log" || true
fi
exit "$status"
