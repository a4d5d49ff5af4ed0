#!/usr/bin/env bash
# What durability costs: POST /write through the whole stack (nginx, counter-fcgi, Redis with AOF
# on this machine's disk) with `appendfsync always` (each write on disk before it is answered)
# against `appendfsync everysec` (a killed Redis may lose about the last 2 s of answered writes,
# docs/reliability.md). Each round runs both, alternating which goes first, at 1 and at
# CONNECTIONS (default 64) connections, plain and with a fresh Idempotency-Key per request (the
# write-once script: two keys written per request). Reports req/s and p99 per case and the ratio
# always / everysec. A benchmark: it prints figures, never fails on them.
#
#   ROUNDS=3 SECONDS_PER_RUN=8 bench/durability.sh
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_PER_RUN:-8}
rounds=${ROUNDS:-3}
conns=${CONNECTIONS:-64}
key=bench-key-0123456789abcdef

BENCH_NAME=durability
# shellcheck source=bench/common.sh
. bench/common.sh

port=$(free_port)
metrics_port=$(free_port)
PORT=$port METRICS_LISTEN="127.0.0.1:$metrics_port" API_KEY=$key FCGI_LISTEN="unix:$dir/fcgi.sock" ACCESS_LOG="$dir/access.log" \
  RATE_LIMIT_PER_KEY=1000000r/s RATE_LIMIT_PER_ADDRESS=1000000r/s nginx/render.sh "$dir/nginx" 2>/dev/null
nginx -q -t -c "$dir/nginx/nginx.conf" -p "$dir/nginx"
nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx" -g 'daemon off;' 2>"$dir/nginx.log" &
pids+=($!)

# Redis with AOF in a fresh folder of its own (on the same disk as the temp dir), as the shipped
# configs run it.
start_aof_redis() {  # MODE
  rm -rf "${dir:?}/redis-$1"
  mkdir -p "$dir/redis-$1"
  start_redis --appendonly yes --appendfsync "$1" --dir "$dir/redis-$1" --logfile "$dir/redis-$1.log"
}

results="$dir/results.txt"
for round in $(seq "$rounds"); do
  modes="everysec always"
  [ $((round % 2)) -eq 0 ] && modes="always everysec"
  for mode in $modes; do
    start_aof_redis "$mode"
    start_responder
    wait_http "http://127.0.0.1:$port/read" "$key" || { echo "bench: the stack did not answer" >&2; exit 1; }
    for c in 1 "$conns"; do
      for idem in 0 1; do
        line=$(WRK_METHOD=POST WRK_IDEMPOTENCY=$idem wrk -t"$([ "$c" -eq 1 ] && echo 1 || echo 2)" -c"$c" -d"${secs}s" \
          --timeout 10s -s bench/wrk-report.lua -H "X-API-Key: $key" "http://127.0.0.1:$port/write" | sed -n 's/^RESULT //p')
        case_name="c=$c $([ "$idem" = 1 ] && echo idempotency-key || echo plain)"
        echo "round=$round mode=$mode case=\"$case_name\" $line" | tee -a "$results" >&2
      done
    done
  done
done

python3 - "$results" <<'PY'
import re, statistics, sys
rows = []
for line in open(sys.argv[1]):
    fields = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
    rows.append({k: v.strip('"') for k, v in fields.items()})
cases = sorted({r["case"] for r in rows}, key=lambda c: (int(c.split()[0][2:]), c))
print("| case | round | everysec req/s | always req/s | always / everysec | p99 everysec | p99 always | non-2xx |")
print("|---|---|---|---|---|---|---|---|")
for case in cases:
    ratios = []
    for rnd in sorted({r["round"] for r in rows}, key=int):
        by = {r["mode"]: r for r in rows if r["case"] == case and r["round"] == rnd}
        e, a = by["everysec"], by["always"]
        ratio = float(a["rps"]) / float(e["rps"])
        ratios.append(ratio)
        print(f"| {case} | {rnd} | {e['rps']} | {a['rps']} | {ratio:.2f} | {e['p99_ms']} ms | {a['p99_ms']} ms | "
              f"{int(e['non2xx']) + int(a['non2xx'])} |")
    print(f"| {case} | median | | | **{statistics.median(ratios):.2f}** | | | |")
PY
