#!/usr/bin/env bash
# Redis high availability on loopback, to try a failover by hand (and what the tests start): a
# primary, two replicas and three Sentinels, each a real redis-server, with the settings the
# shipped configurations use: AOF, noeviction, min-replicas-to-write 1 (a primary cut off from its
# replicas refuses writes), an ACL user for the app, and passwords for Redis and for Sentinel.
#
#   scripts/redis-ha.sh start          start the six servers (state, logs and passwords in $REDIS_HA_DIR)
#   scripts/redis-ha.sh env            print the settings counter-fcgi needs (eval "$(scripts/redis-ha.sh env)")
#   scripts/redis-ha.sh status         which node is the primary, as each Sentinel sees it
#   scripts/redis-ha.sh failover       a planned failover (writes paused, SENTINEL FAILOVER)
#   scripts/redis-ha.sh kill-primary   SIGKILL the current primary (an unplanned failover follows)
#   scripts/redis-ha.sh start-node N   start data node N (0, 1, 2) again after a kill: it rejoins as a replica
#   scripts/redis-ha.sh stop-node N    stop data node N (SIGKILL)
#   scripts/redis-ha.sh pause-node N / resume-node N   freeze or thaw data node N (SIGSTOP, SIGCONT:
#                                      a node cut off without closing its connections)
#   scripts/redis-ha.sh stop-sentinel I / start-sentinel I   one Sentinel (0, 1, 2) down or up
#   scripts/redis-ha.sh stop           stop everything started here, by PID
#
# Settings: REDIS_HA_DIR [.run/redis-ha], REDIS_HA_PORT [6380] (data nodes on it and the next two),
# REDIS_HA_SENTINEL_PORT [26380] (Sentinels on it and the next two), REDIS_HA_DOWN_AFTER_MS [1000]
# (how soon Sentinels call a silent primary down), REDIS_HA_MAX_LAG [10] (seconds after which a
# primary stops counting a silent replica: with none left it refuses writes), REDIS_HA_NAME [counter].
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${REDIS_HA_DIR:-$PWD/.run/redis-ha}
port=${REDIS_HA_PORT:-6380}
sentinel_port=${REDIS_HA_SENTINEL_PORT:-26380}
down_after=${REDIS_HA_DOWN_AFTER_MS:-1000}
max_lag=${REDIS_HA_MAX_LAG:-10}
name=${REDIS_HA_NAME:-counter}
die() { echo "redis-ha: $*" >&2; exit 1; }
# shellcheck source=scripts/redis-lib.sh
. scripts/redis-lib.sh


sentinel_cli() {  # INDEX ARGS...
  local index=$1; shift
  REDISCLI_AUTH="$(secret sentinel-password)" redis-cli --no-auth-warning -h 127.0.0.1 -p $((sentinel_port + index)) "$@"
}

node_conf() {  # N: the data node's config; written once, then Sentinel rewrites it (replicaof ...)
  local n=$1 conf="$dir/node-$1/redis.conf"
  [ -s "$conf" ] && return 0
  mkdir -p "$dir/node-$n"
  {
    echo "port $((port + n))"
    echo "bind 127.0.0.1"
    echo "dir $dir/node-$n"
    echo "appendonly yes"
    echo "appendfsync everysec"
    echo "save \"\""
    echo "maxmemory-policy noeviction"
    # A primary that has lost its replicas refuses writes (NOREPLICAS) instead of accepting writes
    # that a failover would throw away.
    echo "min-replicas-to-write 1"
    echo "min-replicas-max-lag $max_lag"
    echo "requirepass $(secret admin-password)"
    echo "masterauth $(secret admin-password)"
    echo "user counter on >$(secret app-password) resetkeys ~api_counter ~{api_counter}:idempotency:* ~{c:* resetchannels -@all +get +incr +set +ping +evalsha +script|load +incrby +decrby +del +scan +mget +role +wait"
    [ "$n" = 0 ] || echo "replicaof 127.0.0.1 $port"
  } > "$conf"
}

sentinel_conf() {  # I: each Sentinel its own file (Sentinel rewrites it)
  local i=$1 conf="$dir/sentinel-$1/sentinel.conf"
  [ -s "$conf" ] && return 0
  mkdir -p "$dir/sentinel-$i"
  {
    echo "port $((sentinel_port + i))"
    echo "bind 127.0.0.1"
    echo "dir $dir/sentinel-$i"
    echo "sentinel monitor $name 127.0.0.1 $port 2"
    echo "sentinel down-after-milliseconds $name $down_after"
    echo "sentinel failover-timeout $name 10000"
    echo "sentinel parallel-syncs $name 1"
    echo "sentinel auth-pass $name $(secret admin-password)"
    # Sentinel's own password, for clients and for the other Sentinels.
    echo "requirepass $(secret sentinel-password)"
    echo "sentinel sentinel-pass $(secret sentinel-password)"
  } > "$conf"
}

start_node() {  # N
  node_conf "$1"
  start_data_node "$1" $((port + $1))
}

