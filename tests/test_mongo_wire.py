"""scripts/mongo_wire.py (the mongomock-backed MongoDB wire server, a test double) with the real
PyMongo driver: CRUD, errors as PyMongo types, cursors, processes sharing one store, a SIGKILL
of the store with ``--dump``, and the app's own flows over the wire."""
from __future__ import annotations

import socket
import struct
import subprocess
import sys
import textwrap

import bson
import pytest
from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure
from pymongo.write_concern import WriteConcern

from scripts.mongo_wire import ROOT, MongoWireServer


@pytest.fixture(scope="module")
def server():
    with MongoWireServer() as srv:
        yield srv


@pytest.fixture
def db(server, request):
    client = MongoClient(server.uri, serverSelectionTimeoutMS=3000, tz_aware=True)
    name = "wire_" + request.node.name[:40]
    yield client[name]
    client.drop_database(name)
    client.close()


def test_handshake_and_server_info(db):
    assert db.client.admin.command("ping")["ok"] == 1.0
    hello = db.client.admin.command("hello")
    assert hello["isWritablePrimary"] and hello["maxWireVersion"] >= 9 and "setName" not in hello
    assert db.client.server_info()["version"].startswith("7.")
    with pytest.raises(OperationFailure) as err:
        db.command("noSuchCommand")
    assert err.value.code == 59


def test_crud_round_trip(db):
    ids = db.items.insert_many([{"n": i, "tag": "odd" if i % 2 else "even"} for i in range(10)])
    assert len(ids.inserted_ids) == 10
    assert db.items.find_one({"n": 3}, {"_id": 0}) == {"n": 3, "tag": "odd"}
    r = db.items.update_many({"tag": "odd"}, {"$set": {"seen": True}, "$inc": {"n": 100}})
    assert (r.matched_count, r.modified_count) == (5, 5)
    assert db.items.update_one({"n": 0}, {"$set": {"n": 0}}).modified_count == 0
    up = db.items.update_one({"n": 50}, {"$set": {"tag": "new"}}, upsert=True)
    assert up.upserted_id is not None and db.items.find_one({"_id": up.upserted_id})["n"] == 50
    assert db.items.replace_one({"n": 50}, {"n": 51}).modified_count == 1
    assert db.items.delete_one({"n": 51}).deleted_count == 1
    assert db.items.delete_many({"seen": True}).deleted_count == 5
    assert sorted(db.items.distinct("n")) == [0, 2, 4, 6, 8]
    assert db.items.count_documents({}) == 5 and db.items.estimated_document_count() == 5


def test_find_one_and_update_returns_after_and_upserts(db):
    db.jobs.insert_one({"_id": 1, "status": "pending"})
    doc = db.jobs.find_one_and_update({"_id": 1, "$or": [{"status": {"$in": ["pending"]}}]},
                                      {"$set": {"status": "processing", "job_id": "j1"}},
                                      return_document=ReturnDocument.AFTER)
    assert doc == {"_id": 1, "status": "processing", "job_id": "j1"}
    assert db.jobs.find_one_and_update({"_id": 1, "status": "pending"},
                                       {"$set": {"job_id": "j2"}}) is None   # lost the race
    before = db.jobs.find_one_and_update({"_id": 1}, {"$set": {"status": "done"}},
                                         projection={"status": 1})
    assert before == {"_id": 1, "status": "processing"}
    made = db.jobs.find_one_and_update({"_id": 2}, {"$set": {"x": 1}}, upsert=True,
                                       return_document=ReturnDocument.AFTER)
    assert made == {"_id": 2, "x": 1}
    assert db.jobs.find_one_and_delete({"_id": 2}) == {"_id": 2, "x": 1}
    assert db.jobs.count_documents({}) == 1


def test_unique_index_raises_duplicate_key_error(db):
    assert db.users.create_index("email", unique=True) == "email_1"
    db.users.create_index("expires_at", expireAfterSeconds=0)
    db.users.create_index([("user_id", ASCENDING), ("created_at", DESCENDING)])
    info = db.users.index_information()
    assert info["email_1"]["unique"] and info["expires_at_1"]["expireAfterSeconds"] == 0
    assert info["user_id_1_created_at_-1"]["key"] == [("user_id", 1), ("created_at", -1)]
    db.users.insert_one({"email": "a@example.com"})
    db.users.insert_one({"email": "b@example.com"})
    with pytest.raises(DuplicateKeyError) as err:
        db.users.insert_one({"email": "a@example.com"})
    assert err.value.code == 11000
    with pytest.raises(DuplicateKeyError):
        db.users.update_one({"email": "b@example.com"}, {"$set": {"email": "a@example.com"}})
    with pytest.raises(DuplicateKeyError):
        db.users.find_one_and_update({"email": "b@example.com"},
                                     {"$set": {"email": "a@example.com"}})
    assert db.users.count_documents({}) == 2
    db.users.drop_index("user_id_1_created_at_-1")
    assert "user_id_1_created_at_-1" not in db.users.index_information()
    with pytest.raises(OperationFailure):
        db.users.drop_index("nope_1")


