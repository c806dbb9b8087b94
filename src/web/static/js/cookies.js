// YouTube cookies (issue 13): upload / replace / delete the owner's cookies.txt, shown only as
// domains, count and earliest expiry (the API never returns their content), with a warning when
// the earliest expiry is within EXPIRY_WARNING_DAYS or has passed.
import { del, get, put } from './api.js';
import { $, busy, fieldError, flash } from './dom.js';
import { describe, localDateTime } from './format.js';

export const EXPIRY_WARNING_DAYS = 7;
const DAY_MS = 86_400_000;

/**
 * The warning for an earliest expiry (epoch seconds, or null for session cookies only) at
 * ``now`` (ms): {kind: 'expired' | 'soon', text} or null when none is due.
 */
export function expiryWarning(earliest, now = Date.now()) {
  if (earliest === null || earliest === undefined) return null;
  const ms = earliest * 1000;
  const when = localDateTime(new Date(ms).toISOString());
  if (ms <= now) {
    return { kind: 'expired', text: `A cookie expired on ${when}: YouTube may refuse them. `
      + 'Export fresh cookies from your browser and upload them again.' };
  }
  if (ms - now <= EXPIRY_WARNING_DAYS * DAY_MS) {
    const days = Math.max(1, Math.ceil((ms - now) / DAY_MS));
    return { kind: 'soon', text: `A cookie expires on ${when} (in ${days} day${days > 1 ? 's' : ''}): `
      + 'upload fresh ones before then.' };
  }
  return null;
}

function render(data) {
  const panel = $('cookies-panel');
  const state = !data.exists ? 'none' : (data.unreadable ? 'unreadable' : 'stored');
  panel.dataset.state = state;
  $('cookies-summary').textContent = {
    none: 'No cookies stored: your clips are fetched without signing in to YouTube.',
    unreadable: 'Your stored cookies can no longer be read by the server (its key changed) and '
      + 'are not used. Upload them again.',
    stored: `${data.count} cookie${data.count === 1 ? '' : 's'} of ${data.domains.join(', ')}`
      + `, updated ${localDateTime(data.updated_at)}.`,
  }[state];
  const expiry = $('cookies-expiry');
  expiry.hidden = state !== 'stored';
  expiry.textContent = data.earliest_expiry === null
    ? 'Session cookies only (no expiry date).'
    : `Earliest expiry: ${localDateTime(new Date(data.earliest_expiry * 1000).toISOString())}.`;
  const warning = state === 'stored' ? expiryWarning(data.earliest_expiry) : null;
  const box = $('cookies-warning');
  box.hidden = !warning;
  box.textContent = warning ? warning.text : '';
  box.dataset.kind = warning ? warning.kind : '';
  $('cookies-upload').textContent = data.exists ? 'Replace cookies' : 'Upload cookies';
  $('cookies-delete').hidden = !data.exists;
}

/** Reload the panel from GET /api/auth/cookies. */
export async function loadCookies() {
  const { data } = await get('/api/auth/cookies');
  render(data);
}

async function upload(form) {
  const file = form.file.files[0];
  fieldError('cookies-error', '');
  if (!file) {
    fieldError('cookies-error', 'Choose your cookies.txt file first.', 'cookies-file');
    return;
  }
  fieldError('cookies-error', '', 'cookies-file');
  try {
    const { data } = await put('/api/auth/cookies', { cookies: await file.text() });
    form.reset();
    const ignored = data.ignored ? ` (${data.ignored} of other sites ignored)` : '';
    flash(`Cookies saved: ${data.count} of ${data.domains.join(', ')}${ignored}.`);
  } catch (err) {
    if (err.status === 401) return;
    fieldError('cookies-error', err.code === 'INVALID_COOKIES' ? err.message : describe(err),
      'cookies-file');
    return;
  }
  await loadCookies();
}

async function remove() {
  const button = $('cookies-delete');
  button.disabled = true;
  try {
    await del('/api/auth/cookies');
    flash('Cookies deleted.');
  } catch (err) {
    if (err.status === 401) return;
    if (err.status !== 404) flash(describe(err), 'error');
  } finally {
    button.disabled = false;
  }
  await loadCookies();
}

export function initCookies() {
  $('cookies-form').addEventListener('submit', (event) => {
    event.preventDefault();
    return busy(event.currentTarget, () => upload(event.currentTarget));
  });
  $('cookies-delete').addEventListener('click', () => remove().catch((err) => {
    if (err.status !== 401) flash(describe(err), 'error');
  }));
}
