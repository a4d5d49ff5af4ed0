#!/usr/bin/env bash
# The AWS side of counter-api, on the Terraform of infra/ (the original service's setup-aws.sh,
# "EKS cluster and ECR setup with fix capabilities"):
#
#   scripts/setup-aws.sh check        tools, credentials, settings, the Kubernetes version's support and
#                                     your address in the API allowlist, with what to do for each gap
#   scripts/setup-aws.sh bootstrap    the S3 bucket for Terraform's state (versioned, encrypted, TLS only), once
#   scripts/setup-aws.sh plan [ARG..] terraform init + plan into infra/tfplan (ARGs go to terraform plan)
#   scripts/setup-aws.sh apply        apply infra/tfplan (run plan first), then bootstrap Argo CD
#   scripts/setup-aws.sh argocd       install Argo CD and its applications (k8s/argocd/): needs the cluster
#   scripts/setup-aws.sh kubeconfig   kubectl access to the cluster
#   scripts/setup-aws.sh outputs      the workflows' repository variables (set with gh when it is there)
#                                     and the platform values Argo CD reads (k8s/platform/values/)
#   scripts/setup-aws.sh fix          diagnose and repair: kubeconfig, Argo CD's applications, a stale state lock
#   scripts/setup-aws.sh destroy      delete the ALB and the Redis volumes, then destroy everything
#                                     (asks to type the cluster's name, and again before deleting images)
#
# Settings: infra/env/production.tfvars (TFVARS names another file), STATE_BUCKET (default
# NAME-tfstate-ACCOUNT), STATE_KEY (default counter-api/terraform.tfstate), OPERATOR_CIDR (your
# address for the API allowlist; default: asked of checkip.amazonaws.com), CLUSTER_GONE=1 (destroy
# without the in-cluster cleanup, when the cluster's API is already gone).
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/infra"
tfvars="${TFVARS:-$root/infra/env/production.tfvars}"
# Versions of what the bootstrap installs from the operator's machine (Argo CD manages the rest).
argocd_chart_version=7.9.1

die() { echo "setup-aws: $*" >&2; exit 1; }
say() { echo "setup-aws: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

usage() { sed -n '2,23p' "$self" | sed 's/^# \{0,1\}//'; }

# A string setting of the tfvars file (region = "eu-west-1"), or empty.
setting() { sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"\([^\"]*\)\".*/\1/p" "$tfvars" | head -n 1; }
account() { aws sts get-caller-identity --query Account --output text; }
region() { setting region; }
bucket() { echo "${STATE_BUCKET:-$(setting name | grep . || echo counter-api)-tfstate-$(account)}"; }
state_key() { echo "${STATE_KEY:-counter-api/terraform.tfstate}"; }
tf_vars() { echo "-var-file=$tfvars"; }

check() {
  local missing=0
  for tool in terraform aws; do
    if ! have "$tool"; then
      say "missing: $tool ($(case $tool in terraform) echo 'https://developer.hashicorp.com/terraform/install' ;;
        aws) echo 'https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html' ;; esac))"
      missing=1
    fi
  done
  [ "$missing" = 0 ] || die "install the tools above first"
  have kubectl || say "note: kubectl is missing (https://kubernetes.io/docs/tasks/tools/): argocd, fix and destroy's cleanup need it"
  have helm || say "note: helm is missing (https://helm.sh/docs/intro/install/): the Argo CD bootstrap needs it"
  local version
  version=$(terraform version -json 2>/dev/null | sed -n 's/.*"terraform_version": *"\([0-9.]*\)".*/\1/p')
  case $version in 1.1[0-9].*|1.[2-9][0-9].*) ;; *) die "terraform $version: 1.10 or later is needed (S3 state locking)" ;; esac
  [ -f "$tfvars" ] || die "no $tfvars: copy infra/env/production.tfvars and set your values"
  aws sts get-caller-identity >/dev/null 2>&1 \
    || die "no AWS credentials: aws configure sso, or AWS_PROFILE, or the AWS_ACCESS_KEY_ID pair"
  [ -n "$(region)" ] || die "set region in $tfvars, e.g. region = \"eu-west-1\""
  for variable in host github_repository; do
    [ -n "$(setting "$variable")" ] || die "set $variable in $tfvars (infra/variables.tf says what it is)"
  done
  case "$(setting host) $(setting github_repository)" in
    *example.com*|*example-org*) die "$tfvars still has the example host or repository: set yours" ;;
  esac
  local kubernetes
  kubernetes=$(setting kubernetes_version)
  kubernetes=${kubernetes:-$(sed -n '/variable "kubernetes_version"/,/^}/s/.*default *= *"\(.*\)"/\1/p' variables.tf)}
  local support
  if support=$(aws eks describe-cluster-versions --region "$(region)" --cluster-versions "$kubernetes" \
      --query 'clusterVersions[0].[status,endOfStandardSupportDate]' --output text 2>/dev/null); then
    case $support in
      STANDARD_SUPPORT*) say "Kubernetes $kubernetes: in standard support until ${support#*[[:space:]]}" ;;
      *) say "warning: Kubernetes $kubernetes is not in standard support ($support): raise kubernetes_version in $tfvars" ;;
    esac
  else
    say "note: could not ask EKS about Kubernetes $kubernetes (aws eks describe-cluster-versions): check its support dates"
  fi
  local address=${OPERATOR_CIDR:-}
  if [ -z "$address" ] && have curl; then
    address=$(curl -fsS --max-time 5 https://checkip.amazonaws.com 2>/dev/null | tr -d '[:space:]')
    [ -n "$address" ] && address="$address/32"
  fi
  if [ -z "$address" ]; then
    say "note: could not find your public address; put it in public_api_cidrs for kubectl and the Argo CD bootstrap"
  elif grep -q "^[[:space:]]*public_api_cidrs[[:space:]]*=.*\"$address\"" "$tfvars"; then
    say "your address $address may reach the cluster's API (public_api_cidrs)"
  else
    say "note: your address $address is not in public_api_cidrs of $tfvars: add it to bootstrap Argo CD and use kubectl from here"
  fi
  say "ready: account $(account), region $(region), terraform $version"
}

