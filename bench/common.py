"""Shared pieces of the benchmarks: medians, a throttled nginx in front of the local sources, a
gunicorn runner, HTTP helpers. Everything binds to 127.0.0.1 on free ports and lives in a
temporary folder; every process started here is stopped here (by its own pid)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
VENV_BIN = Path(PY).parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def median(values) -> float:
    return statistics.median(values) if values else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 15) -> None:
    """Stop a process this module started (and its process group), then reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Nginx:
    """nginx (Debian ``nginx-light``) serving ``root`` with ``limit_rate`` per connection and an
    access log of ``$body_bytes_sent``; its own prefix and config under a temporary folder.
    ``pages``: ``{path: html}`` answered as fixed pages (no quote ``'`` in the html).
    ``sndbuf``: the listening socket's send buffer (nginx ``listen … sndbuf=``), None for the
    kernel's default (on loopback it autotunes to megabytes)."""

    def __init__(self, root, rate: str = "4m", pages: dict | None = None,
                 sndbuf: str | None = None):
        self.root, self.rate, self.pages = str(root), rate, pages or {}
        self.sndbuf = f" sndbuf={sndbuf}" if sndbuf else ""
        self.dir = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        self.port = free_port()
        self.log = self.dir / "access.log"
        self.proc = None

    def start(self) -> Nginx:
        d = self.dir
        temps = "".join(f"    {name}_temp_path {d}/{name}_temp;\n"
                        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        pages = "".join(f"        location = /{path} {{ default_type text/html; "
                        f"return 200 '{html}'; }}\n" for path, html in self.pages.items())
        (d / "nginx.conf").write_text(f"""
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 512; }}
http {{
    types {{ video/mp4 mp4; audio/mp4 m4a; application/dash+xml mpd; video/webm webm;
            application/vnd.apple.mpegurl m3u8; video/mp2t ts; video/iso.segment m4s; }}
    log_format bench '$uri $status $body_bytes_sent';
    access_log {d}/access.log bench;
{temps}    sendfile on;
    server {{
        listen 127.0.0.1:{self.port}{self.sndbuf};
        root {self.root};
        limit_rate {self.rate};
{pages}    }}
}}
""")
        self.proc = subprocess.Popen([NGINX, "-p", str(d), "-c", str(d / "nginx.conf"),
                                      "-g", "daemon off;"], start_new_session=True)
        wait_port(self.port)
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def log_offset(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def bytes_since(self, offset: int, settle: float = 0.3) -> dict:
        """Body bytes nginx logged after ``offset``, per status (``{200: n, 206: n}``), in all
        (``"all"``) and per URI path (``"uris": {"/dash/audio.m4a": n}``). A log line is
        written when a request ends, so this waits ``settle`` s for connections the client
        just closed."""
        time.sleep(settle)
        counts: dict = {"all": 0, "uris": {}}
        with open(self.log, "rb") as fh:
            fh.seek(offset)
            for line in fh.read().decode().splitlines():
                uri, status, sent = line.split()
                counts[int(status)] = counts.get(int(status), 0) + int(sent)
                counts["uris"][uri] = counts["uris"].get(uri, 0) + int(sent)
                counts["all"] += int(sent)
        return counts

    def stop(self) -> None:
        if self.proc:
            stop(self.proc, signal.SIGQUIT)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def gunicorn(app: str, env: dict, workers: int = 2, threads: int = 4, port=None,
             log: Path | None = None) -> tuple:
    """Start ``gunicorn`` for ``app`` (``module:callable()``) with the gthread worker; return
    ``(process, base_url)`` once it accepts connections."""
    port = port or free_port()
    cmd = [str(VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
           "--worker-class", "gthread", "--threads", str(threads), "--timeout", "300",
           "--log-level", "warning", "--no-control-socket", app]
    out = open(log, "ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    wait_port(port, 60)
    return proc, f"http://127.0.0.1:{port}"


def call(method: str, url: str, body=None, token=None, timeout: float = 300) -> tuple:
    """One JSON request: ``(status, parsed body or raw bytes)``."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw, status = response.read(), response.status
            kind = response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        raw, status, kind = exc.read(), exc.code, exc.headers.get_content_type()
    return status, (json.loads(raw) if kind == "application/json" and raw else raw)


def wait_listing(base: str, token: str, video_id: str, timeout: float = 20) -> None:
    """Wait until the clip's resolutions, which a save lists in the background (one extraction
    of its own), are stored: so a benchmark's download does not count that extraction."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, view = call("GET", f"{base}/api/video/status/{video_id}", token=token)
        if isinstance(view, dict) and view.get("available_formats"):
            return
        time.sleep(0.1)


def table(title: str, header: list, rows: list) -> str:
    """A Markdown table (also readable in a terminal)."""
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def machine() -> str:
    """One line about this machine: CPU model, cores, RAM, load, ffmpeg, nginx, Python."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "?")
    mem = int(next(line.split()[1] for line in open("/proc/meminfo")
                   if line.startswith("MemTotal"))) // 1024
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True,
                            text=True).stdout.split()[2]
    nginx = subprocess.run([NGINX, "-v"], capture_output=True,
                           text=True).stderr.strip().split("/")[-1]
    load = os.getloadavg()
    return (f"{cpu}, {os.cpu_count()} cores, {mem} MB RAM; load {load[0]:.2f} {load[1]:.2f} at "
            f"start; ffmpeg {ffmpeg}, nginx {nginx}, Python {sys.version.split()[0]}")
