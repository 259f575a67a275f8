// The selected job: name, state, progress, alert, notice, the original while it is processed,
// and the result: before/after comparison with a divider (dragged by its handle or moved by
// keyboard), "edges over the original" and inverted views, zoom (fit, actual pixels, 4×, pinch
// or Ctrl+wheel) with panning by dragging, an edge-preserving display copy at "Fit", the
// live preview of new options with "run again", downloads, copying, and the job's facts.
import { $, announce, esc, fmtBytes, fmtInt, fmtMs } from './util.js';
import { FINAL, PENDING, jobs, selected } from './jobs.js';
import { alertInfo, badgeClass, badgeWord, describeOptions, downloadName, optionsMedium, resultFormat, trouble } from './words.js';
import { readOptions, sameOptions } from './options.js';
import {
  cachedPreview, computedHere, drawPreview, drawServerPreview, gradients, keepPreview, previewOptions, serverPreview,
} from './preview.js';
import { optionQuery } from './api.js';
import { FORMAT_WORDS, magnitude16Max, normalizeOptions } from './operators.js';
import { rasterWords } from './raster.js';

const compare = $('compare');
const scroller = $('scroller');
const after = $('after');
const before = $('before');
const fitCanvas = $('after-fit');
const divider = $('divider');
const MAX_ZOOM = 8;

let dividerPos = 50;
let zoom = 'fit';            // 'fit', or image pixels per device pixel (1, 4, or any value reached by pinching)
let lastStage = '';

// ---------- progress ----------

export function progressOf(e) {
  const s = e.status || {};
  const total = Number(s.strips_total) || 0;
  const done = Math.min(Number(s.strips_done) || 0, total || Infinity);
  switch (e.state) {
    case 'waiting': {
      const list = jobs.entries;
      const ahead = list.filter((x) => x.file && PENDING.has(x.state) && list.indexOf(x) > list.indexOf(e)).length;
      return { label: ahead ? `Waiting in line (${ahead} ahead)` : 'Waiting to start', value: null, max: 1, count: '' };
    }
    case 'uploading': {
      const pct = Math.round(e.uploadFrac * 100);
      return { label: `Uploading… ${pct}%`, value: e.uploadFrac, max: 1, count: e.size != null ? fmtBytes(e.size) : '' };
    }
    case 'busy':
      return { label: 'Waiting for the server', value: null, max: 1, count: '' };
    case 'reconnecting':
      return { label: 'Waiting for the server', value: null, max: 1, count: '' };
    case 'queued':
      return { label: 'Queued on the server', value: total ? done : null, max: total || 1, count: total ? `${done} of ${total} strips` : '' };
    case 'processing':
      if (total && done >= total) return { label: `Stitching the strips into one ${FORMAT_WORDS[resultFormat(e)]}`, value: done, max: total, count: `${done} of ${total} strips` };
      return { label: total ? 'Filtering strips' : 'Decoding the image', value: total ? done : null, max: total || 1, count: total ? `${done} of ${total} strips` : '' };
    case 'done': {
      const t = total || 1;
      return { label: e.resultUrl ? 'Finished' : 'Loading the result…', value: t, max: t, count: total ? `${total} of ${total} strips` : '' };
    }
    default:
      return null;
  }
}

// ---------- rendering ----------

