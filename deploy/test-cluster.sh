#!/usr/bin/env bash
# Cluster test: two instances of the chat example sharing one room through Redis, node a
# on sockjs-smol and node b on sockjs-tokio, behind a load balancer that routes by the
# SockJS server id, with the configs in this folder. Runs once behind HAProxy and once
# behind nginx (BALANCERS="haproxy nginx" by default), everything on free loopback ports.
# The clients (conformance/src/bin/cluster_check.rs) connect over websocket, xhr-streaming
# and xhr-polling and check sticky routing, cross-node chat both ways, a Redis outage and
# node b's graceful shutdown. First, the broadcast tests (conformance/tests/broadcast.rs)
# run against redis-servers of their own, on both adapters.
#
# Needs redis-server, haproxy and nginx; under CI (CI=true, as root) it installs them from
# Debian's packages. Exits non-zero on failure; stops every process it started.
set -euo pipefail
cd "$(dirname "$0")/.."
DEPLOY=$PWD/deploy
BALANCERS=${BALANCERS:-haproxy nginx}
CHECK_TIMEOUT=${CHECK_TIMEOUT:-120}
export PATH="$PATH:/usr/sbin:/sbin"

# --- tools -------------------------------------------------------------------------------
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v curl >/dev/null 2>&1 || missing+=(curl)
for lb in $BALANCERS; do
  command -v "$lb" >/dev/null 2>&1 || missing+=("$lb")
