#!/usr/bin/env python3
"""Rules of GKE and Google Cloud that no schema states, checked on the
Terraform stacks, the monitoring files and (with --rendered) rendered
Kubernetes objects. Each rule has an id; docs/deploy.md lists them in its
checklist with the reasoning behind each.

usage: check_gke_rules.py --repo CHECKOUT [--rendered DIR_OF_RENDERED_YAML]
"""
import argparse
import datetime as dt
import json
import os
import re
import sys

import hcl2
import yaml

errors = []
passed = []


def rule(rid, ok, msg):
    (passed if ok else errors).append(f"{rid}: {msg}")


def uq(s):
    return s[1:-1] if isinstance(s, str) and len(s) >= 2 and s[0] == s[-1] == '"' else s


def load_stack(path):
    out = {"resource": {}, "data": {}, "locals": {}, "variable": {}, "text": ""}
    for f in sorted(os.listdir(path)):
        if not f.endswith(".tf"):
            continue
        text = open(os.path.join(path, f)).read()
        out["text"] += text
        d = hcl2.loads(text)
        for kind in ("resource", "data"):
            for blk in d.get(kind, []):
                for typ, inst in blk.items():
                    for name, body in inst.items():
                        if not name.startswith("__"):
                            out[kind][(uq(typ), uq(name))] = body
        for blk in d.get("locals", []):
            out["locals"].update(blk)
        for blk in d.get("variable", []):
            for k, v in blk.items():
                if not k.startswith("__"):
                    out["variable"][uq(k)] = v
    return out


def block(body, *path):
    for p in path:
        v = body.get(p)
        if not v:
            return None
        body = v[0] if isinstance(v, list) else v
    return body


# ---------------------------------------------------------------- G1 maintenance window

DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


def window_hours(start, end, rrule, horizon_days=400):
    """Hours of availability per day over a horizon, and the shortest window."""
    s = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
    e = dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
    dur = (e - s).total_seconds() / 3600
    parts = dict(p.split("=", 1) for p in rrule.split(";"))
    freq = parts.get("FREQ")
    days = parts.get("BYDAY", "").split(",") if "BYDAY" in parts else None
    hours = []
    for i in range(horizon_days):
        day = s + dt.timedelta(days=i)
        if freq == "DAILY":
            on = True
        elif freq == "WEEKLY":
            on = DAYS[day.weekday()] in (days or [DAYS[s.weekday()]])
        else:
            raise ValueError(f"recurrence {rrule!r} not understood")
        hours.append(dur if on else 0.0)
    return hours, dur


def g1_maintenance(cluster):
    c = cluster["resource"].get(("google_container_cluster", "this"))
    rw = block(c, "maintenance_policy", "recurring_window") if c else None
    if not rw:
        rule("G1", False, "no recurring maintenance window on the cluster")
        return
    hours, dur = window_hours(uq(rw["start_time"]), uq(rw["end_time"]), uq(rw["recurrence"]))
    worst = min(sum(hours[i:i + 32]) for i in range(len(hours) - 32))
    rule("G1", worst >= 48 and dur >= 4,
         f"maintenance window: {dur:g} h windows, {worst:g} h in the worst 32 days (GKE needs >= 48 h, windows >= 4 h)")


# ---------------------------------------------------------------- G3 APIs enabled before use

API_OF = [  # resource type prefix -> API it calls
    ("google_compute_", "compute.googleapis.com"),
    ("google_container_", "container.googleapis.com"),
    ("google_artifact_registry_", "artifactregistry.googleapis.com"),
    ("google_service_account", "iam.googleapis.com"),
    ("google_iam_workload_identity_pool", "iam.googleapis.com"),
    ("google_project_iam_", "cloudresourcemanager.googleapis.com"),
    ("google_project", "cloudresourcemanager.googleapis.com"),
    ("google_secret_manager_", "secretmanager.googleapis.com"),
    ("google_monitoring_", "monitoring.googleapis.com"),
    ("google_billing_budget", "billingbudgets.googleapis.com"),
]
REF = re.compile(r"(data\.)?(google_[a-z0-9_]+)\.([a-z0-9_]+)")


