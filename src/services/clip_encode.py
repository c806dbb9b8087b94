"""The ≥1440p MP4 clip: fetched as WebM on a clip worker, encoded to H.265 MP4 in the encode lane.

MP4 above 1080p exists on YouTube only as VP9/AV1 WebM (README, "How a clip is fetched" 4). The
clip job fetches the WebM segment on its clip worker, then hands the encode phase to the job
pool's encode lane (src/services/jobs.py) and frees the worker: every encode, of an upload or of
a clip, runs in that lane, so at most ``MAX_CONCURRENT_ENCODES`` run at once and a waiting encode
never holds a clip worker (issue 11). While it waits the clip shows phase ``encoding`` at 0 %.

Deviation from the spec's fixed "lossless": measured here, 5 s of 1440p lossless x265 took 30 s
and 107 MB (17 × the source); crf 20 gives 4 MB (README, Deviations). The encode is bounded by
``encode_time_limit`` (src/media/encode.py); over it the clip ends ``failed`` ``ENCODE_TIMEOUT``.

The clip's record is written by src/services/download_service.py, which hands its ``finish`` and
``fail`` functions over (so this module does not import it back).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from functools import partial
from pathlib import Path

from ..extensions import jobs, redis, setting
from ..media import segment
from ..media.errors import MediaError
from ..media.ffmpeg import FFmpegError, FFmpegTimeout
from ..media.probe import InvalidMediaError
from . import job_records, progress_cache
from .encoding_service import encode_within_limit
from .jobs import JobCancelled

log = logging.getLogger(__name__)

CODEC = "h265"


def webm_path(out_path: str) -> str:
    """Where the fetched WebM segment of the job writing ``out_path`` lies until encoded."""
    return out_path.rsplit(".", 1)[0] + ".source.webm"


def fetch_and_hand_off(doc: dict, plan, start: float, end: float, out_path: str, on_progress,
                       job_id: str, timeout: float, extras, finish: Callable,
                       fail: Callable) -> None:
    """Clip lane: fetch the WebM segment ``start``–``end`` (seconds) next to ``out_path`` within
    ``timeout`` wall seconds, then queue :func:`run_encode_phase` in the encode lane.

    ``extras``: the clip's :class:`~src.services.clip_extras.Extras` (subtitles to embed in
    the MP4 once encoded). ``finish(video_id, job_id, doc, mp4_path, width, height,
    encoded=True, extras=extras)`` records the finished clip,
    ``fail(video_id, job_id, code, message)`` a failure. Raises what ``segment.fetch_segment``
    raises (MediaError, JobCancelled) before anything is handed off; the partial WebM is
    removed then, so the clip job can extract the info again and call this once more when a
    media URL had expired (403/410, ``MediaError.status``; src/services/download_service.py).
    """
    video_id = str(doc["_id"])
    source = webm_path(out_path)
    try:
        segment.fetch_segment(plan, start, end, source, on_progress=on_progress, timeout=timeout)
    except BaseException:
        _remove(source)
        raise
    progress_cache.set_progress(redis(), video_id, {"current_phase": "encoding",
                                                    "download_progress": 100,
                                                    "encoding_progress": 0})
    jobs().hand_off(video_id, job_id, partial(
        run_encode_phase, out_path=out_path, width=plan.width, height=plan.height,
        extras=replace(extras, container="mp4"), finish=finish, fail=fail))


def run_encode_phase(video_id: str, job_id: str, out_path: str, width, height, extras,
                     finish: Callable, fail: Callable) -> None:
    """Encode lane: encode the fetched WebM to H.265 MP4 (``{job_id}.mp4`` beside it) with the
    clip's ``quality_preset`` (default ``HIGHRES_MP4_PRESET``), within its time limit, add the
    subtitles (``extras.on_cut``), and record the outcome through ``finish``/``fail``. The WebM
    is removed in every case."""
    source = webm_path(out_path)
    try:
        doc = job_records.check_owned(video_id, job_id)
    except JobCancelled:
        _remove(source)
        return
    mp4_path = out_path.rsplit(".", 1)[0] + ".mp4"
    preset = doc.get("quality_preset") or setting("HIGHRES_MP4_PRESET")
    try:
        encode_within_limit(video_id, job_id, source, mp4_path, CODEC, preset)
        extras.on_cut(Path(mp4_path))
    except JobCancelled:
        log.warning("video %s: job %s lost ownership; stopped", video_id, job_id)
        return
    except FFmpegTimeout as exc:
        fail(video_id, job_id, "ENCODE_TIMEOUT", str(exc))
        return
    except MediaError as exc:
        fail(video_id, job_id, exc.code, exc.message)
        return
    except (FFmpegError, InvalidMediaError) as exc:
        log.warning("video %s: job %s could not encode the clip: %s", video_id, job_id, exc)
        fail(video_id, job_id, "FFMPEG_FAILED", "Encoding the clip to MP4 failed.")
        return
    except Exception:
        log.exception("video %s: job %s failed unexpectedly while encoding", video_id, job_id)
        fail(video_id, job_id, "UNKNOWN_ERROR", "Unexpected error while encoding the clip.")
        return
    finally:
        _remove(source)
    finish(video_id, job_id, doc, mp4_path, width, height, encoded=True, extras=extras)


def _remove(path: str) -> None:
    with suppress(FileNotFoundError):
        os.remove(path)
