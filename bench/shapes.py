"""shapes: time to a finished 30 s clip and bytes served, for every source shape of issue 12
(:mod:`scripts.shapes`: what plain ``ffmpeg -f dash`` / ``-f hls`` / ``-f webm`` write), behind
nginx with ``limit_rate`` per connection, side by side with ``yt-dlp --download-sections`` on
the same source and range in the same run.

The service's time is ``POST /api/video/download/{id}`` on a clip saved just before (not
measured, nor the resolutions it lists in the background), from the request to the last byte of the
200 (DOWNLOAD_WAIT_SECONDS=120), as in
:mod:`bench.clip`. Bytes are nginx's ``$body_bytes_sent`` of every request from the download
on (manifests, playlists and keys included); "× clip" divides them by the size of the file
that method produced. yt-dlp reads through ffmpeg for a section of these protocols; where it
cannot extract a shape at all the row says so.

nginx's send buffer is fixed at :data:`SNDBUF`: a GET that the client closes after the headers
(yt-dlp's generic extractor opens a direct media link to read its Content-Type, in the service
and in yt-dlp alike) is logged with what nginx wrote into the socket, and on loopback the
kernel autotunes that buffer to megabytes, which no real network's window would carry.

Targets (issue 12): service time ≤ 0.5 × yt-dlp's, bytes served ≤ 1.2 × the clip's bytes
(fragment granularity allowed; BENCHMARKS.md says what bounds each shape).

Run: ``.venv/bin/python -m bench.shapes [--runs 3] [--rate 4m] [--only hls_ts,webm_cues_end]``.
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from bench import app as bench_app
from bench.api import settings
from bench.clip import YTDLP, _measure
from bench.common import Nginx, call, gunicorn, median, stop, table, wait_listing
from scripts.shapes import DEFAULT_CACHE, build_shapes

#: shape → (path under the shapes cache, start s, end s, format_preference, yt-dlp -f). The
#: service asks for 720p; the ≥1440p ladder is asked for as WebM (no re-encode: the encode lane
#: is measured by bench.encode), yt-dlp for the same streams.
CASES = {
    "dash_number": ("dash_number/manifest.mpd", 300, 330, "mp4", None),
    "dash_time": ("dash_time/manifest.mpd", 300, 330, "mp4", None),
    "dash_list": ("dash_list/manifest.mpd", 300, 330, "mp4", None),
    "hls_ts": ("hls_ts/index.m3u8", 300, 330, "mp4", None),
    "hls_fmp4": ("hls_fmp4/index.m3u8", 300, 330, "mp4", None),
    "hls_aes": ("hls_aes/index.m3u8", 300, 330, "mp4", None),
    "hls_byterange": ("hls_byterange/index.m3u8", 300, 330, "mp4", None),
    "hls_master": ("hls_master/master.m3u8", 300, 330, "mp4", None),
    "webm_cues_end": ("webm/cues_end.webm", 300, 330, "webm", "b"),
    "webm_cues_front": ("webm/cues_front.webm", 300, 330, "webm", "b"),
    "hires (1440p VP9 ladder)": ("hires/manifest.mpd", 20, 50, "webm",
                                 "bv*[ext=webm]+ba[ext=webm]"),
}
DEFAULT_FORMAT = "bv*[height<=720][ext=mp4]+ba[ext=m4a]/b[height<=720][ext=mp4]/b"
SERVICE, YTDLP_NAME = "service", "yt-dlp --download-sections"
SNDBUF = "128k"


def _service(base: str, ids: dict, url: str, case: tuple, out: Path, nginx: Nginx) -> tuple:
    """Save a clip (not measured), then time its download; ``(file, seconds, log offset)``,
    or raise RuntimeError with the service's error answer."""
    _, start, end, preference, _ = case
    status, body = call("POST", f"{base}/api/video/save", {
        "url": url, "start_time": start, "end_time": end, "user_id": ids["user_id"]},
        token=ids["public"])
    assert status == 201, (status, body)
    wait_listing(base, ids["token"], body["video_id"])
    offset, started = nginx.log_offset(), time.monotonic()
    status, data = call("POST", f"{base}/api/video/download/{body['video_id']}",
                        {"format_preference": preference, "resolution_preference": "720p"
                         if preference == "mp4" else "best"}, token=ids["token"])
    seconds = time.monotonic() - started
    if status != 200 or not isinstance(data, bytes):
        raise RuntimeError(f"{status} {data.get('code') if isinstance(data, dict) else data!r}")
    out.write_bytes(data)
    return out, seconds, offset


