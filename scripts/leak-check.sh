#!/usr/bin/env bash
# Runs the debug counter-fcgi under valgrind's memcheck while it serves every kind of request
# (reads, writes, idempotent writes and replays, errors, a Redis outage and its recovery) and
# receives nginx's edge log lines (valid and not), then
# stops it with SIGTERM and prints valgrind's leak summary. Exits 1 on any definite leak.
#   scripts/leak-check.sh [requests per kind, default 40]
set -euo pipefail
cd "$(dirname "$0")/.."
per_kind=${1:-40}
command -v valgrind >/dev/null || scripts/setup.sh
# Its own build folder, with DWARF 4 debug info: valgrind 3.19 (Debian 12) cannot read the DWARF 5
# that Swift 6.3 emits by default, and gives up on the binary.
flags=(--scratch-path .build-leak --product counter-fcgi -Xswiftc -dwarf-version=4 -Xcc -gdwarf-4)
swift build "${flags[@]}" >&2
bin="$(swift build "${flags[@]}" --show-bin-path)/counter-fcgi"
dir=$(mktemp -d /tmp/counter-leak.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

rport=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
start_redis() {
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --logfile "$dir/redis.log" &
  redis_pid=$!
  for _ in $(seq 100); do redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG && return; sleep 0.05; done
}
start_redis
pids+=("$redis_pid")

eport=$(python3 -c 'import socket;s=socket.socket(type=socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
env REDIS_HOST=127.0.0.1 REDIS_PORT="$rport" FCGI_LISTEN="unix:$dir/fcgi.sock" FCGI_THREADS=2 \
  REDIS_TIMEOUT_MS=2000 DEBUG=true EDGE_LOG_ADDRESS="127.0.0.1:$eport" \
  valgrind --suppressions=scripts/valgrind-swift.supp --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --error-exitcode=3 \
  --log-file="$dir/valgrind.log" "$bin" 2>"$dir/app.log" &
app=$!
pids+=("$app")
for _ in $(seq 600); do [ -S "$dir/fcgi.sock" ] && break; sleep 0.1; done
[ -S "$dir/fcgi.sock" ] || { tail -20 "$dir/app.log" "$dir/valgrind.log" >&2; echo "leak-check: counter-fcgi did not start under valgrind" >&2; exit 2; }

req() {  # METHOD PATH [extra env...]
  env -i REQUEST_METHOD="$1" DOCUMENT_URI="$2" API_KEY_NAME=leak "${@:3}" cgi-fcgi -bind -connect "$dir/fcgi.sock" >/dev/null
}
for i in $(seq "$per_kind"); do
  req GET /read; req POST /write; req GET /health; req GET /livez; req GET /nope; req DELETE /read
  req POST /write "HTTP_IDEMPOTENCY_KEY=\"k$i\""; req POST /write "HTTP_IDEMPOTENCY_KEY=\"k$i\""
  req POST /write HTTP_IDEMPOTENCY_KEY=bad; req POST /write CONTENT_LENGTH=99999
done
# nginx's edge log lines, valid and not, to the edge log receiver.
python3 - "$eport" "$per_kind" <<'PY'
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
with socket.socket(type=socket.SOCK_DGRAM) as s:
    for i in range(count):
        for line in (b"<190>Nov 29 16:00:54 counter_edge: route=/read status=429",
                     b"<190>Nov 29 16:00:54 counter_edge: route=other status=%d" % (400 + i % 100),
                     b"route=/nope status=429", b"\xff" * 600):
            s.sendto(line, ("127.0.0.1", port))
PY
edge_counted=0
for _ in $(seq 50); do
  edge_counted=$(env -i REQUEST_METHOD=GET DOCUMENT_URI=/metrics cgi-fcgi -bind -connect "$dir/fcgi.sock" \
    | awk '/^counter_edge_requests_total[{].*route="\/read".*status="429"/ { print $2 + 0 }')
  [ "${edge_counted:-0}" = "$per_kind" ] && break
  sleep 0.2
done
[ "${edge_counted:-0}" = "$per_kind" ] || { echo "leak-check: the edge log receiver counted ${edge_counted:-0} of $per_kind lines" >&2; exit 2; }
redis-cli -p "$rport" set api_counter oops >/dev/null
for _ in $(seq "$per_kind"); do req GET /read; req POST /write; done
redis-cli -p "$rport" set api_counter 0 >/dev/null
kill -KILL "$redis_pid"; wait "$redis_pid" 2>/dev/null || true
for _ in $(seq "$per_kind"); do req POST /write; req GET /health; done
start_redis
pids+=("$redis_pid")
sleep 1
for _ in $(seq "$per_kind"); do req POST /write; done

kill -TERM "$app"
status=0
wait "$app" || status=$?
served=$(grep -c '"message":"request"' "$dir/app.log" || true)
echo "leak-check: $served requests served under valgrind; exit status $status"
sed -n '/HEAP SUMMARY/,/ERROR SUMMARY/p' "$dir/valgrind.log" | sed 's/^==[0-9]*== //'
if grep -q 'ERROR SUMMARY: [1-9]' "$dir/valgrind.log"; then
  grep -A25 -m3 -E 'Conditional jump|Invalid (read|write)|Use of uninitialised|Syscall param' "$dir/valgrind.log" | sed 's/^==[0-9]*== //' | head -80
fi
if grep -q 'definitely lost: [1-9]' "$dir/valgrind.log" || [ "$status" -eq 3 ]; then
  grep -A20 'definitely lost in' "$dir/valgrind.log" | head -60
  echo "leak-check: definite leaks found" >&2
  exit 1
fi
echo "leak-check: no definite leak"
