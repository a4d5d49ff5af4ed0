# The production deployment's settings: `scripts/setup-aws.sh` and the pull-request plan
# (.github/workflows/infra.yml) both plan with this file, so a reviewed plan is the plan applied.
# Set your own values and commit them (nothing here is secret).
region             = "eu-west-1"
availability_zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
host               = "counter.example.com"
github_repository  = "example-org/counter-fcgi"
# Your workstation's address for kubectl and the Argo CD bootstrap (`setup-aws.sh check` prints it).
public_api_cidrs = []
# route53_zone_id = "Z0123456789ABC"   # DNS validation of the certificate by Terraform
deploy_mode = "gitops"
