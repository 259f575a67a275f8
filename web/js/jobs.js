// Job state: the list of jobs (newest first) kept in this browser, the upload queue (one upload
// at a time), following each job on the server, cancelling, retrying and resubmitting, and the
// connection watch that resumes everything as soon as the server answers again.
import * as api from './api.js';
import { store } from './util.js';
import { normalizeOptions } from './operators.js';
import { renderRaster, sniff } from './raster.js';

const KEY_JOBS = 'dsobel.jobs.v1';
const MAX_HISTORY = 30;
const MAX_AUTO_RETRIES = 30;
const THUMB_SIZE = 96;

// Job states. Local only: waiting, uploading, busy (the server asked to come back later),
// reconnecting (the upload could not reach the server), error (refused before a job existed).
// From the server: queued, processing, done, failed, cancelled. expired: the server no longer
// has a finished job's result; lost: the server no longer knows a job that was not finished, or
// says it lost it (failed with job-lost: its store restarted or was emptied).
//
// Each upload carries an Idempotency-Key (uploadKey). Sending the same upload again by itself
// (the server was busy or unreachable, or its answer was lost) keeps the key, so the server
// answers with the job it may already have made; a new job on purpose (try again, process again,
// send a lost job again) gets a new key.
export const RUNNING = new Set(['uploading', 'busy', 'reconnecting', 'queued', 'processing']);
export const FINAL = new Set(['done', 'failed', 'error', 'expired', 'lost', 'cancelled']);
export const PENDING = new Set(['waiting', ...RUNNING]);

const isJobLost = (err) => !!err && typeof err === 'object' && err.code === 'job-lost';

export const jobs = {
  entries: [],
  selectedKey: null,
  follow: true, // the viewer follows the job being processed until the user picks another one
  limits: { max_upload_bytes: 64 * 1024 * 1024, max_pixels: null, max_dimension: null },
};

// Set by the page: render(e) after an entry changed, renderAll() after the list changed,
// select(e, auto), announce(e, text) for news about an entry.
export const hooks = { render() {}, renderAll() {}, select() {}, announce() {} };

let seq = 0;

export function newEntry(fields) {
  return Object.assign({
    key: `j${Date.now().toString(36)}${(seq++).toString(36)}`,
    id: null, name: 'image', size: null, created: Date.now(), thumb: null,
    state: 'waiting', status: null, error: null, options: null,
    file: null, beforeUrl: null, resultUrl: null, resultBlob: null, displayUrl: null, displayBlob: null, rasterInfo: null,
    renderProblem: '',
    xhr: null, stream: null, timer: null, pollTimer: null, retryAt: 0, tries: 0, uploadFrac: 0,
    trouble: false, beforeBroken: false, transient: false, resubmits: 0, notice: '', uploadKey: null,
  }, fields);
}

export const byKey = (key) => jobs.entries.find((e) => e.key === key) || null;
export const selected = () => (jobs.selectedKey ? byKey(jobs.selectedKey) : null);
const alive = (e) => jobs.entries.includes(e);

// ---------- storage ----------

export function persist() {
  const keep = jobs.entries.filter((e) => e.id && !e.transient).slice(0, MAX_HISTORY).map((e) => ({
    id: e.id, name: e.name, size: e.size, created: e.created, thumb: e.thumb, state: e.state,
    options: e.options, error: e.error,
    status: e.status ? {
      width: e.status.width, height: e.status.height, strips_done: e.status.strips_done,
      strips_total: e.status.strips_total, input_bytes: e.status.input_bytes, result_bytes: e.status.result_bytes,
      timings_ms: e.status.timings_ms, options: e.status.options, created_at: e.status.created_at,
      threshold_used: e.status.threshold_used,
    } : null,
  }));
  // If storage is full, drop thumbnails from the oldest entries, then the oldest entries.
  for (let attempt = 0; attempt < 40; attempt++) {
    if (store.set(KEY_JOBS, keep)) return;
    const withThumb = [...keep].reverse().find((x) => x.thumb);
    if (withThumb) withThumb.thumb = null; else if (keep.length) keep.pop(); else return;
  }
}

