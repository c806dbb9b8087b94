"""The dashboard's channel settings page (issue 17, item 2) in headless Chromium, with the app,
browser and page fixtures of tests/test_dashboard.py: open a channel by its id (the defaults
until saved), change every kind of field, save, see what the API now holds; a bad field is
named; the webhook secret is shown on demand and renewed; the public page link appears."""
from __future__ import annotations

import pytest
from selenium.webdriver.support.ui import Select

from tests import test_dashboard as dashboard
from tests.test_dashboard import api, email, needs_browser

pytestmark = pytest.mark.slow
driver, live_app, page = dashboard.driver, dashboard.live_app, dashboard.page

CHANNEL = "UC" + "Chan_nel-" * 2 + "abcd"


@needs_browser
def test_channel_settings_are_edited_and_saved(page, live_app):
    base, _ = live_app
    user = page.register(email())
    page.go("channels")
    page.visible("#channels-empty")
    page.fill("#channel-id", "UCshort")
    page.el("#channel-pick button[type=submit]").click()
    assert "UC followed by 22" in page.visible("#channel-id-error").text
    page.fill("#channel-id", CHANNEL)
    page.el("#channel-pick button[type=submit]").click()
    page.visible("#channel-form")
    assert "defaults" in page.text("#channel-saved")
    assert page.el("#channel-offset").get_attribute("value") == "60"
    assert page.el("#channel-duration").get_attribute("value") == "120"
    assert page.el("#channel-followup").is_selected()
    assert not page.el("#channel-secret-box").is_displayed()  # no webhook, no secret yet

    page.fill("#channel-template", "Clip {time} by {viewer}")  # not a placeholder: named
    page.el("#channel-form button[type=submit]").click()
    assert "reply_template" in page.visible("#channel-error").text
    page.fill("#channel-template", "Clip {time} saved, {user}!")
    page.fill("#channel-offset", "30")
    page.fill("#channel-delay", "8")
    Select(page.el("#channel-level")).select_by_value("subscriber")
    page.el("#channel-followup").click()
    page.fill("#channel-discord", "https://discord.com/api/webhooks/42/tok-en")
    page.el("#channel-public").click()
    page.fill("#channel-handle", "my-streams")
    page.el("#channel-form button[type=submit]").click()
    page.wait(lambda: "Saved settings" in page.el("#channel-saved").text, 10, "saved")

    status, stored = api(base, "GET", f"/api/channels/{CHANNEL}", token=user["token"])
    assert status == 200 and stored["saved"]
    assert (stored["offset"], stored["duration"], stored["delay"]) == (30, 120, 8)
    assert stored["reply_template"] == "Clip {time} saved, {user}!"
    assert stored["min_user_level"] == "subscriber" and stored["followup"] is False
    assert stored["discord_webhook_url"].endswith("/42/tok-en")
    assert stored["public_page"] and stored["handle"] == "my-streams"
    assert "Nothing sent yet" in page.visible("#channel-deliveries [data-role=empty]").text
    link = page.visible("#channel-public-link a[data-role=public-link]")
    assert link.get_attribute("href") == f"{base}/c/my-streams"
    assert page.visible(f'#channels-list button[data-channel="{CHANNEL}"]').text == \
        f"{CHANNEL} (my-streams)"

    # The webhook secret: hidden until asked, renewed on demand.
    page.visible("#channel-secret-box")
    secret = page.el("#channel-secret")
    assert secret.get_attribute("type") == "password"
    page.el("#channel-secret-show").click()
    assert secret.get_attribute("type") == "text"
    assert secret.get_attribute("value") == stored["webhook_secret"]
    page.el("#channel-secret-rotate").click()
    page.drv.switch_to.alert.accept()
    page.wait(lambda: page.el("#channel-secret").get_attribute("value")
              not in ("", stored["webhook_secret"]), 10, "a new secret")
    renewed = api(base, "GET", f"/api/channels/{CHANNEL}", token=user["token"])[1]
    assert renewed["webhook_secret"] == page.el("#channel-secret").get_attribute("value")

    # Emptied fields clear: no template, no Discord, no page.
    for css in ("#channel-template", "#channel-discord", "#channel-delay"):
        page.fill(css, "")
    page.el("#channel-public").click()
    page.fill("#channel-handle", "")
    page.el("#channel-form button[type=submit]").click()
    page.wait(lambda: not page.el("#channel-public-link").is_displayed(), 10, "page off")
    cleared = api(base, "GET", f"/api/channels/{CHANNEL}", token=user["token"])[1]
    assert cleared["reply_template"] is None and cleared["discord_webhook_url"] is None
    assert cleared["delay"] is None and cleared["handle"] is None
    assert page.console_errors(allowed=("400",)) == []  # the refused template
