// Channel settings (issue 17, item 2): GET /api/channels lists the channels with saved
// settings, GET/PUT /api/channels/{id} reads and replaces one (the server checks every field
// and names the bad ones), POST …/webhook-secret makes a new signing secret. The recent
// announcements of a channel (Discord, webhook) are listed under its form (deliveries.js).
import { get, post, put } from './api.js';
import { loadDeliveries } from './deliveries.js';
import { $, busy, fieldError, flash, h } from './dom.js';
import { describe } from './format.js';

const CHANNEL_ID = /^UC[A-Za-z0-9_-]{22}$/;
const TEXT_FIELDS = { reply_template: 'channel-template', discord_webhook_url: 'channel-discord',
  webhook_url: 'channel-webhook', handle: 'channel-handle' };
const NUMBER_FIELDS = { offset: 'channel-offset', duration: 'channel-duration',
  delay: 'channel-delay' };

let current = null; // the channel id the form shows

/** The settings form's body: every field (PUT replaces all; empty text clears it). */
export function formBody() {
  const body = { min_user_level: $('channel-level').value, followup: $('channel-followup').checked,
    public_page: $('channel-public').checked };
  for (const [key, id] of Object.entries(TEXT_FIELDS)) {
    const value = $(id).value.trim();
    body[key] = value || null;
  }
  for (const [key, id] of Object.entries(NUMBER_FIELDS)) {
    const value = $(id).value.trim();
    body[key] = value === '' ? null : Number(value);
  }
  if (body.offset === null) delete body.offset;
  if (body.duration === null) delete body.duration;
  return body;
}

function fill(settings) {
  current = settings.channel_id;
  $('channel-form').hidden = false;
  $('channel-form-title').textContent = `Channel ${settings.channel_id}`;
  $('channel-saved').textContent = settings.saved ? 'Saved settings.'
    : 'Not saved yet: these are the defaults.';
  for (const [key, id] of Object.entries({ ...TEXT_FIELDS, ...NUMBER_FIELDS })) {
    $(id).value = settings[key] ?? '';
  }
  $('channel-level').value = settings.min_user_level;
  $('channel-followup').checked = !!settings.followup;
  $('channel-public').checked = !!settings.public_page;
  showSecret(settings.webhook_secret);
  const link = $('channel-public-link');
  link.hidden = !(settings.public_page && settings.handle);
  if (!link.hidden) {
    const url = `${window.location.origin}/c/${encodeURIComponent(settings.handle)}`;
    link.replaceChildren('Public page: ', h('a', { href: url, target: '_blank',
      rel: 'noopener noreferrer', 'data-role': 'public-link' }, url));
  }
  fieldError('channel-error', '');
  loadDeliveries(settings.channel_id, $('channel-deliveries')).catch((err) => {
    if (err.status !== 401) flash(describe(err), 'error');
  });
}

function showSecret(secret) {
  $('channel-secret-box').hidden = !secret;
  $('channel-secret').value = secret || '';
  $('channel-secret').type = 'password';
  $('channel-secret-show').textContent = 'Show';
}

/** Open one channel's settings (the defaults until saved). */
export async function openChannel(channelId) {
  if (!CHANNEL_ID.test(channelId)) {
    fieldError('channel-id-error', 'A channel id is UC followed by 22 letters, digits, _ or -.',
      'channel-id');
    return;
  }
  fieldError('channel-id-error', '', 'channel-id');
  const { data } = await get(`/api/channels/${encodeURIComponent(channelId)}`);
  fill(data);
}

/** Reload the list of channels with settings (the view's loader). */
export async function loadChannels() {
  const { data } = await get('/api/channels');
  if (!current && data.channels.length === 1) fill(data.channels[0]); // the one channel, open
  $('channels-empty').hidden = data.channels.length > 0;
  $('channel-known').replaceChildren(...data.channels.map((c) =>
    h('option', { value: c.channel_id })));
  $('channels-list').replaceChildren(...data.channels.map((c) => h('li', {},
    h('button', { type: 'button', class: 'secondary', 'data-channel': c.channel_id,
      'aria-pressed': c.channel_id === current ? 'true' : 'false',
      onclick: () => openChannel(c.channel_id).catch(failed) },
    c.handle ? `${c.channel_id} (${c.handle})` : c.channel_id))));
}

function failed(err) {
  if (err.status !== 401) flash(describe(err), 'error');
}

async function save(event) {
  event.preventDefault();
  const form = $('channel-form');
  await busy(form, async () => {
    try {
      const { data } = await put(`/api/channels/${encodeURIComponent(current)}`, formBody());
      fill(data);
      flash('Channel settings saved.');
      await loadChannels();
    } catch (err) {
      if (err.status === 401) return;
      fieldError('channel-error', describe(err));
    }
  });
}

async function rotate() {
  if (!window.confirm('Make a new webhook secret? The old one stops verifying at once.')) return;
  try {
    const { data } = await post(`/api/channels/${encodeURIComponent(current)}/webhook-secret`);
    showSecret(data.webhook_secret);
    flash('New webhook secret made: update the receiving side.');
  } catch (err) {
    failed(err);
  }
}

/** Wire the channel picker and the settings form. */
export function initChannels() {
  $('channel-pick').addEventListener('submit', (event) => {
    event.preventDefault();
    openChannel($('channel-id').value.trim()).catch(failed);
  });
  $('channel-form').addEventListener('submit', save);
  $('channel-secret-show').addEventListener('click', () => {
    const input = $('channel-secret');
    const hidden = input.type === 'password';
    input.type = hidden ? 'text' : 'password';
    $('channel-secret-show').textContent = hidden ? 'Hide' : 'Show';
  });
  $('channel-secret-rotate').addEventListener('click', rotate);
}

/** Forget the shown channel (a new session). */
export function resetChannels() {
  current = null;
  $('channel-form').hidden = true;
  $('channels-list').replaceChildren();
}
