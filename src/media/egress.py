"""Where the media layer may connect: the egress policy (DESIGN.md "Security"; issue 11, item 4).

A page on an allowed host can redirect anywhere, and yt-dlp hands back format, manifest and
fragment URLs the page chose; HLS playlists name further URLs that ffmpeg opens by itself. So
every URL is checked twice: by name before it is handed to yt-dlp, ffmpeg or the ranged fetcher
(:meth:`Policy.check_url`), and at connect time by the guard proxy all three connect through
(:mod:`src.media.guard`), which sees every connection — redirects and URLs inside manifests
included — resolves the name itself and connects to the address it checked
(:func:`checked_addresses`; no second look-up, so no DNS rebinding).

Rules (one :class:`Policy` per process, :func:`configure` from the app's settings):

- scheme ``http`` or ``https``; no user info;
- the host is an entry of ``ALLOWED_SOURCE_HOSTS`` (pages) or ``ALLOWED_MEDIA_HOSTS`` (what
  extraction and media traffic may reach besides the pages): an exact name or IP literal, or in
  the media list ``*.example.com`` = any subdomain of example.com (not example.com itself);
- the port is the scheme's default (80, 443) unless the entry names one (``127.0.0.1:8765``) or
  any (``host:*`` — for local development and tests only);
- every address the host resolves to must be public (not loopback, private, link-local,
  multicast, reserved, unspecified or otherwise non-global; IPv4 inside IPv6 — mapped, 6to4,
  Teredo, NAT64 — is judged as IPv4) unless the host is listed *exactly*: ``127.0.0.1:8765``
  admits the local source, while whoever controls the DNS of ``*.googlevideo.com`` cannot point
  a name at an internal address.

A page URL (``webpage_url`` and what a user saves) must match the page list alone.
Refusals are ``MediaError(SOURCE_NOT_ALLOWED)`` naming ``host:port``, never a path or query
(media URLs carry signatures).

``YTDLP_PROXY`` (issue 13, item 4) changes only how the guard dials out once a connection is
allowed (:func:`upstream`, :func:`src.media.httpproxy.connect_via`): the checks stay the same.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Optional, Union
from urllib.parse import unquote, urlsplit

from src.media.errors import SOURCE_NOT_ALLOWED, MediaError

DEFAULT_PORTS = {"http": 80, "https": 443}
ANY_PORT = "*"
_ENTRY = re.compile(r"(\*\.)?(\[[0-9a-f:.]+\]|[^\s:/@\[\]*]+)(?::(\d{1,5}|\*))?")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: ``resolver(host, port)`` → getaddrinfo-style tuples; injectable for tests.
Resolver = Callable[[str, int], list]


def normalize_host(host: str) -> str:
    """Lower-case, without brackets or a trailing dot; IP literals in canonical form
    (``[0:0::1]`` → ``::1``). Other spellings of an address (``127.1``) stay as they are and
    therefore match no entry."""
    host = host.strip().lower().strip("[]").rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


@dataclass(frozen=True)
class Rule:
    """One allow-list entry: ``host`` (for a wildcard, the suffix after ``*.``), ``port`` (None:
    the scheme's default; an int; or ``"*"``)."""

    host: str
    port: Union[None, int, str] = None
    wildcard: bool = False

    def matches(self, host: str, port: int, scheme: str) -> bool:
        """True when ``host`` (normalized) and ``port`` fit this entry for ``scheme``."""
        if self.wildcard:
            label = host[:-len(self.host) - 1] if host.endswith("." + self.host) else ""
            if not label or "" in label.split(".") or _is_ip(host):
                return False
        elif host != self.host:
            return False
        if self.port == ANY_PORT:
            return True
        return port == (DEFAULT_PORTS.get(scheme) if self.port is None else self.port)


def parse_rules(entries: Iterable[str], setting: str, wildcards: bool = False) -> tuple:
    """Parse comma-separated-setting entries (``host``, ``host:port``, ``host:*``, ``[v6]:port``,
    with ``wildcards`` also ``*.domain``). Raises ValueError naming ``setting`` and the entry."""
    rules = []
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        match = _ENTRY.fullmatch(entry)
        if not match or (match[1] and not wildcards) or (match[3] not in (None, ANY_PORT)
                                                          and not 0 < int(match[3]) < 65536):
            kinds = "host, host:port or host:*" + (" or *.domain" if wildcards else "")
            raise ValueError(f"{setting}: {raw!r} is not one of {kinds}")
        port = match[3] if match[3] in (None, ANY_PORT) else int(match[3])
        rules.append(Rule(normalize_host(match[2]), port, bool(match[1])))
    return tuple(rules)


def split_url(url: str) -> tuple:
    """``(scheme, host, port)`` of an http(s) URL (host normalized, port defaulted). Raises
    MediaError(SOURCE_NOT_ALLOWED) for another scheme, user info or a malformed URL."""
    try:
        parts = urlsplit(url)
        scheme, port = parts.scheme.lower(), parts.port
    except (ValueError, AttributeError):
        raise MediaError(SOURCE_NOT_ALLOWED, "A malformed source URL was refused.") from None
    if scheme not in DEFAULT_PORTS:
        raise MediaError(SOURCE_NOT_ALLOWED, f"A {scheme or 'relative'} URL was refused "
                                             "(only http and https sources are allowed).")
    if "@" in parts.netloc:
        raise MediaError(SOURCE_NOT_ALLOWED, "A source URL with user credentials was refused.")
    host = normalize_host(parts.hostname or "")
    if not host:
        raise MediaError(SOURCE_NOT_ALLOWED, "A source URL without a host was refused.")
    return scheme, host, port or DEFAULT_PORTS[scheme]


def host_port(host: str, port: int) -> str:
    """``host:port`` as shown in messages (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Policy:
    """The allow-lists: ``page_hosts`` (``ALLOWED_SOURCE_HOSTS``) and ``media_hosts``
    (``ALLOWED_MEDIA_HOSTS``), entries as in :func:`parse_rules`. Raises ValueError on an
    unusable entry."""

    def __init__(self, page_hosts: Iterable[str] = (), media_hosts: Iterable[str] = ()):
        self.page = parse_rules(page_hosts, "ALLOWED_SOURCE_HOSTS")
        self.media = parse_rules(media_hosts, "ALLOWED_MEDIA_HOSTS", wildcards=True)

    def allows(self, host: str, port: int, scheme: str, page_only: bool = False) -> bool:
        """True when ``host:port`` (normalized host) may be reached over ``scheme``."""
        rules = self.page if page_only else self.page + self.media
        return any(rule.matches(host, port, scheme) for rule in rules)

    def check(self, host: str, port: int, scheme: str, page_only: bool = False) -> None:
        """Raise MediaError(SOURCE_NOT_ALLOWED) unless :meth:`allows`."""
        if not self.allows(host, port, scheme, page_only):
            kind = "video source" if page_only else "video source or media host"
            raise MediaError(SOURCE_NOT_ALLOWED,
                             f"{host_port(host, port)} is not an allowed {kind}.")

    def check_url(self, url: str, page_only: bool = False) -> tuple:
        """Check a URL by name (scheme, user info, host, port); return ``(scheme, host, port)``.
        Raises MediaError(SOURCE_NOT_ALLOWED)."""
        scheme, host, port = split_url(url)
        self.check(host, port, scheme, page_only)
        return scheme, host, port

    def listed_exactly(self, host: str) -> bool:
        """True when ``host`` is an entry of either list by itself, not through ``*.``: only
        then may it resolve to a loopback/private/… address."""
        return any(rule.host == host and not rule.wildcard for rule in self.page + self.media)


def is_public(address: str) -> bool:
    """True for a globally routable unicast address; IPv4 embedded in IPv6 is judged as IPv4."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6:
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            ip = embedded
    return ip.is_global and not (ip.is_multicast or ip.is_loopback or ip.is_private
                                 or ip.is_link_local or ip.is_reserved or ip.is_unspecified)


def _getaddrinfo(host: str, port: int) -> list:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)


