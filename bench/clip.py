"""clip: time to a finished 30 s clip (minute 5 of a 10-minute 720p video) and bytes served by
the source, for a DASH and a single-MP4 source behind nginx with ``limit_rate`` per connection.
The DASH source is its manifest; the single MP4 is named by a watch page (``WATCH_PAGE``), as
YouTube's progressive format is.

Compared in the same run, same clip, same source:
- the service: ``POST /api/video/download/{id}`` (DOWNLOAD_WAIT_SECONDS=120, so the answer is
  the file) on a clip saved just before (not measured, nor the resolutions the save lists in
  the background), timed from the request to the last byte
  of the 200; its bytes are those served from that request on;
- the service with the ranged fetch turned off (ffmpeg reads the URLs: the previous behaviour);
- yt-dlp's CLI: ``yt-dlp --download-sections "*300-330"``;
- full download + cut: ``yt-dlp`` (whole video) then ``ffmpeg -ss 300 -t 30 -c copy``.
Bytes are nginx's ``$body_bytes_sent`` (manifest and watch page included); "× clip" divides
them by the size of the file that method produced. "In 200 answers": requests without a Range
header — the manifest, the watch page, a full download. "× clip bytes, Range requests" leaves
them out: what fetching the segment itself read.

Run: ``.venv/bin/python -m bench.clip [--runs 5] [--rate 4m] [--skip-full]``.
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from bench import app as bench_app
from bench.api import settings
from bench.common import VENV_BIN, Nginx, call, gunicorn, median, stop, table, wait_listing
from scripts.local_source import DASH_MPD, DEFAULT_CACHE, LONG_MP4, build_sources

START, END = 300, 330
#: The single MP4 is reached the way YouTube's progressive format is: through a watch page that
#: names the media URL, so extraction reads the page and never GETs the media file. (Given the
#: MP4's own URL, yt-dlp's generic extractor GETs it without Range to sniff its type, and nginx
#: pushes its first-second allowance into the socket: ≈ 4 MB that no YouTube clip pays.)
WATCH_PAGE = "watch/long.html"
PAGES = {WATCH_PAGE: '<!DOCTYPE html><html><head><title>long</title></head><body>'
                     f'<video controls src="/{LONG_MP4}"></video></body></html>'}
FULL = "full download + ffmpeg cut"
FORMAT = "bv*[height<=720][ext=mp4]+ba[ext=m4a]/b[ext=mp4]/b"
YTDLP = [str(VENV_BIN / "yt-dlp"), "-q", "--no-progress", "--no-cache-dir", "--force-overwrites",
         "--no-part", "-f", FORMAT]


def _service_run(nginx: Nginx, base: str, ids: dict, url: str, out: Path) -> tuple:
    """Save a fresh clip (not measured), then time ``POST /api/video/download/{id}`` to the
    last byte of its 200; returns ``(file, seconds, nginx log offset at the download)``."""
    status, body = call("POST", f"{base}/api/video/save", {
        "url": url, "start_time": START, "end_time": END, "user_id": ids["user_id"]},
        token=ids["public"])
    assert status == 201, (status, body)
    wait_listing(base, ids["token"], body["video_id"])
    offset, started = nginx.log_offset(), time.monotonic()
    status, data = call("POST", f"{base}/api/video/download/{body['video_id']}",
                        {"format_preference": "mp4", "resolution_preference": "720p"},
                        token=ids["token"])
    seconds = time.monotonic() - started
    assert status == 200 and isinstance(data, bytes), (status, data)
    out.write_bytes(data)
    return out, seconds, offset


def _ytdlp_sections(url: str, folder: Path) -> Path:
    subprocess.run([*YTDLP, "--download-sections", f"*{START}-{END}", "-o",
                    str(folder / "clip.%(ext)s"), url], check=True)
    return next(folder.glob("clip.*"))


def _full_and_cut(url: str, folder: Path) -> Path:
    subprocess.run([*YTDLP, "-o", str(folder / "full.%(ext)s"), url], check=True)
    full = next(folder.glob("full.*"))
    out = folder / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", str(START), "-t", str(END - START),
                    "-i", str(full), "-c", "copy", str(out)], check=True)
    return out


def _measure(nginx: Nginx, fn, tmp: Path) -> tuple:
    """(seconds, bytes served, clip bytes, clip duration, bytes in 200 answers) of one run of
    ``fn(folder)``, which returns the clip's path, or ``(path, seconds, log offset)`` when it
    times only part of its work."""
    folder = Path(tempfile.mkdtemp(dir=tmp))
    offset = nginx.log_offset()
    started = time.monotonic()
    out = fn(folder)
    seconds = time.monotonic() - started
    if isinstance(out, tuple):
        out, seconds, offset = out
    served = nginx.bytes_since(offset)
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                            "csv=p=0", str(out)], capture_output=True, text=True).stdout
    return (seconds, served["all"], out.stat().st_size, float(probe.strip() or 0),
            served.get(200, 0))


def run(runs: int = 5, rate: str = "4m", skip_full: bool = False) -> str:
    build_sources(DEFAULT_CACHE)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-clip-") as tmp, \
            Nginx(DEFAULT_CACHE, rate, PAGES) as nginx:
        tmp = Path(tmp)
        env = {**settings(tmp), "DOWNLOAD_WAIT_SECONDS": "120", "MAX_CONCURRENT_JOBS": "2"}
        seed = str(tmp / "seed.json")
        ids = bench_app.prepare(env, seed)
        servers = {
            "service (ranged fetch)": gunicorn("bench.app:service()", {
                **env, "BENCH_SEED": seed}, workers=1, log=tmp / "ranged.log"),
            "service, ffmpeg over HTTP (before)": gunicorn("bench.app:service()", {
                **env, "BENCH_SEED": seed, "BENCH_SEGMENT_CONNECTIONS": "0"}, workers=1,
                log=tmp / "direct.log"),
        }
        try:
            for source, path in (("DASH", DASH_MPD), ("MP4", WATCH_PAGE)):
                url = nginx.url(path)
                methods = {name: (lambda folder, base=base, url=url: _service_run(
                    nginx, base, ids, url, folder / "clip.mp4"))
                    for name, (_, base) in servers.items()}
                methods["yt-dlp --download-sections"] = lambda folder, url=url: _ytdlp_sections(
                    url, folder)
                if not skip_full:
                    methods[FULL] = lambda folder, url=url: _full_and_cut(url, folder)
                for name, fn in methods.items():  # warm-up (imports, page cache)
                    if name != FULL:
                        _measure(nginx, fn, tmp)
                results = {name: [] for name in methods}
                for _ in range(runs):  # interleaved, so all methods see the same load
                    for name, fn in methods.items():
                        results[name].append(_measure(nginx, fn, tmp))
                ytdlp = results["yt-dlp --download-sections"]
                for name, rs in results.items():
                    rows.append([source, name, f"{median([r[0] for r in rs]):.2f}",
                                 f"{median([a[0] / b[0] for a, b in zip(rs, ytdlp)]):.2f}",
                                 f"{median([r[1] for r in rs]) / 1e6:.2f}",
                                 f"{median([r[4] for r in rs]) / 1e6:.2f}",
                                 f"{median([r[1] / r[2] for r in rs]):.2f}",
                                 f"{median([(r[1] - r[4]) / r[2] for r in rs]):.2f}",
                                 f"{median([r[3] for r in rs]):.2f}"])
        finally:
            for proc, _ in servers.values():
                stop(proc)
    return table(f"clip — 30 s at minute 5, nginx limit_rate {rate}/connection, median of {runs}",
                 ["source", "method", "seconds", "× yt-dlp time", "MB served",
                  "of which in 200 answers", "× clip bytes", "× clip bytes, Range requests",
                  "clip s"], rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", default="4m", help="nginx limit_rate per connection")
    parser.add_argument("--skip-full", action="store_true", help="leave out full download + cut")
    args = parser.parse_args(argv)
    print(run(args.runs, args.rate, args.skip_full))


if __name__ == "__main__":
    main()
