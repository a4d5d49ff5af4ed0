#!/usr/bin/env bash
# Runs the whole service locally on 127.0.0.1 until Ctrl-C / SIGTERM:
#   Redis (the one at REDIS_HOST:REDIS_PORT if it answers, else our own with AOF under .run/),
#   counter-fcgi on a unix socket under .run/, and nginx on 127.0.0.1:$PORT (default 8080).
# Honours PORT, API_KEY, API_KEYS_FILE, REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_SENTINELS, REDIS_CLUSTER_NODES
# (then it starts no Redis: counter-fcgi follows the Sentinels) and every other counter-fcgi and
# nginx/render.sh setting. Without API_KEY/API_KEYS_FILE it makes a development
# key (kept in .run/dev-api-key) and prints curl lines. Everything it starts is stopped by PID on
# exit; the counter survives (AOF in .run/redis/).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
state="$root/.run"
mkdir -p "$state/redis"

export REDIS_HOST="${REDIS_HOST:-127.0.0.1}"
export REDIS_PORT="${REDIS_PORT:-6379}"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  case ${sockdir:-} in /tmp/counter-fcgi-run.*) rm -rf "$sockdir" ;; esac
  echo "run: stopped" >&2
}
trap cleanup EXIT
trap 'exit 0' INT TERM

scripts/setup.sh
echo "run: building counter-fcgi (release)" >&2
swift build -c release --product counter-fcgi >&2
bin="$(swift build -c release --show-bin-path)/counter-fcgi"

redis_answers() {
  REDISCLI_AUTH="${REDIS_PASSWORD:-}" timeout 2 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null | grep -qE 'PONG|NOAUTH'
}
if [ -n "${REDIS_CLUSTER_NODES:-}" ]; then
  # Redis Cluster: counter-fcgi reads the slot map from these nodes (scripts/redis-cluster.sh
  # starts a local cluster); no Redis of our own, and no REDIS_HOST, which would select another mode.
  echo "run: using the Redis Cluster at $REDIS_CLUSTER_NODES" >&2
  unset REDIS_HOST REDIS_PORT
elif [ -n "${REDIS_SENTINELS:-}" ]; then
  # High availability: counter-fcgi finds the primary through these Sentinels (scripts/redis-ha.sh
  # starts a local topology); no Redis of our own.
  echo "run: using the primary that the Sentinels at $REDIS_SENTINELS name" >&2
elif redis_answers; then
  echo "run: using the Redis at $REDIS_HOST:$REDIS_PORT" >&2
else
  case "$REDIS_HOST" in
    127.*|localhost|::1) ;;
    *) echo "run: no Redis answers at $REDIS_HOST:$REDIS_PORT, and it is not local: start it or unset REDIS_HOST" >&2; exit 1 ;;
  esac
  echo "run: starting redis-server on 127.0.0.1:$REDIS_PORT (AOF in .run/redis)" >&2
  args=(--port "$REDIS_PORT" --bind 127.0.0.1 --dir "$state/redis" --appendonly yes --appendfsync everysec
        --save "" --maxmemory-policy noeviction --logfile "$state/redis/redis.log")
  [ -n "${REDIS_PASSWORD:-}" ] && args+=(--requirepass "$REDIS_PASSWORD")
  redis-server "${args[@]}" &
  pids+=($!)
  for _ in $(seq 100); do redis_answers && break; sleep 0.05; done
  redis_answers || { echo "run: redis-server did not start; see .run/redis/redis.log" >&2; exit 1; }
fi

# The socket's folder. As root, nginx's workers run as nobody:nogroup (nginx/render.sh): the folder
# is then a setgid folder of that group under /tmp (the checkout may sit in a folder they cannot
# enter), so the 0660 socket made in it is the group's, as in the containers. nginx's temp paths go
# there too. Removed on exit.
sockdir="$state/socket"
if [ "$(id -u)" -eq 0 ]; then
  sockdir=$(mktemp -d /tmp/counter-fcgi-run.XXXXXX)
  chgrp "${NGINX_GROUP:-nogroup}" "$sockdir"
  chmod 2750 "$sockdir"
  export NGINX_STATE_DIR="${NGINX_STATE_DIR:-$sockdir/nginx}"