def test_sort_skip_limit_count_and_cursors(db):
    db.v.insert_many([{"n": i, "even": i % 2 == 0} for i in range(250)])
    top = [d["n"] for d in db.v.find({"even": True}).sort("n", DESCENDING).skip(1).limit(3)]
    assert top == [246, 244, 242]
    assert [d["n"] for d in db.v.find().sort([("even", 1), ("n", 1)]).limit(2)] == [1, 3]
    assert len(list(db.v.find().batch_size(7))) == 250            # firstBatch + getMore
    assert db.v.count_documents({"even": True}) == 125
    assert db.v.count_documents({"even": True}, skip=120, limit=10) == 5
    assert db.v.count_documents({"n": {"$gte": 0}}, limit=1) == 1
    assert list(db.v.aggregate([{"$match": {"n": {"$lt": 3}}}, {"$group": {
        "_id": None, "total": {"$sum": "$n"}}}])) == [{"_id": None, "total": 3}]
    cursor = db.v.find().batch_size(5)
    next(cursor)
    cursor.close()                                                # killCursors
    assert "v" in db.list_collection_names() and db.name in db.client.list_database_names()
    db.v.drop()
    assert "v" not in db.list_collection_names()


def test_unacknowledged_write_and_legacy_op_query(server, db):
    db.get_collection("w", write_concern=WriteConcern(w=0)).insert_one({"fire": "forget"})
    assert db.w.find_one({"fire": "forget"}) is not None        # moreToCome: no reply, applied
    cmd = bson.encode({"isMaster": 1})
    body = struct.pack("<i", 0) + b"admin.$cmd\0" + struct.pack("<ii", 0, -1) + cmd
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(struct.pack("<iiii", 16 + len(body), 7, 0, 2004) + body)
        header = sock.recv(16)
        length, _, response_to, opcode = struct.unpack("<iiii", header)
        data = b""
        while len(data) < length - 16:
            data += sock.recv(length - 16 - len(data))
    reply = bson.decode(data[20:])
    assert (opcode, response_to) == (1, 7) and reply["ismaster"] and reply["ok"] == 1.0


def test_two_processes_share_one_store(server, db):
    db.shared.insert_one({"from": "parent"})
    child = textwrap.dedent(f"""
        from pymongo import MongoClient
        db = MongoClient({server.uri!r})[{db.name!r}]
        assert db.shared.find_one({{"from": "parent"}}) is not None
        db.shared.insert_one({{"from": "child"}})
        print(db.shared.count_documents({{}}))
    """)
    out = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2" and db.shared.find_one({"from": "child"}) is not None


@pytest.mark.slow
def test_store_process_killed_and_restarted_keeps_acknowledged_writes(tmp_path):
    srv = MongoWireServer(dump=str(tmp_path / "store.bson"), subprocess=True).start()
    try:
        client = MongoClient(srv.uri, serverSelectionTimeoutMS=5000)
        client.app.users.create_index("email", unique=True)
        client.app.users.insert_one({"email": "kept@example.com"})
        srv.stop(crash=True)                                     # SIGKILL of the store process
        port = srv.port
        assert srv.start().port == port                          # same port, same URI
        assert client.app.users.find_one({"email": "kept@example.com"}) is not None
        with pytest.raises(DuplicateKeyError):                   # the index survived too
            client.app.users.insert_one({"email": "kept@example.com"})
        client.close()
    finally:
        srv.stop()


@pytest.mark.slow
def test_app_flows_over_the_wire(server, make_app, auth_factory, source_server):
    """register, login, save a clip, download it (a real job claims it with findAndModify),
    status and list, with the app's MongoDB behind the wire server."""
    uri = server.uri + "/ytd_wire_app"
    app = make_app(MONGODB_URI=uri, DOWNLOAD_WAIT_SECONDS=60)
    assert app.extensions["yt"]["db"].client.address == ("127.0.0.1", server.port)
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    again = client.post("/api/auth/register", json={"email": user["email"], "password": "x" * 12})
    assert again.status_code == 409, again.json          # DuplicateKeyError over the wire → 409
    r = client.post("/api/video/save", headers=auth.public_headers(user), json={
        "url": source_server.mp4_url, "start_time": 10, "end_time": 13, "user_id": user["id"]})
    assert r.status_code == 201, r.json
    video_id = r.json["video_id"]
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"])
    assert r.status_code == 200 and len(r.data) > 10_000
    status = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
    assert status["status"] == "completed" and status["file_available"] is True
    listed = client.get("/api/video/list", headers=user["headers"]).json["videos"]
    assert [v["video_id"] for v in listed] == [video_id]
    assert client.get("/api/health").json["checks"]["mongodb"]["ok"] is True
    other = MongoClient(server.uri)                              # another client sees it all
    assert other.ytd_wire_app.videos.find_one()["status"] == "completed"
    assert other.ytd_wire_app.users.count_documents({"email": user["email"]}) == 1
    other.drop_database("ytd_wire_app")
    other.close()
