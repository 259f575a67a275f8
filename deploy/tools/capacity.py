"""The store's capacity formula (docs/deploy.md#capacity), shared by the checks that hold the
deployment's defaults to it (check_gke_rules.py G18 on the rendered overlays, check_compose.py
on the Compose file).

What one job of the reference image (the 1 MB photograph of docs/performance.md §6, 1920×1280,
binary output, a 10,778-byte PNG) keeps in Redis, measured with Redis 7.0.15 (jemalloc 5.3.0)
after 900 jobs through `dsobel serve` and `dsobel worker`: MEMORY USAGE of each key, and the
growth of used_memory_dataset per job (12.9 KB, the sum of the two below):

    result  12,392 bytes   the PNG and its key, for DSOBEL_RESULT_TTL_SECS   (bytes store)
    record     536 bytes   the job record, as long                           (state store)
    claim      200 bytes   an idempotency claim with a 128-character key,   (state store)
                           when the upload carried one (120 with a short key)
    upload  1,310,824 bytes  the 1,047 KB upload while its job runs: the allocator rounds
                           a value just over 1 MiB up to 1.25 MiB          (bytes store)

Rate a store sustains, with w the watermark (DSOBEL_STORE_MEMORY_WATERMARK), M its maxmemory,
T the result TTL and U the jobs admitted at once (each with its upload in the store):

    bytes:  R = (w·M − U·upload) / (T·result)
    state:  R =  w·M / (T·(record + claim))
"""
import re

RESULT_BYTES = 12_392
RECORD_BYTES = 536
CLAIM_BYTES = 200
UPLOAD_BYTES = 1_310_824

# What the defaults must sustain, in 1 MB photographs a second: the GKE deployment's ceiling
# elsewhere (the in-cluster bytes store's node sends about 1.06 MB per image, and an E2 node
# with 2 vCPUs is capped at 4 Gbit/s of egress: about 470 images/s), and the README's figure
# for two workers sharing two cores (about 105 images/s) for the laptop-sized stacks.
TARGET_GKE = 470
TARGET_LOCAL = 105


def redis_size(text):
    """Bytes of a Redis memory size: 1k = 1000, 1kb = 1024, 1m = 10^6, 1mb = 1024^2, ..."""
    m = re.fullmatch(r"([0-9]+)([kmg]b?)?", str(text).strip().lower())
    if not m:
        raise ValueError(f"not a Redis memory size: {text!r}")
    unit = m.group(2) or ""
    scale = {"": 1, "k": 10**3, "kb": 2**10, "m": 10**6, "mb": 2**20, "g": 10**9, "gb": 2**30}[unit]
    return int(m.group(1)) * scale


def k8s_size(text):
    """Bytes of a Kubernetes quantity (Mi, Gi, M, G, plain)."""
    m = re.fullmatch(r"([0-9.]+)(Ki|Mi|Gi|K|M|G)?", str(text).strip())
    if not m:
        raise ValueError(f"not a Kubernetes memory quantity: {text!r}")
    scale = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}[m.group(2)]
    return int(float(m.group(1)) * scale)


def bytes_rate(maxmemory, watermark, result_ttl, jobs_admitted):
    return (watermark * maxmemory - jobs_admitted * UPLOAD_BYTES) / (result_ttl * RESULT_BYTES)


def state_rate(maxmemory, watermark, result_ttl):
    return watermark * maxmemory / (result_ttl * (RECORD_BYTES + CLAIM_BYTES))


def redis_args(args):
    """The --option value pairs of a redis-server command line, as a dict."""
    out, key = {}, None
    for a in args:
        if a.startswith("--"):
            key = a[2:]
            out[key] = ""
        elif key is not None:
            out[key] = a
            key = None
    return out
