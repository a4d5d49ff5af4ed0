# Named as the workflow's repository variables: `scripts/setup-aws.sh outputs` prints them (or sets
# them with gh).

output "DEPLOY_ROLE_ARN" {
  description = "The role GitHub Actions assumes by OIDC to push images and deploy."
  value       = module.deploy_role.arn
}

output "PLAN_ROLE_ARN" {
  description = "The read-only role pull requests plan infra/ changes with (OIDC)."
  value       = module.plan_role.arn
}

output "PUBLIC_HOST" {
  description = "The public host name of the API."
  value       = var.host
}

output "AVAILABILITY_ZONES" {
  description = "The three zones, as the TF_VAR_availability_zones the plan workflow passes (JSON)."
  value       = jsonencode(var.availability_zones)
}

output "AWS_REGION" {
  description = "The region of everything."
  value       = var.region
}

output "EKS_CLUSTER" {
  description = "The EKS cluster's name."
  value       = module.eks.cluster_name
}

output "ECR_APP_REPOSITORY" {
  description = "The ECR repository URL of the counter-fcgi image."
  value       = aws_ecr_repository.image["counter-fcgi"].repository_url
}

output "ECR_NGINX_REPOSITORY" {
  description = "The ECR repository URL of the nginx image."
  value       = aws_ecr_repository.image["counter-nginx"].repository_url
}

output "CERTIFICATE_ARN" {
  description = "The ACM certificate for the host: the chart's ingress.aws.certificateArn."
  value       = aws_acm_certificate.api.arn
}

output "VPC_CIDR" {
  description = "The VPC's range: the chart's nginx.realIpFrom and networkPolicy.ingressCIDRs."
  value       = var.vpc_cidr
}

output "certificate_validation_records" {
  description = "The DNS records that validate the certificate, when no Route 53 zone was given."
  value       = [for option in aws_acm_certificate.api.domain_validation_options : { name = option.resource_record_name, type = option.resource_record_type, value = option.resource_record_value }]
}
