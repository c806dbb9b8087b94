"""Netscape ``cookies.txt`` files (what yt-dlp's ``--cookies`` reads): parse, check, summarise.

Pure functions, no I/O. The rules are those of the two readers a file goes through when yt-dlp
loads it (yt_dlp/cookies.py ``YoutubeDLCookieJar.load``, then Python's
``http.cookiejar.MozillaCookieJar._really_load``), made strict so that a file we accept is one
they load completely, and a file they would partly skip is refused with the line at fault:

- lines are separated by ``\\n``; one ``\\r`` before it (Windows line ends) is dropped; a UTF-8
  byte-order mark at the very start is dropped;
- a blank line (spaces and tabs only) or a comment (``#`` …) is skipped, except that a line
  starting with ``#HttpOnly_`` is a cookie marked HttpOnly (curl's convention);
- a cookie line has exactly 7 tab-separated fields: domain, include-subdomains (``TRUE`` /
  ``FALSE``), path (starting with ``/``), secure (``TRUE`` / ``FALSE``), expiry (epoch seconds,
  yt-dlp's ``[0-9]+(\\.[0-9]+)?``, or empty; 0 or empty = a session cookie), name, value;
- the whole file is printable ASCII plus tabs (cookie names and values are ASCII, RFC 6265
  §4.1.1; browser exporters write ASCII comments), which keeps a header value from ever carrying
  a control character.

``http.cookiejar`` asserts that include-subdomains is TRUE exactly when the domain starts with a
dot; exporters do not always agree, so :func:`to_text` writes the flag from the dot (the meaning
``http.cookiejar`` gives a cookie) instead of refusing the file.

:data:`PATTERN` is the same language as one regular expression (files with at least one cookie
of the YouTube/Google family), for the OpenAPI document of the upload route.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

HTTPONLY_PREFIX = "#HttpOnly_"
#: Header yt-dlp writes (MozillaCookieJar insists on such a first line: NETSCAPE_MAGIC_RGX).
HEADER = "# Netscape HTTP Cookie File\n"
#: Domains whose cookies a YouTube extraction uses (the login cookies live on .youtube.com and
#: .google.com); a domain matches itself and its subdomains.
YOUTUBE_FAMILY = ("youtube.com", "google.com")

_DOMAIN = r"\.?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_EXPIRES = r"(?:[0-9]{1,12}(?:\.[0-9]+)?)?"  # 12 digits: float() and int() never overflow
_FIELDS = {"domain": _DOMAIN, "path": r"/[ -~]*", "expires": _EXPIRES, "name": r"[!-~]*",
           "value": r"[ -~]*"}
_FLAG = ("TRUE", "FALSE")
_PRINTABLE = re.compile(r"[\t -~]*")


class CookiesFormatError(ValueError):
    """A file that is not a usable Netscape cookies file. ``line`` is the 1-based number of the
    line at fault (None when the fault is the whole file, e.g. no cookie at all) and ``reason``
    says what is wrong; ``str()`` is ``"line N: reason"``."""

    def __init__(self, line: Optional[int], reason: str):
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class Cookie:
    """One cookie line. ``expires`` is epoch seconds, None for a session cookie; ``line`` is the
    1-based line number it came from."""

    domain: str
    path: str
    secure: bool
    expires: Optional[int]
    name: str
    value: str
    http_only: bool
    line: int

    @property
    def host(self) -> str:
        """The domain without its leading dot, lower-case."""
        return self.domain.lstrip(".").lower()


def _lines(text: str) -> list[str]:
    if text.startswith("\ufeff"):
        text = text[1:]
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def _cookie(number: int, line: str) -> Cookie:
    http_only = line.startswith(HTTPONLY_PREFIX)
    fields = (line[len(HTTPONLY_PREFIX):] if http_only else line).split("\t")
    if len(fields) != 7:
        raise CookiesFormatError(number, f"expected 7 tab-separated fields (domain, "
                                         f"include subdomains, path, secure, expiry, name, "
                                         f"value), found {len(fields)}")
    domain, subdomains, path, secure, expires, name, value = fields
    named = {"domain": domain, "path": path, "expires": expires, "name": name, "value": value}
    for field, text in named.items():
        if not re.fullmatch(_FIELDS[field], text):
            raise CookiesFormatError(number, f"the {field} field{_shown(field, text)} is not "
                                             f"valid ({_EXPECTED[field]})")
    for field, text in (("include subdomains", subdomains), ("secure", secure)):
        if text not in _FLAG:
            raise CookiesFormatError(number, f"the {field} field must be TRUE or FALSE, "
                                             f"found {text[:20]!r}")
    seconds = int(float(expires)) if expires else 0
    return Cookie(domain, path, secure == "TRUE", seconds or None, name, value, http_only,
                  number)


_EXPECTED = {"domain": "a host name such as .youtube.com", "path": "it starts with /",
             "expires": "epoch seconds, or empty for a session cookie",
             "name": "printable ASCII without spaces", "value": "printable ASCII"}


def _shown(field: str, text: str) -> str:
    """A field for an error message: never a cookie's value (a secret), at most 40 characters
    of the others."""
    return "" if field == "value" else " " + repr(text[:40])


def parse(text: str) -> list[Cookie]:
    """The cookies of a Netscape cookies file, in file order.

    Raises :class:`CookiesFormatError` (a ValueError) for the first line that is wrong (its
    1-based number and why: field count, a field's form, a character outside printable ASCII,
    JSON instead of Netscape text) and, with ``line=None``, for a file without any cookie.
    A cookie's value never appears in the message.
    """
    cookies = []
    for number, line in enumerate(_lines(text), start=1):
        if not _PRINTABLE.fullmatch(line):
            bad = next(ch for ch in line if not _PRINTABLE.fullmatch(ch))
            raise CookiesFormatError(number, f"character U+{ord(bad):04X} is not allowed (a "
                                             f"cookies file is printable ASCII and tabs)")
        if not line.strip(" \t"):
            continue
        if line.startswith("#") and not line.startswith(HTTPONLY_PREFIX):
            continue
        if number == 1 and line.lstrip()[:1] in ("[", "{"):
            raise CookiesFormatError(number, "this is JSON; a cookies file is Netscape text "
                                             "(export it as cookies.txt)")
        cookies.append(_cookie(number, line))
    if not cookies:
        raise CookiesFormatError(None, "the file has no cookie lines")
    return cookies


def in_family(cookie: Cookie, family: Iterable[str] = YOUTUBE_FAMILY) -> bool:
    """True when the cookie's domain is one of ``family`` or a subdomain of one."""
    return any(cookie.host == name or cookie.host.endswith("." + name) for name in family)


