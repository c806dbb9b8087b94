// The API client: bearer tokens from sessionStorage, the one error shape, file downloads.
// Every non-2xx answer becomes an ApiError {status, code, message, details}.

const KEY = 'ytd.session';

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `Request failed (${status})`);
    this.status = status;
    this.code = (body && body.code) || 'ERROR';
    this.details = (body && body.details) || null;
    this.retryAfter = null;
  }
}

/** The stored session {token, user: {id, email}} or null. */
export function session() {
  try { return JSON.parse(sessionStorage.getItem(KEY)); } catch { return null; }
}

export function setSession(value) {
  if (value) sessionStorage.setItem(KEY, JSON.stringify(value));
  else sessionStorage.clear();
}

let onUnauthorized = () => {};
/** Called with the ApiError when a private-token request answers 401 (session gone). */
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

async function toError(response) {
  let body = null;
  if ((response.headers.get('Content-Type') || '').includes('json')) {
    try { body = await response.json(); } catch { body = null; }
  }
  const err = new ApiError(response.status, body);
  err.retryAfter = response.headers.get('Retry-After');
  return err;
}

/**
 * One API call. opts: body (JSON), token ('private' (default) | 'none' | a token string),
 * expect401 (an error code: a 401 with that code is the caller's to show, e.g. a wrong
 * current password, instead of ending the session).
 * Returns {status, data, response}; throws ApiError.
 */
export async function request(method, path, opts = {}) {
  const headers = {};
  const token = opts.token === undefined || opts.token === 'private'
    ? session()?.token : (opts.token === 'none' ? null : opts.token);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  if (!response.ok) {
    const err = await toError(response);
    const privateCall = opts.token === undefined || opts.token === 'private';
    if (err.status === 401 && privateCall && err.code !== opts.expect401) onUnauthorized(err);
    throw err;
  }
  const isJson = (response.headers.get('Content-Type') || '').includes('json');
  return { status: response.status, data: isJson ? await response.json() : null, response };
}

export const get = (path, opts) => request('GET', path, opts);
export const post = (path, body, opts = {}) => request('POST', path, { ...opts, body });
export const put = (path, body, opts = {}) => request('PUT', path, { ...opts, body });
export const del = (path, opts) => request('DELETE', path, opts);

function filenameOf(response, fallback) {
  const cd = response.headers.get('Content-Disposition') || '';
  const match = /filename="?([^";/\\]+)"?/i.exec(cd);
  return match ? match[1] : fallback;
}

/** Hand a blob to the browser as a file download. */
function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * Ask a download endpoint with the private token (POST with ``body``, or GET when ``body`` is
 * null): 200 → the file is saved and {saved: name} returned; 202 → {processing: true}. Asked
 * with ?link=true: when the file is in the bucket (STORAGE_BACKEND=s3, redirect mode) the
 * answer is {url} instead, a presigned URL the browser downloads from directly (its
 * Content-Disposition names the file).
 */
export async function downloadFile(path, body, fallbackName) {
  const { status, data, response } = body === null
    ? await request('GET', `${path}?link=true`)
    : await request('POST', `${path}?link=true`, { body: body || {} });
  if (status === 202) return { processing: true };
  if (data && typeof data.url === 'string' && /^https?:\/\//.test(data.url)) {
    const a = document.createElement('a');
    a.href = data.url;
    a.rel = 'noopener';
    document.body.append(a);
    a.click();
    a.remove();
    return { saved: fallbackName };
  }
  const name = filenameOf(response, fallbackName);
  saveBlob(await response.blob(), name);
  return { saved: name };
}

/**
 * Multipart upload with upload progress (fetch has no upload progress: XHR).
 * onProgress(percent, loaded, total). Resolves with the JSON body; rejects with ApiError.
 */
export function upload(path, field, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    xhr.setRequestHeader('Authorization', `Bearer ${session()?.token || ''}`);
    xhr.responseType = 'json';
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(100 * e.loaded / e.total, e.loaded, e.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve(xhr.response);
      const err = new ApiError(xhr.status, xhr.response);
      if (xhr.status === 401) onUnauthorized(err);
      reject(err);
    };
    xhr.onerror = () => reject(new ApiError(0, { error: 'Network error during the upload',
                                                code: 'NETWORK_ERROR' }));
    const form = new FormData();
    form.append(field, file);
    xhr.send(form);
  });
}