export function renderViewer() {
  const e = selected();
  $('empty').hidden = !!e;
  $('job').hidden = !e;
  if (!e) return;

  $('job-name').textContent = e.name;
  const badge = $('job-badge');
  badge.textContent = badgeWord(e);
  badge.className = `badge ${badgeClass(e)}`;
  const cancelBtn = $('cancel-job');
  cancelBtn.hidden = !PENDING.has(e.state) || trouble(e) === 'offline';
  cancelBtn.disabled = !!e.cancelling;

  const notice = $('notice');
  notice.hidden = !e.notice;
  notice.textContent = e.notice || '';

  const hasResult = !!e.resultUrl && e.state === 'done';

  // Progress: shown while the job runs; once the result is shown, the badge says it is done.
  const p = progressOf(e);
  const prog = $('progress');
  const bar = $('bar');
  prog.hidden = !p || hasResult || !!trouble(e);
  prog.dataset.state = e.state;
  if (p) {
    $('stage').textContent = p.label;
    $('count').textContent = p.count;
    bar.max = p.max;
    if (p.value == null) bar.removeAttribute('value'); else bar.value = p.value;
    const stage = `${e.name}: ${p.label}`;
    if (e.state !== 'uploading' && e.state !== 'done' && stage !== lastStage) { lastStage = stage; announce(stage); }
  }

  // Alert: what went wrong and what to do, said once.
  const info = alertInfo(e, jobs.limits);
  const alertBox = $('alert');
  alertBox.hidden = !info;
  if (info) {
    alertBox.className = `alert${info.kind === 'busy' ? ' busy' : ''}`;
    $('alert-title').textContent = info.title;
    $('alert-text').textContent = info.text;
    $('alert-detail').textContent = info.detail ? `Server message: ${info.detail}` : '';
    const retryBtn = $('retry-now');
    retryBtn.hidden = !info.retry;
    retryBtn.textContent = info.retry || 'Retry now';
    const removeBtn = $('alert-cancel');
    removeBtn.hidden = e.state !== 'error';
  }

  // The original, while there is no result yet.
  const showPreview = !hasResult && !!e.beforeUrl && !e.beforeBroken && !['error', 'cancelled'].includes(e.state);
  $('preview-wrap').hidden = !showPreview;
  const preview = $('preview');
  if (showPreview && preview.getAttribute('src') !== e.beforeUrl) { preview.src = e.beforeUrl; preview.alt = `Original: ${e.name}`; }

  // The result and the comparison. A TIFF or NPY result is shown through its grey drawing.
  $('result-wrap').hidden = !hasResult;
  if (hasResult) {
    const shown = shownUrl(e);
    const drawn = !!e.displayUrl;
    const renderHint = $('render-hint');
    renderHint.textContent = drawn ? `${rasterWords(e.rasterInfo)} Download the file for the values themselves.`
      : e.renderProblem ? `This file cannot be shown here (${e.renderProblem}). Download it to open it with another tool.`
        : pngWords(e);
    renderHint.hidden = !renderHint.textContent;
    $('scroller').hidden = !shown;
    document.querySelector('#result-wrap .toolbar').hidden = !shown;
    document.querySelector('#result-wrap .gesture-hint').hidden = !shown;
    if (shown && after.getAttribute('src') !== shown) {
      after.src = shown;
      after.alt = drawn ? `${FORMAT_WORDS[e.rasterInfo.format]} result for ${e.name}, drawn in grey` : `Edges found in ${e.name}`;
      fitCanvas.hidden = true; fitCanvas.dataset.key = '';
    }
    const canCompare = !!e.beforeUrl && !e.beforeBroken;
    compare.classList.toggle('no-before', !canCompare);
    $('view-overlay').disabled = !canCompare;
    if (!canCompare && viewMode() === 'overlay') { document.querySelector('input[name="view"][value="slider"]').checked = true; }
    compare.dataset.view = viewMode();
    $('compare-hint').hidden = canCompare;
    if (canCompare && before.getAttribute('src') !== e.beforeUrl) { before.src = e.beforeUrl; before.alt = `Original: ${e.name}`; }
    if (!canCompare) before.removeAttribute('src');
    divider.tabIndex = canCompare && viewMode() === 'slider' ? 0 : -1;
    const dl = $('download');
    dl.href = e.resultUrl;
    dl.download = downloadName(e);
    const fmt = `Download ${FORMAT_WORDS[kindOf(e)]}`;
    if (dl.textContent !== fmt) dl.textContent = fmt;
    $('copy-image').hidden = !shown;
    $('share').value = shareUrl(e);
    sizeCompare();
  }

  renderTune(e);
  renderFacts(e);
}

// What a PNG of values (not edges) shows, in words.
function pngWords(e) {
  const o = normalizeOptions((e.status && e.status.options) || e.options);
  if (o.output === 'magnitude16') {
    return `The PNG holds 16-bit values, up to ${magnitude16Max(o).toLocaleString('en')} with this kernel, shown on the full 16-bit scale: ` +
      'weak edges look dark here. Download the file for the values themselves.';
  }
  if (o.output === 'direction') return 'Each grey level is an angle, in 256 steps of 1.4°: 0 (black) points right, 64 down, 128 (mid-grey) left, 192 up.';
  return '';
}

// The image the viewer shows for a result: the PNG itself, or the drawing of a TIFF or NPY.
const kindOf = (e) => e.resultKind || resultFormat(e);
export const shownUrl = (e) => (kindOf(e) === 'png' ? e.resultUrl : e.displayUrl);
const shownBlob = (e) => (kindOf(e) === 'png' ? e.resultBlob : e.displayBlob);

