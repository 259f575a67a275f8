// Jobs in the page: the phone flow, honest words for outages and lost jobs, one Idempotency-Key
// per upload kept across its automatic retries, running again with new options (with a live
// preview), history, option checks at the field, batches (summary, ZIP, cancel) and the smaller
// conveniences.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  apiResult, comparePixels, makeLargeImage, missing, needs, openBrowser, photo, readZip, shownResult, startServe,
} from './harness.mjs';

const T = { timeout: 240000 };
const onlyLoadErrors = (problems) => problems.filter((p) => !/Failed to load resource|ERR_CONNECTION_REFUSED/.test(p));

async function waitDone(page, name, timeout = 90000) {
  const item = page.locator('.job-item[data-state="done"]', { hasText: name }).first();
  await item.waitFor({ timeout });
  return item;
}

async function waitShown(page) {
  await page.waitForSelector('#result-wrap:not([hidden])', { timeout: 90000 });
  await page.waitForFunction(() => { const i = document.getElementById('after'); return i.complete && i.naturalWidth > 0; });
}

const uploads = (b) => b.requests.filter((r) => r.method === 'POST' && /\/upload/.test(r.url)).length;

// The Idempotency-Key of every upload the page sends, in order (null for an upload without one).
function uploadKeys(page) {
  const keys = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && /\/upload(\?|$)/.test(r.url())) keys.push(r.headers()['idempotency-key'] ?? null);
  });
  return keys;
}
const KEY_SHAPE = /^[\x21-\x7e]{1,128}$/;
const STORE_LOST = 'the result store restarted or was emptied and lost this job before it finished; submit it again';

