#!/usr/bin/env python3
"""Structural checks of deploy/compose.yaml for machines without `docker compose`:
every service has an image or build, every depends_on target exists, a
`service_healthy` dependency has a health check (in compose or in our images),
and the stack has what the documentation promises: the store in its two roles
(state with an append-only file and a volume, bytes without persistence, both
refusing writes when full) sized by the capacity formula for what two workers
on two cores turn out (deploy/tools/capacity.py)."""
import os
import shlex
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import capacity  # noqa: E402

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
for need in ("rabbitmq", "redis", "redis-bytes", "backend", "worker", "nginx"):
    if need not in services:
        errors.append(f"missing service {need}")
if services.get("worker", {}).get("deploy", {}).get("replicas") != 2:
    errors.append("worker: expected deploy.replicas 2")
for name in ("backend", "worker"):
    cmd = services.get(name, {}).get("command")
    if cmd != [{"backend": "serve"}.get(name, name)]:
        errors.append(f"{name}: command should be the dsobel subcommand, got {cmd}")


def server_args(name):
    cmd = services.get(name, {}).get("command") or []
    line = cmd[-1] if isinstance(cmd, list) and cmd else str(cmd)
    words = shlex.split(line.replace("$$", "$"))
    return capacity.redis_args(words[words.index("redis-server") + 1:]) if "redis-server" in words else {}


env = (services.get("backend") or {}).get("environment") or {}
state, byts = server_args("redis"), server_args("redis-bytes")
if state.get("appendonly") != "yes" or state.get("appendfsync", "everysec") != "everysec" \
        or not any(str(v).endswith(":/data") for v in services.get("redis", {}).get("volumes", [])):
    errors.append("redis (state): append-only file synced every second, on a volume at /data")
if byts.get("appendonly") != "no" or byts.get("save") != "" or services.get("redis-bytes", {}).get("volumes"):
    errors.append("redis-bytes: no append-only file, no snapshots, no volume")
for name, a in (("redis", state), ("redis-bytes", byts)):
    if a.get("maxmemory-policy") != "noeviction" or "maxmemory" not in a:
        errors.append(f"{name}: maxmemory with the noeviction policy")
for k, url in (("DSOBEL_REDIS_URL", "@redis:6379/"), ("DSOBEL_REDIS_BYTES_URL", "@redis-bytes:6379/")):
    if url not in str(env.get(k, "")):
        errors.append(f"backend and workers: {k} must name the {url[1:-6]} service")
ttl, work_ttl = int(env.get("DSOBEL_RESULT_TTL_SECS", 3600)), int(env.get("DSOBEL_WORK_TTL_SECS", 900))
watermark = float(env.get("DSOBEL_STORE_MEMORY_WATERMARK", 0.8))
if work_ttl > ttl:
    errors.append(f"DSOBEL_WORK_TTL_SECS {work_ttl} outlives the records (DSOBEL_RESULT_TTL_SECS {ttl})")
if errors:
    print("\n".join(errors))
    sys.exit(1)
rate_b = capacity.bytes_rate(capacity.redis_size(byts["maxmemory"]), watermark, ttl,
                             int(env.get("DSOBEL_MAX_JOBS_IN_FLIGHT", 64)))
rate_s = capacity.state_rate(capacity.redis_size(state["maxmemory"]), watermark, ttl)
if min(rate_b, rate_s) < capacity.TARGET_LOCAL:
    errors.append(f"the store holds {rate_b:.0f} (bytes) and {rate_s:.0f} (state) 1 MB images/s with results kept "
                  f"{ttl} s, under the {capacity.TARGET_LOCAL}/s two workers turn out")
if errors:
    print("\n".join(errors))
    sys.exit(1)
print(f"compose: {len(services)} services, start order by health checks; the store holds {rate_b:.0f} (bytes) "
      f"and {rate_s:.0f} (state) 1 MB images/s with results kept {ttl} s")
