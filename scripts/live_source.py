"""A local live HLS stream, produced in real time from the Big Buck Bunny clip (issue 14, item 5).

What a live HLS source looks like to a client (RFC 8216 §6.2.2): a media playlist without
``#EXT-X-ENDLIST`` that gains a segment every target duration while the oldest ones slide out,
each segment dated by ``#EXT-X-PROGRAM-DATE-TIME`` (§4.3.2.6). It is made by plain ffmpeg, the
way its hls muxer writes a live stream by default, from the real clip looped forever at its
own pace (``-stream_loop -1 -re``)::

    ffmpeg -re -stream_loop -1 -i big_buck_bunny_720p_5s.mp4 -vf scale=-2:240
           -c:v libx264 -preset ultrafast -g 50 -keyint_min 50 -sc_threshold 0
           -force_key_frames expr:gte(t,n_forced*2) -c:a aac -b:a 64k
           -f hls -hls_time 2 -hls_list_size 6
           -hls_flags program_date_time+delete_segments+temp_file live.m3u8

Keyframes are forced every 2 s so every segment starts with one (the hls muxer cuts only at
keyframes; Apple's HLS authoring spec asks for it); 240p ultrafast keeps the encode at a few
% of one core. ``temp_file`` makes ffmpeg write each segment under a temporary name and rename
it when complete, so the server never serves half a segment (the playlist itself is always
written that way for a live stream). ``delete_segments`` removes the files of segments that
left the playlist (after ``hls_delete_threshold``, 1 by default), as a real origin does: a
segment older than the window is a 404.

The folder is served by :class:`scripts.local_source.SourceServer` on 127.0.0.1.
:class:`LiveHLS` runs both; ``python -m scripts.live_source [--port P]`` serves one until ^C.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Optional

from scripts.local_source import SourceServer
from src.media.ffmpeg import FFMPEG

ROOT = Path(__file__).resolve().parent.parent
CLIP = Path("/work/shared/media/big_buck_bunny_720p_5s.mp4")
if not CLIP.is_file():  # the copy kept with the tests
    CLIP = ROOT / "tests" / "media" / "big_buck_bunny_720p_5s.mp4"
PLAYLIST = "live.m3u8"
#: Seconds to wait for ffmpeg to list the first segments (it needs ≈ 2 × hls_time).
START_TIMEOUT = 30.0


#: The burnt-in clock: the frame's time in quarter seconds, as CLOCK_BITS white (1) or black
#: (0) squares of CLOCK_BOX px along the top edge, least significant bit first (68 min).
CLOCK_BITS, CLOCK_BOX = 14, 16


def clock_filter() -> str:
    """drawbox filters burning each frame's presentation time (seconds since the stream began:
    ``-re`` makes it the wall clock since then) into it as a binary code a test reads back
    from any frame (:func:`read_clock`); big squares, so the encode does not blur them."""
    boxes = [f"drawbox=x=0:y=0:w={CLOCK_BITS * CLOCK_BOX}:h={CLOCK_BOX}:color=black:t=fill"]
    boxes += [f"drawbox=x={bit * CLOCK_BOX}:y=0:w={CLOCK_BOX}:h={CLOCK_BOX}:color=white:t=fill"
              f":enable='eq(mod(floor(floor(t*4)/{2 ** bit}),2),1)'"
              for bit in range(CLOCK_BITS)]
    return ",".join(boxes)


def read_clock(path) -> float:
    """The burnt-in time (seconds since the stream began) of the first frame a player shows
    of the video file ``path`` (ours: ffmpeg decodes it, edit list applied)."""
    raw = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-frames:v", "1",
                          "-vf", f"crop={CLOCK_BITS * CLOCK_BOX}:{CLOCK_BOX}:0:0",
                          "-pix_fmt", "gray", "-f", "rawvideo", "-"],
                         check=True, capture_output=True, timeout=60).stdout
    width, middle = CLOCK_BITS * CLOCK_BOX, CLOCK_BOX // 2
    quarters = sum(1 << bit for bit in range(CLOCK_BITS)
                   if raw[middle * width + bit * CLOCK_BOX + middle] > 128)
    return quarters / 4


def ffmpeg_args(folder: Path, hls_time: int = 2, list_size: int = 6,
                clock: bool = False) -> list:
    """The ffmpeg command line (module docstring) writing the live stream into ``folder``;
    ``clock``: with the burnt-in clock (:func:`clock_filter`)."""
    video_filter = "scale=-2:240" + ("," + clock_filter() if clock else "")
    return [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
            "-stream_loop", "-1", "-i", str(CLIP), "-vf", video_filter,
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-g", str(25 * hls_time), "-keyint_min", str(25 * hls_time), "-sc_threshold", "0",
            "-force_key_frames", f"expr:gte(t,n_forced*{hls_time})",
            "-c:a", "aac", "-b:a", "64k", "-ac", "2",
            "-f", "hls", "-hls_time", str(hls_time), "-hls_list_size", str(list_size),
            "-hls_flags", "program_date_time+delete_segments+temp_file",
            "-hls_segment_filename", str(folder / "seg%05d.ts"), str(folder / PLAYLIST)]


def segments_listed(path: Path) -> int:
    """Media segments named in the playlist at ``path`` (0 while it does not exist yet)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return 0
    return sum(1 for line in text.splitlines() if line.strip() and not line.startswith("#"))


