// Result files the browser cannot show by itself: NPY (NumPy 1.0–3.0) and baseline TIFF
// (uncompressed, one sample per pixel), read into their values and drawn as a grey image
// scaled to their range: unsigned from 0 (black) to the largest value (white), signed with
// mid-grey at 0, floats from the smallest to the largest value. 8-bit and 1-bit images are
// drawn as they are. The file itself is never changed: the drawing is only a view of it.

const HOST_LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// dtype: { kind: 'u' | 'i' | 'f' | 'b' (bits, 1 = 0/255), bytes }.
const TYPED = {
  u1: Uint8Array, u2: Uint16Array, u4: Uint32Array, i1: Int8Array, i2: Int16Array, i4: Int32Array, f4: Float32Array, f8: Float64Array,
};
const GETTER = {
  u1: 'getUint8', u2: 'getUint16', u4: 'getUint32', i1: 'getInt8', i2: 'getInt16', i4: 'getInt32', f4: 'getFloat32', f8: 'getFloat64',
};

// count samples of type code ('u2'...) from bytes at offset, in the file's byte order.
function samples(bytes, offset, count, code, little) {
  const size = Number(code.slice(1));
  const end = offset + count * size;
  if (end > bytes.length) throw new Error(`the file ends early: ${bytes.length} bytes, ${end} needed`);
  if (size === 1 || little === HOST_LITTLE) {
    const copy = bytes.slice(offset, end); // a fresh, aligned buffer
    return new TYPED[code](copy.buffer, copy.byteOffset, count);
  }
  const out = new TYPED[code](count);
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, count * size);
  const get = GETTER[code];
  for (let i = 0; i < count; i++) out[i] = view[get](i * size, little);
  return out;
}

// Sniffs the format of a result file: 'png', 'tiff', 'npy' or null.
export function sniff(bytes) {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'png';
  if (bytes.length >= 6 && bytes[0] === 0x93 && String.fromCharCode(...bytes.subarray(1, 6)) === 'NUMPY') return 'npy';
  if (bytes.length >= 4 && ((bytes[0] === 0x49 && bytes[1] === 0x49 && bytes[2] === 42 && bytes[3] === 0)
    || (bytes[0] === 0x4d && bytes[1] === 0x4d && bytes[2] === 0 && bytes[3] === 42))) return 'tiff';
  return null;
}

// An NPY file: { width, height, code ('<i2' → 'i2'), values }.
export function parseNpy(bytes) {
  if (sniff(bytes) !== 'npy') throw new Error('not an NPY file');
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major >= 2 ? view.getUint32(8, true) : view.getUint16(8, true);
  const start = major >= 2 ? 12 : 10;
  const header = new TextDecoder(major >= 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([<>|=]?)([a-z])(\d+)'/.exec(header);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  const fortran = /'fortran_order'\s*:\s*True/.test(header);
  if (!descr || !shape) throw new Error(`an NPY header this page does not read: ${header.trim()}`);
  let kind = descr[2];
  if (kind === 'b') kind = 'u'; // booleans are bytes of 0 or 1
  const code = `${kind}${descr[3]}`;
  if (!TYPED[code]) throw new Error(`NPY samples of type ${descr[0]} are not shown here`);
  const dims = shape[1].split(',').map((d) => d.trim()).filter(Boolean).map(Number);
  if (dims.length !== 2 || !dims.every((d) => Number.isInteger(d) && d > 0)) throw new Error(`an NPY array of shape (${shape[1]}) is not an image`);
  const [height, width] = dims;
  let values = samples(bytes, start + headerLen, width * height, code, descr[1] !== '>');
  if (fortran) {
    const t = new TYPED[code](width * height);
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) t[y * width + x] = values[x * height + y];
    values = t;
  }
  if (descr[2] === 'b') values = values.map((v) => (v ? 255 : 0));
  return { width, height, code, bits: Number(descr[3]) * 8, values, format: 'npy' };
}

// A baseline TIFF's first image: { width, height, code, bits, values }; 1-bit images come as
// bytes of 0 and 255.
export function parseTiff(bytes) {
  if (sniff(bytes) !== 'tiff') throw new Error('not a TIFF file');
  const little = bytes[0] === 0x49;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ifd = view.getUint32(4, little);
  const n = view.getUint16(ifd, little);
  const TYPE_SIZE = { 1: 1, 3: 2, 4: 4, 16: 8 };
  const tags = new Map();
  for (let i = 0; i < n; i++) {
    const at = ifd + 2 + i * 12;
    const tag = view.getUint16(at, little), type = view.getUint16(at + 2, little), count = view.getUint32(at + 4, little);
    const size = TYPE_SIZE[type];
    if (!size) continue;
    const where = size * count <= 4 ? at + 8 : view.getUint32(at + 8, little);
    const list = [];
    for (let k = 0; k < count; k++) {
      const p = where + k * size;
      list.push(size === 1 ? view.getUint8(p) : size === 2 ? view.getUint16(p, little) : size === 4 ? view.getUint32(p, little) : Number(view.getBigUint64(p, little)));
    }
    tags.set(tag, list);
  }
  const one = (tag, dflt) => (tags.has(tag) ? tags.get(tag)[0] : dflt);
  const width = one(256), height = one(257);
  const bits = one(258, 1), format = one(339, 1), photometric = one(262, 1), compression = one(259, 1), spp = one(277, 1);
  if (!width || !height) throw new Error('a TIFF without its size');
  if (compression !== 1) throw new Error(`compressed TIFF (${compression}) is not shown here`);
  if (spp !== 1) throw new Error('TIFF with several samples per pixel is not shown here');
  const offsets = tags.get(273) || [], counts = tags.get(279) || [];
  const rowBytes = bits === 1 ? Math.ceil(width / 8) : width * (bits / 8);
  const data = new Uint8Array(rowBytes * height);
  let filled = 0;
  for (let s = 0; s < offsets.length && filled < data.length; s++) {
    const len = Math.min(counts[s] ?? data.length - filled, data.length - filled);
    if (offsets[s] + len > bytes.length) throw new Error('the TIFF ends early');
    data.set(bytes.subarray(offsets[s], offsets[s] + len), filled);
    filled += len;
  }
  if (filled < data.length) throw new Error('the TIFF holds fewer rows than it says');
  if (bits === 1) {
    const values = new Uint8Array(width * height);
    const on = photometric === 0 ? 0 : 255;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) values[y * width + x] = (data[y * rowBytes + (x >> 3)] >> (7 - (x & 7))) & 1 ? on : 255 - on;
    }
    return { width, height, code: 'u1', bits: 1, values, format: 'tiff' };
  }
  const kind = format === 3 ? 'f' : format === 2 ? 'i' : 'u';
  const code = `${kind}${bits / 8}`;
  if (!TYPED[code]) throw new Error(`TIFF samples of ${bits} bits (${kind}) are not shown here`);
  return { width, height, code, bits, values: samples(data, 0, width * height, code, little), format: 'tiff' };
}

