# Upper-case outputs are named as the values that read them: the workflows' repository variables
# (`scripts/setup-aws.sh outputs` sets them with gh, or prints them) and the cluster facts Argo CD's
# platform applications and the chart's AWS profile take (`setup-aws.sh outputs` writes
# k8s/argocd/cluster.yaml). A test checks every name read is an output here.

output "AWS_REGION" {
  description = "The region of everything."
  value       = var.region
}

output "EKS_CLUSTER" {
  description = "The EKS cluster's name."
  value       = aws_eks_cluster.this.name
}

output "IMAGES_ROLE_ARN" {
  description = "The role the images job assumes (OIDC, main only) to push to the two repositories."
  value       = aws_iam_role.ci["images"].arn
}

output "DEPLOY_ROLE_ARN" {
  description = "The role the push-mode deploy job assumes (OIDC, the production environment); empty in GitOps mode."
  value       = var.deploy_mode == "push" ? aws_iam_role.ci["deploy"].arn : ""
}

output "PLAN_ROLE_ARN" {
  description = "The role pull requests plan infra/ changes with (OIDC): reads the state and describes resources."
  value       = aws_iam_role.ci["plan"].arn
}

output "STATE_BUCKET" {
  description = "The bucket of Terraform's state, as the plan workflow initialises its backend with."
  value       = local.state_bucket
}

output "PUBLIC_HOST" {
  description = "The public host name of the API."
  value       = var.host
}

output "ECR_APP_REPOSITORY" {
  description = "The ECR repository URL of the counter-fcgi image."
  value       = aws_ecr_repository.image["counter-fcgi"].repository_url
}

output "ECR_NGINX_REPOSITORY" {
  description = "The ECR repository URL of the nginx image."
  value       = aws_ecr_repository.image["counter-nginx"].repository_url
}

output "ECR_REDIS_REPOSITORY" {
  description = "The ECR repository URL of the Redis mirror (the pipeline copies the chart's Redis there by digest)."
  value       = aws_ecr_repository.image["redis"].repository_url
}

output "CERTIFICATE_ARN" {
  description = "The ACM certificate for the host: the chart's ingress.aws.certificateArn."
  value       = aws_acm_certificate.api.arn
}

output "PUBLIC_SUBNET_CIDRS" {
  description = "The public subnets' ranges, where the ALB's addresses are: the chart's nginx.realIpFrom and networkPolicy.ingressCIDRs (JSON list)."
  value       = jsonencode([for zone in var.availability_zones : aws_subnet.public[zone].cidr_block])
}

output "VPC_ID" {
  description = "The VPC: the AWS Load Balancer Controller's vpcId."
  value       = aws_vpc.this.id
}

output "LOAD_BALANCER_CONTROLLER_ROLE_ARN" {
  description = "The IRSA role of the AWS Load Balancer Controller's service account."
  value       = aws_iam_role.irsa["load-balancer-controller"].arn
}

output "CLUSTER_AUTOSCALER_ROLE_ARN" {
  description = "The IRSA role of the cluster autoscaler's service account."
  value       = aws_iam_role.irsa["cluster-autoscaler"].arn
}

output "STORAGE_CLASS" {
  description = "The default StorageClass the Redis volumes use (k8s/platform/storageclass.yaml, needs the EBS CSI add-on)."
  value       = "gp3"
}

output "certificate_validation_records" {
  description = "The DNS records that validate the certificate, when no Route 53 zone was given."
  value       = [for option in aws_acm_certificate.api.domain_validation_options : { name = option.resource_record_name, type = option.resource_record_type, value = option.resource_record_value }]
}
