"""The web dashboard (issue 7): static files only, served at ``/`` and ``/ui/…``.

The page talks to the public API like any other client (bearer tokens from ``sessionStorage``),
so this blueprint holds no logic: it serves ``static/index.html`` and its ES modules with a strict
Content-Security-Policy (no inline script or style, same-origin requests only).
"""
from __future__ import annotations

from flask import Blueprint, current_app

from ..services import storage

blp = Blueprint("web", __name__, static_folder="static", static_url_path="/ui")

#: Same-origin only; blob: for the downloaded files, data: for the empty favicon, and YouTube's
#: thumbnail host for the info cards (issue 18: images only, never scripts or connections).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; "
       "img-src 'self' data: blob: https://*.ytimg.com; media-src 'self' blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")


def csp() -> str:
    """:data:`CSP`, with the bucket's origins added to ``img-src`` and ``media-src`` when
    downloads redirect to presigned URLs (src/services/storage.py): a signed thumbnail or play
    URL answers with a redirect there, and CSP checks where a redirect lands."""
    origins = " ".join(storage.download_origins(current_app.config))
    if not origins:
        return CSP
    return CSP.replace("https://*.ytimg.com;", f"https://*.ytimg.com {origins};") \
        .replace("media-src 'self' blob:;", f"media-src 'self' blob: {origins};")


@blp.get("/")
def index():
    """The dashboard page (not part of the API, so it stays out of the OpenAPI document)."""
    response = blp.send_static_file("index.html")
    response.headers["Cache-Control"] = "no-cache"
    return response


@blp.after_request
def page_headers(response):
    """The dashboard's (and the public channel page's, src/web/public_page.py) security
    headers: :func:`csp`, no MIME sniffing, no Referer sent anywhere."""
    response.headers["Content-Security-Policy"] = csp()
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
