// Live preview of new options on the page's own copy of the image, at most PREVIEW_MAX pixels
// on a side. The canonical filter (BT.601 luma in fixed point, 3×3 Sobel with reflect-101
// borders, l1 or l2, binary with a number or magnitude) is computed here; every other operator
// (Canny, Otsu, other kernels, the unclipped strength, gradients, direction) is computed by the
// server on that copy (or on the file itself when it is that small), asked with wait=10 for a
// PNG where PNG holds the result, else an NPY drawn in grey. For an image that small either
// gives the server's pixels; for a larger one, a scaled-down approximation.
import * as api from './api.js';
import { baseName } from './util.js';
import { normalizeOptions, previewFormat } from './operators.js';
import { drawRaster, parseRaster, sniff } from './raster.js';

const PREVIEW_MAX = 800;
const CACHE_SIZE = 8;

// Gradients of the entry's file, computed once: { width, height, scaled, sq (gx²+gy²), l1 }.
export async function gradients(e) {
  if (e.gradients) return e.gradients;
  if (!e.gradientsPromise) {
    e.gradientsPromise = (async () => {
      const opts = { colorSpaceConversion: 'none', premultiplyAlpha: 'none' };
      let bmp = await createImageBitmap(e.file, opts);
      let scaled = false;
      if (Math.max(bmp.width, bmp.height) > PREVIEW_MAX) {
        const k = PREVIEW_MAX / Math.max(bmp.width, bmp.height);
        const w = Math.max(1, Math.round(bmp.width * k)), h = Math.max(1, Math.round(bmp.height * k));
        const small = await createImageBitmap(bmp, Object.assign({ resizeWidth: w, resizeHeight: h, resizeQuality: 'medium' }, opts));
        if (bmp.close) bmp.close();
        bmp = small;
        scaled = true;
      }
      const w = bmp.width, h = bmp.height;
      const c = new OffscreenCanvas(w, h);
      const ctx = c.getContext('2d', { willReadFrequently: true });
      ctx.drawImage(bmp, 0, 0);
      if (bmp.close) bmp.close();
      const rgba = ctx.getImageData(0, 0, w, h).data;
      const y = new Uint8Array(w * h);
      for (let i = 0, p = 0; i < y.length; i++, p += 4) y[i] = (4899 * rgba[p] + 9617 * rgba[p + 1] + 1868 * rgba[p + 2] + 8192) >> 14;
      const sq = new Int32Array(w * h), l1 = new Int32Array(w * h);
      const idx = (v, n) => (n === 1 ? 0 : v < 0 ? 1 : v >= n ? n - 2 : v);
      for (let r = 0; r < h; r++) {
        const up = idx(r - 1, h) * w, mid = r * w, dn = idx(r + 1, h) * w;
        for (let x = 0; x < w; x++) {
          const l = idx(x - 1, w), rr = idx(x + 1, w);
          const gx = (y[up + rr] + 2 * y[mid + rr] + y[dn + rr]) - (y[up + l] + 2 * y[mid + l] + y[dn + l]);
          const gy = (y[dn + l] + 2 * y[dn + x] + y[dn + rr]) - (y[up + l] + 2 * y[up + x] + y[up + rr]);
          sq[mid + x] = gx * gx + gy * gy;
          l1[mid + x] = Math.abs(gx) + Math.abs(gy);
        }
      }
      e.gradients = { width: w, height: h, scaled, sq, l1, canvas: scaled ? c : null };
      return e.gradients;
    })();
  }
  return e.gradientsPromise;
}

