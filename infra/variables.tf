# Every value an operator sets is in env/production.tfvars (committed): `scripts/setup-aws.sh` and
# the pull-request plan both read that one file, so a plan never falls back to a default the real
# deployment does not use.

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
  description = "The three availability zones of the region (named, so the set never changes by itself when AWS adds one). One node group and one NAT gateway each."
  validation {
    condition     = length(var.availability_zones) == 3 && length(distinct(var.availability_zones)) == 3
    error_message = "availability_zones must name three different zones, e.g. [\"eu-west-1a\", \"eu-west-1b\", \"eu-west-1c\"]."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "The VPC's address range (a /16 is expected): three private /20 subnets for the nodes and pods, three public /24 for the ALB and the NAT gateways."
  default     = "10.0.0.0/16"
  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) <= 16
    error_message = "vpc_cidr must be an IPv4 range of /16 or larger."
  }
}

variable "kubernetes_version" {
  type        = string
  description = "EKS Kubernetes version, pinned; raise it deliberately, one minor version at a time, before its standard support ends (`scripts/setup-aws.sh check` says when)."
  default     = "1.35"
  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version is a minor version such as 1.35."
  }
}

variable "node_instance_types" {
  type        = list(string)
  description = "Instance types of the node groups (one group per zone)."
  default     = ["m6i.large"]
}

variable "nodes_per_zone" {
  type = object({
    min = number
    max = number
  })
  description = "Size of each zone's node group: the cluster autoscaler moves between min and max. One node per zone at least, so a Redis pod's zone (its volume's) always has a node."
  default     = { min = 1, max = 3 }
  validation {
    condition     = var.nodes_per_zone.min >= 1 && var.nodes_per_zone.max >= var.nodes_per_zone.min
    error_message = "nodes_per_zone needs min >= 1 and max >= min."
  }
}

variable "public_api_cidrs" {
  type        = list(string)
  description = "Addresses allowed to reach the EKS API's public endpoint (the private endpoint is always on): the operator's, which `setup-aws.sh check` detects. Empty: no public endpoint. GitOps deploys never need it."
  default     = []
  validation {
    condition     = alltrue([for cidr in var.public_api_cidrs : can(cidrnetmask(cidr)) && cidr != "0.0.0.0/0"])
    error_message = "public_api_cidrs are IPv4 ranges, and never 0.0.0.0/0."
  }
}

variable "host" {
  type        = string
  description = "The public host name of the API (e.g. counter.example.com): the ACM certificate's name."
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$", var.host))
    error_message = "host is a lowercase DNS name such as counter.example.com."
  }
}

variable "route53_zone_id" {
  type        = string
  description = "Route 53 hosted zone of the host, for the certificate's DNS validation records; empty: create the validation records yourself (the output certificate_validation_records)."
  default     = ""
}

variable "github_repository" {
  type        = string
  description = "owner/name of the GitHub repository whose workflows push images (from main) and plan (pull requests)."
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like owner/name."
  }
}

variable "github_environment" {
  type        = string
  description = "GitHub environment of the push-mode deploy job (the workflow's is production): the deploy role trusts only it."
  default     = "production"
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+$", var.github_environment))
    error_message = "github_environment is the name of a GitHub environment."
  }
}

variable "create_github_oidc_provider" {
  type        = bool
  description = "Create the account's GitHub Actions OIDC provider (one per account: false when it exists already, and it is looked up)."
  default     = true
}

variable "deploy_mode" {
  type        = string
  description = "gitops (Argo CD in the cluster pulls the chart and the pinned digests: CI never reaches the cluster) or push (the deploy job runs helm from GitHub's runners: it needs a deploy role and an API endpoint it can reach)."
  default     = "gitops"
  validation {
    condition     = contains(["gitops", "push"], var.deploy_mode)
    error_message = "deploy_mode is gitops or push."
  }
}

variable "namespace" {
  type        = string
  description = "Kubernetes namespace of the service; the push-mode deploy role may act only there."
  default     = "counter-api"
}

variable "image_retention_count" {
  type        = number
  description = "How many images each ECR repository keeps (older ones expire)."
  default     = 50
}

variable "ecr_force_delete" {
  type        = bool
  description = "Let destroy delete the ECR repositories with their images. Off: `setup-aws.sh destroy` turns it on only after the operator confirms."
  default     = false
}

variable "state_bucket" {
  type        = string
  description = "The S3 bucket of Terraform's state (what `setup-aws.sh bootstrap` made): the pull-request plan role may read its state object and nothing else of S3. Empty: NAME-tfstate-ACCOUNT, setup-aws.sh's default."
  default     = ""
}

variable "state_key" {
  type        = string
  description = "The key of the state object in the state bucket."
  default     = "counter-api/terraform.tfstate"
}

variable "log_retention_days" {
  type        = number
  description = "Days the VPC flow logs and the control plane's logs are kept."
  default     = 365
}
