"""A channel's public clip page (issue 17, item 5) at ``/c/{handle}``: one static file.

``static/public.html`` and its ES module (``/ui/js/public.js``) read the handle from the
address and ask the public API (src/routes/public.py) for the clips; nothing about the
channel is rendered into the HTML here, so no user data can reach the page as markup. The
answer carries the dashboard's headers (src/web/__init__.py: the same strict
Content-Security-Policy, nosniff, no referrer). A page that is off or a handle nobody has gets
the same file with status 404 (the same for both, as the API answers), so search engines do
not keep such addresses; the script then says there is no such page.
"""
from __future__ import annotations

import os

from flask import Blueprint, send_from_directory

from ..errors import ApiError
from ..services import public_page
from . import page_headers

STATIC = os.path.join(os.path.dirname(__file__), "static")

blp = Blueprint("public_page", __name__)


@blp.get("/c/<handle>")
def page(handle):
    """The public page of the channel named ``handle`` (not part of the API, so it stays
    out of the OpenAPI document): 200, or 404 with the same file when there is none."""
    try:
        public_page.channel_of(handle)
        status = 200
    except ApiError:
        status = 404
    response = send_from_directory(STATIC, "public.html", max_age=0,
                                   conditional=False)
    response.status_code = status
    response.headers["Cache-Control"] = "no-cache"
    return response


blp.after_request(page_headers)