// A proxy in front of the server that passes everything on, except the answer to the first
// upload: the server gets that upload and makes its job, then the page's connection is cut
// before the answer. seen: every upload that reached the server ({ key, status, replayed, id }).
// Connections are not kept alive, so the browser cannot resend the upload on its own.
async function answerLosingProxy(target) {
  const seen = [];
  let dropped = false;
  const backend = new URL(target);
  const srv = http.createServer((req, res) => {
    const upload = req.method === 'POST' && /^\/upload(\?|$)/.test(req.url);
    const fwd = http.request({
      host: backend.hostname, port: backend.port, method: req.method, path: req.url,
      headers: { ...req.headers, host: backend.host, connection: 'close' },
    }, (ans) => {
      const headers = { ...ans.headers, connection: 'close' };
      delete headers['keep-alive'];
      if (!upload) { res.writeHead(ans.statusCode, headers); ans.pipe(res); return; }
      const chunks = [];
      ans.on('data', (d) => chunks.push(d));
      ans.on('end', () => {
        const body = Buffer.concat(chunks);
        let id = null;
        try { id = JSON.parse(body).id; } catch { /* not JSON */ }
        seen.push({ key: req.headers['idempotency-key'] ?? null, status: ans.statusCode, replayed: ans.headers['idempotency-replayed'] ?? null, id });
        if (!dropped) { dropped = true; req.socket.destroy(); return; }
        res.writeHead(ans.statusCode, headers);
        res.end(body);
      });
    });
    fwd.on('error', () => res.destroy());
    req.pipe(fwd);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${srv.address().port}`, seen,
    close: () => new Promise((r) => { srv.closeAllConnections(); srv.close(() => r()); }),
  };
}
const visibleText = (page, sel = 'body') => page.evaluate((s) => document.querySelector(s).innerText, sel);
const count = (text, word) => text.split(word).length - 1;

// Queues slow jobs straight to the API so that the next job waits in the queue.
async function block(url, file, n) {
  const ids = [];
  for (let i = 0; i < n; i++) {
    const form = new FormData();
    form.append('image', new Blob([fs.readFileSync(file)]), 'blocker.png');
    const r = await fetch(`${url}/upload?fragments=64`, { method: 'POST', body: form });
    const body = await r.text();
    assert.equal(r.status, 202, body);
    ids.push(JSON.parse(body).id);
  }
  return ids;
}

describe('jobs in the page', () => {
  let server = null;
  let tmp = null;
  before(async () => {
    if (missing().length) return;
    server = await startServe();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dsobel-jobs-'));
  });
  after(async () => {
    if (server) await server.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('on a phone the options are folded and the job is brought into view, then its result', T, needs({}, async () => {
    const b = await openBrowser({ viewport: { width: 390, height: 844 }, phone: true });
    const { page } = b;
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      assert.equal(await page.evaluate(() => document.getElementById('opts-box').open), false, 'options open on a phone');
      assert.match(await page.textContent('#opts-summary'), /t100 · L2/);
      // Phone words: no keyboard shortcuts, no arrow keys.
      const words = await visibleText(page);
      assert.doesNotMatch(words, /Ctrl|arrow keys/);
      await page.setInputFiles('#file', photo('coffee.png'));
      const inView = (sel) => page.evaluate((s) => {
        const r = document.querySelector(s).getBoundingClientRect();
        return r.top >= -1 && r.top < innerHeight * 0.5 && r.height > 0;
      }, sel);
      await page.waitForFunction(() => {
        const r = document.getElementById('job').getBoundingClientRect();
        return r.top >= -1 && r.top < innerHeight * 0.5;
      }, null, { timeout: 5000 });
      assert.ok(await inView('#job-name'), 'the job is not in view');
      await waitDone(page, 'coffee.png');
      await waitShown(page);
      const shown = await page.evaluate(() => {
        const r = document.getElementById('compare').getBoundingClientRect();
        return r.top < innerHeight && r.bottom > 0;
      });
      assert.ok(shown, 'the result is not in view');
      assert.doesNotMatch(await visibleText(page, '#job'), /Ctrl|arrow keys/);
      assert.match(await visibleText(page, '#job'), /Pinch to zoom/);
      await page.screenshot({ path: path.join(tmp, 'phone.png') });
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }

    // On a wide screen the options are open and the keyboard words are there.
    const wide = await openBrowser();
    try {
      await wide.page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      assert.equal(await wide.page.evaluate(() => document.getElementById('opts-box').open), true);
      assert.match(await visibleText(wide.page, '#drop'), /Ctrl\s*\+\s*V/);
    } finally { await wide.close(); }
  }));

  test('new options: a live preview of the threshold, then "run again" without choosing the file again', T, needs({}, async () => {
    const b = await openBrowser();
    const { page } = b;
    const file = photo('chelsea.png');
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await page.setInputFiles('#file', file);
      await waitDone(page, 'chelsea.png');
      await waitShown(page);
      assert.ok(await page.isHidden('#tune'), 'a preview with unchanged options');

      // Moving the slider: the preview follows at once; for an image this small it is the server's result.
      await page.check('input[name="magnitude"][value="l1"]');
      assert.equal(await page.getAttribute('#threshold-range', 'max'), '2039');
      await page.locator('#threshold-range').fill('40');
      assert.equal(await page.inputValue('#threshold'), '40');
      await page.waitForSelector('#tune:not([hidden])');
      assert.equal(await page.textContent('#tune-opts'), 'threshold 40 · L1');
      const api = await apiResult(server.url, file, { threshold: 40, magnitude: 'l1' });
      await page.waitForFunction(() => document.getElementById('tune-canvas').width === 451);
      const preview = await page.evaluate(() => document.getElementById('tune-canvas').toDataURL('image/png').split(',')[1]);
      const same = await comparePixels(page, Buffer.from(preview, 'base64'), api.png);
      assert.ok(same.equal, `preview: ${same.why}`);

      await page.click('#rerun');
      await page.locator('.job-item[data-state="done"]').nth(1).waitFor({ timeout: 90000 });
      await waitShown(page);
      assert.equal(uploads(b), 2);
      assert.equal(await page.locator('.job-item').count(), 2, 'the first run is kept');
      const cmp = await comparePixels(page, await shownResult(page), api.png);
      assert.ok(cmp.equal, cmp.why);
      assert.ok(await page.isHidden('#tune'));
      // History entries and download names tell the runs apart.
      const subs = await page.locator('.job-item .opt').allTextContents();
      assert.deepEqual(subs, [' · t40 · L1', ' · t100 · L2']);
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
      assert.equal(download.suggestedFilename(), 'chelsea-edges-t40-l1.png');
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));

  test('history: a bad link leaves no entry, and after a reload the latest finished job is shown', T, needs({}, async () => {
    const b = await openBrowser();
    const { page } = b;
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await page.setInputFiles('#file', photo('chelsea.png'));
      await waitDone(page, 'chelsea.png');
      await page.setInputFiles('#file', photo('coffee.png'));
      await waitDone(page, 'coffee.png');

      await page.goto(`${server.url}/#job=00000000000000000000000000000000`, { waitUntil: 'networkidle' });
      await page.waitForSelector('#alert:not([hidden])');
      assert.equal(await page.textContent('#alert-title'), 'This result has expired');
      assert.equal(await page.locator('.job-item').count(), 2, 'the bad link is listed');
      const stored = await page.evaluate(() => JSON.parse(localStorage.getItem('dsobel.jobs.v1')).map((j) => j.id));
      assert.equal(stored.length, 2);
      assert.ok(!stored.includes('00000000000000000000000000000000'));

      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await waitShown(page);
      assert.equal(await page.textContent('#job-name'), 'coffee.png');
      assert.ok(await page.isHidden('#empty'));
      assert.deepEqual(onlyLoadErrors(b.problems), []);
    } finally { await b.close(); }
  }));

  test('an invalid threshold is marked at its field and the chosen file waits for it', T, needs({}, async () => {
    const b = await openBrowser();
    const { page } = b;
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await page.fill('#threshold', '70000');
      assert.equal(await page.getAttribute('#threshold', 'aria-invalid'), 'true');
      await page.setInputFiles('#file', photo('chelsea.png'));
      await page.waitForSelector('#held:not([hidden])');
      assert.match(await page.textContent('#held'), /chelsea\.png is waiting/);
      assert.equal(uploads(b), 0);
      assert.equal(await page.locator('.job-item').count(), 0);
      const field = await page.evaluate(() => {
        const err = document.getElementById('thr-error');
        return {
          inField: document.getElementById('thr-field').contains(err), shown: !err.hidden, text: err.textContent,
          described: document.getElementById('threshold').getAttribute('aria-describedby').split(' ').includes('thr-error'),
          focused: document.activeElement.id,
        };
      });
      assert.deepEqual(field, {
        inField: true, shown: true, described: true, focused: 'threshold',
        text: 'Enter a whole number from 0 to 1442: no exact edge strength of the Sobel 3 × 3 kernel reaches 1443, so no pixel could be an edge.',
      });

      await page.fill('#threshold', '40');
      await waitDone(page, 'chelsea.png');
      assert.ok(await page.isHidden('#held'));
      assert.ok(await page.isHidden('#thr-error'));
      assert.equal(await page.getAttribute('#threshold', 'aria-invalid'), null);
      assert.match(await page.textContent('#facts'), /threshold 40/);
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));

  test('a batch: summary, every result in one ZIP, and the smaller conveniences', T, needs({}, async () => {
    const notes = path.join(tmp, 'notes.txt');
    fs.writeFileSync(notes, 'not a picture\n');
    const b = await openBrowser();
    const { page } = b;
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      // The API key section is a visible disclosure.
      const summary = await page.evaluate(() => {
        const s = document.querySelector('#settings > summary');
        const cs = getComputedStyle(s);
        return { text: s.textContent.trim(), border: cs.borderTopWidth, marker: getComputedStyle(s, '::before').content };
      });
      assert.deepEqual(summary, { text: 'API key', border: '1px', marker: '""' });
      // The strip count stays on the line of its choice at 1280 px.
      const line = await page.evaluate(() => {
        const a = document.querySelector('input[name="fragments"][value="auto"]').closest('label').getBoundingClientRect();
        const n = document.getElementById('fragments-n').getBoundingClientRect();
        return Math.abs((a.top + a.bottom) / 2 - (n.top + n.bottom) / 2);
      });
      assert.ok(line < 4, `the strip count wraps (${line}px off)`);
      assert.equal(await page.getAttribute('#threshold-range', 'max'), '1442');

      await page.click('#sample');
      await waitDone(page, 'sample-cat.jpg');
      await waitShown(page);
      // "Done" is said once in the viewer (the badge); internals are folded away under "Details".
      assert.equal(count(await visibleText(page, '#job'), 'Done'), 1);
      assert.doesNotMatch(await page.textContent('#facts'), /Job id|Decoding|Strips/);
      assert.equal(await page.evaluate(() => document.getElementById('job-details').open), false);
      await page.click('#job-details > summary');
      assert.match(await visibleText(page, '#job-details'), /Job id[\s\S]*[0-9a-f]{32}/i);
      assert.match(await visibleText(page, '#job-details'), /Total time/i);

      await page.setInputFiles('#file', [photo('chelsea.png'), notes]);
      await waitDone(page, 'chelsea.png');
      await page.locator('.job-item[data-state="error"]').waitFor();
      assert.equal(await page.textContent('#batch-summary'), '2 done · 1 failed');

      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#zip')]);
      assert.equal(download.suggestedFilename(), 'dsobel-results.zip');
      const zip = readZip(fs.readFileSync(await download.path()));
      assert.deepEqual(zip.map((f) => f.name), ['sample-cat-edges-t100-l2.png', 'chelsea-edges-t100-l2.png']);
      const ids = await page.evaluate(() => [...document.querySelectorAll('.job-item[data-state="done"]')].map((li) => li.dataset.id).reverse());
      for (const [i, f] of zip.entries()) {
        const r = await fetch(`${server.url}/result/${ids[i]}`);
        assert.ok(Buffer.from(await r.arrayBuffer()).equals(f.data), `${f.name} differs from the API's result`);
      }
      assert.deepEqual(onlyLoadErrors(b.problems), []);
    } finally { await b.close(); }
  }));
});

