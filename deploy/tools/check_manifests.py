#!/usr/bin/env python3
"""Cross-reference checks over the rendered Kubernetes overlays, beyond what
schemas can say: every reference resolves, selectors select something, the
pod hardening the project promises is present on every workload, the GKE
placement matches the Terraform node pools, and only the frontend is public.

usage: check_manifests.py RENDERED_DIR TERRAFORM_DIR
RENDERED_DIR holds one YAML file per overlay (local.yaml, gke.yaml, ...)."""
import os
import re
import sys

import yaml

rendered, tfdir = sys.argv[1:3]
errors = []


def err(overlay, msg):
    errors.append(f"{overlay}: {msg}")


def tf_default(path, var):
    text = open(path).read()
    m = re.search(r'variable "%s" \{.*?default\s*=\s*"([^"]+)"' % var, text, re.S)
    return m.group(1) if m else None


tf_main = open(os.path.join(tfdir, "cluster", "main.tf")).read()
pool_key = re.search(r'pool_label_key\s*=\s*"([^"]+)"', tf_main).group(1)
assert 'effect = "NO_SCHEDULE"' in tf_main and 'value  = "infra"' in tf_main, "infra taint not found in Terraform"
workers_cidr = tf_default(os.path.join(tfdir, "cluster", "variables.tf"), "workers_subnet_cidr")
store_cidr = tf_default(os.path.join(tfdir, "cluster", "variables.tf"), "store_subnet_cidr")
PRIVATE = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}
STORE_CLIENTS = {"backend", "worker"}

CLUSTER_SCOPED = {"Namespace"}
GRACE = {"backend": 45, "worker": 60}


def labels_match(selector, labels):
    return selector and all(labels.get(k) == v for k, v in selector.items())


def selector_names(pod_selector):
    """The app.kubernetes.io/name values a podSelector picks (matchLabels or an In expression)."""
    name = pod_selector.get("matchLabels", {}).get("app.kubernetes.io/name")
    if name:
        return {name}
    for e in pod_selector.get("matchExpressions", []):
        if e.get("key") == "app.kubernetes.io/name" and e.get("operator") == "In":
            return set(e.get("values", []))
    return set()


def ports_of(rule):
    out = set()
    for p in rule.get("ports", []):
        out.add((p.get("protocol", "TCP"), p["port"], p.get("endPort", p["port"])))
    return out


