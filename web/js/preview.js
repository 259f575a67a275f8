// Live preview of new options on the page's own copy of the image: the canonical filter
// (BT.601 luma in fixed point, 3×3 Sobel with reflect-101 borders, l1 or l2, binary or
// magnitude) computed here on a copy at most PREVIEW_MAX pixels on a side. For an image that
// small it gives the server's pixels; for a larger one, a scaled-down approximation.
const PREVIEW_MAX = 800;

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
      e.gradients = { width: w, height: h, scaled, sq, l1 };
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