describe('cancelling a job', () => {
  let server = null;
  let tmp = null;
  before(async () => {
    if (missing().length) return;
    server = await startServe({ args: ['--workers', '1'] });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dsobel-cancel-'));
  });
  after(async () => {
    if (server) await server.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('"Cancel" cancels the job on the server; the next one and other jobs go on', T, needs({}, async () => {
    const b = await openBrowser();
    const { page } = b;
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      const big = path.join(tmp, 'big.png');
      // Enough work ahead of the page's files that they are still queued when "Cancel" is
      // clicked, with room to spare on a loaded machine (PNGs decode fast: the strips'
      // filtering is what takes the time).
      fs.writeFileSync(big, await makeLargeImage(page, photo('coffee.png'), 3200, 2400));
      const blockers = await block(server.url, big, 10);
      await page.setInputFiles('#file', [photo('chelsea.png'), photo('coffee.png')]);
      await page.locator('.job-item[data-state="queued"]', { hasText: 'chelsea.png' }).waitFor();
      assert.equal(await page.textContent('#job-name'), 'chelsea.png');
      await page.click('#cancel-job');
      const item = page.locator('.job-item[data-state="cancelled"]', { hasText: 'chelsea.png' });
      await item.waitFor({ timeout: 10000 });
      assert.ok(b.requests.some((r) => r.method === 'DELETE' && /\/jobs\/[0-9a-f]+$/.test(r.url)), 'no DELETE /jobs/ request');
      assert.equal(await page.textContent('#job-badge'), 'Cancelled');
      assert.equal(await page.textContent('#alert-title'), 'You cancelled this job');
      assert.equal(await page.textContent('#retry-now'), 'Process again');
      const id = await item.getAttribute('data-id');
      const status = await (await fetch(`${server.url}/status/${id}`)).json();
      assert.equal(status.state, 'cancelled');
      const result = await fetch(`${server.url}/result/${id}`);
      assert.equal(result.status, 410);
      assert.equal((await result.json()).error.code, 'cancelled');

      // The next file goes on by itself, and so do the jobs of others.
      await waitDone(page, 'coffee.png', 120000);
      for (const bid of blockers) {
        let s = null;
        for (let i = 0; i < 600; i++) {
          s = await (await fetch(`${server.url}/status/${bid}`)).json();
          if (!['queued', 'processing'].includes(s.state)) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.equal(s.state, 'done', `another job ended ${s.state}`);
      }
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));
});

describe('outages and restarts', () => {
  let server = null;
  let tmp = null;
  before(async () => {
    if (missing().length) return;
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dsobel-outage-'));
  });
  after(async () => {
    if (server) await server.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('while the server is down the page says so once, and sends the file as soon as it is back', T, needs({}, async () => {
    server = await startServe();
    const port = server.port;
    const b = await openBrowser();
    const { page } = b;
    const keys = uploadKeys(page);
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await server.stop();
      server = null;
      await page.setInputFiles('#file', photo('chelsea.png'));
      await page.waitForSelector('#alert.busy:not([hidden])');
      await page.waitForTimeout(2500);
      assert.equal(await page.textContent('#alert-title'), 'Cannot reach the server');
      assert.match(await page.textContent('#alert-text'), /sent as soon as the server answers/);
      assert.equal(await page.textContent('#job-badge'), 'Server unreachable');
      assert.equal(await page.textContent('.job-item .st'), 'Server unreachable');
      const words = await visibleText(page);
      assert.equal(count(words, 'Cannot reach the server'), 1);
      assert.doesNotMatch(words, /Server busy|retry in|Offline|offline|expired/i);
      assert.ok(await page.isHidden('#progress'));

      server = await startServe({ port });
      const back = Date.now();
      await waitDone(page, 'chelsea.png', 15000);
      const took = Date.now() - back;
      assert.ok(took < 5000, `the page took ${took} ms to notice the server was back`);
      await waitShown(page);
      assert.ok(await page.isHidden('#alert'));
      // The upload sent once the server was back is the same upload: the same key.
      assert.ok(keys.length >= 2, `${keys.length} upload requests`);
      assert.match(keys[0], KEY_SHAPE);
      assert.deepEqual(new Set(keys), new Set([keys[0]]), 'the retried upload has another key');
      assert.deepEqual(onlyLoadErrors(b.problems), []);
    } finally {
      await b.close();
      if (server) await server.stop();
      server = null;
    }
  }));

  test('a job lost in a server restart is called lost, not expired, and sent again', T, needs({}, async () => {
    server = await startServe({ args: ['--workers', '1'] });
    const port = server.port;
    const b = await openBrowser();
    const { page } = b;
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      const big = path.join(tmp, 'big.png');
      // Enough work ahead of the page's file that it is still queued when the server dies (an
      // optimized build filters three 2400x1600 blockers before the page has shown the job).
      fs.writeFileSync(big, await makeLargeImage(page, photo('coffee.png'), 3200, 2400));
      await block(server.url, big, 6);
      await page.setInputFiles('#file', photo('chelsea.png'));
      await page.locator('.job-item[data-state="queued"]', { hasText: 'chelsea.png' }).waitFor();
      const firstId = await page.getAttribute('.job-item', 'data-id');
      // The server dies at once, forgetting its jobs, and comes back.
      const exited = new Promise((r) => server.proc.once('exit', r));
      server.proc.kill('SIGKILL');
      await exited;
      server = await startServe({ port });
      await waitDone(page, 'chelsea.png', 30000);
      await waitShown(page);
      assert.match(await page.textContent('#notice'), /The server lost this job before it finished \(it probably restarted\), so the image was sent again\./);
      assert.notEqual(await page.getAttribute('.job-item', 'data-id'), firstId);
      assert.doesNotMatch(await visibleText(page), /expired/i);
      const api = await apiResult(server.url, photo('chelsea.png'), {});
      const cmp = await comparePixels(page, await shownResult(page), api.png);
      assert.ok(cmp.equal, cmp.why);
      assert.deepEqual(onlyLoadErrors(b.problems), []);
    } finally { await b.close(); }
  }));

  test('an upload whose answer was lost is sent again with its Idempotency-Key and makes no second job', T, needs({}, async () => {
    const srv = await startServe();
    const proxy = await answerLosingProxy(srv.url);
    const b = await openBrowser();
    const { page } = b;
    const keys = uploadKeys(page);
    try {
      await page.goto(`${proxy.url}/`, { waitUntil: 'networkidle' });
      await page.setInputFiles('#file', [photo('chelsea.png'), photo('coffee.png')]);
      await waitDone(page, 'chelsea.png', 30000);
      await waitDone(page, 'coffee.png', 30000);

      // chelsea.png twice with one key: the second time the server answers with the first job
      // and says it is a replay. Then coffee.png with a key of its own.
      assert.equal(keys.length, 3, `upload keys: ${JSON.stringify(keys)}`);
      for (const k of keys) assert.match(String(k), KEY_SHAPE);
      assert.equal(keys[1], keys[0], 'the upload sent again has another key');
      assert.notEqual(keys[2], keys[0], 'two files share a key');
      const [lostAnswer, replay, other] = proxy.seen;
      assert.equal(proxy.seen.length, 3, JSON.stringify(proxy.seen));
      assert.deepEqual(lostAnswer, { key: keys[0], status: 202, replayed: null, id: lostAnswer.id });
      assert.deepEqual(replay, { key: keys[0], status: 202, replayed: 'true', id: lostAnswer.id });
      assert.deepEqual(other, { key: keys[2], status: 202, replayed: null, id: other.id });
      assert.notEqual(other.id, lostAnswer.id);
      assert.equal(await page.getAttribute('.job-item[data-state="done"]:has-text("chelsea.png")', 'data-id'), lostAnswer.id);
      assert.equal(await page.locator('.job-item').count(), 2);

      // "Run again" is a new job on purpose: a new key, a new job.
      await page.click('.job-item:has-text("chelsea.png") .job-open');
      await page.locator('#threshold-range').fill('40');
      await page.click('#rerun');
      await page.locator('.job-item[data-state="done"]').nth(2).waitFor({ timeout: 30000 });
      assert.equal(keys.length, 4);
      assert.match(String(keys[3]), KEY_SHAPE);
      assert.ok(!keys.slice(0, 3).includes(keys[3]), 'run again reused a key');
      assert.equal(proxy.seen.length, 4);
      assert.equal(proxy.seen[3].replayed, null);
      assert.ok(![lostAnswer.id, other.id].includes(proxy.seen[3].id), 'run again answered with an earlier job');

      // Where crypto.randomUUID is missing (plain http on a LAN address), the key is random hex.
      const fallback = await page.evaluate(async () => {
        const api = await import(new URL('js/api.js', location.href).href);
        crypto.randomUUID = undefined;
        try { return [api.newUploadKey(), api.newUploadKey()]; } finally { delete crypto.randomUUID; }
      });
      for (const k of fallback) assert.match(k, /^[0-9a-f]{32}$/);
      assert.notEqual(fallback[0], fallback[1]);
      assert.deepEqual(onlyLoadErrors(b.problems.filter((p) => !/ERR_EMPTY_RESPONSE|ERR_CONNECTION_RESET/.test(p))), []);
    } finally {
      await b.close();
      await proxy.close();
      await srv.stop();
    }
  }));

  test('a job the server lost from its store (job-lost) is called lost, sent again once, then offered to send again', T, needs({}, async () => {
    const srv = await startServe();
    const b = await openBrowser();
    const { page } = b;
    const keys = uploadKeys(page);
    // Every job ends failed with job-lost, as when the result store was emptied while it ran.
    const lostStatus = (id) => JSON.stringify({
      id, state: 'failed', strips_done: 0, strips_total: 1, cut: 'whole', width: null, height: null,
      input_bytes: null, result_bytes: null, options: null, timings_ms: null,
      error: { code: 'job-lost', message: STORE_LOST }, created_at: new Date().toISOString(),
    });
    const lostIds = [];
    const loseJobs = async (route) => {
      const u = new URL(route.request().url());
      const id = decodeURIComponent(u.pathname.split('/').pop());
      if (!lostIds.includes(id)) lostIds.push(id);
      if (u.pathname.includes('/events/')) {
        await route.fulfill({ status: 200, contentType: 'text/event-stream', body: `event: failed\ndata: ${lostStatus(id)}\n\n` });
      } else {
        await route.fulfill({ status: 200, contentType: 'application/json', body: lostStatus(id) });
      }
    };
    await page.route(/\/(status|events)\/[0-9a-f]+$/, loseJobs);
    try {
      await page.goto(`${srv.url}/`, { waitUntil: 'networkidle' });
      await page.setInputFiles('#file', photo('chelsea.png'));
      const item = page.locator('.job-item[data-state="lost"]', { hasText: 'chelsea.png' });
      await item.waitFor({ timeout: 30000 });

      // Sent again by itself once, as a new upload (new key); lost again, it waits for the user.
      assert.equal(keys.length, 2, `upload keys: ${JSON.stringify(keys)}`);
      assert.notEqual(keys[1], keys[0]);
      assert.equal(lostIds.length, 2);
      assert.match(await page.textContent('#notice'), /The server lost this job before it finished \(its job store restarted or was emptied\), so the image was sent again\./);
      assert.equal(await page.textContent('#job-badge'), 'Lost');
      assert.equal(await item.locator('.st').textContent(), 'Lost');
      assert.equal(await page.textContent('#alert-title'), 'The server lost this job');
      assert.match(await page.textContent('#alert-text'), /job store restarted or was emptied.*Send the image again/);
      assert.ok(await page.isVisible('#retry-now'), 'no button to send it again');
      assert.equal(await page.textContent('#retry-now'), 'Send again');
      const words = await visibleText(page);
      assert.doesNotMatch(words, /expired|Processing failed|Cannot reach/i);

      // "Send again": a new job with a new key, kept beside the lost one.
      await page.unroute(/\/(status|events)\/[0-9a-f]+$/, loseJobs);
      await page.click('#retry-now');
      await waitDone(page, 'chelsea.png', 30000);
      await waitShown(page);
      assert.equal(keys.length, 3);
      assert.ok(!keys.slice(0, 2).includes(keys[2]), 'send again reused a key');
      assert.ok(!lostIds.includes(await page.getAttribute('.job-item[data-state="done"]', 'data-id')));
      assert.equal(await page.locator('.job-item[data-state="lost"]').count(), 1);

      // After a reload the page no longer has the file: the lost job asks for the image again.
      await page.goto(`${srv.url}/`, { waitUntil: 'networkidle' });
      await page.click('.job-item[data-state="lost"] .job-open');
      assert.equal(await page.textContent('#alert-title'), 'The server lost this job');
      assert.match(await page.textContent('#alert-text'), /job store restarted or was emptied.*Upload the image again/);
      assert.ok(await page.isHidden('#retry-now'));
      assert.deepEqual(onlyLoadErrors(b.problems), []);
    } finally {
      await b.close();
      await srv.stop();
    }
  }));
});
