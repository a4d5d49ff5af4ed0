#!/usr/bin/env bash
# Redis Cluster on loopback, to try sharding by hand (and what the tests start): three primaries
# with two replicas each, real `redis-server --cluster-enabled yes` nodes formed by
# `redis-cli --cluster create`, with the settings the shipped configurations use: AOF,
# noeviction, min-replicas-to-write 1, an ACL user for the app, a password for the operators.
#
#   scripts/redis-cluster.sh start            start the nodes and form the cluster (state in $REDIS_CLUSTER_DIR)
#   scripts/redis-cluster.sh env              print the settings counter-fcgi needs (eval "$(scripts/redis-cluster.sh env)")
#   scripts/redis-cluster.sh status           each node's role and slots (CLUSTER NODES)
#   scripts/redis-cluster.sh check            redis-cli --cluster check (all slots covered, nodes agree)
#   scripts/redis-cluster.sh kill-node N      SIGKILL node N (0 to 8; 0, 1, 2 start as primaries)
#   scripts/redis-cluster.sh start-node N     start node N again: it rejoins (as a replica if it was failed over)
#   scripts/redis-cluster.sh add-node N       start node N (9 or more) empty and add it as a primary without slots
#                                             (and without replicas: it takes writes without one)
#   scripts/redis-cluster.sh reshard FROM TO COUNT   move COUNT slots from node FROM to node TO (keys move with them)
#   scripts/redis-cluster.sh rebalance        spread the slots evenly over the primaries (empty ones included)
#   scripts/redis-cluster.sh remove-node N    move node N's slots away, then remove it from the cluster and stop it
#   scripts/redis-cluster.sh stop             stop every node started here, by PID
#
# Settings: REDIS_CLUSTER_DIR [.run/redis-cluster], REDIS_CLUSTER_PORT [7000] (node N on port + N;
# each also needs port + N + 10000 for the cluster bus), REDIS_CLUSTER_PRIMARIES [3],
# REDIS_CLUSTER_REPLICAS [2] (per primary), REDIS_CLUSTER_NODE_TIMEOUT_MS [2000] (how soon a
# silent primary is failed over).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${REDIS_CLUSTER_DIR:-$PWD/.run/redis-cluster}
port=${REDIS_CLUSTER_PORT:-7000}
primaries=${REDIS_CLUSTER_PRIMARIES:-3}
replicas=${REDIS_CLUSTER_REPLICAS:-2}
node_timeout=${REDIS_CLUSTER_NODE_TIMEOUT_MS:-2000}
nodes=$((primaries * (replicas + 1)))
die() { echo "redis-cluster: $*" >&2; exit 1; }
# shellcheck source=scripts/redis-lib.sh
. scripts/redis-lib.sh



node_conf() {  # N: written once; the cluster keeps its own state in nodes.conf beside it
  local n=$1 conf="$dir/node-$1/redis.conf"
  [ -s "$conf" ] && return 0
  mkdir -p "$dir/node-$n"
  {
    echo "port $((port + n))"
    echo "bind 127.0.0.1"
    echo "dir $dir/node-$n"
    echo "cluster-enabled yes"
    echo "cluster-config-file nodes.conf"
    echo "cluster-node-timeout $node_timeout"
    # A shard without a primary stops only its own slots: the other shards keep serving.
    echo "cluster-require-full-coverage no"
    echo "appendonly yes"
    echo "appendfsync everysec"
    echo "save \"\""
    echo "maxmemory-policy noeviction"
    # As with Sentinel: a primary cut off from all its replicas refuses writes rather than take
    # writes a failover would throw away (without replicas, as the benchmarks run it, it cannot).
    echo "min-replicas-to-write $([ "$replicas" -gt 0 ] && echo 1 || echo 0)"
    echo "min-replicas-max-lag 10"
    # A full sync starts at once rather than waiting 5 s for more replicas (small data, loopback).
    echo "repl-diskless-sync-delay 0"
    echo "requirepass $(secret admin-password)"
    echo "masterauth $(secret admin-password)"
    # The app's user: its keys and commands, and what a cluster client needs (the slot map, ASKING).
    echo "user counter on >$(secret app-password) resetkeys ~api_counter ~{api_counter}:idempotency:* ~{c:* resetchannels -@all +get +incr +set +ping +evalsha +script|load +incrby +decrby +del +scan +mget +wait +cluster|slots +asking"
  } > "$conf"
}

start_node() {  # N
  node_conf "$1"
  start_data_node "$1" $((port + $1))
}


node_id() {  # N: the node's cluster id
  cli $((port + $1)) CLUSTER MYID
}

cluster_ok() {  # PORT: the node says the cluster is ok and every slot is served
  local info
  info=$(cli "$1" CLUSTER INFO 2>/dev/null) || return 1
  case $info in *cluster_state:ok*cluster_slots_ok:16384*|*cluster_slots_ok:16384*cluster_state:ok*) return 0 ;; esac
  return 1
}

