"""Clip the last seconds of any live source, while it is live (issue 14, item 3).

``POST /api/video/save/live`` saves a clip of a live stream whose moment is the request time
minus ``STREAM_DELAY_SECONDS``: it covers ``offset`` seconds before the moment and lasts
``duration``, a wall-clock window [t0, t1] stored as ``live_window``. Its job starts at once in
the pool's ``live`` lane (``MAX_CONCURRENT_CAPTURES``: a recording waits for the stream, so it
must not hold a clip worker) and records the window from the stream's live HLS media playlist
by ``EXT-X-PROGRAM-DATE-TIME`` (:func:`src.media.live.fetch_live`): phase ``recording`` with
``seconds_to_come`` while the stream has not produced the rest, then ``downloading``; the clip
is ``completed`` a few seconds after t1.

A source is live when yt-dlp says so (``live_status`` ``is_live``; its generic extractor says
so for an HLS playlist without ``EXT-X-ENDLIST`` and for a bare ``type="dynamic"`` MPD URL) or
when its DASH manifest is ``type="dynamic"`` (read by us: yt-dlp says nothing for an MPD found
in a page, :func:`is_live`); anything else is 400 NOT_LIVE. The file is
MP4 (stream copy); a live clip cannot be fetched again once its window has left the stream, so
a download of it only serves, joins or reports its one job (410 FILE_EXPIRED after expiry).
The dashboard's "Clip now" (src/web/static/js/clipnow.js) posts this route after the save
form's look-up said ``live_status`` ``is_live``.

When the HLS path cannot record the window (no combined HLS format, the window older than the
playlist, a refused playlist), a source with a live DASH manifest is recorded from it
(src/media/livedash.py: segments by availabilityStartTime and the segment template/timeline),
and a live YouTube stream from its sequence-number formats (:func:`_record`,
src/media/livesq.py: ``sq=N`` fragments from the head's ``X-Head-Seqnum``, ±1 fragment).

Stream clips saved from chat (``origin`` ``stream``) use the same job while their stream is
live (:func:`start_stream_capture`, called by the live resolver, src/services/live_service.py);
if it fails they wait for the VOD instead (src/services/vod_fallback.py).
"""
from __future__ import annotations

import logging
import os
import time
from datetime import timezone
from typing import Optional

from ..data import videos
from ..errors import ApiError
from ..extensions import db, redis, setting
from ..media import choice, guard, live, livedash, livesq
from ..media.errors import FORMAT_UNAVAILABLE, MediaError
from ..media.source import selector_ydl
from ..utils.validators import InvalidSourceURL, validate_source_url
from . import (
    download_service,
    folders,
    info_cache,
    job_records,
    progress_cache,
    public_token_service,
    video_service,
    vod_fallback,
)
from .jobs import JobCancelled

log = logging.getLogger(__name__)

#: Wall seconds a capture may take after its window ends (reloads, the last segment, the cut).
AFTER_WINDOW_SECONDS = 120
_HLS = ("m3u8", "m3u8_native")


def is_live(info: dict, probe: bool = False) -> bool:
    """yt-dlp's word: ``live_status`` ``is_live`` (or ``is_live``); with ``probe``, also a
    source whose DASH manifest is ``type="dynamic"`` (fetched through the egress guard:
    yt-dlp's generic extractor says ``is_live`` for a bare MPD URL, not for one it finds in a
    page's ``<video>``, ``_parse_html5_media_entries``)."""
    if info.get("live_status") == "is_live" or info.get("is_live") is True:
        return True
    found = _dash_format(info) if probe else None
    return found is not None and livedash.is_live_mpd(_manifest(found),
                                                      found.get("http_headers"))


def save_live(body: dict, token_claims: dict, now: Optional[float] = None) -> str:
    """Validate and store a live clip, start its job; return its id.

    ``body``: ``url``, ``user_id``, ``offset``/``duration`` (seconds), ``additional_message``;
    ``now``: the request time (POSIX seconds). Raises ApiError 400 INVALID_URL,
    VALIDATION_ERROR (unknown user, a duration over ``MAX_VIDEO_DURATION``), NOT_LIVE, 403
    TOKEN_USER_MISMATCH, 429 PENDING_CLIPS_LIMIT / TOO_MANY_JOBS, 507, and the media error of
    the look-up (422/500).
    """
    now = time.time() if now is None else now
    try:
        url, youtube_id = validate_source_url(body["url"], setting("ALLOWED_SOURCE_HOSTS"))
    except InvalidSourceURL as exc:
        raise ApiError(400, str(exc), "INVALID_URL", {"url": [str(exc)]}) from None
    if body["duration"] > setting("MAX_VIDEO_DURATION"):
        raise ApiError(400, "Invalid duration", "VALIDATION_ERROR", {"duration": [
            f"The clip may last at most {setting('MAX_VIDEO_DURATION'):g} s."]})
    user = video_service.owner(public_token_service.check_owner(token_claims,
                                                                body["user_id"]))
    try:
        info = info_cache.get_info(url, user_id=str(user["_id"]))
        if not is_live(info, probe=True):
            raise ApiError(400, "This source is not live now; save a clip of it with "
                                "POST /api/video/save.", "NOT_LIVE", {"url": ["not live"]})
        _recordable(info)
    except MediaError as exc:
        raise video_service.media_api_error(exc.code, exc.message) from None
    t0 = now - setting("STREAM_DELAY_SECONDS") - body["offset"]
    window = {"t0": t0, "t1": t0 + body["duration"]}
    video_id = video_service.new_clip(
        user, url, youtube_id, None, None, fill_formats=False,
        additional_message=body.get("additional_message"), origin="live", live_window=window,
        clip_offset=body["offset"])  # the moment is this far into the clip (its thumbnail)
    try:
        job_records.start(video_id, str(user["_id"]), {
            "format_preference": "mp4", "resolution_preference": "best",
            "folder": folders.new_name()}, run_capture, lane="live")
    except ApiError:  # 429 TOO_MANY_JOBS / 507: no clip without its job
        videos.delete(db(), video_id)
        raise
    log.info("video %s: live clip of %s, %.0f s from %.0f s ago", video_id, url,
             body["duration"], now - t0)
    return video_id


