#!/usr/bin/env bash
# Side-by-side benchmark on 127.0.0.1, every target driven by wrk in turn so all see the same
# machine noise; prints requests/s, p50/p99, error counts, and ours as a ratio of the reference.
#   stack:     our whole stack (nginx config from nginx/, counter-fcgi, Redis) versus a reference
#              stack (`$ANCHORS/reference-stack.sh c PORT`: a minimal nginx and a C responder on the
#              same libfcgi + hiredis, no keys, no limits, no log, no error bodies);
#   responder: the same nginx (ours, rendered from nginx/) and the same Redis in front of
#              counter-fcgi and of the reference's C responder (`$ANCHORS/c-reference/responder.c`,
#              compiled here), which isolates what the Swift responder costs (the C one is sent a
#              new connection per request: libfcgi's own accept loop stalls on kept ones);
#   flask:     with ANCHORS, also our stack versus the original's Flask + gunicorn stack behind
#              nginx (`$ANCHORS/reference-stack.sh flask PORT`, which installs Flask from PyPI).
# The reference is not part of this repository: point ANCHORS at a folder that has it. Without
# ANCHORS, ours runs alone and the tables say so. A benchmark, not a test: it never fails on a
# figure. Every run is bounded by SECONDS_PER_RUN.
#
#   bench/run.sh                 GET /read and POST /write at 1 and 64 connections
#   THREAD_SWEEP="4 8 16 32" bench/run.sh   also GET /read at 64 connections per thread count
# Env: SECONDS_PER_RUN [10], ROUNDS [1], FCGI_THREADS [counter-fcgi's default],
#      ANCHORS [unset: ours only], FLASK [1; 0 leaves the Flask stack out], THREAD_SWEEP [unset].
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECONDS_PER_RUN:-10}
rounds=${ROUNDS:-1}
anchors=${ANCHORS:-}
ref_key=bench-key-123                 # the reference stack's fixed key
our_key=bench-key-0123456789abcdef    # ours needs at least 16 characters

# shellcheck source=bench/common.sh
. bench/common.sh
start_redis

start_responder ${FCGI_THREADS:+FCGI_THREADS=$FCGI_THREADS}

ours_port=$(free_port)
PORT=$ours_port METRICS_LISTEN="127.0.0.1:$(free_port)" API_KEY=$our_key FCGI_LISTEN="unix:$dir/fcgi.sock" ACCESS_LOG="$dir/access.log" \
  RATE_LIMIT_PER_KEY=1000000r/s RATE_LIMIT_PER_ADDRESS=1000000r/s nginx/render.sh "$dir/nginx" 2>>"$dir/render.log" || { cat "$dir/render.log" >&2; exit 1; }
nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx" -g 'daemon off;' 2>>"$dir/nginx.log" &
ours_nginx_pid=$!
pids+=($!)
wait_http "http://127.0.0.1:$ours_port/read" "$our_key" || { echo "bench: our stack did not start" >&2; exit 1; }

# The C responder behind our own nginx config, on the same Redis.
cfront_port=$(free_port)
have_c=0
if [ -z "$anchors" ]; then
  echo "bench: ANCHORS is not set: no reference to compare with; figures for ours only" >&2
elif [ -f "$anchors/c-reference/responder.c" ]; then
  # shellcheck disable=SC2046 # pkg-config's flags are meant to split into words
  gcc -O2 -pthread "$anchors/c-reference/responder.c" -o "$dir/c-responder" $(pkg-config --cflags --libs hiredis) -lfcgi
  "$dir/c-responder" "$dir/c.sock" 16 "127.0.0.1:$rport" 2>>"$dir/c-responder.log" &
  c_pid=$!
  pids+=($!)
  for _ in $(seq 100); do [ -S "$dir/c.sock" ] && break; sleep 0.05; done
  PORT=$cfront_port METRICS_LISTEN="127.0.0.1:$(free_port)" API_KEY=$our_key FCGI_LISTEN="unix:$dir/c.sock" ACCESS_LOG="$dir/access-c.log" \
    RATE_LIMIT_PER_KEY=1000000r/s RATE_LIMIT_PER_ADDRESS=1000000r/s nginx/render.sh "$dir/nginx-c" 2>>"$dir/render.log"
  # libfcgi's own accept loop binds a kept connection to one thread, which stalls requests for
  # seconds (docs/DESIGN.md): the C responder gets a new connection per request, as it was built for.
  edit_line "$dir/nginx-c/fastcgi-pass.conf" 'fastcgi_keep_conn on;' 'fastcgi_keep_conn off;'
  nginx -c "$dir/nginx-c/nginx.conf" -p "$dir/nginx-c" -g 'daemon off;' 2>>"$dir/nginx-c.log" &
  pids+=($!)
  wait_http "http://127.0.0.1:$cfront_port/read" "$our_key" && have_c=1
