// Shared pieces of the browser tests: find the tools, start `dsobel serve` and nginx on free
// loopback ports, launch headless Chromium with a fresh profile, and compare images by pixels.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const webDir = path.join(repoRoot, 'web');
export const nginxTemplate = path.join(repoRoot, 'deploy', 'nginx', 'nginx.conf');
export const dsobelBin = path.resolve(here, process.env.DSOBEL_BIN || path.join('..', '..', 'target', 'debug', 'dsobel'));
export const photosDir = process.env.DSOBEL_PHOTOS
  ? path.resolve(repoRoot, process.env.DSOBEL_PHOTOS)
  : path.resolve(repoRoot, 'tests', 'data', 'photos');
export const chromiumPath = process.env.DSOBEL_CHROMIUM || '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const inCI = () => !!process.env.CI && !['0', 'false', 'no'].includes(String(process.env.CI).toLowerCase());

function findNginx() {
  for (const p of [process.env.DSOBEL_NGINX, '/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx']) {
    if (p && fs.existsSync(p)) return p;
  }
  const r = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}
export const nginxPath = findNginx();

// What is missing for a test to run, in words that say how to get it.
export function missing({ nginx = false } = {}) {
  const out = [];
  if (!fs.existsSync(path.join(here, 'node_modules', 'playwright-core'))) {
    out.push('node_modules is missing: run `npm ci` in tests/browser (or tests/browser/run.sh)');
  }
  if (!fs.existsSync(chromiumPath)) {
    out.push(`Chromium is missing at ${chromiumPath}: apt-get install -y chromium chromium-driver`);
  }
  if (nginx && !nginxPath) out.push('nginx is missing: apt-get install -y nginx');
  if (!fs.existsSync(dsobelBin)) {
    out.push(`the dsobel binary is missing at ${dsobelBin}: build it with cargo build (or set DSOBEL_BIN)`);
  }
  if (!fs.existsSync(photosDir)) out.push(`the test photos are missing at ${photosDir} (set DSOBEL_PHOTOS)`);
  return out;
}

// Wraps a test body: without its tools it fails under CI and is skipped elsewhere.
export function needs(opts, fn) {
  return async (t) => {
    const gaps = missing(opts);
    if (gaps.length) {
      const msg = `cannot run: ${gaps.join('; ')}`;
      if (inCI()) throw new Error(msg);
      t.skip(msg);
      return;
    }
    await fn(t);
  };
}

export function photo(name) { return path.join(photosDir, name); }

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(url, proc, what, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode) {
      throw new Error(`${what} exited early (${proc.exitCode ?? proc.signalCode}):\n${proc.logs()}`);
    }
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (r.ok) return;
      last = `HTTP ${r.status}`;
    } catch (e) { last = e.message; }
    await sleep(150);
  }
  throw new Error(`${what} did not answer ${url} in time (${last}):\n${proc.logs()}`);
}

// stdoutFile: send standard output to a file instead of a pipe (nginx opens /dev/stdout by name,
// which fails on the socket that Node uses for a pipe).
function spawnLogged(cmd, args, opts, stdoutFile) {
  const outFd = stdoutFile ? fs.openSync(stdoutFile, 'a') : 'pipe';
  const proc = spawn(cmd, args, { stdio: ['ignore', outFd, 'pipe'], ...opts });
  if (stdoutFile) fs.closeSync(outFd);
  let log = '';
  const keep = (d) => { log += d; if (log.length > 200000) log = log.slice(-100000); };
  if (proc.stdout) proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  proc.logs = () => {
    let out = log;
    if (stdoutFile) { try { out = fs.readFileSync(stdoutFile, 'utf8') + out; } catch { /* gone */ } }
    return out.slice(-8000);
  };
  proc.stop = async () => {
    if (proc.exitCode !== null || proc.signalCode) return;
    const done = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
    await done;
    clearTimeout(t);
  };
  return proc;
}

// Starts `dsobel serve` on port 0 (it writes the address it bound to a file, which this
// reads: no free-port race); resolves once /healthz answers.
// port: listen on this one (to bring a stopped server back at the same address).
export async function startServe({ args = [], env = {}, port: fixedPort = null } = {}) {
  const addressFile = path.join(os.tmpdir(), `dsobel-address-${process.pid}-${Math.random().toString(16).slice(2)}`);
  const listen = `127.0.0.1:${fixedPort || 0}`;
  const proc = spawnLogged(dsobelBin, ['serve', '--listen', listen, '--address-file', addressFile, ...args], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn', ...env, DSOBEL_LISTEN: listen },
  });
  let address;
  try {
    address = await readAddress(addressFile, proc);
  } catch (e) {
    await proc.stop();
    throw e;
  }
  const url = `http://${address}`;
  const port = Number(address.split(':').pop());
  try {
    await waitFor(`${url}/healthz`, proc, 'dsobel serve');
  } catch (e) {
    await proc.stop();
    throw e;
  }
  return { url, port, proc, stop: () => proc.stop() };
}

