# Who may act inside the cluster, as EKS access entries. The cluster's creator (the operator who
# ran the first apply) is its administrator (cluster.tf, access_config). In push mode the deploy
# role joins the Kubernetes group counter-api:deployers, which k8s/platform/deploy-access binds to a
# Role in the service's namespace: exactly the kinds the chart makes (PodMonitors and
# PrometheusRules included, which EKS's edit policy does not cover), nothing cluster-wide. GitOps
# needs no entry (Argo CD runs inside the cluster).

resource "aws_eks_access_entry" "deploy" {
  count = var.deploy_mode == "push" ? 1 : 0

  cluster_name      = aws_eks_cluster.this.name
  principal_arn     = aws_iam_role.ci["deploy"].arn
  type              = "STANDARD"
  kubernetes_groups = ["counter-api:deployers"]
}
