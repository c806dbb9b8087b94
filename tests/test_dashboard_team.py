"""The dashboard's Team view (issue 17, item 6) in headless Chromium: an owner invites a
moderator, the moderator opens the invite link logged out, logs in and accepts, and the owner
removes them again. Reuses tests/test_dashboard.py's app, browser and page; each step is checked
in the page and in the API, and the console stays free of errors.

Needs the Team section of index.html and main.js's route (src/web/static/js/team.js is the
module; the markup is in /work/notes/roles.md until it is pasted).
"""
from __future__ import annotations

import pytest

from tests import test_dashboard as dashboard
from tests.test_dashboard import PASSWORD, api, email, needs_browser

pytestmark = pytest.mark.slow  # make test-fast leaves this module out
#: The app served for real, the browser and the page of tests/test_dashboard.py.
driver, live_app, page = dashboard.driver, dashboard.live_app, dashboard.page


def _account(base):
    address = email()
    assert api(base, "POST", "/api/auth/register", {"email": address,
                                                    "password": PASSWORD})[0] == 201
    status, body = api(base, "POST", "/api/auth/login", {"email": address, "password": PASSWORD})
    assert status == 200
    return {"email": address, "token": body["token"], "id": body["user"]["id"]}


@needs_browser
def test_invite_accept_and_remove_a_moderator(page, live_app):
    base, _ = live_app
    moderator = _account(base)
    owner_email = f"owner-{email()}"
    page.register(owner_email)
    page.go("team")
    page.visible("#team-moderators-empty")

    page.fill("#team-email", moderator["email"])
    page.el("#team-invite-form button[type=submit]").click()
    link = page.wait(lambda: page.el("#team-invite-link").get_attribute("value"), 10,
                     "the invite link")
    assert link.startswith(base + "/#team?invite=")
    assert page.text("#team-invite-email") == moderator["email"]
    assert moderator["email"] in page.text("#team-invites")
    assert page.el("#team-moderators-empty").is_displayed()

    # the moderator opens the link logged out, logs in, and accepts
    page.el("#logout").click()
    page.visible("#view-login")
    page.drv.get(link)
    page.log_in(moderator["email"], PASSWORD)
    page.visible("#view-team")
    token = link.split("invite=", 1)[1]
    assert page.el("#team-accept-token").get_attribute("value") == token
    page.el("#team-accept-form button[type=submit]").click()
    page.wait(lambda: owner_email in page.el("#team-owners").text, 10, "the owner listed")
    assert f"moderate the clips of {owner_email}" in page.text("#flash")
    status, body = api(base, "GET", "/api/team", token=moderator["token"])
    assert status == 200 and [o["email"] for o in body["owners"]] == [owner_email]

    # the owner sees and removes the moderator
    page.el("#logout").click()
    page.visible("#view-login")
    page.log_in(owner_email, PASSWORD)
    page.visible("#view-clips")
    page.go("team")
    page.wait(lambda: moderator["email"] in page.el("#team-moderators").text, 10,
              "the moderator listed")
    assert page.el("#team-invites-empty").is_displayed()
    page.el("#team-moderators button").click()
    page.drv.switch_to.alert.accept()
    page.visible("#team-moderators-empty")
    assert api(base, "GET", "/api/team", token=moderator["token"])[1]["owners"] == []
    assert page.console_errors() == []
