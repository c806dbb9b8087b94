"""Roles (issue 17, item 6): an owner invites a moderator by email, the moderator accepts after
logging in and then downloads, edits and deletes the owner's clips — never the owner's tokens,
cookies or channel settings; an admin (``flask --app src.app set-role``) lists users and
disables an account, whose sessions and public tokens stop working at once.

Everything goes through the API and the CLI as users and operators use them; the store is read
to show what changed, and written only for what no request can do (a job's ``processing``, and
the instant inside a disable that a racing login or token could slip through).
"""
from __future__ import annotations

import json
import os

import jwt
import pytest
from bson import ObjectId

from src.data import sessions as sessions_data
from src.utils import token as tokens

YT = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
CHANNEL = "UC" + "r" * 22
COOKIES = ".youtube.com\tTRUE\t/\tTRUE\t4102444800\t__Secure-3PSID\towner-secret-value\n"


def _store(app):
    return app.extensions["yt"]["db"]


def invite(client, owner, email):
    return client.post("/api/team/invites", json={"email": email}, headers=owner["headers"])


def accept(client, user, token):
    return client.post("/api/team/invites/accept", json={"token": token},
                       headers=user["headers"])


def team_of(client, owner, moderator):
    """``moderator`` moderates ``owner``'s clips (an invite accepted); the membership id."""
    r = invite(client, owner, moderator["email"].upper())  # emails compare normalised
    assert r.status_code == 201, r.json
    r = accept(client, moderator, r.json["token"])
    assert r.status_code == 200, r.json
    return r.json["membership_id"]


def cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    body = json.loads(result.stdout.strip().splitlines()[-1]) if result.exit_code == 0 else None
    return result, body


def clip_answers(client, user, video_id):
    """Status codes of every clip route for ``user`` on ``video_id`` (none changes it)."""
    h = user["headers"]
    return {"status": client.get(f"/api/video/status/{video_id}", headers=h).status_code,
            "formats": client.get(f"/api/video/formats/{video_id}", headers=h).status_code,
            "play": client.post(f"/api/video/play/{video_id}", headers=h).status_code,
            "download": client.post(f"/api/video/download/{video_id}", headers=h,
                                    json={"resolution_preference": "720p"}).status_code,
            "subtitles": client.get(f"/api/video/download/{video_id}/subtitles/en.vtt",
                                    headers=h).status_code}


# --- invites, and what a moderator may do ------------------------------------------------------

