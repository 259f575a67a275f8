// dsobel web page: upload images, follow their progress, compare and download the edges.
// Native ES modules, no build step and no dependencies; this entry wires them together:
//   js/api.js      the HTTP API and its event stream
//   js/jobs.js     job state, the upload queue, following, cancelling, the connection watch
//   js/words.js    what the page says about each state
//   js/options.js  the options form (js/operators.js: the operators' options and their rules)
//   js/viewer.js   the selected job and the before/after comparison (js/pool-worker.js, js/preview.js,
//                  js/raster.js for TIFF and NPY results)
//   js/history.js  the list of recent jobs
//   js/batch.js    batch summary and the ZIP of all results (js/zip.js)
//   js/store-batch.js  batches from one storage location to another, computed by the server
import { $, announce, fmtBytes, fmtMP, narrow } from './js/util.js';
import * as api from './js/api.js';
import {
  FINAL, PENDING, activate, addEntry, cancel, fetchResult, hooks, inTrouble, jobs, loadHistory, openJob, persist,
  pump, refresh, removeEntry, rerun, resumeAll, retry, selected,
} from './js/jobs.js';
import { alertInfo } from './js/words.js';
import { initOptions, onOptionsChange, readOptions } from './js/options.js';
import { initViewer, renderViewer } from './js/viewer.js';
import { initHistory, markSelected, renderItem, renderList } from './js/history.js';
import { downloadAll, renderBatch } from './js/batch.js';
import { initStoreBatch, showStores } from './js/store-batch.js';

// ---------- rendering ----------

function render(e) {
  if (!e.transient && !document.querySelector(`.job-item[data-key="${e.key}"]`)) renderList(); else renderItem(e);
  if (e.key === jobs.selectedKey) renderViewer();
  renderBatch();
  showNet();
}

function renderAll() {
  renderList();
  markSelected();
  renderViewer();
  renderBatch();
  showNet();
}

function select(e, auto) {
  if (!e) return;
  if (!auto && jobs.selectedKey !== e.key) jobs.follow = false;
  jobs.selectedKey = e.key;
  updateHash(e);
  renderAll();
  if (!auto) activate(e);
}

hooks.render = render;
hooks.renderAll = renderAll;
hooks.select = select;
hooks.announce = (e, text) => {
  if (jobs.selectedKey !== e.key) return;
  const info = text ? null : alertInfo(e, jobs.limits);
  announce(text || (info && info.title));
};

// ---------- links ----------

function updateHash(e) {
  const url = new URL(location.href);
  url.searchParams.delete('job');
  url.hash = e && e.id ? `job=${encodeURIComponent(e.id)}` : '';
  const next = url.pathname + url.search + url.hash;
  if (next !== location.pathname + location.search + location.hash) history.replaceState(null, '', next || url.pathname);
}

