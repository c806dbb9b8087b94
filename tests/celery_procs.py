"""Real processes for the ``JOB_BACKEND=celery`` failure tests and the workers benchmark
(issue 15, item 4): API processes (``gunicorn -c gunicorn_config.py "src.app:create_app()"``,
as yt-downloader.service runs it), Celery workers (``celery -A src.worker worker``, as
deploy/yt-downloader-worker.service does), and an HTTP client that speaks to them as a user
does. Every process is started in a session of its own so that stopping it stops its
children. ffmpeg runs in a session of its own too (src/media/ffmpeg.py), so a signal to a
worker's process group does not reach it; it dies with the process that started it
(PR_SET_PDEATHSIG). :func:`ffmpeg_under` finds ffmpeg processes through their command line
(they name a file under the run's temporary folder): the tests assert none outlives its job,
and :func:`kill_ffmpeg_under` is the safety net of their ``finally``. Used by
tests/test_celery_failures.py and bench/workers.py; nothing here is a pytest fixture."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "tests" / "media" / "big_buck_bunny_720p_5s.mp4"


def free_port() -> int:
    """A TCP port nothing listens on now (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings(base: Path, redis_uri: str, mongo_uri: str, backend: str = "celery") -> dict:
    """The environment every API process and worker of one run shares (strings, for
    ``os.environ``): one store (``mongo_uri``, a database named per run), one Redis database
    (store and broker), shared DOWNLOADS_DIR / UPLOADS_DIR under ``base``; no rate limits nor
    per-user job cap (20 clips of one user are queued at once), no wait in download requests
    (they answer 202 at once), the local sources allowed."""
    return {
        "APP_ENV": "development", "LOG_LEVEL": "INFO",
        "MONGODB_URI": f"{mongo_uri}/ytd_fail_{uuid.uuid4().hex[:6]}", "REDIS_URI": redis_uri,
        "JOB_BACKEND": backend, "CELERY_BROKER_URL": redis_uri,
        "JWT_PUBLIC_SECRET": "fail-public-secret-" + "x" * 24,
        "JWT_PRIVATE_SECRET": "fail-private-secret-" + "y" * 24,
        "FLASK_SECRET_KEY": "fail-flask-secret", "BCRYPT_ROUNDS": "4",
        "DOWNLOADS_DIR": str(base / "downloads"), "UPLOADS_DIR": str(base / "uploads"),
        "ALLOWED_SOURCE_HOSTS": "127.0.0.1:*", "DOWNLOAD_WAIT_SECONDS": "0",
        "RATE_LIMIT_ENABLED": "false", "MAX_JOBS_PER_USER": "0", "MIN_FREE_DISK_MB": "10",
        "RATE_LIMIT_KEY_PREFIX": f"ytd-fail-{uuid.uuid4().hex[:8]}", "ENCODE_THREADS": "1",
        "LOG_FILE": str(base / "logs" / "app.log")}


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Send ``sig`` to the process group of ``proc`` (a process started here, in a session of
    its own); SIGKILL it after ``timeout`` s; reap it."""
    if proc.poll() is None:
        _kill_group(proc, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc, signal.SIGKILL)
            proc.wait(10)


def children(pid: int) -> set[int]:
    """Pids of the direct children of ``pid`` (from /proc)."""
    found = set()
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/stat") as fh:
                if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.add(int(name))
        except (OSError, IndexError, ValueError):
            pass
    return found


def ffmpeg_under(folder: Path) -> list[int]:
    """Pids of ffmpeg processes whose command line names a path under ``folder``."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"ffmpeg") and any(
                str(folder).encode() in arg for arg in argv):
            found.append(int(name))
    return found


def kill_ffmpeg_under(folder: Path) -> list[int]:
    """SIGKILL every ffmpeg of :func:`ffmpeg_under` (orphans of a worker this run killed);
    returns their pids."""
    pids = ffmpeg_under(folder)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


