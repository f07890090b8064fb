#!/usr/bin/env bash
# Runs the browser end-to-end checks against a server command.
#
#   conformance/browser/run-against.sh [RUN.JS-OPTIONS... --] CMD [ARGS...]
#
# Installs what is missing (the npm packages with `npm ci`; Debian's chromium when
# running as root), then hands over to run.js, which starts the harness's static server,
# starts `CMD ARGS... 127.0.0.1:PORT --sockjs-url URL` on a free port, waits for its
# "listening on http://ADDR" line, runs the checks, prints the table and the
# "N passed, M failed, K n/a" line, and stops everything it started. The exit code is
# run.js's: 0 all passed, 1 some row failed, 2 the run could not be set up.
#
# Options for run.js (see README.md) go first and end with `--`:
#   run-against.sh --filter websocket -- cargo run --release -p sockjs-smol --example smol_test_server --
# plus this script's own `--via haproxy` (every server behind HAProxy with
# deploy/haproxy.cfg; the https row is left out, HAProxy there speaks plain HTTP) or
# `--via badlink` (every server behind the bad link: latency, jitter, tiny segments, stalls).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

opts=()
via=""
if [[ $# -gt 0 && $1 == -* ]]; then
  while [[ $# -gt 0 && $1 != -- ]]; do
    if [[ $1 == --via ]]; then
      via=${2:-}
      shift 2 || { echo "run-against.sh: --via wants haproxy or badlink" >&2; exit 2; }
      continue
    fi
    opts+=("$1")
    shift
  done
  [[ $# -gt 0 ]] && shift
fi
if [[ $# -eq 0 ]]; then
  sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi

as_root() { [[ $(id -u) -eq 0 ]]; }

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y "$@" || { apt-get update && apt-get install -y "$@"; }
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if as_root; then
    apt_install nodejs npm >&2
  else
    echo "run-against.sh: needs node and npm" >&2
    exit 2
  fi
fi

if (( $(node -p 'process.versions.node.split(".")[0]') < 20 )); then
  echo "run-against.sh: needs node 20 or newer (playwright-core), found $(node --version)" >&2
  exit 2
fi

# npm ci when node_modules is missing or older than the lock file.
if [[ ! -f $here/node_modules/.package-lock.json || $here/package-lock.json -nt $here/node_modules/.package-lock.json ]]; then
  (cd "$here" && npm ci --no-audit --no-fund) >&2
fi

# openssl makes the https row's throwaway certificate.
if ! command -v openssl >/dev/null; then
  if as_root; then
    apt_install openssl >&2
  else
    echo "run-against.sh: needs openssl (the https row's certificate)" >&2
    exit 2
  fi
fi

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [[ ! -x $chromium ]]; then
  if as_root && [[ $chromium == /usr/bin/chromium ]]; then
    apt_install chromium >&2
  else
    echo "run-against.sh: no Chromium at $chromium (install Debian's chromium package, or set CHROMIUM_PATH)" >&2
    exit 2
  fi
fi

case $via in
  "") ;;
  haproxy)
    opts+=(--no-tls --front "$here/front-haproxy.sh {listen} {upstream}")
    ;;
  badlink)
    # The bad link of the browser suite: every chunk 20-50 ms late, delivered in 1-7 byte
    # segments, 2 % of chunks stalled 250 ms more; seeded, so runs repeat. No cuts: a cut
    # connection fails its row by design (conformance/tests/silent_cut.rs covers cuts).
    echo "== building the bad link" >&2
    (cd "$here/../.." && cargo build --release -q -p conformance --bin badlink) >&2
    target=$(cd "$here/../.." && cargo metadata --format-version 1 --no-deps |
      sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    opts+=(--front "$target/release/badlink --listen {listen} --upstream {upstream} --latency-ms 20 --jitter-ms 30 --segment 1-7 --stall-probability 0.02 --stall-ms 250 --seed 1 --exit-after 3600")
    ;;
  *)
    echo "run-against.sh: --via wants haproxy or badlink, not $via" >&2
    exit 2
    ;;
esac

exec node "$here/run.js" --chromium "$chromium" "${opts[@]+"${opts[@]}"}" -- "$@"
