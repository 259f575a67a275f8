#!/usr/bin/env python3
"""Rules of GKE and Google Cloud that no schema states, checked on the
Terraform stacks, the monitoring files and (with --rendered) rendered
Kubernetes objects. Each rule has an id; docs/deploy.md lists them in its
checklist with the reasoning behind each.

usage: check_gke_rules.py --repo CHECKOUT [--rendered DIR_OF_RENDERED_YAML]
"""
import argparse
import datetime as dt
import ipaddress
import json
import os
import re
import sys

import hcl2
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import capacity  # noqa: E402

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
    ("google_redis_", "redis.googleapis.com"),
    ("google_network_connectivity_", "networkconnectivity.googleapis.com"),
    ("google_storage_", "storage.googleapis.com"),
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
    "redis.clusters.create/update/delete (store = memorystore)": {"roles/redis.admin"},
    "networkconnectivity.serviceConnectionPolicies.* (Memorystore's endpoints)":
        {"roles/networkconnectivity.consumerNetworkAdmin"},
    "storage.buckets.create/setIamPolicy (batch buckets and their grants)": {"roles/storage.admin"},
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
    store_rules(overlay, by)
    capacity_rules(overlay, by)
    memorystore_k8s_rules(overlay, by)
    batch_k8s_rules(overlay, by, objs_info)
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


# ---------------------------------------------------------------- the store (in-cluster)

def redis_container(sts):
    c = sts["spec"]["template"]["spec"]["containers"][0]
    return c, capacity.redis_args(c.get("args", []))


def store_rules(overlay, by):
    """G13: the two roles of the in-cluster store keep to what each needs."""
    sts = by.get("StatefulSet", {})
    state, byts = sts.get("redis"), sts.get("redis-bytes")
    if state:
        c, a = redis_container(state)
        lim = capacity.k8s_size(c["resources"]["limits"]["memory"])
        mm = capacity.redis_size(a.get("maxmemory", "0"))
        vols = {v["metadata"]["name"] for v in state["spec"].get("volumeClaimTemplates", [])}
        on_volume = any(m["mountPath"] == a.get("dir") and m["name"] in vols for m in c.get("volumeMounts", []))
        rule("G13", a.get("appendonly") == "yes" and a.get("appendfsync") == "everysec" and a.get("save") == ""
             and on_volume, f"{overlay}: the state Redis keeps an append-only file synced every second on its "
             f"volume (--dir {a.get('dir')}), and no RDB snapshots on top of it")
        rule("G13", 0 < mm <= 0.45 * lim,
             f"{overlay}: the state Redis's maxmemory {a.get('maxmemory')} leaves room for the append-only "
             f"rewrite's fork in its {c['resources']['limits']['memory']} limit")
    if byts:
        c, a = redis_container(byts)
        lim = capacity.k8s_size(c["resources"]["limits"]["memory"])
        mm = capacity.redis_size(a.get("maxmemory", "0"))
        rule("G13", a.get("appendonly") == "no" and a.get("save") == "" and not byts["spec"].get("volumeClaimTemplates")
             and not c.get("volumeMounts"),
             f"{overlay}: the bytes Redis has no persistence and no disk (no append-only file, no snapshot, no volume)")
        rule("G13", 0 < mm <= 0.8 * lim,
             f"{overlay}: the bytes Redis's maxmemory {a.get('maxmemory')} leaves a fifth of its "
             f"{c['resources']['limits']['memory']} limit to client buffers and the allocator (it never forks)")
    for name, o in (("redis", state), ("redis-bytes", byts)):
        if o:
            c, a = redis_container(o)
            rule("G13", a.get("maxmemory-policy") == "noeviction",
                 f"{overlay}: {name} refuses writes when full (noeviction) instead of evicting keys of running jobs")
            rule("G13", c["resources"]["requests"]["memory"] == c["resources"]["limits"]["memory"],
                 f"{overlay}: {name} requests all the memory it may use (not the first pod evicted under pressure)")


