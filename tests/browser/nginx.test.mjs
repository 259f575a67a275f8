// The same page and upload flow through nginx, configured by deploy/nginx/nginx.conf.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';
import {
  apiResult, comparePixels, missing, needs, openBrowser, photo, rawGet, shownResult, startNginx, startServe, watchProgress,
  webDir, webFiles,
} from './harness.mjs';

const T = { timeout: 180000 };
const NEEDS = { nginx: true };

describe('page through nginx in front of dsobel serve', () => {
  let backend = null;
  let proxy = null;
  before(async () => {
    if (missing(NEEDS).length) return;
    backend = await startServe();
    proxy = await startNginx(backend.url);
  });
  after(async () => {
    if (proxy) await proxy.stop();
    if (backend) await backend.stop();
  });

  test('nginx serves web/ with revalidating caching and proxies the API uncached', T, needs(NEEDS, async () => {
    const files = webFiles();
    assert.ok(files.includes('/app.js') && files.some((f) => f.startsWith('/js/')), files.join(' '));
    for (const file of files) {
      const disk = fs.readFileSync(path.join(webDir, file));
      const r = await rawGet(`${proxy.url}${file}`);
      assert.equal(r.status, 200, file);
      assert.ok(r.body.equals(disk), file);
      const cc = r.headers['cache-control'] || '';
      assert.equal(cc, 'no-cache', file);
      const etag = r.headers.etag;
      assert.ok(etag && r.headers['last-modified'], `${file} has no validators`);
      assert.equal((await rawGet(`${proxy.url}${file}`, { 'if-none-match': etag })).status, 304, `${file} with If-None-Match`);
      // Text is compressed for clients that accept it, as by dsobel serve; revalidation still works.
      if (/\.(html|js|css|svg)$/.test(file) && disk.length >= 256) {
        const gz = await rawGet(`${proxy.url}${file}`, { 'accept-encoding': 'gzip' });
        assert.equal(gz.headers['content-encoding'], 'gzip', `${file} not gzipped`);
        assert.match(gz.headers.vary || '', /accept-encoding/i, `${file} Vary`);
        assert.ok(zlib.gunzipSync(gz.body).equals(disk), `${file}: gzip body differs`);
        const again = await rawGet(`${proxy.url}${file}`, { 'accept-encoding': 'gzip', 'if-none-match': gz.headers.etag });
        assert.equal(again.status, 304, `${file} gzip variant with If-None-Match`);
      }
    }
    const root = await fetch(`${proxy.url}/`);
    assert.equal(root.status, 200);
    assert.equal(root.headers.get('cache-control'), 'no-cache');
    assert.match(root.headers.get('content-security-policy') || '', /default-src 'self'/);

    const limits = await fetch(`${proxy.url}/api/limits`);
    assert.equal(limits.status, 200);
    assert.equal(limits.headers.get('cache-control'), 'no-store');
    const l = await limits.json();
    assert.ok(l.max_upload_bytes > 0 && l.max_pixels > 0, JSON.stringify(l));

    const unknown = await fetch(`${proxy.url}/status/00000000000000000000000000000000`);
    assert.equal(unknown.status, 404);
    assert.equal((await unknown.json()).error.code, 'not-found');
    assert.equal(unknown.headers.get('cache-control'), 'no-store');

    // Cancelling goes through to the API.
    const cancel = await fetch(`${proxy.url}/jobs/00000000000000000000000000000000`, { method: 'DELETE' });
    assert.equal(cancel.status, 404);
    assert.equal((await cancel.json()).error.code, 'not-found');

    assert.equal((await fetch(`${proxy.url}/readyz`)).status, 200);
    assert.equal((await fetch(`${proxy.url}/metrics`)).status, 200, 'metrics from loopback');
  }));

  test('the events location is unbuffered with a long read timeout, and uploads allow 64 MiB', T, needs(NEEDS, async () => {
    const events = /location \/events\/ \{([^}]*)\}/.exec(proxy.conf);
    assert.ok(events, 'no /events/ location');
    assert.match(events[1], /proxy_buffering off;/);
    const read = /proxy_read_timeout (\d+)(s|m|h);/.exec(events[1]);
    assert.ok(read, 'no proxy_read_timeout for /events/');
    assert.ok(Number(read[1]) * { s: 1, m: 60, h: 3600 }[read[2]] >= 600, `read timeout ${read[0]}`);
    assert.match(proxy.conf, /client_max_body_size 64m;/);

    // A body announced as over the limit is refused at once, in the API's JSON.
    const answer = await new Promise((resolve, reject) => {
      const req = http.request(`${proxy.url}/upload`, {
        method: 'POST', headers: { 'content-type': 'image/png', 'content-length': String(65 * 1024 * 1024) },
      }, (res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => { resolve({ status: res.statusCode, body }); req.destroy(); });
      });
      req.on('error', reject);
      req.write(Buffer.alloc(1024));
    });
    assert.equal(answer.status, 413);
    assert.equal(JSON.parse(answer.body).error.code, 'payload-too-large');

    // The first event arrives while the stream is still open.
    const { id } = await apiResult(proxy.url, photo('chelsea.png'), {});
    const ctrl = new AbortController();
    const r = await fetch(`${proxy.url}/events/${id}`, { signal: ctrl.signal });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') || '', /text\/event-stream/);
    const reader = r.body.getReader();
    const { value } = await reader.read();
    assert.match(Buffer.from(value).toString(), /event: ?(progress|done|failed)|data: ?\{/);
    ctrl.abort();
  }));

  test('upload through nginx: progress reaches the total and the pixels equal the API result', T, needs(NEEDS, async () => {
    const file = photo('coffee.png');
    const b = await openBrowser();
    const { page } = b;
    try {
      await page.goto(`${proxy.url}/`, { waitUntil: 'networkidle' });
      await watchProgress(page);
      await page.setInputFiles('#file', file);
      await page.locator('.job-item[data-state="done"]', { hasText: 'coffee.png' }).waitFor({ timeout: 90000 });
      await page.waitForSelector('#result-wrap:not([hidden])');
      await page.waitForFunction(() => document.getElementById('after').naturalWidth > 0);
      const final = await page.evaluate(() => ({
        state: document.getElementById('progress').dataset.state,
        value: document.getElementById('bar').value, max: document.getElementById('bar').max,
      }));
      assert.equal(final.state, 'done');
      assert.equal(final.value, final.max);
      assert.ok((await page.evaluate(() => window.__progress.length)) > 1, 'the progress bar never changed');
      assert.deepEqual(b.requests.filter((r) => /\/status\//.test(r.url)), [], 'the page polled /status/');

      const api = await apiResult(proxy.url, file, {});
      const cmp = await comparePixels(page, await shownResult(page), api.png);
      assert.ok(cmp.equal, cmp.why);
      assert.equal(cmp.width, 600);
      assert.equal(cmp.height, 400);
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));
});
