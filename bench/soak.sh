#!/usr/bin/env bash
# Soak: the whole stack (nginx -> counter-fcgi -> Redis) under steady load for SOAK_SECONDS
# (default 300) at 64 connections, half reads and half writes, sampling counter-fcgi's resident
# memory every 10 s. Prints the samples, the request and error counts, and start/end/max RSS.
# Bounded by its duration; a benchmark script: it prints figures and never fails on them.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SOAK_SECONDS:-300}
key=soak-key-0123456789abcdef
BENCH_NAME=soak
# shellcheck source=bench/common.sh
. bench/common.sh
start_redis

start_responder
port=$(free_port)
PORT=$port METRICS_LISTEN="127.0.0.1:$(free_port)" API_KEY=$key FCGI_LISTEN="unix:$dir/fcgi.sock" ACCESS_LOG="$dir/access.log" \
  RATE_LIMIT_PER_KEY=1000000r/s RATE_LIMIT_PER_ADDRESS=1000000r/s nginx/render.sh "$dir/nginx" 2>/dev/null
nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx" -g 'daemon off;' 2>"$dir/nginx.log" &
pids+=($!)
wait_http "http://127.0.0.1:$port/read" "$key" || { echo "soak: stack did not start" >&2; exit 1; }

rss() { awk '/VmRSS/ {print $2}' "/proc/$fcgi_pid/status"; }
start_rss=$(rss)
echo "soak: ${secs}s, 64 connections (32 GET /read + 32 POST /write); counter-fcgi RSS at start ${start_rss} KiB" >&2
WRK_METHOD=GET wrk -t1 -c32 -d"${secs}s" --timeout 5s -s bench/wrk-report.lua -H "X-API-Key: $key" \
  "http://127.0.0.1:$port/read" >"$dir/read.out" &
reader=$!
WRK_METHOD=POST wrk -t1 -c32 -d"${secs}s" --timeout 5s -s bench/wrk-report.lua -H "X-API-Key: $key" \
  "http://127.0.0.1:$port/write" >"$dir/write.out" &
writer=$!
pids+=("$reader" "$writer")
max_rss=$start_rss
samples=""
while kill -0 "$reader" 2>/dev/null || kill -0 "$writer" 2>/dev/null; do
  sleep 10
  now=$(rss)
  samples="$samples $now"
  [ "$now" -gt "$max_rss" ] && max_rss=$now
done
wait "$reader" "$writer" 2>/dev/null || true
end_rss=$(rss)
echo "soak: RSS samples (KiB):$samples"
echo "soak: GET /read   $(sed -n 's/^RESULT //p' "$dir/read.out")"
echo "soak: POST /write $(sed -n 's/^RESULT //p' "$dir/write.out")"
statuses=$(python3 -c '
import collections, json, sys
c = collections.Counter(json.loads(l)["status"] for l in open(sys.argv[1]) if l.strip())
print(" ".join(f"{k}:{v}" for k, v in sorted(c.items())))' "$dir/access.log")
echo "soak: statuses in nginx access log: $statuses"
echo "soak: counter = $(redis-cli -p "$rport" get api_counter)"
echo "soak: counter-fcgi RSS start ${start_rss} KiB, end ${end_rss} KiB, max ${max_rss} KiB"
