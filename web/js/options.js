// The options form: reading and checking the fields (errors shown at the field, marked invalid,
// with the server's rules from operators.js), showing only the fields that apply to the chosen
// result, the threshold slider's range for the chosen kernel and measure, the formats that can
// hold the result, the summary on the options disclosure, and remembering the choice in this
// browser.
import { $, store, announce } from './util.js';
import { optionsShort } from './words.js';
import {
  FORMAT_WORDS, formatsFor, kernelWords, magnitudeLimit, normalizeOptions, outputNoun, problems, usesMagnitude,
} from './operators.js';

const KEY_OPTS = 'dsobel.options.v1';
export const DEFAULTS = {
  output: 'binary', threshold: 100, otsu: false, magnitude: 'l2', kernel: 'sobel', ksize: 3, low: 100, high: 200, format: 'png',
  fragments: 'auto', fragmentsN: 4,
};

const form = $('opts');
const thr = $('threshold');
const thrRange = $('threshold-range');
const otsu = $('otsu');
const low = $('canny-low');
const high = $('canny-high');
const fragN = $('fragments-n');
const listeners = [];
// The format the user chose, while another one stands in because it cannot hold the result
// (PNG for a signed gradient): it comes back once the result allows it.
let formatWanted = null;

const radio = (name) => { const r = form.querySelector(`input[name="${name}"]:checked`); return r ? r.value : null; };
function setRadio(name, value) {
  const r = form.querySelector(`input[name="${name}"][value="${value}"]`);
  if (r) r.checked = true;
}
const numberOf = (input) => (input.value.trim() === '' ? NaN : Number(input.value));

export function onOptionsChange(fn) { listeners.push(fn); }
function changed(source) { save(); showSummary(); for (const fn of listeners) fn(source); }

export function applyOptions(o) {
  const n = normalizeOptions(o);
  setRadio('output', n.output);
  setRadio('magnitude', n.magnitude);
  setRadio('kernel', n.kernel);
  setRadio('ksize', String(n.ksize));
  setRadio('format', n.format);
  const t = Number.isInteger(o.threshold) && o.threshold >= 0 ? o.threshold : DEFAULTS.threshold;
  thr.value = String(t);
  otsu.checked = o.otsu === true || o.threshold === 'otsu';
  low.value = String(n.low);
  high.value = String(n.high);
  setRadio('fragments', o.fragments === 'fixed' || Number.isInteger(o.fragments) ? 'fixed' : 'auto');
  const frag = Number.isInteger(o.fragmentsN) ? o.fragmentsN : Number.isInteger(o.fragments) ? o.fragments : DEFAULTS.fragmentsN;
  fragN.value = String(frag >= 1 ? frag : DEFAULTS.fragmentsN);
  formatWanted = null;
  syncUi(true);
  check(false);
  showSummary();
}

function setHidden(el, hidden) { if (el.hidden !== hidden) el.hidden = hidden; }

