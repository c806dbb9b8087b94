"""Fetching ONLY the requested segment of a video, then cutting it with stream copy (no re-encode).

Three paths, the same cut:

- **ranged** (MP4 sources: progressive ``moov`` or DASH ``sidx``; WebM with Cues, at the front
  or the end): the bytes that hold the segment are fetched over several HTTP connections at
  once (:mod:`src.media.rangefetch`; sites throttle each connection) into a local *sparse* copy
  of each stream — the index (of a progressive ``moov``, only the per-sample entries of the
  chunks that hold the segment; a WebM's Cues), the first bytes ffmpeg probes, the segment
  (MP4 samples or fragments, WebM clusters), at their original offsets
  (:mod:`src.media.rangedcopy`, :mod:`src.media.webmcopy`) — and ffmpeg cuts that copy
  locally. ffmpeg reads the same packets it would read over HTTP (tests compare them packet
  by packet).
- **fragments** (a DASH fragment list, ``http_dash_segments``, whole segments or byte ranges;
  an HLS media playlist, ``m3u8_native``/``m3u8``, read by :mod:`src.media.hls` inside the
  guard session — MPEG-TS, fMP4, AES-128, ``EXT-X-BYTERANGE``): the init (if any) and the
  segments that cover the clip, fetched in parallel into one local file per stream, AES-128
  decrypted (:mod:`src.media.fragmentcopy`), cut locally the same way (joined MPEG-TS with
  ``-itsoffset``, see :func:`ffmpeg_args`). A start at or past the end of a complete
  (``EXT-X-ENDLIST``) list is SEGMENT_OUT_OF_RANGE.
- **direct** (anything else: a list or playlist the fragment path declines — master playlist,
  SAMPLE-AES, a clip across ``EXT-X-DISCONTINUITY``, a live playlist asked for past its end,
  packed audio —, WebM without Cues — live —, a server without Range support, an MP4 whose
  ``moov`` follows its ``mdat``): ffmpeg reads the URLs itself.

``-ss`` placed before each ``-i`` is an *input* seek: ffmpeg's demuxer looks the position up in
the index and (over HTTP) issues a Range request from there; ``-t`` on the input stops reading
after the segment. Source: ffmpeg documentation, "Main options" (``-ss`` as an input option) and
"Protocols: http" (``-headers``, ``-reconnect*``). With ``-c copy`` the video starts at the
keyframe at or before ``start``; the mp4 muxer writes an edit list so players (and ffprobe's
duration) show the requested span, the WebM muxer keeps the lead-in up to that keyframe (≤ one
GOP, reported honestly by ffprobe).

Egress (issue 11, item 4): the plan's URLs are checked against the policy before anything
connects (:mod:`src.media.egress`); the ranged fetcher and ffmpeg then connect only through the
guard proxy (:mod:`src.media.guard`: ffmpeg gets it as ``-http_proxy`` and ``http_proxy``, with
``no_proxy`` removed from its environment, because ffmpeg honours it even with an explicit
proxy; :mod:`src.media.urlinput`). Each ffmpeg input gets ``-protocol_whitelist``:
:data:`~src.media.urlinput.URL_PROTOCOLS` for a URL (an HLS playlist cannot name ``file:`` or
other protocols); our own sparse copies, which hold the
source's bytes, get :data:`src.media.probe.INPUT_ALLOW_LIST` (``file`` only, the containers we
accept) and the demuxer of the index we read (``-f mov`` / ``-f matroska``), so no content can
make ffmpeg open them as a playlist or script that names other files.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from src.media import audio, egress, fragmentcopy, guard, hls, periods, rangedcopy, urlinput
from src.media.choice import FetchPlan
from src.media.errors import FFMPEG_FAILED, SEGMENT_OUT_OF_RANGE, MediaError, classify
from src.media.ffmpeg import FFmpegError, Progress, ffprobe, mmss, run_ffmpeg
from src.media.probe import INPUT_ALLOW_LIST

#: Parallel connections per stream for the ranged path; 0 turns it off (direct path only).
CONNECTIONS = 4
#: Progress given to the network phase of the ranged path; the local cut fills the rest.
FETCH_SHARE = 95.0
#: ffmpeg demuxer for a local copy, by the suffix :func:`rangedcopy.ranged_copies` or
#: :func:`fragmentcopy.fragment_copies` gives it (from its bytes: an MP4 or WebM index, or joined
#: MPEG-TS segments of HLS — ``mpegts`` is on the upload allow-list).
_COPY_DEMUXERS = {".mp4": "mov", ".webm": "matroska", ".ts": "mpegts"}
#: ffprobe of the cut file (ours): the containers an output can be (:data:`choice.MUXERS`).
_OUTPUT_ALLOW_LIST = ("-format_whitelist", "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,mp3,ogg",
                      "-protocol_whitelist", "file")


def fetch_segment(plan: FetchPlan, start: float, end: float, out_path,
                  on_progress: Optional[Callable[[dict], None]] = None,
                  on_start: Optional[Callable[[subprocess.Popen], None]] = None,
                  timeout: Optional[float] = None,
                  on_cut: Optional[Callable[[Path], None]] = None) -> dict:
    """Download seconds ``start``..``end`` of the plan's streams into ``out_path``.

    ``start``/``end``: seconds from the start of the video (floats, ``0 <= start < end``).
    ``out_path``: the final file; its folder must exist. A hidden temporary file (and, on the
    ranged path, hidden sparse copies of the streams) is written in the same folder; the result
    is renamed to ``out_path`` only after success, and every temporary file is deleted in all
    cases. ``on_progress(dict)`` is called several times a second with ``{"download_progress":
    0-100 (0.1 steps, at most 99.9 until the cut is done), "speed": "2.3x" (seconds of the clip
    per wall second; None while unknown), "fps": float (ffmpeg's; 0 while bytes are being
    fetched), "eta": "MM:SS" or None while the speed is unknown}`` (the spec's progress cache
    fields). An exception it
    raises stops the connections or ffmpeg, removes the partial files and propagates unchanged
    (job cancellation). ``on_start(process)`` receives each ffmpeg process (the cut);
    ``timeout`` is wall seconds for the whole fetch. ``on_cut(path)`` is called with the cut
    temporary file before it is checked and renamed (tags, cover, subtitles: the final name
    then appears only complete); what it raises propagates, the files removed.

    An ``audio_only`` plan (:mod:`src.media.audio`) writes only the audio, copied or encoded.
    Returns ``{"duration": s, "width", "height", "vcodec", "acodec", "size_bytes"}`` from
    ffprobe of the result (``acodec`` None without audio; ``width``/``height``/``vcodec`` None
    for an audio clip). Raises ValueError for a bad range,
    MediaError (SOURCE_NOT_ALLOWED for a URL, redirect or connection the egress policy refuses
    — the plan's own URLs before any connection —, SOURCE_HTTP_ERROR for an HTTP error from the
    source or an unreachable source, SEGMENT_OUT_OF_RANGE when the segment lies beyond the end
    of the video, FORMAT_UNAVAILABLE for an invalid HLS playlist, an AES-128 key that is not 16
    bytes, a segment that does not decrypt or is over the size limit, FFMPEG_FAILED otherwise).
    """
    if not 0 <= start < end:
        raise ValueError(f"need 0 <= start < end, got start={start} end={end}")
    try:
        return _fetch_once(plan, start, end, out_path, on_progress, on_start, timeout, on_cut)
    except periods.PeriodBoundary as boundary:
        periods.join(fetch_segment, plan, start, end, boundary.at, out_path, on_progress,
                     on_start, timeout, on_cut)
        return clip_summary(Path(out_path), plan.audio_only)


def _fetch_once(plan: FetchPlan, start: float, end: float, out_path, on_progress, on_start,
                timeout: Optional[float], on_cut) -> dict:
    """:func:`fetch_segment` of a clip inside one DASH Period (raises
    :class:`~src.media.periods.PeriodBoundary` for one across a boundary)."""
    urls = [plan.video_url] + ([plan.audio_url] if plan.audio_url else [])
    policy = egress.current()
    for url in urls:
        policy.check_url(url)
    out = Path(out_path)
    deadline = time.monotonic() + timeout if timeout else None
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    copies: list[Path] = []
    with guard.session(policy) as session:
        try:
            inputs = None
            seeks: float | list[float] = start  # one seek for all inputs, or one per input
            if CONNECTIONS > 0 and (plan.video_fragments is not None
                                    or plan.video_protocol in hls.PROTOCOLS):
                lists = hls.stream_lists(plan, session, deadline, on_progress)
                local = fragmentcopy.fragment_copies(plan, start, end, tmp, copies,
                                                     on_progress, deadline, CONNECTIONS,
                                                     FETCH_SHARE, session, lists)
                if local:
                    inputs, seeks = [path for path, _ in local], [seek for _, seek in local]
            elif CONNECTIONS > 0:
                inputs = rangedcopy.ranged_copies(urls, plan.http_headers, start, end, tmp,
                                                  copies, on_progress, deadline, CONNECTIONS,
                                                  FETCH_SHARE, session)
            share = FETCH_SHARE if inputs else 0.0
            run_ffmpeg(ffmpeg_args(plan, seeks, end - start, tmp, inputs or urls,
                                   session.proxy_url),
                       on_progress=cut_reporter(end - start, share, on_progress) if on_progress
                       else None,
                       on_start=on_start, timeout=_remaining(deadline),
                       env=urlinput.ffmpeg_env(session.proxy_url))
            refused = session.refused()
            if refused:  # ffmpeg skips an HLS segment it cannot open: a hole
                raise refused
            if on_cut:
                on_cut(tmp)
            summary = clip_summary(tmp, plan.audio_only)
            os.replace(tmp, out)
            return summary
        except (FFmpegError, MediaError) as exc:
            error = reported(session, exc)
            if error is exc:
                raise
            raise error from exc
        finally:
            for path in (tmp, *copies):
                path.unlink(missing_ok=True)


def reported(session: guard.Session, exc: Exception) -> Exception:
    """The error a failed fetch inside the guard ``session`` reports for ``exc`` (an
    FFmpegError or MediaError): the guard's refusal when it refused a connection — the real
    cause behind ffmpeg's or the fetcher's own error —, else ffmpeg's failure classified
    (:func:`src.media.errors.classify`), else ``exc`` itself."""
    refused = session.refused()
    if isinstance(exc, FFmpegError):
        return refused or classify(exc)
    if refused is None or getattr(exc, "code", None) == refused.code:
        return exc
    return refused


def _remaining(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise MediaError(FFMPEG_FAILED, "Cutting the video segment took too long.")
    return left


def ffmpeg_args(plan: FetchPlan, start, duration: float, tmp: Path, inputs: list,
                proxy_url: str) -> list:
    """Arguments for ffmpeg: one seeking input per stream (its URL, read through the guard at
    ``proxy_url``, or its local copy), stream copy, the plan's muxer. ``start``: the input
    ``-ss`` in seconds, or a list of one per input (the fragment path's copies).

    Joined MPEG-TS (HLS) is cut with ``-itsoffset -start`` instead: mpegts has no index, and
    ffmpeg's generic binary search (``mpegts_get_dts`` indexes every packet as a keyframe) lands
    on the packet at the target, not on the keyframe before it; stream copy then drops all up to
    the next keyframe (301 s in 2 s GOPs started at 302 s; a one-GOP 5 s segment cut from 1 s
    held no video). The copy starts with the first chosen segment, which starts with a keyframe
    (ffmpeg's hls muxer cuts there; Apple's HLS authoring spec asks for it); shifted, the packets
    before ``start`` get negative times as after an input seek that found that keyframe, and the
    mp4 muxer's edit list starts the clip at ``start`` — ffmpeg's own cut of the playlist."""
    args: list = []
    starts = start if isinstance(start, list) else [start] * len(inputs)
    for url, start in zip(inputs, starts):
        seek = ["-ss", f"{start:.3f}"]
        if not url.startswith(("http://", "https://")):
            args += [*INPUT_ALLOW_LIST, "-f", _COPY_DEMUXERS[Path(url).suffix]]
            if Path(url).suffix == ".ts":
                seek = ["-itsoffset", f"{-start:.3f}"]  # no index: see the docstring
        else:
            args += urlinput.input_args(url, plan.http_headers, proxy_url)
        args += [*seek, "-t", f"{duration:.3f}", "-i", url]
    if plan.audio_only:
        return [*args, *audio.output_args(plan), str(tmp)]
    if plan.audio_url:
        maps = ["-map", "0:v:0", "-map", "1:a:0"]
    else:  # combined format; the '?' keeps a silent video valid
        maps = ["-map", "0:v:0", "-map", "0:a:0?"]
    return [*args, *maps, "-c", "copy", "-map_metadata", "-1", "-dn", "-sn",
            *plan.muxer_args(), str(tmp)]


def cut_reporter(duration: float, share: float, callback: Callable[[dict], None]):
    """Turn ffmpeg :class:`Progress` blocks into the spec's progress dict for ``callback``;
    the cut fills the progress bar from ``share`` (what fetching already filled) to 100."""

    def report(progress: Progress) -> None:
        if progress.done:
            percent = 100.0
        else:
            part = max(0.0, progress.out_time / duration)  # negative before an edit list
            percent = min(99.9, round(share + (100 - share) * part, 1))
        remaining = max(0.0, duration - progress.out_time)
        eta = None
        if progress.done:
            eta = "00:00"
        elif progress.speed > 0:
            eta = mmss(remaining / progress.speed)
        callback({"download_progress": max(0.0, percent),
                  "speed": f"{progress.speed:.1f}x" if progress.speed > 0 else None,
                  "fps": round(progress.fps, 1), "eta": eta})

    return report


def clip_summary(path: Path, audio_only: bool = False) -> dict:
    """ffprobe facts about a fetched file; MediaError(SEGMENT_OUT_OF_RANGE) when it holds no
    video — no audio for an audio clip — (the segment starts after the end of the video)."""
    try:
        info = ffprobe(str(path), input_args=_OUTPUT_ALLOW_LIST)
    except FFmpegError as exc:
        raise MediaError(FFMPEG_FAILED, detail=str(exc)) from exc
    streams = info.get("streams") or []
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not (s.get("disposition") or {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = float((info.get("format") or {}).get("duration") or 0)
    if (audio if audio_only else video) is None or duration <= 0:
        raise MediaError(SEGMENT_OUT_OF_RANGE, "The requested segment holds no video; "
                                               "is it beyond the end of the video?")
    return {
        "duration": round(duration, 3),
        "width": video.get("width") if video else None,
        "height": video.get("height") if video else None,
        "vcodec": video.get("codec_name") if video else None,
        "acodec": audio.get("codec_name") if audio else None,
        "size_bytes": path.stat().st_size,
    }
