"""Deploy smoke test (run by .ci/run): the production layout on loopback, end to end.

gunicorn (gunicorn_config.py, gthread) behind a real nginx (deploy/nginx.conf rendered for
127.0.0.1) with ``USE_X_ACCEL_REDIRECT=true``; a clip of the local source is saved and downloaded
THROUGH nginx, checked with ffprobe, and shown to have been streamed by nginx (gunicorn's access
log records a 0-byte body for it); ``/api/health`` and ``X-Request-ID`` through nginx; the body
limits per route (an upload under the limit passes, one over it is stopped by nginx with the app's
400 ``FILE_TOO_LARGE``, a 100 KiB JSON body elsewhere with 413 ``REQUEST_TOO_LARGE``, neither
reaching gunicorn); the Nightbot public token in a stream-save URL is in none of the logs
(nginx's access log shows ``/save/stream/[REDACTED]/``); the cleanup expires the clip under
gunicorn.

Workers: 2 gunicorn workers (8 threads each) in ``APP_ENV=production`` with the real Redis and
a MongoDB server: ``SMOKE_MONGODB_URI`` when set (a real MongoDB), else the mongomock-backed
wire server of scripts/mongo_wire.py in a child process — a TEST DOUBLE speaking the MongoDB
protocol, not MongoDB (none can be installed from the registries this project can reach; see
docs/deployment.md). The workers are shown to share state: gunicorn's access log gets the
worker pid (``pid=<N>``, appended to gunicorn_config.py's format); requests land on both
workers, a clip saved through one worker is downloaded through the other, and each cleanup slot
runs in one worker only (the clip's file is removed once).

Usage: ``python -m scripts.deploy_smoke`` (needs nginx, ffmpeg and Redis on 127.0.0.1:6379).
Exits non-zero with a reason on the first failed check.
"""
from __future__ import annotations

import ast
import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from scripts.demo import call, free_port
from scripts.local_source import SourceServer, build_sources
from scripts.mongo_wire import MongoWireServer
from src.media.ffmpeg import ffprobe

ROOT = Path(__file__).resolve().parent.parent
NGINX_MAIN = """worker_processes 1;
pid {t}/nginx.pid;
error_log {t}/logs/nginx-error.log;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    access_log {t}/logs/nginx-access.log;
    client_body_temp_path {t}/nginx-tmp/body;
    proxy_temp_path {t}/nginx-tmp/proxy;
    include {t}/site.conf;
}}
"""


def check(condition, message: str) -> None:
    if not condition:
        sys.exit(f"SMOKE FAILED: {message}")
    print(f"ok  {message}", flush=True)


