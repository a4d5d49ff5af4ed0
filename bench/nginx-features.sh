#!/usr/bin/env bash
# What does each of our nginx features cost per request? The same counter-fcgi and Redis behind
# variants of our nginx config, each with one feature turned off (made in a temp dir from the
# rendered config; nothing in nginx/ changes), under wrk GET /read at CONNECTIONS (default 64) for
# SECONDS_PER_RUN (default 6), ROUNDS times (default 2) in rotating order. For each variant: req/s
# and nginx's own CPU per request (its master's and worker's user + system time from /proc around
# the run), and the difference to everything on. A benchmark: it prints figures, never fails on them.
#
# MEASURE=instructions counts instead the instructions nginx runs per request, under valgrind's
# callgrind: the same REQUESTS (default 2000) GET /read on one keep-alive connection for every
# variant, counted after a warm-up. User-space instructions only (the kernel's share of each
# request is not in them), but the same on every run whatever the machine's noise: the way to see
# a feature's cost of a few microseconds that the CPU-time figures drown. MEASURE=syscalls counts
# the system calls nginx makes per request (strace -c, natively), the kernel's share.
#
# Variants: all (everything on, as shipped), log-unbuffered (one write(2) per access log line),
# no-log (no access log), no-jit (regexes interpreted), no-auth (keys not checked), no-limits (no
# limit_req), no-headers (no security headers), no-request-id (a constant instead of the request
# id), stock-params (nginx's stock fastcgi_params sent as well as ours), none (no access log, no
# key check, no limits), bare (a minimal nginx of our own: one key by a map, FastCGI with the
# stock params; the floor to compare with).
set -euo pipefail
cd "$(dirname "$0")/.."
measure=${MEASURE:-cpu}
requests=${REQUESTS:-2000}
secs=${SECONDS_PER_RUN:-6}
conns=${CONNECTIONS:-64}
rounds=${ROUNDS:-2}
key=bench-key-0123456789abcdef
variants=${VARIANTS:-all log-unbuffered no-log no-jit no-auth no-limits no-headers no-request-id stock-params none bare}

BENCH_NAME="nginx-features"
# shellcheck source=bench/common.sh
. bench/common.sh
start_redis
start_responder

PORT=1 METRICS_LISTEN="127.0.0.1:$(free_port)" API_KEY=$key FCGI_LISTEN="unix:$dir/fcgi.sock" \
  ACCESS_LOG="$dir/access.log" RATE_LIMIT_PER_KEY=1000000r/s RATE_LIMIT_PER_KEY_BURST=100000 \
  RATE_LIMIT_PER_ADDRESS=1000000r/s RATE_LIMIT_PER_ADDRESS_BURST=100000 nginx/render.sh "$dir/base" 2>/dev/null

# write_bare CONF PORT: the floor, an nginx that does what a minimal front must (one key compared
# by a map, FastCGI with the stock params) and nothing else: no log, no limits, no headers.
write_bare() {
  local user=""
  [ "$(id -u)" -ne 0 ] || user="user nobody nogroup;"
  cat >"$1/nginx.conf" <<CONF
$user
worker_processes 1;
pid $1/bare.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1/state/client_body; fastcgi_temp_path $1/state/fastcgi;
  proxy_temp_path $1/state/proxy; uwsgi_temp_path $1/state/uwsgi; scgi_temp_path $1/state/scgi;
  map \$http_x_api_key \$key_ok { default 0; "$key" 1; }
  server {
    listen 127.0.0.1:$2;
    if (\$key_ok = 0) { return 401; }
    location / { include /etc/nginx/fastcgi_params; fastcgi_pass unix:$dir/fcgi.sock; }
  }
}
CONF
}

# make VARIANT PORT: a copy of the rendered config with that feature off, listening on PORT.
make_variant() {
  local conf="$dir/$1"
  rm -rf "$conf"
  cp -r "$dir/base" "$conf"
  find "$conf" -name '*.conf' -exec sed -i -e "s|$dir/base|$conf|g" -e "s|127.0.0.1:1;|127.0.0.1:$2;|; s|127.0.0.1:1 default_server|127.0.0.1:$2 default_server|" {} +
  case $1 in
    log-unbuffered) sed -i 's|^access_log \(.*\) counter_json buffer=.*;|access_log \1 counter_json;|' "$conf/counter-api.conf" ;;
    no-log) sed -i 's|^access_log .* counter_json.*;|access_log off;|' "$conf/counter-api.conf" ;;
    no-jit) sed -i '/^pcre_jit on;/d' "$conf/nginx.conf" ;;
    no-auth) sed -i '/rewrite ^ \/_refused/d' "$conf/counter-api.conf" ;;
    no-limits) : > "$conf/limits.conf" ;;
    no-headers) : > "$conf/security-headers.conf" ;;
    stock-params) sed -i '1i include /etc/nginx/fastcgi_params;' "$conf/fastcgi-pass.conf" ;;
    no-request-id) sed -i "s|^\\(    [^ ]*\\) *\"[0-9a-f]\\{16\\}-\\\$pid-.*\";|\\1 \"-\";|" "$conf/counter-api.conf" ;;
    none) sed -i -e 's|^access_log .* counter_json.*;|access_log off;|' -e '/rewrite ^ \/_refused/d' "$conf/counter-api.conf"; : > "$conf/limits.conf" ;;
    bare) write_bare "$conf" "$2" ;;
    all) ;;
    *) echo "bench: unknown variant $1" >&2; exit 2 ;;
  esac
  nginx -q -t -c "$conf/nginx.conf" -p "$conf" 2>/dev/null || { echo "bench: variant $1 does not pass nginx -t" >&2; exit 1; }
}