def api_for(typ):
    return next((api for prefix, api in API_OF if typ.startswith(prefix)), None)


def g3_apis(cluster, workers):
    apis_expr = cluster["locals"].get("apis", [])
    apis = {uq(a) for a in apis_expr}
    for stack_name, stack in (("cluster", cluster), ("workers", workers)):
        for (typ, name) in list(stack["resource"]) + [("data." + t, n) for t, n in stack["data"]]:
            t = typ.replace("data.", "")
            if t == "google_project_service":
                continue
            api = api_for(t)
            rule("G3", api is not None and api in apis,
                 f"{stack_name}: {typ}.{name} needs {api}, enabled by the cluster stack: {api in apis}")
    # dependency graph of the cluster stack: every resource reaches the APIs
    deps = {}
    for kind in ("resource", "data"):
        for (typ, name), body in cluster[kind].items():
            key = (("data." if kind == "data" else "") + typ, name)
            text = json.dumps(body)
            deps[key] = {(("data." if m.group(1) else "") + m.group(2), m.group(3)) for m in REF.finditer(text)}
    target = ("google_project_service", "apis")

    def reaches(k, seen):
        if k == target:
            return True
        if k in seen:
            return False
        seen.add(k)
        return any(reaches(d, seen) for d in deps.get(k, ()))

    for k in deps:
        if k == target or k[0] == "google_project_service":
            continue
        if k == ("data.google_project", "this"):
            continue  # read through Resource Manager, which scripts/deploy.sh enables before Terraform runs
        rule("G3", reaches(k, set()), f"cluster: {k[0]}.{k[1]} waits for google_project_service.apis")


# ---------------------------------------------------------------- Terraform rules

def tf_rules(cluster, workers):
    c = cluster["resource"].get(("google_container_cluster", "this"), {})
    sp = block(c, "security_posture_config") or {}
    rule("G7", uq(sp.get("vulnerability_mode", "")) != "VULNERABILITY_BASIC",
         "security posture does not ask for VULNERABILITY_BASIC (no longer offered by GKE)")
    infra = block(cluster["resource"].get(("google_container_node_pool", "infra"), {}), "node_config") or {}
    rule("G8", "spot" not in infra and "preemptible" not in infra,
         "RabbitMQ and Redis (infra pool) never run on Spot/preemptible nodes")
    rule("G8", "node_locations" in c and "local.node_zones" in str(c.get("node_locations")),
         "node zones come from local.node_zones (GCP_ZONES or the region's zones)")
    mig = workers["resource"].get(("google_compute_region_instance_group_manager", "workers"), {})
    surge = str((block(mig, "update_policy") or {}).get("max_surge_fixed", ""))
    rule("G6", "max(3, length(var.zones))" in surge,
         f"regional MIG: max_surge_fixed ({surge}) is at least the number of zones, 3 when Google picks them")
    wip = block(c, "workload_identity_config") or {}
    rule("G17", "svc.id.goog" in str(wip.get("workload_pool")), "Workload Identity pool is PROJECT.svc.id.goog")
    for (typ, name), body in cluster["resource"].items():
        if typ == "google_compute_address":
            rule("G5", uq(body.get("address_type")) == "INTERNAL" and uq(body.get("purpose")) == "GCE_ENDPOINT"
                 and "google_compute_subnetwork.gke" in str(body.get("subnetwork")),
                 f"{name}: an internal LB address must be INTERNAL/GCE_ENDPOINT in the cluster's subnet")
    # G16 cloud-init template variables
    tmpl = open(os.path.join(REPO, "deploy/terraform/workers/cloud-init.yaml.tftpl")).read()
    used = set(re.findall(r"(?<!\$)\$\{([a-z_]+)\}", tmpl))
    tf_call = re.search(r"templatefile\([^,]+,\s*\{(.*?)\}\)", workers["text"], re.S)
    given = set(re.findall(r"([a-z_]+)\s*=", tf_call.group(1))) if tf_call else set()
    rule("G16", used == given, f"cloud-init template variables {sorted(used)} == templatefile keys {sorted(given)}")


