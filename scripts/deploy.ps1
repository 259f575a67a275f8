<#
.SYNOPSIS
  PowerShell twin of scripts/deploy.sh: end-to-end deployment of dsobel to Google Cloud.

.DESCRIPTION
  Same order and the same commands as scripts/deploy.sh:
    1   cluster   Terraform deploy/terraform/cluster (VPC, GKE, node pools, registry)
    1.1 infra     RabbitMQ and the two Redis roles (RabbitMQ only with Memorystore)
    1.2 apps      build and push the images, roll out backend, worker, frontend
    2   workers   Terraform deploy/terraform/workers (worker VMs on the internal LBs)
  Needs gcloud (logged in), terraform >= 1.9, kubectl and docker (buildx) on PATH.
  Settings: the same environment variables as scripts/deploy.sh (GCP_PROJECT, GCP_REGION,
  GCP_ZONES, GCP_SPOT, GCP_STORE, GCP_BATCH_BUCKETS, GCP_BILLING_ACCOUNT, BUDGET_AMOUNT,
  ALERT_EMAIL, TF_STATE_BUCKET, IMAGE_TAG, DSOBEL_DOMAIN, K8S_OVERLAY, AUTO_APPROVE).

.EXAMPLE
  $env:GCP_PROJECT = "my-project"; ./scripts/deploy.ps1 all
  ./scripts/deploy.ps1 destroy
#>
[CmdletBinding()]
param(
  [ValidateSet("all", "cluster", "infra", "images", "image-dsobel", "image-web", "apps",
               "backend", "worker", "frontend", "workers", "destroy")]
  [string]$Command = "all"
)

$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest

$Root = Split-Path -Parent $PSScriptRoot
Set-Location $Root

if (-not $env:GCP_PROJECT) { throw "set GCP_PROJECT to your project id" }
$Project = $env:GCP_PROJECT
$Region = if ($env:GCP_REGION) { $env:GCP_REGION } else { "us-central1" }
$StateBucket = if ($env:TF_STATE_BUCKET) { $env:TF_STATE_BUCKET } else { "$Project-dsobel-tfstate" }
$ImageTag = if ($env:IMAGE_TAG) { $env:IMAGE_TAG } else { (git rev-parse --short=12 HEAD).Trim() }
$Overlay = if ($env:K8S_OVERLAY) { $env:K8S_OVERLAY } else { "gke" }
$Domain = $env:DSOBEL_DOMAIN
$Namespace = "dsobel"
$Placeholder = "us-central1-docker.pkg.dev/my-gcp-project/dsobel"
$Approve = @()
if ($env:AUTO_APPROVE -eq "1") { $Approve = @("-auto-approve") }

function Log([string]$m) { Write-Host "`n==> $m" }

# Runs a native command and stops on a non-zero exit code.
function Run {
  param([Parameter(ValueFromRemainingArguments = $true)][string[]]$Cmd)
  & $Cmd[0] $Cmd[1..($Cmd.Length - 1)]
  if ($LASTEXITCODE -ne 0) { throw "failed ($LASTEXITCODE): $($Cmd -join ' ')" }
}

function Need([string[]]$Tools) {
  foreach ($t in $Tools) {
    if (-not (Get-Command $t -ErrorAction SilentlyContinue)) { throw "missing tool: $t" }
  }
}

function Test-StateBucket {
  & gcloud storage buckets describe "gs://$StateBucket" --project $Project *> $null
  return ($LASTEXITCODE -eq 0)
}

