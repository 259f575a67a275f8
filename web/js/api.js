// The HTTP API client: uploads with progress, job status and results, cancelling, the event
// stream (EventSource, or fetch when an API key must be sent), batches between storage
// locations (start, status, events, cancel), limits and a health probe.
// Every URL is relative so the page also works under a path prefix.
import { store } from './util.js';
import { normalizeOptions } from './operators.js';

const KEY_API = 'dsobel.apiKey';

export function apiKey() { return store.get(KEY_API, '') || ''; }
export function setApiKey(v) { if (v) store.set(KEY_API, v); else store.remove(KEY_API); }

export function authHeaders(extra) {
  const h = Object.assign({}, extra || {});
  const k = apiKey();
  if (k) h.Authorization = `Bearer ${k}`;
  return h;
}

export function parseError(text) {
  try {
    const j = JSON.parse(text);
    if (j && j.error && typeof j.error === 'object') return { code: String(j.error.code || ''), message: String(j.error.message || '') };
  } catch { /* not JSON */ }
  return null;
}

export function retryAfterSeconds(value) {
  if (value == null || value === '') return 5;
  const n = Number(value);
  if (isFinite(n)) return Math.min(300, Math.max(1, Math.ceil(n)));
  const t = Date.parse(value);
  if (!isNaN(t)) return Math.min(300, Math.max(1, Math.ceil((t - Date.now()) / 1000)));
  return 5;
}

export const jobPath = (kind, id) => `${kind}/${encodeURIComponent(id)}`;

// The operator's options as the API names them (docs/operators.md): every option of the
// operator, and Canny's thresholds for Canny. The strip count is the caller's.
export function optionFields(o) {
  const n = normalizeOptions(o);
  const f = { output: n.output, kernel: n.kernel, ksize: n.ksize, magnitude: n.magnitude, threshold: n.threshold };
  if (n.output === 'canny') {
    f.low = n.low;
    f.high = n.high;
  }
  f.format = n.format;
  return f;
}

// The query of an upload: the operator's options, and the strip count when one was asked for.
// extra: more fields (wait=10).
export function optionQuery(o, extra) {
  const n = normalizeOptions(o);
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(optionFields(n))) q.set(k, String(v));
  if (n.fragments !== 'auto') q.set('fragments', String(n.fragments));
  for (const [k, v] of Object.entries(extra || {})) q.set(k, String(v));
  return q.toString();
}

// A fresh Idempotency-Key: a random UUID, or 32 random hex digits where randomUUID is missing
// (it exists only in secure contexts, and a server on a LAN address is often plain http).
export function newUploadKey() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') {
    try { return c.randomUUID(); } catch { /* fall through */ }
  }
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === 'function') c.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// Sends a file. key: its Idempotency-Key, the same for every attempt at this upload, so that an
// attempt whose answer was lost and the one sent after it make a single job.
// handlers: progress(fraction), answer(status, text, retryAfter), neterror().
// Returns the XMLHttpRequest (abort() cancels it).
export function sendUpload(file, name, options, key, handlers) {
  const xhr = new XMLHttpRequest();
  xhr.open('POST', `upload?${optionQuery(options)}`);
  const headers = authHeaders({ Accept: 'application/json' });
  if (key) headers['Idempotency-Key'] = key;
  for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
  xhr.upload.onprogress = (ev) => { if (ev.lengthComputable && ev.total > 0) handlers.progress(ev.loaded / ev.total); };
  xhr.onload = () => handlers.answer(xhr.status, xhr.responseText, xhr.getResponseHeader('Retry-After'));
  xhr.onerror = () => handlers.neterror();
  const fd = new FormData();
  fd.append('image', file, name);
  xhr.send(fd);
  return xhr;
}

export const getStatus = (id) => fetch(jobPath('status', id), { headers: authHeaders({ Accept: 'application/json' }), cache: 'no-store' });
const RESULT_TYPES = 'image/png, image/tiff, application/octet-stream;q=0.9';
export const getResult = (id, signal) => fetch(jobPath('result', id), { headers: authHeaders({ Accept: RESULT_TYPES }), cache: 'no-store', signal });

