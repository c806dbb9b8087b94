// A live clip in the list (issue 14; its status has ``live_window`` {start_at, end_at},
// ISO-8601 UTC): its wall-clock span and its one file, recorded as MP4 from the live stream
// (src/services/live_capture.py) — a download serves that file whatever format it asks. A clip
// of Clip now has no other source (no place in a recording: start/end are null), so its
// failure and expiry are final: no retry, no fetch again. A stream clip from chat recorded live
// has its place in the stream's recording: failed or expired, its download falls back to the
// VOD (src/services/vod_fallback.py), so it keeps the usual choices then.
import { h } from './dom.js';

/** Clip now's clip: recorded live, nothing else to cut it from. */
export const liveOnly = (v) => !!v.live_window && v.start_time == null && v.end_time == null;

/** The clip's file is its live recording: the one Download, no format choices. */
export const liveFile = (v) => !!v.live_window && (v.status === 'completed' || liveOnly(v));

/** A live clip's span as local clock times: {text, seconds, label} (null: not a live clip). */
export function liveSpan(liveWindow) {
  if (!liveWindow || typeof liveWindow !== 'object') return null;
  const start = new Date(liveWindow.start_at);
  const end = new Date(liveWindow.end_at);
  if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) return null;
  const clock = (d) => d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit',
    second: '2-digit' });
  return { text: `${clock(start)} – ${clock(end)}`, seconds: (end - start) / 1000,
    label: `Live clip ${clock(start)} to ${clock(end)}` };
}

/**
 * The actions of a clip with :func:`liveFile`: a Download button (``download()`` on click) once
 * it is recorded, else a note why there is none, or null (failed: its error says why).
 */
export function liveActions(state, download) {
  const v = state.data;
  if (v.status === 'pending') {
    return h('p', { class: 'muted', 'data-role': 'live-note' }, 'Waiting to start recording…');
  }
  if (v.status === 'expired') {
    return h('p', { class: 'muted', 'data-role': 'live-note' },
      'The file has expired, and its moment has left the live stream.');
  }
  if (v.status !== 'completed') return null; // failed: the error says why (final)
  const span = liveSpan(v.live_window);
  return h('div', { class: 'actions' },
    h('span', { class: 'muted' }, 'Recorded live · MP4'),
    h('button', { type: 'button', 'data-role': 'download', disabled: state.intent === 'requesting',
      'aria-label': `Download the ${span ? span.label.toLowerCase() : 'live clip'}`,
      onclick: download }, 'Download'));
}
