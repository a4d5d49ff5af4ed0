# Versions are pinned: Terraform itself, every provider, every module (main.tf). Upgrades are
# deliberate changes, reviewed with a plan.
terraform {
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.82.2"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "2.17.0"
    }
  }

  # Remote state in S3 with S3's own lock file (Terraform 1.10+): no DynamoDB table. The bucket is
  # made once by `scripts/setup-aws.sh bootstrap`; its name, key and region come from backend.hcl
  # (`terraform init -backend-config=backend.hcl`), so no account detail is committed.
  backend "s3" {
    use_lockfile = true
    encrypt      = true
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project   = "counter-api"
      ManagedBy = "terraform"
    }
  }
}

# The AWS Load Balancer Controller (and Argo CD, when asked for) go into the cluster with Helm,
# authenticated with a short-lived EKS token.
provider "helm" {
  kubernetes {
    host                   = module.eks.cluster_endpoint
    cluster_ca_certificate = base64decode(module.eks.cluster_certificate_authority_data)
    exec {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", module.eks.cluster_name, "--region", var.region]
    }
  }
}
