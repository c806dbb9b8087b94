// Register, log in, log out, change password. The private token lives in sessionStorage.
import { post, setSession, session } from './api.js';
import { $, busy, fieldError, flash } from './dom.js';
import { describe } from './format.js';

/** Wire the forms; ``onLogin()`` shows the dashboard, ``onLogout(message)`` the login screen. */
export function initAuth({ onLogin, onLogout }) {
  $('login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    fieldError('login-error', '');
    busy(form, async () => {
      try {
        const { data } = await post('/api/auth/login', {
          email: form.email.value.trim(), password: form.password.value,
        }, { token: 'none' });
        setSession({ token: data.token, user: data.user });
        form.reset();
        onLogin();
      } catch (err) {
        fieldError('login-error', describe(err));
        form.password.focus();
      }
    });
  });

  $('register-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const email = form.email.value.trim();
    const password = form.password.value;
    fieldError('register-error', '');
    if (!email.includes('@')) return fieldError('register-error', 'Enter a valid email address.');
    if (password.length < 8) return fieldError('register-error', 'The password needs 8 characters or more.');
    return busy(form, async () => {
      try {
        await post('/api/auth/register', { email, password }, { token: 'none' });
        const { data } = await post('/api/auth/login', { email, password }, { token: 'none' });
        setSession({ token: data.token, user: data.user });
        form.reset();
        flash('Account created. Welcome!');
        onLogin();
      } catch (err) {
        fieldError('register-error', describe(err));
      }
    });
  });

  $('logout').addEventListener('click', async () => {
    try {
      await post('/api/auth/logout', undefined);
    } catch { /* the session is gone either way */ }
    onLogout('You are logged out.');
  });

  $('password-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    fieldError('password-error', '');
    if (form.new_password.value.length < 8) {
      return fieldError('password-error', 'The new password needs 8 characters or more.');
    }
    return busy(form, async () => {
      try {
        await post('/api/auth/change-password', {
          current_password: form.current_password.value, new_password: form.new_password.value,
        }, { expect401: 'INVALID_CREDENTIALS' });
        form.reset();
        onLogout('Password changed. Log in with the new password.');
      } catch (err) {
        const text = err.code === 'INVALID_CREDENTIALS' ? 'The current password is wrong.' : describe(err);
        fieldError('password-error', text);
      }
    });
  });
}

export const loggedIn = () => Boolean(session()?.token);