def test_invite_accept_then_the_moderator_downloads_edits_and_deletes(app, client, auth,
                                                                      source_server):
    owner, mod = auth.user(), auth.user()
    video_id = auth.save_clip(owner, source_server.mp4_url, 1, 3)
    assert client.get(f"/api/video/status/{video_id}", headers=mod["headers"]).status_code == 403

    r = invite(client, owner, mod["email"].upper())
    assert r.status_code == 201, r.json
    sent = r.json
    assert sent["email"] == mod["email"] and sent["accept_url"].endswith(
        f"/#team?invite={sent['token']}") and sent["expires_at"].endswith("Z")
    stored = _store(app).memberships.find_one({"_id": ObjectId(sent["invite_id"])})
    assert stored["status"] == "invited" and stored["moderator_id"] is None
    assert sent["token"] not in json.dumps(stored, default=str)  # only its hash is kept
    listed = client.get("/api/team", headers=owner["headers"]).json
    assert listed["moderators"] == [] and [i["email"] for i in listed["invites"]] == [mod["email"]]
    # invited is not yet a moderator
    assert client.get(f"/api/video/list?owner={owner['id']}",
                      headers=mod["headers"]).status_code == 403

    r = accept(client, mod, sent["token"])
    assert r.status_code == 200, r.json
    assert r.json["owner_id"] == owner["id"] and r.json["email"] == owner["email"]
    listed = client.get("/api/team", headers=owner["headers"]).json
    assert listed["invites"] == [] and [(m["email"], m["moderator_id"]) for m in
                                        listed["moderators"]] == [(mod["email"], mod["id"])]
    assert [o["owner_id"] for o in client.get("/api/team", headers=mod["headers"])
            .json["owners"]] == [owner["id"]]

    # read: status and the owner's list
    r = client.get(f"/api/video/status/{video_id}", headers=mod["headers"])
    assert r.status_code == 200 and r.json["video_id"] == video_id
    r = client.get(f"/api/video/list?owner={owner['id']}", headers=mod["headers"])
    assert r.status_code == 200 and [v["video_id"] for v in r.json["videos"]] == [video_id]
    assert set(r.json) == {"videos"}  # ?owner= alone keeps the spec's answer
    assert client.get("/api/video/list", headers=mod["headers"]).json["videos"] == []  # own

    # download: a real job, the file served to the moderator
    done = auth.download(mod, video_id)
    assert done.status_code == 200 and done.data[4:8] == b"ftyp"
    doc = _store(app).videos.find_one({"_id": ObjectId(video_id)})
    assert doc["status"] == "completed" and str(doc["user_id"]) == owner["id"]
    file_path, thumb = doc["file_path"], doc["thumbnail_path"]
    folder = os.path.dirname(file_path)
    assert os.path.isfile(file_path) and thumb and os.path.isfile(thumb)
    assert client.post(f"/api/video/play/{video_id}", headers=mod["headers"]).status_code == 200

    # edit
    r = client.patch(f"/api/video/{video_id}", json={"additional_message": " fixed by mod "},
                     headers=mod["headers"])
    assert r.status_code == 200 and r.json["additional_message"] == "fixed by mod"
    doc = _store(app).videos.find_one({"_id": ObjectId(video_id)})
    assert doc["additional_message"] == "fixed by mod"
    assert doc["message_edited_by"] == {"user_id": mod["id"]}

    # delete: the record, the file, the thumbnail and the folder
    r = client.delete(f"/api/video/{video_id}", headers=mod["headers"])
    assert r.status_code == 200, r.json
    assert _store(app).videos.find_one({"_id": ObjectId(video_id)}) is None
    assert not os.path.exists(file_path) and not os.path.exists(thumb)
    assert not os.path.exists(folder)
    assert client.get(f"/api/video/status/{video_id}", headers=owner["headers"]).status_code \
        == 404
    assert client.delete(f"/api/video/{video_id}", headers=mod["headers"]).status_code == 404


def test_the_owner_edits_and_deletes_too_and_a_running_job_is_not_deleted(app, client, auth):
    owner = auth.user()
    video_id = auth.save_clip(owner, YT, 10, 20)
    r = client.patch(f"/api/video/{video_id}", json={"additional_message": None},
                     headers=owner["headers"])
    assert r.status_code == 200 and r.json["additional_message"] is None
    # a job is working on it (what only a job leaves in the store)
    _store(app).videos.update_one({"_id": ObjectId(video_id)}, {"$set": {"status": "processing",
                                                                        "job_id": "running"}})
    r = client.delete(f"/api/video/{video_id}", headers=owner["headers"])
    assert r.status_code == 409 and r.json["code"] == "CLIP_PROCESSING"
    assert _store(app).videos.find_one({"_id": ObjectId(video_id)}) is not None
    _store(app).videos.update_one({"_id": ObjectId(video_id)}, {"$set": {"status": "failed"}})
    assert client.delete(f"/api/video/{video_id}", headers=owner["headers"]).status_code == 200
    assert _store(app).videos.count_documents({}) == 0
    for bad in ({}, {"additional_message": "x" * 501}, {"additional_message": 5}):
        r = client.patch(f"/api/video/{ObjectId()}", json=bad, headers=owner["headers"])
        assert r.status_code == 400 and r.json["code"] == "VALIDATION_ERROR"
    r = client.patch(f"/api/video/{ObjectId()}", json={"additional_message": "x"},
                     headers=owner["headers"])
    assert r.status_code == 404


