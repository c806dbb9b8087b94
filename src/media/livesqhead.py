"""The I/O pieces of :mod:`src.media.livesq`: reading a live YouTube format's head sequence
number, fragment URLs, and joining self-contained fMP4 fragments into one file.

Head (yt-dlp ``yt_dlp/extractor/youtube/_video.py``, ``_live_adaptive_fragments``): a ``HEAD``
of the bare format URL; "the bare base URL may return an empty response body, but the headers
are still usable": ``X-Head-Seqnum`` is the newest fragment's number (ytarchive reads the same
header from every fragment answer, ``Info.go``). The value is hostile: digits only, at most
:data:`MAX_SQ` (YouTube keeps 120 h, ``MAX_DURATION = 432000`` s in yt-dlp: 432 000 fragments
of 1 s), anything else is MediaError(FORMAT_UNAVAILABLE).

Fragments: ``&sq=N`` on the format URL (yt-dlp: ``update_url_query(base_url, {'sq': idx})``;
ytarchive ``ParseGvideoUrl``), or ``sq/N`` after a DASH manifest's ``BaseURL`` ending in ``/``
(ytarchive ``GetUrlsFromManifest``). Each fragment is a self-contained fMP4 (ISO/IEC 14496-12:
``ftyp``, ``moov``, then ``moof``/``mdat``; ytarchive removes the ``sidx`` of every fragment and
the ``ftyp`` of all but the first before concatenating, ``Info.go``). :func:`append_fragment`
keeps the first fragment's ``ftyp``/``moov`` and only the media boxes of the others, so the
join is one fragmented MP4 whose ``tfdt`` keep the stream's timeline.
"""
from __future__ import annotations

import re
import struct
import time
import urllib.parse
from typing import Optional

import urllib3

from src.media import guard, rangefetch
from src.media.errors import FORMAT_UNAVAILABLE, SOURCE_HTTP_ERROR, MediaError, http_error

MAX_SQ = 10 ** 9
#: Top-level boxes dropped from every fragment / from all but the first one.
_ALWAYS_DROPPED = {b"sidx", b"styp"}
_INIT_BOXES = {b"ftyp", b"moov"}
_KNOWN = {b"ftyp", b"moov", b"moof", b"mdat", b"sidx", b"styp", b"emsg", b"prft", b"free",
          b"skip", b"uuid", b"mfra"}
_DIGITS = re.compile(r"\d{1,10}")
_UNUSABLE = "The live stream's sequence numbers are not usable."


def sq_url(base: str, sq: int) -> str:
    """Fragment ``sq`` of the format URL ``base``: ``base`` + ``sq/N`` when its path ends in
    ``/`` (a DASH ``BaseURL``), else ``base`` with its query's ``sq`` set to N."""
    parts = urllib.parse.urlsplit(base)
    if parts.path.endswith("/"):
        return urllib.parse.urlunsplit(parts._replace(path=f"{parts.path}sq/{sq}"))
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
             if k != "sq"] + [("sq", str(sq))]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


class HeadReader:
    """``HEAD`` requests through the egress guard ``session`` (the ranged fetcher's transport:
    a urllib3 ProxyManager to the guard, its tag as ``Proxy-Authorization``; each redirect
    checked by the policy before it is followed). Close it when done."""

    def __init__(self, session: guard.Session, headers: dict, timeout: float = 20.0):
        self.session, self.headers = session, dict(headers or {})
        proxy = urllib.parse.urlsplit(session.proxy_url)
        self._http = urllib3.ProxyManager(
            f"http://{proxy.hostname}:{proxy.port}", num_pools=4, maxsize=2,
            proxy_headers=urllib3.make_headers(
                proxy_basic_auth=f"{proxy.username}:{proxy.password}"))
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)

    def close(self) -> None:
        self._http.clear()

    def head(self, url: str) -> int:
        """``X-Head-Seqnum`` of ``url``'s answer (retried :data:`rangefetch.RETRIES` times on a
        failed connection or a 5xx). Raises MediaError: SOURCE_NOT_ALLOWED (the policy or the
        guard), SOURCE_HTTP_ERROR (an error status, ``.status`` set; unreachable),
        FORMAT_UNAVAILABLE (no usable header)."""
        error: Optional[MediaError] = None
        for attempt in range(rangefetch.RETRIES + 1):
            if attempt:
                time.sleep(rangefetch.BACKOFF * 2 ** attempt)
            try:
                return parse_head(self._open(url).headers.get("X-Head-Seqnum"))
            except _Transient as exc:
                error = exc.error
                refused = self.session.refused()
                if refused:
                    raise refused from exc
        assert error is not None
        raise error

    def _open(self, url: str):
        for _ in range(rangefetch.MAX_REDIRECTS + 1):
            self.session.policy.check_url(url)
            try:
                response = self._http.urlopen("HEAD", url, headers=self.headers, retries=False,
                                              redirect=False, timeout=self._timeout,
                                              preload_content=False)
            except urllib3.exceptions.HTTPError as exc:
                raise _Transient(MediaError(SOURCE_HTTP_ERROR, "The video source could not "
                                            "be reached.", detail=str(exc))) from exc
            response.release_conn()
            status = response.status
            if 200 <= status < 300:
                return response
            if status in rangefetch.RETRY_STATUSES:
                raise _Transient(http_error(status))
            location = response.headers.get("Location")
            if status not in (301, 302, 303, 307, 308) or not location:
                raise http_error(status)
            url = urllib.parse.urljoin(url, location)
        raise MediaError(SOURCE_HTTP_ERROR, "The video source redirected too many times.")


class _Transient(Exception):
    def __init__(self, error: MediaError):
        super().__init__(error.message)
        self.error = error


def parse_head(value: Optional[str]) -> int:
    """An ``X-Head-Seqnum`` value as an int; MediaError(FORMAT_UNAVAILABLE) when it is
    missing, not a plain decimal number, or over :data:`MAX_SQ`."""
    text = (value or "").strip()
    if not _DIGITS.fullmatch(text) or int(text) > MAX_SQ:
        raise MediaError(FORMAT_UNAVAILABLE, _UNUSABLE,
                         detail=f"X-Head-Seqnum {(value or '')[:40]!r}")
    return int(text)


def append_fragment(data: bytes, out, first: bool) -> None:
    """Write fragment ``data`` (one self-contained fMP4) to the file ``out``: its top-level
    boxes less ``sidx``/``styp``, and less ``ftyp``/``moov`` unless it is the ``first``.
    MediaError(FORMAT_UNAVAILABLE) for bytes that are not ISO BMFF boxes, or a first fragment
    without ``moov``."""
    offset, seen = 0, set()
    while offset < len(data):
        if len(data) - offset < 8:
            raise _not_mp4("a truncated box")
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        header = 8
        if size == 1:
            if len(data) - offset < 16:
                raise _not_mp4("a truncated box")
            size, header = struct.unpack(">Q", data[offset + 8:offset + 16])[0], 16
        elif size == 0:
            size = len(data) - offset
        if kind not in _KNOWN or size < header or offset + size > len(data):
            raise _not_mp4(f"box {kind!r} of {size} bytes at {offset}")
        seen.add(kind)
        if kind not in _ALWAYS_DROPPED and (first or kind not in _INIT_BOXES):
            out.write(data[offset:offset + size])
        offset += size
    if first and b"moov" not in seen:
        raise _not_mp4("no moov in the first fragment")


def _not_mp4(detail: str) -> MediaError:
    return MediaError(FORMAT_UNAVAILABLE, "A live fragment is not a fragmented MP4.",
                      detail=detail)
