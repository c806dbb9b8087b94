"""The command side of scripts/mongo_wire.py: MongoDB commands run on a mongomock client.

A TEST DOUBLE, never for production (see scripts/mongo_wire.py). ``Store.run(db, command)``
takes a decoded command document (first key = command name, kind-1 document sequences already
merged in) and returns the reply document: ``ok: 1`` and the command's fields, or ``ok: 0,
errmsg, code, codeName`` (unknown command → 59 CommandNotFound); write commands report
per-statement failures in ``writeErrors`` (duplicate key → code 11000, so PyMongo raises
DuplicateKeyError). Every command runs under one lock (mongomock is not thread-safe).

``dump``: after each write the whole store is written to that file (BSON records, one per
collection: ``{db, coll, indexes, docs}``; atomic rename) and loaded back at construction.
"""
from __future__ import annotations

import itertools
import os
import threading
from datetime import datetime, timezone

import bson
import mongomock
from bson.int64 import Int64
from mongomock.filtering import filter_applies
from pymongo.errors import PyMongoError

# MongoDB 7.0; PyMongo 4.20 needs >= 9 (common.MIN_SUPPORTED_WIRE_VERSION)
MAX_WIRE_VERSION = 21
WRITES = {"insert", "update", "delete", "findandmodify", "create", "createindexes",
          "dropindexes", "drop", "dropdatabase"}


class CommandError(Exception):
    """A command failure sent back as ``{ok: 0, errmsg, code, codeName}``."""

    def __init__(self, errmsg: str, code: int = 2, code_name: str = "BadValue"):
        super().__init__(errmsg)
        self.code, self.code_name = code, code_name


def _error(exc: Exception) -> dict:
    """``{errmsg, code[, codeName, keyPattern, keyValue]}`` for any exception a command raised."""
    out = {"errmsg": getattr(exc, "_message", None) or str(exc),
           "code": getattr(exc, "code", None) or 2}
    if isinstance(exc, CommandError):
        out["codeName"] = exc.code_name
    details = getattr(exc, "details", None) or {}
    out.update({k: details[k] for k in ("keyPattern", "keyValue") if k in details})
    return out


def _write_reply(reply: dict, errors: list) -> dict:
    return {**reply, "writeErrors": errors} if errors else reply