def test_a_moderator_of_another_owner_and_a_stranger_get_403(app, client, auth):
    alice, bob, bobs_mod, stranger = auth.user(), auth.user(), auth.user(), auth.user()
    team_of(client, bob, bobs_mod)
    video_id = auth.save_clip(alice, YT, 10, 20)
    before = _store(app).videos.find_one({"_id": ObjectId(video_id)})
    for user in (bobs_mod, stranger, bob):
        assert set(clip_answers(client, user, video_id).values()) == {403}
        r = client.patch(f"/api/video/{video_id}", json={"additional_message": "mine now"},
                         headers=user["headers"])
        assert r.status_code == 403 and r.json["code"] == "FORBIDDEN"
        assert client.delete(f"/api/video/{video_id}", headers=user["headers"]).status_code \
            == 403
        r = client.get(f"/api/video/list?owner={alice['id']}", headers=user["headers"])
        assert r.status_code == 403 and r.json["code"] == "FORBIDDEN"
    after = _store(app).videos.find_one({"_id": ObjectId(video_id)})
    kept = ("user_id", "status", "additional_message", "file_path", "job_id")  # not what the
    assert {k: after.get(k) for k in kept} == {k: before.get(k) for k in kept}  # look-up adds
    # bob's moderator does see bob's clips
    bobs_clip = auth.save_clip(bob, YT, 30, 40)
    r = client.get(f"/api/video/list?owner={bob['id']}&q=", headers=bobs_mod["headers"])
    assert r.status_code == 200 and [v["video_id"] for v in r.json["videos"]] == [bobs_clip]


def test_after_removal_or_leaving_the_moderator_gets_403(app, client, auth):
    owner, mod, other = auth.user(), auth.user(), auth.user()
    membership = team_of(client, owner, mod)
    video_id = auth.save_clip(owner, YT, 10, 20)
    status = f"/api/video/status/{video_id}"
    assert client.get(status, headers=mod["headers"]).status_code == 200
    # nobody else can remove it (treated as unknown)
    r = client.delete(f"/api/team/members/{membership}", headers=other["headers"])
    assert r.status_code == 404
    r = client.delete(f"/api/team/members/{membership}", headers=owner["headers"])
    assert r.status_code == 200 and r.json["outcome"] == "removed"
    assert client.get(status, headers=mod["headers"]).status_code == 403
    assert client.patch(f"/api/video/{video_id}", json={"additional_message": "late"},
                        headers=mod["headers"]).status_code == 403
    assert _store(app).memberships.count_documents({}) == 0
    assert client.get("/api/team", headers=mod["headers"]).json["owners"] == []
    # invited again, then the moderator leaves
    membership = team_of(client, owner, mod)
    assert client.get(status, headers=mod["headers"]).status_code == 200
    r = client.delete(f"/api/team/members/{membership}", headers=mod["headers"])
    assert r.status_code == 200 and r.json["outcome"] == "left"
    assert client.get(status, headers=mod["headers"]).status_code == 403
    assert client.delete(f"/api/team/members/{membership}",
                         headers=owner["headers"]).status_code == 404
    # an owner withdraws a pending invite: its token stops working
    pending = invite(client, owner, "later@example.com").json
    r = client.delete(f"/api/team/members/{pending['invite_id']}", headers=owner["headers"])
    assert r.status_code == 200
    later = auth.user(email="later@example.com")
    assert accept(client, later, pending["token"]).status_code == 404


