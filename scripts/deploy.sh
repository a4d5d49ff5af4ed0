#!/usr/bin/env bash
# Deploys counter-fcgi to the Kubernetes cluster of the current kubectl context (the original
# service's deploy interface). With helm on the PATH it installs or upgrades the chart (k8s/chart);
# without it, it applies the plain manifests rendered from that chart (k8s/, kubectl apply -k).
#   scripts/deploy.sh deploy    Secrets if missing, then the chart or the manifests (host and images set), wait
#   scripts/deploy.sh secrets   only the Secrets (GitOps: Argo CD installs the chart, never the keys)
#   scripts/deploy.sh status    what runs, rollout state
#   scripts/deploy.sh test      /health, /read, POST /write through the ingress, with the API key
#   scripts/deploy.sh rollback  back to the release before the last (helm), waiting for it
#   scripts/deploy.sh cleanup   delete everything, Redis data included (asks CONFIRM=yes)
#   scripts/deploy.sh render    print what deploy would apply (no cluster needed)
# Settings: HOST (public host; default k8s/settings.env), APP_IMAGE, NGINX_IMAGE, REDIS_IMAGE
# (registry/name:tag or name@sha256:..., pinned by the pipeline), API_KEYS_FILE or API_KEY (keys for
# the counter-api-keys Secret on first deploy, or to replace them), API_KEY (for `test`),
# VALUES (space-separated extra values files for the chart, e.g. k8s/chart/values-aws.yaml),
# CERTIFICATE_ARN (the ACM certificate of the AWS profile's ALB),
# USE_HELM (auto, 1 or 0), BASE_URL (default https://$HOST), NAMESPACE (default counter-api),
# TIMEOUT (default 300s).
set -euo pipefail
cd "$(dirname "$0")/.."
ns=${NAMESPACE:-counter-api}
timeout=${TIMEOUT:-300s}

die() { echo "deploy: $*" >&2; exit 1; }
usage() { echo "usage: scripts/deploy.sh deploy|secrets|status|test|rollback|cleanup|render" >&2; exit 2; }
need_cluster() {
  command -v kubectl >/dev/null || die "kubectl is not installed (https://kubernetes.io/docs/tasks/tools/)"
  kubectl config current-context >/dev/null 2>&1 || die "kubectl has no current context: select a cluster (kubectl config use-context NAME)"
}
host() { echo "${HOST:-$(sed -n 's/^host=//p' k8s/settings.env)}"; }

use_helm() {
  case ${USE_HELM:-auto} in
    1) command -v helm >/dev/null || die "USE_HELM=1 but helm is not installed (https://helm.sh/docs/intro/install/)"; return 0 ;;
    0) return 1 ;;
    *) command -v helm >/dev/null ;;
  esac
}
# The chart's flags for one image: repository plus tag or digest.
image_args() {  # KEY REF
  local key=$1 ref=$2
  case $ref in
    *@sha256:*) chart_args+=(--set "image.$key.repository=${ref%@*}" --set "image.$key.digest=${ref#*@}") ;;
    *:*) chart_args+=(--set "image.$key.repository=${ref%:*}" --set "image.$key.tag=${ref##*:}" --set "image.$key.digest=") ;;
    *) die "$key image '$ref' needs a tag or a digest" ;;
  esac
}
# Fills chart_args with the chart's settings from the environment.
helm_args() {
  chart_args=(--namespace "$ns" --set "host=$(host)")
  [ -n "${APP_IMAGE:-}" ] && image_args app "$APP_IMAGE"
  [ -n "${NGINX_IMAGE:-}" ] && image_args nginx "$NGINX_IMAGE"
  [ -n "${REDIS_IMAGE:-}" ] && image_args redis "$REDIS_IMAGE"
  [ -n "${CERTIFICATE_ARN:-}" ] && chart_args+=(--set "ingress.aws.certificateArn=$CERTIFICATE_ARN")
  local file
  for file in ${VALUES:-}; do
    [ -r "$file" ] || die "VALUES: cannot read $file"
    chart_args+=(-f "$file")
  done
}

render() {
  if use_helm; then
    helm_args
    helm template counter-api k8s/chart "${chart_args[@]}"
    return
  fi
  [ -z "${VALUES:-}" ] || die "VALUES (chart values files) needs helm; without it the plain manifests of k8s/ are applied"
  local work
  work=$(mktemp -d)
  cp -r k8s "$work/"
  printf 'host=%s\n' "$(host)" >"$work/k8s/settings.env"
  (
    cd "$work/k8s"
    [ -n "${APP_IMAGE:-}" ] && set_image localhost/counter-fcgi "$APP_IMAGE"
    [ -n "${NGINX_IMAGE:-}" ] && set_image localhost/counter-nginx "$NGINX_IMAGE"
    [ -n "${REDIS_IMAGE:-}" ] && set_image redis "$REDIS_IMAGE"
    true
  )
  kubectl kustomize "$work/k8s"
  rm -rf "$work"
}
# Rewrites one `images:` entry of the working copy's kustomization (kustomize edit, without kustomize).
set_image() {
  local name=$1 ref=$2 new digest="" tag=""
  case $ref in
    *@sha256:*) new=${ref%@*}; digest=${ref#*@} ;;
    *:*) new=${ref%:*}; tag=${ref##*:} ;;
    *) die "$name image '$ref' needs a tag or a digest" ;;
  esac
  python3 - "$name" "$new" "$tag" "$digest" <<'PY'
