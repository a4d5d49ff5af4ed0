# What the AWS Load Balancer Controller needs to run the ALB of the chart's Ingress: read the
# network, certificates and protections; create load balancers, target groups and security groups
# tagged with elbv2.k8s.aws/cluster; change or delete only what carries that tag. Written for this
# deployment (ALB, target-type ip, ACM, optional WAF and Shield), from the permissions the
# controller's documentation lists.

locals {
  lbc_tag = "elbv2.k8s.aws/cluster"
  lbc_arns = [
    "arn:${local.partition}:elasticloadbalancing:${var.region}:${local.account_id}:loadbalancer/app/*/*",
    "arn:${local.partition}:elasticloadbalancing:${var.region}:${local.account_id}:loadbalancer/net/*/*",
    "arn:${local.partition}:elasticloadbalancing:${var.region}:${local.account_id}:targetgroup/*/*",
  ]
}

data "aws_iam_policy_document" "load_balancer_controller" {
  # checkov:skip=CKV_AWS_356: Describe*, List* and Get* calls of EC2, ELB, ACM, WAF and Shield take no resource ARN; every write below is scoped by the controller's tag or the ELB service-linked role
  # checkov:skip=CKV_AWS_111: the writes on "*" are conditioned on the controller's tag (created with it, or carrying it)
  # checkov:skip=CKV_AWS_109: as above: security group and tag changes need the elbv2.k8s.aws/cluster tag
  statement {
    sid       = "ElbServiceLinkedRole"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values   = ["elasticloadbalancing.amazonaws.com"]
    }
  }
  statement {
    sid = "Read"
    actions = [
      "ec2:DescribeAccountAttributes", "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones",
      "ec2:DescribeInternetGateways", "ec2:DescribeVpcs", "ec2:DescribeVpcPeeringConnections",
      "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeInstances",
      "ec2:DescribeNetworkInterfaces", "ec2:DescribeTags", "ec2:DescribeRouteTables",
      "ec2:DescribeCoipPools", "ec2:GetCoipPoolUsage", "ec2:GetSecurityGroupsForVpc", "ec2:DescribeIpamPools",
      "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancerAttributes",
      "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeListenerAttributes",
      "elasticloadbalancing:DescribeListenerCertificates", "elasticloadbalancing:DescribeSSLPolicies",
      "elasticloadbalancing:DescribeRules", "elasticloadbalancing:DescribeTargetGroups",
      "elasticloadbalancing:DescribeTargetGroupAttributes", "elasticloadbalancing:DescribeTargetHealth",
      "elasticloadbalancing:DescribeTags", "elasticloadbalancing:DescribeTrustStores",
      "elasticloadbalancing:DescribeCapacityReservation",
      "acm:ListCertificates", "acm:DescribeCertificate", "iam:ListServerCertificates", "iam:GetServerCertificate",
      "cognito-idp:DescribeUserPoolClient", "wafv2:GetWebACL", "wafv2:GetWebACLForResource",
      "waf-regional:GetWebACL", "waf-regional:GetWebACLForResource",
      "shield:GetSubscriptionState", "shield:DescribeProtection",
    ]
    resources = ["*"]
  }
  statement {
    sid = "WebAclAndShieldOfItsLoadBalancers"
    actions = [
      "wafv2:AssociateWebACL", "wafv2:DisassociateWebACL", "waf-regional:AssociateWebACL",
      "waf-regional:DisassociateWebACL", "shield:CreateProtection", "shield:DeleteProtection",
    ]
    resources = ["*"]
  }
  # Security groups: made with the tag, then changed or deleted only while they carry it.
  statement {
    sid       = "CreateSecurityGroups"
    actions   = ["ec2:CreateSecurityGroup"]
    resources = ["*"]
  }
  statement {
    sid       = "TagSecurityGroupsItCreates"
    actions   = ["ec2:CreateTags"]
    resources = ["arn:${local.partition}:ec2:${var.region}:${local.account_id}:security-group/*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["CreateSecurityGroup"]
    }
    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.lbc_tag}"
      values   = ["false"]
    }
  }
  statement {
    sid = "ChangeItsSecurityGroups"
    actions = [
      "ec2:CreateTags", "ec2:DeleteTags", "ec2:AuthorizeSecurityGroupIngress",
      "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup",
    ]
    resources = ["arn:${local.partition}:ec2:${var.region}:${local.account_id}:security-group/*"]
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.lbc_tag}"
      values   = ["false"]
    }
  }
  # The nodes' and the cluster's security groups admit the ALB's (the controller adds those rules).
  statement {
    sid       = "AdmitTheLoadBalancerToPods"
    actions   = ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"]
    resources = ["arn:${local.partition}:ec2:${var.region}:${local.account_id}:security-group/*"]
    condition {
      test     = "StringEquals"
      variable = "ec2:Vpc"
      values   = [aws_vpc.this.arn]
    }
  }
  # Load balancers and target groups: created only with the tag.
  statement {
    sid       = "CreateTaggedLoadBalancers"
    actions   = ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"]
    resources = ["*"]
    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.lbc_tag}"
      values   = ["false"]
    }
  }
  statement {
    sid       = "TagOnCreate"
    actions   = ["elasticloadbalancing:AddTags"]
    resources = local.lbc_arns
    condition {
      test     = "StringEquals"
      variable = "elasticloadbalancing:CreateAction"
      values   = ["CreateTargetGroup", "CreateLoadBalancer"]
    }
    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.lbc_tag}"
      values   = ["false"]
    }
  }
  statement {
    sid = "ChangeItsLoadBalancers"
    actions = [
      "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags",
      "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetIpAddressType",
      "elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:SetSubnets",
      "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:ModifyTargetGroup",
      "elasticloadbalancing:ModifyTargetGroupAttributes", "elasticloadbalancing:DeleteTargetGroup",
      "elasticloadbalancing:ModifyListenerAttributes", "elasticloadbalancing:ModifyCapacityReservation",
    ]
    resources = local.lbc_arns
    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.lbc_tag}"
      values   = ["false"]
    }
  }
  statement {
    sid       = "TargetsOfItsTargetGroups"
    actions   = ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]
    resources = ["arn:${local.partition}:elasticloadbalancing:${var.region}:${local.account_id}:targetgroup/*/*"]
  }
  statement {
    sid = "ListenersAndRules"
    actions = [
      "elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener",
      "elasticloadbalancing:ModifyListener", "elasticloadbalancing:CreateRule",
      "elasticloadbalancing:DeleteRule", "elasticloadbalancing:ModifyRule",
      "elasticloadbalancing:AddListenerCertificates", "elasticloadbalancing:RemoveListenerCertificates",
      "elasticloadbalancing:SetWebAcl",
    ]
    resources = ["*"]
  }
}
