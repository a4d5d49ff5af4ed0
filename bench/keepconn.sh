#!/usr/bin/env bash
# Kept FastCGI connections, over a long run. libfcgi's own accept loop binds a kept connection to
# one thread, which then blocks reading it: measured with a C responder on the same libraries,
# requests stalled for seconds, some only after a minute of load (docs/DESIGN.md). counter-fcgi
# serves kept connections from a shared epoll set instead. This runs the shipped config (upstream
# keepalive + fastcgi_keep_conn on) and one with a new connection per request (keep-conn off, made
# only in a temp dir), each under wrk for SECONDS_PER_RUN (default 70, the length that exposed
# late stalls), reporting req/s, p99, max latency, errors, and from nginx's access log the slowest
# request and how many took a second or more. A benchmark: it prints figures, never fails on them.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_PER_RUN:-70}
conns=${CONNECTIONS:-64}
key=bench-key-0123456789abcdef

BENCH_NAME=keepconn
# shellcheck source=bench/common.sh
. bench/common.sh
start_redis
start_responder

for variant in shipped closing; do
  port=$(free_port)
  PORT=$port METRICS_LISTEN="127.0.0.1:$(free_port)" API_KEY=$key FCGI_LISTEN="unix:$dir/fcgi.sock" ACCESS_LOG="$dir/access-$variant.log" \
    RATE_LIMIT_PER_KEY=1000000r/s RATE_LIMIT_PER_ADDRESS=1000000r/s nginx/render.sh "$dir/$variant" 2>/dev/null
  if [ "$variant" = closing ]; then
    # The comparison: a new connection to counter-fcgi for every request, as before keep-alive.
    sed -i 's|^fastcgi_keep_conn on;|fastcgi_keep_conn off;|' "$dir/$variant/fastcgi-pass.conf"
  fi
  nginx -q -t -c "$dir/$variant/nginx.conf" -p "$dir/$variant"
  nginx -c "$dir/$variant/nginx.conf" -p "$dir/$variant" -g 'daemon off;' 2>"$dir/nginx-$variant.log" &
  nginx_pid=$!
  pids+=("$nginx_pid")
  for _ in $(seq 100); do curl -fs -o /dev/null -H "X-API-Key: $key" "http://127.0.0.1:$port/read" && break; sleep 0.05; done
  echo "keepconn: $variant, GET /read, $conns connections, ${secs}s" >&2
  result=$(WRK_METHOD=GET wrk -t2 -c"$conns" -d"${secs}s" --timeout 10s -s bench/wrk-report.lua \
    -H "X-API-Key: $key" "http://127.0.0.1:$port/read" | sed -n 's/^RESULT //p')
  slow=$(python3 - "$dir/access-$variant.log" <<'PY'
import json, sys
times = [json.loads(line)["request_time"] for line in open(sys.argv[1]) if line.strip()]
print(f"logged={len(times)} slowest_s={max(times):.3f} over_1s={sum(t >= 1.0 for t in times)}")
PY
)
  printf '%-9s %s %s\n' "$variant" "$result" "$slow"
  kill -TERM "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true
done