# ---------------------------------------------------------------- G14 deployer roles

# Permissions every pipeline step needs, and predefined roles that grant each
# (from Google's IAM role reference). The deployer needs one of each.
NEEDS = {
    "storage.buckets.get (gcloud storage buckets describe, every pipeline)":
        {"roles/storage.admin", "roles/storage.bucketViewer", "roles/storage.legacyBucketReader"},
    "storage.objects.* (Terraform state)": {"roles/storage.admin", "roles/storage.objectAdmin"},
    "artifactregistry.repositories.setIamPolicy (worker VMs' pull access)": {"roles/artifactregistry.admin"},
    "artifactregistry.repositories.uploadArtifacts (image push)":
        {"roles/artifactregistry.admin", "roles/artifactregistry.writer", "roles/artifactregistry.repoAdmin"},
    "secretmanager.secrets.create/setIamPolicy, versions.add/access": {"roles/secretmanager.admin"},
    "compute.instanceTemplates/instanceGroupManagers/autoscalers.*":
        {"roles/compute.instanceAdmin.v1", "roles/compute.admin"},
    "compute.healthChecks.create": {"roles/compute.networkAdmin", "roles/compute.loadBalancerAdmin", "roles/compute.admin"},
    "compute.firewalls.create": {"roles/compute.securityAdmin", "roles/compute.admin"},
    "iam.serviceAccounts.create": {"roles/iam.serviceAccountAdmin"},
    "iam.serviceAccounts.actAs (VMs and nodes run as their accounts)": {"roles/iam.serviceAccountUser"},
    "resourcemanager.projects.setIamPolicy": {"roles/resourcemanager.projectIamAdmin"},
    "container.clusters.* and Kubernetes RBAC (kubectl apply)": {"roles/container.admin"},
    "monitoring.alertPolicies/dashboards/notificationChannels.create":
        {"roles/monitoring.editor", "roles/monitoring.admin"},
    "serviceusage.services.enable / use": {"roles/serviceusage.serviceUsageAdmin"},
}


def g14_roles(cluster):
    roles = {uq(r) for r in cluster["variable"]["deployer_roles"].get("default", [])}
    for need, grant in NEEDS.items():
        rule("G14", roles & grant, f"deployer has {need} through {sorted(roles & grant) or 'nothing'}")


# ---------------------------------------------------------------- monitoring

def metric_names():
    """Names /metrics exposes, from the registry in telemetry.rs (read only):
    prefix dsobel_, counters with _total, histograms with _bucket/_sum/_count."""
    text = open(os.path.join(REPO, "crates/service/src/telemetry.rs")).read()
    kinds = {}
    for field, typ in re.findall(r"pub (\w+): ([^\n]+),\n", text):
        kinds[field] = "Histogram" if "Histogram" in typ else "Counter" if "Counter" in typ else \
            "Gauge" if "Gauge" in typ else None
    names = set()
    for name, field in re.findall(r'register\(\s*"(\w+)",\s*"[^"]*",\s*m\.(\w+)\.clone\(\)', text, re.S):
        full = "dsobel_" + name
        kind = kinds.get(field)
        if kind == "Counter":
            names.add(full + "_total")
        elif kind == "Histogram":
            names |= {full + "_bucket", full + "_sum", full + "_count"}
        else:
            names.add(full)
    return names


RABBITMQ_METRICS = {"rabbitmq_detailed_queue_messages_ready", "rabbitmq_detailed_queue_messages",
                    "rabbitmq_detailed_queue_messages_unacked"}