const KNOWN = new Set([...PENDING, ...FINAL]);

export function loadHistory() {
  const list = store.get(KEY_JOBS, []);
  if (!Array.isArray(list)) return;
  // Entries of earlier versions lack the newer options: they get the defaults, which is what
  // their jobs used.
  for (const x of list) {
    if (!x || typeof x.id !== 'string') continue;
    let state = KNOWN.has(x.state) && !['waiting', 'uploading', 'busy', 'reconnecting'].includes(x.state) ? x.state : 'queued';
    if (state === 'failed' && isJobLost(x.error)) state = 'lost';
    jobs.entries.push(newEntry({
      id: x.id, name: String(x.name || 'image'), size: x.size ?? null, created: x.created || Date.now(),
      thumb: typeof x.thumb === 'string' && x.thumb.startsWith('data:image/') ? x.thumb : null,
      state, options: x.options ? normalizeOptions(x.options) : null, error: x.error || null, restored: true,
      status: x.status ? Object.assign({}, x.status, x.status.options ? { options: normalizeOptions(x.status.options) } : {}) : null,
    }));
  }
}

// ---------- adding ----------

export function addEntry(file, name, options) {
  const e = newEntry({ name, size: file.size, file, options: Object.assign({}, options), state: 'waiting' });
  try { e.beforeUrl = URL.createObjectURL(file); } catch { e.beforeUrl = null; }
  jobs.entries.unshift(e);
  if (jobs.limits.max_upload_bytes && file.size > jobs.limits.max_upload_bytes) {
    failLocal(e, { code: 'payload-too-large', message: '' }, 413);
  } else if (file.size === 0) {
    failLocal(e, { code: 'empty-file', message: '' }, 0);
  }
  makeThumb(file).then((t) => {
    if (!t) return;
    e.localWidth = t.width; e.localHeight = t.height;
    if (!e.thumb) { e.thumb = t.url; persist(); hooks.render(e); }
  });
  return e;
}

export async function makeThumb(blob) {
  try {
    const bmp = await createImageBitmap(blob);
    const scale = Math.min(1, THUMB_SIZE / Math.max(bmp.width, bmp.height));
    const w = Math.max(1, Math.round(bmp.width * scale));
    const h = Math.max(1, Math.round(bmp.height * scale));
    const c = document.createElement('canvas');
    c.width = w; c.height = h;
    const ctx = c.getContext('2d');
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, w, h);
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(bmp, 0, 0, w, h);
    const out = { url: c.toDataURL('image/jpeg', 0.72), width: bmp.width, height: bmp.height };
    if (bmp.close) bmp.close();
    return out;
  } catch {
    return null; // a format the browser cannot show (TIFF, say): no thumbnail, the server still decides
  }
}

// A new job for the same file with other options; the earlier one stays in the history.
export function rerun(e, options) {
  if (!e || !e.file) return null;
  const copy = addEntry(e.file, e.name, options || e.options);
  copy.thumb = e.thumb; copy.localWidth = e.localWidth; copy.localHeight = e.localHeight;
  jobs.follow = true;
  hooks.select(copy, true);
  hooks.renderAll();
  pump();
  return copy;
}

// ---------- the queue ----------

export function pump() {
  if (jobs.entries.some((e) => e.file && RUNNING.has(e.state))) return;
  for (let i = jobs.entries.length - 1; i >= 0; i--) {
    if (jobs.entries[i].state === 'waiting') { upload(jobs.entries[i]); return; }
  }
}

function clearTimer(e) { if (e.timer) { clearTimeout(e.timer); e.timer = null; } }

