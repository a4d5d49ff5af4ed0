# One managed node group per zone: the cluster autoscaler (k8s/argocd/) grows the zone a pending pod
# needs, so a Redis pod, bound to its volume's zone, always finds a node there. One group over three
# zones could not promise that (the autoscaler would pick any zone).

data "aws_iam_policy_document" "node_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "${var.name}-node"
  assume_role_policy = data.aws_iam_policy_document.node_trust.json
}

# Joining the cluster and pulling images; the VPC CNI's own permissions are on its IRSA role, not here.
resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset(["AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly"])

  role       = aws_iam_role.node.name
  policy_arn = "${local.managed_policy}/${each.value}"
}

resource "aws_launch_template" "node" {
  name_prefix = "${var.name}-node-"
  description = "counter-api nodes: IMDSv2 only, not reachable from pods; encrypted gp3 root volume"

  # Pods get AWS credentials from IRSA, never from the node: one hop keeps them off the node's role.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = 50
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.name}-node" }
  }
}

resource "aws_eks_node_group" "zone" {
  for_each = aws_subnet.private

  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "${var.name}-${each.key}"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = [each.value.id]
  instance_types  = var.node_instance_types

  scaling_config {
    min_size     = var.nodes_per_zone.min
    desired_size = var.nodes_per_zone.min
    max_size     = var.nodes_per_zone.max
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }

  labels = { "topology.counter-api/zone-group" = each.key }

  lifecycle {
    # The cluster autoscaler owns the current size.
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [
    aws_iam_role_policy_attachment.node,
    # A node joins the cluster through its zone's NAT gateway (image pulls, the EKS API): without
    # the route in place first, the first apply's nodes fail to join.
    aws_route.private_nat,
    aws_route_table_association.private,
  ]
}
