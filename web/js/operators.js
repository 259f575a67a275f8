// The operators' options as the server takes them (docs/operators.md): their defaults, what
// each kernel can reach, which formats can hold each output, and the one check of a
// combination, with the server's rules, so that a refusal is explained at its field before
// anything is sent. No page elements here: the form, the job list and the words all use it.

export const OUTPUTS = ['binary', 'magnitude', 'magnitude16', 'gx', 'gy', 'direction', 'canny'];
export const KERNELS = ['sobel', 'scharr'];
export const KSIZES = [1, 3, 5, 7];
export const FORMATS = ['png', 'tiff', 'npy'];

// The options of a job when nothing else is said (also what older history entries lack).
export const OPTION_DEFAULTS = Object.freeze({
  output: 'binary', kernel: 'sobel', ksize: 3, magnitude: 'l2', threshold: 100, low: 100, high: 200, format: 'png',
  fragments: 'auto',
});

const isWhole = (v) => Number.isInteger(v) && v >= 0;

// Fills in what an options object lacks (an entry stored by an earlier version of the page, or
// a server that does not report every field) and drops what it cannot mean.
export function normalizeOptions(o) {
  const src = o && typeof o === 'object' ? o : {};
  const d = OPTION_DEFAULTS;
  const pick = (v, list, dflt) => (list.includes(v) ? v : dflt);
  const num = (v, dflt) => { const n = Number(v); return v !== '' && v != null && isWhole(n) ? n : dflt; };
  let threshold = src.threshold === 'otsu' ? 'otsu' : num(src.threshold, d.threshold);
  const output = pick(src.output, OUTPUTS, d.output);
  if (threshold === 'otsu' && output !== 'binary') threshold = d.threshold;
  let fragments = src.fragments;
  if (fragments == null || fragments === 'auto') fragments = 'auto';
  else fragments = num(fragments, 'auto');
  return {
    output,
    kernel: pick(src.kernel, KERNELS, d.kernel),
    ksize: pick(Number(src.ksize), KSIZES, d.ksize),
    magnitude: pick(src.magnitude, ['l2', 'l1'], d.magnitude),
    threshold,
    low: num(src.low, d.low),
    high: num(src.high, d.high),
    format: src.format === 'tif' ? 'tiff' : pick(src.format, FORMATS, d.format),
    fragments,
  };
}

export const usesMagnitude = (output) => ['binary', 'magnitude', 'magnitude16', 'canny'].includes(output);

// The largest |gx| (or |gy|) a kernel gives for 8-bit images: 255 times the sum of the positive
// weights of its 2-D kernel.
export function componentLimit(kernel, ksize) {
  if (kernel === 'scharr') return 255 * 16;
  return { 1: 255, 3: 255 * 4, 5: 255 * 3 * 16, 7: 255 * 10 * 64 }[ksize] || 255 * 4;
}

// ⌈√n⌉ for a whole n below 2^53, exactly.
function ceilSqrt(n) {
  let r = Math.ceil(Math.sqrt(n));
  while (r * r < n) r++;
  while (r > 0 && (r - 1) * (r - 1) >= n) r--;
  return r;
}

// round(√n) for a whole n (never a half-integer).
function roundSqrt(n) {
  let r = Math.round(Math.sqrt(n));
  while ((r + 0.5) * (r + 0.5) < n) r++;
  while (r > 0 && (r - 0.5) * (r - 0.5) > n) r--;
  return r;
}

// The least threshold no magnitude can exceed: 2M (L1) or ⌈√2·M⌉ (L2). A binary threshold or a
// Canny high at or above it is refused: no pixel could be an edge.
export function magnitudeLimit(o) {
  const m = componentLimit(o.kernel, o.ksize);
  return o.magnitude === 'l1' ? 2 * m : ceilSqrt(2 * m * m);
}

// The largest value of the unclipped magnitude (magnitude16).
export function magnitude16Max(o) {
  const m = componentLimit(o.kernel, o.ksize);
  return o.magnitude === 'l1' ? 2 * m : roundSqrt(2 * m * m);
}

// The formats that can hold the output, and why PNG cannot when it cannot.
export function formatsFor(o) {
  if (o.output === 'gx' || o.output === 'gy') return { formats: ['tiff', 'npy'], why: 'signed' };
  if (o.output === 'magnitude16' && magnitude16Max(o) > 65535) return { formats: ['tiff', 'npy'], why: 'wide' };
  return { formats: FORMATS.slice(), why: '' };
}

