terraform {
  required_version = ">= 1.9.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # deploy/rehearsal checks every resource against the schema of 7.46.1.
      version = "~> 7.46"
    }
  }

  # Remote state in a GCS bucket. The bucket and prefix are given at init time:
  #   terraform init -backend-config=backend.hcl
  # (copy backend.hcl.example to backend.hcl; scripts/deploy.sh does this for you).
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region

  # Bill API quota to this project even with user credentials (some APIs,
  # e.g. Billing Budgets, refuse calls without a quota project).
  billing_project       = var.project_id
  user_project_override = true
}