export function shareUrl(e) {
  const url = new URL(location.href);
  url.search = '';
  url.hash = `job=${encodeURIComponent(e.id)}`;
  return url.toString();
}

function renderFacts(e) {
  const s = e.status || {};
  const facts = [], more = [];
  if (s.width && s.height) facts.push(['Size', `${fmtInt(s.width)} × ${fmtInt(s.height)} px`]);
  else if (e.localWidth) facts.push(['Size', `${fmtInt(e.localWidth)} × ${fmtInt(e.localHeight)} px`]);
  const inBytes = s.input_bytes ?? e.size;
  if (inBytes != null) facts.push(['Original file', fmtBytes(inBytes)]);
  const outBytes = s.result_bytes ?? (e.resultBlob ? e.resultBlob.size : null);
  if (outBytes != null) facts.push([`Result ${FORMAT_WORDS[kindOf(e)]}`, fmtBytes(outBytes)]);
  const opts = s.options || e.options;
  if (s.threshold_used != null && opts && opts.threshold === 'otsu') facts.push(['Threshold used', String(s.threshold_used)]);
  if (opts) facts.push(['Options', describeOptions(opts, s.threshold_used), true]);
  if (opts && opts.fragments != null && opts.fragments !== 'auto') more.push(['Strips requested', String(opts.fragments)]);
  if (s.strips_total) more.push(['Strips', String(s.strips_total)]);
  const t = s.timings_ms || {};
  const timing = [['decode', 'Decoding'], ['queue_wait', 'Waiting in queue'], ['filter', 'Filtering'], ['encode', 'Encoding'], ['stitch', 'Stitching'], ['total', 'Total time']];
  for (const [k, label] of timing) if (t[k] != null) more.push([label, fmtMs(Number(t[k]))]);
  if (e.id) more.push(['Job id', e.id, true]);
  const html = (list) => list.map(([k, v, wide]) => `<div${wide ? ' class="wide"' : ''}><dt>${esc(k)}</dt><dd>${esc(v)}</dd></div>`).join('');
  const a = html(facts), b = html(more);
  if ($('facts').innerHTML !== a) $('facts').innerHTML = a;
  if ($('facts-more').innerHTML !== b) $('facts-more').innerHTML = b;
  $('job-details').hidden = !more.length;
}

// ---------- new options: live preview and "run again" ----------

// The preview shows the page's own computation at once, or the server's after a short pause
// (typing a number asks once, at the end); a newer choice aborts the request of an older one.
// #tune's data-state: local, pending, server or failed.
let tuneSeq = 0;
const tune = { key: '', drawn: '', ctrl: null, timer: null };

function stopServerPreview() {
  clearTimeout(tune.timer);
  tune.timer = null;
  if (tune.ctrl) { tune.ctrl.abort(); tune.ctrl = null; }
}

function tuneState(state, hint) {
  $('tune').dataset.state = state;
  const stage = document.querySelector('#tune .tune-stage');
  stage.classList.toggle('pending', state === 'pending');
  stage.setAttribute('aria-busy', String(state === 'pending'));
  $('tune-hint').textContent = hint;
}

function copyWords(p) {
  return p.scaled ? ` on a copy ${p.copyWidth} × ${p.copyHeight} px. Run it again for the full-size result.`
    : '. Run it again to get the full result.';
}