function jobFromUrl() {
  const h = /(?:^#|[#&])job=([^&]+)/.exec(location.hash);
  if (h) return decodeURIComponent(h[1]);
  return new URLSearchParams(location.search).get('job') || null;
}

window.addEventListener('hashchange', () => {
  const id = jobFromUrl();
  const cur = selected();
  if (id && (!cur || cur.id !== id)) openJob(id);
});

// ---------- adding files ----------

let held = [];   // files chosen while an option was invalid: they start once it is corrected

function pastedName(file) {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  const ext = (file.type.split('/')[1] || 'png').replace('jpeg', 'jpg').replace(/[^a-z0-9]/gi, '');
  return `pasted-${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}.${ext}`;
}

function showHeld() {
  const box = $('held');
  box.hidden = !held.length;
  box.textContent = held.length === 1 ? `${held[0].name} is waiting: correct the marked option to start.`
    : held.length ? `${held.length} images are waiting: correct the marked option to start.` : '';
}

function addFiles(fileList, fromPaste) {
  const files = Array.from(fileList || []).filter(Boolean).map((file) => ({
    file, name: fromPaste && (!file.name || /^image\.\w+$/.test(file.name)) ? pastedName(file) : (file.name || 'image'),
  }));
  queueFiles(files);
}

// files: [{ file, name }]
function queueFiles(files) {
  if (!files.length) return;
  const options = readOptions();
  if (!options) {
    held = held.concat(files);
    showHeld();
    return;
  }
  held = [];
  showHeld();
  let first = null;
  for (const f of files) {
    const e = addEntry(f.file, f.name, options);
    if (!first) first = e;
  }
  jobs.follow = true;
  select(first, true);
  announce(files.length === 1 ? `Added ${first.name}.` : `Added ${files.length} images to the queue.`);
  renderAll();
  pump();
  bringJobIntoView();
}

// On a narrow screen the job is below the picker: bring it where the user is looking.
function bringJobIntoView() {
  if (!narrow()) return;
  const smooth = !window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  requestAnimationFrame(() => $('view').scrollIntoView({ block: 'start', behavior: smooth ? 'smooth' : 'auto' }));
}

onOptionsChange(() => {
  if (held.length && readOptions(false)) queueFiles(held);
  renderViewer();
});

async function addSample() {
  const btn = $('sample');
  btn.disabled = true;
  try {
    const r = await fetch('sample.jpg');
    if (!r.ok) throw new Error(String(r.status));
    const blob = await r.blob();
    addFiles([new File([blob], 'sample-cat.jpg', { type: blob.type || 'image/jpeg' })]);
  } catch {
    announce('The sample image could not be loaded.');
  } finally { btn.disabled = false; }
}

// ---------- API key and limits ----------

function showKeyState() {
  $('key-state').textContent = api.apiKey() ? 'A key is saved in this browser.' : 'No key saved.';
}

async function loadLimits() {
  try {
    const j = await api.getLimits();
    showStores(j);
    if (!j) return;
    jobs.limits = Object.assign({}, jobs.limits, j);
    let text = `JPEG, PNG, WebP, GIF, BMP or TIFF, up to ${fmtBytes(jobs.limits.max_upload_bytes)}`;
    if (jobs.limits.max_pixels) text += ` and ${fmtMP(jobs.limits.max_pixels)}`;
    $('limits-hint').textContent = `${text}. Several at once are processed one after another.`;
  } catch { showStores(null); /* keep the defaults; errors still come from the server */ }
}

// ---------- connection ----------

// The banner says "offline" only when no job already says so.
function showNet() { $('net').hidden = navigator.onLine !== false || inTrouble(); }

window.addEventListener('offline', () => { showNet(); if (!inTrouble()) announce('You are offline.'); });
window.addEventListener('online', () => { showNet(); resumeAll(); renderAll(); });

// ---------- wiring ----------

initOptions();
initStoreBatch();
initViewer({
  onRetry: (e) => retry(e),
  // The viewer stays on the cancelled job (to show that it is), while the queue goes on.
  onCancel: (e) => { jobs.follow = false; cancel(e); $('pick').focus(); },
  onRemove: (e) => { if (e) { removeEntry(e); pump(); $('pick').focus(); } },
  onRerun: (e) => { const o = readOptions(); if (o && e) rerun(e, o); },
});
initHistory({
  open: (e) => { select(e); $('view').scrollIntoView({ block: 'nearest', behavior: 'smooth' }); },
  remove: (e) => { if (PENDING.has(e.state)) cancel(e); removeEntry(e); pump(); },
});

$('key-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  api.setApiKey($('api-key').value.trim());
  $('api-key').value = '';
  showKeyState();
  loadLimits();
  // Jobs that were refused for a missing key can go again.
  for (const e of jobs.entries) if (e.error && e.error.code === 'unauthorized' && e.file) retry(e);
});
$('forget-key').addEventListener('click', () => { api.setApiKey(''); $('api-key').value = ''; showKeyState(); });

$('clear').addEventListener('click', () => {
  for (const e of [...jobs.entries]) if (FINAL.has(e.state)) removeEntry(e);
  persist();
  renderAll();
  announce('History cleared.');
  $('pick').focus();
});
$('zip').addEventListener('click', downloadAll);
$('sample').addEventListener('click', addSample);

const fileInput = $('file');
$('pick').addEventListener('click', () => fileInput.click());
fileInput.addEventListener('change', () => { addFiles(fileInput.files); fileInput.value = ''; });

const drop = $('drop');
const overlay = $('drop-overlay');
let dragDepth = 0;
const hasFiles = (ev) => ev.dataTransfer && Array.from(ev.dataTransfer.types || []).includes('Files');
window.addEventListener('dragenter', (ev) => {
  if (!hasFiles(ev)) return;
  ev.preventDefault();
  dragDepth++;
  overlay.hidden = false;
  drop.classList.add('over');
});
window.addEventListener('dragover', (ev) => {
  if (!hasFiles(ev)) return;
  ev.preventDefault();
  ev.dataTransfer.dropEffect = 'copy';
});
window.addEventListener('dragleave', (ev) => {
  if (!hasFiles(ev)) return;
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) { overlay.hidden = true; drop.classList.remove('over'); }
});
window.addEventListener('drop', (ev) => {
  if (!hasFiles(ev)) return;
  ev.preventDefault();
  dragDepth = 0;
  overlay.hidden = true;
  drop.classList.remove('over');
  addFiles(ev.dataTransfer.files);
});
document.addEventListener('paste', (ev) => {
  const items = ev.clipboardData ? Array.from(ev.clipboardData.items || []) : [];
  const files = items.filter((i) => i.kind === 'file').map((i) => i.getAsFile()).filter(Boolean);
  if (!files.length) return;
  ev.preventDefault();
  addFiles(files, true);
});

// ---------- start ----------

showKeyState();
loadHistory();
loadLimits();
const initial = jobFromUrl();
renderAll();
if (initial) {
  openJob(initial);
} else {
  // After a reload, show the latest finished job rather than an empty viewer.
  const latest = jobs.entries.find((e) => e.state === 'done');
  if (latest) { select(latest, true); fetchResult(latest); }
}
// Jobs left unfinished on an earlier visit: ask once where they stand.
for (const e of jobs.entries) if (e.restored && (e.state === 'queued' || e.state === 'processing') && e.id !== initial) refresh(e, true);
