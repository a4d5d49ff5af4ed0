#!/usr/bin/env bash
# What Redis Cluster gives and costs: named-counter increments spread over NAMES (default 1000)
# counters, through the whole stack (nginx, counter-fcgi, Redis), against one Redis (the single
# mode) and against clusters of 1, 2 and 3 primaries (scripts/redis-cluster.sh, no replicas, no
# persistence: only the sharding differs). Each round runs every case, in an order that rotates,
# at CONNECTIONS (default 64) connections for SECONDS_PER_RUN (default 8) seconds; reports req/s
# and p99 per case and the ratio to the single mode. A benchmark: it prints figures, never fails
# on them. On a machine with few cores the stack itself (nginx, counter-fcgi, wrk) is the ceiling,
# not Redis: say so when reading the figures.
#
#   ROUNDS=3 SECONDS_PER_RUN=8 bench/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_PER_RUN:-8}
rounds=${ROUNDS:-3}
conns=${CONNECTIONS:-64}
names=${NAMES:-1000}
key=bench-key-0123456789abcdef

BENCH_NAME=cluster
# shellcheck source=bench/common.sh
. bench/common.sh

port=$(free_port)
PORT=$port METRICS_LISTEN="127.0.0.1:$(free_port)" API_KEY=$key FCGI_LISTEN="unix:$dir/fcgi.sock" ACCESS_LOG="$dir/access.log" \
  RATE_LIMIT_PER_KEY=1000000r/s RATE_LIMIT_PER_KEY_BURST=100000 RATE_LIMIT_PER_ADDRESS=1000000r/s \
  RATE_LIMIT_PER_ADDRESS_BURST=100000 nginx/render.sh "$dir/nginx" 2>/dev/null
nginx -q -t -c "$dir/nginx/nginx.conf" -p "$dir/nginx"
nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx" -g 'daemon off;' 2>"$dir/nginx.log" &
pids+=($!)

# A cluster of N primaries on a free block of ports (each also needs port + 10000 for its bus).
cluster_env=()
cluster_dir=""
start_cluster() {  # PRIMARIES
  stop_cluster
  local base
  base=$(python3 -c '
import socket, random
for _ in range(500):
    b = random.randrange(12000, 21000); ok = True
    for p in [*range(b, b + 4), *range(b + 10000, b + 10004)]:
        s = socket.socket()
        try: s.bind(("127.0.0.1", p))
        except OSError: ok = False
        finally: s.close()
    if ok: print(b); break')
  cluster_dir="$dir/cluster-$1"
  export REDIS_CLUSTER_DIR=$cluster_dir REDIS_CLUSTER_PORT=$base REDIS_CLUSTER_PRIMARIES=$1 REDIS_CLUSTER_REPLICAS=0
  scripts/redis-cluster.sh start 2>>"$dir/cluster.log"
  # shellcheck disable=SC2207 # one NAME=VALUE a line
  cluster_env=($(scripts/redis-cluster.sh env | sed 's/^export //'))
}
stop_cluster() {
  if [ -n "$cluster_dir" ]; then scripts/redis-cluster.sh stop 2>/dev/null || true; rm -rf "$cluster_dir"; cluster_dir=""; fi
}
trap 'stop_cluster; cleanup' EXIT

run_case() {  # CASE
  case $1 in
    single) stop_cluster; start_redis; start_responder ;;
    cluster-*) start_cluster "${1#cluster-}"; start_responder REDIS_HOST= "${cluster_env[@]}" ;;
  esac
  wait_http "http://127.0.0.1:$port/livez" "$key" || { echo "bench: the stack did not answer" >&2; exit 1; }
  WRK_METHOD=POST WRK_PATH_TEMPLATE="/v1/counters/bench:%d/increment" WRK_NAMES=$names \
    wrk -t2 -c"$conns" -d"${secs}s" --timeout 10s -s bench/wrk-report.lua -H "X-API-Key: $key" "http://127.0.0.1:$port/" \
    | sed -n 's/^RESULT //p' >"$dir/result.txt"
}

results="$dir/results.txt"
cases=(single cluster-1 cluster-2 cluster-3)
for round in $(seq "$rounds"); do
  for i in "${!cases[@]}"; do
    c=${cases[$(((i + round - 1) % ${#cases[@]}))]}
    # Not in $(...): the servers it starts would hold the substitution's pipe open.
    run_case "$c"
    echo "round=$round case=$c $(cat "$dir/result.txt")" | tee -a "$results" >&2
  done
done
stop_cluster

python3 - "$results" <<'PY'
import re, statistics, sys
rows = [dict(re.findall(r'(\w+)=(\S+)', line)) for line in open(sys.argv[1])]
print("| case | req/s per round | median req/s | against one Redis | p99 (median) | non-2xx |")
print("|---|---|---|---|---|---|")
single = statistics.median(float(r["rps"]) for r in rows if r["case"] == "single")
for case in ["single", "cluster-1", "cluster-2", "cluster-3"]:
    mine = [r for r in rows if r["case"] == case]
    rps = [float(r["rps"]) for r in mine]
    print(f"| {case} | {', '.join(f'{x:.0f}' for x in rps)} | {statistics.median(rps):.0f} | "
          f"{statistics.median(rps) / single:.2f} | {statistics.median(float(r['p99_ms']) for r in mine):.2f} ms | "
          f"{sum(int(r['non2xx']) for r in mine)} |")
PY
