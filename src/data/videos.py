"""The ``videos`` collection: clip requests (and, later, encode requests) and their job state.

Job ownership is a ``job_id`` written atomically when a job claims a record; every later write of
that job is conditional on it, so a stale job (one whose process died and was replaced) can never
overwrite the state of its successor.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, Optional

import pymongo
from pymongo import ReturnDocument

from . import object_id

#: Statuses from which a new job may start (spec statuses + ``expired`` from the cleanup).
RESTARTABLE = ("pending", "completed", "failed", "expired")
#: ``live_phase`` of a stream clip the live resolver still places (src/services/live_service.py).
LIVE_PHASES = ("resolving", "waiting_for_vod")


def insert(db, doc: dict) -> str:
    """Insert a new video document (``created_at`` is set here); return its id as a string."""
    doc = {**doc, "created_at": datetime.now(timezone.utc)}
    return str(db.videos.insert_one(doc).inserted_id)


def get(db, video_id) -> Optional[dict]:
    """The document with this id, or None (also for a malformed id)."""
    oid = object_id(video_id)
    return db.videos.find_one({"_id": oid}) if oid else None


def list_for_user(db, user_id, uploads: bool = False, limit: int = 500) -> list[dict]:
    """The user's clips (or, with ``uploads``, encode requests), newest first."""
    kind = {"$eq": "upload"} if uploads else {"$ne": "upload"}
    return list(db.videos.find({"user_id": object_id(user_id), "source_type": kind})
                .sort([("created_at", pymongo.DESCENDING), ("_id", pymongo.DESCENDING)])
                .limit(limit))  # MongoDB keeps milliseconds: ties are broken by insertion order


def clip_filter(user_id, words: Iterable[str] = (), status: Optional[str] = None,
                channel_id: Optional[str] = None, youtube_video_id: Optional[str] = None,
                since: Optional[datetime] = None, until: Optional[datetime] = None) -> dict:
    """The MongoDB filter of the user's clips (no uploads) that match the clip list's query
    (issue 17, item 4): each of ``words`` found, case-insensitively and literally (a ``$regex``
    of the escaped word), in ``additional_message``, ``video_info.title`` or the Nightbot
    user's ``name``/``displayName``; ``status``; ``channel_id`` (the clip's ``channel_id``, or
    ``nightbot_channel.providerId`` for stream clips saved before that field); the stream's
    ``youtube_video_id``; ``since`` ≤ ``created_at`` < ``until`` (aware datetimes)."""
    query: dict[str, Any] = {"user_id": object_id(user_id), "source_type": {"$ne": "upload"}}
    parts: list[dict[str, Any]] = []
    for word in words:
        pattern = {"$regex": re.escape(word), "$options": "i"}
        parts.append({"$or": [{name: pattern} for name in (
            "additional_message", "video_info.title", "nightbot_user.name",
            "nightbot_user.displayName")]})
    if channel_id:
        parts.append({"$or": [{"channel_id": channel_id},
                              {"nightbot_channel.providerId": channel_id}]})
    if parts:
        query["$and"] = parts
    if status:
        query["status"] = status
    if youtube_video_id:
        query["youtube_video_id"] = youtube_video_id
    if since or until:
        query["created_at"] = {**({"$gte": since} if since else {}),
                               **({"$lt": until} if until else {})}
    return query


def find_page(db, query: dict, skip: int, limit: int) -> list[dict]:
    """The documents matching ``query`` (from :func:`clip_filter`), newest first, after
    skipping ``skip`` and at most ``limit``."""
    return list(db.videos.find(query)
                .sort([("created_at", pymongo.DESCENDING), ("_id", pymongo.DESCENDING)])
                .skip(skip).limit(limit))


def count(db, query: dict) -> int:
    """How many documents match ``query``."""
    return db.videos.count_documents(query)


def stream_counts(db, query: dict, limit: int) -> list[dict]:
    """The documents matching ``query`` counted by ``youtube_video_id``: at most ``limit``
    ``{"youtube_video_id", "count"}`` (null for clips of other sources), the stream with the
    newest clip first (an aggregation: ``$match``, ``$group``, ``$sort``, ``$limit``)."""
    rows = db.videos.aggregate([
        {"$match": query},
        {"$group": {"_id": "$youtube_video_id", "count": {"$sum": 1},
                    "newest": {"$max": "$created_at"}}},
        {"$sort": {"newest": pymongo.DESCENDING, "_id": pymongo.ASCENDING}},
        {"$limit": limit}])
    return [{"youtube_video_id": row["_id"], "count": row["count"]} for row in rows]


def count_pending(db, user_id) -> int:
    """How many of the user's videos are ``pending`` (saved, not downloaded yet)."""
    return db.videos.count_documents({"user_id": object_id(user_id), "status": "pending"})


