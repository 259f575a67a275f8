// Several jobs at once: the summary of the batch (done, failed, still to go) and downloading
// every finished result as one ZIP built in the page.
import { $, announce } from './util.js';
import * as api from './api.js';
import { PENDING, jobs } from './jobs.js';
import { downloadName } from './words.js';
import { makeZip } from './zip.js';

const listed = () => jobs.entries.filter((e) => !e.transient);

export function renderBatch() {
  const list = listed();
  const done = list.filter((e) => e.state === 'done').length;
  const failed = list.filter((e) => ['failed', 'error', 'lost'].includes(e.state)).length;
  const togo = list.filter((e) => PENDING.has(e.state)).length;
  const parts = [];
  if (done) parts.push(`${done} done`);
  if (failed) parts.push(`${failed} failed`);
  if (togo) parts.push(`${togo} to go`);
  const summary = $('batch-summary');
  const text = list.length > 1 && parts.length ? parts.join(' · ') : '';
  if (summary.textContent !== text) summary.textContent = text;
  summary.hidden = !text;
  $('zip').hidden = done < 2;
}

// Unique names inside the archive: a second chelsea-edges-t100-l2.png becomes …-2.png.
function uniqueName(name, used) {
  let n = name, i = 2;
  while (used.has(n)) n = name.replace(/(\.(?:png|tif|npy))?$/, `-${i++}$1`);
  used.add(n);
  return n;
}

async function resultBytes(e) {
  if (e.resultBlob) return new Uint8Array(await e.resultBlob.arrayBuffer());
  const r = await api.getResult(e.id);
  if (r.status !== 200) return null;
  const blob = await r.blob();
  e.resultBlob = blob;
  return new Uint8Array(await blob.arrayBuffer());
}

export async function downloadAll() {
  const btn = $('zip');
  const done = listed().filter((e) => e.state === 'done' && e.id).reverse(); // oldest first
  if (!done.length) return;
  btn.disabled = true;
  btn.textContent = 'Preparing the ZIP…';
  const files = [], used = new Set();
  let missing = 0;
  for (const e of done) {
    let bytes = null;
    try { bytes = await resultBytes(e); } catch { bytes = null; }
    if (bytes) files.push({ name: uniqueName(downloadName(e), used), bytes }); else missing++;
  }
  btn.disabled = false;
  btn.textContent = 'Download all (ZIP)';
  if (!files.length) { announce('None of the results is on the server any more.'); return; }
  const url = URL.createObjectURL(makeZip(files));
  const a = document.createElement('a');
  a.href = url;
  a.download = 'dsobel-results.zip';
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  announce(`ZIP with ${files.length} result${files.length === 1 ? '' : 's'} saved.` +
    (missing ? ` ${missing} could not be fetched from the server.` : ''));
}