export function upload(e) {
  clearTimer(e);
  if (!e.file) return;
  e.state = 'uploading'; e.uploadFrac = 0; e.error = null; e.trouble = false;
  if (!e.uploadKey) e.uploadKey = api.newUploadKey();
  if (jobs.follow) hooks.select(e, true);
  hooks.render(e);
  hooks.announce(e, `Uploading ${e.name}.`);
  const xhr = api.sendUpload(e.file, e.name, e.options, e.uploadKey, {
    progress: (f) => { if (e.xhr === xhr) { e.uploadFrac = f; hooks.render(e); } },
    answer: (status, text, retryAfter) => {
      if (e.xhr !== xhr) return;
      e.xhr = null;
      onUploadAnswer(e, status, text, retryAfter);
    },
    neterror: () => {
      if (e.xhr !== xhr) return;
      e.xhr = null;
      // The upload never reached the server (or its answer was lost): send it again, with the
      // same key, once it answers.
      e.state = 'reconnecting';
      troubled(e);
    },
  });
  e.xhr = xhr;
}

function onUploadAnswer(e, status, text, retryAfter) {
  if (status === 202 || status === 200) {
    let j = null;
    try { j = JSON.parse(text); } catch { /* handled below */ }
    if (j && typeof j.id === 'string' && j.id) {
      e.id = j.id; e.state = 'queued'; e.tries = 0; e.created = Date.now();
      persist();
      hooks.render(e);
      if (jobs.selectedKey === e.key) hooks.select(e, true);
      track(e);
      return;
    }
    failLocal(e, { code: 'internal', message: 'The server gave no job id.' }, status);
    pump();
    return;
  }
  const err = api.parseError(text) || { code: status === 429 ? 'too-busy' : status === 503 ? 'unavailable' : status === 413 ? 'payload-too-large' : '', message: '' };
  if (status === 502 || status === 504) {
    // A proxy in front of the server answered: the server itself is not reachable.
    e.state = 'reconnecting';
    troubled(e);
    return;
  }
  if (['too-busy', 'unavailable'].includes(err.code) || status === 429 || status === 503) {
    if (!['too-busy', 'unavailable'].includes(err.code)) err.code = status === 429 ? 'too-busy' : 'unavailable';
    busy(e, err, api.retryAfterSeconds(retryAfter));
    return;
  }
  failLocal(e, err, status);
  pump();
}

function failLocal(e, err, status) {
  clearTimer(e);
  e.state = 'error';
  e.error = Object.assign({ status }, err);
  hooks.render(e);
  hooks.announce(e, null);
}

function busy(e, err, seconds) {
  e.tries++;
  e.state = 'busy';
  e.error = err;
  clearTimer(e);
  if (e.tries > MAX_AUTO_RETRIES) {
    e.retryAt = 0;
  } else {
    e.retryAt = Date.now() + seconds * 1000;
    e.timer = setTimeout(() => { e.timer = null; if (e.state === 'busy') upload(e); }, seconds * 1000);
  }
  startTicker();
  hooks.render(e);
  hooks.announce(e, null);
}

// Entries waiting for a retry countdown are re-rendered every second.
let ticker = null;
function startTicker() {
  if (ticker) return;
  ticker = setInterval(() => {
    const waiting = jobs.entries.filter((e) => e.state === 'busy');
    if (!waiting.length) { clearInterval(ticker); ticker = null; return; }
    for (const e of waiting) hooks.render(e);
  }, 1000);
}

// Retry now (busy, reconnecting: the same upload, with its key), or a new job for the same file
// (failed, expired, lost, cancelled, refused: a new key).
export function retry(e) {
  if (!e) return;
  clearTimer(e);
  if (e.state === 'busy' || e.state === 'reconnecting') { upload(e); return; }
  if (e.file && (!e.id || FINAL.has(e.state)) && e.state !== 'done') {
    if (e.id) { rerun(e, e.options); return; }
    e.state = 'waiting'; e.error = null; e.tries = 0; e.uploadKey = null;
    jobs.follow = true;
    hooks.select(e, true);
    hooks.renderAll();
    if (!jobs.entries.some((x) => x !== e && x.file && RUNNING.has(x.state))) upload(e); else pump();
    return;
  }
  if (e.id) refresh(e);
}