done
if ((${#missing[@]})); then
  if [[ "${CI:-}" == true && "$(id -u)" == 0 ]]; then
    echo "== installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${missing[@]}" >/dev/null ||
      { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
  else
    echo "missing: ${missing[*]} (apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
fi
redis-server --version
for lb in $BALANCERS; do "$lb" -v 2>&1 | sed -n 1p; done

# --- build ---------------------------------------------------------------------------------
WORK=$(mktemp -d)
chmod 755 "$WORK"
BIN=$WORK/bin
mkdir -p "$BIN"
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
# Both chat examples are named chat: build one at a time and keep a copy of each.
for adapter in smol tokio; do
  echo "== building sockjs-$adapter's chat example (with Redis)"
  cargo build --release -q -p "sockjs-$adapter" --features redis --example chat
  cp "$TARGET_DIR/release/examples/chat" "$BIN/chat-$adapter"
done
echo "== building the cluster check"
cargo build --release -q -p conformance --bin cluster_check
cp "$TARGET_DIR/release/cluster_check" "$BIN/cluster_check"

# --- process bookkeeping -------------------------------------------------------------------
PIDS=()
stop_pid() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}
stop_all() {
  local pid file
  for file in "$WORK"/*.pid "$WORK"/*/*.pid; do
    [[ -f "$file" ]] && pid=$(cat "$file") && [[ -n "$pid" ]] && stop_pid "$pid"
  done
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  PIDS=()
  rm -f "$WORK"/*.pid "$WORK"/*/*.pid
}
cleanup() {
  local status=$?
  stop_all
  if [[ $status -ne 0 ]]; then
    for log in "$WORK"/*.log "$WORK"/*/logs/*.log; do
      [[ -s "$log" ]] || continue
      echo "--- ${log#"$WORK"/} (last lines)"
      tail -n 30 "$log"
    done
  fi
  rm -rf "$WORK"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # port, what
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$2 did not listen on port $1" >&2
  return 1
}

# Rewrites the committed configs' ports (LB 8080, nodes 8081/8082, Redis 6379).
ports_in() { # file
  sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$LB/g" -e "s/127\.0\.0\.1:8081/127.0.0.1:$NODE_A/g" \
    -e "s/127\.0\.0\.1:8082/127.0.0.1:$NODE_B/g" -e "s/^port 6379$/port $REDIS/" "$1"
}

start_redis() {
  redis-server "$WORK/redis.conf" --daemonize yes --pidfile "$WORK/redis.pid" \
    --logfile "$WORK/redis.log" --dir "$WORK"
  wait_port "$REDIS" redis
}

start_node() { # name port adapter
  local name=$1 port=$2 adapter=$3
  (
    "$BIN/chat-$adapter" "127.0.0.1:$port" --node "$name" --redis "redis://127.0.0.1:$REDIS/" \
      --sockjs-url "http://127.0.0.1:$LB/sockjs.js" >"$WORK/node-$name.log" 2>&1 &
    echo $! >"$WORK/node-$name.pid"
    wait $! && status=0 || status=$?
    echo "$status" >"$WORK/node-$name.status"
    date +%s%N >"$WORK/node-$name.exit"
  ) &
  PIDS+=($!)
  wait_port "$port" "node $name"
}

start_haproxy() {
  ports_in "$DEPLOY/haproxy.cfg" >"$WORK/haproxy.cfg"
  haproxy -c -q -f "$WORK/haproxy.cfg"
  haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
  PIDS+=($!)
}

start_nginx() {
  mkdir -p "$WORK/nginx/logs" "$WORK/nginx/tmp"
  ports_in "$DEPLOY/nginx.conf" >"$WORK/nginx/sockjs.conf"
  local user=""
  [[ "$(id -u)" == 0 ]] && user="user root;"
  cat >"$WORK/nginx/nginx.conf" <<EOF
$user
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log $WORK/nginx/logs/access.log;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    include $WORK/nginx/sockjs.conf;
}
EOF
  nginx -t -q -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" -c "$WORK/nginx/nginx.conf"
  nginx -p "$WORK/nginx" -e "$WORK/nginx/logs/error.log" -c "$WORK/nginx/nginx.conf" &
  PIDS+=($!)
}

# --- the broadcast tests against a real Redis -------------------------------------------------
echo
echo "== broadcast tests (conformance/tests/broadcast.rs) on both adapters, with redis-server"
# With the workspace's features (the README's `cargo test --workspace` takes in the Redis
# backend on both runtimes), so that after it nothing is built again.
SOCKJS_REQUIRE_REDIS=1 cargo test -q --workspace --test broadcast 2>&1 | grep -v '^$'
echo "== the subscribing connection's read-ahead bound (sockjs-core), on tokio and smol, with redis-server"
SOCKJS_REQUIRE_REDIS=1 cargo test -q --workspace --lib broadcast::redis 2>&1 | grep -v '^$'

# --- one run per balancer ------------------------------------------------------------------
for lb in $BALANCERS; do
  echo
  echo "== cluster test behind $lb"
  read -r LB NODE_A NODE_B REDIS < <("$BIN/cluster_check" --free-ports 4)
  ports_in "$DEPLOY/redis.conf" >"$WORK/redis.conf"
  started=$(date +%s%N)
  start_redis
  start_node a "$NODE_A" smol
  start_node b "$NODE_B" tokio
  "start_$lb"
  wait_port "$LB" "$lb"
  echo "   $lb on 127.0.0.1:$LB, node a (smol) on :$NODE_A, node b (tokio) on :$NODE_B, redis on :$REDIS"
  echo "   started in $(( ($(date +%s%N) - started) / 1000000 )) ms"

  # The counters: on each node's own port, not through the balancer.
  status_of() { curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$1" || true; }
  metrics_a=$(status_of "http://127.0.0.1:$NODE_A/metrics")
  metrics_b=$(status_of "http://127.0.0.1:$NODE_B/metrics")
  public_metrics=$(status_of "http://127.0.0.1:$LB/metrics")
  if [[ "$metrics_a $metrics_b $public_metrics" != "200 200 404" ]]; then
    echo "FAIL /metrics: $metrics_a on node a, $metrics_b on node b, $public_metrics through $lb (want 200, 200, 404)"
    exit 1
  fi
  echo "PASS /metrics served by both nodes (200), not through $lb (404)"

  check_started=$(date +%s%N)
  timeout "$CHECK_TIMEOUT" "$BIN/cluster_check" --lb "127.0.0.1:$LB" \
    --stop-node-b "date +%s%N >'$WORK/node-b.stop'; kill -TERM \$(cat '$WORK/node-b.pid')" \
    --stop-redis "pid=\$(cat '$WORK/redis.pid'); kill -TERM \$pid; while kill -0 \$pid 2>/dev/null; do sleep 0.02; done" \
    --start-redis "redis-server '$WORK/redis.conf' --daemonize yes --pidfile '$WORK/redis.pid' --logfile '$WORK/redis.log' --dir '$WORK'; until (exec 3<>/dev/tcp/127.0.0.1/$REDIS) 2>/dev/null; do sleep 0.02; done"
  echo "   client checks took $(( ($(date +%s%N) - check_started) / 1000000 )) ms"

  # Node b stopped by itself, cleanly and promptly.
  for _ in $(seq 100); do [[ -f "$WORK/node-b.exit" ]] && break; sleep 0.1; done
  if [[ ! -f "$WORK/node-b.exit" ]]; then
    echo "FAIL node b did not exit within 10 s of SIGTERM"
    exit 1
  fi
  status=$(cat "$WORK/node-b.status")
  took=$(( ($(cat "$WORK/node-b.exit") - $(cat "$WORK/node-b.stop")) / 1000000 ))
  if [[ "$status" != 0 ]]; then
    echo "FAIL node b exited with status $status after SIGTERM"
    exit 1
  fi
  echo "PASS node b exited with status 0, $took ms after SIGTERM"
  if ! kill -0 "$(cat "$WORK/node-a.pid")" 2>/dev/null; then
    echo "FAIL node a is gone"
    exit 1
  fi
  stop_all
  rm -f "$WORK"/node-*
done
echo
echo "cluster test passed behind: $BALANCERS"
