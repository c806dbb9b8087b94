// Public tokens bound to the logged-in user (GET /api/auth/token/public with the private token).
import { get } from './api.js';

const KEY = 'ytd.saveToken';

/** Issue a new bound public token: {token, jti, expires_in, user_id, expiresAt (ms)}. */
export async function issueToken() {
  const { data } = await get('/api/auth/token/public');
  return { ...data, expiresAt: Date.now() + data.expires_in * 1000 };
}

/** The public token this dashboard saves clips with (reused until 5 min before it expires). */
export async function saveToken({ fresh = false } = {}) {
  let cached = null;
  try { cached = JSON.parse(sessionStorage.getItem(KEY)); } catch { cached = null; }
  if (!fresh && cached && cached.expiresAt - Date.now() > 300_000) return cached;
  const issued = await issueToken();
  sessionStorage.setItem(KEY, JSON.stringify(issued));
  return issued;
}

/** ``call(publicToken)`` with the dashboard's public token; a 401 gets a fresh one, once. */
export async function withSaveToken(call) {
  let token = await saveToken();
  try {
    return await call(token.token);
  } catch (err) {
    if (err.status !== 401) throw err;
    token = await saveToken({ fresh: true }); // revoked or expired: get another one, once
    return call(token.token);
  }
}

/** The jti of the token the dashboard itself uses, to label it in the token list. */
export function saveTokenId() {
  try { return JSON.parse(sessionStorage.getItem(KEY))?.jti || null; } catch { return null; }
}
