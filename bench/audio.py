"""audio: an audio-only clip (issue 18, item 1) — 30 s at minute 5 of the local DASH ladder as
mp3 (encoded, 192 kbit/s) and m4a (the source's AAC copied) — through
``POST /api/video/download/{id}``, behind nginx with ``limit_rate`` per connection.

Bytes are nginx's ``$body_bytes_sent`` per file: the audio representation's, set against what
that stream holds for the 30 s (its size / 600 s × 30 s; target ≤ 1.2 ×), and the video
representations' (target: none). Seconds from the request to the last byte of the 200.

Run: ``.venv/bin/python -m bench.audio [--runs 5] [--rate 4m]``.
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from bench import app as bench_app
from bench.api import settings
from bench.common import Nginx, call, gunicorn, median, stop, table, wait_listing
from scripts.local_source import DASH_MPD, DEFAULT_CACHE, build_sources

START, END = 300, 330
AUDIO = "/dash/audio.m4a"
VIDEOS = ("/dash/video_720p.mp4", "/dash/video_480p.mp4")


def _clip(nginx: Nginx, base: str, ids: dict, body: dict, out: Path) -> tuple:
    """Save a fresh clip of the ladder (not measured), download it with ``body``; returns
    ``(seconds, audio bytes, video bytes)``."""
    status, saved = call("POST", f"{base}/api/video/save", {
        "url": nginx.url(DASH_MPD), "start_time": START, "end_time": END,
        "user_id": ids["user_id"]}, token=ids["public"])
    assert status == 201, (status, saved)
    wait_listing(base, ids["token"], saved["video_id"])
    offset, started = nginx.log_offset(), time.monotonic()
    status, data = call("POST", f"{base}/api/video/download/{saved['video_id']}", body,
                        token=ids["token"])
    seconds = time.monotonic() - started
    assert status == 200 and isinstance(data, bytes), (status, data)
    out.write_bytes(data)
    uris = nginx.bytes_since(offset)["uris"]
    return seconds, uris.get(AUDIO, 0), sum(uris.get(v, 0) for v in VIDEOS)


def run(runs: int = 5, rate: str = "4m") -> str:
    build_sources(DEFAULT_CACHE)
    window = (DEFAULT_CACHE / AUDIO.lstrip("/")).stat().st_size / 600 * (END - START)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-audio-") as tmp, \
            Nginx(DEFAULT_CACHE, rate) as nginx:
        tmp = Path(tmp)
        env = {**settings(tmp), "DOWNLOAD_WAIT_SECONDS": "120", "MAX_CONCURRENT_JOBS": "2"}
        seed = str(tmp / "seed.json")
        ids = bench_app.prepare(env, seed)
        proc, base = gunicorn("bench.app:service()", {**env, "BENCH_SEED": seed}, workers=1,
                              log=tmp / "audio.log")
        try:
            for name, body in (("mp3, 192 kbit/s (encoded)", {"format_preference": "mp3"}),
                               ("m4a (AAC copied)", {"format_preference": "m4a"})):
                out = tmp / f"clip.{body['format_preference']}"
                _clip(nginx, base, ids, body, out)  # warm-up
                results = [_clip(nginx, base, ids, body, out) for _ in range(runs)]
                duration = subprocess.run(
                    ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                     "csv=p=0", str(out)], capture_output=True, text=True).stdout.strip()
                rows.append([name, f"{median([r[0] for r in results]):.2f}",
                             f"{median([r[1] for r in results]) / 1e6:.3f}",
                             f"{median([r[1] / window for r in results]):.2f}",
                             f"{median([r[2] for r in results])}", duration])
        finally:
            stop(proc)
    return table(f"audio — 30 s at minute 5 of the DASH ladder, nginx limit_rate {rate}/connection"
                 f", median of {runs}",
                 ["clip", "seconds", "MB of audio served", "× the 30 s of audio (target ≤ 1.2)",
                  "video bytes served (target 0)", "clip s"], rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", default="4m", help="nginx limit_rate per connection")
    args = parser.parse_args(argv)
    print(run(args.runs, args.rate))


if __name__ == "__main__":
    main()