def render_site(t: Path, app_port: int, nginx_port: int, max_upload_mb: int) -> str:
    """deploy/nginx.conf with the values a deployment edits, set for this loopback run."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    for old, new in (("server 127.0.0.1:5000;", f"server 127.0.0.1:{app_port};"),
                     ("listen 80;", f"listen 127.0.0.1:{nginx_port};"),
                     ("client_max_body_size 501M;", f"client_max_body_size {max_upload_mb + 1}M;"),
                     ("/var/log/nginx/yt-downloader.access.log", f"{t}/logs/nginx-access.log"),
                     ("/opt/yt-downloader/downloads/", f"{t}/downloads/"),
                     ("/opt/yt-downloader/uploads/", f"{t}/uploads/")):
        if old not in text:
            sys.exit(f"SMOKE FAILED: deploy/nginx.conf no longer contains {old!r}")
        text = text.replace(old, new)
    return text


def access_log_format() -> str:
    """gunicorn_config.py's ``access_log_format`` with `` pid=%(p)s`` (the worker's pid)."""
    tree = ast.parse((ROOT / "gunicorn_config.py").read_text())
    fmt = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
               and getattr(node.targets[0], "id", "") == "access_log_format")
    return fmt + " pid=%(p)s"


def start(t: Path, mongo: str, source_host: str):
    app_port, nginx_port = free_port(), free_port()
    env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{app_port}",
           "GUNICORN_WORKERS": "2", "GUNICORN_THREADS": "8", "APP_ENV": "production",
           "MONGODB_URI": mongo, "REDIS_URI": os.environ.get(
               "SMOKE_REDIS_URI", "redis://127.0.0.1:6379/12"),
           "JWT_PUBLIC_SECRET": secrets.token_urlsafe(32),
           "JWT_PRIVATE_SECRET": secrets.token_urlsafe(32),
           "FLASK_SECRET_KEY": secrets.token_hex(32),
           "COOKIES_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
           "LOG_FILE": str(t / "logs" / "app.log"), "DOWNLOADS_DIR": str(t / "downloads"),
           "UPLOADS_DIR": str(t / "uploads"), "USE_X_ACCEL_REDIRECT": "true",
           "TRUSTED_PROXY_COUNT": "1", "ALLOWED_SOURCE_HOSTS": source_host,
           "DOWNLOAD_WAIT_SECONDS": "60", "MAX_UPLOAD_SIZE_MB": "2",
           "VIDEO_RETENTION_MINUTES": "0.2", "CLEANUP_INTERVAL_MINUTES": "0.05",
           "RATE_LIMIT_KEY_PREFIX": f"smoke-{secrets.token_hex(4)}", "MIN_FREE_DISK_MB": "50"}
    gunicorn = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn_config.py",
                                 "--access-logformat", access_log_format(),
                                 "src.app:create_app()"], cwd=ROOT, env=env)
    (t / "site.conf").write_text(render_site(t, app_port, nginx_port, 2))
    (t / "nginx.conf").write_text(NGINX_MAIN.format(t=t))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    out = subprocess.run([nginx, "-t", "-p", str(t), "-c", str(t / "nginx.conf")],
                         capture_output=True, text=True)
    check(out.returncode == 0, "nginx -t accepts deploy/nginx.conf"
          + ("" if out.returncode == 0 else f": {out.stderr.strip()}"))
    subprocess.run([nginx, "-p", str(t), "-c", str(t / "nginx.conf")], check=True)
    return gunicorn, nginx, f"http://127.0.0.1:{nginx_port}", env


def wait_ready(base: str, gunicorn: subprocess.Popen) -> None:
    for _ in range(150):
        if gunicorn.poll() is not None:
            sys.exit("SMOKE FAILED: gunicorn exited; see logs above")
        try:
            with urllib.request.urlopen(base + "/api/health", timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("SMOKE FAILED: the API did not answer through nginx within 30 s")


def worker_pids(master: int) -> set[int]:
    """Pids of the gunicorn master's children (its workers), from /proc."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if int(fh.read().rsplit(")", 1)[1].split()[1]) == master:
                    found.add(int(pid))
        except (OSError, IndexError, ValueError):
            pass
    return found


