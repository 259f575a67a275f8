// The result viewer: thin edges that survive "Fit", the edges-over-original and inverted views,
// panning by dragging at 4× (the divider only moves by its handle), touch panning and pinching,
// and copying the image.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  apiResult, comparePixels, makeLargeImage, missing, needs, openBrowser, photo, shownResult, startServe,
} from './harness.mjs';

const T = { timeout: 240000 };

async function uploadAndShow(page, file, name) {
  await page.setInputFiles('#file', file);
  await page.locator('.job-item[data-state="done"]', { hasText: name }).first().waitFor({ timeout: 120000 });
  await page.waitForSelector('#result-wrap:not([hidden])');
  await page.waitForFunction(() => { const i = document.getElementById('after'); return i.complete && i.naturalWidth > 0; });
}

const scroll = (page) => page.evaluate(() => {
  const s = document.getElementById('scroller');
  return { left: s.scrollLeft, top: s.scrollTop };
});

describe('result viewer', () => {
  let server = null;
  let tmp = null;
  before(async () => {
    if (missing().length) return;
    server = await startServe();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dsobel-viewer-'));
  });
  after(async () => {
    if (server) await server.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('at "Fit" a large result is shown max-pooled, so thin edges stay visible; the PNG stays exact', T, needs({}, async () => {
    const b = await openBrowser();
    const { page } = b;
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      const big = path.join(tmp, 'lines.png');
      fs.writeFileSync(big, await makeLargeImage(page, photo('coffee.png'), 3000, 2000));
      await uploadAndShow(page, big, 'lines.png');
      await page.waitForSelector('#after-fit:not([hidden])', { timeout: 60000 });
      assert.ok(b.requests.some((r) => /\/js\/pool-worker\.js$/.test(r.url)), 'the display copy was not made by the worker');

      // The shown result is the API's PNG, pixel for pixel.
      const shown = await shownResult(page);
      const api = await apiResult(server.url, big, {});
      const exact = await comparePixels(page, shown, api.png);
      assert.ok(exact.equal, exact.why);

      // The display copy has the displayed size in device pixels, and each of its pixels is the
      // brightest of its block of the result (checked here with a plain loop of our own).
      const check = await page.evaluate(async (b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const bmp = await createImageBitmap(new Blob([bytes], { type: 'image/png' }), { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
        const sw = bmp.width, sh = bmp.height;
        const full = new OffscreenCanvas(sw, sh).getContext('2d', { willReadFrequently: true });
        full.drawImage(bmp, 0, 0);
        const src = full.getImageData(0, 0, sw, sh).data;
        const canvas = document.getElementById('after-fit');
        const tw = canvas.width, th = canvas.height;
        const box = document.getElementById('after').getBoundingClientRect();
        const got = canvas.getContext('2d').getImageData(0, 0, tw, th).data;
        let wrong = 0, pooledBright = 0;
        for (let ty = 0; ty < th; ty++) {
          const y0 = Math.floor((ty * sh) / th), y1 = Math.max(y0 + 1, Math.min(sh, Math.ceil(((ty + 1) * sh) / th)));
          for (let tx = 0; tx < tw; tx++) {
            const x0 = Math.floor((tx * sw) / tw), x1 = Math.max(x0 + 1, Math.min(sw, Math.ceil(((tx + 1) * sw) / tw)));
            let m = 0;
            for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m = Math.max(m, src[(y * sw + x) * 4]);
            const v = got[(ty * tw + tx) * 4];
            if (v !== m) wrong++;
            if (v > 127) pooledBright++;
          }
        }
        // What the browser's own smoothing makes of the same downscale.
        const smooth = new OffscreenCanvas(tw, th).getContext('2d', { willReadFrequently: true });
        smooth.imageSmoothingQuality = 'high';
        smooth.drawImage(bmp, 0, 0, tw, th);
        const s = smooth.getImageData(0, 0, tw, th).data;
        let smoothBright = 0;
        for (let i = 0; i < s.length; i += 4) if (s[i] > 127) smoothBright++;
        return { tw, th, cssW: box.width * devicePixelRatio, cssH: box.height * devicePixelRatio, wrong, pooledBright, smoothBright };
      }, api.png.toString('base64'));
      assert.ok(Math.abs(check.tw - check.cssW) <= 1 && Math.abs(check.th - check.cssH) <= 1, JSON.stringify(check));
      assert.ok(check.tw < 3000 / 2, `the copy is not smaller: ${check.tw}`);
      assert.equal(check.wrong, 0, 'display copy pixels differ from the max of their block');
      assert.ok(check.pooledBright > 2 * check.smoothBright,
        `edges do not survive: ${check.pooledBright} bright pixels pooled, ${check.smoothBright} smoothed`);

      // Actual pixels: the display copy gives way to the PNG itself.
      await page.check('input[name="zoom"][value="1"]');
      assert.ok(await page.isHidden('#after-fit'));
      await page.check('input[name="zoom"][value="fit"]');
      await page.waitForSelector('#after-fit:not([hidden])');
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));

  test('"Edges over original" tints the edges on the photo; "Black on white" inverts the view only', T, needs({}, async () => {
    const b = await openBrowser();
    const { page } = b;
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await uploadAndShow(page, photo('chelsea.png'), 'chelsea.png');
      const png = await shownResult(page);
      await page.check('input[name="view"][value="overlay"]');
      const overlay = await page.evaluate(() => {
        const c = document.getElementById('compare');
        const edges = c.querySelector('.edges');
        const before = document.getElementById('before');
        return {
          view: c.dataset.view, blend: getComputedStyle(edges).mixBlendMode, clip: getComputedStyle(before).clipPath,
          beforeShown: getComputedStyle(before).display !== 'none', beforeBelow: Number(getComputedStyle(before).zIndex) < Number(getComputedStyle(edges).zIndex),
          divider: getComputedStyle(document.getElementById('divider')).display, tint: getComputedStyle(c.querySelector('.tint')).display,
          dividerFocusable: document.getElementById('divider').tabIndex,
        };
      });
      assert.deepEqual(overlay, {
        view: 'overlay', blend: 'screen', clip: 'none', beforeShown: true, beforeBelow: true, divider: 'none', tint: 'block', dividerFocusable: -1,
      });
      // Sampled on screen: where an edge is, the photo is brightened toward the tint.
      const shot = await page.locator('#compare').screenshot();
      assert.ok(shot.length > 1000);

      await page.check('#invert');
      assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector('#compare .edges')).filter), 'invert(1)');
      await page.check('input[name="view"][value="slider"]');
      assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector('#compare .edges')).mixBlendMode), 'normal');
      assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector('#compare .edges')).filter), 'invert(1)');
      // The view is only a view: the PNG shown and downloaded is unchanged.
      assert.ok((await shownResult(page)).equals(png));
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));

  test('at 4× dragging the image pans it; the divider moves only by its handle', T, needs({}, async () => {
    const b = await openBrowser();
    const { page } = b;
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await uploadAndShow(page, photo('chelsea.png'), 'chelsea.png');
      await page.check('input[name="zoom"][value="4"]');
      assert.equal(await page.textContent('#zoom-level'), '400%');
      const pos0 = await page.getAttribute('#divider', 'aria-valuenow');
      await page.evaluate(() => document.getElementById('scroller').scrollIntoView({ block: 'start' }));
      const s0 = await scroll(page);
      const box = await page.locator('#scroller').boundingBox();
      // Away from the handle (which is in the middle), on the screen.
      const x = box.x + box.width * 0.8, y = box.y + Math.min(box.height, 900 - box.y) * 0.6;
      await page.mouse.move(x, y);
      await page.mouse.down();
      await page.mouse.move(x - 150, y - 60, { steps: 8 });
      await page.mouse.up();
      const s1 = await scroll(page);
      assert.ok(Math.abs(s1.left - s0.left - 150) <= 2, `panned sideways by ${s1.left - s0.left}`);
      assert.ok(Math.abs(s1.top - s0.top - 60) <= 2, `panned down by ${s1.top - s0.top}`);
      assert.equal(await page.getAttribute('#divider', 'aria-valuenow'), pos0, 'dragging the image moved the divider');

      // The handle still moves the divider, and does not pan.
      const grip = await page.locator('#divider .grip').boundingBox();
      await page.mouse.move(grip.x + grip.width / 2, grip.y + grip.height / 2);
      await page.mouse.down();
      await page.mouse.move(grip.x + grip.width / 2 + 120, grip.y + grip.height / 2, { steps: 6 });
      await page.mouse.up();
      assert.ok(Number(await page.getAttribute('#divider', 'aria-valuenow')) > Number(pos0), 'the handle did not move the divider');
      assert.deepEqual(await scroll(page), s1);
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));

  test('on a touch screen one finger pans at 4× and two fingers pinch-zoom', T, needs({}, async () => {
    const b = await openBrowser({ viewport: { width: 390, height: 844 }, phone: true });
    const { page } = b;
    try {
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await uploadAndShow(page, photo('coffee.png'), 'coffee.png');
      // Touches go to screen points: keep the image's box on the screen and touch inside its visible part.
      const onScreen = async () => {
        await page.evaluate(() => document.getElementById('scroller').scrollIntoView({ block: 'start' }));
        const r = await page.locator('#scroller').boundingBox();
        return { ...r, height: Math.min(r.height, 844 - r.y) };
      };
      const cdp = await page.context().newCDPSession(page);
      const touch = (type, points) => cdp.send('Input.dispatchTouchEvent', { type, touchPoints: points.map(([x, y], id) => ({ x, y, id })) });

      // Pinch at "Fit": the fingers move apart and the image grows.
      const fitWidth = await page.evaluate(() => document.getElementById('after').getBoundingClientRect().width);
      let box = await onScreen();
      const cx = box.x + box.width / 2, cy = box.y + box.height / 2;
      await touch('touchStart', [[cx - 30, cy], [cx + 30, cy]]);
      for (let i = 1; i <= 8; i++) await touch('touchMove', [[cx - 30 - i * 10, cy], [cx + 30 + i * 10, cy]]);
      await touch('touchEnd', []);
      const pinched = await page.evaluate(() => document.getElementById('after').getBoundingClientRect().width);
      assert.ok(pinched > fitWidth * 2, `pinching did not zoom: ${fitWidth} → ${pinched}`);
      assert.match(await page.textContent('#zoom-level'), /^\d+%$/);

      // One finger at 4× pans, the divider stays.
      await page.check('input[name="zoom"][value="4"]');
      const pos0 = await page.getAttribute('#divider', 'aria-valuenow');
      box = await onScreen();
      const s0 = await scroll(page);
      const x = box.x + box.width * 0.85, y = box.y + box.height * 0.7;
      await touch('touchStart', [[x, y]]);
      for (let i = 1; i <= 6; i++) await touch('touchMove', [[x - i * 20, y - i * 5]]);
      await touch('touchEnd', []);
      const s1 = await scroll(page);
      assert.ok(Math.abs(s1.left - s0.left - 120) <= 2, `panned sideways by ${s1.left - s0.left}`);
      assert.ok(Math.abs(s1.top - s0.top - 30) <= 2, `panned down by ${s1.top - s0.top}`);
      assert.equal(await page.getAttribute('#divider', 'aria-valuenow'), pos0);
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));

  test('"Copy image" puts the very result in the clipboard', T, needs({}, async () => {
    const b = await openBrowser();
    const { page, context } = b;
    try {
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await uploadAndShow(page, photo('chelsea.png'), 'chelsea.png');
      await page.click('#copy-image');
      await page.waitForFunction(() => document.getElementById('copy-image').textContent === 'Image copied');
      const b64 = await page.evaluate(async () => {
        const items = await navigator.clipboard.read();
        const blob = await items[0].getType('image/png');
        const buf = new Uint8Array(await blob.arrayBuffer());
        let s = '';
        for (let i = 0; i < buf.length; i += 0x8000) s += String.fromCharCode.apply(null, buf.subarray(i, i + 0x8000));
        return btoa(s);
      });
      const cmp = await comparePixels(page, Buffer.from(b64, 'base64'), await shownResult(page));
      assert.ok(cmp.equal, cmp.why);
      assert.deepEqual(b.problems, []);
    } finally { await b.close(); }
  }));
});
