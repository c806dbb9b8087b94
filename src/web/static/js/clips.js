// The clip list: status, times, message; live progress (status polled every 2 s, every 1 s
// while a live clip's job runs); download with format/resolution/audio/subtitle choices
// (clipoptions.js); the video's info card; retry of failed clips; fetch of expired ones.
// A live clip (issue 14: its status has ``live_window``) shows its wall-clock span and its
// one recorded file (liveclip.js). Search, status filter, pages and the player of a finished
// clip: library.js.
import { downloadFile, get } from './api.js';
import {
  choiceControls, defaultChoices, downloadBody, fallbackName, keepChoices, subtitleLinks,
} from './clipoptions.js';
import { $, flash, h } from './dom.js';
import { describe, hms, humanError, localDateTime } from './format.js';
import { infoCard } from './info.js';
import { liveActions, liveFile, liveOnly, liveSpan } from './liveclip.js';
import {
  filtered, listQuery, playerFor, showGroups, showOwners, showPages,
} from './library.js';
import { jobProgress } from './progress.js';

const POLL_MS = 2000;
const RECORDING_POLL_MS = 1000; // a live clip's seconds still to come count down
const LOOKUP_POLLS = 15; // statuses asked while the save's background look-up runs (30 s)
const STREAM_PHASES = {
  resolving_live: 'Finding the stream this clip belongs to…',
  waiting_for_vod: 'Waiting for YouTube to publish the stream recording…',
};

// id → {data (summary + status fields), choices (clipoptions.js), formats, intent, progress}
const clips = new Map();
const formatsQueue = [];
let formatsWorkers = 0;
let timer = null;

let listed = 0; // answers to older list requests (typing in the search box) are dropped

/** Reload the list (this search, status and page) from the API, then each clip's status. */
export async function loadClips() {
  const mine = ++listed;
  await showOwners();
  const { data } = await get(`/api/video/list?${listQuery()}`);
  if (mine !== listed) return;
  if (showPages(data)) { await loadClips(); return; } // the last page went away
  showGroups(data);
  const seen = new Set();
  for (const summary of data.videos) {
    seen.add(summary.video_id);
    const state = clips.get(summary.video_id) || { ...defaultChoices(), intent: null };
    state.data = { ...(state.data || {}), ...summary };
    clips.set(summary.video_id, state);
  }
  for (const id of [...clips.keys()]) if (!seen.has(id)) clips.delete(id);
  const list = $('clips-list');
  list.replaceChildren(...data.videos.map((v) => card(v.video_id)));
  $('clips-empty').hidden = data.videos.length > 0 || filtered();
  $('clips-none').hidden = data.videos.length > 0 || !filtered();
  await refreshStatuses(data.videos.map((v) => v.video_id));
}

async function refreshStatuses(ids) {
  const queue = [...ids];
  const worker = async () => {
    while (queue.length) await refresh(queue.shift());
  };
  await Promise.all([worker(), worker(), worker()]);
}

/** Fetch one clip's status and update its card; start or stop watching it. */
async function refresh(id) {
  const state = clips.get(id);
  if (!state) return;
  let data;
  state.inflight = true;
  try {
    ({ data } = await get(`/api/video/status/${id}`));
  } catch (err) {
    if (err.status === 404) { // deleted meanwhile
      clips.delete(id);
      document.querySelector(`li[data-id="${id}"]`)?.remove();
    } else if (err.status !== 401) {
      flash(describe(err), 'error');
    }
    return;
  } finally {
    state.inflight = false;
  }
  const before = state.data.status;
  const first = !state.hasStatus;
  state.hasStatus = true;
  state.data = { ...state.data, ...data };
  if (first) keepChoices(state, data);
  if (first || before !== data.status) replaceCard(id);
  else state.progress?.update(data.progress);
  // Formats are asked once the background look-up after the save has found the video (its
  // formats or info are in the status): before, the look-up would run a second time; after a
  // failed one (formats_error), the download itself says what is wrong.
  // A live clip has no look-up after its save, and no formats to choose from.
  const live = !!data.live_window;
  const lookedUp = (data.available_formats || []).length > 0 || !!data.video_info;
  state.lookingUp = !live && !lookedUp && !data.formats_error && data.status !== 'processing'
    && (state.lookups = (state.lookups || 0) + 1) <= LOOKUP_POLLS;
  if (data.status === 'processing' || state.lookingUp || (live && data.status === 'pending')) {
    watch();
  } else if (!live && !state.formatsAsked && lookedUp) queueFormats(id);
  if (data.status === 'completed' && state.intent === 'waiting') fetchFile(id);
  if (data.status === 'failed' && state.intent) state.intent = null;
}

