// Batches between storage locations: every image under one location of object storage (a
// bucket, or a folder on the server) turned into edges under another, the server's workers
// reading and writing the files themselves. The form (where from, where to, with the locations
// this server allows offered and listed), starting a batch with the options of the options
// form, following it live (progress bar, counts, speed, time left), cancelling it, refusals
// with their code, and the manifest once it ends. The last batch and its locations are kept
// in this browser, so a reload follows it on. (js/batch.js is another thing: several local
// files uploaded at once.)
import { $, announce, fmtInt, store } from './util.js';
import * as api from './api.js';
import { onOptionsChange, readOptions } from './options.js';
import { EXTENSIONS, FORMAT_WORDS } from './operators.js';
import { optionsMedium } from './words.js';

const KEY = 'dsobel.storeBatch.v1';
const OVER = new Set(['done', 'failed', 'cancelled']);
const STATE_WORDS = {
  listing: 'Finding the images', running: 'Running', done: 'Done', failed: 'Failed', cancelled: 'Cancelled',
};
const BADGES = { listing: 'running', running: 'running', done: 'done', failed: 'failed', cancelled: 'waiting' };

// What a refusal means, in plain words; the server's own message and code are shown below it.
const REFUSALS = {
  'store-not-allowed': 'This location is not allowed',
  'store-not-found': 'This location does not exist',
  'store-unauthorized': 'The server may not use this storage',
  'store-unavailable': 'The storage does not answer',
  'invalid-option': 'An option was refused',
  'unsupported-output-format': 'This file format cannot hold the result',
  unauthorized: 'This server needs an API key',
  'too-busy': 'The server is busy',
  'rate-limited': 'Too many requests',
};

const form = $('sb-form');
const source = $('sb-source');
const dest = $('sb-dest');

let roots = null;       // the locations this server allows (null: not known, or no batches)
let batch = null;       // the batch shown: { id, manifest, source, destination, status }
let stream = null;      // its event stream while it runs
let retryTimer = 0;
let pending = null;     // { body, key }: a start whose answer did not arrive, sent again with the same key
let starting = false;
let cancelling = false;

const isOver = () => !!(batch && batch.status && OVER.has(batch.status.state));
const running = () => !!batch && !isOver();

function save() {
  store.set(KEY, {
    source: source.value.trim(), destination: dest.value.trim(),
    id: batch ? batch.id : null, manifest: batch ? batch.manifest : null,
  });
}

// ---------- formatting ----------

function fmtRate(r) {
  if (r == null || !isFinite(r) || r <= 0) return '–';
  if (r < 1) return `${fmtInt(Math.max(1, Math.round(r * 60)))} a minute`;
  return `${r >= 10 ? fmtInt(Math.round(r)) : r.toFixed(1)} a second`;
}

