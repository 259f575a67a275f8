// The list of recent jobs: one item per job with its thumbnail, name, state, options and time;
// opening a job, removing it, and clearing the finished ones. Jobs opened from a link that the
// server did not confirm are not listed.
import { $, fmtTime } from './util.js';
import { FINAL, PENDING, RUNNING, byKey, jobs } from './jobs.js';
import { badgeClass, badgeWord, optionsShort, trouble } from './words.js';
import { progressOf } from './viewer.js';

const items = new Map();
let actions = { open() {}, remove() {} };

export function initHistory(a) { actions = a; }

export function statusLine(e) {
  if (trouble(e)) return badgeWord(e);
  if (e.state === 'busy' && e.retryAt) return `Server busy, retry in ${Math.max(0, Math.ceil((e.retryAt - Date.now()) / 1000))} s`;
  const p = progressOf(e);
  if (e.state === 'processing' && p && p.count) return `Processing ${p.count}`;
  if (e.state === 'uploading' && p) return p.label;
  return badgeWord(e);
}

export function renderList() {
  const list = $('jobs-list');
  const shown = jobs.entries.filter((e) => !e.transient);
  $('jobs-empty').hidden = shown.length > 0;
  $('clear').hidden = !shown.some((e) => FINAL.has(e.state));
  shown.forEach((e, i) => {
    const li = renderItem(e);
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
  });
  for (const [key, li] of items) {
    const e = byKey(key);
    if (!e || e.transient) { li.remove(); items.delete(key); }
  }
}

export function renderItem(e) {
  if (e.transient) return null;
  let li = items.get(e.key);
  if (!li) {
    li = document.createElement('li');
    li.className = 'job-item';
    li.dataset.key = e.key;
    li.innerHTML = '<button type="button" class="job-open"><img class="thumb" alt="" width="56" height="56">' +
      '<span class="job-text"><span class="job-title"></span><span class="job-sub"><span class="st"></span>' +
      '<span class="opt"></span> · <span class="when"></span></span>' +
      '<span class="mini" hidden><span></span></span></span></button>' +
      '<button type="button" class="job-remove">×</button>';
    li.querySelector('.job-open').addEventListener('click', () => { const x = byKey(e.key); if (x) actions.open(x); });
    li.querySelector('.job-remove').addEventListener('click', () => {
      const x = byKey(e.key);
      if (!x) return;
      const next = li.nextElementSibling || li.previousElementSibling;
      actions.remove(x);
      const target = next && next.querySelector('.job-remove');
      (target || $('pick')).focus();
    });
    items.set(e.key, li);
  }
  li.classList.toggle('selected', e.key === jobs.selectedKey);
  li.dataset.state = e.state;
  if (e.id) li.dataset.id = e.id; else delete li.dataset.id;
  const open = li.querySelector('.job-open');
  if (e.key === jobs.selectedKey) open.setAttribute('aria-current', 'true'); else open.removeAttribute('aria-current');
  const img = li.querySelector('.thumb');
  const thumb = e.thumb || 'favicon.svg';
  if (img.getAttribute('src') !== thumb) img.setAttribute('src', thumb);
  li.querySelector('.job-title').textContent = e.name;
  const st = li.querySelector('.st');
  st.textContent = statusLine(e);
  st.className = `st ${badgeClass(e)}`;
  const opt = optionsShort((e.status && e.status.options) || e.options);
  li.querySelector('.opt').textContent = opt ? ` · ${opt}` : '';
  li.querySelector('.when').textContent = fmtTime(e.created);
  const p = progressOf(e);
  const mini = li.querySelector('.mini');
  const showMini = RUNNING.has(e.state) && !e.trouble && p && p.value != null;
  mini.hidden = !showMini;
  if (showMini) mini.firstElementChild.style.setProperty('width', `${Math.round((p.value / p.max) * 100)}%`);
  li.querySelector('.job-remove').setAttribute('aria-label', PENDING.has(e.state) ? `Cancel and remove ${e.name}` : `Remove ${e.name} from the list`);
  return li;
}

export function markSelected() {
  for (const [key, li] of items) {
    li.classList.toggle('selected', key === jobs.selectedKey);
    const open = li.querySelector('.job-open');
    if (key === jobs.selectedKey) open.setAttribute('aria-current', 'true'); else open.removeAttribute('aria-current');
  }
}