// Cancels a pending job: the upload in flight is aborted, a job on the server is cancelled there.
export async function cancel(e) {
  if (!e || !PENDING.has(e.state)) return;
  clearTimer(e);
  if (e.xhr) { const x = e.xhr; e.xhr = null; x.abort(); }
  if (!e.id) {
    e.state = 'cancelled'; e.error = null; e.trouble = false;
    hooks.render(e);
    hooks.announce(e, `${e.name}: cancelled.`);
    pump();
    return;
  }
  e.cancelling = true;
  e.cancelAsked = true; // if the server turns out to have lost it, it is not sent again
  hooks.render(e);
  let r;
  try { r = await api.cancelJob(e.id); } catch {
    e.cancelling = false;
    e.notice = 'The job could not be cancelled: the server cannot be reached.';
    troubled(e);
    return;
  }
  e.cancelling = false;
  const text = await r.text().catch(() => '');
  if (r.ok) {
    let s = null;
    try { s = JSON.parse(text); } catch { /* no body */ }
    onStatus(e, s && typeof s === 'object' && s.state ? s : Object.assign({}, e.status || {}, { state: 'cancelled' }));
    return;
  }
  const err = api.parseError(text) || { code: '', message: '' };
  if (r.status === 404) { gone(e); return; }
  // 409 job-finished: it ended before the cancel arrived; show how it ended.
  if (r.status !== 409) e.notice = `The job could not be cancelled (${err.message || `error ${r.status}`}).`;
  refresh(e);
}

export function removeEntry(e) {
  clearTimer(e);
  if (e.xhr) { const x = e.xhr; e.xhr = null; x.abort(); }
  stopTracking(e);
  if (e.beforeUrl) URL.revokeObjectURL(e.beforeUrl);
  if (e.resultUrl) URL.revokeObjectURL(e.resultUrl);
  if (e.displayUrl) URL.revokeObjectURL(e.displayUrl);
  jobs.entries = jobs.entries.filter((x) => x !== e);
  if (jobs.selectedKey === e.key) jobs.selectedKey = null;
  persist();
  hooks.renderAll();
}

// ---------- following a job ----------

export function stopTracking(e) {
  if (e.stream) { const s = e.stream; e.stream = null; s.close(); }
  if (e.pollTimer) { clearTimeout(e.pollTimer); e.pollTimer = null; }
}

export function track(e) {
  stopTracking(e);
  if (!e.id || FINAL.has(e.state)) return;
  const handle = api.openEvents(e.id, {
    data: (text) => onEventData(e, text),
    open: () => { if (e.trouble) { e.trouble = false; hooks.render(e); } },
    end: () => {
      if (e.stream !== handle) return;
      e.stream = null;
      // The stream ended before the job did: ask where it stands, then follow it again.
      if (!FINAL.has(e.state)) poll(e, 0);
    },
  });
  e.stream = handle;
}

function onEventData(e, data) {
  let s = null;
  try { s = JSON.parse(data); } catch { return; }
  if (s && typeof s === 'object') onStatus(e, s);
}

// After the event stream ended early: one status request at once, then the stream again a second later.
function poll(e, delay) {
  if (e.pollTimer) clearTimeout(e.pollTimer);
  e.pollTimer = setTimeout(async () => {
    e.pollTimer = null;
    if (FINAL.has(e.state) || !alive(e) || e.stream) return;
    const ok = await refresh(e, true);
    if (!ok || FINAL.has(e.state) || !alive(e) || e.stream) return; // a network problem: the watch takes over
    e.pollTimer = setTimeout(() => {
      e.pollTimer = null;
      if (!FINAL.has(e.state) && alive(e) && !e.stream && !e.trouble) track(e);
    }, 1000);
  }, delay);
}