MEMORYSTORE_WRITABLE_GB = {  # default writable keyspace per node (Google's node specification)
    "REDIS_SHARED_CORE_NANO": 1.12, "REDIS_STANDARD_SMALL": 5.2, "REDIS_HIGHMEM_MEDIUM": 10.4,
    "REDIS_HIGHCPU_MEDIUM": 10.4, "REDIS_STANDARD_LARGE": 20.8, "REDIS_HIGHMEM_XLARGE": 46.4,
    "REDIS_HIGHMEM_2XLARGE": 88,
}
# The next wall with Memorystore: the single work queue. RabbitMQ spends 1.0-1.9 ms of CPU per
# image (docs/performance.md §6) and has 1.5 CPUs: at least about 790 and at most about 1,500
# images/s. The Memorystore defaults must not bind before it.
TARGET_MEMORYSTORE = 1500


def var_default(name):
    v = CLUSTER["variable"].get(name, {}).get("default")
    return uq(v) if isinstance(v, str) else v


def capacity_rules(overlay, by):
    """G18: the defaults hold the rate the deployment is sized for (docs/deploy.md#capacity)."""
    cm = by.get("ConfigMap", {}).get("dsobel-config", {}).get("data", {})
    if not cm:
        return
    ttl = int(cm.get("DSOBEL_RESULT_TTL_SECS", 3600))
    work = int(cm.get("DSOBEL_WORK_TTL_SECS", 900))
    w = float(cm.get("DSOBEL_STORE_MEMORY_WATERMARK", 0.8))
    backends = by.get("Deployment", {}).get("backend", {}).get("spec", {}).get("replicas", 1)
    admitted = backends * int(cm.get("DSOBEL_MAX_JOBS_IN_FLIGHT", 64))
    rule("G18", work <= ttl, f"{overlay}: an upload waits at most as long as its record lives "
         f"(DSOBEL_WORK_TTL_SECS {work} <= DSOBEL_RESULT_TTL_SECS {ttl})")
    sts = by.get("StatefulSet", {})
    if "redis-bytes" in sts and "redis" in sts:
        target = capacity.TARGET_LOCAL if overlay == "local" else capacity.TARGET_GKE
        mb = capacity.redis_size(redis_container(sts["redis-bytes"])[1]["maxmemory"])
        ms = capacity.redis_size(redis_container(sts["redis"])[1]["maxmemory"])
    elif "memorystore-clients" in by.get("NetworkPolicy", {}):
        target = TARGET_MEMORYSTORE
        mb = int(var_default("memorystore_bytes_shards")) * MEMORYSTORE_WRITABLE_GB[var_default("memorystore_bytes_node_type")] * 1e9
        ms = int(var_default("memorystore_state_shards")) * MEMORYSTORE_WRITABLE_GB[var_default("memorystore_state_node_type")] * 1e9
    else:
        rule("G18", False, f"{overlay}: neither the in-cluster store nor Memorystore's clients policy is rendered")
        return
    rb = capacity.bytes_rate(mb, w, ttl, admitted)
    rs = capacity.state_rate(ms, w, ttl)
    rule("G18", rb >= target and rs >= target,
         f"{overlay}: the store holds {rb:.0f} (bytes) and {rs:.0f} (state) 1 MB images/s with results kept {ttl} s "
         f"and {admitted} jobs admitted, at least the {target}/s this deployment is sized for")


# ---------------------------------------------------------------- Memorystore (M1-M11)

MEMORYSTORE_NODE_TYPES = set(MEMORYSTORE_WRITABLE_GB)  # google provider 7.46.1's node_type values


def expr(v):
    """An HCL value as text without the ${...} wrapper (hcl2 keeps expressions as strings)."""
    v = uq(v) if isinstance(v, str) else v
    if isinstance(v, str) and v.startswith("${") and v.endswith("}"):
        return v[2:-1]
    return v


