// Every operator from the page: the options form (the fields that apply, the threshold's range
// for each kernel, invalid combinations explained at their field before anything is sent),
// Canny's 1-bit PNG, gradients as NPY and an unclipped strength as TIFF (downloaded with their
// extension, shown through a grey drawing of their values), the live preview computed by the
// server for what the page does not compute itself, and history entries of earlier versions.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  apiResult, axeAudit, comparePixels, missing, needs, openBrowser, photo, shownResult, startServe, webDir,
} from './harness.mjs';

const T = { timeout: 240000 };
const uploadsOf = (b) => b.requests.filter((r) => r.method === 'POST' && /\/upload(\?|$)/.test(r.url));
const previewsOf = (b) => uploadsOf(b).filter((r) => new URL(r.url).searchParams.get('wait') === '10');
const jobUploadsOf = (b) => uploadsOf(b).filter((r) => !new URL(r.url).searchParams.has('wait'));

async function waitDone(page, name, nth = 0) {
  await page.locator('.job-item[data-state="done"]', { hasText: name }).nth(nth).waitFor({ timeout: 90000 });
}

// The result is on show: its image (the PNG, or the drawing of a TIFF or NPY) is loaded.
async function waitShown(page, drawn = false) {
  await page.waitForSelector('#result-wrap:not([hidden])', { timeout: 90000 });
  if (drawn) await page.waitForSelector('#render-hint:not([hidden])');
  await page.waitForFunction(() => { const i = document.getElementById('after'); return i.complete && i.naturalWidth > 0; });
}

// Width, height, bit depth and colour type of a PNG, from its header.
function pngHeader(buf) {
  assert.equal(buf.subarray(1, 4).toString('latin1'), 'PNG', 'not a PNG');
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20), depth: buf[24], colour: buf[25] };
}

