// Batches between storage locations from the page ("Images in storage"): a batch from one
// folder of the server to another started through the form with the page's options, followed to
// `done` with its counts, its outputs (PNG, or NPY when chosen) and manifest checked on disk, the
// manifest's location shown; run again, every image is skipped; after a reload the last batch is
// shown again. A location outside the allowed ones shows the server's `store-not-allowed`
// refusal at the form; live progress and cancelling (status and events stubbed, since a real
// batch of small images ends in a blink); and a server without batches shows the panel disabled,
// saying why. The page is served from web/ (--web-dir), so a binary built earlier tests it too.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { axeAudit, missing, needs, openBrowser, startServe, webDir } from './harness.mjs';

const T = { timeout: 240000 };
const onlyLoadErrors = (problems) => problems.filter((p) => !/Failed to load resource/.test(p));
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const NPY_MAGIC = Buffer.from('\x93NUMPY', 'latin1');
const sample = fs.readFileSync(path.join(webDir, 'sample.jpg'));

// A temporary root of allowed storage: in/ holds four copies of the sample (one in a sub-folder)
// and a corrupt JPEG (the sample's first 300 bytes).
function makeRoot() {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dsobel-stores-'));
  fs.mkdirSync(path.join(root, 'in', 'sub'), { recursive: true });
  for (const name of ['cat.jpg', 'chelsea.jpg', 'kitten.jpeg', path.join('sub', 'deep.jpg')]) {
    fs.writeFileSync(path.join(root, 'in', name), sample);
  }
  fs.writeFileSync(path.join(root, 'in', 'broken.jpg'), sample.subarray(0, 300));
  return root;
}
const GOOD = ['cat', 'chelsea', 'kitten', 'sub/deep'];