// One status request. Returns false on a network problem.
export async function refresh(e, fromPoll) {
  const id = e.id;
  let r;
  try { r = await api.getStatus(id); } catch { if (e.id === id) troubled(e); return false; }
  if (e.id !== id) return true; // sent again meanwhile: this answer is about the old job
  if (r.status === 502 || r.status === 504 || (r.status === 503 && !r.headers.get('retry-after'))) { troubled(e); return false; }
  if (e.trouble) { e.trouble = false; hooks.render(e); }
  if (r.status === 404) { gone(e); return true; }
  const text = await r.text().catch(() => '');
  if (e.id !== id) return true;
  if (r.ok) {
    e.confirmed = true;
    onEventData(e, text);
    if (!fromPoll && !FINAL.has(e.state) && !e.stream) track(e);
    return true;
  }
  const err = api.parseError(text) || { code: '', message: '' };
  if (r.status === 401) { e.error = err; e.authProblem = true; hooks.render(e); return true; }
  return r.status < 500;
}

// The server does not know the id (any more). A finished result has expired; an unfinished job
// was lost (the server restarted, say).
function gone(e) {
  stopTracking(e);
  if (PENDING.has(e.state) && !e.shared) { lost(e, { code: 'not-found', message: '' }); return; }
  e.error = { code: 'not-found', message: '' };
  e.state = 'expired';
  persist();
  hooks.render(e);
  hooks.announce(e, null);
  pump();
}

// A job that was not finished is gone: the server forgot it (not-found) or says it lost it
// (job-lost). With the file still here, it is sent again, once, as a new upload with a new key
// (the old key would only bring back the lost job).
function lost(e, err) {
  stopTracking(e);
  e.state = 'lost';
  e.error = err;
  e.needsResult = false; e.resultProblem = false;
  if (e.file && e.resubmits < 1 && !e.cancelAsked) {
    e.resubmits++;
    e.id = null; e.status = null; e.state = 'waiting'; e.error = null; e.uploadKey = null;
    e.notice = err.code === 'job-lost'
      ? 'The server lost this job before it finished (its job store restarted or was emptied), so the image was sent again.'
      : 'The server lost this job before it finished (it probably restarted), so the image was sent again.';
    persist();
    hooks.render(e);
    hooks.announce(e, e.notice);
    pump();
    return;
  }
  persist();
  hooks.render(e);
  hooks.announce(e, null);
  pump();
}

export function onStatus(e, s) {
  const prev = e.state;
  e.status = s;
  e.confirmed = true;
  e.transient = false;
  if (s.options && !e.options) e.options = normalizeOptions(s.options);
  e.authProblem = false;
  if (s.state === 'failed' && isJobLost(s.error)) {
    lost(e, { code: 'job-lost', message: String(s.error.message || '') });
    return;
  }
  if (s.state === 'done') {
    e.state = 'done';
    stopTracking(e);
    if (!e.resultUrl) fetchResult(e);
  } else if (s.state === 'failed') {
    e.state = 'failed';
    e.error = s.error || { code: 'job-failed', message: '' };
    stopTracking(e);
    hooks.announce(e, null);
  } else if (s.state === 'cancelled') {
    e.state = 'cancelled';
    e.error = null;
    stopTracking(e);
    hooks.announce(e, `${e.name}: cancelled.`);
  } else {
    e.state = s.state === 'processing' ? 'processing' : 'queued';
  }
  if (prev !== e.state) persist();
  hooks.render(e);
  if (FINAL.has(e.state)) pump();
}