def to_text(cookies: Iterable[Cookie]) -> str:
    """A Netscape file of ``cookies`` that yt-dlp loads as they are: the header line, then one
    line per cookie, the include-subdomains flag written from the domain's leading dot."""
    rows = [HEADER]
    for c in cookies:
        flags = ("TRUE" if c.domain.startswith(".") else "FALSE", "TRUE" if c.secure else "FALSE")
        rows.append("\t".join((HTTPONLY_PREFIX + c.domain if c.http_only else c.domain,
                               flags[0], c.path, flags[1], str(c.expires or 0), c.name,
                               c.value)) + "\n")
    return "".join(rows)


def describe(cookies: list[Cookie]) -> dict:
    """``{"domains": sorted hosts (no leading dot), "earliest_expiry": the smallest expiry in
    epoch seconds among cookies that have one (passed ones included) or None when all are
    session cookies, "count": number of cookies}``."""
    expiries = [c.expires for c in cookies if c.expires]
    return {"domains": sorted({c.host for c in cookies}),
            "earliest_expiry": min(expiries) if expiries else None, "count": len(cookies)}


def summary(text: str) -> dict:
    """:func:`describe` of :func:`parse` (text) — never the cookies themselves. Raises
    :class:`CookiesFormatError` as :func:`parse` does."""
    return describe(parse(text))


def _any_case(word: str) -> str:
    return "".join(f"[{ch.lower()}{ch.upper()}]" if ch.isalpha() else re.escape(ch)
                   for ch in word)


def _pattern() -> str:
    family = "|".join(_any_case(name) for name in YOUTUBE_FAMILY)
    flag = "(?:TRUE|FALSE)"

    def cookie(domain: str) -> str:
        return (f"(?:#HttpOnly_)?{domain}\\t{flag}\\t{_FIELDS['path']}\\t{flag}\\t{_EXPIRES}"
                f"\\t{_FIELDS['name']}\\t{_FIELDS['value']}")

    # a comment is "#" + anything printable, unless it starts with "#HttpOnly_" (a cookie):
    # spelled without look-ahead, as the prefixes of "HttpOnly_" each followed by another char
    word, alternatives = "HttpOnly_", [""]
    for i, ch in enumerate(word):
        before, after = re.escape(chr(ord(ch) - 1)), re.escape(chr(ord(ch) + 1))
        alternatives.append(re.escape(word[:i]) + f"[\\t -{before}{after}-~][\\t -~]*")
    alternatives += [re.escape(word[:i]) for i in range(1, len(word))]
    comment = "#(?:" + "|".join(alternatives) + ")"
    any_line = f"(?:[ \\t]*|{comment}|{cookie(_DOMAIN)})\\r?"
    good = cookie(r"\.?(?:[A-Za-z0-9-]+\.)*(?:" + family + ")") + "\\r?"
    return f"^\\ufeff?(?:{any_line}\\n)*{good}(?:\\n{any_line})*$"


#: The files :func:`parse` accepts that hold at least one cookie of :data:`YOUTUBE_FAMILY`,
#: as one regular expression (Python and ECMA-262 alike; no look-ahead).
PATTERN = _pattern()
