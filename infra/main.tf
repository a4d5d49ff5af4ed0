# From an empty AWS account to the cluster counter-api runs in: a VPC over three zones, EKS with
# a managed node group, ECR for the two images, an ACM certificate for the ALB, the AWS Load
# Balancer Controller, and the role GitHub Actions deploys with. Redis runs in the cluster (the
# chart's Sentinel topology), not in ElastiCache: ElastiCache's AUTH needs in-transit TLS, which
# hiredis 0.14 (Debian 12, what counter-fcgi links) does not have.

data "aws_caller_identity" "current" {}

locals {
  azs = var.availability_zones
  # Deploys come from the named environment when there is one, else from main.
  github_subject = var.github_environment != "" ? "${var.github_repository}:environment:${var.github_environment}" : "${var.github_repository}:ref:refs/heads/main"
  images         = toset(["counter-fcgi", "counter-nginx"])
}

# --- network -------------------------------------------------------------------------------------

module "vpc" {
  # checkov:skip=CKV_TF_1: registry modules are pinned to an exact version, which the registry never changes
  source  = "terraform-aws-modules/vpc/aws"
  version = "5.17.0"

  name            = var.name
  cidr            = var.vpc_cidr
  azs             = local.azs
  private_subnets = [for i in range(3) : cidrsubnet(var.vpc_cidr, 4, i)]
  public_subnets  = [for i in range(3) : cidrsubnet(var.vpc_cidr, 8, 48 + i)]

  enable_nat_gateway     = true
  one_nat_gateway_per_az = true

  # The tags the AWS Load Balancer Controller discovers subnets by.
  public_subnet_tags  = { "kubernetes.io/role/elb" = "1" }
  private_subnet_tags = { "kubernetes.io/role/internal-elb" = "1" }

  enable_flow_log                                 = true
  create_flow_log_cloudwatch_log_group            = true
  create_flow_log_cloudwatch_iam_role             = true
  flow_log_cloudwatch_log_group_retention_in_days = 90
}

# --- cluster -------------------------------------------------------------------------------------

# One key per use, rotated yearly, kept 30 days after deletion is asked for.
resource "aws_kms_key" "this" {
  for_each = {
    eks = "envelope encryption of Kubernetes Secrets"
    ecr = "encryption of the ECR repositories"
  }
  description             = "${var.name}: ${each.value}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms_account.json
}

# Key policy: the account administers and uses its keys through IAM (the roles below).
data "aws_iam_policy_document" "kms_account" {
  # checkov:skip=CKV_AWS_111: a key policy's "*" resource is the key itself; this is AWS's default key policy, access is granted through IAM
  # checkov:skip=CKV_AWS_356: as above: in a key policy "*" names only the key the policy is attached to
  # checkov:skip=CKV_AWS_109: as above: only the account's own IAM principals (root delegates to IAM) are named
  statement {
    sid       = "AccountAdministersThroughIAM"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

module "eks" {
  # checkov:skip=CKV_TF_1: registry modules are pinned to an exact version, which the registry never changes
  source  = "terraform-aws-modules/eks/aws"
  version = "20.31.6"

  cluster_name    = var.name
  cluster_version = var.kubernetes_version
  vpc_id          = module.vpc.vpc_id
  subnet_ids      = module.vpc.private_subnets

  cluster_endpoint_private_access      = true
  cluster_endpoint_public_access       = length(var.public_api_cidrs) > 0
  cluster_endpoint_public_access_cidrs = var.public_api_cidrs

  enable_irsa               = true
  cluster_enabled_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
  create_kms_key            = false
  cluster_encryption_config = {
    provider_key_arn = aws_kms_key.this["eks"].arn
    resources        = ["secrets"]
  }

  authentication_mode                      = "API"
  enable_cluster_creator_admin_permissions = true

  eks_managed_node_groups = {
    default = {
      instance_types = var.node_instance_types
      min_size       = var.node_count.min
      desired_size   = var.node_count.desired
      max_size       = var.node_count.max
      subnet_ids     = module.vpc.private_subnets
    }
  }

  # The deploy role may act in the service's namespace only (edit there, nothing cluster-wide).
  access_entries = {
    deploy = {
      principal_arn = module.deploy_role.arn
      policy_associations = {
        namespace_edit = {
          policy_arn = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"
          access_scope = {
            type       = "namespace"
            namespaces = [var.namespace]
          }
        }
      }
    }
  }
}

# --- images ----------------------------------------------------------------------------------------

resource "aws_ecr_repository" "image" {
  for_each = local.images

  name                 = each.key
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.this["ecr"].arn
  }
}

resource "aws_ecr_lifecycle_policy" "image" {
  for_each   = aws_ecr_repository.image
  repository = each.value.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the newest ${var.image_retention_count} images"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = var.image_retention_count
      }
      action = { type = "expire" }
    }]
  })
}