def checked_addresses(policy: Policy, host: str, port: int,
                      resolver: Optional[Resolver] = None) -> list:
    """Resolve ``host`` once and return ``[(family, sockaddr), ...]`` to connect to.

    Raises MediaError(SOURCE_NOT_ALLOWED) when any address is not public and ``host`` is not
    listed exactly (:meth:`Policy.listed_exactly`); ``OSError`` (``socket.gaierror``) when the
    name does not resolve. ``resolver(host, port)``: getaddrinfo-shaped (default: the system's).
    """
    infos = (resolver or _getaddrinfo)(host, port)
    found = [(family, sockaddr) for family, _, _, _, sockaddr in infos
             if family in (socket.AF_INET, socket.AF_INET6)]
    if not found:
        raise socket.gaierror(f"no address for {host}")
    if not policy.listed_exactly(host):
        for _, sockaddr in found:
            if not is_public(sockaddr[0]):
                raise MediaError(SOURCE_NOT_ALLOWED, f"{host_port(host, port)} resolves to a "
                                                     "local or private address.")
    return found


@dataclass(frozen=True)
class UpstreamProxy:
    """The proxy every connection the guard opens goes through (``YTDLP_PROXY``, issue 13
    item 4): ``scheme`` http | https | socks5 | socks5h, ``host``, ``port``, optional
    credentials (never shown: not in ``repr``, not in :meth:`shown`)."""

    scheme: str
    host: str
    port: int
    username: Optional[str] = field(default=None, repr=False)
    password: Optional[str] = field(default=None, repr=False)

    def shown(self) -> str:
        """``scheme://host:port`` (for health and logs: no credentials)."""
        return f"{self.scheme}://{host_port(self.host, self.port)}"


