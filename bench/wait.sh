#!/usr/bin/env bash
# What does REDIS_WAIT_REPLICAS=1 cost per write? A primary, two replicas and three Sentinels on
# loopback (scripts/redis-ha.sh), counter-fcgi following them behind our nginx, POST /write under
# wrk for SECONDS_PER_RUN (default 10) at CONNECTIONS (default 64), with WAIT off and on in
# alternating order, ROUNDS times (default 2). Prints req/s and latency of each and their ratio.
# A benchmark: it prints figures, never fails on them.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_PER_RUN:-10}
conns=${CONNECTIONS:-64}
rounds=${ROUNDS:-2}
key=bench-key-0123456789abcdef

BENCH_NAME="wait"
# shellcheck source=bench/common.sh
. bench/common.sh
export REDIS_HA_DIR="$dir/redis-ha" REDIS_HA_PORT="${REDIS_HA_PORT:-16380}" REDIS_HA_SENTINEL_PORT="${REDIS_HA_SENTINEL_PORT:-16390}"
scripts/redis-ha.sh start
stop_ha() { scripts/redis-ha.sh stop || true; cleanup; }
trap stop_ha EXIT
eval "$(scripts/redis-ha.sh env)"
rport=$REDIS_HA_PORT   # unused with Sentinel (start_responder sets REDIS_PORT)

port=$(free_port)
PORT=$port METRICS_LISTEN="127.0.0.1:$(free_port)" API_KEY=$key FCGI_LISTEN="unix:$dir/fcgi.sock" ACCESS_LOG=/dev/null \
  RATE_LIMIT_PER_KEY=1000000r/s RATE_LIMIT_PER_KEY_BURST=100000 RATE_LIMIT_PER_ADDRESS=1000000r/s \
  RATE_LIMIT_PER_ADDRESS_BURST=100000 nginx/render.sh "$dir/nginx" 2>/dev/null
nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx" -g 'daemon off;' 2>"$dir/nginx.log" &
pids+=($!)

declare -A rps p99
echo "bench: ${secs}s per run, $rounds round(s), $conns connections, POST /write; Sentinel topology in $REDIS_HA_DIR" >&2
for round in $(seq "$rounds"); do
  order="0 1"; [ $((round % 2)) -eq 0 ] && order="1 0"
  for wait in $order; do
    start_responder REDIS_HOST= REDIS_WAIT_REPLICAS="$wait"
    wait_http "http://127.0.0.1:$port/read" "$key" || { echo "bench: the stack did not answer" >&2; exit 1; }
    line=$(WRK_METHOD=POST wrk -t2 -c"$conns" -d"${secs}s" --timeout 5s -s bench/wrk-report.lua \
      -H "X-API-Key: $key" "http://127.0.0.1:$port/write" | sed -n 's/^RESULT //p')
    r=$(sed -n 's/.*rps=\([^ ]*\).*/\1/p' <<<"$line"); q=$(sed -n 's/.*p99_ms=\([^ ]*\).*/\1/p' <<<"$line")
    errors=$(sed -n 's/.*non2xx=\([^ ]*\).*/\1/p' <<<"$line")
    printf 'round %d  WAIT %s: %9s req/s  p99 %6s ms  non-2xx %s\n' "$round" "$wait" "$r" "$q" "$errors"
    rps[$wait]="${rps[$wait]:-} $r"; p99[$wait]="${p99[$wait]:-} $q"
  done
done
awk -v off="${rps[0]}" -v on="${rps[1]}" 'BEGIN {
  n = split(off, a); split(on, b); for (i = 1; i <= n; i++) { so += a[i]; sn += b[i] }
  printf "WAIT 1 / no WAIT: %.2f of the throughput (mean of %d rounds)\n", sn / so, n }'
