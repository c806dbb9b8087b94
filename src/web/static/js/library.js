// The clip library above the list (issue 17, item 4): search (message, title, chat user),
// filters by status, stream and date, clips grouped by stream (the Stream menu lists each with
// its count: ``group=stream``) and pages — all GET /api/video/list query parameters — and the
// player of a
// finished clip: POST /api/video/play/{id} gives a short-lived signed URL (a <video> element
// cannot send the bearer token), played in <video controls>; an expired URL is asked anew.
// A moderator (issue 17, item 6) picks whose clips to list in "Whose clips" (the owners of
// GET /api/team, ``?owner=``); the cards' actions then work on that owner's clips.
import { get, post } from './api.js';
import { $, h } from './dom.js';

export const PER_PAGE = 20;
const SEARCH_DELAY_MS = 300; // typing pauses this long before the list is asked again

const filter = { owner: '', q: '', status: '', stream: '', since: '', until: '', page: 1 };
let ownersShown = false; // the "Whose clips" menu is filled once per session
let pages = 1;

/** The list's query string for the current search, status and page. */
export function listQuery() {
  const params = new URLSearchParams({ page: String(filter.page), per_page: String(PER_PAGE),
    group: 'stream' });
  if (filter.owner) params.set('owner', filter.owner);
  if (filter.q.trim()) params.set('q', filter.q.trim());
  if (filter.status) params.set('status', filter.status);
  if (filter.stream) params.set('youtube_video_id', filter.stream);
  if (filter.since) params.set('since', filter.since);
  if (filter.until) params.set('until', filter.until);
  return params.toString();
}

/** True when a search or a filter narrows the list (an empty list is then no news). */
export const filtered = () => !!(filter.q.trim() || filter.status || filter.stream
  || filter.since || filter.until);

/** Wire the search box, the status filter and the pager; ``reload()`` lists again. */
export function initLibrary(reload) {
  let timer = null;
  const again = () => {
    clearTimeout(timer);
    timer = null;
    reload();
  };
  $('clips-filter').addEventListener('submit', (event) => {
    event.preventDefault();
    filter.q = $('clips-q').value;
    filter.page = 1;
    again();
  });
  const typed = () => {
    if ($('clips-q').value === filter.q) return;
    filter.q = $('clips-q').value;
    filter.page = 1;
    clearTimeout(timer);
    timer = setTimeout(again, SEARCH_DELAY_MS);
  };
  // input: each key; search: the field's clear button; change: a value set without typing
  for (const name of ['input', 'search', 'change']) $('clips-q').addEventListener(name, typed);
  const menus = { owner: 'clips-owner', status: 'clips-status', stream: 'clips-stream',
    since: 'clips-since', until: 'clips-until' };
  for (const [key, id] of Object.entries(menus)) {
    $(id).addEventListener('change', () => {
      filter[key] = $(id).value;
      if (key === 'owner') filter.stream = ''; // another owner's streams
      filter.page = 1;
      again();
    });
  }
  $('clips-prev').addEventListener('click', () => {
    if (filter.page > 1) { filter.page -= 1; again(); }
  });
  $('clips-next').addEventListener('click', () => {
    if (filter.page < pages) { filter.page += 1; again(); }
  });
}

/** Show the pager for a list answer ({total, page, per_page}); hidden for one page. */
export function showPages(data) {
  const total = data.total ?? data.videos.length;
  pages = Math.max(1, Math.ceil(total / (data.per_page || PER_PAGE)));
  if (filter.page > pages) filter.page = pages;
  $('clips-pages').hidden = pages <= 1;
  $('clips-page-info').textContent = `Page ${data.page || 1} of ${pages} (${total} clips)`;
  $('clips-prev').disabled = filter.page <= 1;
  $('clips-next').disabled = filter.page >= pages;
  return filter.page !== (data.page || 1); // the last page went away: ask again
}

/**
 * The Stream menu from a list answer's ``groups`` ([{youtube_video_id, count}], newest stream
 * first): each stream (or video) with its matching clips; the chosen one stays listed.
 */
export function showGroups(data) {
  const menu = $('clips-stream');
  const groups = (data.groups || []).filter((g) => g.youtube_video_id);
  if (filter.stream && !groups.some((g) => g.youtube_video_id === filter.stream)) {
    groups.unshift({ youtube_video_id: filter.stream, count: 0 });
  }
  const titles = new Map(data.videos.map((v) => [v.youtube_video_id, v.title]));
  menu.replaceChildren(h('option', { value: '' }, 'All streams and videos'),
    ...groups.map((g) => h('option', { value: g.youtube_video_id,
      selected: g.youtube_video_id === filter.stream },
    `${titles.get(g.youtube_video_id) || g.youtube_video_id} (${g.count})`)));
}

/**
 * Fill "Whose clips" with the owners I moderate (GET /api/team), once per session; hidden when
 * there are none. An owner who removed me meanwhile falls back to my own clips.
 */
export async function showOwners() {
  if (ownersShown) return;
  ownersShown = true;
  const { data } = await get('/api/team');
  const owners = data.owners || [];
  if (filter.owner && !owners.some((o) => o.owner_id === filter.owner)) filter.owner = '';
  $('clips-owner').replaceChildren(h('option', { value: '' }, 'Mine'),
    ...owners.map((o) => h('option', { value: o.owner_id, selected: o.owner_id === filter.owner },
      o.email || o.owner_id)));
  $('clips-owner-box').hidden = owners.length === 0;
}

/** The owners I moderate may have changed (the Team view loaded): ask again next time. */
export function ownersStale() {
  ownersShown = false;
}

/** Back to the first page, no search, my own clips (a new session). */
export function resetLibrary() {
  Object.assign(filter, { owner: '', q: '', status: '', stream: '', since: '', until: '',
    page: 1 });
  ownersShown = false;
  for (const id of ['clips-owner', 'clips-q', 'clips-status', 'clips-stream', 'clips-since',
    'clips-until']) {
    $(id).value = '';
  }
  $('clips-owner-box').hidden = true;
}

async function playUrl(id) {
  const { data } = await post(`/api/video/play/${id}`);
  return data.url;
}

/**
 * The player part of a finished clip's card: a Play button, then its <video>. The element is
 * kept in ``state.video`` so a redrawn card (status polls, formats) keeps it playing.
 * ``onError(err)`` shows a failed request.
 */
export function playerFor(id, state, onError) {
  const box = h('div', { class: 'player', 'data-role': 'player-box' });
  if (state.video) {
    box.append(state.video);
    return box;
  }
  const button = h('button', { type: 'button', class: 'secondary', 'data-role': 'play',
    'aria-label': 'Play this clip' }, 'Play');
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const video = h('video', { controls: true, preload: 'metadata', 'data-role': 'player',
        'aria-label': 'Clip player' });
      video.src = await playUrl(id);
      video.addEventListener('error', () => renew(id, video, onError));
      state.video = video;
      button.replaceWith(video);
      video.play().catch(() => {}); // autoplay may be refused: the controls are there
    } catch (err) {
      button.disabled = false;
      onError(err);
    }
  });
  box.append(button);
  return box;
}

/** The signed URL ran out (or the file moved): ask a new one and go on where it stopped. */
async function renew(id, video, onError) {
  if (video.dataset.renewed === 'true') return; // once: a second failure is real
  video.dataset.renewed = 'true';
  const at = video.currentTime;
  try {
    video.src = await playUrl(id);
    video.currentTime = at;
  } catch (err) {
    onError(err);
  }
}
