// The web page as `dsobel serve` embeds it, driven in headless Chromium.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';
import {
  apiResult, axeAudit, comparePixels, missing, needs, openBrowser, photo, rawGet, shownResult, startServe, watchProgress, webDir, webFiles,
} from './harness.mjs';

const T = { timeout: 180000 };
const onlyLoadErrors = (problems) => problems.filter((p) => !/Failed to load resource/.test(p));

async function waitDone(page, name) {
  const item = page.locator(`.job-item[data-state="done"]`, { hasText: name });
  await item.first().waitFor({ timeout: 90000 });
  return item.first();
}

async function waitShown(page) {
  await page.waitForSelector('#result-wrap:not([hidden])', { timeout: 90000 });
  await page.waitForFunction(() => {
    const img = document.getElementById('after');
    return img.complete && img.naturalWidth > 0;
  });
}

async function chooseOptions(page, o) {
  await page.check(`input[name="output"][value="${o.output}"]`);
  await page.check(`input[name="magnitude"][value="${o.magnitude}"]`);
  if (o.output === 'binary') await page.fill('#threshold', String(o.threshold));
  if (o.fragments === 'auto') {
    await page.check('input[name="fragments"][value="auto"]');
  } else {
    await page.check('input[name="fragments"][value="fixed"]');
    await page.fill('#fragments-n', String(o.fragments));
  }
}

