// A channel's recent clip notifications (issue 17, item 3): GET /api/channels/{id}/deliveries
// lists the last 50 posts to the channel's Discord and generic webhooks, the last changed
// first. A failed one shows why (the server names the host, never the webhook's URL).
import { get } from './api.js';
import { h } from './dom.js';
import { localDateTime } from './format.js';

const EVENTS = { saved: 'Clip saved', ready: 'Clip ready', failed: 'Clip failed' };
const TARGETS = { discord: 'Discord', webhook: 'Webhook' };
// The clip list's badge colours: delivered green, sending blue, queued amber, failed red.
const BADGES = { delivered: 'completed', sending: 'processing', queued: 'pending',
  failed: 'failed' };

function item(d) {
  const failed = d.status === 'failed';
  const retrying = d.status === 'queued' && d.attempts > 0;
  const tries = d.attempts === 1 ? '1 attempt' : `${d.attempts} attempts`;
  return h('li', { class: `card delivery status-${d.status}`, 'data-id': d.delivery_id,
    'data-status': d.status, 'data-target': d.target },
    h('div', { class: 'clip-head' },
      h('span', { class: `badge ${BADGES[d.status] || 'pending'}`, 'data-role': 'status' },
        retrying ? 'retrying' : d.status),
      h('span', { class: 'times', 'data-role': 'event' },
        `${EVENTS[d.event] || d.event} → ${TARGETS[d.target] || d.target}`),
      h('span', { class: 'muted', 'data-role': 'when' }, localDateTime(d.updated_at))),
    h('p', { class: 'muted' }, `Clip ${d.video_id} · ${tries}`),
    d.last_error ? h('p', { class: failed ? 'error' : 'muted', 'data-role': 'error',
      role: failed ? 'alert' : null }, failed ? `Failed: ${d.last_error}`
      : `Last try: ${d.last_error}`) : null);
}

/**
 * Fetch the channel's deliveries and show them in listElement (a <ul>), replacing what it
 * held; an empty list says so. Returns the deliveries; throws the ApiError of a failed call
 * (the list then shows nothing).
 */
export async function loadDeliveries(channelId, listElement) {
  listElement.replaceChildren();
  const { data } = await get(`/api/channels/${encodeURIComponent(channelId)}/deliveries`);
  const found = data.deliveries || [];
  if (!found.length) {
    listElement.replaceChildren(h('li', { class: 'muted', 'data-role': 'empty' },
      'Nothing sent yet: clips saved from chat are announced here once a webhook is set.'));
    return found;
  }
  listElement.replaceChildren(...found.map(item));
  return found;
}
