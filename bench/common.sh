# shellcheck shell=bash
# shellcheck disable=SC2034 # bin and dir are used by the scripts that source this file
# Shared by the bench scripts (sourced, not run): builds the release binary, makes a temp dir,
# and stops every process recorded in `pids` (by PID, newest first) when the script exits.
# Sets: bin, dir, pids. Defines: free_port [udp], start_redis [ARG...] (sets rport, redis_pid), start_responder
# [NAME=VALUE...] (sets fcgi_pid), wait_http URL KEY, cpu_ticks PID..., the CPU time (user + system,
# in clock ticks) used so far by those processes and all their descendants, edit_line FILE LINE NEW.

scripts/setup.sh
swift build -c release --product counter-fcgi >&2
bin="$(swift build -c release --show-bin-path)/counter-fcgi"

dir=$(mktemp -d "/tmp/counter-${BENCH_NAME:-bench}.XXXXXX")
# nginx workers must reach the 0660 sockets inside: started as root they run as nobody:nogroup
# (nginx/render.sh), so the folder is a setgid folder of that group, as in make run.
if [ "$(id -u)" -eq 0 ]; then chgrp nogroup "$dir" && chmod 2750 "$dir"; else chmod 755 "$dir"; fi
pids=()
cleanup() {
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port: TCP, or UDP with `free_port udp`.
# shellcheck disable=SC2120 # the kind is optional
free_port() {
  python3 -c 'import socket,sys;s=socket.socket(type=socket.SOCK_DGRAM if sys.argv[1:]==["udp"] else socket.SOCK_STREAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])' "$@"
}

# Redis on TCP without persistence, as the reference stack runs it, so only what is in front differs;
# extra redis-server arguments override those (a later option wins). A Redis started earlier by this
# function is stopped first.
redis_pid=""
# shellcheck disable=SC2120 # the arguments are optional
start_redis() {
  if [ -n "$redis_pid" ]; then kill -TERM "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; fi
  rport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --logfile "$dir/redis.log" "$@" &
  redis_pid=$!
  pids+=($!)
  for _ in $(seq 100); do redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.05; done
  echo "bench: redis-server did not start" >&2
  return 1
}

# counter-fcgi on $dir/fcgi.sock over that Redis, with extra settings as NAME=VALUE arguments; a
# responder started earlier by this function is stopped first (thread sweeps restart it).
fcgi_pid=""
# shellcheck disable=SC2120 # the settings are optional
start_responder() {
  if [ -n "$fcgi_pid" ]; then kill -TERM "$fcgi_pid"; wait "$fcgi_pid" 2>/dev/null || true; fi
  env REDIS_HOST=127.0.0.1 REDIS_PORT="$rport" FCGI_LISTEN="unix:$dir/fcgi.sock" "$@" "$bin" 2>>"$dir/counter-fcgi.log" &
  fcgi_pid=$!
  pids+=("$fcgi_pid")
  for _ in $(seq 100); do [ -S "$dir/fcgi.sock" ] && return 0; sleep 0.05; done
  echo "bench: counter-fcgi did not start; see $dir/counter-fcgi.log" >&2
  return 1
}

wait_http() { for _ in $(seq 200); do curl -fs -o /dev/null "$1" -H "X-API-Key: $2" && return 0; sleep 0.05; done; return 1; }

descendants() { local child; for child in $(pgrep -P "$1"); do echo "$child"; descendants "$child"; done; }
cpu_ticks() {
  local total=0 pid ticks
  for pid in "$@" $(for root in "$@"; do descendants "$root"; done); do
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || ticks=0
    total=$((total + ${ticks:-0}))
  done
  echo "$total"
}

# A variant's one-line change to a rendered config: a line that is no longer there stops the bench
# rather than measure the shipped config under another name.
edit_line() {  # FILE LINE NEW_LINE
  grep -qx "$2" "$1" || { echo "bench: no line '$2' in $1" >&2; exit 1; }
  sed -i "s|^$2\$|$3|" "$1"
}