describe('page served by dsobel serve', () => {
  let server = null;
  before(async () => { if (!missing().length) server = await startServe(); });
  after(async () => { if (server) await server.stop(); });

  test('the binary serves every file that is in web/, with validators, revalidation and gzip for text', T, needs({}, async () => {
    const TYPES = { html: /text\/html/, js: /javascript/, css: /text\/css/, svg: /image\/svg\+xml/, jpg: /image\/jpeg/, png: /image\/png/ };
    const files = [['/', '/index.html'], ...webFiles().map((f) => [f, f])];
    assert.ok(files.some(([u]) => u.startsWith('/js/')), 'the page has no modules under web/js/');
    for (const [url, file] of files) {
      const disk = fs.readFileSync(path.join(webDir, file));
      const ext = path.extname(file).slice(1);
      const text = ['html', 'js', 'css', 'svg'].includes(ext);
      const plain = await rawGet(server.url + url);
      assert.equal(plain.status, 200, `${url} answered ${plain.status}`);
      assert.match(plain.headers['content-type'] || '', TYPES[ext], `${url} content type`);
      assert.ok(plain.body.equals(disk), `${url} differs from web${file} (is the binary built from this tree?)`);
      assert.equal(plain.headers['content-encoding'], undefined, `${url} compressed for a client that did not ask`);
      assert.equal(plain.headers['cache-control'], 'no-cache', url);
      const etag = plain.headers.etag;
      assert.match(etag || '', /^"[^"]+"$/, `${url}: a strong ETag`);
      const again = await rawGet(server.url + url, { 'if-none-match': etag });
      assert.equal(again.status, 304, `${url} with If-None-Match`);
      assert.equal(again.body.length, 0);
      if (text) {
        const gz = await rawGet(server.url + url, { 'accept-encoding': 'gzip, deflate, br' });
        assert.equal(gz.headers['content-encoding'], 'gzip', `${url} not gzipped`);
        assert.match(gz.headers.vary || '', /accept-encoding/i, `${url} Vary`);
        assert.ok(zlib.gunzipSync(gz.body).equals(disk), `${url}: gzip body differs`);
        const gzAgain = await rawGet(server.url + url, { 'accept-encoding': 'gzip', 'if-none-match': gz.headers.etag });
        assert.equal(gzAgain.status, 304, `${url} gzip variant with If-None-Match`);
      }
    }
  }));

  test('the page loads without console errors', T, needs({}, async () => {
    const b = await openBrowser();
    try {
      await b.page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await b.page.locator('#pick').waitFor();
      assert.equal(await b.page.title(), 'dsobel · edge detection');
      assert.match(await b.page.textContent('#limits-hint'), /up to \d+(\.\d)? (MB|GB)/);
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));

  test('a photograph: progress reaches the total, result pixels equal the API result, download and controls work', T, needs({}, async () => {
    const file = photo('chelsea.png');
    const b = await openBrowser();
    const { page } = b;
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await watchProgress(page);
      await page.setInputFiles('#file', file);
      await waitDone(page, 'chelsea.png');
      await waitShown(page);

      // The progress bar moved and ended full, in the done state.
      const seen = await page.evaluate(() => window.__progress);
      assert.ok(seen.length > 1, 'the progress bar never changed');
      const final = await page.evaluate(() => ({
        state: document.getElementById('progress').dataset.state,
        value: document.getElementById('bar').value, max: document.getElementById('bar').max,
        count: document.getElementById('count').textContent,
      }));
      assert.equal(final.state, 'done');
      assert.equal(final.value, final.max);
      assert.match(final.count, /^(\d+) of \1 strips$/);
      assert.ok(seen.some((s) => s.state === 'uploading' || s.state === 'queued' || s.state === 'processing'),
        `no intermediate state seen: ${JSON.stringify(seen.slice(0, 5))}`);

      // Live progress came from the event stream, with no status polling.
      assert.ok(b.requests.some((r) => /\/events\//.test(r.url)), 'no /events/ request');
      assert.deepEqual(b.requests.filter((r) => /\/status\//.test(r.url)), [], 'the page polled /status/');

      // Same pixels as the API gives for the same file and options.
      const shown = await shownResult(page);
      const api = await apiResult(server.url, file, { threshold: 100, magnitude: 'l2', output: 'binary' });
      const cmp = await comparePixels(page, shown, api.png);
      assert.ok(cmp.equal, cmp.why);
      assert.equal(cmp.width, 451);
      assert.equal(cmp.height, 300);
      assert.ok(cmp.white > 0, 'the result has no edges at all');

      // Download: a sensible name and the very bytes shown.
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
      assert.equal(download.suggestedFilename(), 'chelsea-edges-t100-l2.png');
      const saved = fs.readFileSync(await download.path());
      assert.ok(saved.equals(shown), 'the download differs from the shown result');

      // Share link and size facts.
      const id = await page.getAttribute('.job-item[data-state="done"]', 'data-id');
      assert.ok(id);
      assert.equal(await page.inputValue('#share'), `${server.url}/#job=${id}`);
      assert.match(await page.textContent('#facts'), /451 × 300 px/);

      // The divider works from the keyboard.
      await page.focus('#divider');
      await page.keyboard.press('Home');
      assert.equal(await page.getAttribute('#divider', 'aria-valuenow'), '0');
      await page.keyboard.press('End');
      await page.keyboard.press('ArrowLeft');
      assert.equal(await page.getAttribute('#divider', 'aria-valuenow'), '99');
      await page.keyboard.press('Shift+ArrowLeft');
      assert.equal(await page.getAttribute('#divider', 'aria-valuenow'), '89');
      assert.equal(await page.evaluate(() => document.getElementById('compare').style.getPropertyValue('--pos')), '89%');

      // Actual pixels: one image pixel per device pixel.
      await page.check('input[name="zoom"][value="1"]');
      const w = await page.evaluate(() => document.getElementById('after').getBoundingClientRect().width * devicePixelRatio);
      assert.ok(Math.abs(w - 451) <= 1, `actual-pixel width ${w}`);

      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));

  test('several files are queued, each with its own options, and each result equals the API result', T, needs({}, async () => {
    const b = await openBrowser();
    const { page } = b;
    const jobs = [
      { file: photo('coffee.png'), name: 'coffee.png', opts: { output: 'magnitude', magnitude: 'l1', threshold: 100, fragments: 3 } },
      { file: photo('chelsea.png'), name: 'chelsea.png', opts: { output: 'binary', magnitude: 'l2', threshold: 60, fragments: 'auto' } },
    ];
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      for (const j of jobs) {
        await chooseOptions(page, j.opts);
        await page.setInputFiles('#file', j.file);
      }
      assert.equal(await page.locator('.job-item').count(), 2);
      for (const j of jobs) {
        const item = await waitDone(page, j.name);
        await item.locator('.job-open').click();
        await waitShown(page);
        assert.equal(await page.textContent('#job-name'), j.name);
        const shown = await shownResult(page);
        const api = await apiResult(server.url, j.file, j.opts);
        const cmp = await comparePixels(page, shown, api.png);
        assert.ok(cmp.equal, `${j.name}: ${cmp.why}`);
      }
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));

  test('a file that is not an image gets an error in plain words', T, needs({}, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dsobel-notes-'));
    const notes = path.join(dir, 'notes.txt');
    fs.writeFileSync(notes, 'These are notes, not a picture.\n');
    const b = await openBrowser();
    const { page } = b;
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await page.setInputFiles('#file', notes);
      await page.waitForSelector('#alert:not([hidden])');
      assert.equal(await page.textContent('#alert-title'), 'This file is not an image we can read');
      assert.match(await page.textContent('#alert-text'), /notes\.txt.*JPEG, PNG, WebP, GIF, BMP or TIFF/);
      assert.equal(await page.getAttribute('.job-item', 'data-state'), 'error');
      assert.equal(await page.getAttribute('#alert', 'role'), 'alert');
      assert.deepEqual(onlyLoadErrors(b.problems), []);
    } finally {
      await b.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }));

  test('a shared link opens the result, and an unknown one says it has expired', T, needs({}, async () => {
    const file = photo('coffee.png');
    const api = await apiResult(server.url, file, {});
    const b = await openBrowser();
    const { page } = b;
    try {
      await page.goto(`${server.url}/#job=${api.id}`, { waitUntil: 'networkidle' });
      await waitShown(page);
      const cmp = await comparePixels(page, await shownResult(page), api.png);
      assert.ok(cmp.equal, cmp.why);
      assert.ok(await page.evaluate(() => document.getElementById('compare').classList.contains('no-before')));
      assert.match(await page.getAttribute('#download', 'download'), /^dsobel-[0-9a-zA-Z_-]{1,8}-edges-t100-l2\.png$/);

      await page.goto(`${server.url}/?job=${api.id}`, { waitUntil: 'networkidle' });
      await waitShown(page);
      assert.equal(new URL(page.url()).hash, `#job=${api.id}`);

      await page.goto(`${server.url}/#job=00000000000000000000000000000000`, { waitUntil: 'networkidle' });
      await page.waitForSelector('#alert:not([hidden])');
      assert.equal(await page.textContent('#alert-title'), 'This result has expired');
      assert.deepEqual(onlyLoadErrors(b.problems), []);
    } finally { await b.close(); }
  }));

  test('recent jobs survive a reload, open again, and can be cleared', T, needs({}, async () => {
    const b = await openBrowser();
    const { page } = b;
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await page.setInputFiles('#file', photo('chelsea.png'));
      await waitDone(page, 'chelsea.png');
      await waitShown(page);
      await page.reload({ waitUntil: 'networkidle' });
      // Reloading keeps the #job link, so the job is open again; also open it from the list.
      const item = page.locator('.job-item[data-state="done"]', { hasText: 'chelsea.png' });
      await item.waitFor();
      const thumb = await item.locator('img.thumb').getAttribute('src');
      assert.match(thumb, /^data:image\/(jpeg|png|webp);base64,/);
      assert.ok(thumb.length < 20000, `thumbnail is ${thumb.length} characters`);
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await page.locator('.job-item .job-open').first().click();
      await waitShown(page);
      await page.click('#clear');
      assert.equal(await page.locator('.job-item').count(), 0);
      assert.equal(await page.evaluate(() => localStorage.getItem('dsobel.jobs.v1')), '[]');
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));

  test('images can be pasted and dropped', T, needs({}, async () => {
    const b = await openBrowser();
    const { page } = b;
    const bytes = fs.readFileSync(photo('chelsea.png')).toString('base64');
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await page.evaluate((b64) => {
        const data = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const paste = new DataTransfer();
        paste.items.add(new File([data], 'image.png', { type: 'image/png' }));
        document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: paste, bubbles: true, cancelable: true }));
        const drop = new DataTransfer();
        drop.items.add(new File([data], 'dropped.png', { type: 'image/png' }));
        document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: drop, bubbles: true, cancelable: true }));
      }, bytes);
      await page.locator('.job-item[data-state="done"]', { hasText: /^pasted-\d{8}-\d{6}\.png/ }).waitFor({ timeout: 90000 });
      await page.locator('.job-item[data-state="done"]', { hasText: 'dropped.png' }).waitFor({ timeout: 90000 });
      assert.equal(await page.locator('.job-item').count(), 2);
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));

  test('an upload while offline waits for the connection and then finishes', T, needs({}, async () => {
    const b = await openBrowser();
    const { page, context } = b;
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await context.setOffline(true);
      await page.waitForSelector('#net:not([hidden])');
      await page.setInputFiles('#file', photo('chelsea.png'));
      await page.waitForSelector('#alert.busy:not([hidden])');
      // Said once: the job's alert, badge and list entry say offline; the header banner stays quiet.
      assert.equal(await page.textContent('#alert-title'), 'You are offline');
      assert.match(await page.textContent('#alert-text'), /kept in this page and is sent as soon as the server answers/);
      assert.equal(await page.textContent('#job-badge'), 'Offline');
      assert.equal(await page.textContent('.job-item .st'), 'Offline');
      assert.ok(await page.isHidden('#net'), 'the offline banner repeats the alert');
      assert.ok(await page.isHidden('#progress'), 'the progress bar repeats the alert');
      await context.setOffline(false);
      await page.locator('.job-item[data-state="done"]', { hasText: 'chelsea.png' }).waitFor({ timeout: 90000 });
      assert.ok(await page.isHidden('#net'));
      assert.ok(await page.isHidden('#alert'));
    } finally { await b.close(); }
  }));
});

describe('accessibility and layout', () => {
  let server = null;
  before(async () => { if (!missing().length) server = await startServe(); });
  after(async () => { if (server) await server.stop(); });

  for (const [scheme, viewport, phone] of [['light', { width: 1280, height: 900 }, false], ['dark', { width: 375, height: 740 }, false],
    ['dark', { width: 390, height: 844 }, true], ['light', { width: 390, height: 844 }, true]]) {
    test(`no axe violations and no sideways scrolling (${scheme}, ${viewport.width}px wide${phone ? ', touch' : ''})`, T, needs({}, async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dsobel-notes-'));
      const notes = path.join(dir, 'notes.txt');
      fs.writeFileSync(notes, 'not a picture\n');
      const b = await openBrowser({ viewport, colorScheme: scheme, phone, bypassCSP: true });
      const { page } = b;
      try {
        await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
        const audit = (when) => axeAudit(page, when);
        await audit('when empty');
        await page.setInputFiles('#file', photo('coffee.png'));
        await page.locator('.job-item[data-state="done"]').waitFor({ timeout: 90000 });
        await waitShown(page);
        await audit('with a result');
        // Everything folded open: options, API key, details; a preview of new options; the overlay view.
        await page.evaluate(() => { for (const d of document.querySelectorAll('details')) d.open = true; });
        await page.fill('#threshold', '55');
        await page.waitForSelector('#tune:not([hidden])');
        await page.check('input[name="view"][value="overlay"]');
        await page.check('#invert');
        await audit('with a preview, the overlay and every disclosure open');
        await page.fill('#threshold', '-1');
        await page.setInputFiles('#file', photo('chelsea.png'));
        await page.waitForSelector('#held:not([hidden])');
        await audit('with an invalid option and a file waiting');
        await page.fill('#threshold', '100');
        await page.locator('.job-item[data-state="done"]', { hasText: 'chelsea.png' }).waitFor({ timeout: 90000 });
        await page.setInputFiles('#file', notes);
        await page.waitForSelector('#alert:not([hidden])');
        await audit('with an error');
      } finally {
        await b.close();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }));
  }
});

describe('page against a server that needs an API key', () => {
  let keyed = null;
  const KEY = 'browser-test-key-3f9c';
  before(async () => { if (!missing().length) keyed = await startServe({ env: { DSOBEL_API_KEY: KEY } }); });
  after(async () => { if (keyed) await keyed.stop(); });

  test('without the key the page says so; with it saved the upload goes through', T, needs({}, async () => {
    const b = await openBrowser();
    const { page } = b;
    try {
      await page.goto(`${keyed.url}/`, { waitUntil: 'networkidle' });
      await page.setInputFiles('#file', photo('chelsea.png'));
      await page.waitForSelector('#alert:not([hidden])');
      assert.equal(await page.textContent('#alert-title'), 'This server needs an API key');
      await page.click('#settings summary');
      await page.fill('#api-key', KEY);
      await page.click('#save-key');
      // The refused upload starts again by itself; progress then comes from the event stream read with fetch.
      await page.locator('.job-item[data-state="done"]', { hasText: 'chelsea.png' }).waitFor({ timeout: 90000 });
      await waitShown(page);
      assert.ok(b.requests.some((r) => /\/events\//.test(r.url)), 'no /events/ request');
      assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem('dsobel.apiKey'))), KEY);
      assert.deepEqual(onlyLoadErrors(b.problems), []);
    } finally { await b.close(); }
  }));
});

describe('page against a server that refuses work (429 too-busy)', () => {
  let busy = null;
  before(async () => { if (!missing().length) busy = await startServe({ args: ['--max-jobs-in-flight', '0'], env: { DSOBEL_MAX_JOBS_IN_FLIGHT: '0' } }); });
  after(async () => { if (busy) await busy.stop(); });

  test('an upload while the server is busy shows the retry countdown and retries', T, needs({}, async () => {
    const probe = new FormData();
    probe.append('image', new Blob([fs.readFileSync(photo('chelsea.png'))]), 'chelsea.png');
    const r = await fetch(`${busy.url}/upload`, { method: 'POST', body: probe });
    assert.equal(r.status, 429);
    const retryAfter = Number(r.headers.get('retry-after'));
    assert.ok(retryAfter >= 1, `Retry-After: ${r.headers.get('retry-after')}`);
    assert.equal((await r.json()).error.code, 'too-busy');

    const b = await openBrowser();
    const { page } = b;
    try {
      await page.goto(`${busy.url}/`, { waitUntil: 'networkidle' });
      await page.setInputFiles('#file', photo('chelsea.png'));
      await page.waitForSelector('#alert.busy:not([hidden])');
      assert.equal(await page.textContent('#alert-title'), 'The server is busy');
      assert.match(await page.textContent('#alert-text'), /Trying again in \d+ s/);
      assert.equal(await page.getAttribute('.job-item', 'data-state'), 'busy');
      const uploads = () => b.requests.filter((q) => q.method === 'POST' && /\/upload/.test(q.url)).length;
      assert.equal(uploads(), 1);
      // Retries by itself after Retry-After...
      await page.waitForFunction((n) => window.performance.getEntriesByType('resource')
        .filter((e) => /\/upload/.test(e.name)).length > n, 1, { timeout: (Math.min(retryAfter, 300) + 10) * 1000 });
      await page.waitForSelector('#alert.busy:not([hidden])');
      assert.ok(uploads() >= 2, 'no automatic retry');
      // ...and at once with the button.
      const before = uploads();
      await page.click('#retry-now');
      await page.waitForFunction((n) => window.performance.getEntriesByType('resource')
        .filter((e) => /\/upload/.test(e.name)).length > n, before, { timeout: 10000 });
      await page.waitForSelector('#alert.busy:not([hidden])');
      assert.ok(uploads() > before, 'Retry now did not upload');
      assert.deepEqual(onlyLoadErrors(b.problems), []);
    } finally { await b.close(); }
  }));
});
