"""Jobs on Celery workers (``JOB_BACKEND=celery``, issue 15 item 2): the API side.

With this backend the API only enqueues: :meth:`CeleryBackend.submit` sends the task
``yt.run_job(fn_ref, video_id, job_id, lane)`` (task id = job id) to the queue of the job's lane
(:data:`QUEUES`: ``clips``, ``encodes``, ``live``); a worker (``celery -A src.worker worker``,
src/worker.py) reloads the record by its ids and runs the same job function inside an app
context, refreshing the heartbeat as the in-process pool does. Broker: ``CELERY_BROKER_URL``
(Redis or RabbitMQ); no result backend (outcomes are in the store, progress in Redis).

Delivery (Celery's documented settings): ``task_acks_late`` + ``task_reject_on_worker_lost``
so a task whose worker process was killed goes back to its queue, ``worker_prefetch_multiplier=1``
so a worker holds no more than it runs. A queued job has no process beating for it, so
:meth:`submit` sets its heartbeat for ``CELERY_QUEUE_WAIT_SECONDS`` (the task ``expires`` then
too): a job that no worker took by then is reaped as JOB_INTERRUPTED like any dead job.

Cancellation: the last task id of each video is kept in ``celery:job:{video_id}``; a new job on
the same video (a re-download with new preferences after the old job ended or was declared
dead) revokes the previous task, so a copy still queued (or redelivered) is discarded by the
workers. A running one stops by itself at its next progress step (``check_owned``). Celery keeps
revoked ids in each worker's memory: a worker started after the revoke does not know it, and
the task then ends at once because its record is no longer its own.

``submit_light`` (metadata look-ups) stays on threads of this process, and ``wait_briefly``
just sleeps: job_records.wait polls the record, which the worker updates.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..config import ConfigError
from ..errors import ApiError
from . import job_messages, progress_cache
from .jobs import LightTasks

log = logging.getLogger(__name__)

BACKENDS = ("threads", "celery")
TASK_NAME = "yt.run_job"
#: lane (src/services/jobs.py) → Celery queue. Live captures get a queue of their own: they wait
#: for the stream for up to 4 h (src/media/live.py MAX_WAIT) and would hold a clip worker.
QUEUES = {"clip": "clips", "encode": "encodes", "live": "live"}
#: Seconds ``celery:job:{video_id}`` (the video's last task id, for revoking it) is kept.
PREVIOUS_TASK_SECONDS = 7 * 86400


def check_settings(settings: dict) -> str:
    """The job backend ``JOB_BACKEND`` names (``threads`` | ``celery``). Raises
    :class:`src.config.ConfigError` for another value, for ``celery`` without
    ``CELERY_BROKER_URL``, or for a time limit that is not positive."""
    backend = (settings.get("JOB_BACKEND") or "threads").lower()
    if backend not in BACKENDS:
        raise ConfigError("JOB_BACKEND must be 'threads' or 'celery'")
    if backend == "celery" and not settings.get("CELERY_BROKER_URL"):
        raise ConfigError("CELERY_BROKER_URL is required with JOB_BACKEND=celery (e.g. "
                          "redis://127.0.0.1:6379/1 or amqp://user:password@host:5672//)")
    for name in ("CELERY_TASK_TIME_LIMIT_CLIP", "CELERY_TASK_TIME_LIMIT_ENCODE",
                 "CELERY_QUEUE_WAIT_SECONDS"):
        if float(settings.get(name) or 0) <= 0:
            raise ConfigError(f"{name} must be greater than 0")
    return backend


def time_limits(settings: dict) -> dict[str, float]:
    """Hard time limit (seconds) of a task per lane: ``CELERY_TASK_TIME_LIMIT_CLIP`` for clips,
    ``_ENCODE`` for encodes (uploads and the encode phase of ≥1440p clips), a live capture the
    clip limit plus its longest wait for the stream."""
    from ..media.live import MAX_WAIT

    clip = float(settings["CELERY_TASK_TIME_LIMIT_CLIP"])
    return {"clip": clip, "encode": float(settings["CELERY_TASK_TIME_LIMIT_ENCODE"]),
            "live": clip + MAX_WAIT}


def make_celery(settings: dict):
    """A Celery app for ``CELERY_BROKER_URL`` with the delivery settings of this module's
    docstring. The Redis transport's ``visibility_timeout`` (after which an unacknowledged
    task of a vanished worker is given to another) is the longest time limit plus 10 min, so a
    task still running is not handed out twice (a copy would find the run lock taken and end:
    src/worker.py)."""
    from celery import Celery
    from kombu import Queue

    limits = time_limits(settings)
    celery = Celery("yt_downloader", broker=settings["CELERY_BROKER_URL"])
    celery.conf.update(
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_ignore_result=True, task_serializer="json", accept_content=["json"],
        task_queues=[Queue(name) for name in QUEUES.values()], task_default_queue="clips",
        broker_transport_options={"visibility_timeout": int(max(limits.values()) + 600)},
        broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,  # the app logs to LOG_FILE and stderr itself
        worker_send_task_events=False, task_send_sent_event=False)
    return celery


class CeleryBackend:
    """The job backend of ``JOB_BACKEND=celery`` (:class:`src.services.jobs.JobBackend`):
    sends jobs to Celery queues. In a worker process it also keeps the phase a running job
    hands off (:meth:`hand_off`), which src/worker.py enqueues once the job's function returns.
    """

    def __init__(self, app, settings: dict, celery=None):
        self._app = app
        self._celery = celery
        self._celery_lock = threading.Lock()
        self._settings = settings
        self._limits = time_limits(settings)
        self._queue_wait = float(settings["CELERY_QUEUE_WAIT_SECONDS"])
        self._light = LightTasks(app)
        self._next: dict[tuple[str, str], Callable] = {}
        self._broker_redis: Any = None  # a Redis client for queue lengths (stats)

    @property
    def celery(self):
        """The Celery app tasks are sent with (made on first use: no connection at start)."""
        if self._celery is None:
            with self._celery_lock:  # concurrent first imports of celery race (ImportError)
                if self._celery is None:
                    self._celery = make_celery(self._settings)
        return self._celery

    @property
    def redis(self):
        return self._app.extensions["yt"]["redis"]

    def submit(self, video_id: str, job_id: str, fn: Callable[[str, str], None],
               lane: str = "clip") -> None:
        """Send ``fn(video_id, job_id)`` (a job function of src.services) to the queue of ``lane``
        and revoke the video's previous task, if another. Raises ApiError 503 when the broker
        is away (:meth:`enqueue`)."""
        self.enqueue(video_id, job_id, fn, lane)
        previous = self.redis.set(f"celery:job:{video_id}", job_id, ex=PREVIOUS_TASK_SECONDS,
                                  get=True)
        if previous and previous != job_id:
            self.celery.control.revoke(previous)
            log.info("video %s: task %s revoked (replaced by job %s)", video_id, previous, job_id)

    def enqueue(self, video_id: str, job_id: str, fn: Callable, lane: str) -> None:
        """Send one task for job ``job_id`` running ``fn`` (a job function, or the partial of a
        handed-off phase), written as JSON by :mod:`src.services.job_messages` (TypeError for
        what it cannot carry). Sets the queued heartbeat first (module docstring), so a worker
        that starts at once is never overwritten by it. Raises ApiError 503
        SERVICE_UNAVAILABLE when the broker cannot be reached; the claimed record then has no
        heartbeat and is reaped as JOB_INTERRUPTED (src/services/job_records.py)."""
        ref = job_messages.encode(fn)
        celery = self.celery  # before the heartbeat: a failure here leaves no 1 h heartbeat
        progress_cache.beat(self.redis, video_id, job_id, ttl=max(1, int(self._queue_wait)))
        limit = self._limits[lane]
        from kombu.exceptions import OperationalError

        try:
            celery.send_task(
                TASK_NAME, args=[ref, video_id, job_id, lane], task_id=job_id,
                queue=QUEUES[lane], time_limit=limit + 30, soft_time_limit=limit,
                expires=self._queue_wait)
        except (OperationalError, OSError) as exc:  # the broker is away (after kombu's retries)
            progress_cache.clear_heartbeat(self.redis, video_id, job_id)  # → reaped in 30 s
            log.error("job %s for video %s: not queued, the broker is away: %s", job_id,
                      video_id, exc)
            raise ApiError(503, "The job queue is not reachable; try again in a minute",
                           "SERVICE_UNAVAILABLE") from None
        except Exception:  # anything else: no heartbeat left behind (reaped in 30 s)
            progress_cache.clear_heartbeat(self.redis, video_id, job_id)
            raise
        log.info("job %s for video %s sent to queue %s", job_id, video_id, QUEUES[lane])

    def hand_off(self, video_id: str, job_id: str, fn: Callable[[str, str], None]) -> None:
        """From inside the running job: once its function returns, send ``fn`` to ``encodes``
        (done by the worker's task, :func:`src.worker.run_delivered`)."""
        self._next[video_id, job_id] = fn

    def pop_next(self, video_id: str, job_id: str):
        """The phase the job handed off during its run, or None (forgotten either way)."""
        return self._next.pop((video_id, job_id), None)

    def submit_light(self, fn: Callable, *args) -> None:
        """Run a short background task (metadata look-ups) on this process's threads."""
        self._light.submit(fn, *args)

    def wait_briefly(self, video_id: str, seconds: float) -> None:
        """Sleep ``seconds``: the job runs elsewhere; the caller reads the record again."""
        time.sleep(seconds)

    def stats(self) -> dict:
        """The shape of :meth:`JobPool.stats`: nothing runs in this process; ``queued`` per
        lane is the length of its queue when the broker is Redis (0 otherwise)."""
        queued = {lane: 0 for lane in QUEUES}
        broker = self._settings["CELERY_BROKER_URL"]
        if broker.startswith(("redis://", "rediss://")):
            try:
                if self._broker_redis is None:
                    import redis as redis_lib

                    self._broker_redis = redis_lib.Redis.from_url(broker, socket_timeout=2)
                queued = {lane: int(self._broker_redis.llen(name))
                          for lane, name in QUEUES.items()}
            except Exception:  # the broker is away: the health answer still comes
                log.warning("job stats: broker not reachable", exc_info=True)
        lanes = {lane: {"running": 0, "queued": queued[lane]} for lane in QUEUES}
        return {"running": 0, "queued": sum(queued.values()), "lanes": lanes}

    def shutdown(self, wait: bool = True) -> None:
        """Stop the light threads (queued jobs stay in the broker)."""
        self._light.shutdown(wait=wait)
