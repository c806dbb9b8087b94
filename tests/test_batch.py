"""POST /api/video/save/batch (issue 18, item 5): every item answered as the single save would
answer it, in order; one bad item never stops the others; the request itself is refused only
when it is not a list of 1-50 items."""
from __future__ import annotations

SOURCE = "http://127.0.0.1:8765/long.mp4"  # admitted by the test settings (127.0.0.1:*)
MAX_VIDEO_DURATION = 3600  # the default


def _batch(client, headers, items):
    return client.post("/api/video/save/batch", headers=headers, json={"items": items})


def test_each_item_is_answered_like_the_single_save(app, client, auth):
    user = auth.user()
    headers = auth.public_headers(user)
    r = _batch(client, headers, [
        {"url": SOURCE, "start_time": 300, "end_time": 330, "additional_message": "first"},
        {"url": SOURCE, "start_time": 40, "end_time": 10},                    # range
        {"url": "https://evil.example/watch?v=dQw4w9WgXcQ", "start_time": 0, "end_time": 5},
        {"url": SOURCE, "start_time": 0, "end_time": MAX_VIDEO_DURATION + 1},  # too long
        {"url": "https://youtu.be/dQw4w9WgXcQ", "start_time": 1, "end_time": 2.5},
    ])
    assert r.status_code == 200, r.json
    results = r.json["results"]
    assert [item["index"] for item in results] == list(range(5))
    assert [item["status"] for item in results] == [201, 400, 400, 400, 201]
    assert (r.json["saved"], r.json["failed"]) == (2, 3)
    assert results[1]["code"] == results[3]["code"] == "VALIDATION_ERROR"
    assert results[2]["code"] == "INVALID_URL" and "url" in results[2]["details"]
    # what was stored is exactly the two good items, for this user, as the single save stores
    stored = {str(doc["_id"]): doc for doc in app.extensions["yt"]["db"].videos.find()}
    assert set(stored) == {results[0]["video_id"], results[4]["video_id"]}
    first = stored[results[0]["video_id"]]
    assert (first["url"], first["start_time"], first["end_time"]) == (SOURCE, 300, 330)
    assert first["additional_message"] == "first" and str(first["user_id"]) == user["id"]
    assert stored[results[4]["video_id"]]["youtube_video_id"] == "dQw4w9WgXcQ"
    status = client.get(f"/api/video/status/{results[0]['video_id']}", headers=user["headers"])
    assert status.status_code == 200 and status.json["status"] == "pending"


def test_a_bound_token_saves_only_for_its_owner(client, auth):
    owner, other = auth.user(), auth.user()
    r = _batch(client, auth.public_headers(owner), [
        {"url": SOURCE, "start_time": 0, "end_time": 5, "user_id": other["id"]},
        {"url": SOURCE, "start_time": 0, "end_time": 5, "user_id": owner["id"]}])
    assert [item["status"] for item in r.json["results"]] == [403, 201]
    assert r.json["results"][0]["code"] == "TOKEN_USER_MISMATCH"


def test_the_request_is_refused_when_it_does_not_fit_the_document(app, client, auth):
    """Not 1-50 items, or an item that is not a SaveVideo (a string, a missing or unknown
    field): 400 for the whole request, naming the item; nothing is saved."""
    headers = auth.public_headers(auth.user())
    item = {"url": SOURCE, "start_time": 0, "end_time": 5}
    for body in ({"items": []}, {"items": [item] * 51}, {"items": item}, {}, {"items": None},
                 {"items": [item, "not an object"]},
                 {"items": [item, {"url": SOURCE, "start_time": 60}]},
                 {"items": [item, {**item, "colour": "red"}]}):
        r = client.post("/api/video/save/batch", headers=headers, json=body)
        assert r.status_code == 400 and r.json["code"] == "VALIDATION_ERROR", (body, r.json)
    assert app.extensions["yt"]["db"].videos.count_documents({}) == 0
    assert _batch(client, {}, [item]).status_code == 401
    assert _batch(client, headers, [item] * 50).json["saved"] == 50


def test_batches_have_their_own_rate_limit(make_app, auth_factory):
    client = make_app(RATE_LIMIT_ENABLED=True, RATE_LIMIT_SAVE_BATCH_TOKEN="2/minute").test_client()
    auth = auth_factory(client)
    headers = auth.public_headers(auth.user())
    item = {"url": SOURCE, "start_time": 0, "end_time": 5}
    assert [_batch(client, headers, [item]).status_code for _ in range(3)] == [200, 200, 429]
    limited = _batch(client, headers, [item])
    assert limited.json["code"] == "RATE_LIMITED" and int(limited.headers["Retry-After"]) > 0


def test_the_document_shows_each_item_as_a_save(client):
    doc = client.get("/openapi.json").json
    items = doc["components"]["schemas"]["BatchSave"]["properties"]["items"]
    assert items["items"] == {"$ref": "#/components/schemas/SaveVideo"}
    assert items["maxItems"] == 50
    operation = doc["paths"]["/api/video/save/batch"]["post"]
    assert operation["security"] == [{"publicToken": []}]
    assert {"200", "400", "401", "429"} <= set(operation["responses"])
