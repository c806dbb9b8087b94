"""A clip over a DASH Period boundary: cut on each side, then joined (ISO/IEC 23009-1 §5.3.2).

Each Period of a multi-period MPD may have its own Initialization Segment and a media timeline
that starts again (two Periods muxed separately restart their ``tfdt`` at 0), so the segments
of two Periods cannot be appended into one local file as within a Period
(:mod:`src.media.fragmentcopy`), and ffmpeg 5.1's dash demuxer cannot read such a manifest at
all (it ignores the Periods' ``BaseURL``). So the clip is cut twice — up to the boundary and
from it, each from its own Period's segments — and the two parts are joined with ffmpeg's
concat demuxer and stream copy. The second part starts at the boundary exactly: a Period
starts with a segment that starts with a keyframe (ISO/IEC 23009-1 ``startWithSAP``; DASH-IF
IOP asks every Period to start with a SAP of type 1 or 2). Limits, both of the concat
demuxer with stream copy: the frames of the earlier Period's last GOP that are displayed past
its end (B-frame reordering: 2 frames, 80 ms, on the test source) are shown before the join,
since a part's tail is not trimmed; and only the first part's edit list is honoured, so a
later Period whose first segment holds frames before its start (hidden by an edit list) shows
them — audio priming is the usual case, tens of milliseconds. Pictures are not re-encoded.

The concat list is ours and names only our two part files; it is read with ``-f concat -safe
0`` (absolute paths of our own), the parts with a container allow-list and
``-protocol_whitelist file`` (the concat demuxer passes both on to what it opens:
``ff_copy_whiteblacklists``), so nothing else can be opened.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from src.media.errors import FFMPEG_FAILED, FORMAT_UNAVAILABLE, MediaError
from src.media.ffmpeg import FFmpegError, mmss, run_ffmpeg

#: Demuxers the join reads: the list itself and the parts the cuts wrote (MP4, WebM; an audio
#: clip's MP3, M4A, Ogg Opus).
_JOIN_ALLOW_LIST = ("-format_whitelist",
                    "concat,mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,mp3,ogg",
                    "-protocol_whitelist", "file")


class PeriodBoundary(MediaError):
    """The clip's segments span the start of a later DASH Period, at ``at`` seconds: a
    FORMAT_UNAVAILABLE for any caller that does not cut each side (:func:`join`)."""

    def __init__(self, at: float):
        super().__init__(FORMAT_UNAVAILABLE, f"This clip spans two periods of the source's "
                                             f"manifest (at {mmss(at)}).")
        self.at = at


def join(fetch, plan, start: float, end: float, at: float, out_path,
         on_progress: Optional[Callable[[dict], None]], on_start, timeout: Optional[float],
         on_cut: Optional[Callable[[Path], None]] = None) -> None:
    """Cut ``start``..``at`` and ``at``..``end`` with ``fetch`` (:func:`segment.fetch_segment`,
    whose arguments these are; a part may itself span a later boundary) and join them into
    ``out_path``; ``on_cut`` runs on the joined file before it gets that name (the parts get
    none). Progress runs 0 → 100 over both parts by their share of the clip. Every
    temporary file is removed; raises what ``fetch`` raises, MediaError(FFMPEG_FAILED) when
    the join fails."""
    out = Path(out_path)
    deadline = time.monotonic() + timeout if timeout else None
    folder = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        parts: list[Path] = []
        done = 0.0
        for first, last in ((start, at), (at, end)):
            share = (last - first) / (end - start)

            def scaled(values: dict, share=share, offset=done) -> None:
                if on_progress:
                    on_progress({**values, "download_progress": round(min(
                        99.9, offset + share * values.get("download_progress", 0.0)), 1)})

            parts.append(folder / f"part{len(parts)}.{plan.container}")
            left = None if deadline is None else max(1.0, deadline - time.monotonic())
            fetch(plan, first, last, parts[-1], on_progress=scaled, on_start=on_start,
                  timeout=left)
            done += 100 * share
        listing = folder / "parts.ffconcat"
        listing.write_text("ffconcat version 1.0\n" + "".join(f"file '{p}'\n" for p in parts))
        joined = folder / f"joined.{plan.container}"
        try:
            run_ffmpeg([*_JOIN_ALLOW_LIST, "-f", "concat", "-safe", "0", "-i", str(listing),
                        "-map", "0", "-c", "copy", *plan.muxer_args(), str(joined)],
                       on_start=on_start, timeout=timeout)
        except FFmpegError as exc:
            raise MediaError(FFMPEG_FAILED, "The two parts of the clip could not be joined.",
                             detail=str(exc)) from exc
        if on_cut:
            on_cut(joined)
        os.replace(joined, out)
        if on_progress:
            on_progress({"download_progress": 100.0, "speed": None, "fps": 0.0, "eta": "00:00"})
    finally:
        shutil.rmtree(folder, ignore_errors=True)
