# Versions are pinned exactly: Terraform's range, and the one provider. Upgrades are deliberate
# changes, reviewed with a plan. Only the AWS provider's own resources are used: no registry module
# (nothing hidden, and the whole root module is applied against an AWS emulator in `make test`) and
# no helm or kubernetes provider (what runs inside the cluster is Argo CD's job, k8s/argocd/, so a
# plan never needs to reach the cluster's API).
terraform {
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }

  # Remote state in S3 with S3's own lock file (Terraform 1.10+): no DynamoDB table. The bucket is
  # made once by `scripts/setup-aws.sh bootstrap`; bucket, key and region are given at init
  # (-backend-config), so no account detail is committed.
  backend "s3" {
    use_lockfile = true
    encrypt      = true
  }
}
