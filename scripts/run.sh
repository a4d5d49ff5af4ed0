#!/usr/bin/env bash
# Runs the service locally on 127.0.0.1 until Ctrl-C / SIGTERM:
#   Redis (the one at REDIS_HOST:REDIS_PORT if it answers, else our own with AOF under .run/),
#   counter-fcgi on a unix socket under .run/.
# Everything it starts is stopped by PID on exit; the counter survives (AOF in .run/redis/).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
state="$root/.run"
mkdir -p "$state/redis"
chmod 755 "$state"   # nginx workers (another user) must reach the socket

export REDIS_HOST="${REDIS_HOST:-127.0.0.1}"
export REDIS_PORT="${REDIS_PORT:-6379}"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
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
if redis_answers; then
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

export FCGI_LISTEN="${FCGI_LISTEN:-unix:$state/counter-fcgi.sock}"
"$bin" &
pids+=($!)
sock="${FCGI_LISTEN#unix:}"
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "run: counter-fcgi did not start" >&2; exit 1; }

cat >&2 <<MSG
run: counter-fcgi serves FastCGI on $FCGI_LISTEN
     try: env -i REQUEST_METHOD=POST DOCUMENT_URI=/write cgi-fcgi -bind -connect $sock
     Ctrl-C stops everything started here.
MSG
wait -n "${pids[@]}"
