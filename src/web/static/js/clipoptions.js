// The download choices of one clip (issue 18): video or audio format, resolution, audio
// bitrate, subtitle languages and how they come (embedded or a separate .vtt), and the body of
// POST /api/video/download/{id} they make. The subtitle files of a finished clip as buttons.
import { downloadFile, session } from './api.js';
import { h } from './dom.js';
import { languageName, subtitleLanguages } from './info.js';

export const RESOLUTIONS = ['4320p', '2160p', '1440p', '1080p', '720p']; // what the API accepts
const VIDEO_FORMATS = [['mp4', 'mp4'], ['webm', 'webm'], ['best', 'best']];
const AUDIO_FORMATS = [['mp3', 'MP3'], ['m4a', 'M4A'], ['opus', 'Opus']];
/** The download's ``audio_bitrate`` values (kbit/s); MP3 is encoded at 192 unless asked. */
const BITRATES = [64, 96, 128, 160, 192, 256, 320];
const MP3_DEFAULT = 192;
const MAX_SUBTITLES = 10; // the download body's limit

export const isAudio = (fmt) => AUDIO_FORMATS.some(([value]) => value === fmt);

/** The choices a new clip starts with. */
export function defaultChoices() {
  return { fmt: 'mp4', res: 'best', bitrate: '', subs: [], mode: 'embed' };
}

/** The clip's stored choices (its status) as the first ones shown: a download without a
 * choice keeps the clip's anyway (DownloadSchema: "missing ones keep the clip's"). */
export function keepChoices(state, status) {
  const known = [...VIDEO_FORMATS, ...AUDIO_FORMATS].map(([value]) => value);
  if (known.includes(status.format_preference)) state.fmt = status.format_preference;
  if (BITRATES.includes(status.audio_bitrate)) state.bitrate = String(status.audio_bitrate);
  if (Array.isArray(status.subtitles)) {
    state.subs = status.subtitles.map((s) => s && s.lang).filter((l) => typeof l === 'string');
  }
  if (status.subtitles_mode === 'embed' || status.subtitles_mode === 'sidecar') {
    if (!isAudio(status.format_preference)) state.mode = status.subtitles_mode;
  }
}

/** The audio formats offered: the clip's ``audio_formats`` once known (none: no audio). */
function audioChoices(formats) {
  const known = formats && Array.isArray(formats.audio_formats) ? formats.audio_formats : null;
  return known ? AUDIO_FORMATS.filter(([value]) => known.includes(value)) : AUDIO_FORMATS;
}

function resolutionChoices(available) {
  const known = (available || []).map((r) => RESOLUTIONS.indexOf(r)).filter((i) => i >= 0);
  return ['best', ...RESOLUTIONS.slice(known.length ? Math.min(...known) : 0)];
}

/** Languages to offer: the formats' ``subtitles``, else the clip's ``video_info``'s. */
function languages(state) {
  return subtitleLanguages(state.formats?.subtitles ?? state.data.video_info?.subtitles);
}

/**
 * The body of POST /api/video/download/{id} for ``state``'s choices: resolution only for video,
 * ``audio_bitrate`` only for audio (MP3's default 192 is the server's too), subtitles with
 * their mode (audio files: sidecar only — an embed asked with audio is a 400).
 */
export function downloadBody(state) {
  const body = { format_preference: state.fmt };
  if (isAudio(state.fmt)) {
    if (state.bitrate) body.audio_bitrate = Number(state.bitrate);
  } else {
    body.resolution_preference = state.res;
  }
  const offered = new Set(languages(state).map((s) => s.lang));
  // Always sent, [] included: a download without ``subtitles`` keeps the clip's earlier ones.
  body.subtitles = state.subs.filter((lang) => offered.has(lang)).slice(0, MAX_SUBTITLES);
  if (body.subtitles.length) body.subtitles_mode = isAudio(state.fmt) ? 'sidecar' : state.mode;
  return body;
}

/** The file name to use when the answer names none (the server's: ``video_<id>.mp4``,
 * ``clip_<id>.mp3`` for an audio clip). */
export function fallbackName(id, fmt) {
  return isAudio(fmt) ? `clip_${id}.${fmt}` : `video_${id}.${fmt === 'webm' ? 'webm' : 'mp4'}`;
}

function select(role, values, selected, onchange) {
  return h('select', { 'data-role': role, onchange },
    values.map(([value, text]) => h('option', { value, selected: value === selected }, text)));
}