class Producer:
    """ffmpeg producing a live stream in real time into a folder, in its own process group, and
    what serves it: the part :class:`LiveHLS` and scripts/live_seq.py ``LiveSeq`` share.

    A subclass sets ``folder`` (a temporary one when None: :meth:`_use_folder`) and gives
    :meth:`command` (the ffmpeg arguments), :meth:`ready` (enough is produced to serve),
    :meth:`serve`/:meth:`unserve`. ``with …:`` / :meth:`start` launches ffmpeg (``started_at``:
    when, POSIX s), waits until ready (ffmpeg's failure or :data:`START_TIMEOUT` raise
    RuntimeError) and serves; leaving the block kills the whole process group (also after a
    failed test), so no ffmpeg outlives it.
    """

    server: Optional[SourceServer] = None  # what serves the folder (LiveSeq has its own)

    def _use_folder(self, folder, prefix: str) -> None:
        self._tmp = None if folder else tempfile.TemporaryDirectory(prefix=prefix)
        self.folder = Path(folder or self._tmp.name)  # type: ignore[union-attr]
        self.proc: Optional[subprocess.Popen] = None
        self.started_at = 0.0
        self._log: Optional[IO[bytes]] = None

    def command(self) -> list:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def serve(self) -> None:
        raise NotImplementedError

    def unserve(self) -> None:
        """Stop serving (the default: the folder's :class:`SourceServer` in ``server``)."""
        if self.server:
            self.server.stop()
            self.server = None

    def end(self, timeout: float = 10.0) -> None:
        """End the stream as an encoder does: SIGINT; ffmpeg then closes it (HLS writes
        ``#EXT-X-ENDLIST``, DASH a static MPD)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def start(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self._log = log = tempfile.TemporaryFile()  # not a pipe: a full one stalls ffmpeg
        self.started_at = time.time()
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=log,
                                     start_new_session=True)
        try:
            limit = time.monotonic() + START_TIMEOUT
            while not self.ready():
                if self.proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError("ffmpeg stopped: "
                                       + log.read().decode(errors="replace")[-500:])
                if time.monotonic() > limit:
                    raise RuntimeError(f"{type(self).__name__}: the stream did not start in "
                                       "time")
                time.sleep(0.1)
            self.serve()
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self) -> None:
        """Kill ffmpeg's process group (what it wrote stays)."""
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc:
            self.proc.wait()

    def stop(self) -> None:
        """Kill ffmpeg's process group, stop serving, remove a temporary folder."""
        self.kill()
        if self._log:
            self._log.close()
        self.unserve()
        if self._tmp:
            self._tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class LiveHLS(Producer):
    """A live HLS stream in ``folder`` (a temporary one when None), served on 127.0.0.1.

    ``with LiveHLS() as live:`` starts ffmpeg (its own process group), waits until the
    playlist lists ``min_segments`` segments (FFmpeg's failure or :data:`START_TIMEOUT` raise
    RuntimeError) and serves the folder: ``live.url`` is the media playlist URL,
    ``live.server`` the :class:`SourceServer` (byte counters per segment path),
    ``live.folder`` where the files are. :meth:`end` stops ffmpeg gently (SIGINT: the hls
    muxer writes its trailer, the playlist gets ``#EXT-X-ENDLIST``, as when a stream ends);
    leaving the block kills the whole process group (also after a failed test), so no ffmpeg
    outlives it.
    """

    def __init__(self, folder=None, hls_time: int = 2, list_size: int = 6,
                 min_segments: int = 2, clock: bool = False):
        self._use_folder(folder, "live-hls-")
        self.hls_time, self.list_size, self.min_segments = hls_time, list_size, min_segments
        self.clock = clock
        self.server: Optional[SourceServer] = None

    @property
    def url(self) -> str:
        assert self.server is not None, "not started"
        return self.server.url(PLAYLIST)

    @property
    def playlist(self) -> Path:
        return self.folder / PLAYLIST

    def began_at(self) -> float:
        """The wall-clock time (POSIX s) of the stream's time 0, from the playlist: segment
        ``seg0000k.ts`` starts at ``k × hls_time`` (keyframes are forced there) and at its
        ``EXT-X-PROGRAM-DATE-TIME``."""
        from datetime import datetime

        date = None
        for line in self.playlist.read_text().splitlines():
            if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
                date = datetime.fromisoformat(line.split(":", 1)[1].strip()).timestamp()
            elif line.endswith(".ts") and date is not None:
                return date - int(line[3:-3]) * self.hls_time
        raise RuntimeError("no dated segment listed")

    def command(self) -> list:
        return ffmpeg_args(self.folder, self.hls_time, self.list_size, self.clock)

    def ready(self) -> bool:
        return segments_listed(self.playlist) >= self.min_segments

    def serve(self) -> None:
        self.server = SourceServer(self.folder).start()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", default=None)
    parser.add_argument("--list-size", type=int, default=6)
    args = parser.parse_args(argv)
    run_until_stopped(LiveHLS(args.folder, list_size=args.list_size),
                      lambda live: f"live HLS: {live.url}")


def run_until_stopped(producer: Producer, describe) -> None:
    """Serve ``producer`` until ffmpeg stops, ^C or SIGTERM (leaving through ``__exit__``: no
    ffmpeg left behind), printing ``describe(producer)`` once it serves."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with producer as live:
        print(describe(live), flush=True)
        try:
            while live.proc and live.proc.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
