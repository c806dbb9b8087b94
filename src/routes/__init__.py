"""Blueprints. Invalid input is 400 (spec), so webargs' default 422 is replaced here."""
from __future__ import annotations

import json

import flask_smorest
from webargs.flaskparser import FlaskParser


class _Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req):
        """webargs' JSON loading, with a body nested too deeply for ``json.loads`` (which raises
        RecursionError) treated like any other invalid JSON: 400, not 500."""
        try:
            return super()._raw_load_json(req)
        except RecursionError as exc:
            raise json.JSONDecodeError("JSON nested too deeply", "", 0) from exc


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest Blueprint whose argument errors are 400 with field → messages details."""

    ARGUMENTS_PARSER = _Parser()