def test_a_moderator_cannot_change_the_owners_tokens_cookies_or_channels(app, client, auth):
    owner, mod = auth.user(), auth.user()
    team_of(client, owner, mod)
    owners_token = client.get("/api/auth/token/public", headers=owner["headers"]).json
    assert client.put("/api/auth/cookies", json={"cookies": COOKIES},
                      headers=owner["headers"]).status_code == 200
    assert client.put(f"/api/channels/{CHANNEL}", json={"offset": 15},
                      headers=owner["headers"]).status_code == 200

    # tokens: a moderator's public token is the moderator's own; the owner's stay the owner's
    mine = client.get("/api/auth/token/public", headers=mod["headers"]).json
    assert jwt.decode(mine["token"], options={"verify_signature": False})["user_id"] == mod["id"]
    listed = client.get("/api/auth/tokens/public", headers=mod["headers"]).json["tokens"]
    assert [t["jti"] for t in listed] == [mine["jti"]]
    r = client.delete(f"/api/auth/tokens/public/{owners_token['jti']}", headers=mod["headers"])
    assert r.status_code == 404
    r = client.post("/api/video/save", headers={"Authorization": f"Bearer {owners_token['token']}"},
                    json={"url": YT, "start_time": 1, "end_time": 5})
    assert r.status_code == 201  # still working
    r = client.post("/api/video/save", headers={"Authorization": f"Bearer {mine['token']}"},
                    json={"url": YT, "start_time": 1, "end_time": 5, "user_id": owner["id"]})
    assert r.status_code == 403 and r.json["code"] == "TOKEN_USER_MISMATCH"

    # cookies: the moderator sees and deletes only their own (none)
    assert client.get("/api/auth/cookies", headers=mod["headers"]).json["exists"] is False
    assert client.delete("/api/auth/cookies", headers=mod["headers"]).status_code == 404
    assert client.put("/api/auth/cookies", json={"cookies": COOKIES.replace("owner", "mod")},
                      headers=mod["headers"]).status_code == 200
    assert _store(app).cookies.count_documents({"user_id": ObjectId(owner["id"])}) == 1
    assert client.get("/api/auth/cookies", headers=owner["headers"]).json["count"] == 1

    # channels: the moderator's PUT makes the moderator's own settings
    assert client.get("/api/channels", headers=mod["headers"]).json["channels"] == []
    assert client.put(f"/api/channels/{CHANNEL}", json={"offset": 99},
                      headers=mod["headers"]).status_code == 200
    assert client.get(f"/api/channels/{CHANNEL}", headers=owner["headers"]).json["offset"] == 15


def test_accept_with_another_email_is_403_and_a_used_token_404(app, client, auth):
    owner, invitee, other = auth.user(), auth.user(), auth.user()
    first = invite(client, owner, invitee["email"]).json
    r = accept(client, other, first["token"])
    assert r.status_code == 403 and r.json["code"] == "INVITE_EMAIL_MISMATCH"
    # inviting a pending email again makes a new token; the old one stops working
    again = invite(client, owner, invitee["email"])
    assert again.status_code == 201 and again.json["invite_id"] == first["invite_id"]
    assert accept(client, invitee, first["token"]).status_code == 404
    assert accept(client, invitee, again.json["token"]).status_code == 200
    r = accept(client, invitee, again.json["token"])
    assert r.status_code == 404 and r.json["code"] == "NOT_FOUND"
    assert accept(client, invitee, "no-such-token").status_code == 404
    r = invite(client, owner, invitee["email"])
    assert r.status_code == 409 and r.json["code"] == "ALREADY_MODERATOR"
    r = invite(client, owner, owner["email"].upper())
    assert r.status_code == 409 and r.json["code"] == "SELF_INVITE"
    r = invite(client, owner, "not an email")
    assert r.status_code == 400 and r.json["code"] == "VALIDATION_ERROR"
    assert accept(client, invitee, "").status_code == 400
    assert _store(app).memberships.count_documents({"status": "active"}) == 1


# --- admin ----------------------------------------------------------------------------------