// Waits for the address a process writes to `file` once it listens (60 s at most).
async function readAddress(file, proc, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode) {
      throw new Error(`dsobel serve exited early (${proc.exitCode ?? proc.signalCode}):\n${proc.logs()}`);
    }
    try {
      const address = fs.readFileSync(file, 'utf8').trim();
      fs.rmSync(file, { force: true });
      return address;
    } catch { /* not written yet */ }
    await sleep(20);
  }
  throw new Error(`dsobel serve reported no address in time:\n${proc.logs()}`);
}

// Renders the project's nginx template for loopback ports and starts nginx in front of backendUrl.
export async function startNginx(backendUrl) {
  const port = await freePort();
  const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'dsobel-nginx-'));
  const vars = {
    NGINX_LISTEN: `127.0.0.1:${port}`,
    DSOBEL_BACKEND: new URL(backendUrl).host,
    WEB_ROOT: webDir,
    NGINX_TMP: prefix,
  };
  const template = fs.readFileSync(nginxTemplate, 'utf8');
  const rendered = template.replace(/\$\{(NGINX_LISTEN|DSOBEL_BACKEND|WEB_ROOT|NGINX_TMP)\}/g, (_, k) => vars[k]);
  const conf = path.join(prefix, 'nginx.conf');
  fs.writeFileSync(conf, rendered);
  // As root, keep the workers root too so they can reach the private temp prefix and the checkout.
  const globals = process.getuid && process.getuid() === 0 ? 'daemon off; user root;' : 'daemon off;';
  const proc = spawnLogged(nginxPath, ['-p', prefix, '-c', conf, '-e', 'stderr', '-g', globals], {},
    path.join(prefix, 'stdout.log'));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    await proc.stop();
    fs.rmSync(prefix, { recursive: true, force: true });
  };
  try {
    await waitFor(`${url}/healthz`, proc, 'nginx');
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, port, proc, conf: rendered, stop };
}