function renderTune(e) {
  const box = $('tune');
  const o = readOptions(false);
  const show = !!o && !!e.file && !e.beforeBroken && FINAL.has(e.state) && e.state !== 'error' && !sameOptions(o, e.options);
  box.hidden = !show;
  if (!show) {
    stopServerPreview();
    if (tune.key !== tune.drawn) tune.key = '';
    return;
  }
  $('tune-opts').textContent = optionsMedium(o);
  const key = `${e.key}|${optionQuery(previewOptions(o))}`;
  if (key === tune.key) return;
  stopServerPreview();
  tune.key = key;
  const mine = ++tuneSeq;
  const canvas = $('tune-canvas');
  const label = `Preview of ${e.name} with ${optionsMedium(o)}`;
  const drawn = () => { tune.drawn = key; canvas.setAttribute('aria-label', label); };

  if (computedHere(o)) {
    gradients(e).then((g) => {
      if (mine !== tuneSeq || selected() !== e) return;
      drawPreview(canvas, g, o);
      drawn();
      tuneState('local', g.scaled
        ? `Computed in this page on a copy ${g.width} × ${g.height} px. Run it again for the full-size result.`
        : 'Computed in this page. Run it again to get the result from the server.');
    }).catch(() => { if (mine === tuneSeq) { box.hidden = true; tune.key = ''; } });
    return;
  }

  const showServer = (p) => {
    const scale = drawServerPreview(canvas, p);
    drawn();
    const grey = scale && !scale.exact
      ? (scale.signed ? ' Grey levels are scaled to the values, with mid-grey at 0.' : ' Grey levels are scaled to the values, from 0 to the largest.')
      : '';
    tuneState('server', `Preview computed by the server${copyWords(p)}${grey}`);
  };
  const cached = cachedPreview(e, key);
  if (cached) { showServer(cached); return; }
  tuneState('pending', 'Asking the server for a preview…');
  tune.timer = setTimeout(async () => {
    tune.timer = null;
    const ctrl = new AbortController();
    tune.ctrl = ctrl;
    try {
      const p = await serverPreview(e, o, ctrl.signal);
      keepPreview(e, key, p);
      if (mine !== tuneSeq || selected() !== e) return;
      showServer(p);
    } catch (err) {
      if (ctrl.signal.aborted || mine !== tuneSeq) return;
      const busy = err && (err.status === 429 || err.status === 503);
      canvas.width = canvas.width; // clear the preview of other options
      tuneState('failed', busy ? 'The server is busy and could not make a preview now. Run it again, or change an option to ask again.'
        : `The server could not make a preview${err && err.message ? ` (${err.message})` : ''}.`);
      tune.key = '';
      tune.drawn = '';
    } finally {
      if (tune.ctrl === ctrl) tune.ctrl = null;
    }
  }, 350);
}

// ---------- view mode, divider ----------

export const viewMode = () => (document.querySelector('input[name="view"]:checked') || {}).value || 'slider';

function setDivider(pos) {
  dividerPos = Math.max(0, Math.min(100, pos));
  compare.style.setProperty('--pos', `${Math.round(dividerPos * 10) / 10}%`);
  divider.setAttribute('aria-valuenow', String(Math.round(dividerPos)));
  divider.setAttribute('aria-valuetext', `${Math.round(dividerPos)}% original, ${100 - Math.round(dividerPos)}% edges`);
}

function posFromEvent(ev) {
  const rect = compare.getBoundingClientRect();
  return rect.width ? ((ev.clientX - rect.left) / rect.width) * 100 : 50;
}

// ---------- zoom and the display copy ----------

function fitWidth() {
  const nw = after.naturalWidth, nh = after.naturalHeight;
  const availW = Math.max(100, scroller.clientWidth - 16);
  const availH = Math.max(220, window.innerHeight * 0.7);
  return Math.min(nw, availW, nw * (availH / nh));
}

function widthFor(z) {
  const nw = after.naturalWidth;
  return z === 'fit' ? fitWidth() : (nw * z) / (window.devicePixelRatio || 1);
}

export function sizeCompare() {
  const nw = after.naturalWidth, nh = after.naturalHeight;
  if (!nw || !nh) return;
  compare.dataset.zoom = zoom === 'fit' ? 'fit' : 'zoomed';
  const w = Math.max(1, Math.floor(widthFor(zoom)));
  after.style.setProperty('width', `${w}px`);
  for (const r of document.querySelectorAll('input[name="zoom"]')) r.checked = String(zoom) === r.value;
  $('zoom-level').textContent = zoom === 'fit' ? `${Math.round((w * (window.devicePixelRatio || 1) / nw) * 100)}%` : `${Math.round(zoom * 100)}%`;
  if (zoom === 'fit') requestFitCopy(w, Math.round((w * nh) / nw)); else fitCanvas.hidden = true;
}

function setZoom(z, anchor) {
  const old = after.getBoundingClientRect();
  // The image point under the anchor (a screen point) stays under it.
  const ax = anchor ? anchor.x : old.left + old.width * (dividerPos / 100);
  const ay = anchor ? anchor.y : old.top + old.height / 2;
  const fx = old.width ? (ax - old.left) / old.width : 0.5;
  const fy = old.height ? (ay - old.top) / old.height : 0.5;
  zoom = z;
  sizeCompare();
  const now = after.getBoundingClientRect();
  scroller.scrollLeft += now.left + fx * now.width - ax;
  scroller.scrollTop += now.top + fy * now.height - ay;
}

