// Moderators (issue 17, item 6): invite an email (POST /api/team/invites → a link shown once),
// list my moderators and pending invites with a remove button each, accept an invite sent to
// me (POST /api/team/invites/accept; the link puts its token in the URL fragment,
// #team?invite=…, which the browser never sends to a server), and the owners whose clips I
// moderate, each with a "Leave" button. Text only (h() from dom.js), never HTML strings.
import { del, get, post } from './api.js';
import { $, busy, fieldError, flash, h } from './dom.js';
import { describe } from './format.js';
import { ownersStale } from './library.js';

/** The invite token in the location's fragment (#team?invite=TOKEN), or ''. */
export function inviteFromHash(hash = window.location.hash) {
  const query = hash.split('?')[1] || '';
  return new URLSearchParams(query).get('invite') || '';
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '';
}

function removeButton(label, what, membershipId, confirmText, done) {
  return h('button', {
    type: 'button', class: 'secondary', 'data-membership': membershipId,
    'aria-label': `${label} ${what}`,
    onclick: async (event) => {
      if (!window.confirm(confirmText)) return;
      event.currentTarget.disabled = true;
      try {
        await del(`/api/team/members/${encodeURIComponent(membershipId)}`);
        flash(done);
        await loadTeam();
      } catch (err) {
        if (err.status !== 401) flash(describe(err), 'error');
        await loadTeam().catch(() => {});
      }
    },
  }, label);
}

function render(data) {
  $('team-moderators-empty').hidden = data.moderators.length > 0;
  $('team-moderators').replaceChildren(...data.moderators.map((m) => h('li', {},
    h('span', {}, m.email), ' ',
    h('span', { class: 'muted' }, `since ${when(m.accepted_at)}`), ' ',
    removeButton('Remove', m.email, m.membership_id,
      `Remove ${m.email}? They lose access to your clips at once.`,
      `${m.email} no longer moderates your clips.`))));
  $('team-invites-empty').hidden = data.invites.length > 0;
  $('team-invites').replaceChildren(...data.invites.map((i) => h('li', {},
    h('span', {}, i.email), ' ',
    h('span', { class: 'muted' }, `invited ${when(i.created_at)}, until ${when(i.expires_at)}`),
    ' ',
    removeButton('Withdraw', i.email, i.membership_id,
      `Withdraw the invite of ${i.email}? Its link stops working.`,
      `Invite of ${i.email} withdrawn.`))));
  $('team-owners-empty').hidden = data.owners.length > 0;
  $('team-owners').replaceChildren(...data.owners.map((o) => h('li', {},
    h('span', {}, o.email || o.owner_id), ' ',
    h('span', { class: 'muted' }, `(owner id ${o.owner_id})`), ' ',
    removeButton('Leave', o.email || o.owner_id, o.membership_id,
      `Stop moderating the clips of ${o.email || o.owner_id}?`,
      `You no longer moderate the clips of ${o.email || o.owner_id}.`))));
}

/** Reload the Team view (its loader): my moderators, invites, and the owners I moderate. */
export async function loadTeam() {
  const token = inviteFromHash();
  if (token) $('team-accept-token').value = token;
  const { data } = await get('/api/team');
  ownersStale(); // the clip list's "Whose clips" menu is filled again (library.js)
  render(data);
}

function showInvite(sent) {
  $('team-invite-result').hidden = false;
  $('team-invite-email').textContent = sent.email;
  $('team-invite-link').value = sent.accept_url;
  $('team-invite-expiry').textContent = `The link works once, until ${when(sent.expires_at)}.`;
}

async function sendInvite(event) {
  event.preventDefault();
  const form = $('team-invite-form');
  const email = $('team-email').value.trim();
  if (!email) {
    fieldError('team-email-error', 'Give the email the moderator logs in with.', 'team-email');
    return;
  }
  await busy(form, async () => {
    try {
      const { data } = await post('/api/team/invites', { email });
      fieldError('team-email-error', '', 'team-email');
      showInvite(data);
      form.reset();
      flash(`Invite for ${data.email} made: send them the link.`);
      await loadTeam();
    } catch (err) {
      if (err.status === 401) return;
      fieldError('team-email-error', describe(err), 'team-email');
    }
  });
}

async function acceptInvite(event) {
  event.preventDefault();
  const form = $('team-accept-form');
  const token = $('team-accept-token').value.trim();
  if (!token) {
    fieldError('team-accept-error', 'Paste the invite link or its token.', 'team-accept-token');
    return;
  }
  await busy(form, async () => {
    try {
      const { data } = await post('/api/team/invites/accept', { token: inviteFromHash(
        token.includes('#') ? token.slice(token.indexOf('#')) : '') || token });
      fieldError('team-accept-error', '', 'team-accept-token');
      form.reset();
      if (inviteFromHash()) window.history.replaceState(null, '', '#team');
      flash(`You now moderate the clips of ${data.email || data.owner_id}.`);
      await loadTeam();
    } catch (err) {
      if (err.status === 401) return;
      fieldError('team-accept-error', describe(err), 'team-accept-token');
    }
  });
}

async function copyLink() {
  const field = $('team-invite-link');
  try {
    await navigator.clipboard.writeText(field.value);
    flash('Invite link copied.');
  } catch {
    field.select();
    flash('Select the link and copy it (Ctrl+C).');
  }
}

/** Wire the Team view's forms once (the page's start). */
export function initTeam() {
  $('team-invite-form').addEventListener('submit', sendInvite);
  $('team-accept-form').addEventListener('submit', acceptInvite);
  $('team-invite-copy').addEventListener('click', copyLink);
}

/** Forget what the view showed (logout). */
export function resetTeam() {
  for (const id of ['team-moderators', 'team-invites', 'team-owners']) $(id).replaceChildren();
  $('team-invite-result').hidden = true;
  $('team-invite-link').value = '';
}
