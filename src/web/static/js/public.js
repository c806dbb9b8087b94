// A channel's public clip page, /c/{handle} (issue 17, item 5): no login, no session.
// The handle comes from the address; the clips from GET /api/public/channels/{handle}/clips.
// Everything shown is built as DOM nodes with text (never HTML strings), and links only go
// to https://youtu.be/ and the channel's youtube.com page.

import { get } from './api.js';
import { $, h } from './dom.js';

const SEARCH_PAUSE_MS = 350;
const YOUTU_BE = /^https:\/\/youtu\.be\/[A-Za-z0-9_-]{11}\?t=\d+$/;
const CHANNEL_ID = /^UC[A-Za-z0-9_-]{22}$/;
const STREAM_ID = /^[A-Za-z0-9_-]{11}$/;

/** The handle in /c/{handle} ('' when the address has none or is malformed). */
function handleOf(path) {
  const part = path.split('/')[2] || '';
  try { return decodeURIComponent(part); } catch { return ''; }
}

const handle = handleOf(window.location.pathname);
const given = new URLSearchParams(window.location.search);
const state = {
  q: given.get('q') || '',
  stream: STREAM_ID.test(given.get('stream') || '') ? given.get('stream') : '',
  page: Math.max(1, parseInt(given.get('page') || '1', 10) || 1),
  perPage: 20,
};
let asked = 0; // the newest request: older answers are dropped
let pause = null;

function api(path, params) {
  const query = new URLSearchParams(params);
  return `/api/public/channels/${encodeURIComponent(handle)}/${path}?${query}`;
}

function filters() {
  const params = {};
  if (state.q.trim()) params.q = state.q.trim();
  if (state.stream) params.youtube_video_id = state.stream;
  return params;
}

function status(text) {
  const el = $('public-status');
  el.textContent = text;
  el.hidden = !text;
}

function remember() {
  const params = new URLSearchParams();
  if (state.q.trim()) params.set('q', state.q.trim());
  if (state.stream) params.set('stream', state.stream);
  if (state.page > 1) params.set('page', String(state.page));
  const search = params.toString();
  window.history.replaceState(null, '', window.location.pathname + (search ? `?${search}` : ''));
}

function clipItem(clip) {
  const head = h('p', { class: 'clip-head' }, h('span', { class: 'times' }, clip.time));
  if (clip.user) head.append(h('span', { class: 'public-user' }, `clipped by ${clip.user}`));
  const message = clip.message
    ? h('p', { class: 'message' }, clip.message)
    : h('p', { class: 'muted' }, '(no message)');
  const actions = h('p', { class: 'public-actions' });
  if (YOUTU_BE.test(clip.url || '')) {
    actions.append(h('a', { href: clip.url, target: '_blank', rel: 'noopener noreferrer',
      class: 'public-watch' }, `Watch at ${clip.time}`));
  }
  if (!state.stream && STREAM_ID.test(clip.youtube_video_id || '')) {
    actions.append(h('button', { type: 'button', class: 'secondary public-only-stream',
      onclick: () => { state.stream = clip.youtube_video_id; state.page = 1; load(); } },
    'Only this stream'));
  }
  return h('li', { class: 'card public-clip', 'data-stream': clip.youtube_video_id },
    head, message, actions);
}

function showChannel(channelId) {
  const box = $('public-channel');
  if (CHANNEL_ID.test(channelId || '')) {
    $('public-channel-link').href = `https://www.youtube.com/channel/${channelId}`;
    box.hidden = false;
  }
}

function showExports() {
  for (const link of document.querySelectorAll('.public-export-links a')) {
    link.href = api('export', { ...filters(), format: link.dataset.format });
  }
}

function showPages(total) {
  const pages = Math.max(1, Math.ceil(total / state.perPage));
  $('public-pages').hidden = pages <= 1;
  $('public-page-info').textContent =
    `Page ${state.page} of ${pages} (${total} clip${total === 1 ? '' : 's'})`;
  $('public-prev').disabled = state.page <= 1;
  $('public-next').disabled = state.page >= pages;
}

function showStream() {
  $('public-stream').hidden = !state.stream;
  $('public-stream-text').textContent = state.stream ? `Only the stream ${state.stream}.` : '';
}

function notFound() {
  document.title = 'No such page';
  $('public-title').textContent = 'No such page';
  $('public-body').hidden = true;
  status('There is no public clip page with this name.');
}

async function load() {
  const mine = ++asked;
  remember();
  showStream();
  showExports();
  status('Loading…');
  let data;
  try {
    ({ data } = await get(api('clips', {
      ...filters(), page: state.page, per_page: state.perPage,
    }), { token: 'none' }));
  } catch (err) {
    if (mine !== asked) return;
    if (err.status === 404) notFound();
    else if (err.status === 429) {
      status(`Too many requests; try again in ${err.retryAfter || 'a few'} s.`);
    } else status(err.message || 'The clips could not be loaded.');
    return;
  }
  if (mine !== asked) return;
  const pages = Math.max(1, Math.ceil(data.total / state.perPage));
  if (state.page > pages && data.total > 0) { // the search shrank the list: its last page
    state.page = pages;
    load();
    return;
  }
  document.title = `Clips of ${data.handle}`;
  $('public-title').textContent = `Clips of ${data.handle}`;
  showChannel(data.channel_id);
  $('public-body').hidden = false;
  $('public-list').replaceChildren(...data.clips.map(clipItem));
  $('public-none').hidden = data.clips.length > 0;
  showPages(data.total);
  status('');
}

function searchSoon() {
  clearTimeout(pause);
  pause = setTimeout(() => {
    state.q = $('public-q').value;
    state.page = 1;
    load();
  }, SEARCH_PAUSE_MS);
}

function start() {
  if (!handle) { notFound(); return; }
  $('public-q').value = state.q;
  $('public-q').addEventListener('input', searchSoon);
  $('public-search').addEventListener('submit', (event) => {
    event.preventDefault();
    clearTimeout(pause);
    state.q = $('public-q').value;
    state.page = 1;
    load();
  });
  $('public-stream-clear').addEventListener('click', () => {
    state.stream = '';
    state.page = 1;
    load();
  });
  $('public-prev').addEventListener('click', () => { state.page -= 1; load(); });
  $('public-next').addEventListener('click', () => { state.page += 1; load(); });
  load();
}

start();
