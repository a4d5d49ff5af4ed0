# The roles GitHub Actions assumes by OIDC (no stored keys). Each trusts exactly the token subjects
# of the jobs that use it (a test evaluates these trust policies against the workflows' jobs):
#   images  the `images` job on a push to main (no environment: subject ref:refs/heads/main):
#           push to the three ECR repositories (our two images, the Redis mirror), nothing else;
#   deploy  push mode only: the `deploy` job in the production environment: pull and verify the
#           images, find the cluster; inside it, edit the service's namespace (access.tf);
#   plan    the infra workflow's pull-request plan: read the state object and describe resources.
# The GitOps job needs no AWS role at all.

locals {
  github_issuer   = "token.actions.githubusercontent.com"
  github_provider = var.create_github_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : data.aws_iam_openid_connect_provider.github[0].arn
  github_subjects = {
    images = ["repo:${var.github_repository}:ref:refs/heads/main"]
    deploy = ["repo:${var.github_repository}:environment:${var.github_environment}"]
    plan   = ["repo:${var.github_repository}:pull_request"]
  }
  ci_roles     = var.deploy_mode == "push" ? toset(["images", "deploy", "plan"]) : toset(["images", "plan"])
  state_bucket = var.state_bucket != "" ? var.state_bucket : "${var.name}-tfstate-${local.account_id}"
}

resource "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 1 : 0

  url            = "https://${local.github_issuer}"
  client_id_list = ["sts.amazonaws.com"]
}

data "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 0 : 1
  url   = "https://${local.github_issuer}"
}

data "aws_iam_policy_document" "github_trust" {
  for_each = local.ci_roles

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.github_provider]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.github_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.github_issuer}:sub"
      values   = local.github_subjects[each.key]
    }
  }
}

resource "aws_iam_role" "ci" {
  for_each = local.ci_roles

  name                 = "${var.name}-${each.key}"
  description          = "GitHub Actions (${join(", ", local.github_subjects[each.key])})"
  assume_role_policy   = data.aws_iam_policy_document.github_trust[each.key].json
  max_session_duration = 3600
}

resource "aws_iam_role_policy" "ci" {
  for_each = local.ci_roles

  name   = each.key
  role   = aws_iam_role.ci[each.key].id
  policy = data.aws_iam_policy_document.ci[each.key].json
}

data "aws_iam_policy_document" "ci" {
  for_each = local.ci_roles

  source_policy_documents = [{
    images = data.aws_iam_policy_document.images.json
    deploy = data.aws_iam_policy_document.deploy.json
    plan   = data.aws_iam_policy_document.plan.json
  }[each.key]]
}

# --- images: push to the three repositories ---------------------------------------------------------

data "aws_iam_policy_document" "images" {
  # checkov:skip=CKV_AWS_356: ecr:GetAuthorizationToken takes no resource ARN
  # checkov:skip=CKV_AWS_111: ecr:GetAuthorizationToken is the only action on "*": it takes no resource ARN
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
  statement {
    sid = "PushTheImagesAndTheRedisMirror"
    actions = [
      "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload",
      "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer", "ecr:InitiateLayerUpload",
      "ecr:PutImage", "ecr:UploadLayerPart",
    ]
    resources = [for repository in aws_ecr_repository.image : repository.arn]
  }
  statement {
    sid       = "EncryptLayers"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this["ecr"].arn]
  }
}

# --- deploy (push mode): pull and verify, find the cluster -------------------------------------------

data "aws_iam_policy_document" "deploy" {
  # checkov:skip=CKV_AWS_356: ecr:GetAuthorizationToken takes no resource ARN
  # checkov:skip=CKV_AWS_111: ecr:GetAuthorizationToken is the only action on "*": it takes no resource ARN
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
  statement {
    sid       = "PullToVerifySignatures"
    actions   = ["ecr:BatchGetImage", "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer"]
    resources = [for repository in aws_ecr_repository.image : repository.arn]
  }
  statement {
    sid       = "DecryptLayers"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this["ecr"].arn]
  }
  statement {
    sid       = "FindTheCluster"
    actions   = ["eks:DescribeCluster"]
    resources = [aws_eks_cluster.this.arn]
  }
}

# --- plan: the state object, and Describe/Get/List of what the root module manages ---------------

data "aws_iam_policy_document" "plan" {
  # checkov:skip=CKV_AWS_356: Describe/List calls take no resource ARN; no action here reads data (no s3:GetObject beyond the state, no secrets)
  # checkov:skip=CKV_AWS_111: no write action at all
  statement {
    sid       = "ReadTheStateObject"
    actions   = ["s3:GetObject"]
    resources = ["arn:${local.partition}:s3:::${local.state_bucket}/${var.state_key}"]
  }
  statement {
    sid       = "FindTheStateObject"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${local.state_bucket}"]
    condition {
      test     = "StringEquals"
      variable = "s3:prefix"
      # The state object, and the workspace listing `terraform init` makes (prefix env:/).
      values = [var.state_key, "env:/"]
    }
  }
  statement {
    sid = "RefreshWhatTheRootModuleManages"
    actions = [
      "sts:GetCallerIdentity",
      "ec2:DescribeVpcs", "ec2:DescribeVpcAttribute", "ec2:DescribeSubnets", "ec2:DescribeRouteTables",
      "ec2:DescribeInternetGateways", "ec2:DescribeNatGateways", "ec2:DescribeAddresses",
      "ec2:DescribeAddressesAttribute", "ec2:DescribeSecurityGroups", "ec2:DescribeSecurityGroupRules",
      "ec2:DescribeNetworkAcls", "ec2:DescribeFlowLogs", "ec2:DescribeLaunchTemplates",
      "ec2:DescribeLaunchTemplateVersions", "ec2:DescribeAvailabilityZones", "ec2:DescribeTags",
      "eks:DescribeCluster", "eks:DescribeNodegroup", "eks:DescribeAddon", "eks:DescribeAddonVersions",
      "eks:DescribeClusterVersions",
      "eks:DescribeAccessEntry", "eks:ListAssociatedAccessPolicies", "eks:ListTagsForResource",
      "iam:GetRole", "iam:GetRolePolicy", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies",
      "iam:GetOpenIDConnectProvider", "iam:ListOpenIDConnectProviders", "iam:ListRoleTags",
      "kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags",
      "kms:ListAliases",
      "ecr:DescribeRepositories", "ecr:GetLifecyclePolicy", "ecr:ListTagsForResource",
      "acm:DescribeCertificate", "acm:ListTagsForCertificate",
      "logs:DescribeLogGroups", "logs:ListTagsForResource", "logs:ListTagsLogGroup",
      "route53:GetHostedZone", "route53:ListResourceRecordSets", "route53:GetChange",
    ]
    resources = ["*"]
  }
}