init() {
  terraform init -input=false -reconfigure -backend-config="bucket=$(bucket)" \
    -backend-config="key=$(state_key)" -backend-config="region=$(region)" >&2
}

output() { terraform output -raw "$1"; }

kubeconfig() {
  have kubectl || die "kubectl is needed for this"
  aws eks update-kubeconfig --name "$(output EKS_CLUSTER)" --region "$(region)" >&2
}

# The cluster's API answers from here (a real cluster, and this address in its allowlist).
cluster_reachable() {
  have kubectl && kubeconfig 2>/dev/null && kubectl --request-timeout=10s get namespace kube-system >/dev/null 2>&1
}

needs_cluster() {
  die "$1 needs the real cluster's API, reachable from here: it did not answer (is your address in public_api_cidrs? has apply run?)"
}

argocd() {
  cluster_reachable || needs_cluster "the Argo CD bootstrap"
  have helm || die "helm is needed for the Argo CD bootstrap"
  if grep -rqs 'REPLACE' "$root/k8s/platform/values"; then
    die "k8s/platform/values/ still has placeholders: run scripts/setup-aws.sh outputs, commit and push them first"
  fi
  helm upgrade --install argocd argo-cd --repo https://argoproj.github.io/argo-helm --version "$argocd_chart_version" \
    --namespace argocd --create-namespace --wait --timeout 10m >&2
  kubectl apply -f "$root/k8s/argocd/appproject.yaml" -f "$root/k8s/argocd/platform.yaml" >&2
  # GitOps: Argo CD deploys counter-api. Push: the pipeline does, into the namespace and with the
  # permissions Argo CD keeps for it.
  if [ "$(setting deploy_mode)" = push ]; then
    kubectl apply -f "$root/k8s/argocd/push-mode.yaml" >&2
  else
    kubectl apply -f "$root/k8s/argocd/application.yaml" >&2
  fi
  say "Argo CD installed; it now syncs the platform (load balancer controller, autoscaler, storage) and counter-api"
}

# Images in the two repositories (0 when they are gone).
image_count() {
  local total=0 repository count
  for repository in counter-fcgi counter-nginx redis; do
    count=$(aws ecr list-images --region "$(region)" --repository-name "$repository" --query 'length(imageIds)' --output text 2>/dev/null || echo 0)
    total=$((total + count))
  done
  echo "$total"
}

# The load balancers the AWS Load Balancer Controller made for this cluster.
cluster_load_balancers() {
  local arn
  for arn in $(aws elbv2 describe-load-balancers --region "$(region)" --query 'LoadBalancers[].LoadBalancerArn' --output text 2>/dev/null); do
    aws elbv2 describe-tags --region "$(region)" --resource-arns "$arn" \
      --query "TagDescriptions[].Tags[?Key=='elbv2.k8s.aws/cluster' && Value=='$1'][]" --output text | grep -q . && echo "$arn"
  done
}

