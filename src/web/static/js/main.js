// Entry point: which screen to show (login or a dashboard section from the URL hash).
import { session, setSession, setUnauthorizedHandler } from './api.js';
import { initAuth, loggedIn } from './auth.js';
import { initChannels, loadChannels, resetChannels } from './channels.js';
import { loadClips, stopPolling } from './clips.js';
import { initCookies, loadCookies } from './cookies.js';
import { $, flash } from './dom.js';
import { initEncode, resetEncode, showEncode } from './encode.js';
import { describe } from './format.js';
import { initLibrary, resetLibrary } from './library.js';
import { initNightbot, loadTokens, resetNightbot } from './nightbot.js';
import { initSave } from './save.js';
import { initTeam, loadTeam, resetTeam } from './team.js';

const VIEWS = ['clips', 'save', 'encode', 'nightbot', 'channels', 'team', 'account'];
const LOADERS = {
  clips: loadClips, encode: showEncode, nightbot: loadTokens, channels: loadChannels,
  account: loadCookies, team: loadTeam,
};

function currentView() {
  const name = window.location.hash.slice(1).split('?')[0]; // #team?invite=… keeps its token
  return VIEWS.includes(name) ? name : 'clips';
}

function showOnly(id) {
  for (const el of document.querySelectorAll('.view')) el.hidden = el.id !== id;
}

async function route() {
  if (!loggedIn()) {
    $('nav').hidden = true;
    $('who').hidden = true;
    showOnly('view-login');
    return;
  }
  const name = currentView();
  const user = session().user;
  $('nav').hidden = false;
  $('who').hidden = false;
  $('who-email').textContent = user.email;
  $('account-email').textContent = user.email;
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.view === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  showOnly(`view-${name}`);
  try {
    await LOADERS[name]?.();
  } catch (err) {
    if (err.status !== 401) flash(describe(err), 'error');
  }
}

/** Back to the login screen with a message (logout, password change, or any 401). */
function toLogin(message, kind = 'info') {
  stopPolling();
  resetLibrary();
  resetEncode();
  resetNightbot();
  resetChannels();
  resetTeam();
  setSession(null);
  route();
  flash(message, kind);
  $('login-email').focus();
}

setUnauthorizedHandler((err) => {
  if (!loggedIn()) return;
  toLogin(`Your session has ended (${err.message}). Please log in again.`, 'error');
});

initAuth({
  onLogin: () => {
    // an invite link (#team?invite=…) opened while logged out: show it once logged in
    const stay = window.location.hash === '#clips' || window.location.hash.startsWith('#team?');
    if (stay) route();
    else window.location.hash = '#clips';
    $('main').focus();
  },
  onLogout: (message) => toLogin(message),
});
initSave({
  onSaved: () => { window.location.hash = '#clips'; },
});
initEncode();
initNightbot();
initChannels();
initCookies();
initTeam();
const reloadClips = () => loadClips().catch((err) => {
  if (err.status !== 401) flash(describe(err), 'error');
});
initLibrary(reloadClips);
$('clips-refresh').addEventListener('click', reloadClips);
window.addEventListener('hashchange', route);
route();
