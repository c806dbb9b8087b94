// What a video is (issue 18): the info card of a clip (its status' ``video_info``) and of a URL
// looked up before saving (GET /api/video/info), playlist entries included. Every field is the
// source's text: shown with textContent only (dom.js h()), URLs checked before they are used.
import { h } from './dom.js';
import { hms } from './format.js';

/**
 * Thumbnails are shown only from the page's own origin or YouTube's image hosts: the page's
 * Content-Security-Policy (src/web/__init__.py, img-src) refuses any other host, and a refused
 * image is a console error, not a picture.
 */
const THUMB_HOSTS = /(^|\.)ytimg\.com$/;

/** An http(s) URL as a URL object, or null (javascript:, data:, relative junk, non-strings). */
export function httpUrl(text) {
  if (typeof text !== 'string' || text.length > 2048) return null;
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : null;
  } catch { return null; }
}

function thumbnailUrl(text) {
  const url = httpUrl(text);
  if (!url) return null;
  const own = url.origin === window.location.origin;
  return own || (url.protocol === 'https:' && THUMB_HOSTS.test(url.hostname)) ? url.href : null;
}

const LIVE = {
  is_live: 'Live now', is_upcoming: 'Upcoming', was_live: 'Was live', post_live: 'Stream ended',
};

let names = null;
/** "English (en)" when the browser knows the language, else the code itself. */
export function languageName(code) {
  try {
    names = names || new Intl.DisplayNames([navigator.language || 'en'], { type: 'language' });
    const name = names.of(String(code));
    return name && name !== code ? `${name} (${code})` : String(code);
  } catch { return String(code); }
}

/**
 * Subtitle tracks per language: [{lang, automatic}] with a language listed once (a manual track
 * wins over automatic captions of the same language, as the download asks by language only).
 */
export function subtitleLanguages(tracks) {
  const byLang = new Map();
  for (const t of Array.isArray(tracks) ? tracks : []) {
    if (!t || typeof t.lang !== 'string' || !t.lang) continue;
    const seen = byLang.get(t.lang);
    if (!seen || (seen.automatic && !t.automatic)) {
      byLang.set(t.lang, { lang: t.lang, automatic: !!t.automatic });
    }
  }
  return [...byLang.values()];
}

function duration(info) {
  if (typeof info.duration_hms === 'string' && info.duration_hms) return info.duration_hms;
  return Number.isFinite(info.duration) ? hms(info.duration) : null;
}

function fact(role, label, value) {
  if (value === null || value === undefined || value === '') return null;
  return h('div', { class: 'fact' }, h('dt', {}, label), h('dd', { 'data-role': role }, value));
}

/**
 * The card of one video: ``info`` as VideoInfoSchema (src/schemas.py). ``compact``: the clip
 * list's short form (title, channel, duration, size). Returns an element; never throws on odd
 * field types (they are skipped).
 */
export function infoCard(info, { compact = false } = {}) {
  const text = (v) => (typeof v === 'string' && v ? v : null);
  const title = text(info.title) || 'Untitled video';
  const channel = text(info.channel) || text(info.uploader);
  const thumb = thumbnailUrl(info.thumbnail);
  const subs = subtitleLanguages(info.subtitles);
  const audio = Array.isArray(info.audio_languages) ? info.audio_languages.filter(text) : [];
  const facts = [
    fact('channel', 'Channel', channel),
    fact('duration', 'Duration', duration(info)),
    fact('size', 'Video size', text(info.filesize_human)),
  ];
  if (!compact) {
    facts.push(
      fact('uploaded', 'Uploaded', text(info.upload_date)),
      fact('live', 'Live', LIVE[info.live_status] || null),
      fact('audio', 'Audio', audio.length ? audio.map(languageName).join(', ') : null),
      fact('subtitles', 'Subtitles', subs.length ? subs.map((s) =>
        languageName(s.lang) + (s.automatic ? ' (auto)' : '')).join(', ') : 'none'),
    );
  }
  const card = h('section', { class: `info-card${compact ? ' compact' : ''}`, 'data-role': 'info',
    'aria-label': `Video: ${title}` },
    thumb ? h('img', { class: 'thumb', src: thumb, alt: '', loading: 'lazy',
      referrerpolicy: 'no-referrer', 'data-role': 'thumbnail' }) : null,
    h('div', { class: 'info-body' },
      h('p', { class: 'info-title', 'data-role': 'title' }, title),
      h('dl', { class: 'facts' }, facts)));
  if (info.is_geo_restricted === true) {
    const allowed = Array.isArray(info.allowed_countries)
      ? info.allowed_countries.filter(text) : [];
    card.append(h('p', { class: 'warning', 'data-role': 'geo' }, 'Restricted by country',
      allowed.length ? ` (available in ${allowed.join(', ')})` : ''));
  }
  return card;
}

/**
 * The card of a playlist page: its title and entries; ``onPick(url)`` runs when an entry is
 * chosen (only entries with an http(s) URL are offered).
 */
export function playlistCard(playlist, onPick) {
  const text = (v) => (typeof v === 'string' && v ? v : null);
  const entries = (Array.isArray(playlist.entries) ? playlist.entries : [])
    .filter((e) => e && httpUrl(e.url));
  const title = text(playlist.title) || 'Playlist';
  const count = Number.isFinite(playlist.count) ? playlist.count : entries.length;
  return h('section', { class: 'info-card playlist', 'data-role': 'playlist',
    'aria-label': `Playlist: ${title}` },
    h('div', { class: 'info-body' },
      h('p', { class: 'info-title', 'data-role': 'title' }, title),
      h('p', { class: 'muted' }, text(playlist.uploader) ? `${playlist.uploader} · ` : '',
        `${count} video${count === 1 ? '' : 's'}`, playlist.truncated ? ' (first ones listed)' : '',
        ' — a clip is of one video: choose it.'),
      h('ol', { class: 'entries' }, entries.map((e) => h('li', {},
        h('button', { type: 'button', class: 'secondary entry', 'data-role': 'entry',
          'data-url': httpUrl(e.url).href, onclick: () => onPick(httpUrl(e.url).href) },
        text(e.title) || text(e.video_id) || httpUrl(e.url).href,
        Number.isFinite(e.duration) ? h('span', { class: 'muted' }, ` ${hms(e.duration)}`)
          : null))))));
}
