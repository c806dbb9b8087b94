"""How ffmpeg and ffprobe read a source URL: through the egress guard, on the protocols a URL
may use, with the source's headers (:mod:`src.media.segment` for the direct path,
:mod:`src.media.formats` for probing formats yt-dlp gave no size).

ffmpeg gets the guard as ``-http_proxy`` and as ``http_proxy`` in its environment, with
``no_proxy`` removed, because ffmpeg honours it even with an explicit proxy (issue 11, item 4).
Source: ffmpeg documentation, "Protocols: http" (``-http_proxy``, ``-headers``,
``-reconnect*``, ``-rw_timeout``).
"""
from __future__ import annotations

import base64
import os
import urllib.parse
from typing import Optional

#: What ffmpeg 5.1 needs to read a URL through the guard: http, https = tls over tcp, the
#: CONNECT tunnel (httpproxy) of https through a proxy, crypto for AES-128 HLS segments.
URL_PROTOCOLS = "http,https,tcp,tls,httpproxy,crypto"
#: Reconnect a dropped HTTP connection (not an HTTP error status) for up to 5 s per attempt;
#: give up on a connection that sends nothing for 30 s (``-rw_timeout``, microseconds) instead of
#: blocking forever without progress.
RECONNECT = ["-reconnect", "1", "-reconnect_streamed", "1", "-reconnect_on_network_error", "1",
             "-reconnect_delay_max", "5", "-rw_timeout", "30000000"]


def input_args(url: str, headers: Optional[dict], proxy_url: str,
               reconnect: bool = True) -> list:
    """ffmpeg/ffprobe input options for reading ``url`` through the guard at ``proxy_url``:
    the protocol whitelist, the proxy, :data:`RECONNECT` (when ``reconnect``), and ``headers``
    (yt-dlp's ``http_headers``) plus, for ``http://``, the guard's credentials up front
    (:func:`proxy_authorization`)."""
    args = ["-protocol_whitelist", URL_PROTOCOLS, "-http_proxy", proxy_url,
            *(RECONNECT if reconnect else [])]
    headers = dict(headers or {})
    if url.startswith("http://"):
        headers["Proxy-Authorization"] = proxy_authorization(proxy_url)
    if headers:
        # one "Name: value\r\n" per header; the trailing CRLF keeps ffmpeg from warning
        args += ["-headers", "".join(f"{k}: {v}\r\n" for k, v in headers.items())]
    return args


def ffmpeg_env(proxy_url: str) -> dict:
    """This process's environment with the guard as ``http_proxy`` (ffmpeg reads only the
    lower-case name, for http and https) and without ``no_proxy``, which ffmpeg would honour."""
    env = {key: value for key, value in os.environ.items()
           if key.lower() not in ("no_proxy", "http_proxy")}
    env["http_proxy"] = proxy_url
    return env


def proxy_authorization(proxy_url: str) -> str:
    """``Basic base64(tag:x)`` for the guard at ``proxy_url``, sent by ffmpeg before any
    challenge (``-headers``, ffmpeg documentation "Protocols: http").

    Why: ffmpeg 5.1's http protocol answers a proxy's ``407`` challenge only on a request from
    offset 0. ``http_connect()`` sets ``s->off = 0`` before it reads the response head, and only
    a ``Content-Range`` puts the offset back, so a ``407`` to a request from offset N > 0 fails
    the ``off == s->off`` check as an error before the 407 retry is reached. HLS
    ``EXT-X-BYTERANGE`` segments are each a new http context opened at their offset (the guard
    closes every connection, so hls's keep-alive reuse never applies): every segment after the
    first was skipped ("Failed to open segment"), the cut held no packets and came back as
    SEGMENT_OUT_OF_RANGE. Sent with the request, the credentials are never challenged.

    Only for ``http://`` inputs: a plain-http request goes to the guard, which reads the tag
    and drops ``Proxy-Authorization`` before forwarding (:data:`src.media.httpproxy._DROPPED`).
    An https request runs through a CONNECT tunnel, where ffmpeg's httpproxy protocol answers the
    challenge itself and custom headers would reach the origin. Limit: the hls demuxer passes
    ``-headers`` on to the playlist's segments and keys, so an https segment named by an http
    playlist sends this header to that origin through the tunnel. The tag only works on the
    guard's loopback port, admits nothing the policy does not and dies with the job (README,
    Security, "Known limits")."""
    tag = urllib.parse.urlsplit(proxy_url).username or ""
    return "Basic " + base64.b64encode(f"{tag}:x".encode()).decode()
