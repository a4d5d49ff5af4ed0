#!/usr/bin/env bash
# Does nginx's `fastcgi_keep_conn on` stall counter-fcgi? docs/DESIGN.md records that with libfcgi it
# stalls requests for seconds (a kept connection pins a thread that then blocks reading it), some
# only after a minute of load. counter-fcgi closes every connection after its response, whatever
# nginx asks, so keep-conn should neither stall nor help. This measures it: the shipped config
# (no keep-conn) and an experiment config (upstream keepalive + fastcgi_keep_conn on), made only in
# a temp dir, each under wrk for SECONDS_PER_RUN (default 70, the length that exposed late stalls),
# reporting req/s, p99, max latency, errors, and from nginx's access log the slowest request and
# how many took a second or more. A benchmark: it prints figures, it never fails on them.
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

for variant in shipped keepconn; do
  port=$(free_port)
  PORT=$port METRICS_LISTEN="127.0.0.1:$(free_port)" API_KEY=$key FCGI_LISTEN="unix:$dir/fcgi.sock" ACCESS_LOG="$dir/access-$variant.log" \
    RATE_LIMIT_PER_KEY=1000000r/s RATE_LIMIT_PER_ADDRESS=1000000r/s nginx/render.sh "$dir/$variant" 2>/dev/null
  if [ "$variant" = keepconn ]; then
    # The experiment: what someone "optimising" the config would add. Never shipped.
    sed -i "s|^fastcgi_pass unix:.*|fastcgi_keep_conn on;\nfastcgi_pass counter_keep;|" "$dir/$variant/fastcgi-pass.conf"
    printf 'upstream counter_keep {\n    server unix:%s;\n    keepalive 32;\n}\n' "$dir/fcgi.sock" >> "$dir/$variant/counter-api.conf"
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
