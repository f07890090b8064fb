# Sourced by the scripts that run a suite against a server of their own starting
# (conformance/autobahn/run.sh, conformance/bench/go/run-against-go.sh,
# conformance/node/run-against-node.sh).
#
# start_server LOG TRIES CMD [ARGS...]: starts CMD in the background, its output in LOG,
# and waits up to TRIES tenths of a second for its "listening on http://ADDR" line; sets
# server_url (http://ADDR) and server_pid. Returns 1, with the end of LOG on stderr, if the
# server exits or names no address in time.
# stop_server: stops it (for the caller's EXIT trap).

server_pid=""
server_url=""

start_server() {
  local log="$1" tries="$2"
  shift 2
  "$@" >"$log" 2>&1 &
  server_pid=$!
  server_url=""
  for _ in $(seq 1 "$tries"); do
    server_url="$(sed -n 's/^listening on \(http:\/\/[^ ]*\).*/\1/p' "$log" | head -n 1)"
    [ -n "$server_url" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "the server did not start ($*):" >&2
  tail -n 30 "$log" >&2
  return 1
}

stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
