// The options form: reading and checking the fields (errors shown at the field, marked invalid),
// the threshold slider's range for the chosen measure, the summary on the options disclosure,
// and remembering the choice in this browser.
import { $, store, announce } from './util.js';
import { optionsShort } from './words.js';

const KEY_OPTS = 'dsobel.options.v1';
export const DEFAULTS = { output: 'binary', threshold: 100, magnitude: 'l2', fragments: 'auto', fragmentsN: 4 };
// The largest magnitude each measure can give for 8-bit images: |gx| + |gy| ≤ 2040, √(gx² + gy²) ≤ 1443.
const THRESHOLD_TOP = { l1: 2040, l2: 1443 };

const form = $('opts');
const thr = $('threshold');
const thrRange = $('threshold-range');
const fragN = $('fragments-n');
const listeners = [];

const radio = (name) => { const r = form.querySelector(`input[name="${name}"]:checked`); return r ? r.value : null; };
function setRadio(name, value) {
  const r = form.querySelector(`input[name="${name}"][value="${value}"]`);
  if (r) r.checked = true;
}

export function onOptionsChange(fn) { listeners.push(fn); }
function changed(source) { save(); showSummary(); for (const fn of listeners) fn(source); }

export function applyOptions(o) {
  setRadio('output', o.output === 'magnitude' ? 'magnitude' : 'binary');
  setRadio('magnitude', o.magnitude === 'l1' ? 'l1' : 'l2');
  const t = Number.isInteger(o.threshold) && o.threshold >= 0 && o.threshold <= 65535 ? o.threshold : DEFAULTS.threshold;
  thr.value = String(t);
  setRadio('fragments', o.fragments === 'fixed' ? 'fixed' : 'auto');
  fragN.value = String(Number.isInteger(o.fragmentsN) && o.fragmentsN >= 1 ? o.fragmentsN : DEFAULTS.fragmentsN);
  syncUi();
  check(false);
  showSummary();
}

function syncUi() {
  const magnitudeOut = radio('output') === 'magnitude';
  thr.disabled = magnitudeOut;
  thrRange.disabled = magnitudeOut;
  $('thr-field').setAttribute('aria-disabled', String(magnitudeOut));
  $('thr-hint').textContent = magnitudeOut
    ? 'Not used for edge strength in greys: every pixel shows its strength.'
    : 'Lower finds fainter edges, higher keeps only strong ones. Default 100.';
  fragN.disabled = radio('fragments') !== 'fixed';
  thrRange.max = String(THRESHOLD_TOP[radio('magnitude')] || THRESHOLD_TOP.l2);
  const v = Number(thr.value);
  if (Number.isFinite(v)) thrRange.value = String(Math.min(Math.max(v, 0), Number(thrRange.max)));
}

export function formState() {
  return {
    output: radio('output'), magnitude: radio('magnitude'), threshold: thr.value.trim() === '' ? NaN : Number(thr.value),
    fragments: radio('fragments'), fragmentsN: Number(fragN.value),
  };
}

function mark(input, errorEl, problem) {
  if (problem) {
    errorEl.textContent = problem; errorEl.hidden = false; input.setAttribute('aria-invalid', 'true');
  } else {
    errorEl.hidden = true; errorEl.textContent = ''; input.removeAttribute('aria-invalid');
  }
}

// Checks the fields and marks the wrong ones. Returns true when all are valid.
function check(focus) {
  const f = formState();
  const thrProblem = f.output === 'binary' && (!Number.isInteger(f.threshold) || f.threshold < 0 || f.threshold > 65535)
    ? 'Enter a whole number from 0 to 65535.' : null;
  const fragProblem = f.fragments === 'fixed' && (!Number.isInteger(f.fragmentsN) || f.fragmentsN < 1 || f.fragmentsN > 1024)
    ? 'Enter a whole number of strips from 1 to 1024.' : null;
  mark(thr, $('thr-error'), thrProblem);
  mark(fragN, $('frag-error'), fragProblem);
  if (focus && (thrProblem || fragProblem)) {
    $('opts-box').open = true;
    (thrProblem ? thr : fragN).focus();
  }
  return !thrProblem && !fragProblem;
}

// The API options, or null (with the wrong field marked and focused) when a field is not valid.
export function readOptions(focus = true) {
  if (!check(focus)) return null;
  const f = formState();
  return {
    threshold: Number.isInteger(f.threshold) ? f.threshold : DEFAULTS.threshold, magnitude: f.magnitude, output: f.output,
    fragments: f.fragments === 'fixed' ? f.fragmentsN : 'auto',
  };
}

export const optionsValid = () => readOptions(false) != null;

function save() { store.set(KEY_OPTS, formState()); }

function showSummary() {
  const o = readOptions(false);
  $('opts-summary').textContent = o ? optionsShort(o) : 'check the options';
}

export function sameOptions(a, b) {
  if (!a || !b) return false;
  const t = (o) => (o.output === 'magnitude' ? null : Number(o.threshold));
  return a.output === b.output && a.magnitude === b.magnitude && t(a) === t(b);
}

export function initOptions() {
  applyOptions(Object.assign({}, DEFAULTS, store.get(KEY_OPTS, {}) || {}));
  thrRange.addEventListener('input', () => { thr.value = thrRange.value; check(false); changed('threshold'); });
  thr.addEventListener('input', () => {
    const v = Number(thr.value);
    if (thr.value.trim() !== '' && Number.isFinite(v)) thrRange.value = String(Math.min(Math.max(v, 0), Number(thrRange.max)));
    check(false);
    changed('threshold');
  });
  form.addEventListener('change', (ev) => {
    if (ev.target === thr || ev.target === thrRange) return;
    syncUi(); check(false); changed(ev.target.name || 'form');
  });
  form.addEventListener('submit', (ev) => ev.preventDefault());
  $('reset-opts').addEventListener('click', () => {
    applyOptions(DEFAULTS); changed('reset'); announce('Options reset to defaults.');
  });
  // On a narrow screen the options start folded, so that the job shows right under the picker.
  if (window.matchMedia('(max-width: 959px)').matches) $('opts-box').open = false;
}