export async function fetchResult(e, attempt = 0) {
  let r;
  try { r = await api.getResult(e.id); } catch { e.needsResult = true; troubled(e); return; }
  if (r.status === 200) {
    const blob = await r.blob();
    if (!alive(e)) return;
    e.trouble = false; e.needsResult = false;
    // TIFF and NPY cannot be shown by the browser: a grey drawing of the values stands in.
    const kind = sniff(new Uint8Array(await blob.slice(0, 8).arrayBuffer()));
    let display = null;
    e.renderProblem = '';
    if (kind === 'tiff' || kind === 'npy') {
      try { display = await renderRaster(blob); } catch (err) { e.renderProblem = String((err && err.message) || err); }
      if (!alive(e)) return;
    }
    e.resultBlob = blob;
    if (e.resultUrl) URL.revokeObjectURL(e.resultUrl);
    if (e.displayUrl) URL.revokeObjectURL(e.displayUrl);
    e.resultUrl = URL.createObjectURL(blob);
    e.displayBlob = display ? display.blob : null;
    e.displayUrl = display ? URL.createObjectURL(display.blob) : null;
    e.rasterInfo = display ? display.info : null;
    e.resultKind = kind || 'png';
    if (!e.thumb) {
      const t = await makeThumb(e.displayBlob || blob);
      if (t) { e.thumb = t.url; persist(); }
    }
    hooks.render(e);
    hooks.announce(e, `${e.name}: edges are ready.`);
    return;
  }
  if (r.status === 202 && attempt < 20) { setTimeout(() => fetchResult(e, attempt + 1), 500); return; }
  if (r.status === 404) { gone(e); return; }
  if (r.status === 502 || r.status === 504) { e.needsResult = true; troubled(e); return; }
  const err = api.parseError(await r.text().catch(() => '')) || { code: 'job-failed', message: '' };
  if (isJobLost(err)) { lost(e, err); return; }
  if (r.status === 410 || err.code === 'cancelled') { onStatus(e, Object.assign({}, e.status || {}, { state: 'cancelled' })); return; }
  if (r.status === 422 || r.status === 415 || r.status === 413) { e.state = 'failed'; e.error = err; persist(); hooks.render(e); return; }
  e.error = err; e.resultProblem = true; hooks.render(e);
}

// Open a job known only by its id (a shared link). Until the server confirms it, it is not kept.
export function openJob(id) {
  let e = jobs.entries.find((x) => x.id === id);
  if (!e) {
    e = newEntry({ id, name: `Shared result ${id.slice(0, 8)}`, state: 'queued', shared: true, transient: true });
    jobs.entries.unshift(e);
  }
  jobs.follow = false;
  jobs.selectedKey = null;
  hooks.select(e);
}

// Make sure the selected entry shows live data: follow it if pending, load its PNG if done.
export function activate(e) {
  if (!e || !e.id) return;
  if (e.state === 'done' && !e.resultUrl) { fetchResult(e); return; }
  if ((e.state === 'queued' || e.state === 'processing') && !e.stream && !e.pollTimer) refresh(e);
}

// ---------- the connection watch ----------

// A job that cannot reach the server waits here; the server is asked every second whether it
// answers again, and everything waiting resumes at once when it does.
let watching = false;

function troubled(e) {
  if (!e.trouble) { e.trouble = true; hooks.announce(e, null); }
  hooks.render(e);
  watch();
}

async function watch() {
  if (watching) return;
  watching = true;
  try {
    for (;;) {
      const waiting = jobs.entries.filter((e) => e.trouble);
      if (!waiting.length) return;
      if (navigator.onLine !== false && await api.probe()) { resumeAll(); continue; }
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally { watching = false; }
}

export function resumeAll() {
  for (const e of jobs.entries) {
    if (!e.trouble) continue;
    e.trouble = false;
    if (e.state === 'reconnecting') upload(e);
    else if (e.needsResult) fetchResult(e);
    else if (e.id && !FINAL.has(e.state)) poll(e, 0);
    hooks.render(e);
  }
}

export const inTrouble = () => jobs.entries.some((e) => e.trouble);
