// "Clip now" (issue 14, item 3): clip the last seconds of a live source while it is live —
// POST /api/video/save/live {url, user_id, offset, duration, additional_message} with the
// dashboard's public token, as the save form posts /api/video/save. The source's liveness is
// checked first with the save form's look-up (GET /api/video/info, ``live_status``): the
// server's rule is the same field of the same extraction (src/services/live_capture.py
// is_live), so a video that is not live is told so without a request the server would refuse
// (a refused fetch() is also a console error). The server's own 400 NOT_LIVE (the stream ended
// meanwhile) is shown the same way.
import { post, session } from './api.js';
import { $, fieldError, flash } from './dom.js';
import { describe, hms } from './format.js';
import { httpUrl } from './info.js';
import { withSaveToken } from './tokens.js';

const URL_MESSAGE = 'Enter the full video URL, starting with https://';
const NOT_LIVE_WHY = {
  is_upcoming: 'This stream has not started yet.',
  was_live: 'This stream has ended.',
  post_live: 'This stream has ended.',
};
const FIELDS = { offset: ['live-offset', 'live-offset-error'],
  duration: ['live-duration', 'live-duration-error'] };

/** Seconds as a person says them: "45 s", "2:00" past a minute ("1:00:00" past an hour). */
const span = (seconds) => (seconds < 60 ? `${+seconds.toFixed(1)} s`
  : hms(seconds).replace(/^0:0?/, ''));

/** The message of a source that is not live (``live_status`` of the look-up, if known). */
export function notLiveMessage(liveStatus) {
  return `${NOT_LIVE_WHY[liveStatus] || 'This source is not live now.'} Clip now records a `
    + 'stream while it is live; for a video or a past stream, give a start and an end and use '
    + 'Save clip.';
}

/**
 * Seconds typed in the number input ``id``, bounded by its ``min``/``max`` attributes (those of
 * SaveLiveSchema, src/schemas.py: offset ≥ 0; duration ≥ 1 and at most MAX_VIDEO_DURATION,
 * whose default 3600 s the page knows; a server with a lower limit answers with its own).
 * Returns {value} or {error} (a message for the field).
 */
export function readSeconds(input) {
  const text = String(input.value ?? '').trim();
  const value = Number(text);
  const min = Number(input.min || 0);
  const max = input.max === '' ? Infinity : Number(input.max);
  if (text === '' || !Number.isFinite(value)) return { error: 'Enter a number of seconds.' };
  if (value < min || value > max) {
    return { error: Number.isFinite(max) ? `Enter ${min} to ${max} seconds (${hms(max)}).`
      : `Enter at least ${min} seconds.` };
  }
  return { value };
}

function showError(message, code = null) {
  fieldError('live-error', message);
  const el = $('live-error');
  if (code) el.dataset.code = code;
  else delete el.dataset.code;
}

/**
 * What a look-up result says (save.js lookUp): 'live', 'unknown' (the look-up failed in a way
 * that says nothing of the source: rate limit, server or network error — the save decides),
 * or a message why Clip now cannot record it.
 */
function liveness(result) {
  if (result.data) {
    if (result.data.playlist) return 'A playlist is not a live stream: choose one of its videos.';
    return result.data.live_status === 'is_live' ? 'live'
      : notLiveMessage(result.data.live_status);
  }
  const status = result.error.status || 0;
  return status === 0 || status === 429 || status >= 500 ? 'unknown' : describe(result.error);
}

/**
 * Wire the Clip now controls of the save form. ``lookUp()``: the form's look-up (resolves
 * {url, data} | {url, error} | null); ``lookedUp()``: {url, data} of the card on screen or
 * null; ``onSaved(videoId)`` after a save. Returns {onCard(data|null)}: the look-up's answer
 * on screen changed (the hint says whether the source is live).
 */
export function initClipNow({ onSaved, lookUp, lookedUp }) {
  const button = $('clip-now');
  let working = false;

  function clearErrors() {
    for (const [input, error] of Object.values(FIELDS)) fieldError(error, '', input);
    showError('');
  }

  async function send(url, offset, duration) {
    const body = { url, user_id: session().user.id, offset, duration,
      additional_message: $('save-message').value.trim() || null };
    try {
      const { data } = await withSaveToken((token) => post('/api/video/save/live', body,
        { token }));
      flash(`Live clip saved: from ${span(offset)} before now, ${span(duration)} long. `
        + 'It is being recorded.');
      onSaved(data.video_id);
    } catch (err) {
      if (err.status === 401 && !session()) return; // the login screen says why
      if (err.code === 'NOT_LIVE') {
        showError(notLiveMessage(null), 'NOT_LIVE');
        return;
      }
      for (const [field, [input, error]] of Object.entries(FIELDS)) {
        const msgs = err.details?.[field];
        if (msgs) fieldError(error, [].concat(msgs).join(' '), input);
      }
      if (err.code === 'INVALID_URL') fieldError('save-url-error', err.message, 'save-url');
      showError(describe(err), err.code);
    }
  }

  async function clipNow() {
    if (working) return;
    clearErrors();
    const url = $('save-url').value.trim();
    const offset = readSeconds($(FIELDS.offset[0]));
    const duration = readSeconds($(FIELDS.duration[0]));
    fieldError('save-url-error', httpUrl(url) ? '' : URL_MESSAGE, 'save-url');
    fieldError(FIELDS.offset[1], offset.error || '', FIELDS.offset[0]);
    fieldError(FIELDS.duration[1], duration.error || '', FIELDS.duration[0]);
    const first = [[!httpUrl(url), 'save-url'], [offset.error, FIELDS.offset[0]],
      [duration.error, FIELDS.duration[0]]].find(([bad]) => bad);
    if (first) {
      $(first[1]).focus();
      return;
    }
    working = true;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      const known = lookedUp();
      const result = known && known.url === url ? known : await lookUp();
      if (!result || result.url !== $('save-url').value.trim()) return; // changed meanwhile
      const live = liveness(result);
      if (live !== 'live' && live !== 'unknown') {
        showError(live, result.data && !result.data.playlist ? 'NOT_LIVE' : null);
        return;
      }
      await send(url, offset.value, duration.value);
    } finally {
      working = false;
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }

  button.addEventListener('click', clipNow);
  for (const [input] of Object.values(FIELDS)) {
    // Enter in a Clip now field clips now (not the form's Save clip, which needs start/end).
    $(input).addEventListener('keydown', (event) => {
      if (event.key !== 'Enter') return;
      event.preventDefault();
      clipNow();
    });
  }
  return {
    onCard(data) {
      const hint = $('live-state');
      const box = $('live-box');
      const known = data && !data.playlist;
      const live = known && data.live_status === 'is_live';
      box.dataset.live = known ? String(live) : '';
      hint.hidden = !known;
      hint.textContent = !known ? '' : live ? 'Live now: Clip now records from this stream.'
        : 'The look-up says this source is not live now: Clip now needs a live stream.';
    },
  };
}