export function parseRaster(bytes) {
  const kind = sniff(bytes);
  if (kind === 'npy') return parseNpy(bytes);
  if (kind === 'tiff') return parseTiff(bytes);
  throw new Error('not an NPY or TIFF file');
}

// Grey RGBA pixels of a raster, and the scale used: { pixels, lo, hi, signed }.
export function greyPixels(r) {
  const { values } = r;
  const n = r.width * r.height;
  const pixels = new Uint8ClampedArray(n * 4);
  const signed = r.code[0] === 'i';
  const float = r.code[0] === 'f';
  let lo = 0, hi = 255;
  if (r.code === 'u1') {
    for (let i = 0, p = 0; i < n; i++, p += 4) { pixels[p] = pixels[p + 1] = pixels[p + 2] = values[i]; pixels[p + 3] = 255; }
    return { pixels, lo: 0, hi: 255, signed: false, exact: true };
  }
  let min = Infinity, max = -Infinity;
  for (let i = 0; i < n; i++) { const v = values[i]; if (v < min) min = v; if (v > max) max = v; }
  if (!Number.isFinite(min)) { min = 0; max = 0; }
  let map;
  if (signed) {
    const m = Math.max(1, Math.abs(min), Math.abs(max));
    lo = -m; hi = m;
    map = (v) => 128 + (v * 127) / m;
  } else if (float) {
    lo = min; hi = max;
    const span = max - min || 1;
    map = (v) => (Number.isFinite(v) ? ((v - min) * 255) / span : 0);
  } else {
    lo = 0; hi = Math.max(1, max);
    map = (v) => (v * 255) / hi;
  }
  for (let i = 0, p = 0; i < n; i++, p += 4) {
    pixels[p] = pixels[p + 1] = pixels[p + 2] = Math.round(map(values[i]));
    pixels[p + 3] = 255;
  }
  return { pixels, lo, hi, signed, exact: false, min, max };
}

// Draws a raster into a canvas (resized to it); returns the scale.
export function drawRaster(canvas, r) {
  const g = greyPixels(r);
  if (canvas.width !== r.width) canvas.width = r.width;
  if (canvas.height !== r.height) canvas.height = r.height;
  canvas.getContext('2d').putImageData(new ImageData(g.pixels, r.width, r.height), 0, 0);
  return g;
}

// A PNG of the grey view of a result file: { blob, raster info } for the viewer.
export async function renderRaster(blob) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const r = parseRaster(bytes);
  const canvas = new OffscreenCanvas(r.width, r.height);
  const g = greyPixels(r);
  canvas.getContext('2d').putImageData(new ImageData(g.pixels, r.width, r.height), 0, 0);
  const png = await canvas.convertToBlob({ type: 'image/png' });
  return {
    blob: png,
    info: { width: r.width, height: r.height, code: r.code, bits: r.bits, format: r.format, lo: g.lo, hi: g.hi, signed: g.signed, exact: g.exact, min: g.min, max: g.max },
  };
}

const TYPE_WORDS = { u: 'unsigned', i: 'signed', f: 'floating-point' };
const fmtNum = (v) => (Number.isInteger(v) ? v.toLocaleString('en') : Number(v.toPrecision(6)).toLocaleString('en', { maximumFractionDigits: 4 }));

// What the drawing of a raster shows, in words.
export function rasterWords(info) {
  const file = info.format === 'npy' ? 'NPY' : 'TIFF';
  if (info.exact) {
    return info.bits === 1 ? `The ${file} file holds black and white pixels, shown as they are.`
      : `The ${file} file holds 8-bit values, shown as they are.`;
  }
  const kind = `${info.bits}-bit ${TYPE_WORDS[info.code[0]] || ''}`.trim();
  if (info.signed) return `The ${file} file holds ${kind} values from ${fmtNum(info.min)} to ${fmtNum(info.max)}, shown with mid-grey at 0, black at −${fmtNum(info.hi)} and white at +${fmtNum(info.hi)}.`;
  if (info.code[0] === 'f') return `The ${file} file holds ${kind} values from ${fmtNum(info.min)} to ${fmtNum(info.max)}, shown from black to white.`;
  return `The ${file} file holds ${kind} values up to ${fmtNum(info.max)}, shown from black (0) to white (${fmtNum(info.hi)}).`;
}
