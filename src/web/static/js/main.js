// Entry point: which screen to show (login or a dashboard section from the URL hash).
import { session, setSession, setUnauthorizedHandler } from './api.js';
import { initAuth, loggedIn } from './auth.js';
import { loadClips, stopPolling } from './clips.js';
import { initCookies, loadCookies } from './cookies.js';
import { $, flash } from './dom.js';
import { initEncode, resetEncode, showEncode } from './encode.js';
import { describe } from './format.js';
import { initLibrary, resetLibrary } from './library.js';
import { initNightbot, loadTokens, resetNightbot } from './nightbot.js';
import { initSave } from './save.js';

const VIEWS = ['clips', 'save', 'encode', 'nightbot', 'account'];
const LOADERS = { clips: loadClips, encode: showEncode, nightbot: loadTokens, account: loadCookies };

function currentView() {
  const name = window.location.hash.slice(1);
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
    if (window.location.hash !== '#clips') window.location.hash = '#clips';
    else route();
    $('main').focus();
  },
  onLogout: (message) => toLogin(message),
});
initSave({
  onSaved: () => { window.location.hash = '#clips'; },
});
initEncode();
initNightbot();
initCookies();
const reloadClips = () => loadClips().catch((err) => {
  if (err.status !== 401) flash(describe(err), 'error');
});
initLibrary(reloadClips);
$('clips-refresh').addEventListener('click', reloadClips);
window.addEventListener('hashchange', route);
route();
