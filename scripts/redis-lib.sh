# shellcheck shell=bash
# Shared by scripts/redis-ha.sh and scripts/redis-cluster.sh (sourced, not run): the helpers both
# topologies use. Needs $dir (where the passwords live), set by the script that sources this.
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

stop_pid() {  # PIDFILE SIGNAL: the signal, up to 5 s to exit, then KILL (never a process left behind)
  local pidfile=$1 signal=${2:-TERM} pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    fi
  fi
  rm -f "$pidfile"
}