def memorystore_rules(cluster):
    res = cluster["resource"]
    pol = res.get(("google_network_connectivity_service_connection_policy", "memorystore"))
    clusters = {n: res.get(("google_redis_cluster", n)) for n in ("state", "bytes")}
    if not pol or not all(clusters.values()):
        rule("M1", False, "the cluster stack declares the service connection policy and both Memorystore clusters")
        return
    psc = block(pol, "psc_config") or {}
    subnets = [expr(x) for x in psc.get("subnetworks", [])]
    subnet_ok = True
    for sref in subnets:
        m = re.match(r"google_compute_subnetwork\.(\w+)(\[0\])?\.id$", sref or "")
        sub = res.get(("google_compute_subnetwork", m.group(1))) if m else None
        subnet_ok &= bool(sub) and expr(sub.get("region")) == "var.region" and expr(sub.get("network")) == "google_compute_network.vpc.id"
    rule("M1", expr(pol.get("service_class")) == "gcp-memorystore-redis" and expr(pol.get("location")) == "var.region"
         and expr(pol.get("network")) == "google_compute_network.vpc.id" and subnets and subnet_ok,
         "service connection policy: class gcp-memorystore-redis, in the clusters' region and network, on a subnet "
         "of that region and network")
    for name, c in clusters.items():
        deps = " ".join(str(d) for d in c.get("depends_on", []))
        rule("M2", expr((block(c, "psc_configs") or {}).get("network")) == "google_compute_network.vpc.id"
             and expr(c.get("region")) == "var.region"
             and "google_network_connectivity_service_connection_policy.memorystore" in deps,
             f"{name}: Memorystore cluster in the policy's network and region, created after the policy")
        shards, replicas, ntype = (var_default(f"memorystore_{name}_{k}") for k in ("shards", "replicas", "node_type"))
        vtext = CLUSTER["text"]
        rule("M3", 1 <= shards <= 250 and replicas in (0, 1, 2) and shards * (1 + replicas) <= 250
             and ntype in MEMORYSTORE_NODE_TYPES and expr(c.get("shard_count")) == f"var.memorystore_{name}_shards"
             and expr(c.get("replica_count")) == f"var.memorystore_{name}_replicas",
             f"{name}: {shards} shards x (1 + {replicas} replicas) within Memorystore's 1-250 shards, 0-2 replicas "
             f"and 250 usage units per instance; node type {ntype} is one Memorystore offers")
        nt = re.search(r'variable "memorystore_%s_node_type".*?contains\(\[([^\]]*)\]' % name, vtext, re.S)
        allowed = set(re.findall(r'"([A-Z0-9_]+)"', nt.group(1))) if nt else set()
        rule("M3", allowed and allowed <= MEMORYSTORE_NODE_TYPES,
             f"{name}: the node_type variable accepts only Memorystore's node types ({sorted(allowed - MEMORYSTORE_NODE_TYPES) or 'ok'})")
        pc = block(c, "persistence_config") or {}
        aof = block(pc, "aof_config") or {}
        if name == "state":
            rule("M4", uq(pc.get("mode")) == "AOF" and uq(aof.get("append_fsync")) == "EVERYSEC",
                 "state: AOF persistence synced every second (records and claims survive a restart)")
        else:
            rule("M4", uq(pc.get("mode")) == "DISABLED" and not aof,
                 "bytes: no persistence (uploads and results are not worth a disk write each)")
        cfg = c.get("redis_configs") or {}
        cfg = cfg[0] if isinstance(cfg, list) else cfg
        rule("M5", uq(cfg.get("maxmemory-policy", cfg.get('"maxmemory-policy"'))) == "noeviction",
             f"{name}: maxmemory-policy noeviction (Memorystore's default, volatile-lru, would evict keys of running jobs)")
        rule("M6", uq(c.get("authorization_mode")) == "AUTH_MODE_DISABLED"
             and uq(c.get("transit_encryption_mode")) == "TRANSIT_ENCRYPTION_MODE_DISABLED",
             f"{name}: no IAM AUTH and no TLS, which dsobel's client cannot do (hourly IAM tokens, a per-instance CA)")
        zd = block(c, "zone_distribution_config") or {}
        rule("M9", uq(zd.get("mode")) == "MULTI_ZONE", f"{name}: nodes spread over the region's zones")
        rule("M10", expr(c.get("deletion_protection_enabled")) == "var.deletion_protection",
             f"{name}: deletion protection follows var.deletion_protection")
    seeds = re.findall(r'"redis(s?)://\$\{e\.address\}:\$\{e\.port\}([^"]*)"', CLUSTER["text"])
    rule("M6", len(seeds) == 2 and all(tls == "" and rest == "" for tls, rest in seeds),
         "the seed lists are redis:// (no TLS), without credentials and without a database number (a cluster has only 0)")
    rule("M9", var_default("memorystore_state_replicas") >= 1,
         "the state store keeps a replica per shard by default (a node failure does not lose records)")
    net = ipaddress.ip_network(var_default("store_subnet_cidr"))
    limit = int(psc.get("limit", 0))
    rule("M8", limit >= 4 and net.num_addresses - 4 >= limit,
         f"the store subnet {net} has {net.num_addresses - 4} usable addresses for the policy's {limit} endpoints "
         f"(two per cluster; Google reserves four per subnet)")
    for script in ("scripts/deploy.sh", "scripts/deploy.ps1"):
        text = open(os.path.join(REPO, script)).read()
        rule("M10", all(f"-target=google_redis_cluster.{n}" in text for n in ("state", "bytes")),
             f"{script}: destroy turns the Memorystore clusters' deletion protection off first")
    apis = {uq(a) for a in cluster["locals"].get("apis", [])}
    need = {"redis.googleapis.com", "networkconnectivity.googleapis.com", "serviceconsumermanagement.googleapis.com"}
    rule("M11", need <= apis, f"APIs Memorystore's Private Service Connect automation needs: {sorted(need - apis) or 'all on'}")