def test_admin_lists_disables_and_enables_accounts(app, client, auth):
    admin, victim, bystander = auth.user(), auth.user(), auth.user()
    result, body = cli(app, "set-role", "--email", admin["email"].upper(), "--role", "admin")
    assert result.exit_code == 0, result.output
    assert body == {"user_id": admin["id"], "email": admin["email"], "role": "admin"}
    public = client.get("/api/auth/token/public", headers=victim["headers"]).json["token"]
    assert client.get(f"/api/video/save/stream/{public}/dQw4w9WgXcQ?t=60").status_code == 201

    r = client.get("/api/admin/users", headers=admin["headers"])
    assert r.status_code == 200 and r.json["total"] == 3
    assert [(u["email"], u["role"], u["disabled"]) for u in r.json["users"]] == [
        (admin["email"], "admin", False), (victim["email"], "user", False),
        (bystander["email"], "user", False)]
    assert "password_hash" not in r.get_data(as_text=True)
    assert r.json["users"][0]["created_at"].endswith("Z")
    r = client.get("/api/admin/users?page=2&per_page=2", headers=admin["headers"])
    assert [u["id"] for u in r.json["users"]] == [bystander["id"]] and r.json["page"] == 2

    victims_mod = auth.user()
    team_of(client, victim, victims_mod)
    victims_clip = auth.save_clip(victim, YT, 10, 20)
    status = f"/api/video/status/{victims_clip}"
    assert client.get(status, headers=victims_mod["headers"]).status_code == 200
    r = client.post(f"/api/admin/users/{victim['id']}/disable", headers=admin["headers"])
    assert r.status_code == 200, r.json
    assert r.json["disabled"] is True and r.json["sessions_revoked"] == 1 \
        and r.json["public_tokens_revoked"] == 2  # Nightbot's and the one save_clip used
    assert _store(app).users.find_one({"_id": ObjectId(victim["id"])})["disabled"] is True
    assert _store(app).sessions.count_documents({"user_id": ObjectId(victim["id"])}) == 0
    assert client.get(status, headers=victims_mod["headers"]).status_code == 403  # team too
    # at once: the private token, the public token, a new login
    assert client.get("/api/auth/me", headers=victim["headers"]).status_code == 401
    r = client.get(f"/api/video/save/stream/{public}/dQw4w9WgXcQ?t=90")
    assert r.status_code == 401
    login = {"email": victim["email"], "password": victim["password"]}
    r = client.post("/api/auth/login", json=login)
    assert r.status_code == 403 and r.json["code"] == "ACCOUNT_DISABLED"
    r = client.post("/api/auth/login", json={**login, "password": "wrong password"})
    assert r.status_code == 401 and r.json["code"] == "INVALID_CREDENTIALS"  # tells nothing
    assert client.get("/api/auth/me", headers=bystander["headers"]).status_code == 200
    listed = client.get("/api/admin/users", headers=admin["headers"]).json["users"]
    assert [u["disabled"] for u in listed] == [False, True, False, False]

    r = client.post(f"/api/admin/users/{victim['id']}/enable", headers=admin["headers"])
    assert r.status_code == 200 and r.json["disabled"] is False
    assert client.get(status, headers=victims_mod["headers"]).status_code == 200
    r = client.post("/api/auth/login", json=login)
    assert r.status_code == 200
    assert client.get("/api/auth/me", headers={
        "Authorization": f"Bearer {r.json['token']}"}).status_code == 200
    r = client.get(f"/api/video/save/stream/{public}/dQw4w9WgXcQ?t=120")
    assert r.status_code == 401  # revoked tokens stay revoked

    r = client.post(f"/api/admin/users/{admin['id']}/disable", headers=admin["headers"])
    assert r.status_code == 409 and r.json["code"] == "CANNOT_DISABLE_SELF"
    for action in ("disable", "enable"):
        r = client.post(f"/api/admin/users/{ObjectId()}/{action}", headers=admin["headers"])
        assert r.status_code == 404
    assert client.get("/api/admin/users?per_page=0", headers=admin["headers"]).status_code == 400


def test_non_admins_get_403_and_set_role_user_demotes(app, client, auth):
    admin, user = auth.user(), auth.user()
    routes = [("get", "/api/admin/users"), ("post", f"/api/admin/users/{admin['id']}/disable"),
              ("post", f"/api/admin/users/{admin['id']}/enable")]
    for method, path in routes:
        r = getattr(client, method)(path, headers=user["headers"])
        assert r.status_code == 403 and r.json["code"] == "FORBIDDEN", path
    assert cli(app, "set-role", "--email", admin["email"], "--role", "admin")[0].exit_code == 0
    assert client.get("/api/admin/users", headers=admin["headers"]).status_code == 200
    result, body = cli(app, "set-role", "--email", admin["email"], "--role", "user")
    assert result.exit_code == 0 and body["role"] == "user"
    assert "role" not in _store(app).users.find_one({"_id": ObjectId(admin["id"])})
    assert client.get("/api/admin/users", headers=admin["headers"]).status_code == 403
    result, _ = cli(app, "set-role", "--email", "nobody@example.com", "--role", "admin")
    assert result.exit_code == 1 and "no user" in result.output
    result, _ = cli(app, "set-role", "--email", admin["email"], "--role", "root")
    assert result.exit_code == 2 and "root" in result.output
    assert _store(app).users.count_documents({"role": {"$exists": True}}) == 0