def _plan(info: dict) -> choice.FetchPlan:
    """The best combined HLS format of a live info (YouTube's and most live sources' formats
    carry audio and video in one playlist). Raises MediaError(FORMAT_UNAVAILABLE)."""
    formats = [f for f in info.get("formats") or []
               if f.get("protocol") in _HLS and not f.get("has_drm")]
    chosen = choice.select(selector_ydl(), formats, "b[height<=?1080]/b")
    if chosen is None or chosen.get("requested_formats"):
        raise MediaError(FORMAT_UNAVAILABLE, "This live stream offers no HLS playlist with "
                                             "audio and video together.")
    return choice.plan_of(chosen, False)


def _dash_format(info: dict) -> Optional[dict]:
    """The DASH format of ``info`` (yt-dlp's ``http_dash_segments`` with a manifest URL, no
    DRM) whose manifest the live DASH recorder reads, or None."""
    return next((f for f in info.get("formats") or [] if isinstance(f, dict)
                 and f.get("protocol") == livedash.PROTOCOL and not f.get("has_drm")
                 and str(_manifest(f)).startswith(("http://", "https://"))), None)


def _manifest(fmt: dict) -> str:
    return str(fmt.get("manifest_url") or fmt.get("url") or "")


def _recordable(info: dict) -> None:
    """Raise MediaError(FORMAT_UNAVAILABLE) unless a live recorder can take ``info``: a
    combined HLS format (:func:`_plan`) or a DASH manifest (:func:`_dash_format`)."""
    if _dash_format(info) is None:
        _plan(info)


def run_capture(video_id: str, job_id: str) -> None:
    """The job (``live`` lane): record the clip's window, then record the file or the failure
    (the download service's, so a live clip ends like any other)."""
    try:
        doc = job_records.check_owned(video_id, job_id)
    except JobCancelled:
        return

    def on_progress(values: dict) -> None:
        job_records.check_owned(video_id, job_id)
        progress_cache.set_progress(redis(), video_id, values)
        progress_cache.beat(redis(), video_id, job_id)

    window = doc["live_window"]
    folder = folders.path_of(doc)
    os.makedirs(folder, exist_ok=True)
    out_path = os.path.join(folder, f"{job_id}.mp4")
    try:
        with guard.metered():
            summary = _record(doc, window, out_path, on_progress)
    except JobCancelled:
        log.warning("video %s: job %s lost ownership; stopped", video_id, job_id)
        return
    except MediaError as exc:
        _failed(video_id, job_id, doc, exc.code, exc.message)
        return
    except Exception:
        log.exception("video %s: job %s failed unexpectedly", video_id, job_id)
        _failed(video_id, job_id, doc, "UNKNOWN_ERROR",
                "Unexpected error while recording the clip.")
        return
    videos.update(db(), video_id, {"live_ended_early": summary["ended"]}, job_id=job_id)
    download_service.finish(video_id, job_id, doc, out_path, summary["width"], summary["height"])


