# Workload Identity Federation for GitHub Actions (no JSON keys anywhere).
# Created only when var.github_repository is set. Tokens are accepted only from
# that repository; the deployer service account can be impersonated only by it.

locals {
  github_enabled = var.github_repository != ""
}

resource "google_iam_workload_identity_pool" "github" {
  count = local.github_enabled ? 1 : 0

  workload_identity_pool_id = "${var.name}-github"
  display_name              = "GitHub Actions"
  description               = "Pipelines of ${var.github_repository}"

  depends_on = [google_project_service.apis]
}

resource "google_iam_workload_identity_pool_provider" "github" {
  #checkov:skip=CKV_GCP_125:False positive: the condition pins both assertion.repository and assertion.sub (repo:OWNER/NAME:ref:REF); checkov evaluates it with the empty default of github_repository, for which this resource is not created (count = 0).
  count = local.github_enabled ? 1 : 0

  workload_identity_pool_id          = google_iam_workload_identity_pool.github[0].workload_identity_pool_id
  workload_identity_pool_provider_id = "github-oidc"
  display_name                       = "GitHub OIDC"

  attribute_mapping = {
    "google.subject"       = "assertion.sub"
    "attribute.repository" = "assertion.repository"
    "attribute.ref"        = "assertion.ref"
  }

  # Only pushes/dispatches on the deploy branch of this one repository.
  attribute_condition = "assertion.repository == \"${var.github_repository}\" && assertion.sub == \"repo:${var.github_repository}:ref:${var.github_ref}\""

  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account" "deployer" {
  count = local.github_enabled ? 1 : 0

  account_id   = "${var.name}-deployer"
  display_name = "dsobel CI deployer (GitHub Actions via Workload Identity Federation)"

  depends_on = [google_project_service.apis]
}

resource "google_service_account_iam_member" "deployer_wif" {
  count = local.github_enabled ? 1 : 0

  service_account_id = google_service_account.deployer[0].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.github[0].name}/attribute.repository/${var.github_repository}"
}

resource "google_project_iam_member" "deployer" {
  for_each = local.github_enabled ? toset(var.deployer_roles) : toset([])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.deployer[0].email}"
}
