#!/bin/sh
# Forms a Redis Cluster once (the Helm chart's Job after each install and upgrade, and the cluster
# docker compose file's one-shot service): waits until every node answers, then
#   - every slot served: formed already; checks that the nodes agree, and exits;
#   - no node has a slot or knows another: a new cluster; `redis-cli --cluster create` over all the
#     nodes (redis-cli picks the primaries, spread over hosts where it can, each given REPLICAS replicas);
#   - anything else (a cluster formed in part, a node added by hand): stops with an error and
#     changes nothing. That is an operator's to finish (docs/operations.md), not a guess to make.
#
# Environment: NODES (host:port, space-separated), REPLICAS [1] (per primary), ADMIN_PASSWORD_FILE,
# WAIT_SECONDS [300] (how long to wait for the nodes, and then for the cluster to agree).
set -eu
: "${NODES:?}" "${ADMIN_PASSWORD_FILE:?}"
REDISCLI_AUTH=$(cat "$ADMIN_PASSWORD_FILE")
export REDISCLI_AUTH
replicas=${REPLICAS:-1}
deadline=$(($(date +%s) + ${WAIT_SECONDS:-300}))
say() { echo "redis-cluster-form: $*" >&2; }
cli() {  # HOST:PORT ARGS...
  node=$1
  shift
  timeout 5 redis-cli --no-auth-warning -h "${node%:*}" -p "${node##*:}" "$@"
}
info() {  # HOST:PORT FIELD: one field of CLUSTER INFO
  cli "$1" CLUSTER INFO | tr -d '\r' | sed -n "s/^$2://p"
}

for node in $NODES; do
  until cli "$node" PING 2>/dev/null | grep -q PONG; do
    [ "$(date +%s)" -lt "$deadline" ] || { say "$node does not answer"; exit 1; }
    sleep 2
  done
done
count=$(echo "$NODES" | wc -w)
first=${NODES%% *}

if [ "$(info "$first" cluster_slots_assigned)" = 16384 ]; then
  say "formed already: every slot is served"
else
  for node in $NODES; do
    if [ "$(info "$node" cluster_known_nodes)" != 1 ] || [ "$(info "$node" cluster_slots_assigned)" != 0 ]; then
      say "$node is in a cluster that does not serve every slot: not forming over it (see docs/operations.md)"
      exit 1
    fi
  done
  say "forming: $count nodes, $replicas replica(s) per primary"
  # Word splitting of NODES is meant: one argument per node.
  # shellcheck disable=SC2086
  redis-cli --no-auth-warning --cluster create $NODES --cluster-replicas "$replicas" --cluster-yes
fi

# Done when every node says the cluster is ok and knows all the others, and every primary has its
# replicas in sync (until then, min-replicas-to-write refuses its writes).
replicas_of() {  # HOST:PORT: the replicas a primary has online; REPLICAS for a replica
  cli "$1" INFO replication | tr -d '\r' | awk -F: -v want="$replicas" '
    $1 == "role" && $2 != "master" { print want; exit }
    $1 == "connected_slaves" { n = $2 }
    $1 ~ /^slave[0-9]+$/ && $2 !~ /state=online/ { n-- }
    END { if (n != "") print n }'
}
for node in $NODES; do
  until [ "$(info "$node" cluster_state)" = ok ] && [ "$(info "$node" cluster_known_nodes)" = "$count" ] \
      && [ "$(replicas_of "$node")" -ge "$replicas" ] 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || { say "$node does not agree yet (CLUSTER INFO: $(cli "$node" CLUSTER INFO | tr -d '\r' | tr '\n' ' '))"; exit 1; }
    sleep 1
  done
done
say "ok: $count nodes agree, every slot served, every primary's replicas in sync"