def _record(doc: dict, window: dict, out_path: str, on_progress) -> dict:
    """Record the window into ``out_path``, trying in turn: the live HLS playlist by its dates
    (:func:`src.media.live.fetch_live`, exact); a live DASH manifest (``type="dynamic"``) by
    its availabilityStartTime and segment timeline (:func:`src.media.livedash.fetch_live_dash`,
    exact); a live YouTube stream's sequence-number formats
    (:func:`src.media.livesq.fetch_live_sq`, ±1 fragment; a second extraction with yt-dlp's
    ``live_from_start``, cached apart). A path is tried when the source offers it and the one
    before it is missing or failed (the window older than its playlist, a refused playlist).
    Returns the recorder's summary; raises the last path's MediaError."""
    user_id = str(doc["user_id"])
    info = info_cache.get_info(doc["url"], user_id=user_id)

    def timeout() -> float:
        return max(0.0, window["t1"] - time.time()) + AFTER_WINDOW_SECONDS

    failed: Optional[MediaError] = None
    try:
        plan = _plan(info)
    except MediaError as exc:
        plan, failed = None, exc
    if plan is not None:
        try:
            return live.fetch_live(plan, window["t0"], window["t1"], out_path,
                                   on_progress=on_progress, timeout=timeout())
        except MediaError as exc:
            failed = exc
    dash = _dash_format(info)
    if dash is not None:
        if plan is not None:
            log.info("video %s: the live HLS path failed (%s); recording the DASH manifest",
                     doc["_id"], failed and failed.code)
        try:
            return livedash.fetch_live_dash(_manifest(dash), window["t0"], window["t1"],
                                            out_path, dash.get("http_headers"),
                                            on_progress=on_progress, timeout=timeout())
        except MediaError as exc:
            failed = exc
    found = _sq_plan(info, doc["url"], user_id)
    if found is None:
        assert failed is not None
        raise failed
    log.info("video %s: the live HLS/DASH paths failed (%s); recording by sequence number",
             doc["_id"], failed and failed.code)
    return livesq.fetch_live_sq(found[0], window["t0"], window["t1"], out_path, found[1],
                                on_progress=on_progress, timeout=timeout())


def _sq_plan(info: dict, url: str, user_id: str):
    """``(FetchPlan, target duration)`` of a live YouTube stream's sequence-number formats,
    or None (not YouTube, not live, or that extraction offers none or fails)."""
    if info.get("extractor_key") != "Youtube" or not is_live(info):
        return None
    try:
        return livesq.plan_for(info_cache.get_info(url, user_id=user_id, live_from_start=True))
    except MediaError as exc:
        log.info("live from start: extraction failed (%s)", exc.code)
        return None


def _failed(video_id: str, job_id: str, doc: dict, code: str, message: str) -> None:
    """A live clip's failure is final; a stream clip's sends it to the VOD instead."""
    if doc.get("origin") == "stream":
        vod_fallback.to_vod(doc, code, message, job_id=job_id)
    else:
        download_service.fail(video_id, job_id, code, message)


def window_of(doc: dict) -> dict:
    """The wall-clock window ``{"t0", "t1"}`` (POSIX seconds) of a stream clip saved from chat:
    its moment (``clip_moment_at``, the request time moved by the chat's ``±N``) minus the
    viewers' ``clip_delay`` and ``clip_offset``, lasting ``clip_duration`` — the same place
    :func:`src.services.live_service.place` finds in the recording, on the wall clock."""
    moment = doc["clip_moment_at"]
    if moment.tzinfo is None:  # MongoDB gives naive UTC datetimes back
        moment = moment.replace(tzinfo=timezone.utc)
    t0 = moment.timestamp() - float(doc.get("clip_delay") or 0) - float(doc.get("clip_offset")
                                                                         or 0)
    return {"t0": t0, "t1": t0 + float(doc["clip_duration"])}


def start_stream_capture(doc: dict, info: dict, placed: dict) -> Optional[dict]:
    """Start recording a stream clip (``origin`` ``stream``, saved from chat) from its stream
    while it is live (issue 14, item 2), instead of waiting for the VOD.

    ``doc``: the pending clip; ``info``: its stream's (live) info; ``placed``: the resolver's
    fields for it (its place in the recording, kept for the VOD fallback). The job is claimed
    from ``pending`` with the window (:func:`window_of`) and runs :func:`run_capture` in the
    ``live`` lane. Returns None when it started (or another job holds the clip), else the
    reason it could not — ``{"code", "message"}``: no live format we record
    (FORMAT_UNAVAILABLE), the window ends too far ahead, TOO_MANY_JOBS, INSUFFICIENT_STORAGE
    — and the caller keeps the clip waiting for the VOD with that reason.
    """
    window = window_of(doc)
    try:
        if info.get("extractor_key") != "Youtube":  # else the sequence numbers may do
            _recordable(info)
        if window["t1"] - time.time() > live.MAX_WAIT:
            raise MediaError(FORMAT_UNAVAILABLE, "The clip ends too far ahead to record live.")
        job_records.start(str(doc["_id"]), str(doc["user_id"]), {
            **placed, "live_window": window, "live_phase": None, "next_check_at": None,
            "format_preference": "mp4", "resolution_preference": "best",
            "folder": doc.get("folder") or folders.new_name()}, run_capture, lane="live",
            from_statuses=("pending",))
    except MediaError as exc:
        return {"code": exc.code, "message": exc.message}
    except ApiError as exc:  # 429 TOO_MANY_JOBS, 507
        return {"code": exc.code, "message": exc.message}
    log.info("video %s: stream clip recorded live, window %.0f-%.0f", doc["_id"], window["t0"],
             window["t1"])
    return None