for fname in sorted(os.listdir(rendered)):
    overlay = fname[:-5]
    objs = [d for d in yaml.safe_load_all(open(os.path.join(rendered, fname))) if d]
    by = {}
    for o in objs:
        by.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
        if o["kind"] not in CLUSTER_SCOPED and o["metadata"].get("namespace") != "dsobel":
            err(overlay, f'{o["kind"]}/{o["metadata"]["name"]} is not in namespace dsobel')
        comp = o["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        if comp not in {"shared", "rabbitmq", "redis", "backend", "worker", "frontend"}:
            err(overlay, f'{o["kind"]}/{o["metadata"]["name"]} lacks app.kubernetes.io/component (pipelines select by it)')

    def exists(kind, name):
        return name in by.get(kind, {})

    workloads = {**by.get("Deployment", {}), **by.get("StatefulSet", {})}
    pod_labels = {n: w["spec"]["template"]["metadata"]["labels"] for n, w in workloads.items()}

    # ---- workloads: hardening, probes, resources, references
    for name, w in workloads.items():
        spec = w["spec"]["template"]["spec"]
        if not labels_match(w["spec"]["selector"]["matchLabels"], pod_labels[name]):
            err(overlay, f"{name}: selector does not match its pod labels")
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            err(overlay, f"{name}: pod must set runAsNonRoot and seccomp RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            err(overlay, f"{name}: automountServiceAccountToken must be false")
        sa = spec.get("serviceAccountName")
        if sa and not exists("ServiceAccount", sa):
            err(overlay, f"{name}: ServiceAccount {sa} missing")
        if name in GRACE and spec.get("terminationGracePeriodSeconds", 30) < GRACE[name]:
            err(overlay, f"{name}: terminationGracePeriodSeconds below {GRACE[name]}")
        for c in spec["containers"]:
            csc = c.get("securityContext", {})
            if not (csc.get("allowPrivilegeEscalation") is False and csc.get("readOnlyRootFilesystem") is True
                    and csc.get("capabilities", {}).get("drop") == ["ALL"]):
                err(overlay, f"{name}/{c['name']}: container securityContext incomplete")
            for p in ("livenessProbe", "readinessProbe"):
                if p not in c:
                    err(overlay, f"{name}/{c['name']}: no {p}")
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(part, {}):
                        err(overlay, f"{name}/{c['name']}: no {part}.{r}")
            for ef in c.get("envFrom", []):
                if "configMapRef" in ef and not exists("ConfigMap", ef["configMapRef"]["name"]):
                    err(overlay, f"{name}: ConfigMap {ef['configMapRef']['name']} missing")
                if "secretRef" in ef and not exists("Secret", ef["secretRef"]["name"]):
                    err(overlay, f"{name}: Secret {ef['secretRef']['name']} missing")
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    sec = by.get("Secret", {}).get(ref["name"])
                    if not sec or ref["key"] not in sec.get("data", {}):
                        err(overlay, f"{name}: Secret key {ref['name']}/{ref['key']} missing")
            if name in ("backend", "worker"):
                arg = c.get("args", [None])[0]
                if arg != {"backend": "serve", "worker": "worker"}[name]:
                    err(overlay, f"{name}: runs `dsobel {arg}`")
                port = "http" if name == "backend" else "health"
                if (c["livenessProbe"]["httpGet"]["path"], c["readinessProbe"]["httpGet"]["path"]) != ("/healthz", "/readyz"):
                    err(overlay, f"{name}: probes must be /healthz (liveness) and /readyz (readiness)")
                if c["livenessProbe"]["httpGet"]["port"] != port:
                    err(overlay, f"{name}: probes must use port {port}")
        for v in spec.get("volumes", []):
            if "configMap" in v and not exists("ConfigMap", v["configMap"]["name"]):
                err(overlay, f"{name}: volume ConfigMap {v['configMap']['name']} missing")

        # ---- GKE placement matches Terraform's pools
        if overlay.startswith("gke"):
            pool = "infra" if name in ("rabbitmq", "redis", "redis-bytes") else "app"
            if spec.get("nodeSelector", {}).get(pool_key) != pool:
                err(overlay, f"{name}: nodeSelector {pool_key}={pool} missing")
            tol = [t for t in spec.get("tolerations", []) if t.get("key") == pool_key]
            if pool == "infra" and not any(t.get("value") == "infra" and t.get("effect") == "NoSchedule" for t in tol):
                err(overlay, f"{name}: toleration for the infra taint missing")

    # ---- selectors select something
    for kind in ("Service", "PodDisruptionBudget"):
        for name, o in by.get(kind, {}).items():
            sel = o["spec"]["selector"]
            sel = sel.get("matchLabels", sel) if kind == "PodDisruptionBudget" else sel
            if not any(labels_match(sel, pl) for pl in pod_labels.values()):
                err(overlay, f"{kind}/{name}: selector {sel} selects no pod")
    for name, o in by.get("NetworkPolicy", {}).items():
        names = selector_names(o["spec"]["podSelector"])
        pods = {pl.get("app.kubernetes.io/name") for pl in pod_labels.values()}
        if o["spec"]["podSelector"] and not names & pods:
            err(overlay, f"NetworkPolicy/{name}: podSelector selects no pod")
    # ---- egress to addresses (not pods): only backend and worker, and only to
    # the store's endpoint subnet (Memorystore), the GKE metadata server and
    # HTTPS on public addresses (Cloud Storage for batches)
    allowed = {
        (store_cidr, frozenset()): {("TCP", 6379, 6379), ("TCP", 11000, 13047)},
        ("169.254.169.254/32", frozenset()): {("TCP", 80, 80)},
        ("169.254.169.252/32", frozenset()): {("TCP", 988, 988)},
    }
    for name, o in by.get("NetworkPolicy", {}).items():
        names = selector_names(o["spec"]["podSelector"])
        for rule in o["spec"].get("egress", []):
            for peer in rule.get("to", []):
                block = peer.get("ipBlock")
                if not block:
                    continue
                key = (block["cidr"], frozenset(block.get("except", [])))
                ports = ports_of(rule)
                if not names or not names <= STORE_CLIENTS:
                    err(overlay, f"NetworkPolicy/{name}: egress to {block['cidr']} from {sorted(names) or 'every pod'}")
                elif block["cidr"] == "0.0.0.0/0":
                    if not PRIVATE <= set(block.get("except", [])) or ports != {("TCP", 443, 443)}:
                        err(overlay, f"NetworkPolicy/{name}: egress to public addresses must be HTTPS only, with the private ranges excepted")
                elif key not in allowed or not ports <= allowed[key]:
                    err(overlay, f"NetworkPolicy/{name}: egress to {block['cidr']} on {sorted(ports)} is none of the store subnet, the metadata server or public HTTPS")
    if "default-deny" not in by.get("NetworkPolicy", {}):
        err(overlay, "no default-deny NetworkPolicy")
    # ---- only backend and workers (and, on GKE, the VM subnet / KEDA) reach the brokers
    for broker in ("rabbitmq", "redis", "redis-bytes"):
        for name, o in by.get("NetworkPolicy", {}).items():
            sel = o["spec"]["podSelector"].get("matchLabels", {})
            if sel.get("app.kubernetes.io/name") != broker:
                continue
            for rule in o["spec"].get("ingress", []):
                ports = {p["port"] for p in rule.get("ports", [])}
                if not ports & {5672, 6379}:
                    continue
                for peer in rule.get("from", []):
                    pod = peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
                    ns = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                    ip = peer.get("ipBlock", {}).get("cidr")
                    ok = (pod in ("backend", "worker") and not ns) or (ns == "keda" and pod is None) or (ip == workers_cidr)
                    if ns == "keda":
                        ok = True
                    if not ok:
                        err(overlay, f"NetworkPolicy/{name}: {broker} admits {peer}")

    # ---- exposure: only the frontend is public
    for name, o in by.get("Service", {}).items():
        t = o["spec"].get("type", "ClusterIP")
        if t == "NodePort":
            err(overlay, f"Service/{name}: NodePort not allowed")
        if t == "LoadBalancer":
            ann = o["metadata"].get("annotations", {})
            if ann.get("networking.gke.io/load-balancer-type") != "Internal":
                err(overlay, f"Service/{name}: external LoadBalancer (only the frontend Ingress may be public)")
            if o["spec"].get("loadBalancerSourceRanges") != [workers_cidr]:
                err(overlay, f"Service/{name}: loadBalancerSourceRanges must be the worker subnet {workers_cidr}")
            if o["spec"].get("externalTrafficPolicy") != "Local":
                err(overlay, f"Service/{name}: externalTrafficPolicy Local keeps the VM source IP for NetworkPolicies")
        bc = o["metadata"].get("annotations", {}).get("cloud.google.com/backend-config")
        if bc:
            ref = yaml.safe_load(bc).get("default")
            if not exists("BackendConfig", ref):
                err(overlay, f"Service/{name}: BackendConfig {ref} missing")
    for name, o in by.get("Ingress", {}).items():
        backends = [o["spec"].get("defaultBackend", {}).get("service", {}).get("name")]
        for r in o["spec"].get("rules", []):
            backends += [p["backend"]["service"]["name"] for p in r.get("http", {}).get("paths", [])]
        if set(filter(None, backends)) != {"frontend"}:
            err(overlay, f"Ingress/{name}: routes to {backends}, only frontend allowed")
        ann = o["metadata"].get("annotations", {})
        mc = ann.get("networking.gke.io/managed-certificates")
        if mc and not exists("ManagedCertificate", mc):
            err(overlay, f"Ingress/{name}: ManagedCertificate {mc} missing")
        fc = ann.get("networking.gke.io/v1beta1.FrontendConfig")
        if fc and not exists("FrontendConfig", fc):
            err(overlay, f"Ingress/{name}: FrontendConfig {fc} missing")

    # ---- settings
    cm = by.get("ConfigMap", {}).get("dsobel-config")
    if not cm:
        err(overlay, "ConfigMap dsobel-config missing")
    else:
        for k, v in cm["data"].items():
            if not re.fullmatch(r"DSOBEL_[A-Z_]+|RUST_LOG", k) or not isinstance(v, str):
                err(overlay, f"dsobel-config: {k} is not a DSOBEL_* string setting")
        for k in ("DSOBEL_AMQP_URL", "DSOBEL_REDIS_URL", "DSOBEL_REDIS_BYTES_URL", "DSOBEL_API_KEY"):
            if k in cm["data"]:
                err(overlay, f"dsobel-config: {k} belongs in a Secret")
    app = by.get("Secret", {}).get("dsobel-app") or next(
        (s for n, s in by.get("Secret", {}).items() if n.startswith("dsobel-app")), None)
    for k in ("DSOBEL_AMQP_URL", "DSOBEL_REDIS_URL", "DSOBEL_REDIS_BYTES_URL"):
        if not app or k not in app.get("data", {}):
            err(overlay, f"Secret dsobel-app lacks {k}")

    # ---- autoscaling
    hpas = [o for o in by.get("HorizontalPodAutoscaler", {}).values() if o["spec"]["scaleTargetRef"]["name"] == "worker"]
    sos = list(by.get("ScaledObject", {}).values())
    if len(hpas) + len(sos) != 1:
        err(overlay, f"worker needs exactly one autoscaler, found {len(hpas)} HPA and {len(sos)} ScaledObject")
    for o in hpas + sos:
        if not exists("Deployment", o["spec"]["scaleTargetRef"]["name"]):
            err(overlay, f"autoscaler targets missing Deployment {o['spec']['scaleTargetRef']['name']}")
    for so in sos:
        for t in so["spec"]["triggers"]:
            if t["type"] == "rabbitmq":
                if cm and t["metadata"]["queueName"] != cm["data"].get("DSOBEL_QUEUE"):
                    err(overlay, "ScaledObject queueName differs from DSOBEL_QUEUE")
                ta = by.get("TriggerAuthentication", {}).get(t["authenticationRef"]["name"])
                if not ta:
                    err(overlay, "TriggerAuthentication missing")
                    continue
                for ref in ta["spec"]["secretTargetRef"]:
                    sec = by.get("Secret", {}).get(ref["name"])
                    if not sec or ref["key"] not in sec.get("data", {}):
                        err(overlay, f"TriggerAuthentication: Secret key {ref['name']}/{ref['key']} missing")

    print(f"{overlay}: {len(objs)} objects cross-checked")

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