fi

ref_port=$(free_port)
if [ -n "$anchors" ] && [ -f "$anchors/reference-stack.sh" ]; then
  bash "$anchors/reference-stack.sh" c "$ref_port" >"$dir/reference.log" 2>&1 &
  ref_pid=$!
  pids+=($!)
  wait_http "http://127.0.0.1:$ref_port/read" "$ref_key" || { echo "bench: the reference stack did not start (see $dir/reference.log)" >&2; exit 1; }
  have_ref=1
else
  [ -z "$anchors" ] || echo "bench: no reference stack in $anchors; ours only" >&2
  have_ref=0
fi

# The original's Flask + gunicorn stack behind nginx (`reference-stack.sh flask`), at 64 connections
# only; it installs Flask in a venv from PyPI. FLASK=0 leaves it out.
flask_port=$(free_port)
have_flask=0
if [ "$have_ref" = 1 ] && [ "${FLASK:-1}" != 0 ]; then
  bash "$anchors/reference-stack.sh" flask "$flask_port" >"$dir/flask.log" 2>&1 &
  flask_pid=$!
  pids+=($!)
  for _ in $(seq 600); do
    curl -fs -o /dev/null "http://127.0.0.1:$flask_port/read" -H "X-API-Key: $ref_key" && { have_flask=1; break; }
    kill -0 "$flask_pid" 2>/dev/null || break
    sleep 0.2
  done
  [ "$have_flask" = 1 ] || echo "bench: the Flask stack did not start (see $dir/flask.log); left out" >&2
fi

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$fcgi_pid/status"; }
# CPU time sampled around each run (cpu_ticks, bench/common.sh) gives CPU per request, which the
# shared machine's noise disturbs far less than req/s: the responder's alone in the responder
# table, the whole stack's (nginx, responder, Redis; not wrk) in the stack table.
hz=$(getconf CLK_TCK)
cpu_us_per_request() {  # ticks_before ticks_after requests
  awk -v a="$1" -v b="$2" -v n="$3" -v hz="$hz" 'BEGIN { if (n > 0) printf "%.1f", (b - a) * 1e6 / hz / n; else print "-" }'
}