// Shows the fields that apply to the chosen result and disables the others; keeps the format
// to one that can hold the result (quiet: without saying so).
function syncUi(quiet = false) {
  const output = radio('output');
  const binary = output === 'binary';
  const canny = output === 'canny';
  const o = { output, kernel: radio('kernel'), ksize: Number(radio('ksize')), magnitude: radio('magnitude') };
  const limit = magnitudeLimit(o);

  // Threshold: black and white edges only; a number, or Otsu's choice.
  setHidden($('thr-field'), canny);
  otsu.disabled = !binary;
  thr.disabled = !binary || otsu.checked;
  thrRange.disabled = thr.disabled;
  $('thr-field').setAttribute('aria-disabled', String(!binary));
  let thrHint;
  if (!binary) thrHint = `Not used for ${outputNoun(output)}: every pixel shows its value.`;
  else if (otsu.checked) thrHint = 'The server picks the threshold from the image’s edge strengths (Otsu’s method), and says which it used.';
  else thrHint = `Lower finds fainter edges, higher keeps only strong ones, up to ${limit - 1} for this kernel. Default 100.`;
  $('thr-hint').textContent = thrHint;
  thrRange.max = String(limit - 1);
  thr.max = String(limit - 1);
  const v = Number(thr.value);
  if (thr.value.trim() !== '' && Number.isFinite(v)) thrRange.value = String(Math.min(Math.max(v, 0), limit - 1));

  // Canny's two thresholds.
  setHidden($('canny-field'), !canny);
  high.max = String(limit - 1);

  // The measure of strength: not used by the gradients and the direction.
  const measured = usesMagnitude(output);
  $('magnitude-field').disabled = !measured;
  $('magnitude-field').setAttribute('aria-disabled', String(!measured));
  setHidden($('magnitude-hint'), measured);
  $('magnitude-hint').textContent = measured ? '' : `Not used for the ${outputNoun(output)}.`;

  // Formats: PNG cannot hold a signed gradient, nor an unclipped strength past 16 bits.
  const { formats, why } = formatsFor(o);
  for (const r of form.querySelectorAll('input[name="format"]')) r.disabled = !formats.includes(r.value);
  const chosen = radio('format');
  if (!formats.includes(chosen)) {
    if (!formatWanted) formatWanted = chosen;
    setRadio('format', 'npy');
    if (!quiet) announce(`${FORMAT_WORDS[chosen]} cannot hold the ${outputNoun(output)}: the format is now NPY.`);
  } else if (formatWanted && formats.includes(formatWanted)) {
    if (formatWanted !== chosen) setRadio('format', formatWanted);
    formatWanted = null;
  }
  let formatHint = 'PNG shows in any browser; TIFF and NPY keep the exact values for other tools.';
  if (why === 'signed') formatHint = `The ${outputNoun(output)} is signed, which PNG cannot hold: TIFF or NPY. The page shows a rendering.`;
  else if (why === 'wide') formatHint = `With ${kernelWords(o)} the unclipped strength goes past 16 bits, which PNG cannot hold: TIFF or NPY.`;
  else if (output === 'direction') formatHint = 'PNG holds the angle in 256 steps of 1.4°; TIFF and NPY hold it exactly, in degrees.';
  $('format-hint').textContent = formatHint;

  fragN.disabled = radio('fragments') !== 'fixed';
}

// What the fields say, as typed (numbers may be NaN).
export function formState() {
  return {
    output: radio('output'), magnitude: radio('magnitude'), threshold: numberOf(thr), otsu: otsu.checked,
    kernel: radio('kernel'), ksize: Number(radio('ksize')), low: numberOf(low), high: numberOf(high), format: radio('format'),
    fragments: radio('fragments'), fragmentsN: Number(fragN.value),
  };
}

// The operator's options the fields ask for, before checking.
function asked(f) {
  return {
    output: f.output, kernel: f.kernel, ksize: f.ksize, magnitude: f.magnitude,
    threshold: f.output === 'binary' && f.otsu ? 'otsu' : f.threshold, low: f.low, high: f.high, format: f.format,
  };
}

// Shows a field's problem in its error paragraph; text inputs are marked invalid, a group of
// choices is outlined (its error is part of its description).
function mark(errorEl, problem, { inputs = [], group = null } = {}) {
  errorEl.hidden = !problem;
  errorEl.textContent = problem || '';
  for (const input of inputs) markInput(input, problem);
  if (group) group.classList.toggle('invalid', !!problem);
}
function markInput(input, problem) {
  if (problem) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
}

