#!/usr/bin/env bash
# The simple path (the original service's simple-deploy.sh), with kubectl alone: applies the plain
# manifests (kubectl apply -k k8s, rendered from the chart), waits for Redis and the API to roll
# out, and prints the URL. The Secrets counter-api-keys and counter-api-redis must exist first
# (scripts/deploy.sh deploy makes them and does the rest, with helm when it is installed).
#   scripts/simple-deploy.sh            NAMESPACE [counter-api], TIMEOUT [300s]
set -euo pipefail
cd "$(dirname "$0")/.."
ns=${NAMESPACE:-counter-api}
timeout=${TIMEOUT:-300s}
die() { echo "simple-deploy: $*" >&2; exit 1; }
command -v kubectl >/dev/null || die "kubectl is not installed (https://kubernetes.io/docs/tasks/tools/)"
kubectl config current-context >/dev/null 2>&1 || die "kubectl has no current context: select a cluster (kubectl config use-context NAME)"
[ "$ns" = counter-api ] || die "the plain manifests are for namespace counter-api; use scripts/deploy.sh (helm) for another"
kubectl apply -f k8s/namespace.yaml >/dev/null
for secret in counter-api-keys counter-api-redis; do
  kubectl -n "$ns" get secret "$secret" >/dev/null 2>&1 \
    || die "Secret $secret is missing: run API_KEYS_FILE=keys.txt scripts/deploy.sh deploy once, or create it (docs/deployment.md)"
done
kubectl apply -k k8s
kubectl -n "$ns" rollout status statefulset/counter-api-redis --timeout="$timeout"
kubectl -n "$ns" rollout status deployment/counter-api --timeout="$timeout"
host=$(sed -n 's/^host=//p' k8s/settings.env)
echo "simple-deploy: counter-api is up: https://$host/health"
