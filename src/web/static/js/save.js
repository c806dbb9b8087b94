// Save a clip by URL: start/end typed as H:MM:SS or seconds, checked before sending.
import { post, session } from './api.js';
import { $, busy, fieldError, flash } from './dom.js';
import { checkRange, describe, hms, youtubeStart } from './format.js';
import { saveToken } from './tokens.js';

const FIELDS = { url: 'save-url', start_time: 'save-start', end_time: 'save-end' };

function showErrors(errors) {
  fieldError('save-url-error', errors.url || '', 'save-url');
  fieldError('save-start-error', errors.start || '', 'save-start');
  fieldError('save-end-error', errors.end || '', 'save-end');
}

function validUrl(text) {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch { return false; }
}

async function send(body) {
  let token = await saveToken();
  try {
    return await post('/api/video/save', body, { token: token.token });
  } catch (err) {
    if (err.status !== 401) throw err;
    token = await saveToken({ fresh: true }); // revoked or expired: get another one, once
    return post('/api/video/save', body, { token: token.token });
  }
}

/**
 * A pasted YouTube URL with ``t`` (youtu.be/…?t=90, watch?…&t=1m30s) fills an empty start with
 * that moment in seconds; a start filled this way follows the URL until the user edits it.
 */
function prefillStart() {
  const start = $('save-start');
  let filled = null;
  $('save-url').addEventListener('input', (event) => {
    const seconds = youtubeStart(event.target.value);
    if (start.value.trim() !== '' && start.value !== filled) return;
    filled = seconds === null ? null : String(seconds);
    start.value = filled ?? '';
  });
}

/** ``onSaved(videoId)`` is called after a successful save. */
export function initSave({ onSaved }) {
  prefillStart();
  $('save-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const url = form.url.value.trim();
    const range = checkRange(form.start.value, form.end.value);
    const errors = { ...(range.errors || {}) };
    if (!validUrl(url)) errors.url = 'Enter the full video URL, starting with https://';
    showErrors(errors);
    fieldError('save-error', '');
    if (Object.keys(errors).length) {
      const first = ['url', 'start', 'end'].find((k) => errors[k]);
      $({ url: 'save-url', start: 'save-start', end: 'save-end' }[first]).focus();
      return undefined;
    }
    return busy(form, async () => {
      const body = {
        url, start_time: range.start, end_time: range.end, user_id: session().user.id,
        additional_message: form.message.value.trim() || null,
      };
      try {
        const { data } = await send(body);
        form.reset();
        flash(`Clip ${hms(range.start)} – ${hms(range.end)} saved.`);
        onSaved(data.video_id);
      } catch (err) {
        if (err.status === 401 && !session()) return; // the login screen says why
        const server = {};
        for (const [field, id] of Object.entries(FIELDS)) {
          const msgs = err.details?.[field];
          if (msgs) server[id.replace('save-', '')] = [].concat(msgs).join(' ');
        }
        if (err.code === 'INVALID_URL') server.url = err.message;
        showErrors(server);
        fieldError('save-error', describe(err));
      }
    });
  });
}