// A preview: the small copy sent with the options, the answer awaited up to `wait` seconds (the
// result file when the job ended in time, else 202 and the job's links). Aborted with signal.
export function sendPreview(blob, name, options, signal, wait = 10) {
  const fd = new FormData();
  fd.append('image', blob, name);
  return fetch(`upload?${optionQuery(Object.assign({}, options, { fragments: 'auto' }), { wait })}`, {
    method: 'POST', body: fd, headers: authHeaders({ Accept: `${RESULT_TYPES}, application/json;q=0.8` }), cache: 'no-store', signal,
  });
}
export const cancelJob = (id) => fetch(jobPath('jobs', id), { method: 'DELETE', headers: authHeaders({ Accept: 'application/json' }), cache: 'no-store' });

export async function getLimits() {
  const r = await fetch('api/limits', { headers: authHeaders({ Accept: 'application/json' }), cache: 'no-store' });
  if (!r.ok) return null;
  const j = await r.json();
  return j && typeof j === 'object' ? j : null;
}

// True when the server answers its health check.
export async function probe() {
  try {
    const r = await fetch('healthz', { cache: 'no-store', signal: AbortSignal.timeout(3000) });
    return r.ok;
  } catch { return false; }
}

// Follows a job's events. handlers: data(text) for each event, open(), end() once the stream is
// over (finished, broken or refused). Returns { close() }.
export function openEvents(id, handlers) {
  return followEvents(jobPath('events', id), handlers);
}

// The same for any event stream of the API (a job's, a batch's): they share their event names.
function followEvents(url, handlers) {
  if (!apiKey() && typeof EventSource === 'function') return eventSource(url, handlers);
  return fetchEvents(url, handlers);
}

function eventSource(url, handlers) {
  const es = new EventSource(url);
  let closed = false;
  const handle = { close() { closed = true; es.close(); } };
  const onData = (ev) => { if (!closed) handlers.data(ev.data); };
  for (const name of ['progress', 'done', 'failed', 'cancelled']) es.addEventListener(name, onData);
  es.onmessage = onData;
  es.onopen = () => { if (!closed) handlers.open(); };
  es.onerror = () => {
    if (closed) return;
    // The stream ended or broke (or the id is unknown): the caller decides what next.
    handle.close();
    handlers.end();
  };
  return handle;
}

// EventSource cannot send an Authorization header, so with an API key the stream is read with fetch.
function fetchEvents(url, handlers) {
  const ctrl = new AbortController();
  let closed = false;
  const handle = { close() { closed = true; ctrl.abort(); } };
  (async () => {
    try {
      const r = await fetch(url, {
        headers: authHeaders({ Accept: 'text/event-stream' }), cache: 'no-store', signal: ctrl.signal,
      });
      if (!r.ok || !r.body) throw new Error(`events answered ${r.status}`);
      if (!closed) handlers.open();
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '', data = [];
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let m;
        while ((m = /\r\n|\r|\n/.exec(buf))) {
          const line = buf.slice(0, m.index);
          buf = buf.slice(m.index + m[0].length);
          if (line === '') {
            if (data.length && !closed) handlers.data(data.join('\n'));
            data = [];
          } else if (line.startsWith('data:')) {
            data.push(line.slice(5).replace(/^ /, ''));
          }
        }
      }
    } catch { /* aborted or broken: handled below */ }
    if (!closed) { closed = true; handlers.end(); }
  })();
  return handle;
}

// ---------- batches between storage locations ----------

const batchPath = (id) => `batches/${encodeURIComponent(id)}`;

// Starts a batch: body { source, destination, options }. key: its Idempotency-Key, the same
// for a request sent again after its answer was lost.
export function startStoreBatch(body, key) {
  const headers = authHeaders({ Accept: 'application/json', 'Content-Type': 'application/json' });
  if (key) headers['Idempotency-Key'] = key;
  return fetch('batches', { method: 'POST', headers, body: JSON.stringify(body), cache: 'no-store' });
}

export const getStoreBatch = (id) => fetch(batchPath(id), { headers: authHeaders({ Accept: 'application/json' }), cache: 'no-store' });
export const cancelStoreBatch = (id) => fetch(batchPath(id), { method: 'DELETE', headers: authHeaders({ Accept: 'application/json' }), cache: 'no-store' });

// Follows a batch's events (progress, then done, failed or cancelled), as openEvents does a job's.
export const openStoreBatchEvents = (id, handlers) => followEvents(`${batchPath(id)}/events`, handlers);
