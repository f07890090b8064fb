#!/usr/bin/env bash
# A front for run.js (--front): HAProxy with DEPLOYMENT.md's configuration,
# deploy/haproxy.cfg, in front of one test server.
#
#   front-haproxy.sh LISTEN UPSTREAM      e.g. 127.0.0.1:9000 127.0.0.1:8081
#
# The configuration is deploy/haproxy.cfg with only what one test server needs changed:
# the frontend binds LISTEN, the backend has one server (UPSTREAM; the second one goes),
# and the health check asks for /echo (the test server's greeting) instead of /chat. The
# sticky hash, path,field(3,/), already picks the server id of the test services' URLs
# (/echo/SERVER/SESSION/...). Runs HAProxy in the foreground until stopped; installs it
# (Debian's package) when missing under CI as root.
set -euo pipefail
[[ $# -eq 2 ]] || { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
listen=$1
upstream=$2
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PATH="$PATH:/usr/sbin:/sbin"

if ! command -v haproxy >/dev/null 2>&1; then
  if [[ "${CI:-}" == true && "$(id -u)" == 0 ]]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq haproxy >/dev/null ||
      { apt-get update -qq && apt-get install -y -qq haproxy >/dev/null; }
  else
    echo "front-haproxy.sh: needs haproxy (apt-get install -y haproxy)" >&2
    exit 2
  fi
fi

dir=$(mktemp -d)
cfg=$dir/haproxy.cfg
sed -e "s/^\(\s*bind \)127\.0\.0\.1:8080$/\1$listen/" \
  -e "s/^\(\s*server a \)127\.0\.0\.1:8081$/\1$upstream/" \
  -e '/^\s*server b 127\.0\.0\.1:8082$/d' \
  -e 's|^\(\s*option httpchk GET \)/chat$|\1/echo|' \
  "$repo/deploy/haproxy.cfg" >"$cfg"
# Every change above must have landed: a drifted deploy/haproxy.cfg fails here, loudly.
for want in "bind $listen" "server a $upstream" "option httpchk GET /echo"; do
  grep -q "^\s*$want" "$cfg" || { echo "front-haproxy.sh: deploy/haproxy.cfg has no '$want' after rewriting" >&2; exit 2; }
done
! grep -q "server b" "$cfg" || { echo "front-haproxy.sh: server b still there" >&2; exit 2; }
haproxy -c -q -f "$cfg"

haproxy -db -f "$cfg" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"; exit 0' TERM INT HUP
wait $pid
status=$?
rm -rf "$dir"
exit $status