def g11_metrics(cluster, workers, objs):
    known = metric_names() | RABBITMQ_METRICS
    queries = []
    dash = json.load(open(os.path.join(REPO, "deploy/monitoring/dashboard.json")))
    for t in dash["mosaicLayout"]["tiles"]:
        for ds in t["widget"]["xyChart"]["dataSets"]:
            queries.append(("dashboard " + t["widget"]["title"], ds["timeSeriesQuery"]["prometheusQuery"]))
    for m in re.finditer(r'query\s*=\s*"((?:[^"\\]|\\.)*)"', cluster["text"]):
        queries.append(("alert", m.group(1).replace('\\"', '"')))
    for where, q in queries:
        q2 = re.sub(r'"[^"]*"', '""', q)
        for name in set(re.findall(r"\b((?:dsobel|rabbitmq)_[a-z_]+)\b", q2)):
            rule("G11", name in known, f"{where}: metric {name} is exported (telemetry.rs / RabbitMQ plugin)")
        for job in re.findall(r'job="([^"]+)"', q):
            rule("G11", job in objs.get("podmonitorings", set()) | {"dsobel-worker-vm"} or not objs,
                 f"{where}: job {job} is a PodMonitoring or the VM collector")
    m = re.search(r'name\s*=\s*"prometheus.googleapis.com/(\w+)/gauge"', workers["text"])
    rule("G11", m and m.group(1) in known, f"worker VM autoscaler metric {m and m.group(1)} is exported")
    job = re.search(r'resource.labels.job = \\"([^"\\]+)\\"', workers["text"])
    pm = objs.get("podmonitoring_paths", {})
    if pm:
        rule("G11", job and pm.get(job.group(1)) == "/metrics/detailed",
             f"worker VM autoscaler job {job and job.group(1)} scrapes RabbitMQ's /metrics/detailed")
    queue = re.search(r'DSOBEL_QUEUE\s*=\s*"([^"]+)"', workers["text"] + open(
        os.path.join(REPO, "deploy/terraform/workers/variables.tf")).read())
    cm = yaml.safe_load(open(os.path.join(REPO, "deploy/k8s/base/config.yaml")))
    rule("G11", queue and queue.group(1) == cm["data"]["DSOBEL_QUEUE"], "worker VMs use the cluster's queue")
    tiles = dash["mosaicLayout"]["tiles"]
    cells = set()
    ok = True
    for t in tiles:
        for x in range(t.get("xPos", 0), t.get("xPos", 0) + t["width"]):
            for y in range(t.get("yPos", 0), t.get("yPos", 0) + t["height"]):
                ok &= (x, y) not in cells and x < dash["mosaicLayout"]["columns"]
                cells.add((x, y))
    rule("G15", ok and dash.get("displayName"), "dashboard tiles fit the 48 columns and do not overlap")


# ---------------------------------------------------------------- Kubernetes rules

