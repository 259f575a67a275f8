# Buckets for batches (var.batch_buckets): created when asked, and object
# access for the apps to exactly these buckets, bucket by bucket:
#   backend  lists sources, reads them (skip rule), writes the manifest
#   worker   reads sources, writes outputs (one atomic put each)
# Both Kubernetes service accounts are IAM principals of their own through
# Workload Identity Federation for GKE (no Google service account in between,
# no key, no annotation). The worker VMs' service account gets the same grants
# in deploy/terraform/workers. A read-only bucket (writable = false) gets
# roles/storage.objectViewer, any other roles/storage.objectUser (objects and
# multipart uploads, no IAM or bucket settings).

locals {
  batch_created = { for name, b in var.batch_buckets : name => b if b.create }

  # The roots DSOBEL_BATCH_STORES lists: the bucket, or each allowed prefix.
  batch_roots = {
    for name, b in var.batch_buckets :
    name => length(b.prefixes) == 0 ? [""] : [for p in b.prefixes : "${p}/"]
  }
  batch_stores = join(",", flatten([
    for name, roots in local.batch_roots : [for r in roots : trimsuffix("gs://${name}/${r}", "/")]
  ]))

  # principal://.../workloadIdentityPools/PROJECT.svc.id.goog/subject/ns/NAMESPACE/sa/NAME,
  # the pool read from the cluster: it exists once a cluster has Workload Identity.
  ksa_principal = "principal://iam.googleapis.com/projects/${data.google_project.this.number}/locations/global/workloadIdentityPools/${google_container_cluster.this.workload_identity_config[0].workload_pool}/subject/ns/dsobel/sa"
  batch_members = {
    backend = "${local.ksa_principal}/backend"
    worker  = "${local.ksa_principal}/worker"
  }
  batch_grants = merge([
    for name, b in var.batch_buckets : {
      for app, member in local.batch_members : "${name}/${app}" => {
        bucket = name
        member = member
        role   = b.writable ? "roles/storage.objectUser" : "roles/storage.objectViewer"
      }
    }
  ]...)
}

resource "google_storage_bucket" "batch" {
  #checkov:skip=CKV_GCP_62:Access logs need a second bucket and are billed per request; who read or wrote an object is in Cloud Audit Logs (enable Data Access logs for Cloud Storage where that is required).
  for_each = local.batch_created

  name                        = each.key
  location                    = each.value.location != "" ? each.value.location : var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = local.labels

  # The bucket holds the user's images: `terraform destroy` (make destroy)
  # leaves it and its objects in place and forgets it.
  deletion_policy = "ABANDON"

  # An overwritten or deleted object stays recoverable for a week.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  # Large objects (and the manifest) are written in multipart uploads; one cut
  # off half way would otherwise be billed until someone aborts it.
  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  # The manifests (DEST/_manifest/<batch id>.jsonl) at each root, when asked.
  dynamic "lifecycle_rule" {
    for_each = each.value.manifest_expiry_days > 0 ? [each.value.manifest_expiry_days] : []
    content {
      condition {
        age            = lifecycle_rule.value
        matches_prefix = [for r in local.batch_roots[each.key] : "${r}_manifest/"]
      }
      action {
        type = "Delete"
      }
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_iam_member" "batch" {
  for_each = local.batch_grants

  # A created bucket by reference (so the grant waits for it), an existing one by name.
  bucket = contains(keys(local.batch_created), each.value.bucket) ? google_storage_bucket.batch[each.value.bucket].name : each.value.bucket
  role   = each.value.role
  member = each.value.member

  depends_on = [google_project_service.apis]
}
