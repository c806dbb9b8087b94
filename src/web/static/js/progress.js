// A labelled progress bar with a one-line summary (phase, %, speed, ETA, fps); a live clip's
// recording (issue 14): "recording — N s to come" while the stream has not produced the rest.
import { h } from './dom.js';
import { percent } from './format.js';

const PHASES = {
  initializing: 'Queued', recording: 'Recording', downloading: 'Downloading',
  encoding: 'Encoding', uploading: 'Uploading', finalizing: 'Finishing',
};

let counter = 0;

/** A bar with a visible label; returns {el, set(value, text), label(text)}. */
export function bar(labelText, role) {
  const id = `bar-${++counter}`;
  const label = h('label', { for: id }, labelText);
  const progress = h('progress', { id, max: 100, value: 0, 'data-role': role });
  const text = h('span', { class: 'muted progress-text', 'data-role': `${role}-text` });
  const el = h('div', { class: 'progress' }, label, progress, text);
  return {
    el,
    set(value, line) {
      progress.value = Math.max(0, Math.min(100, Number(value) || 0));
      text.textContent = line ?? percent(value);
    },
    label(textValue) { label.textContent = textValue; },
  };
}

/** The progress block of a clip job, fed with the status endpoint's ``progress`` object. */
export function jobProgress() {
  const download = bar('Download', 'download-progress');
  const encode = bar('Encoding', 'encoding-progress');
  encode.el.hidden = true;
  const el = h('div', { class: 'job-progress' }, download.el, encode.el);
  return {
    el,
    update(p) {
      const data = p || {};
      const phase = data.current_phase || 'initializing';
      el.dataset.phase = phase;
      const facts = [percent(data.download_progress)];
      if (phase === 'recording') {
        const left = Math.max(0, Math.ceil(Number(data.seconds_to_come) || 0));
        facts.unshift(`recording — ${left} s to come`);
      }
      if (data.speed) facts.push(data.speed);
      if (data.eta && phase === 'downloading') facts.push(`ETA ${data.eta}`);
      if (data.fps) facts.push(`${Number(data.fps).toFixed(0)} fps`);
      download.label(phase === 'encoding' ? 'Downloaded' : (PHASES[phase] || phase));
      download.set(data.download_progress, facts.join(' · '));
      const encoding = phase === 'encoding' || Number(data.encoding_progress) > 0;
      encode.el.hidden = !encoding;
      if (encoding) {
        const line = [percent(data.encoding_progress)];
        if (data.eta && phase === 'encoding') line.push(`ETA ${data.eta}`);
        encode.set(data.encoding_progress, line.join(' · '));
      }
    },
  };
}
