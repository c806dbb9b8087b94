"""No test reaches the network (issue 16, item 6): a pytest plugin, loaded from conftest.py.

For the whole run, ``socket.socket.connect``/``connect_ex`` refuse any IPv4/IPv6 address outside
loopback (127.0.0.0/8, ::1) with ``ENETUNREACH``, and ``socket.getaddrinfo`` answers
``EAI_NONAME`` for any name other than ``localhost`` and numeric addresses — what code sees on a
machine without a network, at once instead of after a DNS time-out. Both are recorded, and a test
during which either happened fails at its teardown, naming the address or name: code that
swallows the error (yt-dlp retrying, a health check) cannot hide it. The service's own code
reaches the outside only through the egress guard (src/media/guard.py), which resolves and
connects in this process, so this also covers yt-dlp, ffmpeg and the ranged fetcher, which
connect to the guard on loopback. A test that means to look a name up injects its resolver
(``egress`` and ``guard`` take one) or marks itself ``@pytest.mark.allow_dns``.

Not covered: subprocesses that bypass the guard (no code of the service does; the tests' own
ffmpeg commands read local files).
"""
from __future__ import annotations

import errno
import ipaddress
import socket
import threading

import pytest

_REAL_CONNECT = socket.socket.connect
_REAL_CONNECT_EX = socket.socket.connect_ex
_REAL_GETADDRINFO = socket.getaddrinfo
_INET = (socket.AF_INET, socket.AF_INET6)

_lock = threading.Lock()
_seen: list[str] = []
_allow_dns = threading.Event()


def _loopback(host) -> bool:
    if host in (None, "", "localhost", b"localhost"):
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _numeric(host) -> bool:
    try:
        ipaddress.ip_address(str(host).split("%")[0])
        return True
    except ValueError:
        return False


def _record(what: str) -> None:
    with _lock:
        _seen.append(what)


def _check_address(sock: socket.socket, address) -> None:
    if sock.family in _INET and isinstance(address, tuple) and not _loopback(address[0]):
        _record(f"connect to {address[0]}:{address[1]}")
        raise OSError(errno.ENETUNREACH, f"tests may not connect to {address[0]} "
                                         "(tests/network_guard.py)")


def _connect(self, address):
    _check_address(self, address)
    return _REAL_CONNECT(self, address)


def _connect_ex(self, address):
    try:
        _check_address(self, address)
    except OSError as exc:
        return exc.errno
    return _REAL_CONNECT_EX(self, address)


def _getaddrinfo(host, *args, **kwargs):
    if not _loopback(host) and not _numeric(host) and not _allow_dns.is_set():
        _record(f"name look-up of {host!r}")
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known "
                                                 "(tests/network_guard.py)")
    return _REAL_GETADDRINFO(host, *args, **kwargs)


def pytest_configure(config):
    config.addinivalue_line("markers", "allow_dns: the test may resolve names (still no "
                                       "connection outside loopback)")
    socket.socket.connect = _connect
    socket.socket.connect_ex = _connect_ex
    socket.getaddrinfo = _getaddrinfo


def pytest_unconfigure(config):
    socket.socket.connect = _REAL_CONNECT
    socket.socket.connect_ex = _REAL_CONNECT_EX
    socket.getaddrinfo = _REAL_GETADDRINFO


@pytest.fixture(autouse=True)
def _no_network(request):
    """Fail the test when it (or a thread it started) tried to leave loopback."""
    if request.node.get_closest_marker("allow_dns"):
        _allow_dns.set()
    with _lock:
        _seen.clear()
    yield
    _allow_dns.clear()
    with _lock:
        seen, _seen[:] = list(_seen), []
    if seen:
        pytest.fail("the test reached for the network: " + "; ".join(sorted(set(seen))[:5]),
                    pytrace=False)
