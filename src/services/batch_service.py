"""Several clips in one request (issue 18, item 5): ``POST /api/video/save/batch``.

Each item is what ``POST /api/video/save`` takes (the route checks every item against that
schema first: src/routes/batch.py) and is saved exactly as that route would save it
(:func:`src.services.video_service.save_clip`: the same URL, range, owner and pending-clip
rules); one item's refusal never stops the others. The answer lists every item in order with
the status and body the single save would have given: ``201`` with ``video_id``, or the error
status with the one error shape (``error``, ``code``, ``details``). Items are saved one after
the other, so a client can tell from ``index`` which clip is which; a ``youtube.com/clip/`` item
is read at save time like in the single save.
"""
from __future__ import annotations

from ..errors import ApiError
from . import video_service

#: Largest number of items in one batch (issue 18: "up to 50").
MAX_ITEMS = 50


def save_batch(items: list, token_claims: dict) -> dict:
    """Save each of ``items`` (loaded ``SaveVideoSchema`` bodies) as ``POST /api/video/save``
    would.

    Returns ``{"saved": n, "failed": m, "results": [{"index": i, "status": 201, "video_id":
    …} | {"index": i, "status": 4xx/5xx, "error", "code", "details"?}]}`` in item order.
    ``token_claims``: the public token's claims (a bound token saves only for its owner).
    Never raises for an item: every ApiError of a save becomes that item's result.
    """
    results = []
    for index, body in enumerate(items):
        try:
            video_id = video_service.save_clip(body, token_claims)
            results.append({"index": index, "status": 201, "video_id": video_id})
        except ApiError as exc:
            result = {"index": index, "status": exc.status, "error": exc.message,
                      "code": exc.code}
            if exc.details:
                result["details"] = exc.details
            results.append(result)
    saved = sum(1 for result in results if result["status"] == 201)
    return {"saved": saved, "failed": len(results) - saved, "results": results}