def memorystore_k8s_rules(overlay, by):
    """M7, M8 on a render with components/memorystore."""
    nps = by.get("NetworkPolicy", {})
    if "memorystore-clients" not in nps:
        return
    rule("M7", not {"redis", "redis-bytes"} & set(by.get("StatefulSet", {})) and not any(
        n in by.get("Service", {}) for n in ("redis", "redis-bytes", "redis-internal", "redis-bytes-internal")),
        f"{overlay}: with Memorystore no in-cluster Redis, Service or load balancer is left")
    app = next((o for n, o in by.get("Secret", {}).items() if n.startswith("dsobel-app")), {})
    import base64
    urls = {k: base64.b64decode(app.get("data", {}).get(k, "")).decode() for k in ("DSOBEL_REDIS_URL", "DSOBEL_REDIS_BYTES_URL")}
    rule("M7", all(re.fullmatch(r"redis://[^/@,\s]+:[0-9]+(,redis://[^/@,\s]+:[0-9]+)*", u) for u in urls.values()),
         f"{overlay}: the apps get both stores as cluster seed lists (redis://HOST:PORT,...): {urls}")
    np_ = nps["memorystore-clients"]
    ok = False
    for r in np_["spec"].get("egress", []):
        cidrs = {p.get("ipBlock", {}).get("cidr") for p in r.get("to", [])}
        ports = {(p.get("port"), p.get("endPort", p.get("port"))) for p in r.get("ports", [])}
        ok |= cidrs == {var_default("store_subnet_cidr")} and {(6379, 6379), (11000, 13047)} <= ports
    rule("M8", ok, f"{overlay}: backend and worker reach the store subnet on 6379 and 11000-13047 (Memorystore's ports)")


# ---------------------------------------------------------------- batches (B1-B7)