wait_until_empty() {  # DESCRIPTION SECONDS COMMAND...
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  while [ -n "$("$@")" ]; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what still there after ${seconds}s; see docs/aws.md (tearing down)"
    sleep 10
  done
}

# What the cluster made in the VPC and in EBS, which Terraform does not know: the ALB (and its
# security groups) of the Ingress, and the Redis volumes. Left behind, they block the VPC's
# deletion and cost money.
cluster_cleanup() {
  local cluster=$1 namespace
  namespace=$(setting namespace)
  namespace=${namespace:-counter-api}
  if kubectl -n argocd get application counter-api >/dev/null 2>&1; then
    say "deleting the Argo CD application counter-api (and everything it made)"
    kubectl -n argocd delete application counter-api --wait=true --timeout=10m >&2
  fi
  kubectl -n "$namespace" delete ingress --all --wait=true --timeout=5m >&2 || true
  say "waiting for the ALB to go"
  wait_until_empty "the ALB" 600 cluster_load_balancers "$cluster"
  say "deleting the Redis volumes (their PersistentVolumeClaims; the gp3 class deletes the EBS volumes)"
  kubectl -n "$namespace" delete statefulset --all --wait=true --timeout=5m >&2 || true
  kubectl -n "$namespace" delete pvc --all --wait=true --timeout=5m >&2 || true
  wait_until_empty "the Redis volumes" 600 \
    kubectl get pv -o jsonpath="{range .items[?(@.spec.claimRef.namespace==\"$namespace\")]}{.metadata.name}{end}"
  # The platform applications (the controllers) go last: the ALB's deletion needed its controller.
  kubectl -n argocd delete applications --all --wait=true --timeout=10m >&2 || true
}

case ${1:-} in
  check) check ;;
  bootstrap)
    check
    b=$(bucket)
    if aws s3api head-bucket --bucket "$b" 2>/dev/null; then
      say "state bucket $b exists"
    else
      say "creating the state bucket $b"
      if [ "$(region)" = us-east-1 ]; then
        aws s3api create-bucket --bucket "$b" >/dev/null
      else
        aws s3api create-bucket --bucket "$b" --create-bucket-configuration "LocationConstraint=$(region)" >/dev/null
      fi
    fi
    aws s3api put-bucket-versioning --bucket "$b" --versioning-configuration Status=Enabled
    aws s3api put-bucket-encryption --bucket "$b" \
      --server-side-encryption-configuration '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"aws:kms"},"BucketKeyEnabled":true}]}'
    aws s3api put-public-access-block --bucket "$b" --public-access-block-configuration \
      BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
    aws s3api put-bucket-policy --bucket "$b" --policy "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Sid\":\"TlsOnly\",\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":\"s3:*\",\"Resource\":[\"arn:aws:s3:::$b\",\"arn:aws:s3:::$b/*\"],\"Condition\":{\"Bool\":{\"aws:SecureTransport\":\"false\"}}}]}"
    say "state bucket ready: versioned, encrypted, never public, TLS only"
    ;;
  plan)
    shift
    check; init
    terraform plan -input=false "$(tf_vars)" -out=tfplan "$@"
    ;;
  apply)
    [ -f tfplan ] || die "no infra/tfplan: run scripts/setup-aws.sh plan first and read it"
    check; init; terraform apply -input=false tfplan; rm -f tfplan
    if cluster_reachable; then
      argocd
    else
      say "Argo CD not bootstrapped: the cluster's API does not answer from here (needs a real cluster and"
      say "your address in public_api_cidrs); then: scripts/setup-aws.sh outputs, commit, scripts/setup-aws.sh argocd"
    fi
    say "next: scripts/setup-aws.sh outputs, then the first deploy (docs/aws.md)"
    ;;
  argocd) check; init; argocd ;;
  kubeconfig) check; init; kubeconfig ;;
  outputs)
    init >/dev/null 2>&1 || true
    for name in IMAGES_ROLE_ARN DEPLOY_ROLE_ARN PLAN_ROLE_ARN AWS_REGION EKS_CLUSTER PUBLIC_HOST \
                ECR_APP_REPOSITORY ECR_NGINX_REPOSITORY ECR_REDIS_REPOSITORY STATE_BUCKET; do
      value=$(output "$name") || die "no output $name: has apply run?"
      [ -n "$value" ] || continue   # DEPLOY_ROLE_ARN in GitOps mode
      if have gh; then
        gh variable set "$name" --body "$value" && say "set repository variable $name"
      else
        echo "$name=$value"
      fi
    done
    cluster=$(output EKS_CLUSTER)
    mkdir -p "$root/k8s/platform/values"
    cat >"$root/k8s/platform/values/aws-load-balancer-controller.yaml" <<EOF
