# shellcheck shell=bash
# Shared by scripts/redis-ha.sh and scripts/redis-cluster.sh (sourced, not run): the helpers both
# topologies use. Needs $dir (where the passwords and the nodes live) and die(), from the script
# that sources this.
# shellcheck disable=SC2154 # $dir is the sourcing script's

# The last lines of a server's log, so a failure to start says why without a second look.
log_tail() { [ -s "$1" ] && printf '\n%s' "$(tail -n 5 "$1")"; true; }

secret() {  # NAME: a password kept in $dir, made on first use
  local file="$dir/$1"
  [ -s "$file" ] || (umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$file")
  cat "$file"
}

cli() {  # PORT ARGS...: redis-cli as the operators' default user
  REDISCLI_AUTH="$(secret admin-password)" redis-cli --no-auth-warning -h 127.0.0.1 -p "$@"
}

stop_pid() {  # PIDFILE SIGNAL: the signal, up to 10 s to exit, then KILL (never a process left behind)
  stop_pids "${2:-TERM}" "$1"
}

stop_pids() {  # SIGNAL PIDFILE...: the signal to all at once, then up to 10 s for them all
  # (Sentinel takes about 2 s; a primary stopped alone waits for its replicas; each AOF is flushed
  # on the way out), then KILL for any left. A stopped (SIGSTOP) process is continued first.
  local signal=$1 pidfile pid pids=()
  shift
  for pidfile in "$@"; do
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    rm -f "$pidfile"
    kill -0 "$pid" 2>/dev/null || continue
    kill -CONT "$pid" 2>/dev/null || true
    kill "-$signal" "$pid" 2>/dev/null || true
    pids+=("$pid")
  done
  [ "${#pids[@]}" -gt 0 ] || return 0
  for _ in $(seq 200); do kill -0 "${pids[@]}" 2>/dev/null || break; sleep 0.05; done
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || continue
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  done
}

start_data_node() {  # N PORT: the redis-server of $dir/node-N/redis.conf (written by the caller),
  # daemonized unless it runs already; back once it answers (LOADING too: a long AOF replay)
  local n=$1 port=$2 pidfile="$dir/node-$1/pid"
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return 0; fi
  redis-server "$dir/node-$n/redis.conf" --daemonize yes --pidfile "$pidfile" --logfile "$dir/node-$n/redis.log"
  for _ in $(seq 100); do cli "$port" ping 2>/dev/null | grep -qE 'PONG|LOADING' && return 0; sleep 0.05; done
  die "node $n did not start (see $dir/node-$n/redis.log):$(log_tail "$dir/node-$n/redis.log")"
}
