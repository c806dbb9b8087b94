"""Media errors: one exception with a machine code and a message safe to show a user.

:func:`classify` turns what yt-dlp and ffmpeg raise into a :class:`MediaError`. yt-dlp wraps the
real cause: ``DownloadError.exc_info`` holds the ``ExtractorError``, whose ``cause`` /
``exc_info`` may hold a ``networking.exceptions.HTTPError``. Exception classes are matched first
(GeoRestrictedError, UserNotLive, HTTPError, UnsupportedError, TransportError), then the message
text YouTube sends (its ``playabilityStatus.reason``, which yt-dlp passes through verbatim, e.g.
"Sign in to confirm you're not a bot", "Private video", "This live event will begin in 3 hours").
Issue 13, item 6: what YouTube does to servers gets its own code — BOT_CHECK, RATE_LIMITED
("This content isn't available, try again later", which yt-dlp extends with "has been
rate-limited by YouTube for up to an hour"; also an HTTP 429), MEMBERS_ONLY, LOGIN_REQUIRED
(yt-dlp's ``raise_login_required`` texts and the "Sign in …" reasons it appends its cookies hint
to), PREMIERE_NOT_STARTED ("Premieres in …") and JS_RUNTIME_MISSING (yt-dlp's warning text
"No supported JavaScript runtime could be found", and its "n challenge solving failed" /
"Ensure you have a supported JavaScript runtime" help). Sources: yt-dlp 2026.10.26
extractor/youtube/_video.py (``_real_extract``: reason handling; ``_get_requested_clients``),
extractor/common.py (``raise_login_required``, ``_login_hint``).
A crash of an extractor on input it cannot parse (a plain Python error such as ``KeyError``
under yt-dlp's ``ExtractorError`` "An extractor error has occurred", e.g. a DASH SegmentList
with ``mediaRange`` only, issue 12) is FORMAT_UNAVAILABLE, not an unknown error: the source sent
something, it is just not readable.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Optional

from yt_dlp.networking.exceptions import HTTPError, TransportError
from yt_dlp.utils import (
    DownloadError,
    ExtractorError,
    GeoRestrictedError,
    UnsupportedError,
    UserNotLive,
)

from src.media.ffmpeg import FFmpegError

FORMAT_UNAVAILABLE = "FORMAT_UNAVAILABLE"
VIDEO_UNAVAILABLE = "VIDEO_UNAVAILABLE"
PRIVATE_VIDEO = "PRIVATE_VIDEO"
AGE_RESTRICTED = "AGE_RESTRICTED"
BOT_CHECK = "BOT_CHECK"
RATE_LIMITED = "RATE_LIMITED"
MEMBERS_ONLY = "MEMBERS_ONLY"
LOGIN_REQUIRED = "LOGIN_REQUIRED"
PREMIERE_NOT_STARTED = "PREMIERE_NOT_STARTED"
LIVE_NOT_STARTED = "LIVE_NOT_STARTED"
NOT_LIVE = "NOT_LIVE"
GEO_RESTRICTED = "GEO_RESTRICTED"
JS_RUNTIME_MISSING = "JS_RUNTIME_MISSING"
SOURCE_HTTP_ERROR = "SOURCE_HTTP_ERROR"
SOURCE_NOT_ALLOWED = "SOURCE_NOT_ALLOWED"
FFMPEG_FAILED = "FFMPEG_FAILED"
SEGMENT_OUT_OF_RANGE = "SEGMENT_OUT_OF_RANGE"
LIVE_WINDOW_MISSED = "LIVE_WINDOW_MISSED"
LIVE_STALLED = "LIVE_STALLED"
WAITING_FOR_VOD = "WAITING_FOR_VOD"
TIMESTAMP_REQUIRED = "TIMESTAMP_REQUIRED"
VOD_UNAVAILABLE = "VOD_UNAVAILABLE"
UNKNOWN_ERROR = "UNKNOWN_ERROR"

#: Default human message per code (no paths, no stack traces, no yt-dlp advice aimed at CLI users).
MESSAGES = {
    FORMAT_UNAVAILABLE: "The requested format or resolution is not available for this video.",
    VIDEO_UNAVAILABLE: "This video is unavailable.",
    PRIVATE_VIDEO: "This video is private.",
    AGE_RESTRICTED: "This video is age-restricted and cannot be downloaded.",
    BOT_CHECK: "YouTube asked to confirm that this server is not a bot; the administrator "
               "needs to upload cookies or set a PO token provider.",
    RATE_LIMITED: "This content isn't available, try again later: YouTube is rate-limiting "
                  "this server.",
    MEMBERS_ONLY: "This video is for channel members only; upload the cookies of an account "
                  "that is a member.",
    LOGIN_REQUIRED: "This video requires a signed-in YouTube account; upload cookies to "
                    "download it.",
    PREMIERE_NOT_STARTED: "This premiere has not started yet.",
    LIVE_NOT_STARTED: "This live event has not started yet.",
    NOT_LIVE: "This channel is not live right now.",
    GEO_RESTRICTED: "This video is not available in the server's country.",
    JS_RUNTIME_MISSING: "The server is missing the JavaScript runtime YouTube requires; "
                        "please contact the administrator.",
    SOURCE_HTTP_ERROR: "The video source returned an error.",
    SOURCE_NOT_ALLOWED: "The video source tried to reach a host that is not allowed.",
    FFMPEG_FAILED: "Cutting the video segment failed.",
    SEGMENT_OUT_OF_RANGE: "The requested segment lies beyond the end of the video.",
    LIVE_WINDOW_MISSED: "The requested moment is no longer in the live stream's window.",
    LIVE_STALLED: "The live stream stopped producing new segments.",
    WAITING_FOR_VOD: "The stream is still live or its recording is being processed; the clip "
                     "can be downloaded once YouTube publishes the recording.",
    TIMESTAMP_REQUIRED: "This video was never live, so the moment cannot be placed from the "
                        "request time; save the clip with ?t=SECONDS.",
    VOD_UNAVAILABLE: "The stream's recording did not become available in time.",
    UNKNOWN_ERROR: "The video could not be processed.",
}

#: (code, pattern) checked in order against the text of the whole exception chain.
_TEXT_RULES = [
    (RATE_LIMITED, r"content isn.t available, try again later|rate.limited by youtube"),
    (BOT_CHECK, r"confirm you.?re not a bot|captcha challenge"),
    (AGE_RESTRICTED, r"confirm your age|age.restricted|inappropriate for some users"),
    (MEMBERS_ONLY, r"members.only|join this channel to get access"),
    (PRIVATE_VIDEO, r"private video|video is private"),
    (PREMIERE_NOT_STARTED, r"premieres in|premiere will begin"),
    (LIVE_NOT_STARTED, r"live event will begin|this live event has not started"),
    (NOT_LIVE, r"not currently live|is not live|channel is offline"),
    (GEO_RESTRICTED, r"available (?:in|from) your (?:country|location)|geo.restrict"),
    (JS_RUNTIME_MISSING, r"no supported javascript runtime|"
                         r"ensure you have a supported javascript runtime"),
    (LOGIN_REQUIRED, r"login details are needed|only available for registered users|"
                     r"--cookies for the authentication|sign in to"),
    (FORMAT_UNAVAILABLE, r"requested format is not available|no video formats found|"
                         r"only images are available"),
    (VIDEO_UNAVAILABLE, r"video unavailable|"
                        r"video is (?:unavailable|no longer available|not available)|"
                        r"has been removed|content isn.t available|does not exist|unsupported url|"
                        r"recording is not available"),
]
#: Python errors an extractor raises when it crashes on what a source sent (matched by class,
#: only beneath a yt-dlp DownloadError/ExtractorError).
_PARSER_CRASHES = (KeyError, IndexError, TypeError, AttributeError, ValueError, ZeroDivisionError,
                   SyntaxError)  # xml.etree.ElementTree.ParseError is a SyntaxError
_HTTP_STATUS = re.compile(r"HTTP Error (\d{3})|Server returned (\d{3}|[45]XX)")


class MediaError(Exception):
    """A failure of the media layer.

    ``code``: one of the constants above (machine-readable, for the API's ``code`` field).
    ``message``: a sentence safe to show a user. ``detail``: the original technical text, for
    logs only (may contain URLs). ``status``: the HTTP status the source answered when that is
    what failed (an int, e.g. 403), else None — the clip job tells an expired signed URL
    (403/410: extract again) from other SOURCE_HTTP_ERRORs by it. ``str(error)`` is the message.
    """

    def __init__(self, code: str, message: Optional[str] = None, detail: str = "",
                 status: Optional[int] = None):
        self.code = code if code in MESSAGES else UNKNOWN_ERROR
        self.message = message or MESSAGES[self.code]
        self.detail = detail
        self.status = status
        super().__init__(self.message)

    def to_dict(self) -> dict:
        """The API error body: ``{"error": message, "code": code}`` (DESIGN.md, one error shape)."""
        return {"error": self.message, "code": self.code}


def classify(exc: BaseException) -> MediaError:
    """Map an exception from yt-dlp, ffmpeg or this package to a :class:`MediaError`.

    Never raises. A MediaError is returned unchanged; FFmpegError → SOURCE_HTTP_ERROR when its
    stderr shows an HTTP error or a refused connection, else FFMPEG_FAILED; a yt-dlp error
    caused by a plain Python error (an extractor crash, module docstring) → FORMAT_UNAVAILABLE;
    anything unknown → UNKNOWN_ERROR.
    """
    if isinstance(exc, MediaError):
        return exc
    if isinstance(exc, FFmpegError):
        return _classify_ffmpeg(exc)
    chain = list(_chain(exc))
    detail = str(exc)
    for err in chain:
        if isinstance(err, GeoRestrictedError):
            return MediaError(GEO_RESTRICTED, detail=detail)
        if isinstance(err, UserNotLive):
            return MediaError(NOT_LIVE, detail=detail)
        if isinstance(err, HTTPError):
            return http_error(err.status, detail)
        if isinstance(err, UnsupportedError):
            return MediaError(VIDEO_UNAVAILABLE, "This URL does not point to a supported video.",
                              detail)
    text = " | ".join(str(err) for err in chain)
    for code, pattern in _TEXT_RULES:
        if re.search(pattern, text, re.IGNORECASE):
            return MediaError(code, detail=detail)
    match = _HTTP_STATUS.search(text)
    if match:
        return http_error(match.group(1) or match.group(2), detail)
    if any(isinstance(err, (TransportError, ConnectionError, TimeoutError)) for err in chain):
        return MediaError(SOURCE_HTTP_ERROR, "The video source could not be reached.", detail)
    if (isinstance(exc, (DownloadError, ExtractorError))
            and any(isinstance(err, _PARSER_CRASHES) for err in chain[1:])):
        return MediaError(FORMAT_UNAVAILABLE, "The source's page or manifest could not be read "
                                              "(its format is not supported).", detail)
    return MediaError(UNKNOWN_ERROR, detail=detail)


#: yt-dlp's warnings when it has no JS runtime or cannot solve YouTube's challenges
#: (extractor/youtube/_video.py): the extraction goes on with fewer clients and formats.
_JS_WARNINGS = re.compile(r"no supported javascript runtime|challenge solving failed|"
                          r"ensure you have a supported javascript runtime", re.IGNORECASE)
#: Failures that a missing JS runtime explains when yt-dlp warned about it.
_JS_EXPLAINS = (FORMAT_UNAVAILABLE, VIDEO_UNAVAILABLE, UNKNOWN_ERROR)


def with_warnings(error: MediaError, warnings: list) -> MediaError:
    """``error`` re-coded JS_RUNTIME_MISSING when yt-dlp warned, during the extraction that
    failed, that it found no JavaScript runtime or could not solve a challenge
    (:data:`_JS_WARNINGS`) and the failure is one that explains (no formats, unavailable,
    unknown); else ``error`` unchanged. ``warnings``: yt-dlp's warning texts."""
    if error.code in _JS_EXPLAINS and any(_JS_WARNINGS.search(text) for text in warnings):
        return MediaError(JS_RUNTIME_MISSING, detail=error.detail)
    return error


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and the causes yt-dlp stores (exc_info, cause, __cause__), outermost first."""
    seen: set[int] = set()
    todo: list[Optional[BaseException]] = [exc]
    while todo and len(seen) < 10:
        err = todo.pop(0)
        if err is None or id(err) in seen or not isinstance(err, BaseException):
            continue
        seen.add(id(err))
        yield err
        if isinstance(err, (DownloadError, ExtractorError)) and getattr(err, "exc_info", None):
            todo.append(err.exc_info[1])
        todo += [getattr(err, "cause", None), err.__cause__, err.__context__]


def http_error(status, detail: str = "") -> MediaError:
    """The MediaError for an HTTP error ``status`` a source answered (an int, or ffmpeg's
    ``"4XX"`` when it does not say which): RATE_LIMITED for 429, else
    SOURCE_HTTP_ERROR naming the status; ``.status`` is the status as an int (None for
    ``"4XX"``)."""
    text = str(status)
    number = int(text) if text.isdigit() else None
    if text == "429":
        return MediaError(RATE_LIMITED, "The video source is rate-limiting this server. "
                                        "Please try again later.", detail, status=number)
    return MediaError(SOURCE_HTTP_ERROR, f"The video source returned an error (HTTP {text}).",
                      detail, status=number)


def _classify_ffmpeg(exc: FFmpegError) -> MediaError:
    text = f"{exc}\n{exc.stderr_tail}"
    detail = text.strip()
    match = _HTTP_STATUS.search(text)
    if match:
        return http_error(match.group(1) or match.group(2), detail)
    if re.search(r"Connection refused|Connection timed out|Failed to resolve hostname", text):
        return MediaError(SOURCE_HTTP_ERROR, "The video source could not be reached.", detail)
    if "timed out" in str(exc):
        return MediaError(FFMPEG_FAILED, "Cutting the video segment took too long.", detail)
    if exc.returncode is not None and exc.returncode < 0:  # killed from outside (OOM, kill -9)
        return MediaError(FFMPEG_FAILED, f"The ffmpeg process was killed (signal "
                                         f"{-exc.returncode}) while cutting the clip. "
                                         "Download again to retry.", detail)
    return MediaError(FFMPEG_FAILED, detail=detail)
