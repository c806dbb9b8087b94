"""A local live DASH source (ISO/IEC 23009-1 ``MPD@type="dynamic"``), produced in real time from
the Big Buck Bunny clip and served as ffmpeg writes it (issue 14: live DASH other than YouTube's).

Made by plain ffmpeg, its dash muxer in live mode — the clip looped at its own pace, a sliding
window of ``window_size`` segments (older segment files deleted, as an origin's DVR window),
``-streaming 1`` (one fragment per frame), keyframes forced at every segment boundary::

    ffmpeg -re -stream_loop -1 -i big_buck_bunny_720p_5s.mp4 -vf scale=-2:240
           -c:v libx264 -preset ultrafast -g 50 -keyint_min 50 -sc_threshold 0
           -force_key_frames expr:gte(t,n_forced*2) -c:a aac -b:a 64k -ac 2
           -f dash -seg_duration 2 -window_size 6 -extra_window_size 2 -streaming 1
           -use_timeline 0|1 -adaptation_sets "id=0,streams=v id=1,streams=a" live.mpd

``timeline=False`` (``-use_timeline 0``): ``SegmentTemplate`` with ``$Number$`` and
``@duration``, ``minimumUpdatePeriod`` 500 s (the template alone predicts every segment);
``timeline=True``: a ``SegmentTimeline`` of the window, reloaded every segment; with
``time_names`` its media template names segments by ``$Time$`` instead of ``$Number$``. The
manifest carries ``availabilityStartTime`` (the wall clock of media time 0) and
``timeShiftBufferDepth``; the muxer writes every segment and the MPD under a temporary name and
renames it when complete, so a listed or served segment is whole. When ffmpeg stops gently
(:meth:`LiveDASH.end`) it rewrites the MPD as ``type="static"``, as a stream that ended.

The folder is served as it is by :class:`scripts.local_source.SourceServer` (Range, byte
counters per path, ``.mpd`` as ``application/dash+xml``): yt-dlp's generic extractor reads the
MPD URL and says ``live_status`` ``is_live``. ``page.html`` in the same folder embeds the MPD in
an HTML5 ``<video>`` (``live.page_url``): yt-dlp then finds the DASH formats through
``_parse_html5_media_entries`` and says nothing about liveness. ``python -m scripts.live_dash``
serves one until ^C.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Optional

from scripts.live_source import CLIP, Producer, clock_filter, run_until_stopped
from scripts.local_source import SourceServer
from src.media.ffmpeg import FFMPEG

MANIFEST = "live.mpd"
PAGE = "page.html"
_PAGE = ("<!DOCTYPE html><html><head><title>Local live DASH</title></head><body>"
         f'<video controls><source src="{MANIFEST}" type="application/dash+xml"></video>'
         "</body></html>")


def ffmpeg_args(folder: Path, seconds: int = 2, window_size: Optional[int] = 6,
                timeline: bool = False, time_names: bool = False, clock: bool = False) -> list:
    """The ffmpeg command line (module docstring) writing the live DASH files into ``folder``;
    ``clock``: each frame's time burnt into it (scripts/live_source.py :func:`clock_filter`);
    ``window_size`` None: every segment stays listed and on disk, nothing is streamed in
    chunks (scripts/live_seq.py serves them by sequence number instead)."""
    window = [] if window_size is None else [
        "-window_size", str(window_size), "-extra_window_size", "2", "-streaming", "1"]
    video_filter = "scale=-2:240" + ("," + clock_filter() if clock else "")
    media = "chunk-$RepresentationID$-" + ("$Time$" if time_names else "$Number%05d$") + ".m4s"
    return [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
            "-stream_loop", "-1", "-i", str(CLIP), "-vf", video_filter,
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-g", str(25 * seconds), "-keyint_min", str(25 * seconds), "-sc_threshold", "0",
            "-force_key_frames", f"expr:gte(t,n_forced*{seconds})",
            "-c:a", "aac", "-b:a", "64k", "-ac", "2",
            "-f", "dash", "-seg_duration", str(seconds), *window,
            "-use_template", "1", "-use_timeline", "1" if timeline else "0",
            "-adaptation_sets", "id=0,streams=v id=1,streams=a",
            "-init_seg_name", "init-$RepresentationID$.m4s", "-media_seg_name", media,
            str(folder / MANIFEST)]


class LiveDASH(Producer):
    """A live DASH stream in ``folder`` (a temporary one when None), served on 127.0.0.1.

    ``with LiveDASH() as live:`` starts ffmpeg (its own process group), waits until
    ``min_segments`` video segments are written (RuntimeError on ffmpeg's failure or
    live_source.START_TIMEOUT) and serves the folder: ``live.url`` is the MPD's URL,
    ``live.page_url`` an HTML page embedding it, ``live.server`` the :class:`SourceServer`
    (``bytes_served()``), :meth:`available_from` the manifest's ``availabilityStartTime``.
    :meth:`end` stops ffmpeg gently (the MPD becomes static); leaving the block kills the
    process group and stops the server.
    """

    def __init__(self, folder=None, seconds: int = 2, window_size: int = 6,
                 timeline: bool = False, time_names: bool = False, min_segments: int = 2,
                 clock: bool = False):
        self._use_folder(folder, "live-dash-")
        self.seconds, self.window_size, self.min_segments = seconds, window_size, min_segments
        self.timeline, self.time_names, self.clock = timeline, time_names, clock
        self.server: Optional[SourceServer] = None

    @property
    def url(self) -> str:
        assert self.server is not None, "not started"
        return self.server.url(MANIFEST)

    @property
    def page_url(self) -> str:
        assert self.server is not None, "not started"
        return self.server.url(PAGE)

    @property
    def manifest(self) -> Path:
        return self.folder / MANIFEST

    def available_from(self) -> float:
        """``MPD@availabilityStartTime`` (POSIX s): the wall clock of the stream's time 0."""
        from datetime import datetime

        found = re.search(r'availabilityStartTime="([^"]+)"', self.manifest.read_text())
        if not found:
            raise RuntimeError("the MPD has no availabilityStartTime")
        return datetime.fromisoformat(found[1].replace("Z", "+00:00")).timestamp()

    def command(self) -> list:
        return ffmpeg_args(self.folder, self.seconds, self.window_size, self.timeline,
                           self.time_names, self.clock)

    def ready(self) -> bool:
        try:
            text = self.manifest.read_text(errors="replace")
        except OSError:
            return False
        return 'type="dynamic"' in text and \
            len(list(self.folder.glob("chunk-0-*.m4s"))) >= self.min_segments

    def serve(self) -> None:
        (self.folder / PAGE).write_text(_PAGE)
        self.server = SourceServer(self.folder).start()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", default=None)
    parser.add_argument("--timeline", action="store_true", help="SegmentTimeline")
    parser.add_argument("--time-names", action="store_true", help="$Time$ segment names")
    args = parser.parse_args(argv)
    run_until_stopped(LiveDASH(args.folder, timeline=args.timeline or args.time_names,
                               time_names=args.time_names),
                      lambda live: f"live DASH: {live.url}\npage: {live.page_url}")


if __name__ == "__main__":
    main()
