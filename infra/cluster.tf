# The EKS cluster: control plane in the private subnets, Secrets encrypted with a key of ours, every
# control-plane log kept, access by EKS access entries (no aws-auth ConfigMap), and standard support
# only (a version past it fails the upgrade policy instead of quietly costing extended support).

data "aws_iam_policy_document" "cluster_trust" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name               = "${var.name}-cluster"
  assume_role_policy = data.aws_iam_policy_document.cluster_trust.json
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "${local.managed_policy}/AmazonEKSClusterPolicy"
}

resource "aws_cloudwatch_log_group" "cluster" {
  # EKS writes to this exact name; made here so that retention and encryption are ours.
  name              = "/aws/eks/${var.name}/cluster"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this["logs"].arn
}

resource "aws_eks_cluster" "this" {
  name     = var.name
  version  = var.kubernetes_version
  role_arn = aws_iam_role.cluster.arn

  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
  # EKS installs its default networking (VPC CNI, kube-proxy, CoreDNS) so the first nodes join
  # with pod networking; addons.tf then takes them over as managed add-ons.
  bootstrap_self_managed_addons = true

  vpc_config {
    subnet_ids              = [for subnet in aws_subnet.private : subnet.id]
    endpoint_private_access = true
    endpoint_public_access  = length(var.public_api_cidrs) > 0
    # No public endpoint: left to AWS (and unused).
    public_access_cidrs = length(var.public_api_cidrs) > 0 ? var.public_api_cidrs : null
  }

  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = true
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = aws_kms_key.this["eks"].arn
    }
  }

  upgrade_policy {
    support_type = "STANDARD"
  }

  depends_on = [
    aws_iam_role_policy_attachment.cluster,
    aws_cloudwatch_log_group.cluster,
  ]
}

# The cluster's OIDC issuer as an IAM identity provider: IRSA (iam-cluster.tf) trusts it.
resource "aws_iam_openid_connect_provider" "cluster" {
  url            = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list = ["sts.amazonaws.com"]
}

locals {
  oidc_issuer = trimprefix(aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://")
}

# Every plan asks EKS whether the pinned version is still in standard support, and warns (a check
# block never stops an apply) with the date it ends, so the upgrade is planned before extended
# support's charges start.
check "kubernetes_version_in_standard_support" {
  data "aws_eks_cluster_versions" "pinned" {
    cluster_versions_only = [var.kubernetes_version]
  }

  assert {
    condition = length(data.aws_eks_cluster_versions.pinned.cluster_versions) == 1 && alltrue([
      for version in data.aws_eks_cluster_versions.pinned.cluster_versions : version.version_status == "STANDARD_SUPPORT"
    ])
    error_message = "EKS ${var.kubernetes_version} is not in standard support (${jsonencode([for v in data.aws_eks_cluster_versions.pinned.cluster_versions : { status = v.version_status, standard_support_ends = v.end_of_standard_support_date }])}): raise kubernetes_version by one minor version."
  }
}
