// Small helpers shared by the page's modules: element lookup, browser storage, formatting,
// escaping, screen-reader announcements.

export const $ = (id) => document.getElementById(id);

export const store = {
  get(key, fallback) {
    try { const v = localStorage.getItem(key); return v == null ? fallback : JSON.parse(v); } catch { return fallback; }
  },
  set(key, value) {
    try { localStorage.setItem(key, JSON.stringify(value)); return true; } catch { return false; }
  },
  remove(key) { try { localStorage.removeItem(key); } catch { /* storage disabled */ } },
};

export function fmtBytes(n) {
  if (n == null || !isFinite(n)) return '–';
  if (n < 1024) return `${n} bytes`;
  const units = ['KB', 'MB', 'GB'];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v >= 100 || Number.isInteger(v) ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

export function fmtMs(ms) {
  if (ms == null || !isFinite(ms)) return '–';
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${Math.round(ms)} ms`;
  return `${ms.toFixed(1)} ms`;
}

export function fmtMP(px) {
  const mp = px / 1e6;
  return `${mp >= 10 ? Math.round(mp) : mp.toFixed(1)} megapixels`;
}

export function fmtInt(n) { return Number(n).toLocaleString('en'); }

export function fmtTime(t) {
  const d = new Date(t);
  if (isNaN(d)) return '';
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (d.toDateString() === new Date().toDateString()) return time;
  return `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}

export function baseName(name) {
  const b = String(name || 'image').replace(/\.[A-Za-z0-9]{1,5}$/, '').replace(/[\\/:*?"<>|\u0000-\u001f]+/g, '_').trim();
  return b || 'image';
}

export function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

let lastAnnounce = '';
export function announce(text) {
  if (!text || text === lastAnnounce) return;
  lastAnnounce = text;
  const live = $('live');
  live.textContent = '';
  // A new text node after a tick makes screen readers announce repeats reliably.
  setTimeout(() => { live.textContent = text; }, 30);
}

// True on a narrow screen, where the panels are stacked in one column.
export const narrow = () => window.matchMedia('(max-width: 959px)').matches;