// Every file under dir, as paths relative to it with forward slashes.
function filesUnder(dir, prefix = '') {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${d.name}` : d.name;
    if (d.isDirectory()) out.push(...filesUnder(path.join(dir, d.name), rel)); else out.push(rel);
  }
  return out.sort();
}

async function openPage(server, opts) {
  const b = await openBrowser(opts);
  await b.page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
  return b;
}

// Fills the form and presses Start; resolves with the POST's request body, key and answer.
async function startBatch(page, source, destination) {
  await page.fill('#sb-source', source);
  await page.fill('#sb-dest', destination);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && /\/batches$/.test(r.url())),
    page.click('#sb-start'),
  ]);
  return {
    body: JSON.parse(response.request().postData()),
    key: response.request().headers()['idempotency-key'],
    status: response.status(),
    answer: await response.json(),
  };
}

// The page's facts about the batch shown: { done, skipped, failed, ... } as text.
async function facts(page) {
  return page.evaluate(() => Object.fromEntries(Array.from(document.querySelectorAll('#sb-facts > div'),
    (d) => [d.dataset.key, d.querySelector('dd').textContent])));
}

async function shown(page) {
  return page.evaluate(() => ({
    state: document.getElementById('sb-run').dataset.state,
    badge: document.getElementById('sb-badge').textContent,
    stage: document.getElementById('sb-stage').textContent,
    count: document.getElementById('sb-count').textContent,
    value: document.getElementById('sb-bar').hasAttribute('value') ? document.getElementById('sb-bar').value : null,
    max: document.getElementById('sb-bar').max,
    cancelHidden: document.getElementById('sb-cancel').hidden,
    manifestHidden: document.getElementById('sb-manifest').hidden,
    manifest: document.getElementById('sb-manifest-url').value,
    linkHidden: document.getElementById('sb-manifest-open').hidden,
  }));
}

describe('batches between storage locations', () => {
  let server = null;
  let root = null;
  let allowed = '';
  before(async () => {
    if (missing().length) return;
    root = makeRoot();
    allowed = `file://${root}`;
    server = await startServe({ args: ['--batch-stores', allowed, '--web-dir', webDir] });
  });
  after(async () => {
    if (server) await server.stop();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  test('a batch started in the form ends done with its counts, its PNGs and manifest on disk, and the manifest shown', T, needs({}, async () => {
    const b = await openPage(server, { bypassCSP: true });
    const { page } = b;
    try {
      // The form is open, offers the allowed location and names it.
      await page.waitForSelector('#sb-fields:not([disabled])');
      assert.ok(await page.isHidden('#sb-off'));
      assert.deepEqual(await page.$$eval('#sb-roots option', (os) => os.map((o) => o.value)), [allowed]);
      assert.match(await page.textContent('#sb-roots-hint'), new RegExp(allowed.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
      assert.equal(await page.getAttribute('#sb-source', 'list'), 'sb-roots');
      assert.ok(await page.isHidden('#sb-run'));

      const started = await startBatch(page, `${allowed}/in`, `${allowed}/out`);
      assert.equal(started.status, 202);
      const id = started.answer.id;
      assert.match(id, /^[0-9a-f]{32}$/);
      // The options are the form's (the defaults here), as the API names them; a key is sent.
      assert.deepEqual(started.body, {
        source: `${allowed}/in`, destination: `${allowed}/out`,
        options: { output: 'binary', kernel: 'sobel', ksize: 3, magnitude: 'l2', threshold: 100, format: 'png' },
      });
      assert.match(started.key || '', /^[\x21-\x7e]{1,128}$/);

      await page.waitForSelector('#sb-run[data-state="done"]', { timeout: 90000 });
      const end = await shown(page);
      assert.equal(end.badge, 'Done');
      assert.equal(end.stage, 'Done: 4 images done, 1 failed');
      assert.equal(end.count, '5 of 5 images');
      assert.equal(end.value, end.max);
      assert.equal(end.max, 5);
      assert.ok(end.cancelHidden, 'Cancel still offered after the end');
      const f = await facts(page);
      assert.equal(f.done, '4');
      assert.equal(f.skipped, '0');
      assert.equal(f.failed, '1');
      assert.equal(f.source, `${allowed}/in`);
      assert.equal(f.destination, `${allowed}/out`);
      assert.ok(f.took, 'no duration at the end');

      // Followed through its event stream.
      assert.ok(b.requests.some((r) => r.url.endsWith(`/batches/${id}/events`)), 'no event stream was opened');

      // The outputs: same keys with .png, valid PNGs; nothing for the corrupt file.
      const out = path.join(root, 'out');
      const manifestRel = `_manifest/${id}.jsonl`;
      assert.deepEqual(filesUnder(out), [manifestRel, ...GOOD.map((n) => `${n}.png`)].sort());
      for (const n of GOOD) {
        const bytes = fs.readFileSync(path.join(out, `${n}.png`));
        assert.ok(bytes.subarray(0, 8).equals(PNG_SIGNATURE), `${n}.png is not a PNG`);
        assert.equal(bytes.readUInt32BE(16), 451, `${n}.png width`);
        assert.equal(bytes.readUInt32BE(20), 300, `${n}.png height`);
      }

      // The manifest: one line per item, and the page shows where it is (a file:// URL: text
      // with a copy button, not a link).
      const lines = fs.readFileSync(path.join(out, manifestRel), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
      assert.equal(lines.length, 5);
      assert.deepEqual(lines.map((l) => l.status).sort(), ['done', 'done', 'done', 'done', 'failed']);
      const broken = lines.find((l) => l.status === 'failed');
      assert.match(broken.source_key, /broken\.jpg$/);
      assert.ok(broken.error_code && broken.error_message, 'the failed item has no reason');
      for (const l of lines.filter((x) => x.status === 'done')) assert.match(l.output_key, /\.png$/);
      const manifestUrl = `${allowed}/out/${manifestRel}`;
      assert.equal(started.answer.manifest, manifestUrl);
      assert.ok(!end.manifestHidden, 'the manifest is not shown');
      assert.equal(end.manifest, manifestUrl);
      assert.ok(end.linkHidden, 'a file:// manifest offered as a link');
      assert.ok(await page.isVisible('#sb-copy'));
      assert.match(await page.textContent('#sb-manifest-hint'), /on the server/);
      assert.deepEqual(b.problems, []);
      await axeAudit(page, 'with a finished batch');

      // The same batch again: every image is current, so skipped; the corrupt one fails again.
      const again = await startBatch(page, `${allowed}/in`, `${allowed}/out`);
      assert.equal(again.status, 202);
      assert.notEqual(again.answer.id, id);
      assert.notEqual(again.key, started.key, 'a new batch reused the first one’s Idempotency-Key');
      await page.waitForFunction((i) => document.getElementById('sb-manifest-url').value.includes(i)
        && document.getElementById('sb-run').dataset.state === 'done', again.answer.id, { timeout: 90000 });
      const f2 = await facts(page);
      assert.deepEqual([f2.done, f2.skipped, f2.failed], ['0', '4', '1']);
      assert.equal(await page.textContent('#sb-stage'), 'Done: 0 images done, 4 skipped, 1 failed');

      // The options of the form go with the batch: gx as NPY writes .npy files.
      await page.check('input[name="output"][value="gx"]');
      assert.match(await page.textContent('#sb-opts'), /horizontal gradient/);
      assert.match(await page.textContent('#sb-naming'), /photos\/cat\.npy/);
      const npy = await startBatch(page, `${allowed}/in/sub`, `${allowed}/npy`);
      assert.equal(npy.body.options.output, 'gx');
      assert.equal(npy.body.options.format, 'npy');
      await page.waitForFunction((i) => document.getElementById('sb-manifest-url').value.includes(i)
        && document.getElementById('sb-run').dataset.state === 'done', npy.answer.id, { timeout: 90000 });
      assert.deepEqual(filesUnder(path.join(root, 'npy')), [`_manifest/${npy.answer.id}.jsonl`, 'deep.npy']);
      assert.ok(fs.readFileSync(path.join(root, 'npy', 'deep.npy')).subarray(0, 6).equals(NPY_MAGIC), 'deep.npy is not an NPY file');

      // After a reload the last batch and its locations are shown again.
      await page.reload({ waitUntil: 'networkidle' });
      await page.waitForSelector('#sb-run[data-state="done"]');
      assert.equal(await page.inputValue('#sb-source'), `${allowed}/in/sub`);
      assert.equal(await page.inputValue('#sb-dest'), `${allowed}/npy`);
      assert.ok((await page.inputValue('#sb-manifest-url')).endsWith(`/_manifest/${npy.answer.id}.jsonl`));
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));

  test('a location outside the allowed ones shows the server’s store-not-allowed refusal at the form', T, needs({}, async () => {
    const b = await openPage(server, { viewport: { width: 375, height: 740 }, colorScheme: 'dark', bypassCSP: true });
    const { page } = b;
    try {
      await page.waitForSelector('#sb-fields:not([disabled])');
      // Empty boxes are caught at their field; nothing is sent.
      await page.fill('#sb-source', '');
      await page.fill('#sb-dest', '');
      await page.click('#sb-start');
      await page.waitForSelector('#sb-source-error:not([hidden])');
      assert.equal(await page.getAttribute('#sb-source', 'aria-invalid'), 'true');
      assert.ok(await page.isVisible('#sb-dest-error'));
      assert.equal(b.requests.filter((r) => r.method === 'POST' && /\/batches$/.test(r.url)).length, 0);

      const outside = `file://${path.dirname(root)}/not-allowed-${path.basename(root)}`;
      const refused = await startBatch(page, outside, `${allowed}/out-refused`);
      assert.equal(refused.status, 403);
      assert.equal(refused.answer.error.code, 'store-not-allowed');
      await page.waitForSelector('#sb-alert:not([hidden])');
      assert.equal(await page.getAttribute('#sb-alert', 'role'), 'alert');
      assert.equal(await page.textContent('#sb-alert-title'), 'This location is not allowed');
      assert.equal(await page.textContent('#sb-alert-text'), refused.answer.error.message);
      assert.match(refused.answer.error.message, /not-allowed-/);
      assert.equal(await page.textContent('#sb-alert-detail'), 'Code: store-not-allowed');
      assert.equal(await page.getAttribute('#sb-source', 'aria-invalid'), 'true');
      assert.equal(await page.getAttribute('#sb-dest', 'aria-invalid'), null);
      assert.ok(await page.isHidden('#sb-run'), 'a refused batch is shown as started');
      assert.ok(!fs.existsSync(path.join(root, 'out-refused')));
      await axeAudit(page, 'with a refusal, 375 px, dark');

      // An http(s) location is refused too, with its own message.
      const web = await startBatch(page, 'https://example.com/photos', `${allowed}/out-refused`);
      assert.equal(web.answer.error.code, 'store-not-allowed');
      await page.waitForFunction((m) => document.getElementById('sb-alert-text').textContent === m, web.answer.error.message);
      assert.deepEqual(onlyLoadErrors(b.problems), []);
    } finally { await b.close(); }
  }));

  test('live progress, speed and time left from the events, and Cancel (status and events stubbed)', T, needs({}, async () => {
    const b = await openPage(server);
    const { page } = b;
    const id = 'ab'.repeat(16);
    const manifest = `s3://photos/edges/_manifest/${id}.jsonl`;
    const status = (state, counts, extra = {}) => ({
      id, state, source: 's3://photos/in', destination: 's3://photos/edges',
      options: { output: 'binary', threshold: 100, magnitude: 'l2', kernel: 'sobel', ksize: 3, low: 100, high: 200, format: 'png', fragments: null },
      counts, rate_per_sec: null, eta_secs: null, manifest, error: null, created_at: '2026-01-01T10:00:00.000Z', ended_at: null, ...extra,
    });
    let current = status('running', { total: 10, done: 3, failed: 1, skipped: 1 }, { rate_per_sec: 2.5, eta_secs: 2 });
    const deletes = [];
    try {
      await page.route(/\/batches(\/[0-9a-f]+(\/events)?)?$/, async (route) => {
        const req = route.request();
        const url = new URL(req.url());
        const json = (code, body) => route.fulfill({ status: code, contentType: 'application/json', body: JSON.stringify(body) });
        if (req.method() === 'POST') {
          return json(202, { id, status_url: `/batches/${id}`, events_url: `/batches/${id}/events`, manifest });
        }
        if (req.method() === 'DELETE') {
          deletes.push(url.pathname);
          current = status('cancelled', current.counts, {
            ended_at: '2026-01-01T10:00:04.000Z', error: { code: 'cancelled', message: 'cancelled by a client' },
          });
          return json(200, current);
        }
        if (url.pathname.endsWith('/events')) {
          // One progress event, then the stream ends (the page asks again and follows on).
          return route.fulfill({
            status: 200, contentType: 'text/event-stream', headers: { 'cache-control': 'no-store' },
            body: `event: progress\ndata: ${JSON.stringify(current)}\n\n`,
          });
        }
        return json(200, current);
      });
      await page.waitForSelector('#sb-fields:not([disabled])');
      await page.fill('#sb-source', `${allowed}/in`);
      await page.fill('#sb-dest', `${allowed}/stubbed`);
      await page.click('#sb-start');
      await page.waitForSelector('#sb-run[data-state="running"]');
      const mid = await shown(page);
      assert.equal(mid.badge, 'Running');
      assert.equal(mid.stage, 'Running');
      assert.equal(mid.count, '5 of 10 images');
      assert.equal(mid.value, 5);
      assert.equal(mid.max, 10);
      assert.ok(!mid.cancelHidden, 'no Cancel while it runs');
      assert.ok(mid.manifestHidden, 'the manifest is shown before the end');
      const f = await facts(page);
      assert.deepEqual([f.done, f.skipped, f.failed, f.rate, f.eta], ['3', '1', '1', '2.5 a second', 'about 2 s']);
      assert.equal(await page.getAttribute('#sb-stage', 'role'), 'status');
      assert.equal(await page.getAttribute('#sb-start', 'aria-disabled'), 'true');

      await page.click('#sb-cancel');
      await page.waitForSelector('#sb-run[data-state="cancelled"]');
      assert.deepEqual(deletes, [`/batches/${id}`]);
      const end = await shown(page);
      assert.equal(end.badge, 'Cancelled');
      assert.equal(end.stage, 'Cancelled after 5 of 10 images');
      assert.ok(end.cancelHidden);
      assert.ok(!end.manifestHidden);
      assert.equal(end.manifest, manifest);
      assert.ok(end.linkHidden, 'an s3:// manifest offered as a link');
      assert.equal(await page.getAttribute('#sb-start', 'aria-disabled'), 'false');
      assert.ok(b.requests.some((r) => r.url.endsWith(`/batches/${id}/events`)), 'no event stream was opened');
      assert.deepEqual(b.problems, []);
    } finally {
      await page.unroute(/\/batches(\/[0-9a-f]+(\/events)?)?$/).catch(() => {});
      // The stubbed batch is not on the server: forget it, so that no later page asks for it.
      await page.evaluate(() => localStorage.removeItem('dsobel.storeBatch.v1')).catch(() => {});
      await b.close();
    }
  }));
});

describe('a server without batches', () => {
  let server = null;
  before(async () => {
    if (!missing().length) server = await startServe({ args: ['--web-dir', webDir], env: { DSOBEL_BATCH_STORES: '' } });
  });
  after(async () => { if (server) await server.stop(); });

  test('the panel is disabled and says why', T, needs({}, async () => {
    const limits = await (await fetch(`${server.url}/api/limits`)).json();
    assert.deepEqual(limits.batch_stores, []);
    const b = await openPage(server, { bypassCSP: true });
    const { page } = b;
    try {
      await page.waitForFunction(() => /turned off/.test(document.getElementById('sb-off').textContent));
      assert.ok(await page.isVisible('#sb-off'));
      assert.match(await page.textContent('#sb-off'), /allows no storage locations/);
      assert.ok(await page.isDisabled('#sb-source'));
      assert.ok(await page.isDisabled('#sb-dest'));
      assert.ok(await page.isDisabled('#sb-start'));
      assert.equal(await page.$$eval('#sb-roots option', (os) => os.length), 0);
      assert.ok(await page.isHidden('#sb-run'));
      await page.click('#sb-start', { force: true }).catch(() => {});
      assert.equal(b.requests.filter((r) => r.method === 'POST' && /\/batches$/.test(r.url)).length, 0);
      await axeAudit(page, 'with batches turned off');
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));
});
