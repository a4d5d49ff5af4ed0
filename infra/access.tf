# Who may act inside the cluster, as EKS access entries. The cluster's creator (the operator who
# ran the first apply) is its administrator (cluster.tf, access_config). In push mode the deploy
# role may edit the service's namespace and nothing cluster-wide; GitOps needs no entry (Argo CD
# runs inside the cluster).

resource "aws_eks_access_entry" "deploy" {
  count = var.deploy_mode == "push" ? 1 : 0

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = aws_iam_role.ci["deploy"].arn
  type          = "STANDARD"
}

resource "aws_eks_access_policy_association" "deploy" {
  count = var.deploy_mode == "push" ? 1 : 0

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = aws_eks_access_entry.deploy[0].principal_arn
  policy_arn    = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"

  access_scope {
    type       = "namespace"
    namespaces = [var.namespace]
  }
}