def test_a_disable_racing_a_login_or_a_token_leaves_nothing_usable(app, client, auth,
                                                                   monkeypatch):
    """The instants inside a disable: the flag is set, the sessions and tokens are not revoked
    yet (or a login opened its session just after they were)."""
    victim = auth.user()
    public = client.get("/api/auth/token/public", headers=victim["headers"]).json["token"]
    _store(app).users.update_one({"_id": ObjectId(victim["id"])}, {"$set": {"disabled": True}})
    r = client.get(f"/api/video/save/stream/{public}/dQw4w9WgXcQ?t=60")
    assert r.status_code == 401 and r.json["code"] == "ACCOUNT_DISABLED"
    r = client.post("/api/video/save", headers={"Authorization": f"Bearer {public}"},
                    json={"url": YT, "start_time": 1, "end_time": 5})
    assert r.status_code == 401 and r.json["code"] == "ACCOUNT_DISABLED"
    # a session missing from the cache is checked against the account
    app.extensions["yt"]["sessions"].evict([tokens.token_hash(victim["token"])])
    r = client.get("/api/auth/me", headers=victim["headers"])
    assert r.status_code == 401 and r.json["code"] == "ACCOUNT_DISABLED"
    # a login whose first check passed while the disable ran: its session does not survive
    _store(app).users.update_one({"_id": ObjectId(victim["id"])}, {"$unset": {"disabled": ""}})
    real_create = sessions_data.create

    def create_then_disabled(db, *args, **kwargs):
        real_create(db, *args, **kwargs)
        db.users.update_one({"_id": ObjectId(victim["id"])}, {"$set": {"disabled": True}})

    monkeypatch.setattr(sessions_data, "create", create_then_disabled)
    before = _store(app).sessions.count_documents({"user_id": ObjectId(victim["id"])})
    r = client.post("/api/auth/login", json={"email": victim["email"],
                                             "password": victim["password"]})
    assert r.status_code == 403 and r.json["code"] == "ACCOUNT_DISABLED"
    assert _store(app).sessions.count_documents({"user_id": ObjectId(victim["id"])}) == before


# --- every new route needs a token; the document ------------------------------------------

NEW_ROUTES = [("patch", f"/api/video/{'a' * 24}"), ("delete", f"/api/video/{'a' * 24}"),
              ("post", "/api/team/invites"), ("get", "/api/team"),
              ("post", "/api/team/invites/accept"), ("delete", f"/api/team/members/{'b' * 24}"),
              ("get", "/api/admin/users"), ("post", f"/api/admin/users/{'c' * 24}/disable"),
              ("post", f"/api/admin/users/{'c' * 24}/enable")]


@pytest.mark.parametrize("method,path", NEW_ROUTES)
def test_every_new_route_needs_a_private_token(client, auth, method, path):
    r = getattr(client, method)(path, json={})
    assert r.status_code == 401 and r.json["code"] == "MISSING_TOKEN"
    public = auth.public_headers(auth.user())  # a public token is not a private one
    r = getattr(client, method)(path, json={}, headers=public)
    assert r.status_code == 401 and r.json["code"] == "INVALID_TOKEN"


def test_the_document_names_the_new_operations(client):
    paths = client.get("/openapi.json").json["paths"]
    for method, path in NEW_ROUTES:
        templated = path.replace("a" * 24, "{video_id}").replace("b" * 24, "{membership_id}") \
            .replace("c" * 24, "{user_id}")
        operation = paths[templated][method]
        assert operation["security"] == [{"bearer": []}] and "401" in operation["responses"]
    listed = paths["/api/video/list"]["get"]["parameters"]
    assert "owner" in {p["name"] for p in listed}

