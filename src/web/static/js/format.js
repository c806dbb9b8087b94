// Pure helpers: times, sizes and the human message of each error code.

/** Seconds → "H:MM:SS" (fractions are dropped: 65.7 → "0:01:05"); null → "—". */
export function hms(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}:${String(m).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/**
 * "H:MM:SS", "M:SS" or plain seconds ("90", "12.5") → seconds.
 * Throws Error with a human message when the text is not a time.
 */
export function parseTime(text) {
  const value = String(text ?? '').trim();
  if (!value) throw new Error('Enter a time, e.g. 0:05:00 or 300.');
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value);
  const match = /^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$/.exec(value);
  if (!match) throw new Error('Use H:MM:SS, M:SS or a number of seconds.');
  const [, h, m, s] = match;
  if (Number(s) >= 60) throw new Error('Seconds must be below 60.');
  if (h !== undefined && Number(m) >= 60) throw new Error('Minutes must be below 60.');
  return Number(h || 0) * 3600 + Number(m) * 60 + Number(s);
}

/**
 * Validate a start/end pair typed by the user.
 * Returns {start, end} or {errors: {start?, end?}} (messages to show next to the fields).
 */
export function checkRange(startText, endText) {
  const errors = {};
  let start;
  let end;
  try { start = parseTime(startText); } catch (e) { errors.start = e.message; }
  try { end = parseTime(endText); } catch (e) { errors.end = e.message; }
  if (!errors.start && !errors.end && end <= start) errors.end = 'The end must be after the start.';
  return Object.keys(errors).length ? { errors } : { start, end };
}

export function localDateTime(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function percent(value) {
  const n = Number(value) || 0;
  return `${Math.max(0, Math.min(100, n)).toFixed(n >= 10 ? 0 : 1)} %`;
}

/** Human text for the API's error codes (media errors, jobs, tokens); fallback: the server's. */
const MESSAGES = {
  FORMAT_UNAVAILABLE: 'That format or resolution is not available for this video. Pick another.',
  VIDEO_UNAVAILABLE: 'This video is unavailable.',
  PRIVATE_VIDEO: 'This video is private.',
  AGE_RESTRICTED: 'This video is age-restricted and cannot be downloaded.',
  BOT_CHECK: 'YouTube asked the server to prove it is not a bot. Upload your YouTube cookies '
    + '(Account) or try again later.',
  LOGIN_REQUIRED: 'YouTube wants a signed-in viewer for this video: upload your YouTube cookies '
    + '(Account).',
  MEMBERS_ONLY: "This video is for the channel's members: upload the cookies of a member's "
    + 'account (Account).',
  PREMIERE_NOT_STARTED: 'This premiere has not started yet.',
  LIVE_NOT_STARTED: 'This live event has not started yet.',
  NOT_LIVE: 'The channel is not live right now.',
  GEO_RESTRICTED: "This video is not available in the server's country.",
  JS_RUNTIME_MISSING: 'The server lacks the JavaScript runtime YouTube requires. Tell the admin.',
  SOURCE_HTTP_ERROR: 'The video source answered with an error. Try again in a moment.',
  FFMPEG_FAILED: 'Cutting the segment failed. Try again, or another format.',
  SEGMENT_OUT_OF_RANGE: 'The clip starts after the end of the video.',
  WAITING_FOR_VOD: 'Waiting for YouTube to publish the stream recording.',
  TIMESTAMP_REQUIRED: 'The moment in the stream could not be placed; save the clip with a time.',
  VOD_UNAVAILABLE: "The stream's recording did not become available.",
  JOB_INTERRUPTED: 'The job was interrupted (the server restarted). Retry to start it again.',
  ENCODE_FAILED: 'Encoding failed.',
  UNKNOWN_ERROR: 'The video could not be processed.',
  INVALID_CREDENTIALS: 'Wrong email or password.',
  EMAIL_EXISTS: 'An account with this email already exists. Log in instead.',
  INVALID_URL: 'This URL is not accepted by the server.',
  TOKEN_REVOKED: 'This public token has been revoked.',
  PENDING_CLIPS_LIMIT: 'You have too many pending clips. Download some first.',
  FILE_TOO_LARGE: 'The file is larger than the server accepts.',
  INVALID_FORMAT: 'This file type cannot be encoded.',
  INVALID_VIDEO: 'This file is not a video the server can read.',
  UPLOAD_EXPIRED: 'The upload has expired. Upload the file again.',
  RATE_LIMITED: 'Too many requests. Wait a moment and try again.',
  NETWORK_ERROR: 'The server could not be reached.',
};

export function humanError(code, serverMessage) {
  return MESSAGES[code] || serverMessage || 'Something went wrong.';
}

/** An ApiError (or any Error) as one line for the user, with the field details if any. */
export function describe(err) {
  let text = humanError(err.code, err.message);
  if (err.retryAfter) text += ` (retry in ${err.retryAfter} s)`;
  if (err.details && typeof err.details === 'object') {
    const parts = Object.entries(err.details).map(([field, msgs]) =>
      `${field}: ${Array.isArray(msgs) ? msgs.join(' ') : msgs}`);
    if (parts.length) text += ` — ${parts.join('; ')}`;
  }
  return text;
}

const YOUTUBE_HOSTS = /(^|\.)(youtube\.com|youtube-nocookie\.com)$|^youtu\.be$/;

/**
 * The start a YouTube URL carries, in seconds, or null: ``t`` (or ``start``) in its query or
 * its ``#t=`` fragment, as YouTube writes it: "90", "90s", "1m30s", "1h2m3s".
 */
export function youtubeStart(text) {
  let url;
  try { url = new URL(String(text ?? '').trim()); } catch { return null; }
  if (!YOUTUBE_HOSTS.test(url.hostname.toLowerCase())) return null;
  const fragment = new URLSearchParams(url.hash.slice(1));
  const raw = url.searchParams.get('t') ?? url.searchParams.get('start') ?? fragment.get('t');
  const match = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$/i.exec((raw || '').trim());
  if (!raw || !match || !(match[1] || match[2] || match[3])) return null;
  return Number(match[1] || 0) * 3600 + Number(match[2] || 0) * 60 + Number(match[3] || 0);
}