def fetch(base: str, method: str, path: str, token: str | None = None):
    """One request through nginx, tagged ``?smoke=<hex>`` (an X-Accel-Redirect answer loses the
    X-Request-ID header) → ``(status, body bytes, tag)``."""
    tag = secrets.token_hex(8)
    req = urllib.request.Request(f"{base}{path}?smoke={tag}", method=method, data=b"{}"
                                 if method == "POST" else None,
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, resp.read(), tag
    except urllib.error.HTTPError as err:
        return err.code, err.read(), tag


def worker_of(t: Path, needle: str) -> int | None:
    """The pid of the gunicorn worker whose access-log line contains ``needle`` (a request id
    or a ``smoke=`` tag), or None when no such line appears within 5 s."""
    for _ in range(50):
        for line in (t / "logs" / "access.log").read_text().splitlines():
            found = re.search(r" pid=<(\d+)>$", line) if needle in line else None
            if found:
                return int(found.group(1))
        time.sleep(0.1)
    return None


def burst(base: str, t: Path, method: str, path: str, token=None, n=4) -> list[tuple]:
    """``n`` concurrent requests → ``[(worker pid, status, body)]`` (more than nginx's 16
    keep-alive upstream connections make it open new ones, which either worker accepts)."""
    results = []

    def one():
        status, body, tag = fetch(base, method, path, token)
        results.append((worker_of(t, f"smoke={tag} "), status, body))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results


def exercise(base: str, t: Path, source_url: str, workers: set[int]) -> None:
    with urllib.request.urlopen(base + "/api/health", timeout=10) as resp:
        check(resp.status == 200 and resp.headers["Server"].startswith("nginx")
              and re.fullmatch(r"[0-9a-f]{32}", resp.headers.get("X-Request-ID", "")),
              "GET /api/health through nginx: 200 with nginx's X-Request-ID echoed by the app")
        ytdlp = json.loads(resp.read())["checks"]["yt_dlp"]
    runtime = ytdlp.get("js_runtime") or {}
    check(runtime.get("name") == "deno" and ytdlp.get("ejs_version"),
          f"GET /api/health: yt-dlp {ytdlp.get('version')} finds its JS runtime "
          f"({runtime.get('name')} {runtime.get('version')}) and yt-dlp-ejs "
          f"{ytdlp.get('ejs_version')} under gunicorn (no PATH to the venv needed)")
    for probe, status in (("/livez", "alive"), ("/readyz", "ready")):
        with urllib.request.urlopen(base + probe, timeout=10) as resp:
            check(resp.status == 200 and json.loads(resp.read())["status"] == status,
                  f"GET {probe} through nginx: 200 {status}")
    answered: dict[int, int] = {}
    deadline = time.monotonic() + 30   # the second worker may still be loading the app
    while set(answered) != workers and time.monotonic() < deadline:
        for pid, status, _body in burst(base, t, "GET", "/api/health", n=24):
            answered[pid] = answered.get(pid, 0) + (status == 200)
        time.sleep(0.5)
    check(set(answered) == workers, f"requests through nginx answered by both workers "
          f"(requests per worker pid: {answered})")
    email = f"smoke-{secrets.token_hex(4)}@example.com"
    check(call(base, "POST", "/api/auth/register", {"email": email, "password": "smoke pass 1"})[0]
          == 201, "register")
    status, login = call(base, "POST", "/api/auth/login", {"email": email,
                                                           "password": "smoke pass 1"})
    check(status == 200, "login")
    token, user_id = login["token"], login["user"]["id"]
    public = call(base, "GET", "/api/auth/token/public", token=token)[1]["token"]  # bound
    req = urllib.request.Request(base + "/api/video/save", method="POST", data=json.dumps({
        "url": source_url, "start_time": 120, "end_time": 124, "user_id": user_id}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {public}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        status, saved = resp.status, json.loads(resp.read())
        saved_by = worker_of(t, resp.headers["X-Request-ID"])
    check(status == 201 and saved_by in workers, f"clip saved by worker {saved_by} ({saved})")
    video_id = saved["video_id"]
    req = urllib.request.Request(f"{base}/api/video/download/{video_id}", method="POST",
                                 data=b"{}", headers={"Content-Type": "application/json",
                                                      "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        body, headers = resp.read(), resp.headers
    out = t / "clip.mp4"
    out.write_bytes(body)
    # the clip's folder has a random name (not the video id): the only clip under downloads/,
    # beside its thumbnail of the moment
    files = [f for folder in (t / "downloads").iterdir() if folder.is_dir()
             for f in folder.iterdir() if f.suffix == ".mp4"]
    check(len(files) == 1 and files[0].stat().st_size == len(body) > 10_000,
          f"download through nginx: {len(body)} bytes, the same as the file on disk")
    check(headers["Content-Disposition"] == f'attachment; filename="video_{video_id}.mp4"',
          "Content-Disposition from the app kept by nginx")
    probe = ffprobe(str(out))
    kinds = {s["codec_type"] for s in probe["streams"]}
    duration = float(probe["format"]["duration"])
    check(kinds >= {"video", "audio"} and abs(duration - 4) <= 1.5,
          f"ffprobe: video+audio, {duration:.2f} s")
    access = (t / "logs" / "access.log").read_text()
    line = next((ln for ln in access.splitlines() if f"/api/video/download/{video_id}" in ln), "")
    check(re.search(r'" 200 0 ', line), f"gunicorn sent 0 bytes, nginx streamed the file: {line}")
    play_and_thumbnail(base, token, video_id, body)
    served = {}
    for _ in range(15):  # the kernel hands connections to the workers unevenly
        served.update({pid: len(data) for pid, code, data in burst(
            base, t, "POST", f"/api/video/download/{video_id}", token, n=24) if code == 200})
        if set(served) - {saved_by}:
            break
    other = sorted(set(served) - {saved_by})
    check(other and served[other[0]] == len(body), f"the clip saved by worker {saved_by} "
          f"downloaded through worker {other[0] if other else '-'} (same {len(body)} bytes; "
          f"both workers read the one store)")
    body_limits(base, t, token)
    tokens_not_logged(base, t, public)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        state = call(base, "GET", f"/api/video/status/{video_id}", token=token)[1]
        if state["status"] == "expired":
            break
        time.sleep(1)
    check(state["status"] == "expired" and not state["file_available"] and not files[0].exists(),
          "the cleanup expired the clip under gunicorn (file deleted, record kept)")
    app_log = (t / "logs" / "app.log").read_text()
    runs = re.findall(r"cleanup: run for slot (\d+) \(pid (\d+)\)", app_log)
    slots = [slot for slot, _pid in runs]
    removed = re.findall(rf"cleanup: removed (\S*{files[0].parent.name}\S*) ", app_log)
    skips = re.findall(r"cleanup: slot (\d+) already taken \(pid (\d+)\)", app_log)
    tries = len(runs) + len(skips)
    trying_pids = {pid for _slot, pid in runs + skips}
    check(len(trying_pids) == 2 and tries > len(runs) > 0
          and len(slots) == len(set(slots)) and removed and len(removed) == len(set(removed)),
          f"the cleanup is scheduled in both workers ({tries} tries) but ran once per slot "
          f"({len(runs)} runs, by pid(s) {sorted({int(pid) for _s, pid in runs})}) and removed "
          f"the clip's file once")
    seen: set = set()
    for _ in range(15):  # both workers now hold the session in their process copy
        seen |= {pid for pid, code, _ in burst(base, t, "GET", "/api/auth/me", token, n=24)
                 if code == 200}
        if seen == workers:
            break
    check(seen == workers, f"both workers answered GET /api/auth/me ({sorted(seen)})")
    check(call(base, "POST", "/api/auth/logout", token=token)[0] == 200, "logout")
    after = burst(base, t, "GET", "/api/auth/me", token, n=24)
    check(all(code == 401 for _, code, _ in after) and {pid for pid, _, _ in after} == workers,
          "right after logout, every request in both workers is refused (401): the revocation "
          f"reached both process copies ({sorted({pid for pid, _, _ in after})})")


def play_and_thumbnail(base: str, token: str, video_id: str, body: bytes) -> None:
    """The dashboard's player and thumbnail through nginx (issue 17, item 4): the signed play
    URL answers a Range with 206 and exactly those bytes (nginx serves the X-Accel-Redirect
    file and does the range), the list's thumbnail URL a cacheable JPEG."""
    play = call(base, "POST", f"/api/video/play/{video_id}", token=token)[1]["url"]
    req = urllib.request.Request(base + play, headers={"Range": "bytes=100-1099"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        status, part, ranged = resp.status, resp.read(), resp.headers["Content-Range"]
    check(status == 206 and part == body[100:1100] and ranged == f"bytes 100-1099/{len(body)}",
          f"the play URL through nginx: 206 {ranged}, the file's bytes 100-1099")
    [item] = call(base, "GET", "/api/video/list", token=token)[1]["videos"]
    with urllib.request.urlopen(base + item["thumbnail_url"], timeout=30) as resp:
        jpeg, kind, cache = resp.read(), resp.headers["Content-Type"], resp.headers[
            "Cache-Control"]
    check(jpeg[:2] == b"\xff\xd8" and kind == "image/jpeg" and cache.startswith(
        "private, max-age="), f"the clip's thumbnail through nginx: {len(jpeg)} bytes {kind}, "
        f"{cache}")


def post_raw(base: str, path: str, body: bytes, headers: dict) -> tuple[int, bytes, str]:
    """POST ``body`` through nginx, tagged ``?smoke=<hex>`` → ``(status, body, tag)``; a
    connection nginx closes while the body is still being sent counts as 413."""
    tag = secrets.token_hex(8)
    req = urllib.request.Request(f"{base}{path}?smoke={tag}", data=body, method="POST",
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read(), tag
    except urllib.error.HTTPError as err:
        return err.code, err.read(), tag
    except (ConnectionError, urllib.error.URLError):
        return 413, b"", tag


def body_limits(base: str, t: Path, token: str) -> None:
    """The split of deploy/nginx.conf: the upload limit on the upload route only."""
    clip = (ROOT / "tests" / "media" / "big_buck_bunny_720p_5s.mp4").read_bytes()
    form = (b'--x\r\nContent-Disposition: form-data; name="video"; filename="clip.mp4"\r\n'
            b"Content-Type: video/mp4\r\n\r\n" + clip + b"\r\n--x--\r\n")
    headers = {"Authorization": f"Bearer {token}",
               "Content-Type": "multipart/form-data; boundary=x"}
    status, body, _ = post_raw(base, "/api/encode/upload", form, headers)
    check(status == 201, f"a {len(form) >> 10} KiB upload passes nginx and is stored (201)")
    status, body, tag = post_raw(base, "/api/encode/upload", b"--x\r\n" + b"0" * (4 << 20),
                                 headers)
    nginx_errors = (t / "logs" / "nginx-error.log").read_text()
    answer = (status == 400 and json.loads(body)["code"] == "FILE_TOO_LARGE") or \
        (status == 413 and body == b"")     # reset while sending: the answer was not read
    check(answer and "client intended to send too large body" in nginx_errors,
          f"a 4 MiB upload stopped by nginx's client_max_body_size ({status} {body!r})")
    big_json = json.dumps({"email": "x@example.com", "password": "x" * (100 << 10)}).encode()
    status, body, tag2 = post_raw(base, "/api/auth/login", big_json,
                                  {"Content-Type": "application/json"})
    check(status == 413 and json.loads(body)["code"] == "REQUEST_TOO_LARGE",
          f"a 100 KiB JSON login body stopped by nginx in the one error shape ({body!r})")
    time.sleep(0.5)
    access = (t / "logs" / "access.log").read_text()
    check(tag not in access and tag2 not in access, "neither oversized body reached gunicorn")


def tokens_not_logged(base: str, t: Path, public: str) -> None:
    """A Nightbot stream-save URL carries the public token in its path; no log keeps it."""
    status, _body, _tag = fetch(base, "GET", f"/api/video/save/stream/{public}/bad-id")  # 400
    time.sleep(0.5)
    nginx_access = (t / "logs" / "nginx-access.log").read_text()
    check(status == 400 and "/api/video/save/stream/[REDACTED]/bad-id?smoke=" in nginx_access,
          f"nginx's access log shows the stream-save URL with its token redacted ({status})")
    leaked = [path.name for path in (t / "logs").iterdir()
              if path.is_file() and public in path.read_text(errors="replace")]
    check(not leaked, f"the public token is in no log file (checked "
          f"{sorted(p.name for p in (t / 'logs').iterdir() if p.is_file())}; found in {leaked})")


def _metric(text: str, name: str, **labels) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` in an exposition."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if match and match.group(1) == name and all(
                f'{k}="{v}"' in (match.group(2) or "") for k, v in labels.items()):
            total += float(match.group(3))
    return total


def metrics_summed(base: str, t: Path, workers: set[int]) -> None:
    """GET /metrics through nginx (loopback) answers for both workers (multiprocess mode)."""
    answered = burst(base, t, "GET", "/api/health", n=20)
    per_worker = {pid: sum(1 for p, status, _ in answered if p == pid and status == 200)
                  for pid in workers}
    for _ in range(2):  # whichever worker answers, the counts are the sum of both
        status, body, _tag = fetch(base, "GET", "/metrics")
        text = body.decode()
        health = _metric(text, "ytd_http_requests_total", endpoint="/api/health", status="200")
        check(status == 200 and health >= sum(per_worker.values()),
              f"GET /metrics through nginx: {health:.0f} health answers counted, at least the "
              f"{sum(per_worker.values())} of this burst over both workers {per_worker}")
        clips = _metric(text, "ytd_job_duration_seconds_count", lane="clip", outcome="completed")
        check(clips >= 1, f"GET /metrics: {clips:.0f} completed clip job(s) observed")


def main() -> None:
    t = Path(tempfile.mkdtemp(prefix="ytd-smoke-"))
    for sub in ("logs", "downloads", "uploads", "nginx-tmp"):
        (t / sub).mkdir()
    t.chmod(0o755)  # nginx's worker user must reach downloads/ (X-Accel-Redirect)
    for sub in ("downloads", "uploads"):  # as docs/deployment.md says: traverse, never list
        (t / sub).chmod(0o711)
    gunicorn = nginx = wire = None
    build_sources(ROOT / ".cache" / "sources")
    try:
        mongo = os.environ.get("SMOKE_MONGODB_URI")
        if not mongo:
            wire = MongoWireServer(subprocess=True).start()
            mongo = wire.uri + "/ytd_smoke"
        print("gunicorn: 2 workers, APP_ENV=production, real Redis, MongoDB: "
              + ("SMOKE_MONGODB_URI" if not wire else f"{mongo} = scripts/mongo_wire.py (a "
                 f"mongomock-backed wire server, pid {wire.proc.pid}; a test double, not MongoDB)"),
              flush=True)
        with SourceServer(ROOT / ".cache" / "sources") as source:
            source_host = source.base_url.removeprefix("http://")   # 127.0.0.1:<port>
            gunicorn, nginx, base, _env = start(t, mongo, source_host)
            wait_ready(base, gunicorn)
            deadline = time.monotonic() + 30
            while len(workers := worker_pids(gunicorn.pid)) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            check(len(workers) == 2, f"gunicorn runs 2 workers: pids {sorted(workers)}")
            exercise(base, t, source.mp4_url, workers)
            metrics_summed(base, t, workers)
        print("deploy smoke: all checks passed", flush=True)
    finally:
        if nginx:
            subprocess.run([nginx, "-p", str(t), "-c", str(t / "nginx.conf"), "-s", "quit"],
                           capture_output=True)
        if gunicorn and gunicorn.poll() is None:
            gunicorn.terminate()
            try:
                gunicorn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                gunicorn.kill()
        if wire:
            wire.stop()
        if os.environ.get("SMOKE_KEEP"):
            print(f"kept {t}")
        else:
            shutil.rmtree(t, ignore_errors=True)


if __name__ == "__main__":
    main()