/** A live clip being recorded (or about to be): its seconds to come count down. */
const recording = (state) => state.data.status === 'processing' && !!state.data.live_window;

function watch() {
  if (!timer) {
    timer = setTimeout(poll, [...clips.values()].some(recording) ? RECORDING_POLL_MS : POLL_MS);
  }
}

function poll() {
  timer = null;
  const running = [...clips].filter(([, s]) => s.data.status === 'processing' || s.intent
    || s.lookingUp || (s.data.live_window && s.data.status === 'pending'));
  if (!running.length) return;
  for (const [id, state] of running) if (!state.inflight) refresh(id);
  watch();
}

export function stopPolling() {
  clearTimeout(timer);
  timer = null;
  clips.clear();
  formatsQueue.length = 0;
}

/**
 * The clip's formats (GET /api/video/formats/{id}: resolutions, ``audio_formats``,
 * ``subtitles``), asked once per clip, two at a time; its card is redrawn with them. A failure
 * leaves the choices the status allows (the download then says what is wrong).
 */
function queueFormats(id) {
  clips.get(id).formatsAsked = true;
  formatsQueue.push(id);
  if (formatsWorkers >= 2) return;
  formatsWorkers += 1;
  (async () => {
    while (formatsQueue.length) {
      const next = formatsQueue.shift();
      try {
        const { data } = await get(`/api/video/formats/${next}`);
        const state = clips.get(next);
        if (!state) continue;
        state.formats = data;
        if (state.data.status !== 'processing' && !state.intent) replaceCard(next);
      } catch (err) {
        if (clips.get(next)) clips.get(next).formatsError = err;
      }
    }
  })().finally(() => { formatsWorkers -= 1; });
}

/** Ask for the file: saved at once (200) or the job runs and is polled until done (202). */
async function fetchFile(id) {
  const state = clips.get(id);
  state.intent = 'requesting';
  if (!state.data.file_available) state.data.status = 'starting'; // shows the bar at once
  replaceCard(id);
  watch();
  try {
    const body = liveFile(state.data) ? {} : downloadBody(state); // a live clip: its one file
    const result = await downloadFile(`/api/video/download/${id}`, body,
      fallbackName(id, state.fmt));
    if (result.processing) {
      state.intent = 'waiting';
    } else {
      state.intent = null;
      flash(`Saved ${result.saved}`);
    }
  } catch (err) {
    state.intent = null;
    if (err.status === 401) return;
    // 422/500: the job failed, and the refreshed status shows its code and message.
    if (!err.status || (err.status < 500 && err.status !== 422)) flash(describe(err), 'error');
  }
  await refresh(id);
  if (clips.has(id)) replaceCard(id); // the button again, also when the status is unchanged
}

function replaceCard(id) {
  const old = document.querySelector(`li[data-id="${id}"]`);
  if (!old) return;
  const active = old.contains(document.activeElement) ? document.activeElement.dataset : null;
  const fresh = card(id);
  old.replaceWith(fresh);
  if (!active?.role) return;
  const lang = active.lang ? `[data-lang="${CSS.escape(active.lang)}"]` : '';
  fresh.querySelector(`[data-role="${active.role}"]${lang}`)?.focus();
}

