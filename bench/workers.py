"""workers: clips per minute with ``JOB_BACKEND=celery`` on 1 worker vs 2 workers on one
machine (``celery -A src.worker worker -Q clips,encodes,live -c 1`` each), and the threads
backend alongside (one gunicorn, 1 worker, ``MAX_CONCURRENT_JOBS`` = 2 threads): 20 clips
(10 s of the 720p DASH source each, at different offsets, behind nginx with ``limit_rate`` per
connection) saved, then queued at once through ``POST /api/video/download/{id}``
(``DOWNLOAD_WAIT_SECONDS=0``: 202 at once). Timed from the first request to the last clip
``completed`` (polled on GET /api/video/status). Queue latency (enqueue → started): each
clip's request time (this process's clock) to the ``… for video {id} started …`` line the
process that ran it logged (celery: src/worker.py; threads: src/services/jobs.py), p50 and
p99 (nearest rank) over the 20 of a run. Each configuration runs ``--runs`` times (default 3,
alternating so each sees the same background load); the table gives the median of the runs
for clips/min, seconds, p50 and p99, the runs' clips/min themselves, and p50/p99 over the
pooled waits of all runs (60 with 3 runs, so the pooled p99 is not just one run's slowest).

Processes: tests/celery_procs.py (the same gunicorn and Celery commands as the failure tests);
MongoDB is scripts/mongo_wire.py in a child process (a mongomock TEST DOUBLE: its one lock is
part of what is measured). Redis: ``BENCH_REDIS_URI`` (default redis://127.0.0.1:6379/12,
flushed before and after).

Run: ``.venv/bin/python -m bench.workers [--runs 3] [--rate 4m]`` (≈ 2.5 min for the
default on 2 CPUs, most of it starting processes).
"""
from __future__ import annotations

import argparse
import math
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import redis

from bench.common import Nginx, median, table
from scripts.local_source import DASH_MPD, DEFAULT_CACHE, build_sources
from scripts.mongo_wire import MongoWireServer
from tests.celery_procs import Api, User, Worker, kill_ffmpeg_under, settings, wait_all

REDIS_URI = os.environ.get("BENCH_REDIS_URI", "redis://127.0.0.1:6379/12")
CLIPS, SECONDS = 20, 10
STARTED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ .* for video (\w+) started",
                     re.M)


def _nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


def _started_at(logs: list[Path]) -> dict[str, float]:
    """video id → epoch seconds of its job's first "started" log line (asctime: local time)."""
    found: dict[str, float] = {}
    for path in logs:
        if path.exists():
            for stamp, video_id in STARTED.findall(path.read_text(errors="replace")):
                at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
                found[video_id] = min(at, found.get(video_id, at))
    return found


def one_run(backend: str, workers: int, source_url: str) -> dict:
    """20 clips on a fresh set of processes: ``{"clips_per_min", "p50", "p99", "seconds",
    "waits"}`` (waits: the 20 queue latencies, seconds)."""
    redis.Redis.from_url(REDIS_URI).flushdb()
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        base = Path(tmp)
        wire = MongoWireServer(subprocess=True).start()
        procs: list = []
        try:
            env = {**settings(base, REDIS_URI, wire.uri, backend), "LOG_LEVEL": "INFO"}
            cel = [Worker(f"w{n}", env, base) for n in range(workers)] \
                if backend == "celery" else []
            api = Api("api", env, base).start()
            procs += [api, *cel]
            for proc in procs:
                proc.wait_ready()
            user = User(api.url)
            ids = [user.save_clip(api.url, source_url, 30 + 20 * n, 30 + 20 * n + SECONDS)
                   for n in range(CLIPS)]
            time.sleep(2)  # the saves' background look-ups of the resolutions end first
            asked: dict[str, float] = {}

            def ask(video_id: str) -> int:
                asked[video_id] = time.time()
                return user.download(api.url, video_id).status_code

            started = time.monotonic()
            with ThreadPoolExecutor(8) as pool:  # all at once (CeleryBackend.celery is locked)
                codes = list(pool.map(ask, ids))
            assert codes == [202] * CLIPS, codes
            ends = wait_all(lambda v: user.clip_status(api.url, v), ids, timeout=600, poll=0.2)
            seconds = time.monotonic() - started
            assert all(e["status"] == "completed" for e in ends.values()), ends
            logs = [w.app_log for w in cel] + [api.dir / "app.log"]
            begun = _started_at(logs)
            waits = [begun[v] - asked[v] for v in ids]
        finally:
            for proc in procs:
                proc.stop()
            kill_ffmpeg_under(base)
            wire.stop()
            redis.Redis.from_url(REDIS_URI).flushdb()
    return {"clips_per_min": CLIPS * 60 / seconds, "p50": _nearest_rank(waits, 0.5),
            "p99": _nearest_rank(waits, 0.99), "seconds": seconds, "waits": waits}


def run(runs: int = 3, rate: str = "4m") -> str:
    build_sources(DEFAULT_CACHE)
    configs = [("celery", 1, "celery, 1 worker (-c 1)"), ("celery", 2, "celery, 2 workers (-c 1)"),
               ("threads", 0, "threads, 1 gunicorn worker, 2 job threads")]
    results: dict = {label: [] for *_, label in configs}
    with Nginx(DEFAULT_CACHE, rate=rate) as nginx:
        for _ in range(runs):  # alternate, so each sees the same background load
            for backend, workers, label in configs:
                results[label].append(one_run(backend, workers, nginx.url(DASH_MPD)))
    return report(results, [label for *_, label in configs], runs, rate)


def report(results: dict[str, list[dict]], labels: list[str], runs: int, rate: str) -> str:
    """The Markdown table of :func:`run` from ``{label: [one_run() result, ...]}`` (the first
    two labels: celery with 1 and with 2 workers, for the ratio)."""
    rows = []
    for label in labels:
        rs = results[label]
        pooled = [w for r in rs for w in r["waits"]]
        rows.append([label, f"{median([r['clips_per_min'] for r in rs]):.1f}",
                     " / ".join(f"{r['clips_per_min']:.1f}" for r in rs),
                     f"{median([r['seconds'] for r in rs]):.1f}",
                     f"{median([r['p50'] for r in rs]):.2f}",
                     f"{median([r['p99'] for r in rs]):.2f}",
                     f"{_nearest_rank(pooled, 0.5):.2f} / {_nearest_rank(pooled, 0.99):.2f}"])
    one, two = (median([r["clips_per_min"] for r in results[label]]) for label in labels[:2])
    rows.append(["ratio 2 workers / 1 worker", f"{two / one:.2f}", "", "", "", "", ""])
    return table(f"workers — {CLIPS} clips of {SECONDS} s (720p DASH, nginx limit_rate {rate}) "
                 f"queued at once, median of {runs} runs",
                 ["backend", "clips/min (median)", "clips/min per run", "seconds for 20",
                  "queue p50 s", "queue p99 s", f"pooled p50 / p99 s ({runs}×{CLIPS})"], rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", default="4m", help="nginx limit_rate per connection")
    args = parser.parse_args(argv)
    print(run(args.runs, args.rate))


if __name__ == "__main__":
    main()
