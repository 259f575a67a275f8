// Worker: shrinks a result PNG for display by taking the brightest pixel of each block (max
// pooling), so that a 1-pixel edge survives any downscaling instead of fading into a hairline.
// Works in bands of rows to keep memory small. Message in: { id, key, blob, width, height };
// out: { id, key, width, height, pixels } (RGBA, transferred) or { id, error }.
self.onmessage = async (ev) => {
  const { id, key, blob, width: tw, height: th } = ev.data;
  try {
    const bmp = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    const sw = bmp.width, sh = bmp.height;
    // Source columns of each target column: [x0[t], x1[t]).
    const x0 = new Int32Array(tw), x1 = new Int32Array(tw);
    for (let t = 0; t < tw; t++) {
      x0[t] = Math.floor((t * sw) / tw);
      x1[t] = Math.max(x0[t] + 1, Math.min(sw, Math.ceil(((t + 1) * sw) / tw)));
    }
    const out = new Uint8ClampedArray(tw * th * 4);
    const band = 64; // target rows per band
    const canvas = new OffscreenCanvas(sw, 1);
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    for (let t0 = 0; t0 < th; t0 += band) {
      const t1 = Math.min(th, t0 + band);
      const y0 = Math.floor((t0 * sh) / th);
      const y1 = Math.max(y0 + 1, Math.min(sh, Math.ceil((t1 * sh) / th)));
      if (canvas.height !== y1 - y0) canvas.height = y1 - y0;
      ctx.clearRect(0, 0, sw, y1 - y0);
      ctx.drawImage(bmp, 0, y0, sw, y1 - y0, 0, 0, sw, y1 - y0);
      const src = ctx.getImageData(0, 0, sw, y1 - y0).data;
      for (let ty = t0; ty < t1; ty++) {
        const a = Math.floor((ty * sh) / th);
        const b = Math.max(a + 1, Math.min(sh, Math.ceil(((ty + 1) * sh) / th)));
        for (let tx = 0; tx < tw; tx++) {
          let m = 0;
          for (let y = a; y < b; y++) {
            const row = (y - y0) * sw * 4;
            for (let x = x0[tx], e = x1[tx]; x < e; x++) { const v = src[row + x * 4]; if (v > m) m = v; }
          }
          const o = (ty * tw + tx) * 4;
          out[o] = out[o + 1] = out[o + 2] = m; out[o + 3] = 255;
        }
      }
    }
    if (bmp.close) bmp.close();
    self.postMessage({ id, key, width: tw, height: th, pixels: out }, [out.buffer]);
  } catch (err) {
    self.postMessage({ id, error: String(err && err.message || err) });
  }
};