# Written by scripts/setup-aws.sh outputs from Terraform's outputs; commit it (Argo CD reads it).
clusterName: $cluster
region: $(output AWS_REGION)
vpcId: $(output VPC_ID)
serviceAccount:
  name: aws-load-balancer-controller
  annotations:
    eks.amazonaws.com/role-arn: $(output LOAD_BALANCER_CONTROLLER_ROLE_ARN)
EOF
    cat >"$root/k8s/platform/values/cluster-autoscaler.yaml" <<EOF
# Written by scripts/setup-aws.sh outputs from Terraform's outputs; commit it (Argo CD reads it).
autoDiscovery:
  clusterName: $cluster
awsRegion: $(output AWS_REGION)
rbac:
  serviceAccount:
    name: cluster-autoscaler
    annotations:
      eks.amazonaws.com/role-arn: $(output CLUSTER_AUTOSCALER_ROLE_ARN)
EOF
    say "wrote k8s/platform/values/: commit and push them (Argo CD reads them from the repository)"
    say "for the chart (k8s/chart/env/production.yaml):"
    echo "CERTIFICATE_ARN=$(output CERTIFICATE_ARN)"
    echo "PUBLIC_SUBNET_CIDRS=$(output PUBLIC_SUBNET_CIDRS)"
    echo "STORAGE_CLASS=$(output STORAGE_CLASS)"
    ;;
  fix)
    check; init
    cluster_reachable || needs_cluster "fix"
    say "kubeconfig: refreshed"
    if kubectl -n argocd get applications >/dev/null 2>&1; then
      kubectl -n argocd get applications -o custom-columns=NAME:.metadata.name,SYNC:.status.sync.status,HEALTH:.status.health.status >&2
      for app in $(kubectl -n argocd get applications -o jsonpath='{range .items[?(@.status.sync.status!="Synced")]}{.metadata.name}{" "}{end}'); do
        say "application $app is not synced: asking Argo CD to refresh it"
        kubectl -n argocd annotate application "$app" argocd.argoproj.io/refresh=hard --overwrite >&2
      done
    else
      say "Argo CD is not installed: scripts/setup-aws.sh argocd"
    fi
    lock="$(bucket)/$(state_key).tflock"
    if aws s3 ls "s3://$lock" >/dev/null 2>&1; then
      say "state lock s3://$lock is held; if no terraform runs now (check your team), remove it with:"
      say "  aws s3 rm s3://$lock"
    else
      say "state lock: free"
    fi
    ;;
  destroy)
    check; init
    cluster=$(output EKS_CLUSTER 2>/dev/null || echo counter-api)
    printf 'This destroys the cluster %s, its load balancer, its Redis volumes (the counter with them), the images and the certificate. Type its name: ' "$cluster" >&2
    read -r answer
    [ "$answer" = "$cluster" ] || die "not destroyed"
    if [ "${CLUSTER_GONE:-0}" = 1 ]; then
      say "CLUSTER_GONE=1: no in-cluster cleanup; an ALB or volumes the cluster made are left to delete by hand"
    elif cluster_reachable; then
      cluster_cleanup "$cluster"
    else
      needs_cluster "deleting the ALB and the Redis volumes before the destroy (CLUSTER_GONE=1 skips it)"
    fi
    images=$(image_count)
    force=()
    if [ "$images" -gt 0 ]; then
      printf 'The repositories hold %s images; type "delete images" to delete them with the repositories: ' "$images" >&2
      read -r answer
      [ "$answer" = "delete images" ] || die "not destroyed (the images stay; nothing was destroyed yet)"
      # force_delete must be in the state before destroy reads it.
      terraform apply -input=false -auto-approve "$(tf_vars)" -var ecr_force_delete=true -target=aws_ecr_repository.image >&2
      force=(-var ecr_force_delete=true)
    fi
    terraform destroy -input=false -auto-approve "$(tf_vars)" "${force[@]}"
    say "destroyed; the state bucket $(bucket) stays (delete it by hand when no state is wanted)"
    ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
