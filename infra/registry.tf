# One ECR repository per image (Redis too: the pipeline mirrors the chart's Redis by digest, so the
# nodes pull nothing from Docker Hub): immutable tags (a digest deployed is the digest built), scanned on
# push, encrypted with our key, the newest image_retention_count kept. The nodes pull with their
# IAM role: no pull secret. Destroy deletes repositories holding images only when ecr_force_delete
# is on (`setup-aws.sh destroy` sets it after the operator confirms).

locals {
  images = toset(["counter-fcgi", "counter-nginx", "redis"])
}

resource "aws_ecr_repository" "image" {
  for_each = local.images

  name                 = each.key
  image_tag_mutability = "IMMUTABLE"
  force_delete         = var.ecr_force_delete

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.this["ecr"].arn
  }
}

resource "aws_ecr_lifecycle_policy" "image" {
  for_each = aws_ecr_repository.image

  repository = each.value.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the newest ${var.image_retention_count} images"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = var.image_retention_count
      }
      action = { type = "expire" }
    }]
  })
}