function Ensure-StateBucket {
  if (-not (Test-StateBucket)) {
    Log "creating Terraform state bucket gs://$StateBucket"
    Run gcloud storage buckets create "gs://$StateBucket" --project $Project --location $Region `
      --uniform-bucket-level-access --public-access-prevention
    Run gcloud storage buckets update "gs://$StateBucket" --versioning
  }
}

function Tf([string]$Stack, [string[]]$TfArgs) {
  Run terraform "-chdir=deploy/terraform/$Stack" @TfArgs
}

function Tf-Init([string]$Stack) {
  Ensure-StateBucket
  Tf $Stack @("init", "-input=false", "-reconfigure",
    "-backend-config=bucket=$StateBucket", "-backend-config=prefix=dsobel/$Stack")
}

function Out([string]$Name) {
  $v = & terraform -chdir=deploy/terraform/cluster output -raw $Name
  if ($LASTEXITCODE -ne 0) { throw "terraform output $Name failed" }
  return $v
}

# "a,b c" -> ["a","b","c"] (a Terraform list(string) for -var).
function Hcl-List([string]$Text) {
  $items = $Text -split '[,\s]+' | Where-Object { $_ } | ForEach-Object { '"' + $_ + '"' }
  return "[" + ($items -join ",") + "]"
}

# The store and the batch buckets a run applies: as given, else what the
# cluster stack has, else the defaults (as scripts/deploy.sh store_setting and
# batch_setting). Needs Tf-Init "cluster" first.
function Store-Setting {
  if ($env:GCP_STORE) { return $env:GCP_STORE }
  return (Out-Or 'store' 'in-cluster')
}

function Batch-Setting {
  if ($env:GCP_BATCH_BUCKETS) { return $env:GCP_BATCH_BUCKETS }
  $prev = (& terraform -chdir=deploy/terraform/cluster output -json batch_buckets 2>$null) -join ""
  if ($LASTEXITCODE -eq 0 -and $prev.StartsWith("{")) { return $prev }
  return ""
}

function Cluster-Vars {
  $v = @("-var", "project_id=$Project", "-var", "region=$Region")
  $v += @("-var", "store=$(Store-Setting)")
  $buckets = Batch-Setting
  if ($buckets) { $v += @("-var", "batch_buckets=$buckets") }
  if ($env:GCP_ZONES) { $v += @("-var", "node_zones=$(Hcl-List $env:GCP_ZONES)") }
  if ($env:GCP_SPOT -eq "1") { $v += @("-var", "app_spot=true") }
  if ($env:GITHUB_REPOSITORY_FOR_WIF) { $v += @("-var", "github_repository=$($env:GITHUB_REPOSITORY_FOR_WIF)") }
  if ($env:GCP_BILLING_ACCOUNT) {
    $amount = if ($env:BUDGET_AMOUNT) { $env:BUDGET_AMOUNT } else { "100" }
    $v += @("-var", "billing_account=$($env:GCP_BILLING_ACCOUNT)", "-var", "budget_amount=$amount")
  }
  if ($env:ALERT_EMAIL) { $v += @("-var", "alert_email=$($env:ALERT_EMAIL)") }
  return $v
}

# Service Usage and Resource Manager must be on before Terraform can enable
# anything else or read the project's IAM policy; a new project may lack them.
function Enable-BootstrapApis {
  Run gcloud services enable serviceusage.googleapis.com cloudresourcemanager.googleapis.com `
    compute.googleapis.com --project $Project
}

# vCPUs the default sizes need at their minimum plus one surge node (as scripts/deploy.sh).
$MinVcpus = 20

# Warns when the region's CPU quota cannot hold the default sizes.
function Check-Quota {
  $q = & gcloud compute regions describe $Region --project $Project --flatten=quotas `
    --filter='quotas.metric=CPUS' --format='value(quotas.limit,quotas.usage)' 2>$null
  if ($LASTEXITCODE -ne 0 -or -not $q) { return }
  $limit, $usage = "$q".Trim() -split '\s+'
  $free = [int]([double]$limit - [double]$usage)
  if ($free -lt $MinVcpus) {
    Write-Warning "$Region has $free vCPUs of CPU quota left; the default sizes need $MinVcpus (docs/deploy.md)."
  }
}

function Deploy-Cluster {
  Need @("terraform", "gcloud")
  Log "1: cluster (deploy/terraform/cluster)"
  Enable-BootstrapApis
  Check-Quota
  Tf-Init "cluster"
  Tf "cluster" (@("apply", "-input=false") + $Approve + (Cluster-Vars))
}

function Get-Credentials {
  Need @("gcloud", "kubectl")
  Tf-Init "cluster" | Out-Null
  Run gcloud container clusters get-credentials (Out "cluster_name") --region (Out "region") `
    --project $Project --dns-endpoint
}

function Registry { Tf-Init "cluster" | Out-Null; return (Out "artifact_registry") }

function Image-Digest([string]$Image) {
  $d = & gcloud artifacts docker images describe "${Image}:$ImageTag" --format "value(image_summary.digest)" 2>$null
  if ($LASTEXITCODE -ne 0) { return "" }
  return "$d".Trim()
}

function Check-Secrets {
  foreach ($f in @("rabbitmq", "redis", "app")) {
    if (-not (Test-Path "deploy/k8s/overlays/gke/secrets/$f.env")) {
      throw "deploy/k8s/overlays/gke/secrets/$f.env is missing: run 'make secrets' (or scripts/gen-secrets.sh gke) first"
    }
  }
  # app.env files written before the store had two roles lack the bytes store.
  if (-not (Select-String -Quiet -Pattern '^DSOBEL_REDIS_BYTES_URL=' -Path "deploy/k8s/overlays/gke/secrets/app.env")) {
    throw ("deploy/k8s/overlays/gke/secrets/app.env has no DSOBEL_REDIS_BYTES_URL (the bytes store). Add the line " +
      "DSOBEL_REDIS_BYTES_URL=redis://:REDIS_PASSWORD@redis-bytes.dsobel.svc.cluster.local:6379/0 " +
      "with the password of redis.env (and to the DSOBEL_APP_ENV secret of the pipelines).")
  }
}

# The HTTPS domain, as scripts/deploy.sh domain: DSOBEL_DOMAIN, the sslip.io
# name of the reserved address by default, nothing for "off".
function Get-Domain {
  if ($Domain -eq "off") { return "" }
  if ($Domain) { return $Domain }
  return ((Out 'web_ip') -replace '\.', '-') + ".sslip.io"
}

# Same deploy-time kustomization as scripts/deploy.sh render_dir: inside
# deploy/k8s (gitignored), with relative paths only (kustomize refuses
# absolute ones).
function Render-Dir {
  $reg = Registry
  $store = (Out-Or 'store' '')
  if (-not $store) {
    throw "the cluster stack's state has no output 'store': it was applied before the store had two roles. Run 'make cluster' (or deploy.ps1 all) first."
  }
  $dir = "deploy/k8s/.deploy-" + [guid]::NewGuid().ToString("N").Substring(0, 8)
  New-Item -ItemType Directory $dir | Out-Null
  $dom = Get-Domain
  $stores = (Out-Or 'batch_stores' '')
  $components = @()
  if ($dom) { $components += "../components/gke-https" }
  if ($store -eq "memorystore") { $components += "../components/memorystore" }
  if ($stores) { $components += "../components/batch-gcs" }
  $lines = @("apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization", "resources: [../overlays/$Overlay]")
  if ($components.Count -gt 0) { $lines += "components: [" + ($components -join ", ") + "]" }
  $lines += "images:"
  foreach ($img in @("dsobel", "dsobel-web")) {
    $digest = Image-Digest "$reg/$img"
    if ($digest) { $lines += "  - {name: $Placeholder/$img, newName: $reg/$img, digest: $digest}" }
  }
  if ($store -eq "memorystore") {
    $lines += "secretGenerator:"
    $lines += "  - name: dsobel-app"
    $lines += "    behavior: merge"
    $lines += "    literals:"
    $lines += "      - DSOBEL_REDIS_URL=$(Out 'memorystore_state_seeds')"
    $lines += "      - DSOBEL_REDIS_BYTES_URL=$(Out 'memorystore_bytes_seeds')"
  }
  $lines += "patches:"
  $lines += "  - target: {kind: Service, name: rabbitmq-internal}"
  $lines += "    patch: '[{`"op`": `"add`", `"path`": `"/spec/loadBalancerIP`", `"value`": `"$(Out 'rabbitmq_ilb_ip')`"}]'"
  if ($store -eq "memorystore") {
    $lines += "  - target: {kind: NetworkPolicy, name: memorystore-clients}"
    $lines += "    patch: '[{`"op`": `"replace`", `"path`": `"/spec/egress/0/to/0/ipBlock/cidr`", `"value`": `"$(Out 'store_subnet_cidr')`"}]'"
  } else {
    $lines += "  - target: {kind: Service, name: redis-internal}"
    $lines += "    patch: '[{`"op`": `"add`", `"path`": `"/spec/loadBalancerIP`", `"value`": `"$(Out 'redis_ilb_ip')`"}]'"
    $lines += "  - target: {kind: Service, name: redis-bytes-internal}"
    $lines += "    patch: '[{`"op`": `"add`", `"path`": `"/spec/loadBalancerIP`", `"value`": `"$(Out 'redis_bytes_ilb_ip')`"}]'"
  }
  if ($stores) {
    $lines += "  - target: {kind: ConfigMap, name: dsobel-config}"
    $lines += "    patch: '[{`"op`": `"replace`", `"path`": `"/data/DSOBEL_BATCH_STORES`", `"value`": `"$stores`"}]'"
  }
  $lines += "  - target: {kind: Ingress, name: frontend}"
  $lines += "    patch: '[{`"op`": `"replace`", `"path`": `"/metadata/annotations/kubernetes.io~1ingress.global-static-ip-name`", `"value`": `"$(Out 'web_address_name')`"}]'"
  if ($dom) {
    $lines += "  - target: {kind: ManagedCertificate, name: frontend}"
    $lines += "    patch: '[{`"op`": `"replace`", `"path`": `"/spec/domains/0`", `"value`": `"$dom`"}]'"
  }
  Set-Content -Path (Join-Path $dir "kustomization.yaml") -Value $lines -Encoding utf8
  return $dir
}

function Apply-Components([string]$Components) {
  $dir = Render-Dir
  try {
    $manifest = & kubectl kustomize $dir
    if ($LASTEXITCODE -ne 0) { throw "kustomize build failed" }
    $manifest | & kubectl apply --server-side --field-manager=dsobel-deploy `
      -l "app.kubernetes.io/component in (shared,$Components)" -f -
    if ($LASTEXITCODE -ne 0) { throw "kubectl apply failed" }
  } finally {
    Remove-Item -Recurse -Force $dir
  }
}

function Deploy-Infra {
  Log "1.1: RabbitMQ and the store"
  Check-Secrets
  Get-Credentials
  Apply-Components "rabbitmq,redis"
  Run kubectl -n $Namespace rollout status statefulset/rabbitmq --timeout=10m
  if ((Out 'store') -eq "memorystore") {
    Write-Host "store: Memorystore for Redis Cluster (Terraform), nothing to roll out"
  } else {
    Run kubectl -n $Namespace rollout status statefulset/redis --timeout=5m
    Run kubectl -n $Namespace rollout status statefulset/redis-bytes --timeout=5m
  }
}

function Build-Image([string]$Name) {
  Need @("docker", "gcloud")
  $reg = Registry
  $file = if ($Name -eq "dsobel") { "deploy/docker/dsobel.Dockerfile" } else { "deploy/docker/nginx.Dockerfile" }
  Log "image $reg/${Name}:$ImageTag (also tagged :main)"
  Run gcloud auth configure-docker ($reg.Split("/")[0]) --quiet
  Run docker buildx build --platform linux/amd64 -f $file -t "$reg/${Name}:$ImageTag" -t "$reg/${Name}:main" --push .
}

function Deploy-App([string]$App) {
  Check-Secrets
  Get-Credentials
  Apply-Components $App
  Run kubectl -n $Namespace rollout status "deployment/$App" --timeout=10m
}

function Deploy-Apps {
  Log "1.2-1.4: backend, worker, frontend"
  Build-Image "dsobel"
  Build-Image "dsobel-web"
  foreach ($a in @("backend", "worker", "frontend")) { Deploy-App $a }
  Write-Url
}

function Write-Url {
  $dom = Get-Domain
  if ($dom) { Write-Host "frontend: https://$dom/ (the certificate turns Active 15-60 min after the first deploy)" }
  else { Write-Host "frontend: http://$(Out 'web_ip')/ (plain HTTP: DSOBEL_DOMAIN=off)" }
  if (Select-String -Quiet -Pattern '^DSOBEL_API_KEY=' -Path "deploy/k8s/overlays/gke/secrets/app.env" -ErrorAction SilentlyContinue) {
    Write-Host "API key:  DSOBEL_API_KEY in deploy/k8s/overlays/gke/secrets/app.env (the page asks for it once)"
  }
}

function Push-WorkerSecrets {
  $values = @{
    "rabbitmq" = ((Get-Content "deploy/k8s/overlays/gke/secrets/rabbitmq.env" | Where-Object { $_ -match '^RABBITMQ_DEFAULT_PASS=' }) -replace '^RABBITMQ_DEFAULT_PASS=', '')
    "redis"    = ((Get-Content "deploy/k8s/overlays/gke/secrets/redis.env" | Where-Object { $_ -match '^REDIS_PASSWORD=' }) -replace '^REDIS_PASSWORD=', '')
  }
  foreach ($name in $values.Keys) {
    $current = & gcloud secrets versions access latest --secret "dsobel-$name-password" --project $Project 2>$null
    if ($LASTEXITCODE -ne 0 -or "$current" -ne $values[$name]) {
      $tmp = New-TemporaryFile
      try {
        [System.IO.File]::WriteAllText($tmp.FullName, $values[$name])
        Run gcloud secrets versions add "dsobel-$name-password" --project $Project "--data-file=$($tmp.FullName)"
      } finally {
        Remove-Item -Force $tmp.FullName
      }
    }
  }
}

# Cluster output NAME, or FALLBACK when the cluster stack has no such output
# (destroy must work from any state).
function Out-Or([string]$Name, [string]$Fallback) {
  $v = & terraform -chdir=deploy/terraform/cluster output -raw $Name 2>$null
  if ($LASTEXITCODE -ne 0 -or -not $v) { return $Fallback }
  return $v
}

# As scripts/deploy.sh workers_vars: for destroy every input falls back to a
# well-formed placeholder, since neither the image nor the cluster may exist.
function Workers-Vars([string]$Mode = "apply") {
  try { Tf-Init "cluster" | Out-Null } catch { if ($Mode -ne "destroy") { throw } }
  $reg = Out-Or 'artifact_registry' "$Region-docker.pkg.dev/$Project/dsobel"
  $digest = Image-Digest "$reg/dsobel"
  if ($digest) { $image = "$reg/dsobel@$digest" }
  elseif ($Mode -eq "destroy") { $image = "$reg/dsobel:absent" }
  else { throw "$reg/dsobel:$ImageTag is not in the registry: run 'make apps' (or 'make images') first" }
  if ($env:GCP_ZONES) { $zones = Hcl-List $env:GCP_ZONES }
  else {
    $zones = (& terraform -chdir=deploy/terraform/cluster output -json node_zones 2>$null) -join ""
    if ($LASTEXITCODE -ne 0 -or -not $zones.StartsWith("[")) { $zones = "[]" }
    $zones = $zones -replace '\s', ''
  }
  # The store: Memorystore's seed lists (no password), or the two in-cluster
  # Redis roles behind their internal load balancers (password from Secret Manager).
  if ((Out-Or 'store' 'in-cluster') -eq "memorystore") {
    $stateUrl = (Out 'memorystore_state_seeds')
    $bytesUrl = (Out 'memorystore_bytes_seeds')
    $auth = "false"
  } else {
    $stateUrl = "redis://$(Out-Or 'redis_ilb_ip' '0.0.0.0'):6379/0"
    $bytesUrl = "redis://$(Out-Or 'redis_bytes_ilb_ip' '0.0.0.0'):6379/0"
    $auth = "true"
  }
  $buckets = (& terraform -chdir=deploy/terraform/cluster output -json batch_buckets 2>$null) -join ""
  if ($LASTEXITCODE -ne 0 -or -not $buckets.StartsWith("{")) { $buckets = "{}" }
  $v = @("-var", "project_id=$Project", "-var", "region=$Region",
    "-var", "network=$(Out-Or 'network' 'dsobel-vpc')", "-var", "subnetwork=$(Out-Or 'workers_subnetwork' 'dsobel-workers')",
    "-var", "rabbitmq_address=$(Out-Or 'rabbitmq_ilb_ip' '0.0.0.0'):5672", "-var", "state_store_url=$stateUrl",
    "-var", "bytes_store_url=$bytesUrl", "-var", "store_auth=$auth",
    "-var", "batch_buckets=$buckets", "-var", "batch_stores=$(Out-Or 'batch_stores' '')",
    "-var", "artifact_repository_id=$(Out-Or 'artifact_repository_id' 'dsobel')",
    "-var", "image=$image", "-var", "zones=$zones")
  if ($env:GCP_SPOT -eq "1") { $v += @("-var", "spot=true") }
  return $v
}

function Deploy-Workers {
  Need @("terraform", "gcloud")
  Log "2: worker VMs (deploy/terraform/workers)"
  Check-Secrets
  $vars = Workers-Vars
  Tf-Init "workers"
  Tf "workers" (@("apply", "-input=false") + $Approve + $vars +
    @("-target=google_secret_manager_secret.rabbitmq_password", "-target=google_secret_manager_secret.redis_password"))
  Push-WorkerSecrets
  Tf "workers" (@("apply", "-input=false") + $Approve + $vars)
}

function Remove-OrphanDisks {
  $disks = & gcloud compute disks list --project $Project `
    --filter='description~pvc/namespace.*dsobel AND -users:*' --format='value(name,zone)' 2>$null
  foreach ($line in @($disks)) {
    if (-not $line) { continue }
    $name, $zone = $line -split '\s+'
    Write-Host "deleting leftover volume disk $name ($zone)"
    & gcloud compute disks delete $name --zone ($zone -split '/')[-1] --project $Project --quiet
  }
}

function Destroy-All {
  Need @("terraform", "gcloud", "kubectl")
  Log "destroy: worker VMs, Kubernetes objects, cluster"
  if (-not (Test-StateBucket)) {
    Write-Host "no state bucket gs://${StateBucket}: nothing was deployed with it, nothing to destroy"
    return
  }
  Tf-Init "workers" | Out-Null
  $wstate = & terraform -chdir=deploy/terraform/workers state list 2>$null
  if ($wstate) { Tf "workers" (@("destroy", "-input=false") + $Approve + (Workers-Vars "destroy")) }
  Tf-Init "cluster" | Out-Null
  $cstate = & terraform -chdir=deploy/terraform/cluster state list 2>$null
  $kept = ""
  if ($cstate) {
    $kept = (Out-Or 'batch_buckets_created' '')
    try { Get-Credentials; & kubectl delete namespace $Namespace --ignore-not-found --wait=true --timeout=10m } catch { Write-Warning $_ }
    $vars = (Cluster-Vars) + @("-var", "deletion_protection=false")
    # Deletion protection off first: the GKE cluster's and the Memorystore clusters'.
    Tf "cluster" (@("apply", "-input=false") + $Approve + $vars + @("-target=google_container_cluster.this",
      "-target=google_redis_cluster.state", "-target=google_redis_cluster.bytes"))
    Tf "cluster" (@("destroy", "-input=false") + $Approve + $vars)
  }
  Remove-OrphanDisks
  Write-Host "Kept: the state bucket gs://$StateBucket (state history) and the enabled APIs."
  Write-Host "Delete the bucket by hand when no longer needed: gcloud storage rm -r gs://$StateBucket"
  if ($kept) {
    Write-Host "Kept too, with their objects: the batch buckets gs://$($kept -replace ',', ' gs://') (deploying again"
    Write-Host "needs them with create = false in GCP_BATCH_BUCKETS; delete each with gcloud storage rm -r)."
  }
}

switch ($Command) {
  "all" { Deploy-Cluster; Deploy-Infra; Deploy-Apps; Deploy-Workers; Log "deployed"; Write-Url }
  "cluster" { Deploy-Cluster }
  "infra" { Deploy-Infra }
  "images" { Build-Image "dsobel"; Build-Image "dsobel-web" }
  "image-dsobel" { Build-Image "dsobel" }
  "image-web" { Build-Image "dsobel-web" }
  "apps" { Deploy-Apps }
  { $_ -in @("backend", "worker", "frontend") } { Deploy-App $Command }
  "workers" { Deploy-Workers }
  "destroy" { Destroy-All }
}
