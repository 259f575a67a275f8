// Saves screenshots of four situations of the page under docs/page/ (NAME-LABEL.png), to compare
// the page's behaviour before and after a change:
//   1-fit-edges     a 3000×2000 result shown at "Fit" (do its thin edges survive?)
//   2-phone         a phone (390×844) a moment after choosing a photo
//   3-pan-4x        at 4×, after dragging inside the image
//   4-outage        a file added while the server is down
// Run by hand:  node tests/browser/page-shots.mjs LABEL  (DSOBEL_BIN, DSOBEL_PHOTOS as for the
// tests; SCHEME=dark for the dark scheme).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeLargeImage, missing, openBrowser, photo, repoRoot, startServe } from './harness.mjs';

const label = process.argv[2] || 'now';
const scheme = process.env.SCHEME === 'dark' ? 'dark' : 'light';
const outDir = path.join(repoRoot, 'docs', 'page');
const out = (name) => path.join(outDir, `${name}-${label}${scheme === 'dark' ? '-dark' : ''}.png`);
const gaps = missing();
if (gaps.length) {
  console.error(`cannot take the screenshots: ${gaps.join('; ')}`);
  process.exit(1);
}
fs.mkdirSync(outDir, { recursive: true });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dsobel-shots-'));

async function doneAndShown(page, name) {
  await page.locator('.job-item[data-state="done"]', { hasText: name }).first().waitFor({ timeout: 120000 });
  await page.waitForFunction(() => document.getElementById('after').naturalWidth > 0);
  await page.waitForTimeout(800);
}

let server = await startServe();
try {
  // 1. Thin edges of a large result at "Fit", edges only (divider at the left end).
  {
    const b = await openBrowser({ colorScheme: scheme });
    try {
      const { page } = b;
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      const big = path.join(tmp, 'lines.png');
      fs.writeFileSync(big, await makeLargeImage(page, photo('coffee.png')));
      await page.setInputFiles('#file', big);
      await doneAndShown(page, 'lines.png');
      await page.focus('#divider');
      await page.keyboard.press('Home');
      await page.evaluate(() => document.activeElement.blur());
      await page.waitForTimeout(1500);
      await page.locator('#scroller').screenshot({ path: out('1-fit-edges') });
    } finally { await b.close(); }
  }
  // 2. A phone, a moment after choosing a photo.
  {
    const b = await openBrowser({ viewport: { width: 390, height: 844 }, colorScheme: scheme, phone: true });
    try {
      const { page } = b;
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await page.setInputFiles('#file', photo('coffee.png'));
      await page.waitForTimeout(2500);
      await page.screenshot({ path: out('2-phone') });
    } finally { await b.close(); }
  }
  // 3. At 4×, after dragging from the middle of the image 250 px to the left.
  {
    const b = await openBrowser({ colorScheme: scheme });
    try {
      const { page } = b;
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      await page.setInputFiles('#file', photo('chelsea.png'));
      await doneAndShown(page, 'chelsea.png');
      await page.check('input[name="zoom"][value="4"]');
      await page.waitForTimeout(300);
      const box = await page.locator('#scroller').boundingBox();
      const x = box.x + box.width * 0.7, y = box.y + box.height / 2;
      await page.mouse.move(x, y);
      await page.mouse.down();
      await page.mouse.move(x - 250, y - 80, { steps: 10 });
      await page.mouse.up();
      await page.waitForTimeout(300);
      await page.locator('#job').screenshot({ path: out('3-pan-4x') });
    } finally { await b.close(); }
  }
  // 4. A file added while the server is down.
  {
    const b = await openBrowser({ colorScheme: scheme });
    try {
      const { page } = b;
      await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
      const port = server.port;
      await server.stop();
      server = null;
      await page.setInputFiles('#file', photo('chelsea.png'));
      await page.waitForTimeout(4000);
      await page.screenshot({ path: out('4-outage') });
      server = await startServe({ port });
    } finally { await b.close(); }
  }
  console.log(`saved ${outDir}/*-${label}*.png`);
} finally {
  if (server) await server.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
}
