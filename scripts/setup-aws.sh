#!/usr/bin/env bash
# The AWS side of counter-api, on the Terraform of infra/ (the original service's setup-aws.sh,
# "EKS cluster and ECR setup with fix capabilities"):
#
#   scripts/setup-aws.sh check        tools, credentials and versions, with what to do for each gap
#   scripts/setup-aws.sh bootstrap    the S3 bucket for Terraform's state (versioned, encrypted), once
#   scripts/setup-aws.sh plan         terraform init + plan into infra/tfplan
#   scripts/setup-aws.sh apply        apply infra/tfplan (run plan first)
#   scripts/setup-aws.sh kubeconfig   kubectl access to the cluster
#   scripts/setup-aws.sh outputs      the workflow's repository variables (set with gh when it is there)
#   scripts/setup-aws.sh fix          diagnose and repair: kubeconfig, the ALB controller's webhook, a stale state lock
#   scripts/setup-aws.sh destroy      destroy everything (asks to type the cluster's name)
#
# Settings: TF_VAR_region, TF_VAR_availability_zones, TF_VAR_host, TF_VAR_github_repository (and the
# other infra/variables.tf, as TF_VAR_*), STATE_BUCKET (default counter-api-tfstate-ACCOUNT),
# STATE_KEY (default counter-api/terraform.tfstate).
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/../infra"

die() { echo "setup-aws: $*" >&2; exit 1; }
say() { echo "setup-aws: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

usage() { sed -n '2,19p' "$self" | sed 's/^# \{0,1\}//'; }

account() { aws sts get-caller-identity --query Account --output text; }
region() { echo "${TF_VAR_region:-${AWS_REGION:-}}"; }
bucket() { echo "${STATE_BUCKET:-counter-api-tfstate-$(account)}"; }

check() {
  local missing=0
  for tool in terraform aws kubectl; do
    if ! have "$tool"; then
      say "missing: $tool ($(case $tool in terraform) echo 'https://developer.hashicorp.com/terraform/install' ;;
        aws) echo 'https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html' ;;
        kubectl) echo 'https://kubernetes.io/docs/tasks/tools/' ;; esac))"
      missing=1
    fi
  done
  [ "$missing" = 0 ] || die "install the tools above first"
  local version
  version=$(terraform version -json 2>/dev/null | sed -n 's/.*"terraform_version": *"\([0-9.]*\)".*/\1/p')
  case $version in 1.1[0-9].*|1.[2-9][0-9].*) ;; *) die "terraform $version: 1.10 or later is needed (S3 state locking)" ;; esac
  aws sts get-caller-identity >/dev/null 2>&1 \
    || die "no AWS credentials: aws configure sso, or AWS_PROFILE, or the AWS_ACCESS_KEY_ID pair"
  [ -n "$(region)" ] || die "set TF_VAR_region (or AWS_REGION), e.g. eu-west-1"
  for variable in TF_VAR_host TF_VAR_github_repository TF_VAR_availability_zones; do
    [ -n "${!variable:-}" ] || die "set $variable (infra/variables.tf says what it is)"
  done
  have helm || say "note: helm is not installed; scripts/deploy.sh will use the plain manifests"
  have gh || say "note: gh is not installed; 'outputs' will print the repository variables instead of setting them"
  say "ready: account $(account), region $(region), terraform $version"
}

init() {
  terraform init -input=false -backend-config="bucket=$(bucket)" \
    -backend-config="key=${STATE_KEY:-counter-api/terraform.tfstate}" -backend-config="region=$(region)" >&2
}

kubeconfig() {
  aws eks update-kubeconfig --name "$(terraform output -raw EKS_CLUSTER)" --region "$(region)" >&2
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
      --server-side-encryption-configuration '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"aws:kms"}}]}'
    aws s3api put-public-access-block --bucket "$b" --public-access-block-configuration \
      BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
    say "state bucket ready: versioned, encrypted, never public"
    ;;
  plan) check; init; terraform plan -input=false -out=tfplan ;;
  apply)
    [ -f tfplan ] || die "no infra/tfplan: run scripts/setup-aws.sh plan first and read it"
    check; init; terraform apply -input=false tfplan; rm -f tfplan
    kubeconfig
    say "next: scripts/setup-aws.sh outputs, then the first deploy (docs/aws.md)"
    ;;
  kubeconfig) check; init; kubeconfig ;;
  outputs)
    init >/dev/null 2>&1 || true
    for name in DEPLOY_ROLE_ARN PLAN_ROLE_ARN AWS_REGION AVAILABILITY_ZONES EKS_CLUSTER PUBLIC_HOST \
                ECR_APP_REPOSITORY ECR_NGINX_REPOSITORY STATE_BUCKET; do
      if [ "$name" = STATE_BUCKET ]; then value=$(bucket); else
        value=$(terraform output -raw "$name") || die "no output $name: has apply run?"
      fi
      if have gh; then
        gh variable set "$name" --body "$value" && say "set repository variable $name"
      else
        echo "$name=$value"
      fi
    done
    say "for the chart (values-aws.yaml / env/production.yaml):"
    for name in CERTIFICATE_ARN VPC_CIDR; do
      echo "$name=$(terraform output -raw "$name")"
    done
    ;;
  fix)
    check; init
    say "kubeconfig: refreshing"
    kubeconfig
    if kubectl get validatingwebhookconfiguration aws-load-balancer-webhook >/dev/null 2>&1 \
      && kubectl -n kube-system rollout status deployment/aws-load-balancer-controller --timeout=60s >/dev/null 2>&1; then
      say "AWS Load Balancer Controller: running, webhook present"
    else
      say "AWS Load Balancer Controller: webhook or deployment missing; reinstalling it"
      terraform apply -input=false -auto-approve -replace=helm_release.load_balancer_controller \
        -target=helm_release.load_balancer_controller
    fi
    lock="$(bucket)/${STATE_KEY:-counter-api/terraform.tfstate}.tflock"
    if aws s3 ls "s3://$lock" >/dev/null 2>&1; then
      say "state lock s3://$lock is held; if no terraform runs now (check your team), remove it with:"
      say "  aws s3 rm s3://$lock"
    else
      say "state lock: free"
    fi
    ;;
  destroy)
    check; init
    cluster=$(terraform output -raw EKS_CLUSTER 2>/dev/null || echo counter-api)
    printf 'This destroys the cluster %s, its Redis volumes, the images and the certificate. Type its name: ' "$cluster" >&2
    read -r answer
    [ "$answer" = "$cluster" ] || die "not destroyed"
    terraform destroy -input=false
    ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
