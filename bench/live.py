"""live: clips of a stream while it is live (issue 14's targets), on the local live sources.

A 30 s clip whose window ends 10 s after the request (``offset`` 20, ``duration`` 30), from a
live HLS stream that plain ffmpeg produces in real time from the real clip with its time burnt
into every frame (scripts/live_source.py ``LiveHLS(clock=True)``: 2 s segments), through
``POST /api/video/save/live`` of the service under gunicorn, then the status polled every
0.2 s. Measured, each against its target:

- seconds from the save request to ``completed`` (≤ 10 s + target duration + 5 s = 17 s);
- bytes the source served (playlists and segments) per byte of the clip (≤ 1.3);
- the clip's first frame's burnt-in time, on the wall clock by the playlist's
  ``EXT-X-PROGRAM-DATE-TIME``, minus the window's start (within ±1 segment, 2 s).

The same clip from YouTube-style sequence-number URLs (scripts/live_seq.py ``LiveSeq``: plain
``ffmpeg -f dash`` in real time behind an ``sq=N`` / ``X-Head-Seqnum`` server, 2 s fragments)
through :func:`src.media.livesq.fetch_live_sq` itself (the API reaches that path only from a
YouTube extraction); its wall clock of the stream's time 0 is when the stand-in started ffmpeg
(a few tenths of a second early).

Run: ``.venv/bin/python -m bench.live [--runs 3]``.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench import app as bench_app
from bench.api import settings
from bench.common import call, gunicorn, median, stop, table
from scripts.live_seq import LiveSeq
from scripts.live_source import LiveHLS, read_clock
from src.media import egress, livesq

OFFSET, DURATION = 20, 30
TARGET_SECONDS = 10 + 2 + 5


def _clip(base: str, ids: dict, stream: LiveHLS, out: Path) -> tuple:
    """One live clip through the API: ``(seconds to completed, bytes served / clip bytes,
    first frame − window start in seconds)``."""
    server = stream.server
    assert server is not None, "not started"
    server.reset_counters()
    asked = time.time()
    status, saved = call("POST", f"{base}/api/video/save/live", {
        "url": stream.url, "user_id": ids["user_id"], "offset": OFFSET, "duration": DURATION},
        token=ids["public"])
    assert status == 201, (status, saved)
    while True:
        status, view = call("GET", f"{base}/api/video/status/{saved['video_id']}",
                            token=ids["token"])
        assert status == 200 and view["status"] in ("pending", "processing", "completed"), view
        if view["status"] == "completed":
            break
        time.sleep(0.2)
    seconds = time.time() - asked
    status, data = call("POST", f"{base}/api/video/download/{saved['video_id']}", {},
                        token=ids["token"])
    assert status == 200 and isinstance(data, bytes), (status, data)
    out.write_bytes(data)
    shown = stream.began_at() + read_clock(out)
    return seconds, server.bytes_served() / len(data), shown - (asked - OFFSET)


def _sq_clip(stream: LiveSeq, out: Path) -> tuple:
    """One clip by sequence number, the same measures as :func:`_clip`."""
    plan, target = livesq.plan_for(stream.info())  # type: ignore[misc]
    stream.reset_counters()
    asked = time.time()
    livesq.fetch_live_sq(plan, asked - OFFSET, asked - OFFSET + DURATION, out, target)
    seconds = time.time() - asked
    shown = stream.started_at + read_clock(out)
    return seconds, stream.bytes_served() / out.stat().st_size, shown - (asked - OFFSET)


def _row(name: str, results: list) -> list:
    return [name, f"{median([r[0] for r in results]):.1f}", f"{max(r[0] for r in results):.1f}",
            f"{median([r[1] for r in results]):.2f}", f"{max(abs(r[2]) for r in results):.2f}"]


def run(runs: int = 3) -> str:
    runs = min(runs, 3)  # each run lasts the clip's 10 s to come plus the wait for the source
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-live-") as name:
        tmp = Path(name)
        # one worker: mongomock lives in one process (bench/app.py)
        env = {**settings(tmp), "DOWNLOAD_WAIT_SECONDS": "0", "STREAM_DELAY_SECONDS": "0"}
        seed = str(tmp / "seed.json")
        ids = bench_app.prepare(env, seed)
        proc, base = gunicorn("bench.app:service()", {**env, "BENCH_SEED": seed}, workers=1,
                              log=tmp / "live.log")
        try:
            # 20 segments of 2 s listed: the window's 20 s of past are in the playlist
            with LiveHLS(tmp / "hls", list_size=20, clock=True) as stream:
                while stream.began_at() > time.time() - OFFSET - 4:
                    time.sleep(0.5)
                results = [_clip(base, ids, stream, tmp / f"clip{n}.mp4") for n in range(runs)]
            rows.append(_row("live HLS (PROGRAM-DATE-TIME), `POST /api/video/save/live`",
                             results))
        finally:
            stop(proc)
        egress.configure(["127.0.0.1:*"])  # this process fetches the sq fragments itself
        with LiveSeq(tmp / "seq", dvr_seconds=120, clock=True) as seq:
            while seq.started_at > time.time() - OFFSET - 4:
                time.sleep(0.5)
            rows.append(_row("sequence numbers (`sq=N`, X-Head-Seqnum), `fetch_live_sq`",
                             [_sq_clip(seq, tmp / f"sq{n}.mp4") for n in range(runs)]))
    return table(f"live — a 30 s clip ending 10 s after the request, median of {runs}",
                 ["source, path", "s to completed", f"worst s (target ≤ {TARGET_SECONDS})",
                  "bytes served / clip bytes (target ≤ 1.3)",
                  "worst gap, first frame to window start, s (target ≤ 2)"], rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    print(run(parser.parse_args(argv).runs))


if __name__ == "__main__":
    main()