// Draws the filter's output for options o into canvas.
export function drawPreview(canvas, g, o) {
  if (canvas.width !== g.width) canvas.width = g.width;
  if (canvas.height !== g.height) canvas.height = g.height;
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(g.width, g.height);
  const d = img.data;
  const n = g.width * g.height;
  const binary = o.output !== 'magnitude';
  const t = Number(o.threshold);
  for (let i = 0, p = 0; i < n; i++, p += 4) {
    let v;
    if (o.magnitude === 'l1') v = binary ? (g.l1[i] > t ? 255 : 0) : Math.min(255, g.l1[i]);
    else v = binary ? (g.sq[i] > t * t ? 255 : 0) : Math.min(255, Math.round(Math.sqrt(g.sq[i])));
    d[p] = d[p + 1] = d[p + 2] = v; d[p + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

// True when this page computes the preview of options o itself.
export function computedHere(o) {
  return o.kernel === 'sobel' && o.ksize === 3 && (o.output === 'magnitude' || (o.output === 'binary' && o.threshold !== 'otsu'));
}

// The options a preview is asked with: the result's own, as PNG where PNG holds it, else NPY.
export function previewOptions(o) {
  return Object.assign({}, normalizeOptions(o), { format: previewFormat(o), fragments: 'auto' });
}

export class PreviewError extends Error {
  constructor(status, code, message) {
    super(message || `the server answered ${status}`);
    this.status = status;
    this.code = code || '';
  }
}

const pause = (ms, signal) => new Promise((resolve, reject) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason); }, { once: true });
});

// The image a preview is computed from: the file itself when it is small, else the page's copy as a PNG.
async function previewSource(e) {
  const g = await gradients(e);
  if (!g.scaled) return { blob: e.file, name: e.name, g };
  if (!e.previewPng) e.previewPng = g.canvas.convertToBlob({ type: 'image/png' });
  return { blob: await e.previewPng, name: `${baseName(e.name)}-preview.png`, g };
}

// A job that outlasted the upload's wait: its result, read until it is there. Aborting cancels it.
async function laterResult(id, signal) {
  try {
    for (let i = 0; i < 120; i++) {
      await pause(500, signal);
      const r = await api.getResult(id, signal);
      if (r.status === 200) return await r.blob();
      if (r.status !== 202) {
        const err = api.parseError(await r.text().catch(() => '')) || {};
        throw new PreviewError(r.status, err.code, err.message);
      }
    }
    throw new PreviewError(504, 'timeout', 'the server took too long');
  } catch (err) {
    if (signal.aborted) api.cancelJob(id).catch(() => {});
    throw err;
  }
}

// Asks the server for the preview of options o: { kind: 'bitmap' | 'raster', width, height,
// bitmap | raster, scaled, copyWidth, copyHeight }. Throws a PreviewError when it refuses.
export async function serverPreview(e, o, signal) {
  const src = await previewSource(e);
  signal.throwIfAborted();
  const r = await api.sendPreview(src.blob, src.name, previewOptions(o), signal);
  let blob;
  if (r.status === 200) {
    blob = await r.blob();
  } else if (r.status === 202) {
    const j = await r.json().catch(() => null);
    if (!j || typeof j.id !== 'string') throw new PreviewError(202, 'internal', 'the server gave no job id');
    blob = await laterResult(j.id, signal);
  } else {
    const err = api.parseError(await r.text().catch(() => '')) || {};
    throw new PreviewError(r.status, err.code, err.message);
  }
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const base = { scaled: src.g.scaled, copyWidth: src.g.width, copyHeight: src.g.height };
  if (sniff(bytes) === 'png') {
    const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/png' }), { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    return Object.assign(base, { kind: 'bitmap', bitmap, width: bitmap.width, height: bitmap.height });
  }
  const raster = parseRaster(bytes);
  return Object.assign(base, { kind: 'raster', raster, width: raster.width, height: raster.height });
}

// Draws a server's preview into canvas; returns the grey scale of a raster (or null).
export function drawServerPreview(canvas, p) {
  if (p.kind === 'raster') return drawRaster(canvas, p.raster);
  if (canvas.width !== p.width) canvas.width = p.width;
  if (canvas.height !== p.height) canvas.height = p.height;
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, p.width, p.height);
  ctx.drawImage(p.bitmap, 0, 0);
  return null;
}

// Server previews already made for an entry, by options (the latest few).
export function cachedPreview(e, key) { return e.previewCache ? e.previewCache.get(key) || null : null; }
export function keepPreview(e, key, p) {
  if (!e.previewCache) e.previewCache = new Map();
  e.previewCache.delete(key);
  e.previewCache.set(key, p);
  while (e.previewCache.size > CACHE_SIZE) {
    const [oldest, old] = e.previewCache.entries().next().value;
    e.previewCache.delete(oldest);
    if (old.bitmap && old.bitmap.close) old.bitmap.close();
  }
}