def processing_for_user(db, user_id) -> list[dict]:
    """The user's clips and encodes in ``processing`` (running or queued jobs), with the fields a
    liveness check needs (``_id``, ``status``, ``job_id``, ``job_claimed_at``)."""
    return list(db.videos.find({"user_id": object_id(user_id), "status": "processing"},
                               {"status": 1, "job_id": 1, "job_claimed_at": 1}))


def folder_owners(db, names: Iterable[str]) -> dict[str, dict]:
    """Folder name → the record owning that folder, for the names some record owns: by its
    ``folder`` field, or (records made before random folder names) by its id. Each record has
    ``_id``, ``source_type``, ``status``, ``folder``, ``file_path``, ``input_file_path``."""
    wanted = set(names)
    ids = [oid for oid in map(object_id, wanted) if oid]
    fields = {"source_type": 1, "status": 1, "folder": 1, "file_path": 1, "input_file_path": 1}
    owners: dict[str, dict] = {}
    for doc in db.videos.find({"$or": [{"folder": {"$in": list(wanted)}},
                                       {"_id": {"$in": ids}}]}, fields):
        if doc.get("folder") in wanted:
            owners[doc["folder"]] = doc
        if str(doc["_id"]) in wanted:
            owners.setdefault(str(doc["_id"]), doc)
    return owners


def update(db, video_id, fields: dict, job_id: Optional[str] = None,
           status: Optional[str] = None) -> bool:
    """``$set`` fields; when ``job_id`` is given, only while that job still owns the record, and
    when ``status`` is given, only while the record has that status (so of several processes
    failing the same job, exactly one succeeds). Returns True when a document was updated."""
    query: dict[str, Any] = {"_id": object_id(video_id)}
    if job_id is not None:
        query["job_id"] = job_id
    if status is not None:
        query["status"] = status
    return db.videos.update_one(query, {"$set": fields}).modified_count == 1


def claim(db, video_id, job_id: str, fields: dict,
          from_statuses: Iterable[str] = RESTARTABLE,
          stale_job_id: Optional[str] = None) -> Optional[dict]:
    """Atomically move a video to ``processing`` under ``job_id`` and return the updated document.

    The claim succeeds when the status is one of ``from_statuses``, or when the record is held by
    ``stale_job_id`` (a job known to be dead). Returns None when another job holds it.
    """
    allowed: list[dict[str, Any]] = [{"status": {"$in": list(from_statuses)}}]
    if stale_job_id:
        allowed.append({"status": "processing", "job_id": stale_job_id})
    update = {"$set": {**fields, "status": "processing", "job_id": job_id, "error_message": None,
                       "error_code": None}}
    return db.videos.find_one_and_update({"_id": object_id(video_id), "$or": allowed}, update,
                                         return_document=ReturnDocument.AFTER)


def _stream_filter(user_id, channel_id: Optional[str]) -> dict:
    """The owner's clips saved through the stream save; with ``channel_id`` only that channel's
    (``channel_id``, or ``nightbot_channel.providerId`` for clips saved before that field)."""
    query: dict[str, Any] = {"user_id": object_id(user_id), "origin": "stream"}
    if channel_id:
        query["$or"] = [{"channel_id": channel_id},
                        {"nightbot_channel.providerId": channel_id}]
    return query


def stream_clips(db, user_id, channel_id: Optional[str], limit: int,
                 words: Iterable[str] = ()) -> list[dict]:
    """The newest ``limit`` stream clips of the owner (and channel, see :func:`_stream_filter`),
    newest first; with ``words`` only those whose ``additional_message`` contains every word,
    case-insensitively (a ``$regex`` of the escaped word: the words are matched literally)."""
    query = _stream_filter(user_id, channel_id)
    matches = [{"additional_message": {"$regex": re.escape(word), "$options": "i"}}
               for word in words]
    if matches:
        query["$and"] = matches
    return list(db.videos.find(query)
                .sort([("created_at", pymongo.DESCENDING), ("_id", pymongo.DESCENDING)])
                .limit(limit))


def stream_clip(db, user_id, channel_id: Optional[str], video_id) -> Optional[dict]:
    """The stream clip ``video_id`` if it belongs to the owner (and channel), else None (also
    for a malformed id)."""
    oid = object_id(video_id)
    return db.videos.find_one({**_stream_filter(user_id, channel_id), "_id": oid}) if oid \
        else None


def delete(db, video_id, unless_status: Optional[str] = None) -> bool:
    """Remove the record ``video_id`` (not while its status is ``unless_status``, in the same
    operation, so no job can claim it in between); True when it was removed. A job still
    running on a removed record loses its writes (they are conditional on its ``job_id``) and
    its files are swept as orphans."""
    oid = object_id(video_id)
    query: dict[str, Any] = {"_id": oid}
    if unless_status:
        query["status"] = {"$ne": unless_status}
    return bool(oid) and db.videos.delete_one(query).deleted_count == 1