function subtitlesPicker(state, audio) {
  const langs = languages(state);
  if (!langs.length) return null;
  const offered = new Set(langs.map((s) => s.lang));
  state.subs = state.subs.filter((lang) => offered.has(lang));
  const summary = h('summary', { 'data-role': 'subtitles-summary' });
  const boxes = [];
  const sync = () => {
    const full = state.subs.length >= MAX_SUBTITLES;
    for (const box of boxes) box.disabled = full && !box.checked;
    summary.textContent = `Subtitles: ${state.subs.length ? state.subs.join(', ') : 'none'}`;
  };
  const list = h('div', { class: 'sub-list', role: 'group', 'aria-label': 'Subtitle languages' },
    langs.map((s) => {
      const box = h('input', { type: 'checkbox', value: s.lang, 'data-role': 'subtitle',
        'data-lang': s.lang,
        checked: state.subs.includes(s.lang), onchange: (e) => {
          state.subs = e.target.checked ? [...state.subs, s.lang]
            : state.subs.filter((lang) => lang !== s.lang);
          sync();
        } });
      boxes.push(box);
      return h('label', { class: 'check' }, box,
        ` ${languageName(s.lang)}${s.automatic ? ' (auto)' : ''}`);
    }));
  const mode = select('subtitles-mode', [['embed', 'Embedded in the video'],
    ['sidecar', 'Separate .vtt file']], audio ? 'sidecar' : state.mode,
  (e) => { state.mode = e.target.value; });
  mode.disabled = audio; // an audio file carries no subtitle track: sidecar only
  sync();
  return h('details', { class: 'subs', open: state.subsOpen ?? state.subs.length > 0,
    ontoggle: (e) => { state.subsOpen = e.target.open; } }, summary,
    h('fieldset', {}, h('legend', {}, 'Subtitle languages (up to 10)'), list,
      h('label', {}, 'Subtitles as ', mode),
      audio ? h('p', { class: 'muted' }, 'Audio files get the subtitles as separate files.')
        : null));
}

/**
 * The labelled controls of ``state``'s choices (appended to the clip's actions). ``rerender``
 * redraws the clip's actions when a choice changes what is offered (audio ↔ video).
 */
export function choiceControls(state, rerender) {
  const v = state.data;
  const audioOffered = audioChoices(state.formats);
  if (isAudio(state.fmt) && !audioOffered.some(([value]) => value === state.fmt)) state.fmt = 'mp4';
  const audio = isAudio(state.fmt);
  const fmt = h('select', { 'data-role': 'format', onchange: (e) => {
    const wasAudio = audio;
    state.fmt = e.target.value;
    if (wasAudio !== isAudio(state.fmt) || isAudio(state.fmt)) rerender();
  } },
  h('optgroup', { label: 'Video' }, VIDEO_FORMATS.map(([value, text]) =>
    h('option', { value, selected: value === state.fmt }, text))),
  audioOffered.length ? h('optgroup', { label: 'Audio' }, audioOffered.map(([value, text]) =>
    h('option', { value, selected: value === state.fmt }, text))) : null);
  const resValues = resolutionChoices(state.formats?.resolutions || v.available_formats);
  if (!resValues.includes(state.res)) state.res = 'best';
  const res = select('resolution', resValues.map((r) => [r, r]), state.res,
    (e) => { state.res = e.target.value; });
  res.disabled = audio;
  const rates = BITRATES.map((b) => [String(b), `${b} kbit/s`]);
  // MP3 is always encoded: its default (the server's too) is shown; m4a/opus copy by default.
  const bitrateValues = state.fmt === 'mp3' ? rates : [['', 'Default'], ...rates];
  const shown = state.bitrate || (state.fmt === 'mp3' ? String(MP3_DEFAULT) : '');
  const bitrate = select('audio-bitrate', bitrateValues, shown,
    (e) => { state.bitrate = e.target.value; });
  return [
    h('label', {}, 'Format ', fmt),
    h('label', { hidden: audio }, 'Resolution ', res),
    audio ? h('label', {}, 'Audio bitrate ', bitrate) : null,
    state.formats && !audioOffered.length
      ? h('span', { class: 'muted', 'data-role': 'no-audio' }, 'No audio track') : null,
    subtitlesPicker(state, audio),
  ];
}

/** Save one subtitle file of a finished clip (GET with the private token). */
async function fetchSubtitle(id, track) {
  await downloadFile(track.url, null, `clip_${id}.${track.lang}.vtt`);
}

/**
 * Buttons "Subtitles (en)" for the status' ``subtitles`` of the finished file; only tracks whose
 * ``url`` is one of this API's paths are offered. ``onError(err)`` shows a failure.
 */
export function subtitleLinks(id, v, onError) {
  const tracks = (Array.isArray(v.subtitles) ? v.subtitles : []).filter((t) => t
    && typeof t.url === 'string' && t.url.startsWith('/api/video/download/')
    && typeof t.lang === 'string');
  const left = v.subtitle_errors && typeof v.subtitle_errors === 'object'
    ? Object.entries(v.subtitle_errors).filter(([, why]) => typeof why === 'string') : [];
  if ((!tracks.length || !v.file_available || !session()) && !left.length) return null;
  return h('div', { class: 'sub-links', role: 'group', 'aria-label': 'Subtitle files' },
    v.file_available ? tracks.map((t) => h('button', { type: 'button', class: 'secondary',
      'data-role': 'subtitle-file', 'data-lang': t.lang,
      onclick: () => fetchSubtitle(id, t).catch(onError) },
    `Subtitles (${t.lang}${t.automatic ? ', auto' : ''})`)) : null,
    left.map(([lang, why]) => h('p', { class: 'muted', 'data-role': 'subtitle-error',
      'data-lang': lang }, `Subtitles (${lang}) left out: ${why}`)));
}
