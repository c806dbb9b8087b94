"""Building the MongoDB database and Redis client, with embedded stand-ins for a first run.

``MONGODB_URI`` unset → an in-process mongomock database; ``REDIS_URI`` unset → fakeredis. Both
stand-ins live only as long as the process and are meant for trying the service out, not for
production (the README says why). PyMongo clients are created with ``connect=False`` because
they are not fork-safe before gunicorn forks its workers.
"""
from __future__ import annotations

import pymongo
import redis
from pymongo.uri_parser import parse_uri

DEFAULT_DB_NAME = "yt_downloader"


def make_mongo_db(uri: str | None):
    """Return a ``Database`` for ``uri`` (database name from the URI path, default
    ``yt_downloader``), or a mongomock database when ``uri`` is empty."""
    if not uri:
        import mongomock

        return mongomock.MongoClient(tz_aware=True)[DEFAULT_DB_NAME]
    name = parse_uri(uri).get("database") or DEFAULT_DB_NAME
    client: pymongo.MongoClient[dict] = pymongo.MongoClient(
        uri, connect=False, tz_aware=True, serverSelectionTimeoutMS=5000)
    return client[name]


def make_redis(uri: str | None) -> redis.Redis:
    """Return a Redis client (``decode_responses=True``) for ``uri``, or fakeredis when empty."""
    if not uri:
        import fakeredis

        return fakeredis.FakeRedis(decode_responses=True)
    return redis.Redis.from_url(uri, decode_responses=True, socket_timeout=5,
                                socket_connect_timeout=5, health_check_interval=30)
