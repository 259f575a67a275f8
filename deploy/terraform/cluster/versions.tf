terraform {
  required_version = ">= 1.6.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.14.0, < 8.0.0"
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
}