#: Default proxy ports per scheme (curl's and urllib3's conventions).
PROXY_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}


def parse_proxy(value: Optional[str]) -> Optional[UpstreamProxy]:
    """``YTDLP_PROXY`` (``scheme://[user:pass@]host[:port]``, user and password percent-encoded)
    as an :class:`UpstreamProxy`; None when empty. Raises ValueError naming the setting but
    never its value (it may hold a password)."""
    if not value or not value.strip():
        return None
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise ValueError("YTDLP_PROXY is not a URL (scheme://[user:pass@]host[:port])") from None
    scheme = parts.scheme.lower()
    if scheme not in PROXY_PORTS or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError("YTDLP_PROXY must be http://, https://, socks5:// or socks5h:// "
                         "followed by [user:pass@]host[:port]")
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return UpstreamProxy(scheme, normalize_host(parts.hostname), port or PROXY_PORTS[scheme],
                         user, password)


_configured = Policy()
_upstream: Optional[UpstreamProxy] = None


def configure(page_hosts: Iterable[str], media_hosts: Iterable[str] = (),
              proxy: Optional[str] = None) -> Policy:
    """Set (and return) the process's policy: ``create_app`` calls it with
    ``ALLOWED_SOURCE_HOSTS``, ``ALLOWED_MEDIA_HOSTS`` and ``YTDLP_PROXY`` (the upstream proxy
    the guard dials out through, :func:`upstream`); until then nothing is allowed. Raises
    ValueError naming the setting of an unusable entry."""
    global _configured, _upstream
    _upstream = parse_proxy(proxy)
    _configured = Policy(page_hosts, media_hosts)
    return _configured


def upstream() -> Optional[UpstreamProxy]:
    """The configured upstream proxy (``YTDLP_PROXY``), or None: connect directly."""
    return _upstream


def current() -> Policy:
    """The process's policy (see :func:`configure`)."""
    return _configured