function card(id) {
  const state = clips.get(id);
  const v = state.data;
  // Clip now's clip is told by its wall-clock span; a stream clip by its place in the stream.
  const span = liveOnly(v) ? liveSpan(v.live_window) : null;
  const label = span ? span.label : `Clip ${hms(v.start_time)} to ${hms(v.end_time)}`;
  const status = v.status === 'starting' ? 'processing' : v.status;
  const who = v.nightbot_user?.displayName || v.nightbot_user?.name || v.requested_by;
  const seconds = span ? span.seconds
    : (v.start_time != null && v.end_time != null ? v.end_time - v.start_time : null);
  const li = h('li', { class: `card clip status-${status}`, 'data-id': id, 'data-status': status,
    'data-loaded': state.hasStatus ? 'true' : null, 'data-live': v.live_window ? 'true' : null,
    'data-formats': state.formats ? 'loaded' : null },
    h('div', { class: 'clip-head' },
      h('span', { class: `badge ${status}`, 'data-role': 'status' }, status),
      v.live_window ? h('span', { class: 'badge live', 'data-role': 'live' }, 'live') : null,
      h('span', { class: 'times', 'data-role': 'times' },
        span ? span.text : `${hms(v.start_time)} – ${hms(v.end_time)}`),
      seconds != null ? h('span', { class: 'muted', 'data-role': 'length' }, `(${hms(seconds)})`)
        : null),
    v.thumbnail_url ? h('img', { class: 'moment', src: v.thumbnail_url, loading: 'lazy',
      width: 192, height: 108, alt: `The moment of ${label}`, 'data-role': 'thumbnail' }) : null,
    h('p', { class: 'clip-url' }, h('a', { href: v.url, target: '_blank', rel: 'noopener noreferrer' },
      v.youtube_video_id || v.url)),
    v.video_info && typeof v.video_info === 'object' ? infoCard(v.video_info, { compact: true })
      : titleLine(v),
    v.additional_message ? h('p', { class: 'message' }, `“${v.additional_message}”`) : null,
    who ? h('p', { class: 'muted' }, `Requested by ${who}`) : null,
    h('p', { class: 'muted' }, `Saved ${localDateTime(v.created_at)}`,
      v.file_available && v.expires_at ? ` · file kept until ${localDateTime(v.expires_at)}` : ''));
  li.setAttribute('aria-label', label);
  if (v.phase && STREAM_PHASES[v.phase]) li.append(h('p', { class: 'muted' }, STREAM_PHASES[v.phase]));
  state.progress = null;
  if (status === 'processing') {
    state.progress = jobProgress();
    state.progress.update(v.progress);
    li.append(state.progress.el);
  }
  if (status === 'failed') {
    li.append(h('p', { class: 'error', 'data-role': 'error' },
      humanError(v.error_code, v.error_message), v.error_code ? ` (${v.error_code})` : ''));
  }
  if (v.live_fallback && typeof v.live_fallback === 'object' && status === 'pending') {
    li.append(h('p', { class: 'muted', 'data-role': 'live-fallback' }, 'Not recorded live: ',
      humanError(v.live_fallback.code, v.live_fallback.message)));
  }
  if (status === 'completed' && v.file_available) {
    li.append(playerFor(id, state, (err) => {
      if (err.status !== 401) flash(describe(err), 'error');
    }));
  }
  if (liveFile(v) && status !== 'processing') {
    const done = liveActions(state, () => fetchFile(id));
    if (done) li.append(done);
  } else if (status !== 'processing') {
    li.append(actions(id, state));
    const links = subtitleLinks(id, v, (err) => {
      if (err.status !== 401) flash(describe(err), 'error');
    });
    if (links) li.append(links);
  }
  return li;
}

/** The video's title and channel from the list, until the status brings the info card. */
function titleLine(v) {
  if (!v.title && !v.channel) return null;
  return h('p', { class: 'clip-title', 'data-role': 'title' }, v.title || '',
    v.channel ? h('span', { class: 'muted' }, `${v.title ? ' · ' : ''}${v.channel}`) : null);
}

function actions(id, state) {
  const v = state.data;
  const verb = { failed: 'Retry', expired: 'Fetch again' }[v.status]
    || (v.file_available ? 'Download' : 'Download clip');
  const button = h('button', {
    type: 'button', 'data-role': 'download', disabled: state.intent === 'requesting',
    'aria-label': `${verb} ${hms(v.start_time)} to ${hms(v.end_time)}`, onclick: () => fetchFile(id),
  }, verb);
  return h('div', { class: 'actions' }, choiceControls(state, () => replaceCard(id)), button);
}