// The grey levels (red channel) of an image, decoded in the page: { width, height, grey: Buffer }.
async function greyLevels(page, bytes, type = 'image/png') {
  const r = await page.evaluate(async ([b64, t]) => {
    const data = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const bmp = await createImageBitmap(new Blob([data], { type: t }), { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    const c = new OffscreenCanvas(bmp.width, bmp.height);
    const ctx = c.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(bmp, 0, 0);
    const px = ctx.getImageData(0, 0, bmp.width, bmp.height).data;
    const grey = new Uint8Array(bmp.width * bmp.height);
    for (let i = 0; i < grey.length; i++) grey[i] = px[i * 4];
    let s = '';
    for (let i = 0; i < grey.length; i += 0x8000) s += String.fromCharCode.apply(null, grey.subarray(i, i + 0x8000));
    return { width: bmp.width, height: bmp.height, grey: btoa(s) };
  }, [bytes.toString('base64'), type]);
  return { width: r.width, height: r.height, grey: Buffer.from(r.grey, 'base64') };
}

// The grey levels of the preview canvas.
async function canvasGrey(page) {
  const b64 = await page.evaluate(() => document.getElementById('tune-canvas').toDataURL('image/png').split(',')[1]);
  return greyLevels(page, Buffer.from(b64, 'base64'));
}

// An NPY file (NumPy 1.0 header) read here, independently of the page: { descr, shape, values }.
function readNpy(buf) {
  assert.equal(buf.subarray(0, 6).toString('latin1'), '\x93NUMPY', 'not an NPY file');
  const len = buf.readUInt16LE(8);
  const header = buf.subarray(10, 10 + len).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const shape = /'shape':\s*\((\d+),\s*(\d+)\)/.exec(header).slice(1).map(Number);
  const body = buf.subarray(10 + len);
  const read = { '<i2': (i) => body.readInt16LE(i * 2), '<u2': (i) => body.readUInt16LE(i * 2), '<i4': (i) => body.readInt32LE(i * 4),
    '<u4': (i) => body.readUInt32LE(i * 4), '<f4': (i) => body.readFloatLE(i * 4), '|u1': (i) => body[i] }[descr];
  assert.ok(read, `an NPY type this test does not read: ${descr}`);
  const values = Array.from({ length: shape[0] * shape[1] }, (_, i) => read(i));
  return { descr, shape, values, header };
}

// The grey drawing of values as the page promises it: signed with mid-grey at 0, unsigned from 0
// to the largest value.
function expectedGrey(values, signed) {
  let min = Infinity, max = -Infinity;
  for (const v of values) { if (v < min) min = v; if (v > max) max = v; }
  if (signed) {
    const m = Math.max(1, Math.abs(min), Math.abs(max));
    return Buffer.from(values.map((v) => Math.round(128 + (v * 127) / m)));
  }
  const hi = Math.max(1, max);
  return Buffer.from(values.map((v) => Math.round((v * 255) / hi)));
}

function countDiff(a, b) {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

describe('operators in the page', () => {
  let server = null;
  before(async () => { if (!missing().length) server = await startServe(); });
  after(async () => { if (server) await server.stop(); });

  test('Canny chosen in the form: the sample comes back as a 1-bit PNG of 0 and 255, its size, equal to the API result', T, needs({}, async () => {
    const b = await openBrowser();
    const { page } = b;
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await page.check('input[name="output"][value="canny"]');
      // Canny's thresholds replace the edge threshold; the threshold field is hidden.
      assert.ok(await page.isVisible('#canny-field'));
      assert.ok(await page.isHidden('#thr-field'));
      await page.fill('#canny-low', '60');
      await page.fill('#canny-high', '150');
      assert.equal(await page.textContent('#opts-summary'), 'Canny 60–150 · L2');
      await page.click('#sample');
      await waitDone(page, 'sample-cat.jpg');
      await waitShown(page);

      const [up] = jobUploadsOf(b);
      const q = new URL(up.url).searchParams;
      assert.deepEqual(Object.fromEntries(q), {
        output: 'canny', kernel: 'sobel', ksize: '3', magnitude: 'l2', threshold: '100', low: '60', high: '150', format: 'png',
      });

      const png = await shownResult(page);
      const head = pngHeader(png);
      assert.deepEqual({ depth: head.depth, colour: head.colour }, { depth: 1, colour: 0 }, 'not a 1-bit grey PNG');
      const sample = await greyLevels(page, fs.readFileSync(path.join(webDir, 'sample.jpg')), 'image/jpeg');
      assert.deepEqual([head.width, head.height], [sample.width, sample.height], 'the result is not the size of the sample');
      const shown = await greyLevels(page, png);
      const other = [...shown.grey].filter((v) => v !== 0 && v !== 255).length;
      assert.equal(other, 0, 'pixels other than 0 and 255');
      const white = [...shown.grey].filter((v) => v === 255).length;
      assert.ok(white > 100 && white < shown.grey.length / 4, `${white} edge pixels`);

      const api = await apiResult(server.url, path.join(webDir, 'sample.jpg'), { output: 'canny', low: 60, high: 150 });
      const cmp = await comparePixels(page, png, api.png);
      assert.ok(cmp.equal, cmp.why);

      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
      assert.equal(download.suggestedFilename(), 'sample-cat-edges-canny60-150-l2.png');
      assert.equal(await page.textContent('#download'), 'Download PNG');
      assert.match(await page.textContent('#facts'), /Canny edges, low 60, high 150/);
      assert.equal(await page.textContent('.job-item .opt'), ' · Canny 60–150 · L2');
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));

  test('gx as NPY: PNG is not offered, the download ends .npy, and the values are drawn in grey with mid-grey at 0', T, needs({}, async () => {
    const b = await openBrowser();
    const { page } = b;
    const file = photo('chelsea.png');
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await page.check('input[name="output"][value="gx"]');
      // PNG cannot hold a signed gradient: it is disabled, and the measure of strength does not apply.
      assert.ok(await page.isDisabled('input[name="format"][value="png"]'));
      assert.ok(await page.isDisabled('input[name="magnitude"][value="l1"]'));
      assert.ok(await page.isDisabled('#threshold'));
      await page.check('input[name="format"][value="npy"]');
      assert.equal(await page.textContent('#opts-summary'), 'gx · NPY');
      await page.setInputFiles('#file', file);
      await waitDone(page, 'chelsea.png');
      await waitShown(page, true);
      assert.equal(new URL(jobUploadsOf(b)[0].url).searchParams.get('format'), 'npy');

      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
      assert.equal(download.suggestedFilename(), 'chelsea-edges-gx.npy');
      assert.equal(await page.textContent('#download'), 'Download NPY');
      const saved = fs.readFileSync(await download.path());
      const id = await page.getAttribute('.job-item[data-state="done"]', 'data-id');
      const r = await fetch(`${server.url}/result/${id}`);
      assert.equal(r.headers.get('content-type'), 'application/octet-stream');
      assert.match(r.headers.get('content-disposition') || '', /\.npy"?$/);
      assert.ok(Buffer.from(await r.arrayBuffer()).equals(saved), 'the download differs from the server’s file');
      const npy = readNpy(saved);
      assert.equal(npy.descr, '<i2');
      assert.deepEqual(npy.shape, [300, 451]);

      // The drawing: the page's own parse of the file, scaled with mid-grey at 0.
      const drawing = await greyLevels(page, await shownResult(page));
      assert.deepEqual([drawing.width, drawing.height], [451, 300]);
      const want = expectedGrey(npy.values, true);
      assert.equal(countDiff(drawing.grey, want), 0, 'the drawing differs from the values scaled around mid-grey');
      assert.match(await page.textContent('#render-hint'), /NPY file holds 16-bit signed values from -?\d+ to \d+, shown with mid-grey at 0/);
      assert.match(await page.textContent('#facts'), /Result NPY/);
      const thumb = await page.getAttribute('.job-item img.thumb', 'src');
      assert.match(thumb, /^data:image\/jpeg;base64,/, 'no thumbnail from the drawing');
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));

  test('an unclipped strength as TIFF (Sobel 5): the download ends .tif and its drawing matches the same values as NPY', T, needs({}, async () => {
    const b = await openBrowser();
    const { page } = b;
    const file = photo('coffee.png');
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await page.check('input[name="output"][value="magnitude16"]');
      await page.check('input[name="ksize"][value="5"]');
      await page.check('input[name="format"][value="tiff"]');
      // Sobel 7 goes past 16 bits: PNG is no longer offered, and comes back with size 5.
      await page.check('input[name="format"][value="png"]');
      await page.check('input[name="ksize"][value="7"]');
      assert.ok(await page.isDisabled('input[name="format"][value="png"]'));
      assert.equal(await page.evaluate(() => document.querySelector('input[name="format"]:checked').value), 'npy');
      assert.match(await page.textContent('#format-hint'), /past 16 bits/);
      await page.check('input[name="ksize"][value="5"]');
      assert.equal(await page.evaluate(() => document.querySelector('input[name="format"]:checked').value), 'png');
      await page.check('input[name="format"][value="tiff"]');

      await page.setInputFiles('#file', file);
      await waitDone(page, 'coffee.png');
      await waitShown(page, true);
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
      assert.equal(download.suggestedFilename(), 'coffee-edges-greys16-l2-sobel5.tif');
      const tif = fs.readFileSync(await download.path());
      assert.equal(tif.subarray(0, 4).toString('latin1'), 'II*\0');

      const same = await fetch(`${server.url}/upload?output=magnitude16&ksize=5&format=npy&wait=30`, {
        method: 'POST', body: (() => { const f = new FormData(); f.append('image', new Blob([fs.readFileSync(file)]), 'coffee.png'); return f; })(),
      });
      assert.equal(same.status, 200);
      const npy = readNpy(Buffer.from(await same.arrayBuffer()));
      assert.equal(npy.descr, '<u2');
      const drawing = await greyLevels(page, await shownResult(page));
      assert.deepEqual([drawing.height, drawing.width], npy.shape);
      assert.equal(countDiff(drawing.grey, expectedGrey(npy.values, false)), 0, 'the TIFF drawing differs from its values scaled to their range');
      assert.match(await page.textContent('#render-hint'), /TIFF file holds 16-bit unsigned values up to [\d,]+, shown from black \(0\)/);
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));

  test('the threshold slider reaches just below what each kernel and measure can reach, as the server says', T, needs({}, async () => {
    const b = await openBrowser();
    const { page } = b;
    const tops = [
      ['sobel', 1, 'l1', 509], ['sobel', 1, 'l2', 360], ['sobel', 3, 'l1', 2039], ['sobel', 3, 'l2', 1442],
      ['sobel', 5, 'l1', 24479], ['sobel', 5, 'l2', 17309], ['sobel', 7, 'l1', 326399], ['sobel', 7, 'l2', 230799],
      ['scharr', 3, 'l1', 8159], ['scharr', 3, 'l2', 5769],
    ];
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      for (const [kernel, ksize, magnitude, top] of tops) {
        await page.check(`input[name="kernel"][value="${kernel}"]`);
        await page.check(`input[name="ksize"][value="${ksize}"]`);
        await page.check(`input[name="magnitude"][value="${magnitude}"]`);
        const where = `${kernel} ${ksize} ${magnitude}`;
        assert.equal(await page.getAttribute('#threshold-range', 'max'), String(top), where);
        await page.fill('#threshold', String(top));
        assert.equal(await page.getAttribute('#threshold', 'aria-invalid'), null, where);
        await page.fill('#threshold', String(top + 1));
        assert.equal(await page.getAttribute('#threshold', 'aria-invalid'), 'true', where);
        assert.match(await page.textContent('#thr-error'), new RegExp(`^Enter a whole number from 0 to ${top}: .*reaches ${top + 1}`), where);
        // The server draws the line at the same place.
        const form = () => { const f = new FormData(); f.append('image', new Blob([fs.readFileSync(photo('chelsea.png'))]), 'c.png'); return f; };
        const ok = await fetch(`${server.url}/upload?kernel=${kernel}&ksize=${ksize}&magnitude=${magnitude}&threshold=${top}`, { method: 'POST', body: form() });
        assert.equal(ok.status, 202, `${where}: ${await ok.text()}`);
        const no = await fetch(`${server.url}/upload?kernel=${kernel}&ksize=${ksize}&magnitude=${magnitude}&threshold=${top + 1}`, { method: 'POST', body: form() });
        assert.equal(no.status, 400, where);
        const err = (await no.json()).error;
        assert.equal(err.code, 'invalid-option', where);
        assert.match(err.message, /^threshold/, where);
      }
      // Otsu: the number gives way to the server's choice.
      await page.check('input[name="kernel"][value="sobel"]');
      await page.check('input[name="ksize"][value="3"]');
      await page.check('#otsu');
      assert.ok(await page.isDisabled('#threshold'));
      assert.ok(await page.isDisabled('#threshold-range'));
      assert.equal(await page.getAttribute('#threshold', 'aria-invalid'), null);
      assert.match(await page.textContent('#opts-summary'), /^Otsu · L2/);
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));

  test('invalid combinations are explained at their field and nothing is sent until they are corrected', T, needs({}, async () => {
    const b = await openBrowser();
    const { page } = b;
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      // Scharr with size 5.
      await page.check('input[name="kernel"][value="scharr"]');
      await page.check('input[name="ksize"][value="5"]');
      assert.ok(await page.isVisible('#ksize-error'));
      assert.equal(await page.textContent('#ksize-error'), 'The Scharr kernel is 3 × 3 only: choose size 3, or the Sobel kernel.');
      assert.equal(await page.textContent('#opts-summary'), 'check the options');
      await page.setInputFiles('#file', photo('chelsea.png'));
      await page.waitForSelector('#held:not([hidden])');
      assert.match(await page.textContent('#held'), /chelsea\.png is waiting/);
      assert.equal(await page.evaluate(() => document.activeElement.name + '=' + document.activeElement.value), 'ksize=5');
      const described = await page.evaluate(() => document.getElementById('ksize-field').getAttribute('aria-describedby').split(' '));
      assert.ok(described.includes('ksize-error'));

      // Canny with low above high, and Canny with Scharr.
      await page.check('input[name="output"][value="canny"]');
      await page.fill('#canny-low', '300');
      await page.fill('#canny-high', '100');
      assert.equal(await page.textContent('#canny-error'), 'The low threshold must not be above the high one (100).');
      assert.equal(await page.getAttribute('#canny-low', 'aria-invalid'), 'true');
      assert.equal(await page.getAttribute('#canny-high', 'aria-invalid'), null);
      assert.match(await page.textContent('#kernel-error'), /Canny edges are found with the Sobel kernel/);
      await page.check('input[name="kernel"][value="sobel"]');
      await page.check('input[name="ksize"][value="1"]');
      assert.match(await page.textContent('#ksize-error'), /Canny edges need a kernel size of 3, 5 or 7/);
      await page.check('input[name="ksize"][value="3"]');
      assert.ok(await page.isHidden('#ksize-error'));
      assert.ok(await page.isHidden('#kernel-error'));
      assert.ok(await page.isVisible('#canny-error'));
      await page.fill('#canny-high', '1443');
      assert.match(await page.textContent('#canny-error'), /Enter a high threshold from 0 to 1442/);
      await page.fill('#canny-high', '100');
      assert.equal(uploadsOf(b).length, 0, 'an upload was sent with invalid options');
      assert.equal(await page.locator('.job-item').count(), 0);

      // Corrected: the waiting file goes, with the options as corrected.
      await page.fill('#canny-low', '50');
      await waitDone(page, 'chelsea.png');
      assert.ok(await page.isHidden('#held'));
      assert.ok(await page.isHidden('#canny-error'));
      const q = new URL(uploadsOf(b)[0].url).searchParams;
      assert.deepEqual([q.get('output'), q.get('kernel'), q.get('ksize'), q.get('low'), q.get('high')], ['canny', 'sobel', '3', '50', '100']);
      assert.equal(uploadsOf(b).length, 1);
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));

  test('the preview of Canny and of gx is computed by the server, follows the options, and equals the result', T, needs({}, async () => {
    const b = await openBrowser();
    const { page } = b;
    const file = photo('chelsea.png');
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await page.setInputFiles('#file', file);
      await waitDone(page, 'chelsea.png');
      await waitShown(page);
      assert.equal(previewsOf(b).length, 0);

      // Canny: asked of the server with the file (small enough) and wait=10, as a PNG.
      await page.check('input[name="output"][value="canny"]');
      await page.waitForSelector('#tune[data-state="server"]', { timeout: 30000 });
      assert.match(await page.textContent('#tune-hint'), /^Preview computed by the server\./);
      assert.equal(await page.textContent('#tune-opts'), 'Canny edges 100–200 · L2');
      const first = new URL(previewsOf(b)[0].url).searchParams;
      assert.deepEqual([first.get('output'), first.get('format'), first.get('low'), first.get('high')], ['canny', 'png', '100', '200']);
      const canny = await apiResult(server.url, file, { output: 'canny' });
      let shown = await canvasGrey(page);
      let api = await greyLevels(page, canny.png);
      assert.deepEqual([shown.width, shown.height], [451, 300]);
      assert.equal(countDiff(shown.grey, api.grey), 0, 'the Canny preview differs from the server’s result');

      // Typing a new low threshold asks once, for the value typed in the end (1, then 12).
      const before = previewsOf(b).length;
      await page.fill('#canny-low', '');
      await page.type('#canny-low', '12', { delay: 60 });
      await page.waitForFunction(() => document.getElementById('tune-opts').textContent === 'Canny edges 12–200 · L2');
      await page.waitForSelector('#tune[data-state="server"]', { timeout: 30000 });
      const asked = previewsOf(b).slice(before).map((r) => new URL(r.url).searchParams.get('low'));
      assert.deepEqual(asked, ['12'], `previews asked: ${asked}`);
      const canny12 = await apiResult(server.url, file, { output: 'canny', low: 12 });
      shown = await canvasGrey(page);
      api = await greyLevels(page, canny12.png);
      assert.equal(countDiff(shown.grey, api.grey), 0, 'the preview did not follow the new threshold');

      // gx cannot be a PNG: the preview is asked as NPY and drawn with mid-grey at 0.
      await page.check('input[name="output"][value="gx"]');
      await page.waitForSelector('#tune[data-state="server"]', { timeout: 30000 });
      await page.waitForFunction(() => /mid-grey at 0/.test(document.getElementById('tune-hint').textContent));
      const gxAsked = new URL(previewsOf(b).at(-1).url).searchParams;
      assert.deepEqual([gxAsked.get('output'), gxAsked.get('format')], ['gx', 'npy']);

      // Back to Canny 12–200: shown again at once, without asking again.
      const n = previewsOf(b).length;
      await page.check('input[name="output"][value="canny"]');
      await page.waitForSelector('#tune[data-state="server"]');
      assert.match(await page.textContent('#tune-hint'), /computed by the server/);
      assert.equal(previewsOf(b).length, n);

      // Run again: the result is the preview, and the first run stays in the history.
      await page.click('#rerun');
      await waitDone(page, 'chelsea.png', 1);
      await waitShown(page);
      const cmp = await comparePixels(page, await shownResult(page), canny12.png);
      assert.ok(cmp.equal, cmp.why);
      assert.deepEqual(await page.locator('.job-item .opt').allTextContents(), [' · Canny 12–200 · L2', ' · t100 · L2']);
      assert.ok(await page.isHidden('#tune'));
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));

  for (const [scheme, viewport, phone] of [['light', { width: 1280, height: 900 }, false], ['dark', { width: 390, height: 844 }, true]]) {
    test(`no axe violations and no sideways scrolling with the new fields, a drawn NPY, a server preview and errors (${scheme}, ${viewport.width}px)`, T, needs({}, async () => {
      const b = await openBrowser({ viewport, colorScheme: scheme, phone, bypassCSP: true });
      const { page } = b;
      const audit = (when) => axeAudit(page, when);
      try {
        await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
        await page.evaluate(() => { for (const d of document.querySelectorAll('details')) d.open = true; });
        await page.check('input[name="output"][value="gx"]');
        await audit('with gx chosen (PNG and the strength measure disabled)');
        await page.setInputFiles('#file', photo('chelsea.png'));
        await waitDone(page, 'chelsea.png');
        await waitShown(page, true);
        await page.check('input[name="output"][value="canny"]');
        await page.waitForSelector('#tune[data-state="server"]', { timeout: 30000 });
        await audit('with a drawn NPY result and a preview computed by the server');
        await page.check('input[name="kernel"][value="scharr"]');
        await page.check('input[name="ksize"][value="5"]');
        await page.fill('#canny-low', '300');
        await audit('with invalid combinations marked');
        await page.check('input[name="output"][value="binary"]');
        await page.check('#otsu');
        await audit('with Otsu chosen');
        assert.deepEqual(b.problems, []);
      } finally { await b.close(); }
    }));
  }

  test('history and options saved by an earlier version of the page get the defaults of the new options', T, needs({}, async () => {
    const api = await apiResult(server.url, photo('chelsea.png'), { threshold: 40, magnitude: 'l1' });
    const b = await openBrowser();
    const { page } = b;
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await page.evaluate((id) => {
        localStorage.setItem('dsobel.jobs.v1', JSON.stringify([{
          id, name: 'old.png', size: 1000, created: Date.now(), thumb: null, state: 'done',
          options: { threshold: 40, magnitude: 'l1', output: 'binary', fragments: 'auto' }, error: null,
          status: { width: 451, height: 300, options: { threshold: 40, magnitude: 'l1', output: 'binary', fragments: null } },
        }]));
        localStorage.setItem('dsobel.options.v1', JSON.stringify({ output: 'magnitude', magnitude: 'l1', threshold: 70, fragments: 'auto', fragmentsN: 4 }));
      }, api.id);
      await page.reload({ waitUntil: 'networkidle' });
      await waitShown(page);
      assert.equal(await page.textContent('.job-item .opt'), ' · t40 · L1');
      assert.equal(await page.getAttribute('#download', 'download'), 'old-edges-t40-l1.png');
      const cmp = await comparePixels(page, await shownResult(page), api.png);
      assert.ok(cmp.equal, cmp.why);
      // The saved form comes back with the new fields at their defaults.
      const form = await page.evaluate(() => Object.fromEntries(['output', 'magnitude', 'kernel', 'ksize', 'format']
        .map((n) => [n, document.querySelector(`input[name="${n}"]:checked`).value])));
      assert.deepEqual(form, { output: 'magnitude', magnitude: 'l1', kernel: 'sobel', ksize: '3', format: 'png' });
      assert.equal(await page.textContent('#opts-summary'), 'greys · L1');
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));
});
