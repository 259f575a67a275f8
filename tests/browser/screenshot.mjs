// Saves docs/screenshot.png: the page at 1280×900 with a finished job, served by `dsobel serve`.
// Run by hand:  node tests/browser/screenshot.mjs  (DSOBEL_BIN, DSOBEL_PHOTOS as for the tests;
// SCHEME=dark for the dark scheme; an argument overrides the output path).
import path from 'node:path';
import { missing, openBrowser, photo, repoRoot, startServe } from './harness.mjs';

const out = path.resolve(process.argv[2] || path.join(repoRoot, 'docs', 'screenshot.png'));
const gaps = missing();
if (gaps.length) {
  console.error(`cannot take the screenshot: ${gaps.join('; ')}`);
  process.exit(1);
}

const server = await startServe();
const b = await openBrowser({ viewport: { width: 1280, height: 900 }, colorScheme: process.env.SCHEME === 'dark' ? 'dark' : 'light' });
try {
  const { page } = b;
  await page.goto(`${server.url}/`, { waitUntil: 'networkidle' });
  await page.setInputFiles('#file', photo('chelsea.png'));
  await page.locator('.job-item[data-state="done"]').first().waitFor({ timeout: 90000 });
  await page.setInputFiles('#file', photo('coffee.png'));
  await page.locator('.job-item[data-state="done"]', { hasText: 'coffee.png' }).waitFor({ timeout: 90000 });
  await page.waitForFunction(() => document.getElementById('after').naturalWidth > 0);
  await page.focus('#divider');
  for (let i = 0; i < 8; i++) await page.keyboard.press('ArrowLeft');
  await page.evaluate(() => document.activeElement.blur());
  await page.waitForTimeout(300);
  await page.screenshot({ path: out });
  console.log(`saved ${out}`);
} finally {
  await b.close();
  await server.stop();
}
