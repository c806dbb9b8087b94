"""`make demo`: watch the service cut a real clip, end to end, on this machine.

1. builds a 10-minute local source from the bundled real clip and serves it over HTTP
   (YouTube is not needed: ALLOWED_SOURCE_HOSTS admits 127.0.0.1:<its port> for the demo only);
2. starts the API (`python run.py`) with the embedded defaults;
3. prints what GET /api/health found for yt-dlp (its JS runtime, yt-dlp-ejs), registers a
   user, gets a public token bound to them (anonymous public tokens are off by default), saves
   a 30 s clip from the middle (5:00-5:30), asks for the download, polls the status endpoint
   while the job runs, then downloads the file;
4. prints the file's path and its ffprobe summary.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from scripts.local_source import SourceServer, build_sources
from src.media.ffmpeg import ffprobe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def call(base, method, path, body=None, token=None):
    """One JSON request; returns (status, parsed body or raw bytes)."""
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            data, status, ctype = resp.read(), resp.status, resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        data, status, ctype = err.read(), err.code, err.headers.get("Content-Type", "")
    return status, json.loads(data) if ctype.startswith("application/json") else data


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(base: str, proc: subprocess.Popen) -> None:
    for _ in range(100):
        if proc.poll() is not None:
            sys.exit("The API did not start; see the lines above.")
        try:
            call(base, "GET", "/api/health")
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("The API did not answer within 20 s.")


def main() -> None:
    print("== Building the local source from tests/media/big_buck_bunny_720p_5s.mp4 ...")
    sources = build_sources(os.path.join(ROOT, ".cache", "sources"))
    with SourceServer(os.path.dirname(sources["mp4"]), rate_bytes_per_sec=1_500_000) as server:
        url = server.mp4_url
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1",
               "ALLOWED_SOURCE_HOSTS": server.base_url.removeprefix("http://"),  # host:port
               "DOWNLOAD_WAIT_SECONDS": "0",
               "DOWNLOADS_DIR": os.path.join(ROOT, "downloads"), "LOG_LEVEL": "WARNING"}
        for name in ("MONGODB_URI", "REDIS_URI"):
            env.pop(name, None)
        print(f"== Source: {url}\n== Starting the API on {base} (embedded MongoDB/Redis) ...")
        api = subprocess.Popen([sys.executable, "run.py"], cwd=ROOT, env=env)
        try:
            wait_for(base, api)
            run_demo(base, url)
        finally:
            api.terminate()
            api.wait(timeout=10)


def run_demo(base: str, url: str) -> None:
    _, health = call(base, "GET", "/api/health")
    ytdlp = health["checks"]["yt_dlp"]
    runtime = ytdlp.get("js_runtime") or {}
    print(f"GET /api/health -> {health['status']}; yt-dlp {ytdlp.get('version')}, JS runtime "
          f"{runtime.get('name')} {runtime.get('version')}, yt-dlp-ejs {ytdlp.get('ejs_version')}")
    email, password = f"demo-{int(time.time())}@example.com", "demo-password-1"
    status, body = call(base, "POST", "/api/auth/register", {"email": email, "password": password})
    print(f"POST /api/auth/register -> {status} {body}")
    status, body = call(base, "POST", "/api/auth/login", {"email": email, "password": password})
    token, user_id = body["token"], body["user"]["id"]
    print(f"POST /api/auth/login -> {status} (private token)")
    _, body = call(base, "GET", "/api/auth/token/public", token=token)  # bound to the user
    public = body["token"]
    print("GET /api/auth/token/public (with the private token) -> a public token bound to you")
    clip = {"url": url, "start_time": 300, "end_time": 330, "user_id": user_id,
            "additional_message": "demo clip 5:00-5:30"}
    status, body = call(base, "POST", "/api/video/save", clip, token=public)
    video_id = body["video_id"]
    print(f"POST /api/video/save -> {status} {body}")
    prefs = {"format_preference": "mp4", "resolution_preference": "720p"}
    status, body = call(base, "POST", f"/api/video/download/{video_id}", prefs, token=token)
    print(f"POST /api/video/download/{video_id} -> {status} {body}")
    while status == 202:
        time.sleep(0.5)
        _, info = call(base, "GET", f"/api/video/status/{video_id}", token=token)
        progress = info.get("progress") or {}
        if info["status"] != "processing":
            print(f"  status={info['status']}")
        else:
            print(f"  status={info['status']:<10} phase={progress.get('current_phase')} "
                  f"{progress.get('download_progress', 0):5.1f}% speed={progress.get('speed')} "
                  f"eta={progress.get('eta')}")
        if info["status"] in ("completed", "failed"):
            status, body = call(base, "POST", f"/api/video/download/{video_id}", prefs, token=token)
    if status != 200:
        sys.exit(f"Download failed: {status} {body}")
    os.makedirs(os.path.join(ROOT, "demo_output"), exist_ok=True)
    path = os.path.join(ROOT, "demo_output", f"video_{video_id}.mp4")
    with open(path, "wb") as out:
        out.write(body)
    probe = ffprobe(path)
    streams = {s["codec_type"]: s for s in probe["streams"]}
    video, audio = streams.get("video", {}), streams.get("audio", {})
    print(f"\n== Saved {path}")
    print(f"   duration {float(probe['format']['duration']):.2f} s, "
          f"{int(probe['format']['size']) / 1_048_576:.1f} MB, "
          f"video {video.get('codec_name')} {video.get('width')}x{video.get('height')}, "
          f"audio {audio.get('codec_name')} {audio.get('channels')} ch")


if __name__ == "__main__":
    main()
