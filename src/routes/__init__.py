"""Blueprints. Invalid input is 400 (spec), so webargs' default 422 is replaced here."""
from __future__ import annotations

import flask_smorest
from webargs.flaskparser import FlaskParser


class _Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest Blueprint whose argument errors are 400 with field → messages details."""

    ARGUMENTS_PARSER = _Parser()
