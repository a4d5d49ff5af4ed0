#!/usr/bin/env bash
# Kept FastCGI connections, over a long run. libfcgi's own accept loop binds a kept connection to
# one thread, which then blocks reading it: measured with a C responder on the same libraries,
# requests stalled for seconds, some only after a minute of load (docs/DESIGN.md). counter-fcgi
# serves kept connections from a shared epoll set instead. This runs the shipped config (upstream
# keepalive 128 + fastcgi_keep_conn on), the same with the cache of 32 it had before (fewer idle
# connections kept than requests in flight), and one with a new connection per request (keep-conn
# off); the variants are made only in a temp dir. Each runs under wrk for SECONDS_PER_RUN (default
# 70, the length that exposed late stalls), reporting req/s, p99, max latency, errors, the new
# connections counter-fcgi accepted per request (counter_fastcgi_connections_total), and from
# nginx's access log the slowest request and how many took a second or more. A benchmark: it
# prints figures, never fails on them. FCGI_THREADS sets counter-fcgi's workers (default its own).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_PER_RUN:-70}
conns=${CONNECTIONS:-64}
key=bench-key-0123456789abcdef

BENCH_NAME=keepconn
# shellcheck source=bench/common.sh
. bench/common.sh
start_redis
start_responder ${FCGI_THREADS:+FCGI_THREADS=$FCGI_THREADS}

accepted() {  # counter-fcgi's counter_fastcgi_connections_total, through nginx's metrics server
  curl -fs "http://127.0.0.1:$1/metrics" | awk '$1 == "counter_fastcgi_connections_total" { print $2 }'
}

for variant in ${VARIANTS:-shipped cache-32 closing}; do
  port=$(free_port)
  metrics_port=$(free_port)
  PORT=$port METRICS_LISTEN="127.0.0.1:$metrics_port" API_KEY=$key FCGI_LISTEN="unix:$dir/fcgi.sock" ACCESS_LOG="$dir/access-$variant.log" \
    RATE_LIMIT_PER_KEY=1000000r/s RATE_LIMIT_PER_ADDRESS=1000000r/s nginx/render.sh "$dir/$variant" 2>/dev/null
  if [ "$variant" = closing ]; then
    # The comparison: a new connection to counter-fcgi for every request, as before keep-alive.
    edit_line "$dir/$variant/fastcgi-pass.conf" 'fastcgi_keep_conn on;' 'fastcgi_keep_conn off;'
  elif [ "$variant" = cache-32 ]; then
    edit_line "$dir/$variant/counter-api.conf" '    keepalive 128;' '    keepalive 32;'
  fi
  nginx -q -t -c "$dir/$variant/nginx.conf" -p "$dir/$variant"
  nginx -c "$dir/$variant/nginx.conf" -p "$dir/$variant" -g 'daemon off;' 2>"$dir/nginx-$variant.log" &
  nginx_pid=$!
  pids+=("$nginx_pid")
  for _ in $(seq 100); do curl -fs -o /dev/null -H "X-API-Key: $key" "http://127.0.0.1:$port/read" && break; sleep 0.05; done
  echo "keepconn: $variant, GET /read, $conns connections, ${secs}s" >&2
  before=$(accepted "$metrics_port")
  result=$(WRK_METHOD=GET wrk -t2 -c"$conns" -d"${secs}s" --timeout 10s -s bench/wrk-report.lua \
    -H "X-API-Key: $key" "http://127.0.0.1:$port/read" | sed -n 's/^RESULT //p')
  slow=$(python3 - "$dir/access-$variant.log" <<'PY'
import json, sys
times = [json.loads(line)["request_time"] for line in open(sys.argv[1]) if line.strip()]
print(f"logged={len(times)} slowest_s={max(times):.3f} over_1s={sum(t >= 1.0 for t in times)}")
PY
)
  after=$(accepted "$metrics_port")
  # Scrapes go over nginx's kept connections too: only the load's new connections are counted.
  churn=$(awk -v a="$before" -v b="$after" -v n="$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$result")" \
    'BEGIN { if (n > 0) printf "%.3f", (b - a) / n; else print "-" }')
  printf '%-9s %s new_conns_per_request=%s %s\n' "$variant" "$result" "$churn" "$slow"
  kill -TERM "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true
done
