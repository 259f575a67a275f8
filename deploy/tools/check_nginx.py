#!/usr/bin/env python3
"""Checks of deploy/nginx/nginx.conf, the frontend's config template.

Static (always):
  * the template's placeholders are exactly the four that render.sh, the nginx image
    (NGINX_ENVSUBST_FILTER) and the browser tests substitute;
  * client_max_body_size equals the backend's DSOBEL_MAX_UPLOAD_BYTES (the ConfigMap), and
    the JSON that nginx answers for a body over it names the same limit;
  * /upload passes the body through (proxy_request_buffering off) over HTTP/1.1;
  * every event stream (/events/, /batches/ID/events) is passed through unbuffered.

Live (with --nginx PATH): the rendered template passes `nginx -t`, then nginx runs in front
of a stand-in backend on loopback and:
  * a 60 MiB upload with a Content-Length, and another sent chunked, reach the backend while
    they are still being sent (the client stops half way and waits until the backend has
    read most of that half), with nothing in nginx's client-body temp folder at that moment
    or afterwards, and no "buffered to a temporary file" warning in nginx's log;
  * a declared length one byte over the limit is refused by nginx with 413 and the
    API's JSON error `payload-too-large`, before any body byte is sent;
  * a batch's event stream reaches the client event by event.

usage: check_nginx.py REPO [--nginx PATH]
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

PLACEHOLDERS = {"NGINX_LISTEN", "DSOBEL_BACKEND", "WEB_ROOT", "NGINX_TMP"}
MIB = 1024 * 1024
UPLOAD = 60 * MIB

errors = []
notes = []


def fail(msg):
    errors.append(msg)


def size_bytes(v):
    m = re.fullmatch(r"([0-9]+)([kKmMgG]?)", v)
    if not m:
        raise ValueError(v)
    return int(m.group(1)) * {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB}[m.group(2).lower()]


def location_block(conf, header):
    """The text of the location block whose header (e.g. `= /upload`) is given."""
    i = conf.find("location " + header + " {")
    if i < 0:
        return None
    depth, j = 0, conf.index("{", i)
    for k in range(j, len(conf)):
        depth += {"{": 1, "}": -1}.get(conf[k], 0)
        if depth == 0:
            return conf[j:k]
    return None


def static_checks(repo):
    conf = open(os.path.join(repo, "deploy/nginx/nginx.conf")).read()
    body = "\n".join(l for l in conf.splitlines() if not l.lstrip().startswith("#"))
    used = set(re.findall(r"\$\{([A-Z_]+)\}", body))
    if used != PLACEHOLDERS:
        fail(f"template placeholders {sorted(used)} != {sorted(PLACEHOLDERS)}")
    dockerfile = open(os.path.join(repo, "deploy/docker/nginx.Dockerfile")).read()
    flt = re.search(r'NGINX_ENVSUBST_FILTER="\^\(([A-Z_|]+)\)\$"', dockerfile)
    if not flt or set(flt.group(1).split("|")) != PLACEHOLDERS:
        fail("deploy/docker/nginx.Dockerfile NGINX_ENVSUBST_FILTER does not name exactly the template's placeholders")
    render = open(os.path.join(repo, "deploy/nginx/render.sh")).read()
    if set(re.findall(r"\$\{([A-Z_]+)\}", render.split("envsubst", 1)[1])) != PLACEHOLDERS:
        fail("deploy/nginx/render.sh does not substitute exactly the template's placeholders")

    cm = open(os.path.join(repo, "deploy/k8s/base/config.yaml")).read()
    limit = int(re.search(r'DSOBEL_MAX_UPLOAD_BYTES:\s*"([0-9]+)"', cm).group(1))
    m = re.search(r"^\s*client_max_body_size\s+(\S+);", body, re.M)
    if not m or size_bytes(m.group(1)) != limit:
        fail(f"client_max_body_size {m and m.group(1)} != DSOBEL_MAX_UPLOAD_BYTES {limit} (deploy/k8s/base/config.yaml)")
    too_large = location_block(conf, "@payload_too_large") or ""
    if f"({limit} bytes)" not in too_large or '"code":"payload-too-large"' not in too_large:
        fail(f"the 413 answer must be the API's payload-too-large error naming {limit} bytes")

    upload = location_block(conf, "= /upload")
    if upload is None:
        fail("no `location = /upload`")
    else:
        if not re.search(r"^\s*proxy_request_buffering\s+off;", upload, re.M):
            fail("/upload must pass the body through as it arrives (proxy_request_buffering off)")
        if re.search(r"proxy_http_version\s+1\.0", upload):
            fail("/upload must talk HTTP/1.1 to the backend (a chunked body is passed through only then)")
    if not re.search(r"^\s{8}proxy_http_version\s+1\.1;", body, re.M):
        fail("the server block must proxy with HTTP/1.1 (keep-alive to the backend, chunked bodies passed through)")
    for header in ("/events/", "~ ^/batches/[^/]+/events$"):
        blk = location_block(conf, header)
        if blk is None or not re.search(r"^\s*proxy_buffering\s+off;", blk, re.M):
            fail(f"event stream location `{header}` must be unbuffered (proxy_buffering off)")
    for header in ("= /batches", "/batches/"):
        if location_block(conf, header) is None:
            fail(f"no `location {header}` (the batch API)")
    notes.append(f"static: placeholders, limit {limit} bytes, /upload unbuffered, event streams unbuffered")
    return conf, limit


# ---------------------------------------------------------------- live

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Backend:
    """A stand-in for `dsobel serve`: reads request bodies (declared or chunked) slowly
    enough to show pass-through, counts the bytes it has read, answers JSON."""

    def __init__(self):
        self.received = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def count(self, n):
        with self.lock:
            self.received += n

    def handle(self, conn):
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers = {}
                while True:
                    h = f.readline().decode()
                    if h in ("\r\n", "\n", ""):
                        break
                    k, v = h.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
                if method == "GET" and path.startswith("/batches/") and path.endswith("/events"):
                    self.stream(conn)
                    return
                total = 0
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    while True:
                        size = int(f.readline().split(b";")[0], 16)
                        if size == 0:
                            f.readline()
                            break
                        total += self.read(f, size)
                        f.readline()
                elif "content-length" in headers:
                    total = self.read(f, int(headers["content-length"]))
                out = json.dumps({"path": path, "bytes": total}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(out), out))
        except (OSError, ValueError):
            return
        finally:
            conn.close()

    def read(self, f, n):
        left = n
        while left:
            chunk = f.read(min(left, 256 * 1024))
            if not chunk:
                raise OSError("body cut short")
            left -= len(chunk)
            self.count(len(chunk))
            time.sleep(0.001)
        return n

    @staticmethod
    def stream(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for i in range(3):
            ev = b"event: progress\ndata: {\"done\": %d}\n\n" % i
            conn.sendall(b"%x\r\n%s\r\n" % (len(ev), ev))
            time.sleep(0.5)
        conn.sendall(b"0\r\n\r\n")


def wait_until(pred, seconds):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def temp_files(folder):
    found = []
    for d, _, files in os.walk(folder):
        found += [os.path.join(d, f) for f in files]
    return found


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    m = re.search(rb"(?i)content-length:\s*([0-9]+)", head)
    if m:
        while len(rest) < int(m.group(1)):
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
    return status, head.decode(errors="replace"), rest


def upload(port, backend, body_temp, chunked):
    """Sends UPLOAD bytes to /upload, pausing half way until the backend has read most of
    the first half; returns (status, body, backend bytes at the pause, temp files then)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {UPLOAD}"
    s.sendall(f"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/jpeg\r\n{framing}\r\n\r\n".encode())
    piece = os.urandom(MIB)
    start = backend.received
    for i in range(UPLOAD // MIB):
        if chunked:
            s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        else:
            s.sendall(piece)
        if i + 1 == UPLOAD // MIB // 2:
            half = UPLOAD // 2
            # The backend sees most of the first half while the client holds the second.
            ok = wait_until(lambda: backend.received - start >= half - 2 * MIB, 20)
            at_pause = backend.received - start
            files_at_pause = temp_files(body_temp)
            if not ok:
                s.close()
                return None, b"", at_pause, files_at_pause
    if chunked:
        s.sendall(b"0\r\n\r\n")
    status, _, body = read_response(s)
    s.close()
    return status, body, at_pause, files_at_pause


def live_checks(nginx, repo, limit):
    prefix = tempfile.mkdtemp(prefix="dsobel-nginx-check-")
    backend = Backend()
    port = free_port()
    web = os.path.join(prefix, "web")
    os.makedirs(web)
    open(os.path.join(web, "index.html"), "w").write("<!doctype html><title>dsobel</title>\n")
    values = {"NGINX_LISTEN": f"127.0.0.1:{port}", "DSOBEL_BACKEND": f"127.0.0.1:{backend.port}",
              "WEB_ROOT": web, "NGINX_TMP": prefix}
    template = open(os.path.join(repo, "deploy/nginx/nginx.conf")).read()
    conf = os.path.join(prefix, "nginx.conf")
    open(conf, "w").write(re.sub(r"\$\{(%s)\}" % "|".join(PLACEHOLDERS), lambda m: values[m.group(1)], template))
    globals_ = "daemon off; user root;" if os.geteuid() == 0 else "daemon off;"
    log = os.path.join(prefix, "error.log")
    t = subprocess.run([nginx, "-t", "-q", "-p", prefix, "-c", conf, "-e", log, "-g", globals_],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if t.returncode != 0:
        fail(f"nginx -t refuses the rendered template: {t.stdout.strip()} {open(log).read() if os.path.exists(log) else ''}")
        shutil.rmtree(prefix, ignore_errors=True)
        return
    notes.append("nginx -t accepts the rendered template")
    proc = subprocess.Popen([nginx, "-p", prefix, "-c", conf, "-e", log, "-g", globals_],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    body_temp = os.path.join(prefix, "nginx-client-body")
    try:
        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False
        if not wait_until(up, 10):
            fail(f"nginx did not start: {open(log).read()[-2000:]}")
            return
        for chunked in (False, True):
            kind = "chunked" if chunked else "with a Content-Length"
            status, body, at_pause, files = upload(port, backend, body_temp, chunked)
            if status is None:
                fail(f"60 MiB upload {kind}: the backend had read only {at_pause // MIB} MiB of the first "
                     f"30 MiB while the client waited (nginx holds the body back)")
                continue
            if files:
                fail(f"60 MiB upload {kind}: files in the client-body temp folder half way: {files}")
            try:
                got = json.loads(body)["bytes"]
            except (ValueError, KeyError):
                got = None
            if status != 200 or got != UPLOAD:
                fail(f"60 MiB upload {kind}: answer {status}, backend read {got} bytes of {UPLOAD}")
            left = temp_files(body_temp)
            if left:
                fail(f"60 MiB upload {kind}: files left in the client-body temp folder: {left}")
            notes.append(f"60 MiB upload {kind}: backend had {at_pause // MIB} MiB while the client held the "
                         f"second half; {got} bytes through; client-body temp folder empty")
        # Over the limit: refused by nginx before any body byte is sent.
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(f"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {limit + 1}\r\n\r\n".encode())
        status, head, body = read_response(s)
        s.close()
        try:
            code = json.loads(body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = None
        if status != 413 or code != "payload-too-large" or "application/json" not in head:
            fail(f"a declared length of {limit + 1} bytes: answer {status} {code!r} (want 413 payload-too-large JSON)")
        else:
            notes.append(f"{limit + 1} bytes declared: 413 payload-too-large from nginx, no body sent")
        # A batch's event stream arrives event by event.
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /batches/b1/events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
        t0, first, data = time.time(), None, b""
        while b"data: {\"done\": 2}" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if first is None and b"event: progress" in data:
                first = time.time() - t0
        s.close()
        if first is None or first > 0.4:
            fail(f"/batches/ID/events: the first event arrived after {first} s (buffered; the stand-in sends one per 0.5 s)")
        else:
            notes.append(f"/batches/ID/events: first event after {first:.2f} s, the stream passed through")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        text = open(log).read() if os.path.exists(log) else ""
        if "buffered to a temporary file" in text:
            fail("nginx logged a request body buffered to a temporary file")
        shutil.rmtree(prefix, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("repo")
    ap.add_argument("--nginx")
    a = ap.parse_args()
    _, limit = static_checks(a.repo)
    if a.nginx:
        live_checks(a.nginx, a.repo, limit)
    for n in notes:
        print(n)
    if errors:
        print("\n".join(errors), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
