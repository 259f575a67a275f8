#!/usr/bin/env python3
"""Structural checks of deploy/compose.yaml for machines without `docker compose`:
every service has an image or build, every depends_on target exists, a
`service_healthy` dependency has a health check (in compose or in our images),
and the stack has what the documentation promises."""
import sys

import yaml

OUR_IMAGES_WITH_HEALTHCHECK = {"deploy/docker/dsobel.Dockerfile", "deploy/docker/nginx.Dockerfile"}

doc = yaml.safe_load(open(sys.argv[1]))
services = doc["services"]
errors = []
for name, svc in services.items():
    if "image" not in svc and "build" not in svc:
        errors.append(f"{name}: no image or build")
    for dep, cond in (svc.get("depends_on") or {}).items():
        if dep not in services:
            errors.append(f"{name}: depends_on unknown service {dep}")
            continue
        if cond.get("condition") == "service_healthy":
            target = services[dep]
            built = (target.get("build") or {}).get("dockerfile")
            if "healthcheck" not in target and built not in OUR_IMAGES_WITH_HEALTHCHECK:
                errors.append(f"{name}: waits for {dep} healthy but {dep} has no health check")
for need in ("rabbitmq", "redis", "backend", "worker", "nginx"):
    if need not in services:
        errors.append(f"missing service {need}")
if services.get("worker", {}).get("deploy", {}).get("replicas") != 2:
    errors.append("worker: expected deploy.replicas 2")
for name in ("backend", "worker"):
    cmd = services.get(name, {}).get("command")
    if cmd != [{"backend": "serve"}.get(name, name)]:
        errors.append(f"{name}: command should be the dsobel subcommand, got {cmd}")
if errors:
    print("\n".join(errors))
    sys.exit(1)
print(f"compose: {len(services)} services, start order by health checks")