def k8s_rules(path, objs_info):
    overlay = os.path.basename(path)[:-5]
    objs = [d for d in yaml.safe_load_all(open(path)) if d]
    by = {}
    for o in objs:
        by.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    gke = overlay.startswith("gke")
    for name, o in by.get("Ingress", {}).items():
        ann = o["metadata"].get("annotations", {})
        rule("G2", not gke or (ann.get("kubernetes.io/ingress.class") == "gce" and "ingressClassName" not in o["spec"]),
             f"{overlay}: Ingress/{name} names its class with the kubernetes.io/ingress.class annotation only")
        if "networking.gke.io/managed-certificates" in ann:
            rule("G4", "kubernetes.io/ingress.global-static-ip-name" in ann,
                 f"{overlay}: Ingress/{name} with a managed certificate uses a global static IP")
    for name, mc in by.get("ManagedCertificate", {}).items():
        doms = mc["spec"]["domains"]
        rule("G4", 1 <= len(doms) <= 100 and all(d == d.lower() and "*" not in d and "." in d for d in doms),
             f"{overlay}: ManagedCertificate domains {doms} (1-100, lower case, no wildcard)")
    for name, o in by.get("Service", {}).items():
        ann = o["metadata"].get("annotations", {})
        if o["spec"].get("type") == "LoadBalancer":
            rule("G5", ann.get("networking.gke.io/load-balancer-type") == "Internal",
                 f"{overlay}: Service/{name} is an internal load balancer")
        if name == "frontend" and gke:
            rule("G9", '"ingress": true' in ann.get("cloud.google.com/neg", ""),
                 f"{overlay}: the frontend Service uses container-native load balancing (NEG)")
    pods = {}
    for kind in ("Deployment", "StatefulSet"):
        for name, w in by.get(kind, {}).items():
            tmpl = w["spec"]["template"]
            ports = {p.get("name"): p["containerPort"] for c in tmpl["spec"]["containers"] for p in c.get("ports", [])}
            pods[name] = (tmpl["metadata"]["labels"], ports)
            hpa = [h for h in by.get("HorizontalPodAutoscaler", {}).values()
                   if h["spec"]["scaleTargetRef"]["name"] == name] + [
                s for s in by.get("ScaledObject", {}).values() if s["spec"]["scaleTargetRef"]["name"] == name]
            if hpa:
                rule("G12", "replicas" not in w["spec"],
                     f"{overlay}: {kind}/{name} is scaled by an autoscaler and sets no replicas (each deploy would reset it)")
    for bc_name, bc in by.get("BackendConfig", {}).items():
        port = bc["spec"].get("healthCheck", {}).get("port")
        rule("G9", port in {p for _, ps in pods.values() for p in ps.values()},
             f"{overlay}: BackendConfig/{bc_name} health-checks a container port ({port})")
    redis = by.get("StatefulSet", {}).get("redis")
    if redis:
        c = redis["spec"]["template"]["spec"]["containers"][0]
        args = c.get("args", [])
        mm = args[args.index("--maxmemory") + 1] if "--maxmemory" in args else None
        lim = c["resources"]["limits"]["memory"]
        to_mib = lambda v: float(re.match(r"[0-9.]+", v).group()) * {"mb": 1, "gb": 1024, "Mi": 1, "Gi": 1024, "M": 1,
                                                                       "G": 1024}[re.search(r"[A-Za-z]+$", v).group()]  # noqa: E731
        rule("G13", mm and to_mib(mm) <= 0.45 * to_mib(lim),
             f"{overlay}: Redis maxmemory {mm} leaves room for the append-only rewrite fork in the {lim} limit")
    gmp_ports = set()
    for name, np_ in by.get("NetworkPolicy", {}).items():
        for r in np_["spec"].get("ingress", []):
            if any(p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") == "gmp-system"
                   for p in r.get("from", [])):
                sel = np_["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
                gmp_ports |= {(sel, p["port"]) for p in r.get("ports", [])}
    for name, pm in by.get("PodMonitoring", {}).items():
        sel = pm["spec"]["selector"]["matchLabels"]
        matched = [(n, ps) for n, (labels, ps) in pods.items() if all(labels.get(k) == v for k, v in sel.items())]
        rule("G10", matched, f"{overlay}: PodMonitoring/{name} selects pods")
        for ep in pm["spec"]["endpoints"]:
            for n, ps in matched:
                num = ps.get(ep["port"])
                rule("G10", num is not None, f"{overlay}: PodMonitoring/{name} port {ep['port']} exists on {n}")
                rule("G10", (sel.get("app.kubernetes.io/name"), num) in gmp_ports,
                     f"{overlay}: NetworkPolicy admits Managed Prometheus (gmp-system) to {n}:{num}")
            objs_info.setdefault("podmonitoring_paths", {})[name] = ep.get("path", "/metrics")
        objs_info.setdefault("podmonitorings", set()).add(name)
    if gke:
        rule("G10", {"backend", "worker"} <= set(by.get("PodMonitoring", {})),
             f"{overlay}: backend and worker metrics are scraped (PodMonitoring)")


def main():
    global REPO
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--rendered")
    a = ap.parse_args()
    REPO = a.repo
    cluster = load_stack(os.path.join(REPO, "deploy/terraform/cluster"))
    workers = load_stack(os.path.join(REPO, "deploy/terraform/workers"))
    g1_maintenance(cluster)
    g3_apis(cluster, workers)
    tf_rules(cluster, workers)
    g14_roles(cluster)
    info = {}
    if a.rendered:
        for f in sorted(os.listdir(a.rendered)):
            if f.endswith(".yaml"):
                k8s_rules(os.path.join(a.rendered, f), info)
    g11_metrics(cluster, workers, info)
    print(f"GKE rules: {len(passed)} checks passed, {len(errors)} failed")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
