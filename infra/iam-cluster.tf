# IAM roles of the cluster's own workloads, by IRSA: each trusts exactly one service account of the
# cluster's OIDC issuer, with the audience STS expects.

locals {
  irsa = {
    vpc-cni = {
      service_account = "kube-system:aws-node"
      managed         = ["AmazonEKS_CNI_Policy"]
    }
    ebs-csi = {
      service_account = "kube-system:ebs-csi-controller-sa"
      managed         = ["service-role/AmazonEBSCSIDriverPolicy"]
    }
    load-balancer-controller = {
      service_account = "kube-system:aws-load-balancer-controller"
      managed         = []
    }
    cluster-autoscaler = {
      service_account = "kube-system:cluster-autoscaler"
      managed         = []
    }
  }
  # Policies of our own, by role (a map literal, so its keys are known at plan time).
  irsa_inline = {
    load-balancer-controller = data.aws_iam_policy_document.load_balancer_controller.json
    cluster-autoscaler       = data.aws_iam_policy_document.cluster_autoscaler.json
  }
  irsa_managed = merge([
    for role, spec in local.irsa : { for policy in spec.managed : "${role}/${policy}" => { role = role, policy = policy } }
  ]...)
}

data "aws_iam_policy_document" "irsa_trust" {
  for_each = local.irsa

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.cluster.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${each.value.service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "irsa" {
  for_each = local.irsa

  name               = "${var.name}-${each.key}"
  description        = "IRSA role of ${each.value.service_account}"
  assume_role_policy = data.aws_iam_policy_document.irsa_trust[each.key].json
}

resource "aws_iam_role_policy_attachment" "irsa" {
  for_each = local.irsa_managed

  role       = aws_iam_role.irsa[each.value.role].name
  policy_arn = "${local.managed_policy}/${each.value.policy}"
}

resource "aws_iam_role_policy" "irsa" {
  for_each = local.irsa_inline

  name   = each.key
  role   = aws_iam_role.irsa[each.key].id
  policy = each.value
}

# --- the cluster autoscaler: may resize only this cluster's node groups -------------------------

data "aws_iam_policy_document" "cluster_autoscaler" {
  # checkov:skip=CKV_AWS_356: Describe* calls of EC2 and Auto Scaling take no resource ARN; the writes below are scoped by tag
  # checkov:skip=CKV_AWS_111: only Describe calls are on "*"; the resize is scoped by the node groups' tag
  statement {
    sid = "Discover"
    actions = [
      "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
      "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
      "autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
      "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements",
    ]
    resources = ["*"]
  }
  statement {
    sid       = "DescribeOwnNodeGroups"
    actions   = ["eks:DescribeNodegroup"]
    resources = ["arn:${local.partition}:eks:${var.region}:${local.account_id}:nodegroup/${var.name}/*/*"]
  }
  # EKS tags each managed node group's Auto Scaling group with the cluster's name.
  statement {
    sid       = "ResizeOwnNodeGroups"
    actions   = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/k8s.io/cluster-autoscaler/${var.name}"
      values   = ["owned"]
    }
  }
}