class Store:
    """One mongomock client; ``run(db, command) -> reply`` executes a command under one lock."""

    def __init__(self, dump: str | None = None):
        self.client, self.dump = mongomock.MongoClient(), dump
        self.lock = threading.Lock()
        self.cursors: dict[int, tuple[str, list]] = {}
        self.cursor_ids = itertools.count(1)
        if dump and os.path.exists(dump):
            self._load()

    def run(self, db_name: str, cmd: dict) -> dict:
        """Execute ``cmd`` (first key = command name) in ``db_name``; return the reply document."""
        name = next(iter(cmd), "")
        handler = getattr(self, "cmd_" + name.lower(), None)
        if handler is None:
            return {"ok": 0.0, "errmsg": f"no such command: '{name}'", "code": 59,
                    "codeName": "CommandNotFound"}
        with self.lock:
            try:
                reply = handler(self.client[db_name], cmd[name], cmd)
            except (PyMongoError, CommandError, NotImplementedError, ValueError, TypeError,
                    KeyError) as exc:
                return {"ok": 0.0, **_error(exc)}
            if self.dump and name.lower() in WRITES:
                self._save()
        return {**reply, "ok": 1.0}

    # -- handshake and server information
    def cmd_hello(self, db, _arg, cmd) -> dict:
        return {"isWritablePrimary": True, "ismaster": True, "helloOk": True,
                "maxBsonObjectSize": 16 * 1024 * 1024, "maxMessageSizeBytes": 48_000_000,
                "maxWriteBatchSize": 100_000, "localTime": datetime.now(timezone.utc),
                "logicalSessionTimeoutMinutes": 30, "connectionId": 1, "minWireVersion": 0,
                "maxWireVersion": MAX_WIRE_VERSION, "readOnly": False}

    cmd_ismaster = cmd_hello

    def cmd_ping(self, db, _arg, cmd) -> dict:
        return {}

    cmd_endsessions = cmd_ping

    def cmd_buildinfo(self, db, _arg, cmd) -> dict:
        return {"version": "7.0.0", "versionArray": [7, 0, 0, 0], "gitVersion": "mongomock-wire",
                "bits": 64, "maxBsonObjectSize": 16 * 1024 * 1024}

    def cmd_connectionstatus(self, db, _arg, cmd) -> dict:
        return {"authInfo": {"authenticatedUsers": [], "authenticatedUserRoles": []}}

    # -- cursors
    def _cursor(self, ns: str, docs: list, batch_size=None, single=False) -> dict:
        """``{cursor: {firstBatch, id, ns}}``; the rest of ``docs`` waits for getMore."""
        size = len(docs) if batch_size is None or single else batch_size
        cursor_id = 0
        if len(docs) > size:
            cursor_id = next(self.cursor_ids)
            self.cursors[cursor_id] = (ns, docs[size:])
        return {"cursor": {"firstBatch": docs[:size], "id": Int64(cursor_id), "ns": ns}}

    def cmd_getmore(self, db, cursor_id, cmd) -> dict:
        if cursor_id not in self.cursors:
            raise CommandError(f"cursor id {cursor_id} not found", 43, "CursorNotFound")
        ns, docs = self.cursors.pop(cursor_id)
        size = cmd.get("batchSize") or len(docs)
        if len(docs) > size:
            self.cursors[cursor_id] = (ns, docs[size:])
        else:
            cursor_id = 0
        return {"cursor": {"nextBatch": docs[:size], "id": Int64(cursor_id), "ns": ns}}

    def cmd_killcursors(self, db, _coll, cmd) -> dict:
        ids = list(cmd.get("cursors", []))
        return {"cursorsKilled": [i for i in ids if self.cursors.pop(i, None)],
                "cursorsNotFound": [], "cursorsAlive": [], "cursorsUnknown": []}

    # -- reads
    def cmd_find(self, db, coll, cmd) -> dict:
        sort = list(cmd["sort"].items()) if cmd.get("sort") else None
        docs = list(db[coll].find(cmd.get("filter") or {}, cmd.get("projection") or None,
                                  skip=cmd.get("skip") or 0, limit=abs(cmd.get("limit") or 0),
                                  sort=sort))
        return self._cursor(f"{db.name}.{coll}", docs, cmd.get("batchSize"),
                            cmd.get("singleBatch", False))

    def cmd_count(self, db, coll, cmd) -> dict:
        opts = {k: cmd[k] for k in ("skip", "limit") if cmd.get(k)}
        return {"n": db[coll].count_documents(cmd.get("query") or {}, **opts)}

    def cmd_distinct(self, db, coll, cmd) -> dict:
        return {"values": db[coll].distinct(cmd["key"], cmd.get("query") or None)}

    def cmd_aggregate(self, db, coll, cmd) -> dict:
        if not isinstance(coll, str):
            raise CommandError("database-level aggregate is not supported by this test double",
                               115, "CommandNotSupported")
        docs = list(db[coll].aggregate(cmd.get("pipeline", [])))
        return self._cursor(f"{db.name}.{coll}", docs, cmd.get("cursor", {}).get("batchSize"))

    # -- writes: per-statement errors go to writeErrors, the command itself succeeds
    def cmd_insert(self, db, coll, cmd) -> dict:
        n, errors = 0, []
        for i, doc in enumerate(cmd.get("documents", [])):
            try:
                db[coll].insert_one(doc)
                n += 1
            except (PyMongoError, ValueError, TypeError) as exc:
                errors.append({"index": i, **_error(exc)})
                if cmd.get("ordered", True):
                    break
        return _write_reply({"n": n}, errors)

    def cmd_update(self, db, coll, cmd) -> dict:
        n = modified = 0
        upserted, errors = [], []
        for i, st in enumerate(cmd.get("updates", [])):
            q, u, upsert = st.get("q") or {}, st.get("u"), st.get("upsert", False)
            try:
                if isinstance(u, list):
                    raise CommandError("pipeline updates are not supported by this test double")
                if not u or not next(iter(u)).startswith("$"):
                    if st.get("multi"):
                        raise CommandError("multi update is not supported for replacement-style "
                                           "update", 9, "FailedToParse")
                    r = db[coll].replace_one(q, u or {}, upsert=upsert)
                else:
                    update = db[coll].update_many if st.get("multi") else db[coll].update_one
                    r = update(q, u, upsert=upsert, array_filters=st.get("arrayFilters"))
                n, modified = n + r.matched_count, modified + r.modified_count
                if r.upserted_id is not None:
                    n += 1
                    upserted.append({"index": i, "_id": r.upserted_id})
            except (PyMongoError, CommandError, ValueError, TypeError) as exc:
                errors.append({"index": i, **_error(exc)})
                if cmd.get("ordered", True):
                    break
        reply = {"n": n, "nModified": modified, **({"upserted": upserted} if upserted else {})}
        return _write_reply(reply, errors)

    def cmd_delete(self, db, coll, cmd) -> dict:
        n = 0
        for st in cmd.get("deletes", []):
            delete = db[coll].delete_one if st.get("limit") == 1 else db[coll].delete_many
            n += delete(st.get("q") or {}).deleted_count
        return {"n": n}

    def cmd_findandmodify(self, db, coll, cmd) -> dict:
        """``value`` (before, or after with ``new``) + ``lastErrorObject: {n, updatedExisting}``."""
        col, query, fields = db[coll], cmd.get("query") or {}, cmd.get("fields") or None
        sort = list(cmd["sort"].items()) if cmd.get("sort") else None
        existed = col.find_one(query, {"_id": 1}, sort=sort) is not None
        update = cmd.get("update")
        if cmd.get("remove"):
            value = col.find_one_and_delete(query, fields, sort=sort)
            return {"lastErrorObject": {"n": int(existed)}, "value": value}
        if isinstance(update, list):
            raise CommandError("pipeline updates are not supported by this test double")
        modify = col.find_one_and_update if update and next(iter(update)).startswith("$") \
            else col.find_one_and_replace
        value = modify(query, update or {}, fields, sort=sort, upsert=cmd.get("upsert", False),
                       return_document=bool(cmd.get("new")))
        n = int(existed or bool(cmd.get("upsert")))
        return {"lastErrorObject": {"n": n, "updatedExisting": existed}, "value": value}

    # -- collections, indexes, databases
    def cmd_create(self, db, coll, cmd) -> dict:
        if coll in db.list_collection_names():
            raise CommandError(f"Collection {db.name}.{coll} already exists.", 48,
                               "NamespaceExists")
        db.create_collection(coll)
        return {}

    def cmd_createindexes(self, db, coll, cmd) -> dict:
        before = len(db[coll].index_information()) if coll in db.list_collection_names() else 0
        for spec in cmd.get("indexes", []):
            opts = {k: v for k, v in spec.items() if k not in ("key", "v", "ns")}
            db[coll].create_index(list(spec["key"].items()), **opts)
        return {"numIndexesBefore": max(before, 1),
                "numIndexesAfter": len(db[coll].index_information()),
                "createdCollectionAutomatically": before == 0}

    def _indexes(self, col) -> list[dict]:
        return [{"v": 2, **info, "key": dict(info["key"]), "name": name}
                for name, info in col.index_information().items()]

    def cmd_listindexes(self, db, coll, cmd) -> dict:
        if coll not in db.list_collection_names():
            raise CommandError(f"ns does not exist: {db.name}.{coll}", 26, "NamespaceNotFound")
        return self._cursor(f"{db.name}.{coll}", self._indexes(db[coll]))

    def cmd_dropindexes(self, db, coll, cmd) -> dict:
        if coll not in db.list_collection_names():
            raise CommandError(f"ns not found {db.name}.{coll}", 26, "NamespaceNotFound")
        was, index = len(db[coll].index_information()), cmd.get("index")
        if index == "*":
            db[coll].drop_indexes()
        for one in ([] if index == "*" else index if isinstance(index, list) else [index]):
            one = list(one.items()) if isinstance(one, dict) else one
            try:
                db[coll].drop_index(one)
            except PyMongoError as exc:
                raise CommandError(f"index not found with name [{one}]", 27,
                                   "IndexNotFound") from exc
        return {"nIndexesWas": was}

    def cmd_drop(self, db, coll, cmd) -> dict:
        if coll not in db.list_collection_names():
            raise CommandError("ns not found", 26, "NamespaceNotFound")
        was = len(db[coll].index_information())
        db.drop_collection(coll)
        return {"ns": f"{db.name}.{coll}", "nIndexesWas": was}

    def cmd_dropdatabase(self, db, _arg, cmd) -> dict:
        self.client.drop_database(db.name)
        return {"dropped": db.name}

    def cmd_listcollections(self, db, _arg, cmd) -> dict:
        docs = [{"name": n, "type": "collection", "options": {}, "info": {"readOnly": False}}
                for n in db.list_collection_names()]
        docs = [d for d in docs if filter_applies(cmd.get("filter") or {}, d)]
        if cmd.get("nameOnly"):
            docs = [{"name": d["name"], "type": d["type"]} for d in docs]
        return self._cursor(f"{db.name}.$cmd.listCollections", docs)

    def cmd_listdatabases(self, db, _arg, cmd) -> dict:
        docs = [{"name": n, "sizeOnDisk": 0, "empty": False}
                for n in self.client.list_database_names()]
        docs = [d for d in docs if filter_applies(cmd.get("filter") or {}, d)]
        if cmd.get("nameOnly"):
            docs = [{"name": d["name"]} for d in docs]
        return {"databases": docs, "totalSize": 0}

    # -- persistence (--dump)
    def _save(self) -> None:
        """Write every collection (indexes + documents) to ``dump`` atomically."""
        records = []
        for db_name in self.client.list_database_names():
            db = self.client[db_name]
            for name in db.list_collection_names():
                indexes = [i for i in self._indexes(db[name]) if i["name"] != "_id_"]
                records.append(bson.encode({"db": db_name, "coll": name, "indexes": indexes,
                                            "docs": list(db[name].find())}))
        tmp = f"{self.dump}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(b"".join(records))
        os.replace(tmp, self.dump)

    def _load(self) -> None:
        with open(self.dump, "rb") as fh:
            for rec in bson.decode_all(fh.read()):
                db = self.client[rec["db"]]
                db.create_collection(rec["coll"])
                for spec in rec["indexes"]:
                    opts = {k: v for k, v in spec.items() if k not in ("key", "v")}
                    db[rec["coll"]].create_index(list(spec["key"].items()), **opts)
                if rec["docs"]:
                    db[rec["coll"]].insert_many(rec["docs"])