// A fresh headless Chromium with its own profile; collects console errors and page errors.
// phone: a touch screen that reports a coarse pointer, as on a phone. bypassCSP: let the test
// inject scripts of its own (the accessibility audit) into a page served with a strict CSP.
export async function openBrowser({ viewport = { width: 1280, height: 900 }, colorScheme = 'light', phone = false, bypassCSP = false } = {}) {
  const { chromium } = await import('playwright-core');
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dsobel-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    colorScheme,
    acceptDownloads: true,
    bypassCSP,
    timeout: 60000,
    ...(phone ? { hasTouch: true, isMobile: true, deviceScaleFactor: 2 } : {}),
  });
  const page = context.pages()[0] || await context.newPage();
  const problems = [];
  const requests = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => requests.push({ method: r.method(), url: r.url() }));
  page.setDefaultTimeout(60000);
  return {
    context, page, problems, requests,
    async close() {
      await context.close().catch(() => {});
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

// Uploads a file straight to the API (no browser) and returns the finished result's PNG bytes.
// Checks the page as it is now with axe (no violations) and that it does not scroll sideways;
// `when` names the moment in the failure message. The page must allow the script (open the
// browser with `bypassCSP`).
export async function axeAudit(page, when) {
  const axe = fs.readFileSync(path.join(here, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
  await page.addScriptTag({ content: axe });
  const violations = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] }))
    .violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`));
  assert.deepEqual(violations, [], `axe, ${when}`);
  const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(wide <= 0, `the page scrolls sideways by ${wide}px ${when}`);
}

export async function apiResult(baseUrl, file, options = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(options)) if (v != null && v !== 'auto') q.set(k, String(v));
  const form = new FormData();
  form.append('image', new Blob([fs.readFileSync(file)]), path.basename(file));
  const up = await fetch(`${baseUrl}/upload?${q}`, { method: 'POST', body: form });
  const body = await up.text();
  if (up.status !== 202) throw new Error(`upload answered ${up.status}: ${body}`);
  const { id } = JSON.parse(body);
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    const r = await fetch(`${baseUrl}/result/${id}`);
    if (r.status === 200) return { id, png: Buffer.from(await r.arrayBuffer()) };
    if (r.status !== 202) throw new Error(`result answered ${r.status}: ${await r.text()}`);
    await sleep(100);
  }
  throw new Error('the API result did not arrive in time');
}

// Decodes two PNGs in the page (same decoder for both) and reports whether their pixels match.
export async function comparePixels(page, pngA, pngB) {
  return page.evaluate(async ([a, b]) => {
    const decode = async (b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const bmp = await createImageBitmap(new Blob([bytes], { type: 'image/png' }),
        { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
      const c = new OffscreenCanvas(bmp.width, bmp.height);
      const ctx = c.getContext('2d', { willReadFrequently: true });
      ctx.drawImage(bmp, 0, 0);
      return { w: bmp.width, h: bmp.height, d: ctx.getImageData(0, 0, bmp.width, bmp.height).data };
    };
    const x = await decode(a);
    const y = await decode(b);
    if (x.w !== y.w || x.h !== y.h) return { equal: false, why: `sizes differ: ${x.w}x${x.h} vs ${y.w}x${y.h}` };
    let diff = 0, white = 0;
    for (let i = 0; i < x.d.length; i += 4) {
      if (x.d[i] !== y.d[i] || x.d[i + 1] !== y.d[i + 1] || x.d[i + 2] !== y.d[i + 2] || x.d[i + 3] !== y.d[i + 3]) diff++;
      if (x.d[i] > 127) white++;
    }
    return { equal: diff === 0, why: `${diff} pixels differ`, width: x.w, height: x.h, white };
  }, [pngA.toString('base64'), pngB.toString('base64')]);
}

// The PNG bytes that the page shows as the result (the #after image's blob).
export async function shownResult(page) {
  const b64 = await page.evaluate(async () => {
    const img = document.getElementById('after');
    const buf = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
    let s = '';
    for (let i = 0; i < buf.length; i += 0x8000) s += String.fromCharCode.apply(null, buf.subarray(i, i + 0x8000));
    return btoa(s);
  });
  return Buffer.from(b64, 'base64');
}

// Records every value the progress bar takes, so a test can see it move.
export async function watchProgress(page) {
  await page.evaluate(() => {
    window.__progress = [];
    const bar = document.getElementById('bar');
    const box = document.getElementById('progress');
    const note = () => window.__progress.push({
      state: box.dataset.state, value: bar.hasAttribute('value') ? bar.value : null, max: bar.max,
      stage: document.getElementById('stage').textContent,
    });
    new MutationObserver(note).observe(box, { attributes: true, subtree: true, childList: true, characterData: true });
  });
}

// One GET with the raw bytes as sent (no automatic decompression), for checking headers and encodings.
export function rawGet(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
  });
}

// Every file under web/, as URL paths ('/js/api.js').
export function webFiles(dir = webDir, prefix = '') {
  const out = [];
  for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
    if (d.isDirectory()) out.push(...webFiles(path.join(dir, d.name), `${prefix}/${d.name}`));
    else out.push(`${prefix}/${d.name}`);
  }
  return out.sort();
}

// A large PNG made in the page: a photograph scaled up, crossed by thin dark lines (1 px wide),
// whose edges are what a browser's smoothing loses when the result is shown much smaller.
export async function makeLargeImage(page, file, width = 3000, height = 2000) {
  const b64 = await page.evaluate(async ([src, w, h]) => {
    const bytes = Uint8Array.from(atob(src), (c) => c.charCodeAt(0));
    const bmp = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
    const c = new OffscreenCanvas(w, h);
    const ctx = c.getContext('2d');
    ctx.drawImage(bmp, 0, 0, w, h);
    ctx.fillStyle = '#111';
    for (let x = 40; x < w; x += 97) ctx.fillRect(x, 0, 1, h);
    for (let y = 30; y < h; y += 89) ctx.fillRect(0, y, w, 1);
    const blob = await c.convertToBlob({ type: 'image/png' });
    const buf = new Uint8Array(await blob.arrayBuffer());
    let s = '';
    for (let i = 0; i < buf.length; i += 0x8000) s += String.fromCharCode.apply(null, buf.subarray(i, i + 0x8000));
    return btoa(s);
  }, [fs.readFileSync(file).toString('base64'), width, height]);
  return Buffer.from(b64, 'base64');
}

// Reads a ZIP archive (stored or deflated entries) from its central directory: [{ name, data, crc }].
export function readZip(buf) {
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65557); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  }
  if (eocd < 0) throw new Error('no end of central directory record');
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const out = [];
  for (let n = 0; n < count; n++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error(`bad central directory entry ${n}`);
    const method = buf.readUInt16LE(p + 10);
    const crc = buf.readUInt32LE(p + 16);
    const csize = buf.readUInt32LE(p + 20);
    const size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const local = buf.readUInt32LE(p + 42);
    const name = buf.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    if (buf.readUInt32LE(local) !== 0x04034b50) throw new Error(`bad local header for ${name}`);
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const raw = buf.subarray(start, start + csize);
    const data = method === 0 ? Buffer.from(raw) : zlib.inflateRawSync(raw);
    if (data.length !== size) throw new Error(`${name}: ${data.length} bytes, header says ${size}`);
    if (zlib.crc32 && zlib.crc32(data) !== crc) throw new Error(`${name}: CRC differs`);
    out.push({ name, data, crc, method });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}