function fmtDuration(secs) {
  if (secs == null || !isFinite(secs) || secs < 0) return '–';
  const s = Math.round(secs);
  if (s < 1) return 'under a second';
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

const plural = (n, one, many) => `${fmtInt(n)} ${n === 1 ? one : many}`;

// ---------- the form ----------

// The locations this server allows, from /api/limits (null when the page could not ask).
export function showStores(limits) {
  roots = limits && Array.isArray(limits.batch_stores) ? limits.batch_stores.map(String) : null;
  const on = !!(roots && roots.length);
  let why = '';
  if (!limits) {
    why = 'The page could not ask the server whether it runs batches. If the server needs an API key, save it under “API key”; otherwise reload the page.';
  } else if (!on) {
    why = 'Batches are turned off on this server: it allows no storage locations. Whoever runs the server can allow some with --batch-stores.';
  }
  const off = $('sb-off');
  off.textContent = why;
  off.hidden = on;
  $('sb-fields').disabled = !on;
  $('sb-start').disabled = !on;   // itself too: a disabled button, not only a faded one
  const list = $('sb-roots');
  list.replaceChildren(...(roots || []).map((r) => Object.assign(document.createElement('option'), { value: r })));
  const hint = $('sb-roots-hint');
  hint.replaceChildren();
  hint.hidden = !on;
  if (on) {
    hint.append(roots.length === 1 ? 'The allowed location, and the folders under it: ' : 'The allowed locations, and the folders under them: ');
    roots.forEach((r, i) => {
      if (i) hint.append(', ');
      hint.append(Object.assign(document.createElement('code'), { textContent: r }));
    });
    hint.append('. Each box offers them as you type.');
    const base = roots[0].replace(/\/+$/, '');
    source.placeholder = `${base}/photos`;
    dest.placeholder = `${base}/edges`;
  }
  setButtons();
}

// The options the batch takes: those of the options form, summed up under the locations.
function showOptions() {
  const o = readOptions(false);
  const line = $('sb-opts');
  if (!o) {
    line.textContent = 'One of the options is not valid: correct it under “Options” before starting.';
    return;
  }
  $('sb-opts-error').hidden = true;
  line.textContent = `With the options chosen above: ${optionsMedium(o)}, as ${FORMAT_WORDS[o.format]}.`;
  $('sb-naming-out').textContent = `photos/cat.${EXTENSIONS[o.format]}`;
}

function fieldError(input, errorEl, problem) {
  errorEl.hidden = !problem;
  errorEl.textContent = problem || '';
  if (problem) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
}

function checkFields() {
  const example = roots && roots.length ? `, such as ${roots[0].replace(/\/+$/, '')}/photos` : '';
  const s = source.value.trim(), d = dest.value.trim();
  fieldError(source, $('sb-source-error'), s ? null : `Enter where the images are${example}.`);
  fieldError(dest, $('sb-dest-error'), d ? null : 'Enter where the edges should go.');
  if (!s) source.focus(); else if (!d) dest.focus();
  return !!(s && d);
}

// An alert next to the form: title in plain words, the server's message, and its code.
function showAlert(title, text, detail) {
  $('sb-alert-title').textContent = title;
  $('sb-alert-text').textContent = text || '';
  $('sb-alert-detail').textContent = detail || '';
  $('sb-alert').hidden = false;
}

function clearAlert() {
  $('sb-alert').hidden = true;
  for (const input of [source, dest]) input.removeAttribute('aria-invalid');
}

function showRefusal(err, status) {
  showAlert(REFUSALS[err.code] || `The server refused the batch (${status})`, err.message, `Code: ${err.code}`);
  // A location the server names is marked at its box.
  for (const input of [source, dest]) {
    const v = input.value.trim();
    if (v && /^store-/.test(err.code) && err.message.includes(v)) input.setAttribute('aria-invalid', 'true');
  }
}

function setButtons() {
  const start = $('sb-start');
  const busy = starting || running();
  // aria-disabled rather than disabled: the button keeps the focus while the batch starts.
  start.setAttribute('aria-disabled', String(busy));
  start.textContent = starting ? 'Starting…' : 'Start batch';
  start.title = running() ? 'A batch is running: wait for it to end, or cancel it.' : '';
}

async function start(ev) {
  ev.preventDefault();
  if (starting || running() || !roots || !roots.length) return;
  clearAlert();
  if (!checkFields()) return;
  const options = readOptions(true);
  const optsError = $('sb-opts-error');
  optsError.hidden = !!options;
  optsError.textContent = options ? '' : 'Correct the marked option first.';
  if (!options) return;
  const body = { source: source.value.trim(), destination: dest.value.trim(), options: api.optionFields(options) };
  // The same request sent again after a lost answer keeps its key: the server starts it once.
  if (!pending || JSON.stringify(pending.body) !== JSON.stringify(body)) pending = { body, key: api.newUploadKey() };
  starting = true;
  setButtons();
  let r, text;
  try {
    r = await api.startStoreBatch(body, pending.key);
    text = await r.text();
  } catch {
    starting = false;
    setButtons();
    showAlert('The server could not be reached', 'The batch may not have started. Press “Start batch” again: the server knows the same request and starts it only once.', '');
    return;
  }
  pending = null;
  starting = false;
  if (r.status === 202 || r.status === 200) {
    let links = null;
    try { links = JSON.parse(text); } catch { links = null; }
    if (links && links.id) {
      stopFollowing();
      batch = { id: String(links.id), manifest: links.manifest || '', source: body.source, destination: body.destination, status: null };
      cancelling = false;
      save();
      render();
      refresh(true);
      return;
    }
  }
  setButtons();
  const err = api.parseError(text) || { code: `http-${r.status}`, message: (text || '').slice(0, 300) || `The server answered ${r.status}.` };
  showRefusal(err, r.status);
}

// ---------- following ----------

function stopFollowing() {
  if (stream) { stream.close(); stream = null; }
  clearTimeout(retryTimer);
}

function update(s) {
  if (!batch || !s || s.id !== batch.id) return;
  const before = batch.status ? batch.status.state : null;
  batch.status = s;
  if (s.manifest) batch.manifest = s.manifest;
  if (OVER.has(s.state)) {
    stopFollowing();
    cancelling = false;
    save();
  }
  render();
  if (before !== s.state && OVER.has(s.state) && document.activeElement === document.body) $('sb-start').focus();
}

// Reads the batch's status; then (thenFollow) follows its events until it ends.
async function refresh(thenFollow) {
  if (!batch) return;
  const id = batch.id;
  clearTimeout(retryTimer);
  let r;
  try { r = await api.getStoreBatch(id); } catch { r = null; }
  if (!batch || batch.id !== id) return;
  if (r && r.status === 404) {
    // The server forgot it (its record expired, or it was never there).
    stopFollowing();
    batch = null;
    save();
    render();
    return;
  }
  if (r && r.ok) {
    let s = null;
    try { s = await r.json(); } catch { s = null; }
    if (s) update(s);
  }
  if (!r || !r.ok) {
    retryTimer = setTimeout(() => refresh(thenFollow), 3000);
    return;
  }
  if (thenFollow && !isOver()) follow();
}

function follow() {
  if (stream || !batch || isOver()) return;
  const id = batch.id;
  stream = api.openStoreBatchEvents(id, {
    open() {},
    data(text) {
      let s = null;
      try { s = JSON.parse(text); } catch { return; }
      update(s);
    },
    end() {
      stream = null;
      // The stream broke before the end: ask again shortly, then follow on.
      if (batch && batch.id === id && !isOver()) retryTimer = setTimeout(() => refresh(true), 2000);
    },
  });
}

async function cancelBatch() {
  if (!batch || cancelling || isOver()) return;
  cancelling = true;
  render();
  const id = batch.id;
  try {
    const r = await api.cancelStoreBatch(id);
    const text = await r.text();
    if (r.ok) {
      try { update(JSON.parse(text)); } catch { await refresh(false); }
    } else if (r.status === 409) {
      await refresh(false);   // it ended meanwhile
    } else {
      cancelling = false;
      const err = api.parseError(text) || { code: `http-${r.status}`, message: `The server answered ${r.status}.` };
      showAlert('The batch was not cancelled', err.message, `Code: ${err.code}`);
    }
  } catch {
    cancelling = false;
    showAlert('The server could not be reached', 'The batch was not cancelled. Try again.', '');
  }
  render();
  if (document.activeElement === document.body || $('sb-cancel').hidden) $('sb-start').focus();
}

// ---------- rendering ----------

function fact(key, label, value, wide) {
  const div = document.createElement('div');
  div.dataset.key = key;
  if (wide) div.className = 'wide';
  div.append(Object.assign(document.createElement('dt'), { textContent: label }),
    Object.assign(document.createElement('dd'), { textContent: value }));
  return div;
}

function stageWords(s) {
  if (!s) return 'Starting';
  const c = s.counts || {};
  const ended = (c.done || 0) + (c.failed || 0) + (c.skipped || 0);
  if (cancelling && !OVER.has(s.state)) return 'Cancelling';
  if (s.state === 'done') {
    const parts = [plural(c.done || 0, 'image done', 'images done')];
    if (c.skipped) parts.push(`${fmtInt(c.skipped)} skipped`);
    if (c.failed) parts.push(`${fmtInt(c.failed)} failed`);
    return `Done: ${parts.join(', ')}`;
  }
  if (s.state === 'cancelled') return `Cancelled after ${fmtInt(ended)} of ${plural(c.total || 0, 'image', 'images')}`;
  return STATE_WORDS[s.state] || s.state;
}

function render() {
  setButtons();
  const run = $('sb-run');
  run.hidden = !batch;
  if (!batch) return;
  const s = batch.status;
  const state = s ? s.state : 'starting';
  run.dataset.state = state;
  $('sb-progress').dataset.state = state;

  const badge = $('sb-badge');
  badge.className = `badge ${BADGES[state] || 'running'}`;
  badge.textContent = cancelling && !isOver() ? 'Cancelling' : s ? (STATE_WORDS[state] || state) : 'Starting';

  const cancel = $('sb-cancel');
  cancel.hidden = !running();
  cancel.disabled = cancelling;
  cancel.textContent = cancelling ? 'Cancelling…' : 'Cancel batch';

  const stage = $('sb-stage');
  const words = stageWords(s);
  if (stage.textContent !== words) stage.textContent = words;

  const c = (s && s.counts) || { total: 0, done: 0, failed: 0, skipped: 0 };
  const ended = c.done + c.failed + c.skipped;
  const bar = $('sb-bar');
  if (!s || (state === 'listing' && !c.total)) {
    bar.removeAttribute('value');
  } else {
    bar.max = Math.max(c.total, 1);
    bar.value = c.total ? ended : (OVER.has(state) ? 1 : 0);
  }
  let count = '';
  if (s) {
    count = state === 'listing' ? `${fmtInt(ended)} of ${fmtInt(c.total)} found so far` : `${fmtInt(ended)} of ${plural(c.total, 'image', 'images')}`;
  }
  $('sb-count').textContent = count;

  // Why the batch itself stopped.
  const failure = $('sb-failure');
  const err = s && s.state === 'failed' ? (s.error || { code: 'failed', message: 'The server did not say why.' }) : null;
  failure.hidden = !err;
  if (err) {
    $('sb-failure-title').textContent = REFUSALS[err.code] || 'The batch could not go on';
    $('sb-failure-text').textContent = err.message || '';
    $('sb-failure-detail').textContent = `Code: ${err.code}`;
  }

  const facts = [fact('done', 'Done', fmtInt(c.done)), fact('skipped', 'Skipped', fmtInt(c.skipped)), fact('failed', 'Failed', fmtInt(c.failed))];
  if (s && OVER.has(state)) {
    const took = s.ended_at && s.created_at ? (Date.parse(s.ended_at) - Date.parse(s.created_at)) / 1000 : null;
    facts.push(fact('took', 'Took', fmtDuration(took)));
  } else {
    facts.push(fact('rate', 'Speed', s && s.rate_per_sec ? `${fmtRate(s.rate_per_sec)}` : '–'));
    facts.push(fact('eta', 'Time left', s && s.eta_secs != null ? `about ${fmtDuration(s.eta_secs)}` : '–'));
  }
  facts.push(fact('source', 'From', (s && s.source) || batch.source || '–', true));
  facts.push(fact('destination', 'To', (s && s.destination) || batch.destination || '–', true));
  $('sb-facts').replaceChildren(...facts);

  // The manifest, once the batch is over (a failed one has it only when some images ended).
  const manifest = batch.manifest || '';
  const showManifest = !!(s && manifest && (state === 'done' || state === 'cancelled' || (state === 'failed' && ended > 0)));
  $('sb-manifest').hidden = !showManifest;
  if (showManifest) {
    const web = /^https?:\/\//i.test(manifest);
    $('sb-manifest-open').hidden = !web;
    if (web) $('sb-manifest-link').href = manifest;
    const input = $('sb-manifest-url');
    if (input.value !== manifest) input.value = manifest;
    let where = '';
    if (/^file:/i.test(manifest)) where = ' It is a file on the server, not on this computer: open it there.';
    else if (!web) where = ' Open it with the tools of your storage.';
    $('sb-manifest-hint').textContent = 'One line per image: where it came from, where its edges went, and whether it was done, skipped or failed, with the reason.' + where;
  }
}

// ---------- wiring ----------

export function initStoreBatch() {
  const saved = store.get(KEY, null);
  if (saved && typeof saved === 'object') {
    if (typeof saved.source === 'string') source.value = saved.source;
    if (typeof saved.destination === 'string') dest.value = saved.destination;
    if (typeof saved.id === 'string' && /^[0-9a-f]{32}$/.test(saved.id)) {
      batch = { id: saved.id, manifest: saved.manifest || '', source: saved.source, destination: saved.destination, status: null };
    }
  }
  form.addEventListener('submit', start);
  $('sb-start').addEventListener('click', (ev) => {
    if ($('sb-start').getAttribute('aria-disabled') === 'true') {
      ev.preventDefault();
      if (running()) announce('A batch is running: wait for it to end, or cancel it.');
    }
  });
  for (const [input, err] of [[source, 'sb-source-error'], [dest, 'sb-dest-error']]) {
    input.addEventListener('input', () => { fieldError(input, $(err), null); });
    input.addEventListener('change', save);
  }
  $('sb-cancel').addEventListener('click', cancelBatch);
  $('sb-copy').addEventListener('click', async () => {
    const input = $('sb-manifest-url');
    let ok = false;
    try { await navigator.clipboard.writeText(input.value); ok = true; } catch {
      input.focus(); input.select();
      try { ok = document.execCommand('copy'); } catch { ok = false; }
    }
    const btn = $('sb-copy');
    btn.textContent = ok ? 'Copied' : 'Select and copy it';
    announce(ok ? 'The manifest’s location is in the clipboard.' : 'Copy the selected location.');
    if (!ok) { input.focus(); input.select(); }
    setTimeout(() => { btn.textContent = 'Copy'; }, 2500);
  });
  $('sb-manifest-url').addEventListener('focus', (ev) => ev.target.select());
  onOptionsChange(showOptions);
  showOptions();
  render();
  if (batch) refresh(true);
}