def batch_rules(cluster, workers):
    bucket = cluster["resource"].get(("google_storage_bucket", "batch"), {})
    rule("B1", bucket and bucket.get("uniform_bucket_level_access") is True
         and uq(bucket.get("public_access_prevention")) == "enforced" and uq(bucket.get("deletion_policy")) == "ABANDON",
         "batch buckets: uniform access, public access prevented, left in place (with the user's objects) on destroy")
    for stack_name, stack in (("cluster", cluster), ("workers", workers)):
        for (typ, name), body in stack["resource"].items():
            if typ != "google_project_iam_member" or name == "deployer":
                continue  # the CI deployer's roles (var.deployer_roles) are G14's
            text = json.dumps(body)
            text += "".join(json.dumps(stack["locals"].get(m, "")) for m in re.findall(r"local\.(\w+)", text))
            rule("B2", "roles/storage" not in text,
                 f"{stack_name}: google_project_iam_member.{name} grants no storage role project-wide")
    grant = cluster["resource"].get(("google_storage_bucket_iam_member", "batch"), {})
    members = CLUSTER["locals"].get("batch_members", {})
    principal = str(CLUSTER["locals"].get("ksa_principal", ""))
    rule("B3", set(members) == {"backend", "worker"} and "/subject/ns/dsobel/sa" in principal
         and "google_container_cluster.this.workload_identity_config" in principal
         and "data.google_project.this.number" in principal and expr(grant.get("member")) == "each.value.member",
         "bucket grants go to the principals ns/dsobel/sa/backend and ns/dsobel/sa/worker of the cluster's "
         "Workload Identity pool (read from the cluster, so the grants wait for the pool to exist)")
    roles = set(re.findall(r"roles/storage\.[A-Za-z]+", json.dumps(CLUSTER["locals"].get("batch_grants", ""))))
    wgrant = workers["resource"].get(("google_storage_bucket_iam_member", "worker_batch"), {})
    wroles = set(re.findall(r"roles/storage\.[A-Za-z]+", json.dumps(wgrant.get("role", ""))))
    rule("B3", roles == wroles == {"roles/storage.objectUser", "roles/storage.objectViewer"}
         and "google_service_account.worker.email" in str(wgrant.get("member")) and expr(wgrant.get("for_each")) == "var.batch_buckets",
         "pods and worker VMs get object roles only (objectUser, objectViewer for read-only buckets), bucket by bucket")
    text = json.dumps(bucket.get("dynamic", ""))
    rule("B5", "_manifest/" in text and "Delete" in text and "manifest_expiry_days" in text,
         "batch buckets: a lifecycle rule deletes _manifest/ objects at each root when manifest_expiry_days is set")
    apis = {uq(a) for a in cluster["locals"].get("apis", [])}
    rule("B7", "storage.googleapis.com" in apis, "the Cloud Storage API is enabled")


def batch_k8s_rules(overlay, by, objs_info):
    cm = by.get("ConfigMap", {}).get("dsobel-config", {}).get("data", {})
    if "DSOBEL_BATCH_STORES" not in cm:
        return
    roots = cm["DSOBEL_BATCH_STORES"].split(",")
    rule("B6", all(re.fullmatch(r"gs://[a-z0-9][a-z0-9._-]{1,61}[a-z0-9](/[^,/][^,]*)?", r) for r in roots),
         f"{overlay}: DSOBEL_BATCH_STORES lists gs:// roots only: {roots}")
    np_ = by.get("NetworkPolicy", {}).get("google-apis")
    ports = set()
    for r in (np_ or {}).get("spec", {}).get("egress", []):
        for p in r.get("to", []):
            for q in r.get("ports", []):
                ports.add((p.get("ipBlock", {}).get("cidr"), q.get("port")))
    rule("B6", {("169.254.169.254/32", 80), ("169.254.169.252/32", 988), ("0.0.0.0/0", 443)} <= ports,
         f"{overlay}: backend and worker reach the GKE metadata server (their tokens) and Cloud Storage over HTTPS")
    sas = {n for n in by.get("ServiceAccount", {})}
    users = {by["Deployment"][d]["spec"]["template"]["spec"].get("serviceAccountName") for d in ("backend", "worker")
             if d in by.get("Deployment", {})}
    rule("B3", users == {"backend", "worker"} <= sas,
         f"{overlay}: backend and worker run as the Kubernetes service accounts dsobel/backend and dsobel/worker, "
         "the principals the buckets' IAM names")


def main():
    global REPO
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--rendered")
    a = ap.parse_args()
    REPO = a.repo
    global CLUSTER
    cluster = load_stack(os.path.join(REPO, "deploy/terraform/cluster"))
    workers = load_stack(os.path.join(REPO, "deploy/terraform/workers"))
    CLUSTER = cluster
    g1_maintenance(cluster)
    g3_apis(cluster, workers)
    tf_rules(cluster, workers)
    g14_roles(cluster)
    memorystore_rules(cluster)
    batch_rules(cluster, workers)
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
