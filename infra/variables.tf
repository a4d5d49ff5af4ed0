variable "region" {
  type        = string
  description = "AWS region for everything (e.g. eu-west-1)."
}

variable "name" {
  type        = string
  description = "Name of the deployment: the EKS cluster, the VPC and the prefix of other resources."
  default     = "counter-api"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3 to 32 lowercase letters, digits and dashes."
  }
}

variable "availability_zones" {
  type        = list(string)
  description = "The three availability zones of the region to use (named, so the set never changes by itself when AWS adds one)."
  validation {
    condition     = length(var.availability_zones) == 3
    error_message = "availability_zones must name three zones, e.g. [\"eu-west-1a\", \"eu-west-1b\", \"eu-west-1c\"]."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "The VPC's address range; three private and three public subnets are carved from it. nginx trusts X-Forwarded-For from it (the chart's nginx.realIpFrom)."
  default     = "10.0.0.0/16"
}

variable "kubernetes_version" {
  type        = string
  description = "EKS Kubernetes version, pinned; raise it deliberately, one minor version at a time."
  default     = "1.31"
}

variable "node_instance_types" {
  type        = list(string)
  description = "Instance types of the managed node group (three nodes at least: one Redis pod per node)."
  default     = ["m6i.large"]
}

variable "node_count" {
  type = object({
    min     = number
    desired = number
    max     = number
  })
  description = "Size of the managed node group."
  default     = { min = 3, desired = 3, max = 6 }
}

variable "public_api_cidrs" {
  type        = list(string)
  description = "Addresses allowed to reach the EKS API's public endpoint (the private endpoint is always on). Empty: no public endpoint."
  default     = []
}

variable "host" {
  type        = string
  description = "The public host name of the API (e.g. counter.example.com): the ACM certificate's name."
}

variable "route53_zone_id" {
  type        = string
  description = "Route 53 hosted zone of the host, for the certificate's DNS validation records; empty: create the validation records yourself (outputs.certificate_validation_records)."
  default     = ""
}

variable "github_repository" {
  type        = string
  description = "owner/name of the GitHub repository whose workflow may deploy (its main branch, or the environment below)."
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like owner/name."
  }
}

variable "github_environment" {
  type        = string
  description = "GitHub environment the deploy job runs in (the workflow's is production); the role trusts only it. Empty: trust the main branch instead."
  default     = "production"
}

variable "create_github_oidc_provider" {
  type        = bool
  description = "Create the account's GitHub Actions OIDC provider (there is one per account: false when it exists already)."
  default     = true
}

variable "namespace" {
  type        = string
  description = "Kubernetes namespace of the service; the deploy role may act only there."
  default     = "counter-api"
}

variable "install_argocd" {
  type        = bool
  description = "Install Argo CD with Helm (then apply k8s/argocd/ to let it deploy the service)."
  default     = false
}

variable "image_retention_count" {
  type        = number
  description = "How many images each ECR repository keeps (older ones expire)."
  default     = 50
}