import sys, yaml
name, new, tag, digest = sys.argv[1:]
doc = yaml.safe_load(open("kustomization.yaml"))
for image in doc["images"]:
    if image["name"] == name:
        image["newName"] = new
        image.pop("newTag", None); image.pop("digest", None)
        image.update({"digest": digest} if digest else {"newTag": tag})
yaml.safe_dump(doc, open("kustomization.yaml", "w"), sort_keys=False)
PY
}

# The namespace, made when missing. A namespace-scoped identity (the push-mode deploy role on EKS,
# whose namespace Argo CD makes) may not even read namespaces: then it is taken as there.
ensure_namespace() {
  local answer
  answer=$(kubectl get namespace "$ns" 2>&1) && return 0
  case $answer in
    *NotFound*|*"not found"*) kubectl apply -f k8s/namespace.yaml ;;
    *[Ff]orbidden*) echo "deploy: this identity may not read namespaces; taking $ns as made for it" >&2 ;;
    *) die "cannot tell whether namespace $ns exists: $answer" ;;
  esac
}

ensure_secrets() {
  ensure_namespace
  if ! kubectl -n "$ns" get secret counter-api-redis >/dev/null 2>&1; then
    echo "deploy: creating Secret counter-api-redis with random passwords (app user, admin user, Sentinel)" >&2
    kubectl -n "$ns" create secret generic counter-api-redis \
      --from-literal=password="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" \
      --from-literal=admin-password="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" \
      --from-literal=sentinel-password="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" >/dev/null
  fi
  local keys=""
  if [ -n "${API_KEYS_FILE:-}" ]; then
    [ -r "$API_KEYS_FILE" ] || die "API_KEYS_FILE: cannot read $API_KEYS_FILE"
    keys=$(cat "$API_KEYS_FILE")
  elif [ -n "${API_KEY:-}" ]; then
    keys="$API_KEY admin api-key"
  fi
  if [ -n "$keys" ]; then
    # Replaced in place: the nginx sidecars notice the change and reload, with no restart.
    kubectl -n "$ns" create secret generic counter-api-keys --from-literal=api_keys="$keys" \
      --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  elif ! kubectl -n "$ns" get secret counter-api-keys >/dev/null 2>&1; then
    die "no API keys: set API_KEYS_FILE (lines '<key> <scope> [name]') or API_KEY for the first deploy"
  fi
}

cmd=${1:-}
case $cmd in
  secrets)
    need_cluster
    ensure_secrets
    echo "deploy: Secrets counter-api-keys and counter-api-redis are in namespace $ns" >&2
    ;;
  deploy)
    need_cluster
    ensure_secrets
    if use_helm; then
      helm_args
      # A rollout that does not become ready in time is undone at once: the release before it
      # serves again, rather than a half-rolled Deployment (a first install has nothing to go back to).
      if ! helm upgrade --install counter-api k8s/chart "${chart_args[@]}" --wait --timeout "$timeout"; then
        if helm -n "$ns" history counter-api --max 2 2>/dev/null | grep -q deployed; then
          echo "deploy: the upgrade failed; rolling back to the previous release" >&2
          helm -n "$ns" rollback counter-api 0 --wait --timeout "$timeout" || true
        fi
        die "the upgrade failed (see above)"
      fi
    else
      render | kubectl apply -f -
    fi
    kubectl -n "$ns" rollout status statefulset/counter-api-redis --timeout="$timeout"
    kubectl -n "$ns" rollout status deployment/counter-api --timeout="$timeout"
    echo "deploy: counter-api is up on https://$(host)" >&2
    ;;
  status)
    need_cluster
    kubectl -n "$ns" get deployment,statefulset,pods,service,ingress,hpa,pdb -o wide
    kubectl -n "$ns" rollout status deployment/counter-api --timeout=5s || true
    ;;
  test)
    base=${BASE_URL:-https://$(host)}
    [ -n "${API_KEY:-}" ] || die "API_KEY is needed for the test (a key with the write scope)"
    check() {  # METHOD PATH [key]
      local out code
      out=$(curl -sS -X "$1" -w '\n%{http_code}' --max-time 10 ${3:+-H "X-API-Key: $3"} "$base$2") || die "$1 $2: no answer from $base"
      code=${out##*$'\n'}
      [ "$code" = 200 ] || die "$1 $2 answered $code: ${out%$'\n'*}"
      echo "deploy: $1 $2 -> 200 ${out%$'\n'*}" >&2
    }
    check GET /health
    check GET /read "$API_KEY"
    check POST /write "$API_KEY"
    check GET /read "$API_KEY"
    ;;
  rollback)
    need_cluster
    use_helm || die "rollback needs helm (the plain manifests have no history: apply the previous commit's)"
    helm -n "$ns" rollback counter-api 0 --wait --timeout "$timeout"
    kubectl -n "$ns" rollout status deployment/counter-api --timeout="$timeout"
    echo "deploy: counter-api rolled back" >&2
    ;;
  render)
    use_helm || command -v kubectl >/dev/null || die "neither helm nor kubectl is installed (one renders the manifests)"
    render
    ;;
  cleanup)
    need_cluster
    [ "${CONFIRM:-}" = yes ] || die "cleanup deletes namespace $ns and the Redis volume with the counter: run with CONFIRM=yes"
    kubectl delete namespace "$ns" --wait=true --timeout="$timeout"
    ;;
  *) usage ;;
esac
