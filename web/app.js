// dsobel web page: upload images, follow their progress, compare and download the edges.
// Plain JavaScript, no dependencies. Every URL is relative so the page also works under a path prefix.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  const KEY_JOBS = 'dsobel.jobs.v1';
  const KEY_OPTS = 'dsobel.options.v1';
  const KEY_API = 'dsobel.apiKey';
  const MAX_HISTORY = 30;
  const THUMB_SIZE = 96;
  const MAX_AUTO_RETRIES = 30;
  const DEFAULTS = { output: 'binary', threshold: 100, magnitude: 'l2', fragments: 'auto', fragmentsN: 4 };

  // Job states. Local only: waiting, uploading, busy (waiting to retry), error (refused before a job existed).
  // From the server: queued, processing, done, failed. expired: the server no longer knows the id.
  const RUNNING = new Set(['uploading', 'busy', 'queued', 'processing']);
  const FINAL = new Set(['done', 'failed', 'error', 'expired']);
  const STATE_WORDS = {
    waiting: 'Waiting', uploading: 'Uploading', busy: 'Server busy', queued: 'Queued',
    processing: 'Processing', done: 'Done', failed: 'Failed', error: 'Not accepted', expired: 'Expired',
  };

  let limits = { max_upload_bytes: 64 * 1024 * 1024, max_pixels: null, max_dimension: null };
  let entries = [];        // newest first
  let selectedKey = null;
  let follow = true;       // the viewer follows the job being processed until the user picks another one
  let seq = 0;
  let lastAnnounce = '';
  let ticker = null;

  // ---------- small helpers ----------

  const store = {
    get(key, fallback) {
      try { const v = localStorage.getItem(key); return v == null ? fallback : JSON.parse(v); } catch { return fallback; }
    },
    set(key, value) {
      try { localStorage.setItem(key, JSON.stringify(value)); return true; } catch { return false; }
    },
    remove(key) { try { localStorage.removeItem(key); } catch { /* storage disabled */ } },
  };

  function fmtBytes(n) {
    if (n == null || !isFinite(n)) return '–';
    if (n < 1024) return `${n} bytes`;
    const units = ['KB', 'MB', 'GB'];
    let v = n / 1024, i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${v >= 100 || Number.isInteger(v) ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
  }
  function fmtMs(ms) {
    if (ms == null || !isFinite(ms)) return '–';
    if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
    if (ms >= 10) return `${Math.round(ms)} ms`;
    return `${ms.toFixed(1)} ms`;
  }
  function fmtMP(px) {
    const mp = px / 1e6;
    return `${mp >= 10 ? Math.round(mp) : mp.toFixed(1)} megapixels`;
  }
  function fmtInt(n) { return Number(n).toLocaleString('en'); }
  function fmtTime(t) {
    const d = new Date(t);
    if (isNaN(d)) return '';
    const now = new Date();
    const sameDay = d.toDateString() === now.toDateString();
    return sameDay ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
      : d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }
  function baseName(name) {
    const b = String(name || 'image').replace(/\.[A-Za-z0-9]{1,5}$/, '').replace(/[\\/:*?"<>|\u0000-\u001f]+/g, '_').trim();
    return b || 'image';
  }
  function apiKey() { return store.get(KEY_API, '') || ''; }
  function authHeaders(extra) {
    const h = Object.assign({}, extra || {});
    const k = apiKey();
    if (k) h.Authorization = `Bearer ${k}`;
    return h;
  }
  function announce(text) {
    if (!text || text === lastAnnounce) return;
    lastAnnounce = text;
    const live = $('live');
    live.textContent = '';
    // A new text node after a tick makes screen readers announce repeats reliably.
    setTimeout(() => { live.textContent = text; }, 30);
  }
  function retryAfterSeconds(value) {
    if (value == null || value === '') return 5;
    const n = Number(value);
    if (isFinite(n)) return Math.min(300, Math.max(1, Math.ceil(n)));
    const t = Date.parse(value);
    if (!isNaN(t)) return Math.min(300, Math.max(1, Math.ceil((t - Date.now()) / 1000)));
    return 5;
  }
  function parseError(text) {
    try {
      const j = JSON.parse(text);
      if (j && j.error && typeof j.error === 'object') return { code: String(j.error.code || ''), message: String(j.error.message || '') };
    } catch { /* not JSON */ }
    return null;
  }
  function jobPath(kind, id) { return `${kind}/${encodeURIComponent(id)}`; }

  // ---------- entries and storage ----------

  function newEntry(fields) {
    return Object.assign({
      key: `j${Date.now().toString(36)}${(seq++).toString(36)}`,
      id: null, name: 'image', size: null, created: Date.now(), thumb: null,
      state: 'waiting', status: null, error: null, options: null,
      file: null, beforeUrl: null, resultUrl: null, resultBlob: null,
      xhr: null, stream: null, timer: null, retryAt: 0, tries: 0, uploadFrac: 0,
      netTrouble: false, pollDelay: 1000, beforeBroken: false,
    }, fields);
  }

  function byKey(key) { return entries.find((e) => e.key === key) || null; }
  function selected() { return selectedKey ? byKey(selectedKey) : null; }

  function persist() {
    const keep = entries.filter((e) => e.id).slice(0, MAX_HISTORY).map((e) => ({
      id: e.id, name: e.name, size: e.size, created: e.created, thumb: e.thumb, state: e.state,
      options: e.options, error: e.error,
      status: e.status ? {
        width: e.status.width, height: e.status.height, strips_done: e.status.strips_done,
        strips_total: e.status.strips_total, input_bytes: e.status.input_bytes, result_bytes: e.status.result_bytes,
        timings_ms: e.status.timings_ms, options: e.status.options, created_at: e.status.created_at,
      } : null,
    }));
    // If storage is full, drop thumbnails from the oldest entries, then the oldest entries.
    for (let attempt = 0; attempt < 40; attempt++) {
      if (store.set(KEY_JOBS, keep)) return;
      const withThumb = [...keep].reverse().find((x) => x.thumb);
      if (withThumb) withThumb.thumb = null; else if (keep.length) keep.pop(); else return;
    }
  }

  function loadHistory() {
    const list = store.get(KEY_JOBS, []);
    if (!Array.isArray(list)) return;
    for (const x of list) {
      if (!x || typeof x.id !== 'string') continue;
      entries.push(newEntry({
        id: x.id, name: String(x.name || 'image'), size: x.size ?? null, created: x.created || Date.now(),
        thumb: typeof x.thumb === 'string' && x.thumb.startsWith('data:image/') ? x.thumb : null,
        state: STATE_WORDS[x.state] ? x.state : 'queued', options: x.options || null, error: x.error || null,
        status: x.status || null, restored: true,
      }));
    }
  }

  // ---------- options ----------

  const form = $('opts');
  const thr = $('threshold');
  const thrRange = $('threshold-range');
  const fragN = $('fragments-n');

  function radio(name) { const r = form.querySelector(`input[name="${name}"]:checked`); return r ? r.value : null; }
  function setRadio(name, value) {
    const r = form.querySelector(`input[name="${name}"][value="${value}"]`);
    if (r) r.checked = true;
  }

  function applyOptions(o) {
    setRadio('output', o.output === 'magnitude' ? 'magnitude' : 'binary');
    setRadio('magnitude', o.magnitude === 'l1' ? 'l1' : 'l2');
    const t = Number.isInteger(o.threshold) && o.threshold >= 0 && o.threshold <= 65535 ? o.threshold : DEFAULTS.threshold;
    thr.value = String(t);
    thrRange.value = String(Math.min(t, Number(thrRange.max)));
    setRadio('fragments', o.fragments === 'fixed' ? 'fixed' : 'auto');
    fragN.value = String(Number.isInteger(o.fragmentsN) && o.fragmentsN >= 1 ? o.fragmentsN : DEFAULTS.fragmentsN);
    syncOptionUi();
  }

  function syncOptionUi() {
    const magnitudeOut = radio('output') === 'magnitude';
    const field = $('thr-field');
    thr.disabled = magnitudeOut;
    thrRange.disabled = magnitudeOut;
    field.setAttribute('aria-disabled', String(magnitudeOut));
    $('thr-hint').textContent = magnitudeOut
      ? 'Not used for edge strength in greys: every pixel shows its strength.'
      : 'Lower finds fainter edges, higher keeps only strong ones. Default 100.';
    fragN.disabled = radio('fragments') !== 'fixed';
  }

  function formState() {
    return {
      output: radio('output'), magnitude: radio('magnitude'), threshold: Number(thr.value),
      fragments: radio('fragments'), fragmentsN: Number(fragN.value),
    };
  }

  // Returns the API options, or null (with a message shown) when a field is not valid.
  function readOptions() {
    const f = formState();
    const err = $('opts-error');
    let problem = null, focus = null;
    if (!Number.isInteger(f.threshold) || f.threshold < 0 || f.threshold > 65535) {
      problem = 'The threshold must be a whole number from 0 to 65535.'; focus = thr;
    } else if (f.fragments === 'fixed' && (!Number.isInteger(f.fragmentsN) || f.fragmentsN < 1 || f.fragmentsN > 1024)) {
      problem = 'The number of strips must be a whole number from 1 to 1024.'; focus = fragN;
    }
    if (problem) {
      err.textContent = problem; err.hidden = false;
      if (focus) focus.focus();
      return null;
    }
    err.hidden = true;
    return {
      threshold: f.threshold, magnitude: f.magnitude, output: f.output,
      fragments: f.fragments === 'fixed' ? f.fragmentsN : 'auto',
    };
  }

  function optionQuery(o) {
    const q = new URLSearchParams();
    q.set('threshold', String(o.threshold));
    q.set('magnitude', o.magnitude);
    q.set('output', o.output);
    if (o.fragments !== 'auto') q.set('fragments', String(o.fragments));
    return q.toString();
  }

  function describeOptions(o) {
    if (!o) return '–';
    const parts = [];
    parts.push(o.output === 'magnitude' ? 'edge strength in greys' : `black and white, threshold ${o.threshold}`);
    parts.push(o.magnitude === 'l1' ? 'approximate strength (|gx|+|gy|)' : 'exact strength (√)');
    if (o.fragments != null && o.fragments !== 'auto') parts.push(`${o.fragments} strips requested`);
    return parts.join(', ');
  }

  thrRange.addEventListener('input', () => { thr.value = thrRange.value; saveOptions(); });
  thr.addEventListener('input', () => {
    const v = Number(thr.value);
    if (Number.isFinite(v)) thrRange.value = String(Math.min(Math.max(v, 0), Number(thrRange.max)));
    saveOptions();
  });
  form.addEventListener('change', () => { syncOptionUi(); saveOptions(); });
  form.addEventListener('submit', (ev) => ev.preventDefault());
  $('reset-opts').addEventListener('click', () => {
    applyOptions(DEFAULTS); saveOptions(); $('opts-error').hidden = true; announce('Options reset to defaults.');
  });
  function saveOptions() { store.set(KEY_OPTS, formState()); }

  // ---------- API key ----------

  function showKeyState() {
    $('key-state').textContent = apiKey() ? 'A key is saved in this browser.' : 'No key saved.';
  }
  $('key-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('api-key').value.trim();
    if (v) store.set(KEY_API, v); else store.remove(KEY_API);
    $('api-key').value = '';
    showKeyState();
    loadLimits();
    // Jobs that were refused for a missing key can go again.
    for (const e of entries) if (e.error && e.error.code === 'unauthorized' && e.file) retry(e);
  });
  $('forget-key').addEventListener('click', () => { store.remove(KEY_API); $('api-key').value = ''; showKeyState(); });

  // ---------- limits ----------

  async function loadLimits() {
    try {
      const r = await fetch('api/limits', { headers: authHeaders({ Accept: 'application/json' }), cache: 'no-store' });
      if (!r.ok) return;
      const j = await r.json();
      if (j && typeof j === 'object') limits = Object.assign({}, limits, j);
      let text = `JPEG, PNG, WebP, GIF, BMP or TIFF, up to ${fmtBytes(limits.max_upload_bytes)}`;
      if (limits.max_pixels) text += ` and ${fmtMP(limits.max_pixels)}`;
      $('limits-hint').textContent = `${text}. Several at once are processed one after another.`;
    } catch { /* keep the defaults; errors still come from the server */ }
  }

  // ---------- adding files ----------

  function pastedName(file) {
    const d = new Date();
    const p = (n) => String(n).padStart(2, '0');
    const ext = (file.type.split('/')[1] || 'png').replace('jpeg', 'jpg').replace(/[^a-z0-9]/gi, '');
    return `pasted-${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}.${ext}`;
  }

  function addFiles(fileList, fromPaste) {
    const files = Array.from(fileList || []).filter(Boolean);
    if (!files.length) return;
    const options = readOptions();
    if (!options) return;
    let first = null;
    for (const file of files) {
      const name = fromPaste && (!file.name || /^image\.\w+$/.test(file.name)) ? pastedName(file) : (file.name || 'image');
      const e = newEntry({ name, size: file.size, file, options: Object.assign({}, options), state: 'waiting' });
      try { e.beforeUrl = URL.createObjectURL(file); } catch { e.beforeUrl = null; }
      entries.unshift(e);
      if (!first) first = e;
      if (limits.max_upload_bytes && file.size > limits.max_upload_bytes) {
        failLocal(e, { code: 'payload-too-large', message: '' }, 413);
      } else if (file.size === 0) {
        failLocal(e, { code: 'empty-file', message: '' }, 0);
      }
      makeThumb(file).then((t) => {
        if (!t) return;
        e.localWidth = t.width; e.localHeight = t.height;
        if (!e.thumb) { e.thumb = t.url; persist(); renderItem(e); }
      });
    }
    follow = true;
    select(first, true);
    announce(files.length === 1 ? `Added ${first.name}.` : `Added ${files.length} images to the queue.`);
    renderAll();
    pump();
  }

  async function makeThumb(blob) {
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

  // ---------- the queue ----------

  function pump() {
    if (entries.some((e) => e.file && RUNNING.has(e.state))) return;
    for (let i = entries.length - 1; i >= 0; i--) {
      if (entries[i].state === 'waiting') { upload(entries[i]); return; }
    }
  }

  function clearTimer(e) { if (e.timer) { clearTimeout(e.timer); e.timer = null; } }

  function upload(e) {
    clearTimer(e);
    if (!e.file) return;
    e.state = 'uploading'; e.uploadFrac = 0; e.error = null; e.netTrouble = false;
    if (follow) select(e, true);
    render(e);
    announce(`Uploading ${e.name}.`);
    const xhr = new XMLHttpRequest();
    e.xhr = xhr;
    xhr.open('POST', `upload?${optionQuery(e.options)}`);
    const headers = authHeaders({ Accept: 'application/json' });
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (ev) => {
      if (ev.lengthComputable && ev.total > 0) { e.uploadFrac = ev.loaded / ev.total; render(e); }
    };
    xhr.onload = () => {
      if (e.xhr !== xhr) return;
      e.xhr = null;
      onUploadAnswer(e, xhr.status, xhr.responseText, xhr.getResponseHeader('Retry-After'));
    };
    xhr.onerror = () => {
      if (e.xhr !== xhr) return;
      e.xhr = null;
      networkTrouble(e);
    };
    const fd = new FormData();
    fd.append('image', e.file, e.name);
    xhr.send(fd);
  }

  function onUploadAnswer(e, status, text, retryAfter) {
    if (status === 202 || status === 200) {
      let j = null;
      try { j = JSON.parse(text); } catch { /* handled below */ }
      if (j && typeof j.id === 'string' && j.id) {
        e.id = j.id; e.state = 'queued'; e.tries = 0; e.created = Date.now();
        persist();
        if (selectedKey === e.key) updateHash(e);
        render(e);
        track(e);
        return;
      }
      failLocal(e, { code: 'internal', message: 'The server gave no job id.' }, status);
      pump();
      return;
    }
    const err = parseError(text) || { code: status === 429 ? 'too-busy' : status === 503 ? 'unavailable' : status === 413 ? 'payload-too-large' : '', message: '' };
    if (err.code === 'too-busy' || err.code === 'unavailable' || status === 429 || status === 503 || status === 502 || status === 504) {
      if (!err.code || !['too-busy', 'unavailable'].includes(err.code)) err.code = status === 429 ? 'too-busy' : 'unavailable';
      busy(e, err, retryAfterSeconds(retryAfter));
      return;
    }
    failLocal(e, err, status);
    pump();
  }

  function failLocal(e, err, status) {
    clearTimer(e);
    e.state = 'error';
    e.error = Object.assign({ status }, err);
    render(e);
    if (selectedKey === e.key) announce(errorInfo(e).title);
  }

  function busy(e, err, seconds) {
    e.tries++;
    e.state = 'busy';
    e.error = err;
    if (e.tries > MAX_AUTO_RETRIES) {
      e.retryAt = 0;
    } else {
      e.retryAt = Date.now() + seconds * 1000;
      clearTimer(e);
      e.timer = setTimeout(() => { e.timer = null; if (e.state === 'busy') upload(e); }, seconds * 1000);
    }
    startTicker();
    render(e);
    if (selectedKey === e.key) announce(`${errorInfo(e).title} ${e.retryAt ? `Trying again in ${seconds} seconds.` : ''}`);
  }

  function networkTrouble(e) {
    // The upload never reached the server, or the answer was lost: wait and send it again.
    e.netTrouble = true;
    const seconds = Math.min(30, 2 ** Math.min(e.tries, 4) * 2);
    busy(e, { code: 'network', message: '' }, navigator.onLine === false ? 30 : seconds);
  }

  function retry(e) {
    if (!e) return;
    clearTimer(e);
    if (e.file && (!e.id || e.state === 'failed' || e.state === 'expired' || e.state === 'error')) {
      if (e.id && e.state !== 'busy') {
        // A new job for the same file: keep the old one in history under its own id.
        const copy = newEntry({ name: e.name, size: e.size, file: e.file, options: e.options, thumb: e.thumb,
          localWidth: e.localWidth, localHeight: e.localHeight });
        try { copy.beforeUrl = URL.createObjectURL(e.file); } catch { copy.beforeUrl = null; }
        e.file = null;
        entries.unshift(copy);
        e = copy;
      }
      e.state = 'waiting'; e.error = null; e.tries = 0;
      follow = true;
      select(e, true);
      renderAll();
      if (!entries.some((x) => x !== e && x.file && RUNNING.has(x.state))) upload(e); else pump();
      return;
    }
    if (e.state === 'busy') { upload(e); return; }
    if (e.id) refresh(e);
  }

  function cancel(e) {
    if (!e) return;
    clearTimer(e);
    if (e.xhr) { const x = e.xhr; e.xhr = null; x.abort(); }
    stopTracking(e);
    if (!e.id) { removeEntry(e); pump(); return; }
    render(e);
  }

  function removeEntry(e) {
    clearTimer(e);
    if (e.xhr) { const x = e.xhr; e.xhr = null; x.abort(); }
    stopTracking(e);
    if (e.beforeUrl) URL.revokeObjectURL(e.beforeUrl);
    if (e.resultUrl) URL.revokeObjectURL(e.resultUrl);
    entries = entries.filter((x) => x !== e);
    if (selectedKey === e.key) { selectedKey = null; updateHash(null); }
    persist();
    const li = listItems.get(e.key);
    if (li) { li.remove(); listItems.delete(e.key); }
    renderAll();
  }

  // ---------- following a job ----------

  function stopTracking(e) {
    if (e.stream) { const s = e.stream; e.stream = null; s.close(); }
    if (e.pollTimer) { clearTimeout(e.pollTimer); e.pollTimer = null; }
  }

  function track(e) {
    stopTracking(e);
    if (!e.id || FINAL.has(e.state)) return;
    if (!apiKey() && typeof EventSource === 'function') trackWithEventSource(e); else trackWithFetch(e);
  }

  function onEventData(e, data) {
    let s = null;
    try { s = JSON.parse(data); } catch { return; }
    if (s && typeof s === 'object') onStatus(e, s);
  }

  function trackWithEventSource(e) {
    const es = new EventSource(jobPath('events', e.id));
    e.stream = es;
    const handler = (ev) => { if (e.stream === es) onEventData(e, ev.data); };
    es.addEventListener('progress', handler);
    es.addEventListener('done', handler);
    es.addEventListener('failed', handler);
    es.onmessage = handler;
    es.onopen = () => { if (e.netTrouble) { e.netTrouble = false; render(e); } };
    es.onerror = () => {
      if (e.stream !== es) return;
      // The stream broke before the job finished (or the id is unknown): fall back to polling the status.
      es.close();
      e.stream = null;
      if (!FINAL.has(e.state)) poll(e, 0);
    };
  }

  // EventSource cannot send an Authorization header, so with an API key the stream is read with fetch.
  function trackWithFetch(e) {
    const ctrl = new AbortController();
    const handle = { close: () => ctrl.abort() };
    e.stream = handle;
    (async () => {
      try {
        const r = await fetch(jobPath('events', e.id), {
          headers: authHeaders({ Accept: 'text/event-stream' }), cache: 'no-store', signal: ctrl.signal,
        });
        if (!r.ok || !r.body) throw new Error(`events answered ${r.status}`);
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
              if (data.length && e.stream === handle) onEventData(e, data.join('\n'));
              data = [];
            } else if (line.startsWith('data:')) {
              data.push(line.slice(5).replace(/^ /, ''));
            }
          }
        }
      } catch { /* aborted or broken: handled below */ }
      if (e.stream !== handle) return;
      e.stream = null;
      if (!FINAL.has(e.state)) poll(e, 0);
    })();
  }

  function poll(e, delay) {
    if (e.pollTimer) clearTimeout(e.pollTimer);
    e.pollTimer = setTimeout(async () => {
      e.pollTimer = null;
      if (FINAL.has(e.state) || !entries.includes(e)) return;
      const ok = await refresh(e, true);
      if (!FINAL.has(e.state) && entries.includes(e)) {
        e.pollDelay = ok ? 1000 : Math.min(10000, e.pollDelay * 2);
        poll(e, e.pollDelay);
      }
    }, delay);
  }

  // One status request. Returns false on a network problem.
  async function refresh(e, fromPoll) {
    let r;
    try {
      r = await fetch(jobPath('status', e.id), { headers: authHeaders({ Accept: 'application/json' }), cache: 'no-store' });
    } catch {
      if (!e.netTrouble) { e.netTrouble = true; render(e); }
      return false;
    }
    if (e.netTrouble) { e.netTrouble = false; render(e); }
    if (r.status === 404) { expire(e); return true; }
    const text = await r.text().catch(() => '');
    if (r.ok) {
      onEventData(e, text);
      if (!fromPoll && !FINAL.has(e.state) && !e.stream) track(e);
      return true;
    }
    const err = parseError(text) || { code: '', message: '' };
    if (r.status === 401) { e.error = err; e.state = e.state === 'done' ? 'done' : e.state; e.authProblem = true; render(e); return true; }
    return r.status < 500;
  }

  function expire(e) {
    stopTracking(e);
    e.state = 'expired';
    e.error = { code: 'not-found', message: '' };
    persist();
    render(e);
    if (selectedKey === e.key) announce(errorInfo(e).title);
    pump();
  }

  function onStatus(e, s) {
    const prev = e.state;
    e.status = s;
    if (s.options && !e.options) e.options = s.options;
    e.authProblem = false;
    if (s.state === 'done') {
      e.state = 'done';
      stopTracking(e);
      if (!e.resultUrl) fetchResult(e);
    } else if (s.state === 'failed') {
      e.state = 'failed';
      e.error = s.error || { code: 'job-failed', message: '' };
      stopTracking(e);
      if (selectedKey === e.key) announce(errorInfo(e).title);
    } else {
      e.state = s.state === 'processing' ? 'processing' : 'queued';
    }
    if (prev !== e.state) persist();
    render(e);
    if (FINAL.has(e.state)) pump();
  }

  async function fetchResult(e, attempt = 0) {
    let r;
    try {
      r = await fetch(jobPath('result', e.id), { headers: authHeaders({ Accept: 'image/png' }), cache: 'no-store' });
    } catch {
      e.netTrouble = true; render(e);
      setTimeout(() => fetchResult(e, attempt + 1), Math.min(10000, 1000 * 2 ** Math.min(attempt, 4)));
      return;
    }
    if (r.status === 200) {
      const blob = await r.blob();
      if (!entries.includes(e)) return;
      e.netTrouble = false;
      e.resultBlob = blob;
      if (e.resultUrl) URL.revokeObjectURL(e.resultUrl);
      e.resultUrl = URL.createObjectURL(blob);
      if (!e.thumb) {
        const t = await makeThumb(blob);
        if (t) { e.thumb = t.url; persist(); }
      }
      render(e);
      if (selectedKey === e.key) announce(`${e.name}: edges are ready.`);
      return;
    }
    if (r.status === 202 && attempt < 20) { setTimeout(() => fetchResult(e, attempt + 1), 500); return; }
    if (r.status === 404) { expire(e); return; }
    const err = parseError(await r.text().catch(() => '')) || { code: 'job-failed', message: '' };
    if (r.status === 422) { e.state = 'failed'; e.error = err; persist(); render(e); return; }
    e.error = err; e.resultProblem = true; render(e);
  }

  // Open a job known only by its id (a shared link, or one from the history after a reload).
  function openJob(id) {
    let e = entries.find((x) => x.id === id);
    if (!e) {
      e = newEntry({ id, name: `Shared result ${id.slice(0, 8)}`, state: 'queued', shared: true });
      entries.unshift(e);
    }
    follow = false;
    selectedKey = null;
    select(e);
  }

  // Make sure the selected entry shows live data: follow it if pending, load its PNG if done.
  function activate(e) {
    if (!e || !e.id) return;
    if (e.state === 'done' && !e.resultUrl) { fetchResult(e); return; }
    if ((e.state === 'queued' || e.state === 'processing') && !e.stream && !e.pollTimer) { refresh(e); }
  }

  // ---------- error words ----------

  function errorInfo(e) {
    const err = e.error || {};
    const code = err.code || '';
    const detail = err.message || '';
    const name = `“${e.name}”`;
    const info = { title: '', text: '', detail, retry: false, kind: 'error' };
    switch (code) {
      case 'unsupported-format':
        info.title = 'This file is not an image we can read';
        info.text = `${name} is not in a supported format. Use a JPEG, PNG, WebP, GIF, BMP or TIFF image.`;
        break;
      case 'corrupt-image':
        info.title = 'The image could not be decoded';
        info.text = `${name} looks like an image but is damaged or incomplete. Try saving or exporting it again.`;
        break;
      case 'image-too-large': {
        info.title = 'The image has too many pixels';
        const dims = e.localWidth ? ` (${fmtInt(e.localWidth)} × ${fmtInt(e.localHeight)})` : '';
        let lim = '';
        if (limits.max_pixels) lim = ` The limit is ${fmtMP(limits.max_pixels)}` + (limits.max_dimension ? `, at most ${fmtInt(limits.max_dimension)} pixels on a side.` : '.');
        info.text = `${name}${dims} is larger than the server accepts.${lim} Scale it down and try again.`;
        break;
      }
      case 'payload-too-large':
        info.title = 'The file is too large';
        info.text = `${name}${e.size != null ? ` is ${fmtBytes(e.size)}; the` : ': the'} server accepts files up to ${fmtBytes(limits.max_upload_bytes)}. Save it with more compression or fewer pixels and try again.`;
        break;
      case 'empty-file':
        info.title = 'The file is empty';
        info.text = `${name} has no content. Choose the image again.`;
        break;
      case 'missing-file':
        info.title = 'No image arrived';
        info.text = 'The server received no image. Choose the file again.';
        info.retry = !!e.file;
        break;
      case 'invalid-option':
        info.title = 'An option was not accepted';
        info.text = 'Check the options on the left and try again.';
        info.retry = !!e.file;
        break;
      case 'unauthorized':
        info.title = 'This server needs an API key';
        info.text = 'Open “API key” on the left, enter the key you were given, and save it. The upload then starts again.';
        info.retry = !!e.file;
        break;
      case 'not-found':
        info.title = 'This result has expired';
        info.text = 'The server keeps results only for a while, and this one is gone (or the link is wrong).' +
          (e.file ? ' Process the image again to get a new result.' : ' Upload the image again to get a new result.');
        info.retry = !!e.file;
        break;
      case 'job-failed':
        info.title = 'Processing failed';
        info.text = `The server could not finish ${name}.` + (e.file ? ' You can try again.' : '');
        info.retry = !!e.file;
        break;
      case 'too-busy':
      case 'unavailable':
      case 'network': {
        info.kind = 'busy';
        info.retry = true;
        info.title = code === 'too-busy' ? 'The server is busy'
          : code === 'unavailable' ? 'The service is unavailable for a moment' : 'Cannot reach the server';
        const base = code === 'too-busy' ? 'It is working on other images right now.'
          : code === 'unavailable' ? 'It is starting up or being updated.'
            : navigator.onLine === false ? 'You seem to be offline.' : 'The connection was lost.';
        if (e.state === 'busy' && e.retryAt) {
          const left = Math.max(0, Math.ceil((e.retryAt - Date.now()) / 1000));
          info.text = `${base} Trying again in ${left} s…`;
        } else if (e.state === 'busy') {
          info.text = `${base} Still no luck after ${e.tries} tries: try again later.`;
        } else {
          info.text = base;
        }
        break;
      }
      case 'internal':
        info.title = 'Something went wrong on the server';
        info.text = 'This is not your fault. Try again in a moment.';
        info.retry = !!e.file;
        break;
      default:
        info.title = 'The image was not processed';
        info.text = `The server answered with an error${err.status ? ` (${err.status})` : ''}.`;
        info.retry = !!e.file;
    }
    return info;
  }

  // ---------- selection and links ----------

  function updateHash(e) {
    const url = new URL(location.href);
    url.searchParams.delete('job');
    url.hash = e && e.id ? `job=${encodeURIComponent(e.id)}` : '';
    const next = url.pathname + url.search + url.hash;
    if (next !== location.pathname + location.search + location.hash) history.replaceState(null, '', next || url.pathname);
  }

  function shareUrl(e) {
    const url = new URL(location.href);
    url.search = '';
    url.hash = `job=${encodeURIComponent(e.id)}`;
    return url.toString();
  }

  function select(e, auto) {
    if (!e) return;
    if (!auto && selectedKey !== e.key) follow = false;
    selectedKey = e.key;
    updateHash(e);
    renderAll();
    if (!auto) activate(e);
  }

  function jobFromUrl() {
    const h = /(?:^#|[#&])job=([^&]+)/.exec(location.hash);
    if (h) return decodeURIComponent(h[1]);
    const q = new URLSearchParams(location.search).get('job');
    return q || null;
  }

  window.addEventListener('hashchange', () => {
    const id = jobFromUrl();
    const cur = selected();
    if (id && (!cur || cur.id !== id)) openJob(id);
  });

  // ---------- rendering ----------

  function render(e) {
    renderItem(e);
    if (e.key === selectedKey) renderViewer();
  }

  function renderAll() {
    renderList();
    renderViewer();
  }

  function badgeClass(state) {
    return state === 'done' ? 'done' : state === 'busy' ? 'busy' : state === 'waiting' ? 'waiting'
      : (state === 'failed' || state === 'error' || state === 'expired') ? state : 'running';
  }

  function progressOf(e) {
    const s = e.status || {};
    const total = Number(s.strips_total) || 0;
    const done = Math.min(Number(s.strips_done) || 0, total || Infinity);
    switch (e.state) {
      case 'waiting': {
        const ahead = entries.filter((x) => x.file && (x.state === 'waiting' || RUNNING.has(x.state)) && entries.indexOf(x) > entries.indexOf(e)).length;
        return { label: ahead ? `Waiting in line (${ahead} ahead)` : 'Waiting to start', value: null, max: 1, count: '' };
      }
      case 'uploading': {
        const pct = Math.round(e.uploadFrac * 100);
        return { label: `Uploading… ${pct}%`, value: e.uploadFrac, max: 1, count: e.size != null ? fmtBytes(e.size) : '' };
      }
      case 'busy':
        return { label: e.netTrouble ? 'Waiting for the connection' : 'Waiting for the server', value: null, max: 1, count: '' };
      case 'queued':
        return { label: 'Queued on the server', value: total ? done : null, max: total || 1, count: total ? `${done} of ${total} strips` : '' };
      case 'processing':
        if (total && done >= total) return { label: 'Stitching the strips into one PNG', value: done, max: total, count: `${done} of ${total} strips` };
        return { label: total ? 'Filtering strips' : 'Decoding the image', value: total ? done : null, max: total || 1, count: total ? `${done} of ${total} strips` : '' };
      case 'done': {
        const t = total || 1;
        return { label: e.resultUrl ? 'Done' : 'Done, loading the result…', value: t, max: t, count: total ? `${total} of ${total} strips` : '' };
      }
      default:
        return null;
    }
  }

  function statusLine(e) {
    if (e.state === 'busy' && e.retryAt) {
      const left = Math.max(0, Math.ceil((e.retryAt - Date.now()) / 1000));
      return `${e.netTrouble ? 'Offline' : 'Server busy'}, retry in ${left} s`;
    }
    const p = progressOf(e);
    if (e.state === 'processing' && p && p.count) return `Processing ${p.count}`;
    if (e.state === 'uploading') return p.label;
    return STATE_WORDS[e.state] || e.state;
  }

  const listItems = new Map();

  function renderList() {
    const list = $('jobs-list');
    $('jobs-empty').hidden = entries.length > 0;
    $('clear').hidden = !entries.some((e) => !RUNNING.has(e.state) && e.state !== 'waiting');
    entries.forEach((e, i) => {
      const li = renderItem(e);
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    });
    for (const [key, li] of listItems) if (!byKey(key)) { li.remove(); listItems.delete(key); }
  }

  function renderItem(e) {
    let li = listItems.get(e.key);
    if (!li) {
      li = document.createElement('li');
      li.className = 'job-item';
      li.dataset.key = e.key;
      li.innerHTML = '<button type="button" class="job-open"><img class="thumb" alt="" width="56" height="56">' +
        '<span class="job-text"><span class="job-title"></span><span class="job-sub"><span class="st"></span> · <span class="when"></span></span>' +
        '<span class="mini" hidden><span></span></span></span></button>' +
        '<button type="button" class="job-remove">×</button>';
      li.querySelector('.job-open').addEventListener('click', () => { const x = byKey(e.key); if (x) select(x); $('job').scrollIntoView({ block: 'nearest', behavior: 'smooth' }); });
      li.querySelector('.job-remove').addEventListener('click', () => {
        const x = byKey(e.key);
        if (!x) return;
        const next = li.nextElementSibling || li.previousElementSibling;
        removeEntry(x);
        pump();
        const target = next && next.querySelector('.job-remove');
        (target || $('pick')).focus();
      });
      listItems.set(e.key, li);
    }
    li.classList.toggle('selected', e.key === selectedKey);
    li.dataset.state = e.state;
    if (e.id) li.dataset.id = e.id;
    const open = li.querySelector('.job-open');
    if (e.key === selectedKey) open.setAttribute('aria-current', 'true'); else open.removeAttribute('aria-current');
    const img = li.querySelector('.thumb');
    const thumb = e.thumb || 'favicon.svg';
    if (img.getAttribute('src') !== thumb) img.setAttribute('src', thumb);
    li.querySelector('.job-title').textContent = e.name;
    const st = li.querySelector('.st');
    st.textContent = statusLine(e);
    st.className = `st ${badgeClass(e.state)}`;
    li.querySelector('.when').textContent = fmtTime(e.created);
    const p = progressOf(e);
    const mini = li.querySelector('.mini');
    const showMini = RUNNING.has(e.state) && p && p.value != null;
    mini.hidden = !showMini;
    if (showMini) mini.firstElementChild.style.setProperty('width', `${Math.round((p.value / p.max) * 100)}%`);
    li.querySelector('.job-remove').setAttribute('aria-label', RUNNING.has(e.state) || e.state === 'waiting' ? `Cancel and remove ${e.name}` : `Remove ${e.name} from the list`);
    return li;
  }

  let lastStageAnnounced = '';

  function renderViewer() {
    const e = selected();
    $('empty').hidden = !!e;
    $('job').hidden = !e;
    for (const [key, li] of listItems) {
      li.classList.toggle('selected', key === selectedKey);
      const open = li.querySelector('.job-open');
      if (key === selectedKey) open.setAttribute('aria-current', 'true'); else open.removeAttribute('aria-current');
    }
    if (!e) return;

    $('job-name').textContent = e.name;
    const badge = $('job-badge');
    badge.textContent = STATE_WORDS[e.state] || e.state;
    badge.className = `badge ${badgeClass(e.state)}`;

    // progress
    const p = progressOf(e);
    const prog = $('progress');
    const bar = $('bar');
    prog.hidden = !p;
    prog.dataset.state = e.state;
    if (p) {
      $('stage').textContent = p.label;
      $('count').textContent = p.count;
      bar.max = p.max;
      if (p.value == null) bar.removeAttribute('value'); else bar.value = p.value;
      const stage = `${e.name}: ${p.label}`;
      if (e.state !== 'uploading' && stage !== lastStageAnnounced) { lastStageAnnounced = stage; announce(stage); }
    }

    // alert
    const alertBox = $('alert');
    const showAlert = ['busy', 'failed', 'error', 'expired'].includes(e.state) || e.netTrouble || e.authProblem || e.resultProblem;
    alertBox.hidden = !showAlert;
    if (showAlert) {
      let info;
      if (e.netTrouble && e.state !== 'busy') {
        info = { title: 'Connection lost', text: 'Reconnecting to follow this job…', detail: '', retry: false, kind: 'busy' };
      } else if (e.authProblem) {
        info = errorInfo({ name: e.name, error: { code: 'unauthorized' } });
      } else {
        info = errorInfo(e);
      }
      alertBox.className = `alert${info.kind === 'busy' ? ' busy' : ''}`;
      $('alert-title').textContent = info.title;
      $('alert-text').textContent = info.text;
      $('alert-detail').textContent = info.detail ? `Server message: ${info.detail}` : '';
      const retryBtn = $('retry-now');
      retryBtn.hidden = !info.retry;
      retryBtn.textContent = e.state === 'busy' ? 'Retry now' : (e.state === 'expired' || e.state === 'failed') ? 'Process again' : 'Try again';
      const cancelBtn = $('alert-cancel');
      cancelBtn.hidden = !(e.state === 'busy' || e.state === 'error');
      cancelBtn.textContent = e.state === 'busy' ? 'Cancel' : 'Remove';
    }

    // preview while there is no result yet
    const hasResult = !!e.resultUrl && e.state === 'done';
    const showPreview = !hasResult && !!e.beforeUrl && !e.beforeBroken && e.state !== 'error';
    $('preview-wrap').hidden = !showPreview;
    const preview = $('preview');
    if (showPreview && preview.getAttribute('src') !== e.beforeUrl) { preview.src = e.beforeUrl; preview.alt = `Original: ${e.name}`; }

    // result and comparison
    $('result-wrap').hidden = !hasResult;
    if (hasResult) {
      const after = $('after');
      const before = $('before');
      if (after.getAttribute('src') !== e.resultUrl) { after.src = e.resultUrl; after.alt = `Edges found in ${e.name}`; }
      const canCompare = !!e.beforeUrl && !e.beforeBroken;
      $('compare').classList.toggle('no-before', !canCompare);
      $('compare-hint').textContent = canCompare ? 'Drag the divider, or focus it and use the arrow keys.'
        : 'The original is not available here (opened from a link or an earlier visit), so only the edges are shown.';
      if (canCompare && before.getAttribute('src') !== e.beforeUrl) { before.src = e.beforeUrl; before.alt = `Original: ${e.name}`; }
      if (!canCompare) before.removeAttribute('src');
      $('divider').tabIndex = canCompare ? 0 : -1;
      const dl = $('download');
      dl.href = e.resultUrl;
      dl.download = `${baseName(e.shared ? `dsobel-${e.id.slice(0, 8)}` : e.name)}-edges.png`;
      $('share').value = shareUrl(e);
      sizeCompare();
    }

    renderFacts(e);
  }

  function renderFacts(e) {
    const s = e.status || {};
    const facts = [];
    if (s.width && s.height) facts.push(['Size', `${fmtInt(s.width)} × ${fmtInt(s.height)} px`]);
    else if (e.localWidth) facts.push(['Size', `${fmtInt(e.localWidth)} × ${fmtInt(e.localHeight)} px`]);
    const inBytes = s.input_bytes ?? e.size;
    if (inBytes != null) facts.push(['Original file', fmtBytes(inBytes)]);
    const outBytes = s.result_bytes ?? (e.resultBlob ? e.resultBlob.size : null);
    if (outBytes != null) facts.push(['Result PNG', fmtBytes(outBytes)]);
    if (s.strips_total) facts.push(['Strips', String(s.strips_total)]);
    const t = s.timings_ms || {};
    const timing = [['decode', 'Decoding'], ['queue_wait', 'Waiting in queue'], ['filter', 'Filtering'], ['encode', 'Encoding'], ['stitch', 'Stitching'], ['total', 'Total time']];
    for (const [k, label] of timing) if (t[k] != null) facts.push([label, fmtMs(Number(t[k]))]);
    const opts = s.options || e.options;
    if (opts) facts.push(['Options', describeOptions(opts), true]);
    if (e.id) facts.push(['Job id', e.id, true]);
    const dl = $('facts');
    const html = facts.map(([k, v, wide]) => `<div${wide ? ' class="wide"' : ''}><dt>${esc(k)}</dt><dd>${esc(v)}</dd></div>`).join('');
    if (dl.innerHTML !== html) dl.innerHTML = html;
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  }

  function startTicker() {
    if (ticker) return;
    ticker = setInterval(() => {
      const waiting = entries.filter((e) => e.state === 'busy');
      if (!waiting.length) { clearInterval(ticker); ticker = null; return; }
      for (const e of waiting) render(e);
    }, 1000);
  }

  // ---------- before/after comparison ----------

  const compare = $('compare');
  const divider = $('divider');
  let dividerPos = 50;

  function setDivider(pos) {
    dividerPos = Math.max(0, Math.min(100, pos));
    const r = Math.round(dividerPos * 10) / 10;
    compare.style.setProperty('--pos', `${r}%`);
    divider.setAttribute('aria-valuenow', String(Math.round(dividerPos)));
    divider.setAttribute('aria-valuetext', `${Math.round(dividerPos)}% original, ${100 - Math.round(dividerPos)}% edges`);
  }

  function posFromEvent(ev) {
    const rect = compare.getBoundingClientRect();
    return rect.width ? ((ev.clientX - rect.left) / rect.width) * 100 : 50;
  }

  compare.addEventListener('pointerdown', (ev) => {
    if (compare.classList.contains('no-before') || (ev.pointerType === 'mouse' && ev.button !== 0)) return;
    ev.preventDefault();
    compare.setPointerCapture(ev.pointerId);
    setDivider(posFromEvent(ev));
    divider.focus({ preventScroll: true });
  });
  compare.addEventListener('pointermove', (ev) => {
    if (compare.hasPointerCapture(ev.pointerId)) setDivider(posFromEvent(ev));
  });
  divider.addEventListener('keydown', (ev) => {
    const step = ev.shiftKey ? 10 : 1;
    let next = null;
    switch (ev.key) {
      case 'ArrowLeft': case 'ArrowDown': next = dividerPos - step; break;
      case 'ArrowRight': case 'ArrowUp': next = dividerPos + step; break;
      case 'PageDown': next = dividerPos - 10; break;
      case 'PageUp': next = dividerPos + 10; break;
      case 'Home': next = 0; break;
      case 'End': next = 100; break;
      default: return;
    }
    ev.preventDefault();
    setDivider(next);
  });

  function zoomValue() { const r = document.querySelector('input[name="zoom"]:checked'); return r ? r.value : 'fit'; }

  function sizeCompare() {
    const after = $('after');
    const nw = after.naturalWidth, nh = after.naturalHeight;
    if (!nw || !nh) return;
    const zoom = zoomValue();
    compare.dataset.zoom = zoom;
    let w;
    if (zoom === 'fit') {
      const scroller = $('scroller');
      const availW = Math.max(100, scroller.clientWidth - 16);
      const availH = Math.max(220, window.innerHeight * 0.7);
      w = Math.min(nw, availW, nw * (availH / nh));
    } else {
      // Actual pixels: one image pixel per screen pixel, whatever the display's density.
      w = (nw * Number(zoom)) / (window.devicePixelRatio || 1);
    }
    after.style.setProperty('width', `${Math.max(1, Math.floor(w))}px`);
  }

  $('after').addEventListener('load', sizeCompare);
  $('before').addEventListener('error', () => {
    const e = selected();
    if (e && $('before').getAttribute('src') === e.beforeUrl) { e.beforeBroken = true; renderViewer(); }
  });
  $('preview').addEventListener('error', () => {
    const e = selected();
    if (e && $('preview').getAttribute('src') === e.beforeUrl) { e.beforeBroken = true; renderViewer(); }
  });
  document.querySelectorAll('input[name="zoom"]').forEach((r) => r.addEventListener('change', () => {
    sizeCompare();
    if (zoomValue() !== 'fit') {
      const sc = $('scroller');
      sc.scrollLeft = (sc.scrollWidth - sc.clientWidth) * (dividerPos / 100);
      sc.scrollTop = (sc.scrollHeight - sc.clientHeight) / 2;
    }
  }));
  let resizeTimer = null;
  window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(sizeCompare, 100); });

  // ---------- actions ----------

  $('retry-now').addEventListener('click', () => retry(selected()));
  $('alert-cancel').addEventListener('click', () => {
    const e = selected();
    if (!e) return;
    cancel(e);
    $('pick').focus();
  });
  $('copy-link').addEventListener('click', async () => {
    const input = $('share');
    let ok = false;
    try { await navigator.clipboard.writeText(input.value); ok = true; } catch {
      input.focus(); input.select();
      try { ok = document.execCommand('copy'); } catch { ok = false; }
    }
    const btn = $('copy-link');
    btn.textContent = ok ? 'Link copied' : 'Select and copy the link';
    announce(ok ? 'Share link copied to the clipboard.' : 'Copy the selected link with Ctrl+C.');
    if (!ok) { input.focus(); input.select(); }
    setTimeout(() => { btn.textContent = 'Copy share link'; }, 2500);
  });
  $('share').addEventListener('focus', (ev) => ev.target.select());
  $('clear').addEventListener('click', () => {
    for (const e of [...entries]) if (!RUNNING.has(e.state) && e.state !== 'waiting') removeEntry(e);
    persist();
    renderAll();
    announce('History cleared.');
    $('pick').focus();
  });

  // ---------- file picker, drag and drop, paste ----------

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

  // ---------- online / offline ----------

  function showNet() { $('net').hidden = navigator.onLine !== false; }
  window.addEventListener('offline', () => { showNet(); announce('You are offline.'); });
  window.addEventListener('online', () => {
    showNet();
    announce('Back online.');
    for (const e of entries) {
      if (e.state === 'busy' && e.netTrouble) upload(e);
      else if (e.netTrouble && e.id && !FINAL.has(e.state)) poll(e, 0);
    }
  });

  // ---------- start ----------

  applyOptions(Object.assign({}, DEFAULTS, store.get(KEY_OPTS, {}) || {}));
  showKeyState();
  showNet();
  setDivider(50);
  loadHistory();
  loadLimits();
  const initial = jobFromUrl();
  renderAll();
  if (initial) openJob(initial);
  // Jobs left unfinished on an earlier visit: ask once where they stand.
  for (const e of entries) if (e.restored && (e.state === 'queued' || e.state === 'processing') && e.id !== initial) refresh(e, true);
})();
