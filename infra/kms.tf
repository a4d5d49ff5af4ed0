# One key per use, rotated yearly, kept 30 days after deletion is asked for.
locals {
  kms_keys = {
    eks  = "envelope encryption of Kubernetes Secrets"
    ecr  = "encryption of the ECR repositories"
    logs = "encryption of the flow logs and the control plane's logs"
  }
}

resource "aws_kms_key" "this" {
  for_each = local.kms_keys

  description             = "${var.name}: ${each.value}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = each.key == "logs" ? data.aws_iam_policy_document.kms_logs.json : data.aws_iam_policy_document.kms_account.json
}

resource "aws_kms_alias" "this" {
  for_each = local.kms_keys

  name          = "alias/${var.name}-${each.key}"
  target_key_id = aws_kms_key.this[each.key].key_id
}

# Key policy: the account administers and uses its keys through IAM (the roles of iam-*.tf).
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
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
}

# CloudWatch Logs encrypts with the key itself, so the key policy names the service, for this
# account's log groups in this region only.
data "aws_iam_policy_document" "kms_logs" {
  # checkov:skip=CKV_AWS_111: a key policy's "*" resource is the key itself
  # checkov:skip=CKV_AWS_356: as above: in a key policy "*" names only the key the policy is attached to
  # checkov:skip=CKV_AWS_109: as above: only the account's own IAM principals and the Logs service of its region are named
  source_policy_documents = [data.aws_iam_policy_document.kms_account.json]
  statement {
    sid       = "CloudWatchLogsOfThisAccount"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:*"]
    }
  }
}
