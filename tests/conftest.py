"""Shared pytest fixtures. Media fixtures (local HTTP source) live in tests/media_fixtures.py."""
pytest_plugins = ["tests.media_fixtures"]