def _ytdlp(url: str, case: tuple, folder: Path) -> Path:
    _, start, end, _, fmt = case
    done = subprocess.run([*YTDLP[:-1], fmt or DEFAULT_FORMAT, "--download-sections",
                           f"*{start}-{end}", "-o", str(folder / "clip.%(ext)s"), url],
                          capture_output=True, text=True)
    found = list(folder.glob("clip.*"))
    if done.returncode or not found:
        lines = (done.stderr or "failed").strip().splitlines()
        raise RuntimeError(lines[-1][:80] if lines else "failed")
    return found[0]


def _try(nginx: Nginx, fn, tmp: Path):
    try:
        result = _measure(nginx, fn, tmp)
    except (RuntimeError, AssertionError, subprocess.SubprocessError) as exc:
        return str(exc)
    return result if result[3] >= 1 else f"an empty clip ({result[3]:.2f} s)"


def run(runs: int = 3, rate: str = "4m", only=None) -> str:
    build_shapes(DEFAULT_CACHE)
    cases = {name: case for name, case in CASES.items() if not only or name.split()[0] in only}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-shapes-") as tmp, \
            Nginx(DEFAULT_CACHE, rate, sndbuf=SNDBUF) as nginx:
        tmp = Path(tmp)
        env = {**settings(tmp), "DOWNLOAD_WAIT_SECONDS": "120", "MAX_CONCURRENT_JOBS": "2"}
        seed = str(tmp / "seed.json")
        ids = bench_app.prepare(env, seed)
        proc, base = gunicorn("bench.app:service()", {**env, "BENCH_SEED": seed}, workers=1,
                              log=tmp / "service.log")
        try:
            for name, case in cases.items():
                url = nginx.url(case[0])
                methods = {
                    SERVICE: lambda folder, case=case, url=url: _service(
                        base, ids, url, case, folder / "clip.out", nginx),
                    YTDLP_NAME: lambda folder, case=case, url=url: _ytdlp(url, case, folder),
                }
                for fn in methods.values():  # warm-up (imports, page cache)
                    _try(nginx, fn, tmp)
                results = {method: [] for method in methods}
                for _ in range(runs):  # interleaved, so both see the same load
                    for method, fn in methods.items():
                        results[method].append(_try(nginx, fn, tmp))
                rows += _rows(name, results)
        finally:
            stop(proc)
    return table(f"shapes — 30 s clips, nginx limit_rate {rate}/connection, median of {runs}",
                 ["shape", "method", "seconds", "× yt-dlp time", "MB served", "clip MB",
                  "× clip bytes", "clip s"], rows)


def _rows(shape: str, results: dict) -> list:
    """Table rows of one shape: medians of the runs that worked, or the first error."""
    rows, ytdlp = [], [r for r in results[YTDLP_NAME] if not isinstance(r, str)]
    for method, rs in results.items():
        good = [r for r in rs if not isinstance(r, str)]
        if not good:
            rows.append([shape, method, f"fails: {rs[0]}", "", "", "", "", ""])
            continue
        ratio = (f"{median([a[0] for a in good]) / median([b[0] for b in ytdlp]):.2f}"
                 if ytdlp else "—")
        rows.append([shape, method, f"{median([r[0] for r in good]):.2f}", ratio,
                     f"{median([r[1] for r in good]) / 1e6:.2f}",
                     f"{median([r[2] for r in good]) / 1e6:.2f}",
                     f"{median([r[1] / r[2] for r in good]):.2f}",
                     f"{median([r[3] for r in good]):.2f}"])
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", default="4m", help="nginx limit_rate per connection")
    parser.add_argument("--only", default="", help="comma-separated shape names")
    args = parser.parse_args(argv)
    print(run(args.runs, args.rate, [s for s in args.only.split(",") if s] or None))


if __name__ == "__main__":
    main()