fi
mkdir -p "$sockdir"
export FCGI_LISTEN="${FCGI_LISTEN:-unix:$sockdir/counter-fcgi.sock}"
# nginx reports the requests it answers itself (429s...) here; counter-fcgi counts them.
export EDGE_LOG_ADDRESS="${EDGE_LOG_ADDRESS:-127.0.0.1:9146}"
"$bin" &
pids+=($!)
sock="${FCGI_LISTEN#unix:}"
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "run: counter-fcgi did not start" >&2; exit 1; }

# --- nginx ---------------------------------------------------------------------------------------
export PORT="${PORT:-8080}"
if [ -z "${API_KEY:-}" ] && [ -z "${API_KEYS_FILE:-}" ]; then
  if [ ! -s "$state/dev-api-key" ]; then
    (umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$state/dev-api-key")
  fi
  API_KEY="$(cat "$state/dev-api-key")"
  export API_KEY API_KEY_NAME=dev
  dev_key=1
fi
export ACCESS_LOG="${ACCESS_LOG:-$state/nginx/access.log}"
nginx/render.sh "$state/nginx"
nginx -q -t -c "$state/nginx/nginx.conf" -p "$state/nginx"
nginx -c "$state/nginx/nginx.conf" -p "$state/nginx" -g 'daemon off;' &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/livez" >/dev/null && break; sleep 0.05; done
curl -fs "http://127.0.0.1:$PORT/livez" >/dev/null || { echo "run: nginx did not start" >&2; exit 1; }

# shellcheck disable=SC2016 # printed literally, for the user's shell to expand
key_hint='$API_KEY'
[ -n "${dev_key:-}" ] && key_hint="$API_KEY"
cat >&2 <<MSG

run: the counter API is on http://127.0.0.1:$PORT (nginx -> counter-fcgi -> Redis)
$([ -n "${dev_key:-}" ] && echo "     development API key (admin scope): $API_KEY")
     curl http://127.0.0.1:$PORT/health
     curl http://127.0.0.1:$PORT/read -H "X-API-Key: $key_hint"
     curl -X POST http://127.0.0.1:$PORT/write -H "X-API-Key: $key_hint"
     curl -X POST http://127.0.0.1:$PORT/reset -H "X-API-Key: $key_hint"
     named counters:
     curl -X POST "http://127.0.0.1:$PORT/v1/counters/page-views/increment?by=1" -H "X-API-Key: $key_hint"
     curl http://127.0.0.1:$PORT/v1/counters/page-views -H "X-API-Key: $key_hint"
     curl "http://127.0.0.1:$PORT/v1/counters?prefix=page" -H "X-API-Key: $key_hint"
     curl "http://127.0.0.1:$PORT/v1/counters/page-views/badge.svg?label=views" -H "X-API-Key: $key_hint"
     public counters (no key, read only): PUBLIC_COUNTERS=${PUBLIC_COUNTERS:-(none)}; hit counters: PUBLIC_HIT_COUNTERS=${PUBLIC_HIT_COUNTERS:-(none)}
     access log: $ACCESS_LOG; keys changed? scripts/reload-keys.sh
     rate limits (429 beyond them): per key ${RATE_LIMIT_PER_KEY:-50r/s} burst ${RATE_LIMIT_PER_KEY_BURST:-100},
       per address ${RATE_LIMIT_PER_ADDRESS:-100r/s} burst ${RATE_LIMIT_PER_ADDRESS_BURST:-200},
       missing or wrong keys ${RATE_LIMIT_BAD_KEY:-2r/s} burst ${RATE_LIMIT_BAD_KEY_BURST:-10};
       for load tests raise them (docs/operations.md, "Load testing")
     Ctrl-C stops everything started here.
MSG
# Stop everything when any part dies, or when whoever started us (make) is gone: a SIGTERM to
# `make run` reaches make only, and must still stop the stack.
parent=$PPID
while sleep 0.5; do
  kill -0 "$parent" 2>/dev/null || { echo "run: parent process gone" >&2; exit 0; }
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "run: process $pid exited; stopping the rest" >&2; exit 1; }
  done
done
