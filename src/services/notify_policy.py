"""Where clip notifications may be posted (issue 17, item 3): the egress policies of the two
targets, checked by name before a post and by the egress guard (src/media/guard.py) at connect
time, with every resolved address (DESIGN.md "Security"; src/media/egress.py).

- Discord: ``discord.com`` / ``discordapp.com``, which must resolve to public addresses, and the
  hosts of ``DISCORD_WEBHOOK_HOSTS`` (listed exactly, so they may be local: tests, the demo's
  stand-in); the URL must be a webhook URL the channel settings accept
  (:func:`src.services.channel_service.discord_url_ok`).
- Generic webhook: any ``https`` host whose addresses are all public, and the entries of
  ``WEBHOOK_HOSTS`` (listed exactly) — a listed host only on its listed scheme and port.
"""
from __future__ import annotations

from ..extensions import setting
from ..media import egress
from ..media.errors import MediaError
from . import channel_service

DISCORD_HOSTS = ("discord.com", "discordapp.com")
RETRY_AFTER_MAX = 900.0


class DiscordPolicy(egress.Policy):
    """Discord's two hosts (which must resolve to public addresses) plus ``extra``
    (``DISCORD_WEBHOOK_HOSTS`` entries, listed exactly: they may be local)."""

    def __init__(self, extra):
        self.extra = egress.parse_rules(list(extra or ()), "DISCORD_WEBHOOK_HOSTS")
        super().__init__([*DISCORD_HOSTS, *(extra or ())])

    def listed_exactly(self, host: str) -> bool:
        return any(rule.host == host and not rule.wildcard for rule in self.extra)

    def admits(self, url: str) -> bool:
        """A Discord webhook URL the channel settings accept (:func:`channel_service.
        discord_url_ok`)."""
        return channel_service.discord_url_ok(url)


class WebhookPolicy(egress.Policy):
    """Any ``https`` host — whose addresses must then all be public — plus ``extra``
    (``WEBHOOK_HOSTS`` entries, listed exactly). A listed host is reachable only as listed
    (its scheme and port), so listing ``127.0.0.1:8080`` opens no other local port."""

    def __init__(self, extra):
        self.extra = egress.parse_rules(list(extra or ()), "WEBHOOK_HOSTS")
        super().__init__()

    def allows(self, host: str, port: int, scheme: str, page_only: bool = False) -> bool:
        if any(rule.matches(host, port, scheme) for rule in self.extra):
            return True
        return scheme == "https" and not any(rule.host == host for rule in self.extra)

    def listed_exactly(self, host: str) -> bool:
        return any(rule.host == host and not rule.wildcard for rule in self.extra)

    def admits(self, url: str) -> bool:
        """A generic webhook URL the channel settings accept that this policy allows by name."""
        if not channel_service.webhook_url_ok(url):
            return False
        try:
            self.check_url(url)
        except MediaError:
            return False
        return True


def policy(target: str) -> egress.Policy:
    """The egress policy of ``target`` ("discord" | "webhook") under the app's settings."""
    if target == "discord":
        return DiscordPolicy(setting("DISCORD_WEBHOOK_HOSTS"))
    return WebhookPolicy(setting("WEBHOOK_HOSTS"))