// How a pixel is stored: { bits, kind: 'bit' | 'u' | 'i' | 'f' }.
export function sampleOf(o) {
  const signedWide = componentLimit(o.kernel, o.ksize) > 32767;
  switch (o.output) {
    case 'binary': case 'canny': return { bits: 1, kind: 'bit' };
    case 'magnitude': return { bits: 8, kind: 'u' };
    case 'magnitude16': return { bits: magnitude16Max(o) > 65535 ? 32 : 16, kind: 'u' };
    case 'gx': case 'gy': return { bits: signedWide ? 32 : 16, kind: 'i' };
    case 'direction': return o.format === 'png' ? { bits: 8, kind: 'u' } : { bits: 32, kind: 'f' };
    default: return { bits: 8, kind: 'u' };
  }
}

// The format the live preview asks the server for: PNG where it can hold the output, else NPY.
export const previewFormat = (o) => (formatsFor(o).formats.includes('png') ? 'png' : 'npy');

export const FORMAT_WORDS = { png: 'PNG', tiff: 'TIFF', npy: 'NPY' };
export const EXTENSIONS = { png: 'png', tiff: 'tif', npy: 'npy' };

export function kernelWords(o) {
  return o.kernel === 'scharr' ? 'Scharr 3 × 3' : `Sobel ${o.ksize} × ${o.ksize}`;
}

const OUTPUT_NOUNS = {
  binary: 'black and white edges', magnitude: 'edge strength in greys', magnitude16: 'unclipped edge strength',
  gx: 'horizontal gradient', gy: 'vertical gradient', direction: 'gradient direction', canny: 'Canny edges',
};

// Every problem of a combination, in the order of the form: [{ option, message }], with the
// option the server would name (ksize, kernel, low, high, threshold, format). Fields that are
// not numbers are NaN (or empty) in o; the strip count is checked by the form.
export function problems(o) {
  const out = [];
  const add = (option, message) => { if (!out.some((p) => p.option === option)) out.push({ option, message }); };
  const limit = magnitudeLimit(o);
  const measure = o.magnitude === 'l1' ? 'approximate' : 'exact';
  const reach = `no ${measure} edge strength of the ${kernelWords(o)} kernel reaches ${limit}, so no pixel could be an edge`;
  if (o.output === 'binary' && o.threshold !== 'otsu') {
    const t = o.threshold;
    if (!isWhole(t)) add('threshold', `Enter a whole number from 0 to ${limit - 1}.`);
    else if (t >= limit) add('threshold', `Enter a whole number from 0 to ${limit - 1}: ${reach}.`);
  }
  if (o.threshold === 'otsu' && o.output !== 'binary') add('threshold', 'Otsu’s threshold is for black and white edges only.');
  if (o.output === 'canny') {
    if (!isWhole(o.low)) add('low', 'Enter a whole number for the low threshold.');
    if (!isWhole(o.high)) add('high', `Enter a whole number from 0 to ${limit - 1} for the high threshold.`);
    if (isWhole(o.low) && isWhole(o.high) && o.low > o.high) add('low', `The low threshold must not be above the high one (${o.high}).`);
    if (isWhole(o.high) && o.high >= limit) add('high', `Enter a high threshold from 0 to ${limit - 1}: ${reach}.`);
  }
  if (!KSIZES.includes(o.ksize)) add('ksize', 'Choose a size of 1, 3, 5 or 7.');
  else if (o.kernel === 'scharr' && o.ksize !== 3) add('ksize', 'The Scharr kernel is 3 × 3 only: choose size 3, or the Sobel kernel.');
  if (o.output === 'canny') {
    if (o.kernel !== 'sobel') add('kernel', 'Canny edges are found with the Sobel kernel (as OpenCV does): choose Sobel.');
    if (o.ksize === 1) add('ksize', 'Canny edges need a kernel size of 3, 5 or 7.');
  }
  const { formats, why } = formatsFor(o);
  if (!formats.includes(o.format)) {
    add('format', why === 'signed'
      ? `PNG cannot hold the ${OUTPUT_NOUNS[o.output]}: its values are signed. Choose TIFF or NPY.`
      : 'PNG cannot hold this edge strength: with size 7 it goes past 16 bits. Choose TIFF or NPY.');
  }
  return out;
}

export const outputNoun = (output) => OUTPUT_NOUNS[output] || output;