def processing(db) -> list[dict]:
    """Every record in ``processing`` (the dead-job recovery looks at each)."""
    return list(db.videos.find({"status": "processing"}))


def count_processing(db) -> int:
    """How many records are ``processing``, over every process (the health check)."""
    return db.videos.count_documents({"status": "processing"})


def outcome(db, video_id) -> Optional[dict]:
    """``{status, job_id, error_code}`` of the record, for the job pool's end-of-job log line."""
    oid = object_id(video_id)
    return db.videos.find_one({"_id": oid}, {"status": 1, "job_id": 1, "error_code": 1}) \
        if oid else None


def due_to_expire(db, now: datetime, upload_statuses: Iterable[str]) -> list[dict]:
    """Records whose ``expires_at`` ≤ ``now``: uploads in ``upload_statuses``, clips
    ``completed`` (src/services/cleanup_service.py)."""
    return list(db.videos.find({"expires_at": {"$lte": now}, "$or": [
        {"source_type": "upload", "status": {"$in": list(upload_statuses)}},
        {"source_type": {"$ne": "upload"}, "status": "completed"}]}))


def expire(db, doc: dict, now: datetime, fields: dict) -> bool:
    """Set ``fields`` on ``doc``'s record only if it is still as read (same status and
    ``job_id``, still due): False when a job claimed it meanwhile or another run expired it."""
    return db.videos.update_one({"_id": doc["_id"], "status": doc["status"],
                                 "job_id": doc.get("job_id"), "expires_at": {"$lte": now}},
                                {"$set": fields}).modified_count == 1


def fail_pending(db, video_id, fields: dict) -> bool:
    """Set ``fields`` (a failure) on a ``pending`` or ``failed`` record — a stream clip the live
    resolver gives up on; never one a job has claimed since."""
    return db.videos.update_one({"_id": object_id(video_id),
                                 "status": {"$in": ["pending", "failed"]}},
                                {"$set": fields}).modified_count == 1


def lease_due_check(db, phases: Iterable[str], now: datetime,
                    until: datetime) -> Optional[dict]:
    """Claim one stream clip in ``phases`` whose ``next_check_at`` ≤ ``now`` by moving its
    ``next_check_at`` to ``until`` (a lease: another process's sweep skips it); the record as it
    was, or None when none is due."""
    return db.videos.find_one_and_update(
        {"live_phase": {"$in": list(phases)}, "next_check_at": {"$lte": now}},
        {"$set": {"next_check_at": until}})


def public_clips(db, user_id, channel_id: str, words: Iterable[str] = (),
                 youtube_video_id: Optional[str] = None, skip: int = 0,
                 limit: int = 20) -> tuple[list[dict], int]:
    """The stream clips a channel's public page shows (issue 17, item 5), newest first:
    ``(at most limit documents after skipping skip, how many match in all)``.

    Only the owner's clips saved through the stream save (``origin: "stream"``) for
    ``channel_id`` (``channel_id``, or ``nightbot_channel.providerId`` for older clips: two
    owners may clip one channel, each sees only their own), whose stream and moment are known
    (a ``youtube_video_id``, and ``clip_position`` or ``start_time``: a clip still being placed
    has no link yet); with ``words`` only those whose ``additional_message`` contains every
    word, case-insensitively and literally (a ``$regex`` of the escaped word); with
    ``youtube_video_id`` only that stream's. A deleted clip (``!clipdelete``) has no record
    left, so it cannot appear. Only the fields a public view needs are read (no ``_id``, no
    user ids, no paths): ``youtube_video_id``, ``clip_position``, ``start_time``,
    ``clip_offset``, ``additional_message``, ``nightbot_user.displayName``, ``created_at``."""
    query = _stream_filter(user_id, channel_id)
    parts: list[dict[str, Any]] = [
        {"$or": query.pop("$or")},
        {"$or": [{"clip_position": {"$ne": None}}, {"start_time": {"$ne": None}}]},
        *({"additional_message": {"$regex": re.escape(word), "$options": "i"}}
          for word in words)]
    query["$and"] = parts
    query["youtube_video_id"] = youtube_video_id or {"$ne": None}
    fields = {"_id": 0, **{name: 1 for name in (
        "youtube_video_id", "clip_position", "start_time", "clip_offset",
        "additional_message", "nightbot_user.displayName", "created_at")}}
    found = db.videos.find(query, fields) \
        .sort([("created_at", pymongo.DESCENDING), ("_id", pymongo.DESCENDING)]) \
        .skip(skip).limit(limit)
    return list(found), db.videos.count_documents(query)