start_sentinel() {  # I
  local i=$1 pidfile="$dir/sentinel-$1/pid"
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return 0; fi
  sentinel_conf "$i"
  redis-server "$dir/sentinel-$i/sentinel.conf" --sentinel --daemonize yes --pidfile "$pidfile" \
    --logfile "$dir/sentinel-$i/sentinel.log"
  for _ in $(seq 100); do sentinel_cli "$i" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.05; done
  die "sentinel $i did not start (see $dir/sentinel-$i/sentinel.log):$(log_tail "$dir/sentinel-$i/sentinel.log")"
}

primary_port() {  # the primary's port, as the first Sentinel that answers says
  local i answer
  for i in 0 1 2; do
    answer=$(sentinel_cli "$i" SENTINEL get-master-addr-by-name "$name" 2>/dev/null | sed -n 2p) || true
    [ -n "$answer" ] && { echo "$answer"; return 0; }
  done
  return 1
}


case ${1:-} in
  start)
    command -v redis-server >/dev/null || die "redis-server is not installed (scripts/setup.sh installs it)"
    mkdir -p "$dir"
    for n in 0 1 2; do start_node "$n"; done
    for i in 0 1 2; do start_sentinel "$i"; done
    # Ready once a Sentinel names the primary and both replicas have caught up.
    for _ in $(seq 200); do
      p=$(primary_port 2>/dev/null || true)
      if [ -n "$p" ] && [ "$(cli "$p" INFO replication 2>/dev/null | grep -c 'state=online')" -ge 2 ]; then
        echo "redis-ha: primary 127.0.0.1:$p, replicas online, Sentinels on $sentinel_port-$((sentinel_port + 2)) ($dir)" >&2
        exit 0
      fi
      sleep 0.05
    done
    die "the replicas did not come online (see $dir/*/redis.log)"
    ;;
  env)
    echo "export REDIS_SENTINELS=127.0.0.1:$sentinel_port,127.0.0.1:$((sentinel_port + 1)),127.0.0.1:$((sentinel_port + 2))"
    echo "export REDIS_SENTINEL_NAME=$name"
    echo "export REDIS_SENTINEL_PASSWORD=$(secret sentinel-password)"
    echo "export REDIS_USERNAME=counter"
    echo "export REDIS_PASSWORD=$(secret app-password)"
    ;;
  status)
    for i in 0 1 2; do
      echo "sentinel $((sentinel_port + i)): primary $(sentinel_cli "$i" SENTINEL get-master-addr-by-name "$name" 2>/dev/null | paste -sd: || echo unreachable)"
    done
    for n in 0 1 2; do
      echo "node $((port + n)): $(cli $((port + n)) ROLE 2>/dev/null | head -1 || echo down)"
    done
    ;;
  failover)
    # A planned failover that loses no acknowledged write. SENTINEL FAILOVER alone promotes a
    # replica while the old primary still takes writes and the other replica still acknowledges
    # them (WAIT 1 passes) until Sentinel re-points it: those writes are then lost. Pausing writes
    # on the old primary first closes that window; once Sentinel names the new primary (its
    # replicas re-pointed), a write that still reaches the old one finds no replica: 503.
    p=$(primary_port) || die "no Sentinel names a primary"
    cli "$p" CLIENT PAUSE 20000 WRITE >/dev/null
    sentinel_cli 0 SENTINEL FAILOVER "$name"
    # Unpause only once no replica follows the old primary any more (or it follows the new one).
    for _ in $(seq 300); do
      now=$(primary_port 2>/dev/null || true)
      if [ -n "$now" ] && [ "$now" != "$p" ]; then
        info=$(cli "$p" INFO replication 2>/dev/null || true)
        case $info in *role:slave*|*connected_slaves:0*) break ;; esac
      fi
      sleep 0.05
    done
    cli "$p" CLIENT UNPAUSE >/dev/null 2>&1 || true
    [ "${now:-$p}" != "$p" ] || die "the failover did not finish within 15 s"
    echo "redis-ha: the primary moved from $p to $now" >&2
    ;;
  kill-primary)
    p=$(primary_port) || die "no Sentinel names a primary"
    stop_pid "$dir/node-$((p - port))/pid" KILL
    echo "redis-ha: killed the primary on $p (node $((p - port)))" >&2
    ;;
  start-node|stop-node|pause-node|resume-node|start-sentinel|stop-sentinel)
    [[ ${2:-} =~ ^[012]$ ]] || die "usage: scripts/redis-ha.sh $1 0|1|2"
    case $1 in
      start-node) start_node "$2" ;;
      stop-node) stop_pid "$dir/node-$2/pid" KILL ;;
      pause-node) kill -STOP "$(cat "$dir/node-$2/pid")" ;;
      resume-node) kill -CONT "$(cat "$dir/node-$2/pid")" ;;
      start-sentinel) start_sentinel "$2" ;;
      stop-sentinel) stop_pid "$dir/sentinel-$2/pid" KILL ;;
    esac
    ;;
  stop)
    # All at once: one by one, the primary would wait on shutdown for replicas that are stopping
    # too, and each Sentinel takes about 2 s to exit. A Sentinel that sees the primary go first
    # cannot act on it: it is exiting itself, and a primary needs down-after-ms to be called down.
    stop_pids TERM "$dir"/sentinel-*/pid "$dir"/node-*/pid
    ;;
  *)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