# Every running node agrees on the slots (what --cluster check says), which a reshard needs.
wait_settled() {
  for _ in $(seq 200); do
    if REDISCLI_AUTH="$(secret admin-password)" redis-cli --no-auth-warning --cluster check "127.0.0.1:$1" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.05
  done
  die "the cluster did not settle (redis-cli --cluster check 127.0.0.1:$1)"
}

# Every running node knows node ID (gossip takes a moment): moving slots to a node that one of
# them does not know yet fails ("I don't know about node ...").
wait_known() {  # ID
  local pidfile n known
  for _ in $(seq 200); do
    known=1
    for pidfile in "$dir"/node-*/pid; do
      if [ ! -s "$pidfile" ] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then continue; fi
      n=${pidfile%/pid}; n=${n##*-}
      cli $((port + n)) CLUSTER NODES 2>/dev/null | grep -q "^$1 " || { known=0; break; }
    done
    [ "$known" = 1 ] && return 0
    sleep 0.05
  done
  die "not every node learned of node $1"
}

# Every primary has all its replicas in sync (writes are refused with NOREPLICAS before one is).
wait_replicas() {
  local p ready
  [ "$replicas" -gt 0 ] || return 0
  for _ in $(seq 400); do
    ready=1
    for p in $(cli "$port" CLUSTER NODES | awk '$3 ~ /master/ && $8 == "connected" && $9 != "" { sub(/@.*/, "", $2); sub(/.*:/, "", $2); print $2 }'); do
      [ "$(cli "$p" INFO replication | tr -d '\r' | awk -F: '$1 == "min_slaves_good_slaves" { print $2 }')" -ge "$replicas" ] || { ready=0; break; }
    done
    [ "$ready" = 1 ] && return 0
    sleep 0.05
  done
  die "the replicas did not come in sync (see $dir/*/redis.log)"
}

number() { [[ ${1:-} =~ ^[0-9]+$ ]] || die "usage: scripts/redis-cluster.sh $2"; }

case ${1:-} in
  start)
    command -v redis-server >/dev/null || die "redis-server is not installed (scripts/setup.sh installs it)"
    mkdir -p "$dir"
    for n in $(seq 0 $((nodes - 1))); do start_node "$n"; done
    if ! cluster_ok "$port" && [ "$primaries" -lt 3 ]; then
      # redis-cli --cluster create wants three primaries: fewer (the benchmarks' 1 and 2) are
      # formed by hand, each primary an equal range of slots, without replicas.
      [ "$replicas" = 0 ] || die "fewer than 3 primaries only without replicas (REDIS_CLUSTER_REPLICAS=0)"
      for n in $(seq 0 $((primaries - 1))); do
        cli $((port + n)) CLUSTER ADDSLOTSRANGE $((16384 * n / primaries)) $((16384 * (n + 1) / primaries - 1)) >/dev/null
        [ "$n" = 0 ] || cli "$port" CLUSTER MEET 127.0.0.1 $((port + n)) >/dev/null
      done
    elif ! cluster_ok "$port"; then
      addresses=()
      for n in $(seq 0 $((nodes - 1))); do addresses+=("127.0.0.1:$((port + n))"); done
      # redis-cli makes the first $primaries nodes primaries and gives each $replicas replicas.
      REDISCLI_AUTH="$(secret admin-password)" redis-cli --no-auth-warning --cluster create "${addresses[@]}" \
        --cluster-replicas "$replicas" --cluster-yes >"$dir/create.log" 2>&1 \
        || die "redis-cli --cluster create failed:$(log_tail "$dir/create.log")"
    fi
    for _ in $(seq 200); do
      if cluster_ok "$port" && [ "$(cli "$port" CLUSTER NODES | grep -c 'slave.*connected')" -ge $((primaries * replicas)) ]; then
        wait_settled "$port"
        wait_replicas
        echo "redis-cluster: $primaries primaries with $replicas replicas each on $port-$((port + nodes - 1)) ($dir)" >&2
        exit 0
      fi
      sleep 0.05
    done
    die "the cluster did not come up (see $dir/*/redis.log)"
    ;;
  env)
    nodes_list=""
    for n in $(seq 0 $((primaries - 1))); do nodes_list="$nodes_list${nodes_list:+,}127.0.0.1:$((port + n))"; done
    echo "export REDIS_CLUSTER_NODES=$nodes_list"
    echo "export REDIS_USERNAME=counter"
    echo "export REDIS_PASSWORD=$(secret app-password)"
    ;;
  status)
    cli "$port" CLUSTER NODES 2>/dev/null | awk '{ sub(/@.*/, "", $2); print $2, $3, $8, $9, $10, $11 }' | sort
    ;;
  check)
    REDISCLI_AUTH="$(secret admin-password)" redis-cli --no-auth-warning --cluster check "127.0.0.1:$port"
    ;;
  kill-node)
    number "${2:-}" "kill-node N"
    stop_pid "$dir/node-$2/pid" KILL
    echo "redis-cluster: killed node $2 (port $((port + $2)))" >&2
    ;;
  start-node)
    number "${2:-}" "start-node N"
    start_node "$2"
    ;;
  add-node)
    number "${2:-}" "add-node N"
    start_node "$2"
    # A node added here has no replica of its own: it takes writes without one (the rule
    # min-replicas-to-write 1 would have it refuse every write, and redis-cli's own set-up of it).
    cli $((port + $2)) CONFIG SET min-replicas-to-write 0 >/dev/null
    live=$port
    cluster_ok "$live" || die "the cluster is not ok on $live"
    REDISCLI_AUTH="$(secret admin-password)" redis-cli --no-auth-warning --cluster add-node "127.0.0.1:$((port + $2))" "127.0.0.1:$live" \
      >"$dir/add-node-$2.log" 2>&1 || die "add-node failed:$(log_tail "$dir/add-node-$2.log")"
    wait_known "$(node_id "$2")"
    # And the new node knows every slot's owner: until then it calls the cluster down, and a
    # migration to it fails (CLUSTERDOWN).
    for _ in $(seq 400); do cluster_ok $((port + $2)) && break; sleep 0.05; done
    cluster_ok $((port + $2)) || die "node $2 did not learn the cluster's slots"
    wait_settled "$live"
    echo "redis-cluster: node $2 (port $((port + $2))) added as a primary without slots" >&2
    ;;
  reshard)
    number "${2:-}" "reshard FROM TO COUNT"; number "${3:-}" "reshard FROM TO COUNT"; number "${4:-}" "reshard FROM TO COUNT"
    wait_settled "$((port + $2))"
    REDISCLI_AUTH="$(secret admin-password)" redis-cli --no-auth-warning --cluster reshard "127.0.0.1:$((port + $2))" \
      --cluster-from "$(node_id "$2")" --cluster-to "$(node_id "$3")" --cluster-slots "$4" --cluster-yes \
      >"$dir/reshard.log" 2>&1 || die "reshard failed:$(log_tail "$dir/reshard.log")"
    wait_settled "$((port + $3))"
    echo "redis-cluster: moved $4 slots from node $2 to node $3" >&2
    ;;
  rebalance)
    wait_settled "$port"
    REDISCLI_AUTH="$(secret admin-password)" redis-cli --no-auth-warning --cluster rebalance "127.0.0.1:$port" \
      --cluster-use-empty-masters >"$dir/rebalance.log" 2>&1 || die "rebalance failed:$(log_tail "$dir/rebalance.log")"
    wait_settled "$port"
    echo "redis-cluster: slots rebalanced" >&2
    ;;
  remove-node)
    number "${2:-}" "remove-node N"
    id=$(node_id "$2")
    slots=$(cli $((port + $2)) CLUSTER NODES | awk '$3 ~ /myself/ { n = 0; for (i = 9; i <= NF; i++) { split($i, r, "-"); n += (r[2] == "" ? 1 : r[2] - r[1] + 1) } print n }')
    if [ "${slots:-0}" -gt 0 ]; then
      # Its slots go to the first other primary that has some.
      to=$(cli $((port + $2)) CLUSTER NODES | awk -v me="$id" '$1 != me && $3 ~ /master/ && $9 != "" { print $1; exit }')
      [ -n "$to" ] || die "no other primary to take node $2's slots"
      REDISCLI_AUTH="$(secret admin-password)" redis-cli --no-auth-warning --cluster reshard "127.0.0.1:$((port + $2))" \
        --cluster-from "$id" --cluster-to "$to" --cluster-slots "$slots" --cluster-yes \
        >"$dir/remove-$2.log" 2>&1 || die "moving node $2's slots away failed:$(log_tail "$dir/remove-$2.log")"
    fi
    other=$([ "$2" = 0 ] && echo $((port + 1)) || echo "$port")
    wait_settled "$other"
    REDISCLI_AUTH="$(secret admin-password)" redis-cli --no-auth-warning --cluster del-node "127.0.0.1:$other" "$id" \
      >>"$dir/remove-$2.log" 2>&1 || die "del-node failed:$(log_tail "$dir/remove-$2.log")"
    stop_pid "$dir/node-$2/pid"
    rm -rf "${dir:?}/node-$2"
    echo "redis-cluster: node $2 removed" >&2
    ;;
  stop)
    # All at once: one by one, each primary would wait on shutdown for replicas that are stopping too.
    stop_pids TERM "$dir"/node-*/pid
    ;;
  *)
    sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
