"""api: ``wrk`` on authenticated ``GET /api/video/status/{id}`` under gunicorn (2 workers,
gthread, 4 threads) against a bare Flask JSON endpoint under the same gunicorn settings.

Run: ``.venv/bin/python -m bench.api [--runs 5] [--seconds 5] [--connections 16]``.
Redis: the local server (``BENCH_REDIS_URI``, default redis://127.0.0.1:6379/14, flushed);
MongoDB: mongomock seeded identically in each worker (see bench/app.py).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
from pathlib import Path

import redis

from bench import app as bench_app
from bench.common import call, gunicorn, median, stop, table

REDIS_URI = os.environ.get("BENCH_REDIS_URI", "redis://127.0.0.1:6379/14")


def settings(tmp: Path) -> dict:
    """The environment of the service under benchmark (shared secrets, shared Redis)."""
    return {"APP_ENV": "development", "LOG_LEVEL": "WARNING", "REDIS_URI": REDIS_URI,
            "JWT_PUBLIC_SECRET": "bench-public-secret-" + "p" * 24,
            "JWT_PRIVATE_SECRET": "bench-private-secret-" + "q" * 24,
            "FLASK_SECRET_KEY": "bench-flask-secret", "BCRYPT_ROUNDS": "4",
            "DOWNLOADS_DIR": str(tmp / "downloads"), "UPLOADS_DIR": str(tmp / "uploads"),
            "LOG_FILE": str(tmp / "app.log"),
            # the local sources and nginx of the benchmarks listen on free ports
            "ALLOWED_SOURCE_HOSTS": "youtube.com,www.youtube.com,127.0.0.1:*",
            "RATE_LIMIT_SAVE_TOKEN": "100000/minute", "RATE_LIMIT_SAVE_IP": "100000/minute"}


def wrk(url: str, seconds: int, connections: int, token: str | None = None) -> dict:
    """One wrk run (2 threads): ``{"rps", "p50_ms", "p99_ms", "errors"}``."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {"rps": rps, "p50_ms": _ms(re.search(r"^\s+50%\s+(\S+)", text, re.M)[1]),
            "p99_ms": _ms(re.search(r"^\s+99%\s+(\S+)", text, re.M)[1]),
            "errors": int(errors[1]) if errors else 0}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run(runs: int = 5, seconds: int = 5, connections: int = 16) -> str:
    redis.Redis.from_url(REDIS_URI).flushdb()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        tmp = Path(tmp)
        env = settings(tmp)
        seed = str(tmp / "seed.json")
        ids = bench_app.prepare(env, seed, clip_url="http://127.0.0.1:9/long.mp4")
        service, service_url = gunicorn("bench.app:service()", {**env, "BENCH_SEED": seed},
                                        log=tmp / "gunicorn.log")
        bare, bare_url = gunicorn("bench.app:bare()", {})
        try:
            status_url = f"{service_url}/api/video/status/{ids['video_id']}"
            for _ in range(8):  # both workers answer for the seeded user
                code, body = call("GET", status_url, token=ids["token"])
                assert code == 200 and body["status"] == "pending", (code, body)
            wrk(status_url, 2, connections, ids["token"])  # warm-up
            wrk(f"{bare_url}/status", 2, connections)
            results = {"status": [], "bare": []}
            for _ in range(runs):  # alternate, so both see the same background load
                results["status"].append(wrk(status_url, seconds, connections, ids["token"]))
                results["bare"].append(wrk(f"{bare_url}/status", seconds, connections))
        finally:
            stop(service)
            stop(bare)
    rows = []
    for name, label in (("status", "GET /api/video/status/{id} (auth)"),
                        ("bare", "bare Flask JSON endpoint")):
        rs = results[name]
        rows.append([label, f"{median([r['rps'] for r in rs]):.0f}",
                     f"{median([r['p50_ms'] for r in rs]):.1f}",
                     f"{median([r['p99_ms'] for r in rs]):.1f}",
                     sum(r["errors"] for r in rs)])
    ratio = median([s["rps"] / b["rps"] for s, b in zip(results["status"], results["bare"])])
    rows.append(["ratio status / bare (target ≥ 0.5, p99 < 100 ms)", f"{ratio:.2f}", "", "", ""])
    return table(f"api — wrk -t2 -c{connections} -d{seconds}s, gunicorn 2 workers gthread x4, "
                 f"median of {runs}", ["endpoint", "req/s", "p50 ms", "p99 ms", "non-2xx"], rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)
    print(run(args.runs, args.seconds, args.connections))


if __name__ == "__main__":
    main()
