// What the page says about a job: one word for its state (badge and history), the alert with
// what happened and what to do, option summaries and download names. Each situation is said
// once, in the same words everywhere.
import { baseName, fmtBytes, fmtInt, fmtMP } from './util.js';
import { EXTENSIONS, FORMAT_WORDS, kernelWords, normalizeOptions, usesMagnitude } from './operators.js';

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

const measureShort = (o) => (o.magnitude === 'l1' ? 'L1' : 'L2');
const kernelShort = (o) => (o.kernel === 'scharr' ? 'Scharr' : o.ksize === 3 ? '' : `Sobel ${o.ksize}`);
const formatShort = (o) => (o.format === 'png' ? '' : FORMAT_WORDS[o.format]);

// Short option summary: "t40 · L1", "greys · L2", "canny 50–150 · L2 · Sobel 5", "gx · Scharr · NPY".
export function optionsShort(raw) {
  if (!raw) return '';
  const o = normalizeOptions(raw);
  const out = {
    binary: o.threshold === 'otsu' ? 'Otsu' : `t${o.threshold}`, magnitude: 'greys', magnitude16: 'greys 16-bit',
    gx: 'gx', gy: 'gy', direction: 'direction', canny: `Canny ${o.low}–${o.high}`,
  }[o.output];
  return [out, usesMagnitude(o.output) ? measureShort(o) : '', kernelShort(o), formatShort(o)].filter(Boolean).join(' · ');
}

// Longer: "threshold 40 · L1", "edge strength in greys · L2", "horizontal gradient · Sobel 5 × 5 · NPY".
export function optionsMedium(raw) {
  if (!raw) return '';
  const o = normalizeOptions(raw);
  const out = {
    binary: o.threshold === 'otsu' ? 'Otsu’s threshold' : `threshold ${o.threshold}`, magnitude: 'edge strength in greys',
    magnitude16: 'unclipped edge strength', gx: 'horizontal gradient', gy: 'vertical gradient', direction: 'edge direction',
    canny: `Canny edges ${o.low}–${o.high}`,
  }[o.output];
  const kernel = o.kernel === 'sobel' && o.ksize === 3 ? '' : kernelWords(o);
  return [out, usesMagnitude(o.output) ? measureShort(o) : '', kernel, formatShort(o)].filter(Boolean).join(' · ');
}

// In full, for the job's facts. threshold_used: the threshold the server applied (Otsu's choice).
export function describeOptions(raw, thresholdUsed) {
  if (!raw) return '–';
  const o = normalizeOptions(raw);
  const parts = [];
  switch (o.output) {
    case 'binary':
      parts.push(o.threshold === 'otsu'
        ? `black and white, Otsu’s threshold${thresholdUsed != null ? ` (${thresholdUsed})` : ''}`
        : `black and white, threshold ${o.threshold}`);
      break;
    case 'magnitude': parts.push('edge strength in greys'); break;
    case 'magnitude16': parts.push('edge strength, unclipped'); break;
    case 'gx': parts.push('horizontal gradient (gx)'); break;
    case 'gy': parts.push('vertical gradient (gy)'); break;
    case 'direction': parts.push('edge direction (degrees)'); break;
    case 'canny': parts.push(`Canny edges, low ${o.low}, high ${o.high}`); break;
    default: break;
  }
  if (usesMagnitude(o.output)) parts.push(o.magnitude === 'l1' ? 'approximate strength (|gx|+|gy|)' : 'exact strength (√)');
  if (o.kernel !== 'sobel' || o.ksize !== 3) parts.push(`${kernelWords(o)} kernel`);
  if (o.format !== 'png') parts.push(FORMAT_WORDS[o.format]);
  return parts.join(', ');
}

// The result's file format: the job's options say it (PNG for jobs of earlier versions).
export function resultFormat(e) {
  const o = (e.status && e.status.options) || e.options;
  return normalizeOptions(o).format;
}

// chelsea-edges-t40-l1.png, chelsea-edges-greys-l2.png, chelsea-edges-canny50-150-l2-sobel5.png,
// chelsea-edges-gx-scharr.npy
export function downloadName(e) {
  const base = baseName(e.shared ? `dsobel-${String(e.id).slice(0, 8)}` : e.name);
  const raw = (e.status && e.status.options) || e.options;
  if (!raw) return `${base}-edges.png`;
  const o = normalizeOptions(raw);
  const out = {
    binary: o.threshold === 'otsu' ? 'otsu' : `t${o.threshold}`, magnitude: 'greys', magnitude16: 'greys16',
    gx: 'gx', gy: 'gy', direction: 'direction', canny: `canny${o.low}-${o.high}`,
  }[o.output];
  const parts = [out];
  if (usesMagnitude(o.output)) parts.push(o.magnitude === 'l1' ? 'l1' : 'l2');
  if (o.kernel === 'scharr') parts.push('scharr'); else if (o.ksize !== 3) parts.push(`sobel${o.ksize}`);
  return `${base}-edges-${parts.join('-')}.${EXTENSIONS[o.format]}`;
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
    case 'unsupported-output-format':
      info.title = 'The file format cannot hold this result';
      info.text = 'Choose another file format in the options (the server’s message says which would do) and try again.';
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
