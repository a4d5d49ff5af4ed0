#!/usr/bin/env bash
# A quick look at a deployed counter-api: workloads, pods and their readiness, recent events, the
# last log lines of each container, and the public health check when HOST or BASE_URL is known.
#   scripts/check-status.sh            NAMESPACE (default counter-api), HOST or BASE_URL optional
set -euo pipefail
ns=${NAMESPACE:-counter-api}
die() { echo "check-status: $*" >&2; exit 1; }
command -v kubectl >/dev/null || die "kubectl is not installed"
kubectl config current-context >/dev/null 2>&1 || die "kubectl has no current context: select a cluster first"
kubectl get namespace "$ns" >/dev/null 2>&1 || die "namespace $ns does not exist (scripts/deploy.sh deploy)"

echo "== workloads"
kubectl -n "$ns" get deployment,statefulset,hpa,pdb
echo "== pods"
kubectl -n "$ns" get pods -o wide
echo "== recent events"
kubectl -n "$ns" get events --sort-by=.lastTimestamp | tail -n 15
echo "== last log lines"
for pod in $(kubectl -n "$ns" get pods -o name); do
  for container in $(kubectl -n "$ns" get "$pod" -o jsonpath='{.spec.containers[*].name}'); do
    echo "-- $pod/$container"
    kubectl -n "$ns" logs "$pod" -c "$container" --tail=5 2>&1 || true
  done
done
base=${BASE_URL:-${HOST:+https://$HOST}}
if [ -n "$base" ]; then
  echo "== $base/health"
  curl -sS --max-time 10 "$base/health" || echo "(no answer)"
  echo
fi
