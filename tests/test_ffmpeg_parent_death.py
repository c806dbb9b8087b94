"""ffmpeg dies with the process that runs the job (src/media/ffmpeg.py, PR_SET_PDEATHSIG).

Real processes: a child Python process starts :func:`run_ffmpeg` on a long lavfi encode
(``testsrc2`` → libx264 into ``<tmp>/out.mp4.part``, as encode.py writes), prints ffmpeg's pid
from ``on_start`` and is killed with SIGKILL; the ffmpeg pid must be gone within a few seconds
(not reparented to init and left writing). Once from the child's main thread (a Celery pool
process runs its task there) and once from a job thread (the threads backend), and once with
the whole process group killed as ``systemctl kill`` would. Linux only.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.media.ffmpeg import _LAUNCHER, ORPHANED_EXIT, dies_with_parent

pytestmark = pytest.mark.skipif(not dies_with_parent(), reason="PR_SET_PDEATHSIG is Linux's")

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import sys, threading
from src.media.ffmpeg import run_ffmpeg
out, in_thread = sys.argv[1], sys.argv[2] == "thread"
def job():
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=600",
                "-c:v", "libx264", "-preset", "veryslow", "-threads", "1", "-f", "mp4", out],
               on_start=lambda proc: print(proc.pid, flush=True))
if in_thread:
    t = threading.Thread(target=job, name="job"); t.start(); t.join()
else:
    job()
"""


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cmdline(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


def _start(tmp_path: Path, where: str) -> tuple[subprocess.Popen, int, Path]:
    out = tmp_path / "out.mp4.part"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(out), where], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert child.stdout is not None
    pid = int(child.stdout.readline())
    deadline = time.monotonic() + 20
    while not (out.exists() and out.stat().st_size > 0):  # ffmpeg is writing
        assert time.monotonic() < deadline and _alive(pid), "ffmpeg did not start writing"
        time.sleep(0.05)
    argv = _cmdline(pid)
    assert argv[0].endswith(b"ffmpeg") and str(out).encode() in argv, argv  # ffmpeg itself
    return child, pid, out


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("where", ["main", "thread"])
def test_ffmpeg_dies_when_its_process_is_killed_9(tmp_path, where):
    child, pid, out = _start(tmp_path, where)
    try:
        os.kill(child.pid, signal.SIGKILL)  # the pool process only: ffmpeg has its own session
        child.wait(10)
        assert _gone_within(pid, 5), f"ffmpeg {pid} outlived its parent"
        size = out.stat().st_size
        time.sleep(0.5)
        assert out.stat().st_size == size  # nobody writes the .part any more
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        if child.poll() is None:
            child.kill()
            child.wait()


def test_ffmpeg_dies_when_the_whole_group_is_killed(tmp_path):
    """``systemctl kill -s KILL`` of a unit: every process of the cgroup, here the child's
    process group — ffmpeg is not in it (a session of its own), the death signal stops it."""
    child, pid, _ = _start(tmp_path, "thread")
    try:
        assert os.getpgid(pid) != os.getpgid(child.pid)
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(10)
        assert _gone_within(pid, 5), f"ffmpeg {pid} outlived its parent"
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_the_launcher_does_not_start_ffmpeg_when_its_parent_is_not_the_one_that_started_it(
        tmp_path):
    """The race: the parent died between fork and prctl (the child was reparented). Played by
    naming another pid as the parent: the launcher exits 125 and ffmpeg never runs."""
    out = tmp_path / "never.mp4"
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", _LAUNCHER, "1", "/usr/bin/env",
                           "ffmpeg", "-f", "lavfi", "-i", "testsrc2=duration=1", str(out)],
                          capture_output=True, timeout=30)
    assert proc.returncode == ORPHANED_EXIT, proc.stderr
    assert not out.exists()