# run PORT METHOD PATH CONNS -> RESULT line fields
run() {
  local key=$our_key
  if [ "$1" = "$ref_port" ] || [ "$1" = "$flask_port" ]; then key=$ref_key; fi
  local threads=2
  [ "$4" -lt 2 ] && threads=1
  WRK_METHOD=$2 wrk -t"$threads" -c"$4" -d"${secs}s" --timeout 5s -s bench/wrk-report.lua \
    -H "X-API-Key: $key" "http://127.0.0.1:$1$3" | sed -n 's/^RESULT //p'
}
field() { sed -n "s/.*$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }

echo "bench: ${secs}s per run, $rounds round(s); $(nproc) cores; counter-fcgi threads ${FCGI_THREADS:-default}" >&2
echo "bench: counter-fcgi idle RSS $(rss_kb) KiB" >&2

# table TITLE OTHER_PORT AVAILABLE "OURS_PIDS" "OTHER_PIDS": cpu_us is the CPU per request of
# those processes and their descendants (each side's own; "-" without the reference).
table() {
  echo
  echo "== $1"
  local available=$3 our_pids other_pids
  read -r -a our_pids <<<"$4"
  read -r -a other_pids <<<"$5"
  [ "$available" = 1 ] || echo "(no reference: ours alone)"
  printf '%-12s %5s | %9s %7s %7s %5s %6s | %9s %7s %7s %5s %6s | %6s\n' endpoint conns \
    ours_rps p50ms p99ms errs cpu_us ref_rps p50ms p99ms errs cpu_us ratio
  for conns in ${table_conns:-1 64}; do
    for spec in "GET /read" "POST /write"; do
      read -r method path <<<"$spec"
      for ((r=1; r<=rounds; r++)); do
        # Alternate which side goes first, so neither always runs on a warmer or quieter machine.
        local first=ours
        (( r % 2 == 0 )) && first=ref
        local ours ref ours_cpu="-" ref_cpu="-" t0 t1
        for side in $first $([ "$first" = ours ] && echo ref || echo ours); do
          if [ "$side" = ours ]; then
            t0=$(cpu_ticks "${our_pids[@]}"); ours=$(run "$ours_port" "$method" "$path" "$conns"); t1=$(cpu_ticks "${our_pids[@]}")
            ours_cpu=$(cpu_us_per_request "$t0" "$t1" "$(field requests "$ours")")
          elif [ "$available" != 1 ]; then
            ref="rps=- p50_ms=- p99_ms=- non2xx=0 socket_errors=0"
          else
            t0=$(cpu_ticks "${other_pids[@]}"); ref=$(run "$2" "$method" "$path" "$conns"); t1=$(cpu_ticks "${other_pids[@]}")
            ref_cpu=$(cpu_us_per_request "$t0" "$t1" "$(field requests "$ref")")
          fi
        done
        local o c ratio
        o=$(field rps "$ours"); c=$(field rps "$ref")
        ratio=$(awk -v o="$o" -v c="$c" 'BEGIN { if (c > 0) printf "%.2f", o / c; else print "-" }')
        printf '%-12s %5s | %9s %7s %7s %5s %6s | %9s %7s %7s %5s %6s | %6s\n' "$spec" "$conns" \
          "$o" "$(field p50_ms "$ours")" "$(field p99_ms "$ours")" "$(( $(field non2xx "$ours") + $(field socket_errors "$ours") ))" "$ours_cpu" \
          "$c" "$(field p50_ms "$ref")" "$(field p99_ms "$ref")" "$(( $(field non2xx "$ref") + $(field socket_errors "$ref") ))" "$ref_cpu" "$ratio"
      done
    done
  done
}
table "responder: same nginx (ours), same Redis; counter-fcgi vs C responder (cpu_us: responder CPU per request)" \
  "$cfront_port" "$have_c" "$fcgi_pid" "${c_pid:-}"
table "stack: our stack vs the reference stack (reference-stack.sh c; cpu_us: nginx + responder + Redis CPU per request)" \
  "$ref_port" "$have_ref" "$ours_nginx_pid $fcgi_pid $redis_pid" "${ref_pid:-}"
if [ "$have_flask" = 1 ]; then
  table_conns=64 table "flask: our stack vs the original's Flask + gunicorn stack behind nginx (cpu_us: its nginx + gunicorn + Redis)" \
    "$flask_port" 1 "$ours_nginx_pid $fcgi_pid $redis_pid" "$flask_pid"
fi
echo
echo "bench: counter-fcgi RSS after load $(rss_kb) KiB" >&2

if [ -n "${THREAD_SWEEP:-}" ]; then
  echo
  echo "== threads: counter-fcgi GET /read at 64 connections, ratio to the C responder (16 threads)"
  printf '%-8s | %9s %7s %7s %6s | %6s\n' threads rps p50ms p99ms errs vs_c
  base=""
  [ "$have_c" = 1 ] && base=$(field rps "$(run "$cfront_port" GET /read 64)")
  for n in $THREAD_SWEEP; do
    start_responder FCGI_THREADS="$n"
    wait_http "http://127.0.0.1:$ours_port/read" "$our_key"
    res=$(run "$ours_port" GET /read 64)
    o=$(field rps "$res")
    ratio=$(awk -v o="$o" -v c="${base:-0}" 'BEGIN { if (c > 0) printf "%.2f", o / c; else print "-" }')
    printf '%-8s | %9s %7s %7s %6s | %6s\n' "$n" "$o" "$(field p50_ms "$res")" "$(field p99_ms "$res")" \
      "$(( $(field non2xx "$res") + $(field socket_errors "$res") ))" "$ratio"
  done
  echo "(C responder behind the same nginx, GET /read at 64 connections: ${base:-n/a} req/s)"
fi
