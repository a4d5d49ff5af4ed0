#!/bin/sh
# Starts one node of the Redis-with-Sentinel topology: its Redis ("redis") or its Sentinel
# ("sentinel"). One script for the Helm chart's pods and the HA docker compose file. Passwords go
# from the secret files into a config file on a memory volume, never into argv.
#
# Environment: SELF (this node's name, as the others reach it), PEERS (the data nodes' names,
# space-separated; the first is the primary on a first start), SENTINELS (the Sentinels' names,
# space-separated; default PEERS, a Sentinel beside each Redis), QUORUM [2], DOWN_AFTER_MS [5000],
# FAILOVER_TIMEOUT_MS [60000], MAX_LAG [10], APP_USER [counter], CONFIG_FILE (the base redis.conf),
# PASSWORD_FILE, ADMIN_PASSWORD_FILE, SENTINEL_PASSWORD_FILE, RUN_DIR (writable, for the configs).
set -eu
umask 077
: "${SELF:?}" "${PEERS:?}" "${CONFIG_FILE:?}" "${PASSWORD_FILE:?}" "${ADMIN_PASSWORD_FILE:?}" "${SENTINEL_PASSWORD_FILE:?}" "${RUN_DIR:?}"
sentinels=${SENTINELS:-$PEERS}
admin=$(cat "$ADMIN_PASSWORD_FILE")
sentinel_password=$(cat "$SENTINEL_PASSWORD_FILE")

# Where the primary is now, as the other Sentinels say; nobody answers: a first start, and the
# first data node is the primary. So a restarted old primary comes back as a replica.
primary=""
for peer in $sentinels; do
  [ "$peer" = "$SELF" ] && continue
  primary=$(REDISCLI_AUTH="$sentinel_password" timeout 3 redis-cli --no-auth-warning -h "$peer" -p 26379 \
    SENTINEL get-master-addr-by-name counter 2>/dev/null | head -n 1) || primary=""
  [ -n "$primary" ] && break
done
if [ -z "$primary" ]; then
  for peer in $PEERS; do primary=$peer; break; done
fi

if [ "$1" = redis ]; then
  conf="$RUN_DIR/redis.conf"
  cp "$CONFIG_FILE" "$conf"
  {
    # A primary cut off from every replica refuses writes (NOREPLICAS) instead of taking writes
    # that a failover would discard.
    echo "min-replicas-to-write 1"
    echo "min-replicas-max-lag ${MAX_LAG:-10}"
    echo "replica-announce-ip $SELF"
    echo "requirepass $admin"
    echo "masterauth $admin"
    echo "user default on >$admin ~* &* +@all"
    printf 'user %s on >%s resetkeys ~api_counter ~{api_counter}:idempotency:* ~{c:* resetchannels -@all +get +incr +set +ping +evalsha +script|load +incrby +decrby +del +scan +mget +role +wait\n' \
      "${APP_USER:-counter}" "$(cat "$PASSWORD_FILE")"
    [ "$primary" = "$SELF" ] || echo "replicaof $primary 6379"
  } >> "$conf"
  exec redis-server "$conf"
fi
conf="$RUN_DIR/sentinel.conf"
{
  echo "port 26379"
  echo "dir $RUN_DIR"
  echo "sentinel resolve-hostnames yes"
  echo "sentinel announce-hostnames yes"
  echo "sentinel announce-ip $SELF"
  echo "sentinel monitor counter $primary 6379 ${QUORUM:-2}"
  echo "sentinel down-after-milliseconds counter ${DOWN_AFTER_MS:-5000}"
  echo "sentinel failover-timeout counter ${FAILOVER_TIMEOUT_MS:-60000}"
  echo "sentinel parallel-syncs counter 1"
  echo "sentinel auth-pass counter $admin"
  echo "requirepass $sentinel_password"
  echo "sentinel sentinel-pass $sentinel_password"
} > "$conf"
exec redis-server "$conf" --sentinel