class Api:
    """One API process: gunicorn with gunicorn_config.py (1 worker, 8 threads by default) on
    ``port`` with the shared environment plus its own LOG_FILE folder and metrics folder."""

    def __init__(self, name: str, env: dict, base: Path, port: int | None = None,
                 workers: int = 1):
        self.name, self.port = name, port or free_port()
        self.dir = base / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, **env, "GUNICORN_BIND": f"127.0.0.1:{self.port}",
                    "GUNICORN_WORKERS": str(workers), "GUNICORN_THREADS": "8",
                    "GUNICORN_GRACEFUL_TIMEOUT": "10", "LOG_FILE": str(self.dir / "app.log"),
                    "PROMETHEUS_MULTIPROC_DIR": str(self.dir / "metrics")}
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> Api:
        self.starts += 1
        out = (self.dir / f"stdout.{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn_config.py",
             "src.app:create_app()"], cwd=ROOT, env=self.env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        """Until GET /api/encode/codecs answers 200; AssertionError (with the log) if gunicorn
        exits or the time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log_tail()
            try:
                if requests.get(self.url + "/api/encode/codecs", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready after {timeout} s: {self.log_tail()}")

    def log_tail(self) -> str:
        text = ""
        for path in sorted(self.dir.glob("*.log")):
            text += f"--- {path.name}\n" + path.read_text(errors="replace")[-2000:]
        return text

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        """Stop gunicorn (SIGTERM: its graceful shutdown); the exit status."""
        if self.proc is None:
            return None
        stop_process(self.proc, sig, timeout)
        return self.proc.returncode


class Worker:
    """One ``celery -A src.worker worker -Q <queues> -c <n> --pool=prefork`` process."""

    def __init__(self, name: str, env: dict, base: Path, queues: str = "clips,encodes,live",
                 concurrency: int = 1):
        self.name = name
        self.log = base / f"{name}.celery.log"
        self.app_log = base / f"{name}.app.log"
        out = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "src.worker", "worker", "-Q", queues,
             "-c", str(concurrency), "--pool=prefork", "-n", f"{name}@%h", "-l", "INFO",
             "--without-gossip", "--without-mingle"],
            cwd=ROOT, env={**os.environ, **env, "LOG_FILE": str(self.app_log)}, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
        out.close()

    def wait_ready(self, timeout: float = 90) -> None:
        """Until celery logs ``ready.`` and each pool process has built its app."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.text()[-3000:]
            if "ready." in self.text() and "app ready" in self.text():
                return
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready: {self.text()[-3000:]}")

    def text(self) -> str:
        """Everything this worker logged (celery's output and its app log)."""
        return "".join(p.read_text(errors="replace") for p in (self.log, self.app_log)
                       if p.exists())

    def pool(self) -> set[int]:
        """Pids of the pool processes (the ones that run tasks)."""
        return children(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole worker: main process and pool processes (its process group, as
        ``systemctl kill -s KILL`` kills a unit's cgroup; ffmpeg runs in a session of its own
        and is not in it, but dies with its pool process: src/media/ffmpeg.py)."""
        _kill_group(self.proc, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), SIGKILL after 15 s."""
        stop_process(self.proc, signal.SIGTERM, 15)


class User:
    """A user speaking HTTP to one or more API processes: registered and logged in through
    the first; ``api`` picks the base URL of each call (any process serves any user)."""

    def __init__(self, base_url: str):
        self.http = requests.Session()
        email = f"fail-{uuid.uuid4().hex[:8]}@example.com"
        body = {"email": email, "password": "correct horse 1"}
        r = self.http.post(base_url + "/api/auth/register", json=body, timeout=30)
        assert r.status_code == 201, r.text
        r = self.http.post(base_url + "/api/auth/login", json=body, timeout=30)
        assert r.status_code == 200, r.text
        self.id, self.token = r.json()["user"]["id"], r.json()["token"]
        self.headers = {"Authorization": f"Bearer {self.token}"}
        r = self.http.get(base_url + "/api/auth/token/public", headers=self.headers, timeout=30)
        assert r.status_code == 200, r.text
        self.public = {"Authorization": f"Bearer {r.json()['token']}"}

    def save_clip(self, base_url: str, url: str, start: float, end: float) -> str:
        r = self.http.post(base_url + "/api/video/save", headers=self.public, timeout=30,
                           json={"url": url, "start_time": start, "end_time": end,
                                 "user_id": self.id})
        assert r.status_code == 201, r.text
        return r.json()["video_id"]

    def download(self, base_url: str, video_id: str, body: dict | None = None):
        """POST /api/video/download/{id}: 202 while the job runs, 200 with the file at the end."""
        return self.http.post(f"{base_url}/api/video/download/{video_id}", headers=self.headers,
                              json=body or {"format_preference": "mp4",
                                            "resolution_preference": "720p"}, timeout=60)

    def clip_status(self, base_url: str, video_id: str) -> dict:
        r = self.http.get(f"{base_url}/api/video/status/{video_id}", headers=self.headers,
                          timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def upload(self, base_url: str, path: Path = CLIP) -> str:
        with open(path, "rb") as fh:
            r = self.http.post(base_url + "/api/encode/upload", headers=self.headers, timeout=60,
                               files={"video": (path.name, fh, "video/mp4")})
        assert r.status_code == 201, r.text
        return r.json()["encode_id"]

    def start_encode(self, base_url: str, encode_id: str, codec: str = "h264",
                     preset: str = "medium"):
        return self.http.post(f"{base_url}/api/encode/start/{encode_id}", headers=self.headers,
                              json={"video_codec": codec, "quality_preset": preset}, timeout=60)

    def encode_status(self, base_url: str, encode_id: str) -> dict:
        r = self.http.get(f"{base_url}/api/encode/status/{encode_id}", headers=self.headers,
                          timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def encode_download(self, base_url: str, encode_id: str):
        return self.http.post(f"{base_url}/api/encode/download/{encode_id}",
                              headers=self.headers, timeout=60)


def wait_all(check, ids, timeout: float, poll: float = 0.5) -> dict:
    """Poll ``check(id) -> status body`` until none of ``ids`` is ``processing``/``pending``;
    ``{id: last body}``. AssertionError naming the ones still running after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: dict = {}
    pending = list(ids)
    while pending:
        for job in list(pending):
            last[job] = check(job)
            if last[job]["status"] not in ("processing", "pending"):
                pending.remove(job)
        if not pending:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"still running after {timeout} s: "
                                 f"{ {j: last[j]['status'] for j in pending} }")
        time.sleep(poll)
    return last