// At "Fit", a result much larger than its box is shown through a max-pooled copy made by a
// worker at the displayed size, so that thin edges stay visible. The PNG itself is untouched.
let worker = null, fitJob = 0, fitTimer = null;
function requestFitCopy(cssW, cssH) {
  const e = selected();
  const dpr = window.devicePixelRatio || 1;
  const tw = Math.max(1, Math.round(cssW * dpr)), th = Math.max(1, Math.round(cssH * dpr));
  if (!e || !shownBlob(e) || after.naturalWidth <= tw * 1.25 || typeof Worker !== 'function' || typeof OffscreenCanvas !== 'function') {
    fitCanvas.hidden = true;
    return;
  }
  const key = `${shownUrl(e)}|${tw}x${th}`;
  if (fitCanvas.dataset.key === key) { fitCanvas.hidden = false; return; }
  fitCanvas.hidden = true;
  clearTimeout(fitTimer);
  fitTimer = setTimeout(() => {
    if (!worker) {
      worker = new Worker(new URL('./pool-worker.js', import.meta.url));
      worker.onmessage = (ev) => {
        const m = ev.data;
        if (m.id !== fitJob || m.error) return;
        const cur = selected();
        if (!cur || `${shownUrl(cur)}|${m.width}x${m.height}` !== m.key) return;
        fitCanvas.width = m.width; fitCanvas.height = m.height;
        fitCanvas.getContext('2d').putImageData(new ImageData(m.pixels, m.width, m.height), 0, 0);
        fitCanvas.dataset.key = m.key;
        fitCanvas.hidden = zoom !== 'fit';
      };
    }
    fitJob++;
    const id = fitJob;
    worker.postMessage({ id, key, blob: shownBlob(e), width: tw, height: th });
  }, 120);
}

// ---------- pointer: divider handle, panning, pinching ----------

const pointers = new Map();
let gesture = null;

function onPointerDown(ev) {
  if (ev.pointerType === 'mouse' && ev.button !== 0) return;
  if (ev.isPrimary) pointers.clear(); // the first finger down: nothing else can still be down
  pointers.set(ev.pointerId, { x: ev.clientX, y: ev.clientY });
  compare.setPointerCapture(ev.pointerId);
  if (pointers.size === 2) {
    // Two fingers: pinch to zoom around their middle.
    const [a, b] = [...pointers.values()];
    gesture = { kind: 'pinch', dist: Math.hypot(a.x - b.x, a.y - b.y) || 1, width: after.getBoundingClientRect().width };
    ev.preventDefault();
    return;
  }
  if (pointers.size > 2) return;
  const onHandle = !!ev.target.closest('.divider');
  const sliding = viewMode() === 'slider' && !compare.classList.contains('no-before');
  if (onHandle && sliding) {
    gesture = { kind: 'divider' };
    ev.preventDefault();
    divider.focus({ preventScroll: true });
  } else if (zoom !== 'fit') {
    gesture = { kind: 'pan', x: ev.clientX, y: ev.clientY, left: scroller.scrollLeft, top: scroller.scrollTop };
    compare.classList.add('panning');
    ev.preventDefault();
  } else if (sliding && ev.pointerType === 'mouse') {
    // At "Fit" there is nothing to pan: a click in the image moves the divider there.
    gesture = { kind: 'divider' };
    ev.preventDefault();
    setDivider(posFromEvent(ev));
    divider.focus({ preventScroll: true });
  } else {
    gesture = null;
  }
}

function onPointerMove(ev) {
  if (!pointers.has(ev.pointerId)) return;
  pointers.set(ev.pointerId, { x: ev.clientX, y: ev.clientY });
  if (!gesture) return;
  if (gesture.kind === 'divider') setDivider(posFromEvent(ev));
  else if (gesture.kind === 'pan') {
    scroller.scrollLeft = gesture.left - (ev.clientX - gesture.x);
    scroller.scrollTop = gesture.top - (ev.clientY - gesture.y);
  } else if (gesture.kind === 'pinch' && pointers.size >= 2) {
    const [a, b] = [...pointers.values()];
    const dist = Math.hypot(a.x - b.x, a.y - b.y) || 1;
    const dpr = window.devicePixelRatio || 1;
    const nw = after.naturalWidth;
    const w = Math.min(Math.max(gesture.width * (dist / gesture.dist), fitWidth()), (nw * MAX_ZOOM) / dpr);
    const z = w <= fitWidth() + 0.5 ? 'fit' : (w * dpr) / nw;
    setZoom(z, { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 });
  }
}

