"""JSON for the job a Celery task carries (issue 15, item 2): a module-level job function, or the
phase a clip hands off to the encode lane — a ``functools.partial`` of
``clip_encode.run_encode_phase`` with the clip's :class:`~src.services.clip_extras.Extras`
(subtitle cues, an audio cover's bytes) and the ``finish``/``fail`` functions.

JSON rather than pickle: a broker message is data, and Celery itself refuses to run a worker as
root that accepts pickle. What a message may name is limited: functions of ``src.services``,
dataclasses of ``src.services`` / ``src.media``; anything else is refused when decoding
(ValueError) and cannot be encoded (TypeError). Tagged shapes: ``{"$f": "mod:name"}`` a
function, ``{"$p": ref, "args": [...], "kw": {...}}`` a partial, ``{"$dc": "mod:name",
"fields": {...}}`` a dataclass, ``{"$b": base64}`` bytes, ``{"$d": {...}}`` a dict; lists,
strings, numbers, booleans and null as themselves (a tuple comes back as a list).
"""
from __future__ import annotations

import base64
import dataclasses
import functools
import importlib
from collections.abc import Callable
from typing import Any

FUNCTION_MODULES = ("src.services.",)
DATACLASS_MODULES = ("src.services.", "src.media.")


def _ref(obj: Any, prefixes: tuple) -> str:
    module, name = getattr(obj, "__module__", "") or "", getattr(obj, "__qualname__", "")
    if not module.startswith(prefixes) or not name.isidentifier():
        raise TypeError(f"cannot name {obj!r} in a task (module-level, under {prefixes})")
    return f"{module}:{name}"


def _named(ref: str, prefixes: tuple):
    module, _, name = str(ref).partition(":")
    if not module.startswith(prefixes) or not name.isidentifier():
        raise ValueError(f"refusing {ref!r} from a task")
    value = getattr(importlib.import_module(module), name, None)
    if value is None:
        raise ValueError(f"no {ref!r}")
    return value


def encode(value: Any) -> Any:
    """``value`` as JSON-able data (the module docstring's shapes). Raises TypeError for what
    a task may not carry (a lambda, a local function, an object of another kind)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [encode(item) for item in value]
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("dict keys must be strings in a task")
        return {"$d": {key: encode(item) for key, item in value.items()}}
    if isinstance(value, functools.partial):
        return {"$p": _ref(value.func, FUNCTION_MODULES), "args": encode(list(value.args)),
                "kw": encode(dict(value.keywords))}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"$dc": _ref(type(value), DATACLASS_MODULES),
                "fields": {f.name: encode(getattr(value, f.name))
                           for f in dataclasses.fields(value)}}
    if callable(value):
        return {"$f": _ref(value, FUNCTION_MODULES)}
    raise TypeError(f"cannot carry {type(value).__name__} in a task")


def decode(data: Any) -> Any:
    """The value :func:`encode` made ``data`` from. Raises ValueError for a name outside the
    allowed modules or a shape it does not know."""
    if isinstance(data, list):
        return [decode(item) for item in data]
    if not isinstance(data, dict):
        return data
    if "$b" in data:
        return base64.b64decode(data["$b"])
    if "$d" in data:
        return {key: decode(item) for key, item in data["$d"].items()}
    if "$f" in data:
        fn = _named(data["$f"], FUNCTION_MODULES)
        if not callable(fn):
            raise ValueError(f"{data['$f']!r} is not a function")
        return fn
    if "$p" in data:
        fn = _named(data["$p"], FUNCTION_MODULES)
        return functools.partial(fn, *decode(data.get("args") or []),
                                 **decode(data.get("kw") or {"$d": {}}))
    if "$dc" in data:
        cls = _named(data["$dc"], DATACLASS_MODULES)
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ValueError(f"{data['$dc']!r} is not a dataclass")
        return cls(**{key: decode(item) for key, item in data["fields"].items()})
    raise ValueError(f"unknown shape in a task: {sorted(data)}")


def job_of(data: Any) -> Callable:
    """The callable ``fn(video_id, job_id)`` a task carries: a function or a partial."""
    fn = decode(data)
    if not callable(fn):
        raise ValueError("a task must carry a job function")
    return fn
