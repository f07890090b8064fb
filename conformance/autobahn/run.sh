#!/usr/bin/env bash
# Runs Autobahn|Testsuite's fuzzing client (RFC 6455 and RFC 7692) against the raw
# WebSocket endpoint (§9.3) of a server command, and checks its report (check.py).
#
#   conformance/autobahn/run.sh CMD [ARGS...]
#   conformance/autobahn/run.sh cargo run --release -p sockjs-smol --example smol_test_server --
#
# Starts `CMD ARGS... 127.0.0.1:0 --permessage-deflate`, waits for its "listening on
# http://ADDR" line, runs `wstest -m fuzzingclient` against ws://ADDR/echo/websocket and
# stops the server. The suite needs Python 2.7: this script uses `python2.7` from PATH or
# pyenv's, and installs autobahntestsuite with pip into a virtualenv of its own under
# AUTOBAHN_HOME (default: target/autobahn in the workspace, kept between runs).
# Without Python 2.7 it says so and exits 0, unless AUTOBAHN_REQUIRED=1.
#
# Environment: AUTOBAHN_CASES (case ids or patterns, space-separated; default: every case
# of 1-7, 9 and 10, and a sample of the compression cases 12 and 13, since all of them take
# over four minutes a server; "*" for all),
# AUTOBAHN_REPORT (a folder to keep the report in; default a temporary one).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
[ $# -gt 0 ] || { echo "usage: run.sh CMD [ARGS...]" >&2; exit 2; }

# Every case of 1-7, 9 and 10; of the compression cases (each sends 1000 messages), one or
# two of each group of 12 and the first two of each group of 13.
default_cases="1.* 2.* 3.* 4.* 5.* 6.* 7.* 9.* 10.* 12.1.1 12.1.2 12.2.1 12.2.4 12.3.1 12.4.1
  12.5.1 13.1.1 13.1.2 13.2.1 13.2.2 13.3.1 13.3.2 13.4.1 13.4.2 13.5.1 13.5.2 13.6.1 13.6.2
  13.7.1 13.7.2"
cases=""
set -f # the patterns are Autobahn's, not the shell's
for c in ${AUTOBAHN_CASES:-$default_cases}; do
  cases="${cases:+$cases, }\"$c\""
done
set +f

python=""
if command -v python2.7 >/dev/null 2>&1 && python2.7 -c 'import sys' >/dev/null 2>&1; then
  python="$(command -v python2.7)"
else
  for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python2.7; do
    [ -x "$p" ] && python="$p"
  done
fi
if [ -z "$python" ]; then
  echo "autobahn: skipped, no Python 2.7 (python2.7 on PATH or under pyenv)" >&2
  [ "${AUTOBAHN_REQUIRED:-0}" = 1 ] && exit 1
  exit 0
fi

# Not a shared temporary folder: what is found there is run.
home="${AUTOBAHN_HOME:-${CARGO_TARGET_DIR:-$root/target}/autobahn}"
venv="$home/venv"
if [ ! -x "$venv/bin/wstest" ]; then
  echo "autobahn: installing autobahntestsuite into $venv (pip)..." >&2
  rm -rf "$venv" "$home/tools"
  mkdir -p "$home"
  "$python" -m pip install -q --disable-pip-version-check --target "$home/tools" \
    'virtualenv<20.22' 2>&1 | grep -v DEPRECATION >&2 || true
  PYTHONPATH="$home/tools" "$python" -m virtualenv -q "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check 'autobahntestsuite==25.10.1' 2>&1 |
    grep -v DEPRECATION >&2 || true
  [ -x "$venv/bin/wstest" ] || { echo "autobahn: pip install autobahntestsuite failed" >&2; exit 1; }
fi

# shellcheck source=../server.sh
. "$here/../server.sh"
work="$(mktemp -d)"
report="${AUTOBAHN_REPORT:-$work/report}"
trap 'stop_server; rm -rf "$work"' EXIT

# A cargo run may build first: up to five minutes.
start_server "$work/server.log" 3000 "$@" 127.0.0.1:0 --permessage-deflate || exit 1
addr="${server_url#http://}"

cat >"$work/spec.json" <<EOF
{"outdir": "$report", "servers": [{"agent": "sockjs-rs", "url": "ws://$addr/echo/websocket"}],
 "cases": [$cases], "exclude-cases": [], "exclude-agent-cases": {}}
EOF
(cd "$work" && timeout 900 "$venv/bin/wstest" -m fuzzingclient -s spec.json >"$work/wstest.log" 2>&1) || {
  echo "autobahn: wstest failed:" >&2
  tail -n 30 "$work/wstest.log" >&2
  exit 1
}
python3 "$here/check.py" "$report"