hz=$(getconf CLK_TCK)

read -r -a list <<<"$variants"

# instructions VARIANT PORT: nginx (one process) under callgrind; its instructions per request.
instructions() {
  local out="$dir/$1/callgrind.out" vg
  valgrind --tool=callgrind --callgrind-out-file="$out" nginx -c "$dir/$1/nginx.conf" -p "$dir/$1" \
    -g 'daemon off; master_process off;' 2>"$dir/$1/valgrind.log" &
  vg=$!
  for _ in $(seq 300); do curl -fs -o /dev/null -H "X-API-Key: $key" "http://127.0.0.1:$2/read" && break; sleep 0.1; done
  curl -fs -o /dev/null -H "X-API-Key: $key" "http://127.0.0.1:$2/read?warm-up=[1-200]"
  callgrind_control -z "$vg" >/dev/null 2>&1
  curl -fs -o /dev/null -H "X-API-Key: $key" "http://127.0.0.1:$2/read?n=[1-$requests]" || { echo "bench: $1 failed a request" >&2; exit 1; }
  callgrind_control -d "$vg" >/dev/null 2>&1
  [ -z "${KEEP_PROFILE:-}" ] || cp "$out".1 "$KEEP_PROFILE.$1"
  kill "$vg"; wait "$vg" 2>/dev/null || true
  # The dump made on request holds the counts since the zeroing: the requests alone.
  awk -v n="$requests" '/^summary:/ { printf "%.0f", $2 / n; exit }' "$out".1
}

# syscalls VARIANT PORT: nginx (one process) natively under strace -c; its system calls per request.
syscalls() {
  local out="$dir/$1/strace.out" pid tracer
  nginx -c "$dir/$1/nginx.conf" -p "$dir/$1" -g 'daemon off; master_process off;' 2>"$dir/$1/error.log" &
  pid=$!
  for _ in $(seq 300); do curl -fs -o /dev/null -H "X-API-Key: $key" "http://127.0.0.1:$2/read" && break; sleep 0.1; done
  curl -fs -o /dev/null -H "X-API-Key: $key" "http://127.0.0.1:$2/read?warm-up=[1-200]"
  strace -c -f -p "$pid" -o "$out" 2>/dev/null &
  tracer=$!
  sleep 1
  curl -fs -o /dev/null -H "X-API-Key: $key" "http://127.0.0.1:$2/read?n=[1-$requests]" || { echo "bench: $1 failed a request" >&2; exit 1; }
  kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
  [ -z "${KEEP_PROFILE:-}" ] || cp "$out" "$KEEP_PROFILE.$1.strace"
  awk -v n="$requests" '$NF == "total" { printf "%.2f", $4 / n }' "$out"
}

# count_each MEASURER UNIT FORMAT: runs MEASURER VARIANT PORT on every variant, then prints each
# figure and its difference to everything on (FORMAT for the difference, e.g. %+.0f).
count_each() {
  declare -A count
  for variant in "${list[@]}"; do
    port=$(free_port)
    make_variant "$variant" "$port"
    count[$variant]=$("$1" "$variant" "$port")
    printf '%-13s %9s %s/request\n' "$variant" "${count[$variant]}" "$2" >&2
  done
  echo
  printf '%-13s %14s %12s\n' variant "$2/request" "vs all"
  for variant in "${list[@]}"; do
    printf '%-13s %14s %12s\n' "$variant" "${count[$variant]}" \
      "$(awk -v c="${count[$variant]}" -v b="${count[all]:-0}" -v f="$3" 'BEGIN { if (b > 0) printf f, c - b; else print "-" }')"
  done
}

if [ "$measure" = syscalls ]; then
  command -v strace >/dev/null || { echo "bench: MEASURE=syscalls needs strace (apt-get install strace)" >&2; exit 1; }
  echo "bench: nginx system calls per request under strace, $requests GET /read on one connection" >&2
  count_each syscalls calls %+.2f
  exit 0
fi

if [ "$measure" = instructions ]; then
  command -v valgrind >/dev/null || { echo "bench: MEASURE=instructions needs valgrind (apt-get install valgrind)" >&2; exit 1; }
  echo "bench: nginx instructions per request under callgrind, $requests GET /read on one connection" >&2
  count_each instructions instr %+.0f
  exit 0
fi

declare -A rps cpu
echo "bench: ${secs}s per run, $rounds round(s), $conns connections, GET /read; nginx CPU per request from /proc" >&2
for round in $(seq "$rounds"); do
  # Rotate the order so no variant always runs first (on a quieter or a warmer machine).
  for ((i = 0; i < ${#list[@]}; i++)); do
    variant=${list[$(( (i + round - 1) % ${#list[@]} ))]}
    port=$(free_port)
    make_variant "$variant" "$port"
    nginx -c "$dir/$variant/nginx.conf" -p "$dir/$variant" -g 'daemon off;' 2>"$dir/$variant/error.log" &
    master=$!
    wait_http "http://127.0.0.1:$port/read" "$key" || { echo "bench: $variant did not answer" >&2; exit 1; }
    t0=$(cpu_ticks "$master")
    line=$(wrk -t2 -c"$conns" -d"${secs}s" --timeout 5s -s bench/wrk-report.lua -H "X-API-Key: $key" \
      "http://127.0.0.1:$port/read" | sed -n 's/^RESULT //p')
    t1=$(cpu_ticks "$master")
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
