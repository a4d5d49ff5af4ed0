#!/usr/bin/env bash
# What does the edge log cost, and does it keep up? A flood that the rate limits refuse (every
# request but the first answered 429 by nginx, the case the rate-limit alert is about), under wrk
# for SECONDS_PER_RUN (default 20) at CONNECTIONS (default 64), against two nginx configs in
# alternating order, ROUNDS times (default 2): `off` (no EDGE_LOG_ADDRESS) and `on` (one datagram
# per refusal to counter-fcgi). Prints req/s of each and their ratio, and for `on` the 429s in
# nginx's access log against what counter-fcgi counted and what the kernel reported dropped. Only the refused path
# pays: requests counter-fcgi answers send nothing. A benchmark: it prints figures, never fails on them.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_PER_RUN:-20}
conns=${CONNECTIONS:-64}
rounds=${ROUNDS:-2}
key=bench-key-0123456789abcdef

BENCH_NAME=edgelog
# shellcheck source=bench/common.sh
. bench/common.sh
start_redis
edge="127.0.0.1:$(free_port udp)"
start_responder EDGE_LOG_ADDRESS="$edge"

metrics_port=$(free_port)
scrape() {  # NAME [LABEL_FILTER]: the value of one series in counter-fcgi's metrics, 0 if absent
  curl -fs "http://127.0.0.1:$metrics_port/metrics" | awk -v name="$1" -v filter="${2:-}" \
    '$1 ~ "^"name"([{]|$)" && index($1, filter) { value = $2 } END { print value + 0 }'
}

declare -A rps
for round in $(seq "$rounds"); do
  order="off on"; [ $((round % 2)) -eq 0 ] && order="on off"
  for variant in $order; do
    port=$(free_port)
    conf="$dir/$variant-$round"
    edge_setting=""; [ "$variant" = on ] && edge_setting=$edge
    PORT=$port METRICS_LISTEN="127.0.0.1:$metrics_port" API_KEY=$key FCGI_LISTEN="unix:$dir/fcgi.sock" \
      ACCESS_LOG="$conf/access.log" EDGE_LOG_ADDRESS=$edge_setting RATE_LIMIT_PER_KEY=1r/m RATE_LIMIT_PER_KEY_BURST=1 \
      RATE_LIMIT_PER_ADDRESS=1000000r/s nginx/render.sh "$conf" 2>/dev/null
    nginx -q -t -c "$conf/nginx.conf" -p "$conf"
    nginx -c "$conf/nginx.conf" -p "$conf" -g 'daemon off;' 2>"$conf/error.log" &
    nginx_pid=$!
    pids+=("$nginx_pid")
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$metrics_port/nginx_status" && break; sleep 0.05; done
    counted_before=$(scrape counter_edge_requests_total 'status="429"')
    dropped_before=$(scrape counter_edge_log_dropped_total)
    result=$(WRK_METHOD=GET wrk -t2 -c"$conns" -d"${secs}s" --timeout 10s -s bench/wrk-report.lua \
      -H "X-API-Key: $key" "http://127.0.0.1:$port/read" | sed -n 's/^RESULT //p')
    sleep 0.5  # the last datagrams
    # From nginx's own log: wrk does not count the requests in flight when it stops.
    refused=$(grep -c '"status":429' "$conf/access.log" || true)
    counted=$(( $(scrape counter_edge_requests_total 'status="429"') - counted_before ))
    dropped=$(( $(scrape counter_edge_log_dropped_total) - dropped_before ))
    rps[$variant]="${rps[$variant]:-} $(printf '%s\n' "$result" | sed -n 's/.*rps=\([0-9]*\).*/\1/p')"
    printf 'round %d %-3s %s edge_counted=%d edge_dropped=%d nginx_syslog_errors=%d\n' "$round" "$variant" \
      "$result" "$counted" "$dropped" "$(grep -c 'syslog' "$conf/error.log" || true)"
    [ "$variant" = on ] && printf '  429s in nginx access log=%d counted+dropped=%d\n' "$refused" $((counted + dropped))
    kill -TERM "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true
    rm -f "$conf/access.log"
  done
done
python3 - "${rps[on]}" "${rps[off]}" <<'PY'
import sys
on, off = [list(map(int, a.split())) for a in sys.argv[1:3]]
ratios = [a / b for a, b in zip(on, off)]
print(f"429 flood req/s, edge log on / off, per round: {', '.join(f'{r:.2f}' for r in ratios)}")
PY
