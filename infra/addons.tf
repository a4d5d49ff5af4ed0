# Cluster add-ons, as EKS managed add-ons: EKS keeps them patched for the cluster's version, and an
# upgrade of the cluster shows them in the same plan. Versions are EKS's default for the Kubernetes
# version unless addon_versions pins one. Those that call AWS get their own IRSA role
# (iam-cluster.tf), never the node's.

variable "addon_versions" {
  type        = map(string)
  description = "Pinned add-on versions by name (e.g. { \"aws-ebs-csi-driver\" = \"v1.45.0-eksbuild.2\" }); unset: EKS's default for the Kubernetes version."
  default     = {}
}

locals {
  addons = {
    # Pod networking; enableNetworkPolicy starts the network policy agent, without which every
    # NetworkPolicy of the chart would be accepted and ignored.
    vpc-cni = {
      role          = aws_iam_role.irsa["vpc-cni"].arn
      configuration = jsonencode({ enableNetworkPolicy = "true" })
    }
    kube-proxy = { role = null, configuration = null }
    coredns    = { role = null, configuration = null }
    # Volumes for the Redis StatefulSet (the gp3 StorageClass is k8s/platform/storageclass.yaml).
    aws-ebs-csi-driver = { role = aws_iam_role.irsa["ebs-csi"].arn, configuration = null }
    # Resource metrics for the HorizontalPodAutoscaler (without it the HPA reads <unknown>).
    metrics-server = { role = null, configuration = null }
    # EKS Pod Identity, for workloads that prefer it to IRSA.
    eks-pod-identity-agent = { role = null, configuration = null }
  }
}

resource "aws_eks_addon" "this" {
  for_each = local.addons

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.key
  addon_version               = lookup(var.addon_versions, each.key, null)
  service_account_role_arn    = each.value.role
  configuration_values        = each.value.configuration
  resolve_conflicts_on_create = "OVERWRITE" # takes over what EKS installed at creation
  resolve_conflicts_on_update = "OVERWRITE" # Terraform's settings win over hand edits

  # CoreDNS, the EBS CSI controller and metrics-server are Deployments: they need nodes to become
  # active, and an add-on created before them waits degraded.
  depends_on = [aws_eks_node_group.zone]
}
