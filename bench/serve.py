"""serve: server RSS while a 1 GB result file is downloaded through
``POST /api/video/download/{id}`` (gunicorn, 2 workers, gthread), sampled every 10 ms.

The file is sparse (``truncate``: 1 GiB of zeros, nothing on disk) with an .mp4 name; the clip
record pointing to it is created through the app's store by the bench-only seed (bench/app.py).
Run: ``.venv/bin/python -m bench.serve [--runs 5] [--size-mb 1024]``.
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import redis

from bench import app as bench_app
from bench.api import REDIS_URI, settings
from bench.common import gunicorn, median, stop, table


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS"))
    except (OSError, StopIteration):
        return 0


def _workers(master: int) -> list:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True,
                         text=True).stdout
    return [int(pid) for pid in out.split()]


def run(runs: int = 5, size_mb: int = 1024) -> str:
    redis.Redis.from_url(REDIS_URI).flushdb()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        tmp = Path(tmp)
        env = settings(tmp)
        big = tmp / "downloads" / "result.mp4"
        big.parent.mkdir(parents=True)
        with open(big, "wb") as fh:
            fh.truncate(size_mb * 1024 * 1024)
        seed = str(tmp / "seed.json")
        ids = bench_app.prepare(env, seed, clip_url="http://127.0.0.1:9/long.mp4",
                                completed_file=str(big))
        proc, base = gunicorn("bench.app:service()", {**env, "BENCH_SEED": seed},
                              log=tmp / "gunicorn.log")
        results = []
        try:
            workers = _workers(proc.pid)
            url = f"{base}/api/video/download/{ids['video_id']}"
            curl = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} "
                    "%{time_total}", "-X", "POST", "-H", f"Authorization: Bearer {ids['token']}",
                    "-H", "Content-Type: application/json", "-d",
                    '{"format_preference": "mp4", "resolution_preference": "720p"}', url]
            for i in range(runs + 1):  # the first run warms both workers up and is dropped
                before = sum(_rss_kb(pid) for pid in workers)
                peak, done = [before], threading.Event()

                def sample(peak=peak, done=done):
                    while not done.is_set():
                        peak.append(sum(_rss_kb(pid) for pid in workers))
                        time.sleep(0.01)

                sampler = threading.Thread(target=sample)
                sampler.start()
                out = subprocess.run(curl, capture_output=True, text=True).stdout.split()
                done.set()
                sampler.join()
                code, size, seconds = out[0], int(out[1]), float(out[2])
                assert code == "200" and size == big.stat().st_size, out
                if i:
                    results.append((before, max(peak), seconds, size))
        finally:
            stop(proc)
    rows = [["workers' RSS before (MB)", f"{median([r[0] for r in results]) / 1024:.1f}"],
            ["workers' RSS peak while serving (MB)",
             f"{median([r[1] for r in results]) / 1024:.1f}"],
            ["growth (MB; target: flat)", f"{median([r[1] - r[0] for r in results]) / 1024:.1f}"],
            ["transfer (s)", f"{median([r[2] for r in results]):.2f}"],
            ["throughput (MB/s)", f"{median([r[3] / r[2] for r in results]) / 1e6:.0f}"]]
    return table(f"serve — {size_mb} MB file via POST /api/video/download/{{id}}, "
                 f"gunicorn 2 workers gthread, median of {runs}", ["what", "value"], rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=1024)
    args = parser.parse_args(argv)
    print(run(args.runs, args.size_mb))


if __name__ == "__main__":
    main()
