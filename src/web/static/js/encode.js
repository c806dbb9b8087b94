// Encode: upload with an upload progress bar, codec/preset from /api/encode/codecs,
// encoding progress (status polled every 2 s), download of the MP4.
import { downloadFile, get, post, upload } from './api.js';
import { $, busy, fieldError, flash, h, options } from './dom.js';
import { describe, humanError } from './format.js';
import { bar } from './progress.js';

const KEY = 'ytd.encodes';
const POLL_MS = 2000;
const jobs = new Map(); // encode_id → {id, name, codec, preset, status, progress, el, timer}
let codecs = {};

const stored = () => { try { return JSON.parse(sessionStorage.getItem(KEY)) || []; } catch { return []; } };
const remember = (job) => sessionStorage.setItem(KEY, JSON.stringify(
  [...stored().filter((j) => j.id !== job.id), { id: job.id, name: job.name }]));

async function loadCodecs() {
  const { data } = await get('/api/encode/codecs', { token: 'none' });
  codecs = data.codecs;
  const names = Object.keys(codecs);
  options($('encode-codec'), names, names.includes('h264') ? 'h264' : names[0]);
  fillPresets();
}

function fillPresets() {
  const presets = codecs[$('encode-codec').value] || [];
  options($('encode-preset'), presets, presets.includes('high') ? 'high' : presets[0]);
}

function render(job) {
  const progress = bar('Encoding', 'encode-progress');
  progress.set(job.status === 'completed' ? 100 : job.progress);
  const children = [
    h('div', { class: 'clip-head' },
      h('span', { class: `badge ${job.status}`, 'data-role': 'status' }, job.status),
      h('strong', {}, job.name)),
    h('p', { class: 'muted' }, [job.codec, job.preset].filter(Boolean).join(' · ') || 'not started'),
  ];
  if (job.status === 'processing') children.push(progress.el);
  if (job.status === 'failed') children.push(h('p', { class: 'error' }, humanError(job.code, job.error)));
  const actions = h('div', { class: 'actions' });
  if (job.status === 'completed') {
    actions.append(h('button', { type: 'button', 'data-role': 'download',
      onclick: () => fetchEncoded(job) }, `Download ${job.name}`));
  }
  if (job.status === 'failed' || job.status === 'pending') {
    actions.append(h('button', { type: 'button', class: 'secondary', 'data-role': 'retry',
      onclick: () => start(job, $('encode-codec').value, $('encode-preset').value) },
    job.status === 'failed' ? 'Retry with the chosen codec' : 'Encode with the chosen codec'));
  }
  children.push(actions);
  const el = h('li', { class: `card encode status-${job.status}`, 'data-id': job.id,
    'data-status': job.status }, ...children);
  if (job.el) job.el.replaceWith(el); else $('encode-list').prepend(el);
  job.el = el;
}

function update(job, data) {
  Object.assign(job, {
    status: data.status, progress: data.progress, codec: data.video_codec || job.codec,
    preset: data.quality_preset || job.preset, code: data.error_code, error: data.error_message,
  });
  render(job);
  if (job.status !== 'processing') { clearInterval(job.timer); job.timer = null; }
}

async function poll(job) {
  try {
    const { data } = await get(`/api/encode/status/${job.id}`);
    update(job, data);
  } catch (err) {
    clearInterval(job.timer);
    job.timer = null;
    if (err.status === 404) forget(job); // expired and cleaned up
    else if (err.status !== 401) flash(describe(err), 'error');
  }
}

function forget(job) {
  jobs.delete(job.id);
  job.el?.remove();
  sessionStorage.setItem(KEY, JSON.stringify(stored().filter((j) => j.id !== job.id)));
}

async function start(job, codec, preset) {
  Object.assign(job, { status: 'processing', progress: 0, codec, preset });
  render(job);
  clearInterval(job.timer);
  job.timer = setInterval(() => poll(job), POLL_MS);
  try {
    await post(`/api/encode/start/${job.id}`, { video_codec: codec, quality_preset: preset });
  } catch (err) {
    if (err.status === 401) return;
    flash(describe(err), 'error');
  }
  await poll(job);
}

async function fetchEncoded(job) {
  try {
    const result = await downloadFile(`/api/encode/download/${job.id}`, {}, `${job.name}.mp4`);
    flash(result.processing ? 'Still encoding…' : `Saved ${result.saved}`);
  } catch (err) {
    if (err.status !== 401) flash(describe(err), 'error');
  }
}

function onSubmit(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const file = form.video.files[0];
  fieldError('encode-error', '');
  if (!file) return fieldError('encode-error', 'Choose a video file first.');
  const codec = form.video_codec.value;
  const preset = form.quality_preset.value;
  const box = $('upload-progress-box');
  box.hidden = false;
  return busy(form, async () => {
    try {
      const body = await upload('/api/encode/upload', 'video', file, (pct, loaded, total) => {
        $('upload-progress').value = pct;
        $('upload-progress-text').textContent =
          `${pct.toFixed(0)} % of ${(total / 1_048_576).toFixed(1)} MB`;
      });
      $('upload-progress').value = 100;
      $('upload-progress-text').textContent = `Uploaded ${body.file_size_mb} MB`;
      const job = { id: body.encode_id, name: body.original_filename, status: 'pending', progress: 0 };
      jobs.set(job.id, job);
      remember(job);
      form.video.value = '';
      start(job, codec, preset);
    } catch (err) {
      if (err.status !== 401) fieldError('encode-error', describe(err));
    }
  });
}

export function initEncode() {
  $('encode-codec').addEventListener('change', fillPresets);
  $('encode-form').addEventListener('submit', onSubmit);
}

/** Called when the Encode view opens: codecs, then this session's encodes. */
export async function showEncode() {
  if (!Object.keys(codecs).length) await loadCodecs();
  for (const { id, name } of stored()) {
    if (jobs.has(id)) continue;
    const job = { id, name, status: 'pending', progress: 0 };
    jobs.set(id, job);
    await poll(job);
    if (job.status === 'processing') job.timer = setInterval(() => poll(job), POLL_MS);
  }
}

export function resetEncode() {
  for (const job of jobs.values()) clearInterval(job.timer);
  jobs.clear();
  $('encode-list').replaceChildren();
}
