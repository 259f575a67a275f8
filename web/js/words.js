// What the page says about a job: one word for its state (badge and history), the alert with
// what happened and what to do, option summaries and download names. Each situation is said
// once, in the same words everywhere.
import { baseName, fmtBytes, fmtInt, fmtMP } from './util.js';

const STATE_WORDS = {
  waiting: 'Waiting', uploading: 'Uploading', busy: 'Server busy', reconnecting: 'Not sent yet',
  queued: 'Queued', processing: 'Processing', done: 'Done', failed: 'Failed', error: 'Not accepted',
  expired: 'Expired', lost: 'Lost', cancelled: 'Cancelled',
};

export function badgeClass(e) {
  if (e.trouble) return 'busy';
  const s = e.state;
  return s === 'done' ? 'done' : s === 'busy' || s === 'waiting' || s === 'cancelled' ? 'waiting'
    : ['failed', 'error', 'expired', 'lost'].includes(s) ? 'failed' : 'running';
}

// The connection problem, if any: 'offline' (this device) or 'unreachable' (the server).
export function trouble(e) {
  if (!e.trouble) return null;
  return navigator.onLine === false ? 'offline' : 'unreachable';
}

export function badgeWord(e) {
  const t = trouble(e);
  if (t) return t === 'offline' ? 'Offline' : 'Server unreachable';
  if (e.cancelling) return 'Cancelling';
  return STATE_WORDS[e.state] || e.state;
}

// Short option summary: "t40 · L1", "greys · L2".
export function optionsShort(o) {
  if (!o) return '';
  const out = o.output === 'magnitude' ? 'greys' : `t${o.threshold}`;
  return `${out} · ${o.magnitude === 'l1' ? 'L1' : 'L2'}`;
}

// Longer: "threshold 40 · L1", "greys · L2".
export function optionsMedium(o) {
  if (!o) return '';
  return `${o.output === 'magnitude' ? 'edge strength in greys' : `threshold ${o.threshold}`} · ${o.magnitude === 'l1' ? 'L1' : 'L2'}`;
}

export function describeOptions(o) {
  if (!o) return '–';
  const parts = [];
  parts.push(o.output === 'magnitude' ? 'edge strength in greys' : `black and white, threshold ${o.threshold}`);
  parts.push(o.magnitude === 'l1' ? 'approximate strength (|gx|+|gy|)' : 'exact strength (√)');
  return parts.join(', ');
}

// chelsea-edges-t40-l1.png, chelsea-edges-greys-l2.png
export function downloadName(e) {
  const base = baseName(e.shared ? `dsobel-${String(e.id).slice(0, 8)}` : e.name);
  const o = (e.status && e.status.options) || e.options;
  if (!o) return `${base}-edges.png`;
  const out = o.output === 'magnitude' ? 'greys' : `t${o.threshold}`;
  return `${base}-edges-${out}-${o.magnitude === 'l1' ? 'l1' : 'l2'}.png`;
}

// What an alert says: { title, text, detail, retry (button label or ''), kind: 'error'|'busy'|'info' }.
export function alertInfo(e, limits) {
  const t = trouble(e);
  if (t) {
    const sending = !e.id || e.state === 'reconnecting';
    return {
      kind: 'busy', detail: '', retry: sending ? 'Send now' : 'Check now',
      title: t === 'offline' ? 'You are offline' : 'Cannot reach the server',
      text: sending ? 'Your image is kept in this page and is sent as soon as the server answers.'
        : 'The job goes on at the server. This page follows it again as soon as the server answers.',
    };
  }
  if (e.authProblem) return errorInfo(e, limits, 'unauthorized');
  if (e.state === 'cancelled') {
    return {
      kind: 'busy', detail: '', title: 'You cancelled this job', retry: e.file ? 'Process again' : '',
      text: e.id ? 'The server dropped the work that was left; other jobs are not affected.' : 'The image was not sent.',
    };
  }
  if (['busy', 'failed', 'error', 'expired', 'lost'].includes(e.state) || e.resultProblem) return errorInfo(e, limits);
  return null;
}

function errorInfo(e, limits, forced) {
  const err = e.error || {};
  const code = forced || err.code || '';
  const detail = err.message || '';
  const name = `“${e.name}”`;
  const again = e.file ? (e.id ? 'Process again' : 'Try again') : '';
  const info = { title: '', text: '', detail, retry: '', kind: 'error' };
  if (e.state === 'lost') {
    info.title = 'The server lost this job';
    info.text = (code === 'job-lost'
      ? 'It was not finished when the server’s job store restarted or was emptied, and the job was lost with it.'
      : 'It was not finished when the server forgot it, most likely because the server restarted.') +
      (e.file ? ' Send the image again to get the result.' : ' Upload the image again to get the result.');
    info.retry = e.file ? 'Send again' : '';
    info.detail = '';
    return info;
  }
  if (e.state === 'expired') {
    info.title = 'This result has expired';
    info.text = 'The server keeps results only for a while, and this one is gone (or the link is wrong).' +
      (e.file ? ' Process the image again to get a new result.' : ' Upload the image again to get a new result.');
    info.retry = again;
    info.detail = '';
    return info;
  }
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
      info.retry = again;
      break;
    case 'invalid-option':
      info.title = 'An option was not accepted';
      info.text = 'Check the options and try again.';
      info.retry = again;
      break;
    case 'unauthorized':
      info.title = 'This server needs an API key';
      info.text = 'Open “API key” below the options, enter the key you were given, and save it. The upload then starts again.';
      info.retry = again;
      break;
    case 'too-busy':
    case 'unavailable': {
      info.kind = 'busy';
      info.retry = 'Retry now';
      info.title = code === 'too-busy' ? 'The server is busy' : 'The service is unavailable for a moment';
      const base = code === 'too-busy' ? 'It is working on other images right now.' : 'It is starting up or being updated.';
      if (e.state === 'busy' && e.retryAt) {
        info.text = `${base} Trying again in ${Math.max(0, Math.ceil((e.retryAt - Date.now()) / 1000))} s…`;
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
      info.retry = again;
      break;
    default:
      if (e.state === 'failed') {
        info.title = 'Processing failed';
        info.text = `The server could not finish ${name}.` + (e.file ? ' You can try again.' : '');
      } else {
        info.title = 'The image was not processed';
        info.text = `The server answered with an error${err.status ? ` (${err.status})` : ''}.`;
      }
      info.retry = again;
  }
  return info;
}
