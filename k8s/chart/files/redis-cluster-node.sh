#!/bin/sh
# Starts one node of a Redis Cluster: the Helm chart's `redis.mode: cluster` pods and the cluster
# docker compose file. Passwords go from the secret files into a config file on a memory volume,
# never into argv. The cluster is formed once, by redis-cluster-form.sh, not here.
#
# Environment: SELF (this node's name, as clients and the other nodes reach it: a pod's stable DNS
# name), PORT [6379] (the cluster bus is PORT + 10000), NODE_TIMEOUT_MS [5000], MIN_REPLICAS [1]
# (a primary with fewer replicas refuses writes), MAX_LAG [10], APP_USER [counter], CONFIG_FILE
# (the base redis.conf), PASSWORD_FILE, ADMIN_PASSWORD_FILE, RUN_DIR (writable, for the config),
# DATA_DIR [/data] (the AOF and nodes.conf, the node's own record of the cluster).
set -eu
umask 077
: "${SELF:?}" "${CONFIG_FILE:?}" "${PASSWORD_FILE:?}" "${ADMIN_PASSWORD_FILE:?}" "${RUN_DIR:?}"
port=${PORT:-6379}
data=${DATA_DIR:-/data}
admin=$(cat "$ADMIN_PASSWORD_FILE")

# The cluster bus speaks IP addresses only, kept in nodes.conf, and a pod that restarts comes back
# with a new one (a whole StatefulSet rolled at once: every one of them). Each entry that carries a
# hostname (cluster-announce-hostname) gets the address its name has now, so the nodes find each
# other again; a name that does not resolve yet keeps its last address, and gossip corrects it
# once that node is up. An entry's address field: ip:port@busport,hostname[,more].
if [ -s "$data/nodes.conf" ]; then
  fresh="$RUN_DIR/nodes.conf"
  : > "$fresh"
  while read -r id address rest; do
    case $address in
      *@*,?*)
        name=${address#*,}
        name=${name%%,*}
        hostport=${address%%,*}
        ip=$(getent hosts "$name" | awk '{ print $1; exit }') || ip=""
        [ -z "$ip" ] || address="$ip:${hostport##*:}${address#"$hostport"}"
        ;;
    esac
    echo "$id $address $rest" >> "$fresh"
  done < "$data/nodes.conf"
  cat "$fresh" > "$data/nodes.conf"
fi

conf="$RUN_DIR/redis.conf"
cp "$CONFIG_FILE" "$conf"
{
  echo "port $port"
  echo "dir $data"
  echo "cluster-enabled yes"
  echo "cluster-config-file nodes.conf"
  echo "cluster-node-timeout ${NODE_TIMEOUT_MS:-5000}"
  # Clients are told names, not pod IPs (CLUSTER SLOTS, MOVED): names survive a restart.
  echo "cluster-announce-hostname $SELF"
  echo "cluster-preferred-endpoint-type hostname"
  # A shard without a primary stops only its own slots: the other shards keep serving.
  echo "cluster-require-full-coverage no"
  # A primary cut off from its replicas refuses writes (NOREPLICAS, a 503) instead of taking
  # writes a failover would discard.
  echo "min-replicas-to-write ${MIN_REPLICAS:-1}"
  echo "min-replicas-max-lag ${MAX_LAG:-10}"
  echo "requirepass $admin"
  echo "masterauth $admin"
  echo "user default on >$admin ~* &* +@all"
  # The app's keys and commands, and what a cluster client needs (the slot map, ASKING).
  printf 'user %s on >%s resetkeys ~api_counter ~{api_counter}:idempotency:* ~{c:* resetchannels -@all +get +incr +set +ping +evalsha +script|load +incrby +decrby +del +scan +mget +wait +cluster|slots +asking\n' \
    "${APP_USER:-counter}" "$(cat "$PASSWORD_FILE")"
} >> "$conf"
exec redis-server "$conf"
