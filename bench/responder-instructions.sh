#!/usr/bin/env bash
# What does counter-fcgi do per request, next to the reference's C responder on the same libfcgi
# and hiredis? Both behind the same nginx (ours, rendered from nginx/, run natively) and the same
# Redis, each sent the same REQUESTS (default 2000) on one keep-alive connection, after a warm-up:
#   - instructions per request, under valgrind's callgrind (user space only, but the same on every
#     run whatever the machine's noise; with KEEP=DIR, each profile and its top functions go to DIR);
#   - system calls per request, by strace -c -f (the kernel's share: reads, writes, polls).
# ENDPOINTS (default "GET /read" "POST /write"). CLUSTER_PRIMARIES=N: against a Redis Cluster of N
# primaries (scripts/redis-cluster.sh, no replicas) instead of one Redis. Needs valgrind and strace; the C responder comes
# from ANCHORS (as in bench/run.sh); without it, counter-fcgi alone. A benchmark: it prints figures,
# never fails on them.
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${REQUESTS:-2000}
anchors=${ANCHORS:-}
key=bench-key-0123456789abcdef
for tool in valgrind strace callgrind_control; do
  command -v "$tool" >/dev/null || { echo "bench: needs $tool (apt-get install valgrind strace)" >&2; exit 1; }
done

BENCH_NAME="responder-instructions"
# shellcheck source=bench/common.sh
. bench/common.sh
redis_env=()
cluster_dir=""
if [ -n "${CLUSTER_PRIMARIES:-}" ]; then
  cluster_dir="$dir/cluster"
  export REDIS_CLUSTER_DIR=$cluster_dir REDIS_CLUSTER_PORT=${CLUSTER_PORT:-17400} REDIS_CLUSTER_PRIMARIES=$CLUSTER_PRIMARIES REDIS_CLUSTER_REPLICAS=0
  scripts/redis-cluster.sh start
  trap 'scripts/redis-cluster.sh stop 2>/dev/null || true; cleanup' EXIT
  # shellcheck disable=SC2207 # one NAME=VALUE a line
  redis_env=(REDIS_HOST= $(scripts/redis-cluster.sh env | sed 's/^export //'))
  rport=6379  # unused in cluster mode, but REDIS_PORT must still be a valid port
else
  start_redis
fi

# valgrind 3.19 gives up on the Swift binary's DWARF 5 debug information: count a copy without it
# (the symbol table, which names the functions, stays).
objcopy --strip-debug "$bin" "$dir/counter-fcgi"
bin="$dir/counter-fcgi"

c_binary=""
if [ -n "$anchors" ] && [ -f "$anchors/c-reference/responder.c" ]; then
  # shellcheck disable=SC2046 # pkg-config's flags are meant to split into words
  gcc -O2 -g -pthread "$anchors/c-reference/responder.c" -o "$dir/c-responder" $(pkg-config --cflags --libs hiredis) -lfcgi
  c_binary="$dir/c-responder"
else
  echo "bench: ANCHORS is not set (or has no c-reference): counter-fcgi alone" >&2
fi

# front NAME SOCKET: our nginx in front of SOCKET, on a free port (sets port).
front() {
  port=$(free_port)
  PORT=$port METRICS_LISTEN="127.0.0.1:$(free_port)" API_KEY=$key FCGI_LISTEN="unix:$2" ACCESS_LOG="$dir/access-$1.log" \
    RATE_LIMIT_PER_KEY=1000000r/s RATE_LIMIT_PER_KEY_BURST=100000 RATE_LIMIT_PER_ADDRESS=1000000r/s \
    RATE_LIMIT_PER_ADDRESS_BURST=100000 nginx/render.sh "$dir/nginx-$1" 2>>"$dir/render.log"
  nginx -c "$dir/nginx-$1/nginx.conf" -p "$dir/nginx-$1" -g 'daemon off;' 2>>"$dir/nginx-$1.log" &
  pids+=($!)
}

# start NAME WRAPPER...: the responder NAME on $dir/NAME.sock under WRAPPER (valgrind, or nothing).
start() {
  local name=$1
  shift
  local sock="$dir/$name.sock"
  rm -f "$sock"
  if [ "$name" = counter-fcgi ]; then
    env REDIS_HOST=127.0.0.1 REDIS_PORT="$rport" "${redis_env[@]}" FCGI_LISTEN="unix:$sock" "$@" "$bin" 2>>"$dir/$name.log" &
  else
    "$@" "$c_binary" "$sock" 16 "127.0.0.1:$rport" 2>>"$dir/$name.log" &
  fi
  responder=$!
  for _ in $(seq 600); do [ -S "$sock" ] && break; sleep 0.05; done
  # counter-fcgi makes its socket 0660 for its group; the nginx workers (nobody:nogroup when root)
  # reach it through the setgid folder. The C responder's socket gets the same group and mode.
  [ "$(id -u)" -ne 0 ] || { chgrp nogroup "$sock"; chmod 0660 "$sock"; }
}

