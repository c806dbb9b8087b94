"""Running ffmpeg and ffprobe: the one place that spawns those binaries.

ffmpeg reports its own progress with ``-progress pipe:1`` as ``key=value`` lines, one block per
``-stats_period`` ending in ``progress=continue`` (or ``progress=end``). We read those blocks and
turn them into :class:`Progress` values; callers scale them to a percentage of the expected output
duration. Source: ffmpeg documentation, "Main options" (``-progress``, ``-stats_period``).

ffmpeg dies with the process that runs the job (Linux). Each ffmpeg runs in a session of its own
(so :func:`_kill` stops it and anything it starts as a group), which also means a SIGKILL of a
Celery pool process, of a whole worker (``systemctl kill``) or of a gunicorn worker does not reach
it: it would keep writing ``<out>.part`` while a redelivered run writes the same file. So the
child asks the kernel for ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` before it execs ffmpeg (prctl(2):
the signal is sent when the *thread* that forked the child exits, and survives execve of a
non-setuid binary). It does so in a small launcher, :data:`_LAUNCHER` (``python -I -S -c``,
≈ 9 ms per run on the CI machine), not in ``preexec_fn``: the Python subprocess docs warn that
``preexec_fn`` is not safe in a process with threads (the child may deadlock before exec) and it
disables the vfork fast path; our processes all have threads. The launcher then compares
``getppid()`` with the pid of the process that started it and exits (code 125) if they differ:
that parent died between fork and prctl, when no death signal can come any more.
The thread rule holds because :func:`run_ffmpeg` waits for ffmpeg in the thread that started it
(the job's thread: a pool process's main thread with Celery, a job thread with the threads
backend); it never returns, nor its thread ends, while ffmpeg runs. ffprobe (:func:`ffprobe`)
runs with a ``timeout`` of seconds in ``subprocess.run`` and is not wrapped. On other systems
(macOS, for development) ffmpeg is started directly.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

FFMPEG = os.environ.get("FFMPEG_BINARY", "ffmpeg")
FFPROBE = os.environ.get("FFPROBE_BINARY", "ffprobe")

#: Seconds between two progress blocks from ffmpeg (several updates per second).
STATS_PERIOD = 0.25

#: prctl(2) option number of PR_SET_PDEATHSIG (linux/prctl.h).
PR_SET_PDEATHSIG = 1
#: Exit code of the launcher when its parent died before the death signal was armed.
ORPHANED_EXIT = 125
#: The launcher run as ``python -I -S -c _LAUNCHER <parent pid> <ffmpeg path> <argv...>``: arms
#: SIGKILL on the death of the forking thread, checks the parent is still the one that started
#: it, restores the signal dispositions Python changed at start (SIGPIPE and SIGXFSZ ignored;
#: ignored signals stay ignored across exec), then becomes ffmpeg (same pid, so the caller's
#: process and group ids stay valid). argv[0] stays ``ffmpeg``.
_LAUNCHER = """\
import ctypes, os, signal, sys
parent, path, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(1, signal.SIGKILL, 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
    sys.stderr.write("prctl(PR_SET_PDEATHSIG) failed: errno " + str(ctypes.get_errno()) + "\\n")
    os._exit(126)
if os.getppid() != parent:  # the parent died before prctl: no death signal will come
    os._exit(125)  # ORPHANED_EXIT
for name in ("SIGPIPE", "SIGXFSZ"):
    if hasattr(signal, name):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
try:
    os.execv(path, argv)
except OSError as exc:
    sys.stderr.write("cannot run " + path + ": " + str(exc) + "\\n")
    os._exit(127)
"""


def dies_with_parent() -> bool:
    """True where :func:`run_ffmpeg` makes ffmpeg die with the thread that started it (Linux,
    with a Python interpreter path to run the launcher)."""
    return sys.platform.startswith("linux") and bool(sys.executable)


def _command(cmd: list[str], env: Optional[dict]) -> list[str]:
    """``cmd`` (``[binary, *args]``) as started: through :data:`_LAUNCHER` where
    :func:`dies_with_parent`. Raises FileNotFoundError (as Popen would) when the binary is not
    on ``env``'s PATH (this process's PATH when ``env`` is None)."""
    if not dies_with_parent():
        return cmd
    path = shutil.which(cmd[0], path=(env if env is not None else os.environ).get("PATH",
                                                                                  os.defpath))
    if path is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), cmd[0])
    return [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(os.getpid()), path, *cmd]


class FFmpegError(RuntimeError):
    """ffmpeg or ffprobe failed. ``stderr_tail`` holds the last lines ffmpeg printed."""

    def __init__(self, message: str, returncode: Optional[int] = None, stderr_tail: str = ""):
        super().__init__(message)
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class FFmpegTimeout(FFmpegError):
    """ffmpeg ran longer than the ``timeout`` it was given and was killed (message: "ffmpeg
    timed out")."""


@dataclass
class Progress:
    """One progress block from ffmpeg.

    out_time: seconds of output written so far; fps: frames per second of work;
    speed: media seconds processed per wall second (ffmpeg's ``speed=2.3x`` as 2.3);
    total_size: bytes written so far; done: True on the final block.
    """

    out_time: float = 0.0
    fps: float = 0.0
    speed: float = 0.0
    total_size: int = 0
    done: bool = False


def mmss(seconds: float) -> str:
    """``seconds`` (≥ 0) as the spec's progress ``eta``: ``"MM:SS"`` (minutes may exceed 59)."""
    seconds = int(round(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def _number(value: Optional[str], default: float = 0.0) -> float:
    try:
        return float(str(value).rstrip("x"))
    except (TypeError, ValueError):
        return default


def parse_progress_block(fields: dict) -> Progress:
    """Turn one ``-progress`` block (key → value strings) into a :class:`Progress`.

    ``out_time_us`` is microseconds (``out_time_ms`` is, despite its name, also microseconds in
    ffmpeg ≥ 4); ``N/A`` values become 0.
    """
    micros = fields.get("out_time_us") or fields.get("out_time_ms")
    return Progress(
        out_time=max(0.0, _number(micros) / 1_000_000),
        fps=_number(fields.get("fps")),
        speed=_number(fields.get("speed")),
        total_size=int(_number(fields.get("total_size"))),
        done=fields.get("progress") == "end",
    )


def run_ffmpeg(
    args: Sequence[str],
    on_progress: Optional[Callable[[Progress], None]] = None,
    on_start: Optional[Callable[[subprocess.Popen], None]] = None,
    timeout: Optional[float] = None,
    env: Optional[dict] = None,
) -> None:
    """Run ``ffmpeg`` with ``args`` (everything after the binary name) and report progress.

    ``-hide_banner -nostdin -y -progress pipe:1 -stats_period 0.25`` are prepended.
    ``on_progress`` is called from this thread for every progress block; an exception it raises
    stops ffmpeg and propagates (the way callers cancel a job). ``on_start`` receives the process
    (for example to record its pid; it is ffmpeg's pid). ``timeout`` is in seconds of wall
    time. ``env``: the process environment (None: this process's).

    ffmpeg is killed (SIGKILL) by the kernel if the thread calling this dies — the process
    killed with -9, a Celery pool process lost — on Linux (module docstring); a redelivered run
    then meets no writer of its ``.part`` file, and ffmpeg's ``-y`` truncates the file when it
    opens it.

    Raises :class:`FFmpegTimeout` when ``timeout`` ran out (ffmpeg and its process group are
    killed), :class:`FFmpegError` when ffmpeg exits non-zero; the message is the most telling line
    of ffmpeg's stderr.
    """
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
           "-progress", "pipe:1", "-stats_period", str(STATS_PERIOD), *args]
    proc = subprocess.Popen(_command(cmd, env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=env)
    assert proc.stdout is not None and proc.stderr is not None  # both are PIPEs
    stderr = proc.stderr
    stderr_lines: deque = deque(maxlen=30)
    reader = threading.Thread(target=lambda: stderr_lines.extend(stderr), daemon=True)
    reader.start()
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        _kill(proc)

    timer = threading.Timer(timeout, expire) if timeout else None
    if timer:
        timer.start()
    try:
        if on_start:
            on_start(proc)
        fields: dict = {}
        for line in proc.stdout:
            key, _, value = line.strip().partition("=")
            fields[key] = value
            if key == "progress":
                if on_progress:
                    on_progress(parse_progress_block(fields))
                fields = {}
        returncode = proc.wait()
    except BaseException:
        _kill(proc)
        raise
    finally:
        if timer:
            timer.cancel()
        reader.join(timeout=5)
    if returncode != 0:
        tail = "".join(stderr_lines).strip()
        if timed_out.is_set():
            raise FFmpegTimeout("ffmpeg timed out", returncode, tail)
        raise FFmpegError(_summary(tail, returncode), returncode, tail)


def _kill(proc: subprocess.Popen) -> None:
    """Stop ffmpeg and everything it started; wait so no zombie is left."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def _summary(stderr_tail: str, returncode: Optional[int]) -> str:
    """The line of ffmpeg's stderr that best says what went wrong (the last non-empty one)."""
    lines = [ln.strip() for ln in stderr_tail.splitlines() if ln.strip()]
    if returncode is not None and returncode < 0:
        return f"ffmpeg was stopped by signal {-returncode}"
    return lines[-1] if lines else f"ffmpeg exited with code {returncode}"


def ffprobe(path: str, timeout: float = 30, input_args: Sequence[str] = (),
            env: Optional[dict] = None) -> dict:
    """Return ffprobe's JSON (``format`` and ``streams``) for a local file or URL.

    ``input_args``: input options placed before the input (``-format_whitelist``, …);
    ``env``: ffprobe's environment (None: this process's).
    Raises :class:`FFmpegError` when ffprobe cannot read it (not a media file, missing, timeout).
    """
    cmd = [FFPROBE, "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
           *input_args, "-i", path]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise FFmpegError("ffprobe timed out") from exc
    if out.returncode != 0:
        raise FFmpegError(_summary(out.stderr, out.returncode), out.returncode, out.stderr)
    return json.loads(out.stdout or "{}")