# --- TLS at the ALB ----------------------------------------------------------------------------------

resource "aws_acm_certificate" "api" {
  domain_name       = var.host
  validation_method = "DNS"

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "certificate_validation" {
  for_each = var.route53_zone_id == "" ? {} : {
    for option in aws_acm_certificate.api.domain_validation_options : option.domain_name => option
  }

  zone_id = var.route53_zone_id
  name    = each.value.resource_record_name
  type    = each.value.resource_record_type
  records = [each.value.resource_record_value]
  ttl     = 300
}

resource "aws_acm_certificate_validation" "api" {
  count                   = var.route53_zone_id == "" ? 0 : 1
  certificate_arn         = aws_acm_certificate.api.arn
  validation_record_fqdns = [for record in aws_route53_record.certificate_validation : record.fqdn]
}

# --- the AWS Load Balancer Controller ------------------------------------------------------------

module "load_balancer_controller_role" {
  # checkov:skip=CKV_TF_1: registry modules are pinned to an exact version, which the registry never changes
  source  = "terraform-aws-modules/iam/aws//modules/iam-role-for-service-accounts-eks"
  version = "5.52.2"

  role_name                              = "${var.name}-load-balancer-controller"
  attach_load_balancer_controller_policy = true
  oidc_providers = {
    cluster = {
      provider_arn               = module.eks.oidc_provider_arn
      namespace_service_accounts = ["kube-system:aws-load-balancer-controller"]
    }
  }
}

resource "helm_release" "load_balancer_controller" {
  name       = "aws-load-balancer-controller"
  namespace  = "kube-system"
  repository = "https://aws.github.io/eks-charts"
  chart      = "aws-load-balancer-controller"
  version    = "1.11.0"

  set {
    name  = "clusterName"
    value = module.eks.cluster_name
  }
  set {
    name  = "vpcId"
    value = module.vpc.vpc_id
  }
  set {
    name  = "region"
    value = var.region
  }
  set {
    name  = "serviceAccount.name"
    value = "aws-load-balancer-controller"
  }
  set {
    name  = "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn"
    value = module.load_balancer_controller_role.iam_role_arn
  }
}

resource "helm_release" "argocd" {
  count            = var.install_argocd ? 1 : 0
  name             = "argocd"
  namespace        = "argocd"
  create_namespace = true
  repository       = "https://argoproj.github.io/argo-helm"
  chart            = "argo-cd"
  version          = "7.7.11"
}

# --- the deploy role of GitHub Actions -------------------------------------------------------------

module "github_oidc_provider" {
  # checkov:skip=CKV_TF_1: registry modules are pinned to an exact version, which the registry never changes
  source  = "terraform-aws-modules/iam/aws//modules/iam-github-oidc-provider"
  version = "5.52.2"

  create = var.create_github_oidc_provider
}

# Trusts only this repository's deploy environment (or main); may push to the two repositories
# and find the cluster; what it may do inside the cluster is the access entry above.
module "deploy_role" {
  # checkov:skip=CKV_TF_1: registry modules are pinned to an exact version, which the registry never changes
  source  = "terraform-aws-modules/iam/aws//modules/iam-github-oidc-role"
  version = "5.52.2"

  name     = "${var.name}-deploy"
  subjects = [local.github_subject]
  policies = {
    deploy = aws_iam_policy.deploy.arn
  }
}

data "aws_iam_policy_document" "deploy" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
  statement {
    sid = "PushTheTwoImages"
    actions = [
      "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload", "ecr:DescribeImages",
      "ecr:GetDownloadUrlForLayer", "ecr:InitiateLayerUpload", "ecr:PutImage", "ecr:UploadLayerPart",
    ]
    resources = [for repository in aws_ecr_repository.image : repository.arn]
  }
  statement {
    sid       = "EncryptLayers"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this["ecr"].arn]
  }
  statement {
    sid       = "FindTheCluster"
    actions   = ["eks:DescribeCluster"]
    resources = [module.eks.cluster_arn]
  }
}

resource "aws_iam_policy" "deploy" {
  name        = "${var.name}-deploy"
  description = "Push counter-api's images and find its cluster (GitHub Actions, by OIDC)."
  policy      = data.aws_iam_policy_document.deploy.json
}

# Pull requests that touch infra/ get a plan, with a role that can read and nothing else (the plan
# runs with -lock=false: taking the state lock would be a write).
module "plan_role" {
  # checkov:skip=CKV_TF_1: registry modules are pinned to an exact version, which the registry never changes
  source  = "terraform-aws-modules/iam/aws//modules/iam-github-oidc-role"
  version = "5.52.2"

  name     = "${var.name}-plan"
  subjects = ["${var.github_repository}:pull_request"]
  policies = {
    read_only = "arn:aws:iam::aws:policy/ReadOnlyAccess"
  }
}