load() {  # PORT METHOD PATH COUNT
  # COUNT requests on one connection: curl's URL glob, in a fragment, which curl does not send, so
  # every request is exactly PATH (a query would be parsed by the named routes, not by the others).
  curl -fs -o /dev/null -X "$2" -H "X-API-Key: $key" "http://127.0.0.1:$1$3#[1-$4]"
}

declare -A instr calls
names=(counter-fcgi)
[ -n "$c_binary" ] && names+=(c-reference)
read -r -a endpoints <<<"${ENDPOINTS:-GET:/read POST:/write}"
echo "bench: $requests requests per endpoint on one connection, through our nginx" >&2
for name in "${names[@]}"; do
  front "$name" "$dir/$name.sock"
  for spec in "${endpoints[@]}"; do
    method=${spec%%:*} path=${spec#*:}
    # Instructions: under callgrind, counted from the zeroing after the warm-up to the dump.
    start "$name" valgrind --tool=callgrind --callgrind-out-file="$dir/$name.callgrind" --trace-children=no
    for _ in $(seq 300); do load "$port" GET /read 1 2>/dev/null && break; sleep 0.1; done
    load "$port" "$method" "$path" 200
    callgrind_control -z "$responder" >/dev/null 2>&1
    load "$port" "$method" "$path" "$requests" || { echo "bench: $name failed a request" >&2; exit 1; }
    callgrind_control -d "$responder" >/dev/null 2>&1
    kill "$responder"; wait "$responder" 2>/dev/null || true
    instr[$name $spec]=$(awk -v n="$requests" '/^summary:/ { s += $2 } END { printf "%.0f", s / n }' "$dir/$name.callgrind".*)
    # Kept files are named by endpoint (POST-v1-counters-bench-increment): two endpoints of
    # one method must not overwrite each other's. The raw profile is kept too, for
    # `callgrind_annotate --inclusive=yes` (which function's callees cost what).
    slug=$(printf '%s%s' "$method" "$path" | tr -c 'A-Za-z0-9._\n' '-')
    if [ -n "${KEEP:-}" ]; then
      mkdir -p "$KEEP"
      bench/callgrind-top.py "$requests" "$dir/$name.callgrind".* --top 40 >"$KEEP/$name-$slug.top"
      for part in "$dir/$name.callgrind".*; do cp "$part" "$KEEP/$name-$slug.callgrind.${part##*.}"; done
      echo "bench: top functions in $KEEP/$name-$slug.top, the profile in $KEEP/$name-$slug.callgrind.*" >&2
    fi
    rm -f "$dir/$name.callgrind"*
    # System calls: strace attached around the same number of requests, natively run.
    start "$name"
    for _ in $(seq 300); do load "$port" GET /read 1 2>/dev/null && break; sleep 0.1; done
    load "$port" "$method" "$path" 200
    strace -c -f -p "$responder" -o "$dir/$name.strace" 2>/dev/null &
    tracer=$!
    sleep 1
    load "$port" "$method" "$path" "$requests"
    kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
    kill "$responder"; wait "$responder" 2>/dev/null || true
    calls[$name $spec]=$(awk -v n="$requests" '$NF == "total" { printf "%.1f", $4 / n }' "$dir/$name.strace")
    printf '%-13s %-12s %9s instructions/request %6s syscalls/request\n' "$name" "$method $path" \
      "${instr[$name $spec]}" "${calls[$name $spec]}" >&2
    [ -z "${KEEP:-}" ] || cp "$dir/$name.strace" "$KEEP/$name-$slug.strace"
  done
done

echo
printf '%-12s | %14s %10s | %14s %10s | %6s\n' endpoint "ours instr/req" "syscalls" "C instr/req" "syscalls" ratio
for spec in "${endpoints[@]}"; do
  o=${instr[counter-fcgi $spec]} c=${instr[c-reference $spec]:-}
  printf '%-12s | %14s %10s | %14s %10s | %6s\n' "${spec/:/ }" "$o" "${calls[counter-fcgi $spec]}" "${c:--}" \
    "${calls[c-reference $spec]:--}" "$(awk -v o="$o" -v c="${c:-0}" 'BEGIN { if (c > 0) printf "%.2f", o / c; else print "-" }')"
done
