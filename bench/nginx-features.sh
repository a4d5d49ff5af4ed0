#!/usr/bin/env bash
# What does each of our nginx features cost per request? The same counter-fcgi and Redis behind
# variants of our nginx config, each with one feature turned off (made in a temp dir from the
# rendered config; nothing in nginx/ changes), under wrk GET /read at CONNECTIONS (default 64) for
# SECONDS_PER_RUN (default 6), ROUNDS times (default 2) in rotating order. For each variant: req/s
# and nginx's own CPU per request (its worker's user + system time from /proc around the run), and
# the difference to everything on. A benchmark: it prints figures, never fails on them.
#
# Variants: all (everything on), log-buffered (access log with buffer=64k flush=1s), no-log (no
# access log), no-auth (no auth_request subrequest: keys not checked), no-limits (no limit_req),
# no-headers (no security headers), none (no access log, no auth_request, no limits).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_PER_RUN:-6}
conns=${CONNECTIONS:-64}
rounds=${ROUNDS:-2}
key=bench-key-0123456789abcdef
variants=${VARIANTS:-all log-buffered no-log no-auth no-limits no-headers none}

BENCH_NAME="nginx-features"
# shellcheck source=bench/common.sh
. bench/common.sh
start_redis
start_responder

PORT=1 METRICS_LISTEN="127.0.0.1:$(free_port)" API_KEY=$key FCGI_LISTEN="unix:$dir/fcgi.sock" \
  ACCESS_LOG="$dir/access.log" RATE_LIMIT_PER_KEY=1000000r/s RATE_LIMIT_PER_KEY_BURST=100000 \
  RATE_LIMIT_PER_ADDRESS=1000000r/s RATE_LIMIT_PER_ADDRESS_BURST=100000 nginx/render.sh "$dir/base" 2>/dev/null

# make VARIANT PORT: a copy of the rendered config with that feature off, listening on PORT.
make_variant() {
  local conf="$dir/$1"
  rm -rf "$conf"
  cp -r "$dir/base" "$conf"
  find "$conf" -name '*.conf' -exec sed -i -e "s|$dir/base|$conf|g" -e "s|127.0.0.1:1;|127.0.0.1:$2;|; s|127.0.0.1:1 default_server|127.0.0.1:$2 default_server|" {} +
  case $1 in
    log-buffered) sed -i 's|^access_log \(.*\) counter_json;|access_log \1 counter_json buffer=64k flush=1s;|' "$conf/counter-api.conf" ;;
    no-log) sed -i 's|^access_log .* counter_json;|access_log off;|' "$conf/counter-api.conf" ;;
    no-auth) sed -i '/auth_request /d' "$conf/counter-api.conf" ;;
    no-limits) : > "$conf/limits.conf" ;;
    no-headers) : > "$conf/security-headers.conf" ;;
    none) sed -i -e 's|^access_log .* counter_json;|access_log off;|' -e '/auth_request /d' "$conf/counter-api.conf"; : > "$conf/limits.conf" ;;
    all) ;;
    *) echo "bench: unknown variant $1" >&2; exit 2 ;;
  esac
  nginx -q -t -c "$conf/nginx.conf" -p "$conf" 2>/dev/null || { echo "bench: variant $1 does not pass nginx -t" >&2; exit 1; }
}

worker_ticks() {  # MASTER_PID: user + system ticks of its (one) worker
  local worker
  worker=$(pgrep -P "$1" | head -1)
  awk '{print $14 + $15}' "/proc/$worker/stat"
}
hz=$(getconf CLK_TCK)

declare -A rps cpu
echo "bench: ${secs}s per run, $rounds round(s), $conns connections, GET /read; nginx CPU per request from /proc" >&2
read -r -a list <<<"$variants"
for round in $(seq "$rounds"); do
  # Rotate the order so no variant always runs first (on a quieter or a warmer machine).
  for ((i = 0; i < ${#list[@]}; i++)); do
    variant=${list[$(( (i + round - 1) % ${#list[@]} ))]}
    port=$(free_port)
    make_variant "$variant" "$port"
    nginx -c "$dir/$variant/nginx.conf" -p "$dir/$variant" -g 'daemon off;' 2>"$dir/$variant/error.log" &
    master=$!
    wait_http "http://127.0.0.1:$port/read" "$key" || { echo "bench: $variant did not answer" >&2; exit 1; }
    t0=$(worker_ticks "$master")
    line=$(wrk -t2 -c"$conns" -d"${secs}s" --timeout 5s -s bench/wrk-report.lua -H "X-API-Key: $key" \
      "http://127.0.0.1:$port/read" | sed -n 's/^RESULT //p')
    t1=$(worker_ticks "$master")
    kill -QUIT "$master"; wait "$master" 2>/dev/null || true
    n=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
    r=$(sed -n 's/.*rps=\([^ ]*\).*/\1/p' <<<"$line")
    us=$(awk -v a="$t0" -v b="$t1" -v n="$n" -v hz="$hz" 'BEGIN { printf "%.1f", (b - a) * 1e6 / hz / n }')
    rps[$variant]="${rps[$variant]:-} $r"; cpu[$variant]="${cpu[$variant]:-} $us"
    bad=$(sed -n 's/.*non2xx=\([0-9]*\).*/\1/p' <<<"$line")
    printf 'round %d  %-13s %8s req/s  nginx %6s us/request  non-2xx %s\n' "$round" "$variant" "$r" "$us" "$bad"
  done
done

mean() { awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.1f", s / NF }' <<<"$1"; }
base=$(mean "${cpu[all]:-0}")
echo
printf '%-13s %10s %16s %12s\n' variant "req/s" "nginx us/req" "vs all"
for variant in $variants; do
  c=$(mean "${cpu[$variant]}")
  printf '%-13s %10s %16s %12s\n' "$variant" "$(mean "${rps[$variant]}")" "$c" \
    "$(awk -v c="$c" -v b="$base" 'BEGIN { printf "%+.1f us", c - b }')"
done
