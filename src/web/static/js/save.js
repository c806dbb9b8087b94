// Save a clip by URL: start/end typed as H:MM:SS or seconds, checked before sending.
import { get, post, session } from './api.js';
import { initClipNow } from './clipnow.js';
import { $, busy, fieldError, flash, h } from './dom.js';
import { checkRange, describe, hms, youtubeStart } from './format.js';
import { infoCard, playlistCard } from './info.js';
import { withSaveToken } from './tokens.js';

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

const send = (body) => withSaveToken((token) => post('/api/video/save', body, { token }));

let lookups = 0; // the newest look-up wins; older answers are dropped
let shown = null; // {url, data} of the video card on screen (Clip now reads its live status)
let onCard = () => {}; // Clip now's hint: told the data of the card on screen, or null

function showInfo(state, ...children) {
  const box = $('save-info');
  if (state !== 'video') shown = null;
  box.dataset.state = state;
  box.replaceChildren(...children);
  onCard(shown ? shown.data : null);
}

/**
 * What the URL is, before saving (GET /api/video/info): the video's card, or a playlist's
 * entries — choosing one fills the URL and looks it up. Resolves with ``{url, data}`` (the
 * answer), ``{url, error}`` (an ApiError, shown) or null (no valid URL, a newer look-up won,
 * the session ended).
 */
async function lookUp() {
  const url = $('save-url').value.trim();
  if (!validUrl(url)) {
    fieldError('save-url-error', 'Enter the full video URL, starting with https://', 'save-url');
    $('save-url').focus();
    return null;
  }
  fieldError('save-url-error', '', 'save-url');
  const mine = ++lookups;
  const button = $('save-lookup');
  button.disabled = true;
  showInfo('loading', h('p', { class: 'muted' }, 'Looking up the video…'));
  try {
    const { data } = await withSaveToken((token) =>
      get(`/api/video/info?url=${encodeURIComponent(url)}`, { token }));
    if (mine !== lookups) return null;
    if (data.playlist) {
      showInfo('playlist', playlistCard(data.playlist, (entry) => {
        $('save-url').value = entry;
        $('save-url').dispatchEvent(new Event('input', { bubbles: true }));
        lookUp();
      }));
    } else {
      shown = { url, data };
      showInfo('video', infoCard(data));
    }
    return { url, data };
  } catch (err) {
    if (mine !== lookups) return null;
    if (err.status === 401 && !session()) return null;
    showInfo('error', h('p', { class: 'error', role: 'alert', 'data-role': 'lookup-error' },
      describe(err)));
    return { url, error: err };
  } finally {
    if (mine === lookups) button.disabled = false;
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
  $('save-lookup').addEventListener('click', lookUp);
  $('save-url').addEventListener('input', () => {
    if ($('save-info').dataset.state === 'none') return;
    lookups += 1; // the card was of another URL
    $('save-lookup').disabled = false;
    showInfo('none');
  });
  onCard = initClipNow({ onSaved, lookUp, lookedUp: () => shown }).onCard;
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
        lookups += 1;
        showInfo('none');
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