function onPointerUp(ev) {
  pointers.delete(ev.pointerId);
  if (compare.hasPointerCapture(ev.pointerId)) compare.releasePointerCapture(ev.pointerId);
  if (!pointers.size) { gesture = null; compare.classList.remove('panning'); }
  else if (gesture && gesture.kind === 'pinch') gesture = null;
}

// ---------- copying the image ----------

async function copyImage() {
  const e = selected();
  const btn = $('copy-image');
  if (!e || !shownBlob(e)) return;
  let ok = false;
  try {
    await navigator.clipboard.write([new ClipboardItem({ 'image/png': shownBlob(e) })]);
    ok = true;
  } catch { ok = false; }
  btn.textContent = ok ? 'Image copied' : 'Copying is not allowed here';
  announce(ok ? (kindOf(e) === 'png' ? 'The result image is in the clipboard.' : 'The grey drawing of the result is in the clipboard.')
    : `This browser did not allow copying the image. Use Download ${FORMAT_WORDS[kindOf(e)]} instead.`);
  setTimeout(() => { btn.textContent = 'Copy image'; }, 2500);
}

// ---------- wiring ----------

export function initViewer({ onRetry, onCancel, onRemove, onRerun }) {
  setDivider(50);
  compare.addEventListener('pointerdown', onPointerDown);
  compare.addEventListener('pointermove', onPointerMove);
  compare.addEventListener('pointerup', onPointerUp);
  compare.addEventListener('pointercancel', onPointerUp);
  compare.addEventListener('dragstart', (ev) => ev.preventDefault());
  scroller.addEventListener('wheel', (ev) => {
    if (!ev.ctrlKey || !after.naturalWidth) return; // Ctrl+wheel (and a touchpad pinch) zooms
    ev.preventDefault();
    const dpr = window.devicePixelRatio || 1;
    const w = after.getBoundingClientRect().width * Math.exp(-ev.deltaY / 300);
    const capped = Math.min(Math.max(w, fitWidth()), (after.naturalWidth * MAX_ZOOM) / dpr);
    setZoom(capped <= fitWidth() + 0.5 ? 'fit' : (capped * dpr) / after.naturalWidth, { x: ev.clientX, y: ev.clientY });
  }, { passive: false });
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
  document.querySelectorAll('input[name="zoom"]').forEach((r) => r.addEventListener('change', () => {
    if (!r.checked) return;
    setZoom(r.value === 'fit' ? 'fit' : Number(r.value));
    if (zoom !== 'fit') {
      scroller.scrollLeft = (scroller.scrollWidth - scroller.clientWidth) * (dividerPos / 100);
      scroller.scrollTop = (scroller.scrollHeight - scroller.clientHeight) / 2;
    }
  }));
  document.querySelectorAll('input[name="view"]').forEach((r) => r.addEventListener('change', () => {
    compare.dataset.view = viewMode();
    divider.tabIndex = viewMode() === 'slider' && !compare.classList.contains('no-before') ? 0 : -1;
  }));
  $('invert').addEventListener('change', () => compare.classList.toggle('inverted', $('invert').checked));
  after.addEventListener('load', sizeCompare);
  before.addEventListener('error', () => {
    const e = selected();
    if (e && before.getAttribute('src') === e.beforeUrl) { e.beforeBroken = true; renderViewer(); }
  });
  $('preview').addEventListener('error', () => {
    const e = selected();
    if (e && $('preview').getAttribute('src') === e.beforeUrl) { e.beforeBroken = true; renderViewer(); }
  });
  let resizeTimer = null;
  window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(sizeCompare, 100); });

  $('retry-now').addEventListener('click', () => onRetry(selected()));
  $('cancel-job').addEventListener('click', () => onCancel(selected()));
  $('alert-cancel').addEventListener('click', () => onRemove(selected()));
  $('rerun').addEventListener('click', () => onRerun(selected()));
  $('copy-image').addEventListener('click', copyImage);
  $('copy-link').addEventListener('click', async () => {
    const input = $('share');
    let ok = false;
    try { await navigator.clipboard.writeText(input.value); ok = true; } catch {
      input.focus(); input.select();
      try { ok = document.execCommand('copy'); } catch { ok = false; }
    }
    const btn = $('copy-link');
    btn.textContent = ok ? 'Link copied' : 'Select and copy the link';
    announce(ok ? 'Share link copied to the clipboard.' : 'Copy the selected link.');
    if (!ok) { input.focus(); input.select(); }
    setTimeout(() => { btn.textContent = 'Copy share link'; }, 2500);
  });
  $('share').addEventListener('focus', (ev) => ev.target.select());
}

