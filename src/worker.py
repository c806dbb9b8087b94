"""The Celery worker of ``JOB_BACKEND=celery`` (issue 15, item 2)::

    celery -A src.worker worker -Q clips,live -c 2 --pool=prefork   # clip nodes
    celery -A src.worker worker -Q encodes -c 1 --pool=prefork      # encode nodes

Flask's "Celery background tasks" pattern: a Celery app bound to the Flask app of
``create_app()`` (same environment as the API nodes), each task inside its app context. The
Flask app is built once per worker *process* (``worker_process_init``, or the first task of a
solo/threads pool), not in the prefork parent: PyMongo clients and the app's scheduler threads
do not survive a fork (DESIGN.md). The periodic work those apps schedule (cleanup, orphan
sweep, live sweep) stays once per interval across every API process and worker: the cleanup's
Redis slot ``cleanup:slot:{n}`` and the live sweep's leases (src/services/cleanup_service.py,
live_service.py).

A delivered task (:func:`run_delivered`) runs only while its record is its own
(``job_records.check_owned``) and under the video's run lock ``joblock:{video_id}`` (Redis,
:data:`LOCK_TTL_SECONDS`, refreshed with the heartbeat every :data:`BEAT_SECONDS`), so one job
never runs twice at once: a copy (Redis transport redelivery) waits for the lock and ends when
a live run keeps it. A task redelivered after its worker process died (``acks_late`` +
``reject_on_worker_lost``) finds the record still ``processing`` under its job id: it takes the
lock once the dead run's has expired and **restarts the job** — the jobs are idempotent (files
named by the job id, written under temporary names and renamed when whole, the folder emptied
of everything else when the job finishes; a redelivered encode phase re-reads the fetched WebM)
so the user still gets the clip. A job may run :data:`MAX_RUNS` times: a second death (a poison
input killing its worker) ends it ``failed`` JOB_INTERRUPTED, through the same reaper the
recovery uses, instead of a loop.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from celery.signals import worker_process_init

from .config import load_config
from .services.celery_backend import TASK_NAME, check_settings, make_celery
from .services.job_messages import job_of

log = logging.getLogger("yt_downloader.worker")

LOCK_TTL_SECONDS = 20
BEAT_SECONDS = 5
MAX_RUNS = 2
RUN_RECORD_SECONDS = 86400

_settings = {**load_config(), "JOB_BACKEND": "celery"}
check_settings(_settings)  # ConfigError (no CELERY_BROKER_URL...) before Celery starts
celery = make_celery(_settings)
_flask: dict[int, Any] = {}  # pid → the Flask app of that worker process


def flask_app():
    """This process's Flask app (``create_app()`` from the environment, ``JOB_BACKEND`` forced to
    ``celery`` so a handed-off phase goes to the ``encodes`` queue), built on first use."""
    pid = os.getpid()
    if pid not in _flask:
        from .app import create_app

        _flask.clear()
        _flask[pid] = create_app({"JOB_BACKEND": "celery"})
        log.info("worker process %d: app ready", pid)
    return _flask[pid]


@worker_process_init.connect
def _build_app(**_kwargs) -> None:
    flask_app()


@celery.task(name=TASK_NAME, bind=True)
def run_job(self, ref, video_id: str, job_id: str, lane: str = "clip") -> str:
    """The task: run job ``job_id`` of ``video_id`` (``ref``: its function, as
    src/services/job_messages.py writes it) in an app context.
    Returns what happened (``ran``, ``superseded``, ``busy``, ``interrupted``) for the log."""
    app = flask_app()
    with app.app_context():
        return run_delivered(app, ref, video_id, job_id, lane)


def run_delivered(app, ref, video_id: str, job_id: str, lane: str) -> str:
    """One delivery of a job (the module docstring's rules). Run records
    ``jobrun:{job_id}:{lane}`` (a hash: ``runs``, ``pid``, ``host``) tell how many times this
    phase was started and by which process."""
    from .services import job_records
    from .services.jobs import JobCancelled

    client = app.extensions["yt"]["redis"]
    try:
        job_records.check_owned(video_id, job_id)
    except JobCancelled:
        log.info("job %s for video %s: the record is no longer its own; not run", job_id,
                 video_id)
        return "superseded"
    lock = client.lock(f"joblock:{video_id}", timeout=LOCK_TTL_SECONDS, thread_local=False,
                       blocking_timeout=LOCK_TTL_SECONDS + 2)
    if not lock.acquire():
        log.warning("job %s for video %s: another run holds its lock; this copy ends", job_id,
                    video_id)
        return "busy"
    try:
        return _run_locked(app, client, lock, job_of(ref), video_id, job_id, lane)
    finally:
        try:
            lock.release()
        except Exception:  # expired meanwhile: nothing to release
            pass


def _run_locked(app, client, lock, fn, video_id: str, job_id: str, lane: str) -> str:
    from .logging_setup import bind_job_id, reset_job_id
    from .services import job_records, jobs, progress_cache
    from .services.jobs import JobCancelled

    try:  # again: the wait for the lock may have outlived the record's ownership
        job_records.check_owned(video_id, job_id)
    except JobCancelled:
        return "superseded"
    key = f"jobrun:{job_id}:{lane}"
    runs = client.hincrby(key, "runs", 1)
    client.hset(key, mapping={"pid": os.getpid(), "host": socket.gethostname()})
    client.expire(key, RUN_RECORD_SECONDS)
    if runs > MAX_RUNS:
        _give_up(client, video_id, job_id)
        return "interrupted"
    if runs > 1:
        log.warning("job %s for video %s: redelivered after its worker died; restarting (run "
                    "%d of %d)", job_id, video_id, runs, MAX_RUNS)
    stop = threading.Event()
    beater = threading.Thread(target=_beat, args=(client, lock, video_id, job_id, stop),
                              name="job-heartbeat", daemon=True)
    progress_cache.beat(client, video_id, job_id)
    beater.start()
    token = bind_job_id(job_id)
    started = time.monotonic()
    log.info("job %s (%s lane) for video %s started in worker pid %d", job_id, lane, video_id,
             os.getpid())
    backend = app.extensions["yt"]["jobs"]
    after = None
    try:
        fn(video_id, job_id)
        after = backend.pop_next(video_id, job_id)
    except Exception:  # the job records its own failure; this is a last resort
        log.exception("job %s for video %s crashed", job_id, video_id)
    finally:
        backend.pop_next(video_id, job_id)
        stop.set()
        beater.join(timeout=BEAT_SECONDS)
        if after is not None:
            backend.enqueue(video_id, job_id, after, "encode")  # the queued heartbeat too
        else:
            progress_cache.clear_heartbeat(client, video_id, job_id)
        jobs.log_end(app, video_id, job_id, lane, time.monotonic() - started,
                     final=after is None)
        reset_job_id(token)
    return "ran"


def _beat(client, lock, video_id: str, job_id: str, stop: threading.Event) -> None:
    """Refresh the heartbeat and the run lock while the job runs."""
    from .services import progress_cache

    while not stop.wait(BEAT_SECONDS):
        try:
            progress_cache.beat(client, video_id, job_id)
            lock.reacquire()
        except Exception:  # Redis briefly away, or the lock lost: say so, keep beating
            log.warning("heartbeat of job %s for video %s failed", job_id, video_id,
                        exc_info=True)


def _give_up(client, video_id: str, job_id: str) -> None:
    """A job whose runs keep dying: drop its heartbeat and reap it (JOB_INTERRUPTED, partial
    files removed) as the recovery does; if its claim is younger than the heartbeat TTL the
    next recovery pass or status request reaps it (it has no heartbeat any more)."""
    from .data import videos
    from .errors import ApiError
    from .extensions import db
    from .services import download_service, encoding_service, progress_cache

    log.error("job %s for video %s died %d times; ending it as interrupted", job_id, video_id,
              MAX_RUNS)
    progress_cache.clear_heartbeat(client, video_id, job_id)
    doc = videos.get(db(), video_id)
    if doc is None:
        return
    reap = encoding_service.reap_if_dead if doc.get("source_type") == "upload" \
        else download_service.reap_if_dead
    try:
        reap(doc)
    except ApiError:  # deleted meanwhile
        pass
