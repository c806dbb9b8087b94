// Nightbot setup: issue a bound public token, show the !addcom lines for this server,
// list and revoke the user's public tokens.
import { del, get } from './api.js';
import { $, flash, h } from './dom.js';
import { describe, localDateTime } from './format.js';
import { issueToken, saveTokenId } from './tokens.js';

/**
 * The chat command for a bound token (docs/nightbot.md). Nightbot's $(urlfetch) calls the URL with
 * its Nightbot-User and Nightbot-Channel headers; `live` lets the server find the channel's
 * current stream, and $(querystring) passes what the viewer typed after !clip as the message.
 * A bound token implies the user, so no user_id: Nightbot commands are limited to 500 characters.
 */
export function commandFor(token, origin = window.location.origin) {
  const url = `${origin}/api/video/save/stream/${encodeURIComponent(token)}/live`
    + '?message=$(querystring)';
  return `!addcom !clip $(urlfetch ${url})`;
}

/**
 * The other chat commands (issue 17; docs/nightbot.md), one !addcom line each: edit and delete
 * are limited to moderators by Nightbot itself (-ul=moderator; the server checks userLevel too).
 */
export function chatCommandsFor(token, origin = window.location.origin) {
  const base = `${origin}/api/chat/${encodeURIComponent(token)}`;
  return [['-ul=moderator !clipedit', 'edit'], ['-ul=moderator !clipdelete', 'delete'],
    ['!recent', 'recent'], ['!clipsearch', 'search']]
    .map(([name, path]) => `!addcom ${name} $(urlfetch ${base}/${path}?message=$(querystring))`)
    .join('\n');
}

async function issue() {
  const button = $('nightbot-issue');
  button.disabled = true;
  try {
    const token = await issueToken();
    $('nightbot-command').value = commandFor(token.token);
    $('nightbot-chat-commands').value = chatCommandsFor(token.token);
    $('nightbot-expiry').textContent =
      `This token works until ${localDateTime(new Date(token.expiresAt).toISOString())}; `
      + 'issue a new one and update the command before then.';
    $('nightbot-command-box').hidden = false;
    $('nightbot-command').focus();
    $('nightbot-command').select();
    await loadTokens();
  } catch (err) {
    if (err.status !== 401) flash(describe(err), 'error');
  } finally {
    button.disabled = false;
  }
}

async function copy() {
  const area = $('nightbot-command');
  try {
    await navigator.clipboard.writeText(area.value);
    flash('Command copied.');
  } catch {
    area.focus();
    area.select();
    flash('Select all and copy the command (Ctrl+C).');
  }
}

async function revoke(jti) {
  try {
    await del(`/api/auth/tokens/public/${encodeURIComponent(jti)}`);
    flash('Token revoked: Nightbot commands using it stop working now.');
  } catch (err) {
    if (err.status !== 401) flash(describe(err), 'error');
  }
  await loadTokens();
}

/** Reload the token list. */
export async function loadTokens() {
  const { data } = await get('/api/auth/tokens/public');
  const own = saveTokenId();
  $('tokens-empty').hidden = data.tokens.length > 0;
  $('tokens-list').replaceChildren(...data.tokens.map((t) => h('li', {
    class: `card token${t.revoked ? ' revoked' : ''}`, 'data-jti': t.jti,
    'data-revoked': String(t.revoked),
  },
  h('div', { class: 'clip-head' },
    h('span', { class: `badge ${t.revoked ? 'failed' : 'completed'}` }, t.revoked ? 'revoked' : 'active'),
    h('code', {}, t.jti.slice(0, 12)),
    t.jti === own ? h('span', { class: 'muted' }, '(used by this dashboard to save clips)') : null),
  h('p', { class: 'muted' }, `Issued ${localDateTime(t.created_at)} · expires ${localDateTime(t.expires_at)}`),
  t.revoked ? null : h('div', { class: 'actions' }, h('button', {
    type: 'button', class: 'danger', 'data-role': 'revoke',
    'aria-label': `Revoke token ${t.jti.slice(0, 12)}`, onclick: () => revoke(t.jti),
  }, 'Revoke')))));
}

export function initNightbot() {
  $('nightbot-issue').addEventListener('click', issue);
  $('nightbot-copy').addEventListener('click', copy);
}

export function resetNightbot() {
  $('nightbot-command').value = '';
  $('nightbot-command-box').hidden = true;
  $('tokens-list').replaceChildren();
}
