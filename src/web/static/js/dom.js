// Tiny DOM helpers: build elements (text only, never HTML strings), messages.

export const $ = (id) => document.getElementById(id);

/** h('button', {type: 'button', onclick: fn, class: 'x'}, 'text', child…) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key in el && key !== 'list') el[key] = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

let flashTimer = null;
/** A short message in the page's live region (kind: 'info' | 'error'). */
export function flash(message, kind = 'info') {
  const box = $('flash');
  box.textContent = message;
  box.className = `flash ${kind}`;
  box.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { box.hidden = true; }, kind === 'error' ? 10_000 : 5_000);
}

/** Show (or hide, with an empty message) an error paragraph; marks its input invalid. */
export function fieldError(id, message, inputId) {
  const el = $(id);
  el.textContent = message || '';
  el.hidden = !message;
  if (inputId) {
    const input = $(inputId);
    if (message) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }
}

/** Disable a form's submit button while ``work`` runs. */
export async function busy(form, work) {
  const button = form.querySelector('button[type="submit"]');
  if (button) button.disabled = true;
  try { return await work(); } finally { if (button) button.disabled = false; }
}

export function options(select, values, selected) {
  select.replaceChildren(...values.map((v) =>
    h('option', { value: v, selected: v === selected }, v)));
}