// Checks the fields and marks the wrong ones. Returns true when all are valid.
function check(focus) {
  const f = formState();
  const found = problems(asked(f));
  const about = (option) => { const p = found.find((x) => x.option === option); return p ? p.message : null; };
  const fragProblem = f.fragments === 'fixed' && (!Number.isInteger(f.fragmentsN) || f.fragmentsN < 1 || f.fragmentsN > 1024)
    ? 'Enter a whole number of strips from 1 to 1024.' : null;
  const lowProblem = about('low'), highProblem = about('high');
  mark($('thr-error'), about('threshold'), { inputs: [thr] });
  mark($('canny-error'), [lowProblem, highProblem].filter(Boolean).join(' ') || null);
  markInput(low, lowProblem);
  markInput(high, highProblem);
  mark($('kernel-error'), about('kernel'), { group: $('kernel-field') });
  mark($('ksize-error'), about('ksize'), { group: $('ksize-field') });
  mark($('format-error'), about('format'), { group: $('format-field') });
  mark($('frag-error'), fragProblem, { inputs: [fragN] });
  const wrong = [
    [about('threshold'), thr], [lowProblem, low], [highProblem, high],
    [about('kernel'), form.querySelector('input[name="kernel"]:checked')],
    [about('ksize'), form.querySelector('input[name="ksize"]:checked')],
    [about('format'), form.querySelector('input[name="format"]:checked')],
    [fragProblem, fragN],
  ].find(([p]) => p);
  if (focus && wrong) {
    $('opts-box').open = true;
    wrong[1].focus();
  }
  return !wrong;
}

// The API options, or null (with the wrong field marked and focused) when a field is not valid.
export function readOptions(focus = true) {
  if (!check(focus)) return null;
  const f = formState();
  const o = normalizeOptions(asked(f));
  // Fields the result does not use keep their defaults' meaning rather than a half-typed value.
  if (o.output !== 'binary' && !Number.isInteger(f.threshold)) o.threshold = DEFAULTS.threshold;
  o.fragments = f.fragments === 'fixed' ? f.fragmentsN : 'auto';
  return o;
}

export const optionsValid = () => readOptions(false) != null;

function save() { store.set(KEY_OPTS, formState()); }

function showSummary() {
  const o = readOptions(false);
  $('opts-summary').textContent = o ? optionsShort(o) : 'check the options';
}

// True when the two sets of options give the same result file.
export function sameOptions(a, b) {
  if (!a || !b) return false;
  const x = normalizeOptions(a), y = normalizeOptions(b);
  if (x.output !== y.output || x.kernel !== y.kernel || x.ksize !== y.ksize || x.format !== y.format) return false;
  if (usesMagnitude(x.output) && x.magnitude !== y.magnitude) return false;
  if (x.output === 'binary' && String(x.threshold) !== String(y.threshold)) return false;
  if (x.output === 'canny' && (x.low !== y.low || x.high !== y.high)) return false;
  return true;
}

export function initOptions() {
  applyOptions(Object.assign({}, DEFAULTS, store.get(KEY_OPTS, {}) || {}));
  thrRange.addEventListener('input', () => { thr.value = thrRange.value; check(false); changed('threshold'); });
  const typed = (source) => () => {
    if (source === 'threshold') {
      const v = Number(thr.value);
      if (thr.value.trim() !== '' && Number.isFinite(v)) thrRange.value = String(Math.min(Math.max(v, 0), Number(thrRange.max)));
    }
    check(false);
    changed(source);
  };
  thr.addEventListener('input', typed('threshold'));
  low.addEventListener('input', typed('low'));
  high.addEventListener('input', typed('high'));
  form.addEventListener('change', (ev) => {
    if ([thr, thrRange, low, high].includes(ev.target)) return;
    if (ev.target.name === 'format') formatWanted = null;
    syncUi(); check(false); changed(ev.target.name || ev.target.id || 'form');
  });
  form.addEventListener('submit', (ev) => ev.preventDefault());
  $('reset-opts').addEventListener('click', () => {
    applyOptions(DEFAULTS); changed('reset'); announce('Options reset to defaults.');
  });
  // On a narrow screen the options start folded, so that the job shows right under the picker.
  if (window.matchMedia('(max-width: 959px)').matches) $('opts-box').open = false;
}
