"""The dashboard's Team view (issue 17, item 6) in headless Chromium: an owner invites a
moderator, the moderator opens the invite link logged out, logs in and accepts, and the owner
removes them again. Reuses tests/test_dashboard.py's app, browser and page; each step is checked
in the page and in the API, and the console stays free of errors.

Needs the Team section of index.html and main.js's route (src/web/static/js/team.js is the
module; the markup is in /work/notes/roles.md until it is pasted).
"""
from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests import test_dashboard as dashboard
from tests.test_dashboard import PASSWORD, api, email, needs_browser, save_clip

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


@needs_browser
def test_a_moderator_lists_and_downloads_the_owners_clips(page, live_app, source_server):
    """"Whose clips" appears once I moderate someone: picking the owner lists their clips (not
    mine), and the card's download saves the owner's file."""
    base, _ = live_app
    owner = _account(base)
    clip = save_clip(base, {"token": owner["token"], "user": {"id": owner["id"]}},
                     source_server.mp4_url, 10, 14, "the owner's moment")
    status, invite = api(base, "POST", "/api/team/invites", {"email": f"mod-{email()}"},
                         token=owner["token"])
    assert status == 201, invite
    moderator_email = invite["email"]
    user = page.register(moderator_email)
    mine = save_clip(base, user, source_server.mp4_url, 20, 24, "my own moment")
    page.el("#clips-refresh").click()
    page.visible(f'#clips-list li.clip[data-id="{mine}"]')
    assert not page.el("#clips-owner-box").is_displayed()  # I moderate nobody yet
    assert api(base, "POST", "/api/team/invites/accept", {"token": invite["token"]},
               token=user["token"])[0] == 200
    page.go("team")
    page.wait(lambda: owner["email"] in page.el("#team-owners").text, 10, "the owner listed")
    page.go("clips")
    menu = page.visible("#clips-owner")
    Select(menu).select_by_visible_text(owner["email"])
    card = f'#clips-list li.clip[data-id="{clip}"]'
    page.visible(card)
    assert page.drv.find_elements(By.CSS_SELECTOR, f'#clips-list li.clip[data-id="{mine}"]') \
        == []
    assert "the owner's moment" in page.el(card).text
    page.el(f"{card} button[data-role=download]").click()
    path = page.wait_download(f"video_{clip}.mp4", timeout=90)
    assert path.stat().st_size > 10_000
    Select(page.el("#clips-owner")).select_by_visible_text("Mine")
    page.visible(f'#clips-list li.clip[data-id="{mine}"]')
    assert page.console_errors() == []
