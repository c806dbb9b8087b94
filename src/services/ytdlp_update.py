"""Updating yt-dlp inside the running deployment (issue 13, item 7): ``flask ytdlp update``,
``make update-ytdlp`` and the daily ``deploy/yt-downloader-ytdlp-update.timer``.

YouTube changes something about monthly and yt-dlp follows within days (yt-dlp #16771 → #17262
→ #17461 in 2026), faster than this project's releases; ``requirements.txt`` pins what a fresh
clone gets, this module moves the venv forward in between:

1. record the installed versions of :data:`PACKAGES` (yt-dlp with its ``default`` extra — that
   pins ``yt-dlp-ejs``, the challenge solver scripts — deno, the bgutil PO-token plugin);
2. ``pip install --upgrade`` them in the venv;
3. run :func:`self_check` in a fresh interpreter (the running one has the old modules
   imported): yt-dlp imports, its JS runtime is found, and a local extraction of the bundled
   test clip, served on 127.0.0.1 by the check itself, goes through ``src.media.source``;
4. when the check fails, reinstall the recorded versions (``pip install pkg==old``; a package
   that was not installed before is uninstalled) and check again.

The running gunicorn keeps its imported yt-dlp until it reloads (``systemctl reload
yt-downloader``: HUP, graceful), which the timer's unit does after an update.

``python -m src.services.ytdlp_update`` runs :func:`update` and prints its report as JSON (exit
1 unless ``status`` is ``updated`` or ``current``; ``--unchanged-exit-code N`` makes ``current``
exit N, so that the systemd unit reloads the service only after a real update);
``--self-check`` runs only the check.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

#: What ``update`` upgrades, as pip requirement names.
PACKAGES = ("yt-dlp[default]", "yt-dlp-ejs", "deno", "bgutil-ytdlp-pot-provider")
#: Seconds for one pip run and for one self-check.
PIP_TIMEOUT = 600
CHECK_TIMEOUT = 120
ROOT = Path(__file__).resolve().parents[2]
#: The clip the self-check serves (the same one ``make demo`` uses).
CHECK_CLIP = ROOT / "tests" / "media" / "big_buck_bunny_720p_5s.mp4"

_VERSIONS = ("import importlib.metadata as m, json, sys\n"
             "def v(n):\n"
             "    try:\n        return m.version(n)\n"
             "    except m.PackageNotFoundError:\n        return None\n"
             "print(json.dumps({n: v(n) for n in sys.argv[1:]}))")


class UpdateError(RuntimeError):
    """pip failed (its last output lines are the message) or another update is running."""


def dist_name(requirement: str) -> str:
    """``"yt-dlp[default]"`` → ``"yt-dlp"`` (the distribution whose version is recorded)."""
    return re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0]


def versions(python: str, packages: Sequence[str]) -> dict:
    """``{dist name: installed version or None}`` in the environment of the ``python``
    interpreter (asked in a subprocess, so it sees what is on disk now)."""
    names = [dist_name(p) for p in packages]
    out = subprocess.run([python, "-c", _VERSIONS, *names], capture_output=True, text=True,
                         timeout=60, check=True)
    return json.loads(out.stdout)


def _pip(python: str, args: Sequence[str]) -> None:
    """Run pip (this interpreter's) on the environment of ``python``. Raises UpdateError."""
    cmd = [sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check",
           *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
    if out.returncode:
        tail = "\n".join((out.stderr or out.stdout).strip().splitlines()[-5:])
        raise UpdateError(f"pip {args[0]} failed: {tail}")


def run_check(command: Sequence[str]) -> dict:
    """Run a self-check ``command`` in a fresh process: ``{"ok": exit status 0, "output": its
    last JSON line (a dict) or its last 500 characters}``."""
    try:
        out = subprocess.run(list(command), capture_output=True, text=True,
                             timeout=CHECK_TIMEOUT, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"ok": False, "output": f"timed out after {CHECK_TIMEOUT} s"}
    lines = (out.stdout or "").strip().splitlines()
    try:
        output = json.loads(lines[-1]) if lines else None
    except ValueError:
        output = None
    if output is None:
        output = ((out.stdout or "") + (out.stderr or ""))[-500:]
    return {"ok": out.returncode == 0, "output": output}


@contextlib.contextmanager
def _lock(python: str):
    """One update at a time per environment (an flock next to its interpreter's folder)."""
    path = Path(python).resolve().parent.parent / ".ytdlp-update.lock"
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UpdateError("another update is running") from None
        yield


def update(python: str = sys.executable, packages: Sequence[str] = PACKAGES,
           pip_args: Sequence[str] = (), check: Optional[Sequence[str]] = None,
           log: Callable[[str], None] = lambda _: None) -> dict:
    """Upgrade ``packages`` in the environment of ``python``, self-check, roll back on failure.

    ``pip_args``: extra ``pip install`` options (e.g. ``--index-url``); ``check``: the self-check
    command (default ``python -m src.services.ytdlp_update --self-check``). Returns
    ``{"status": "updated" | "current" | "rolled_back" | "failed", "before": {name: version},
    "after": {...}, "check": run_check's dict, "rollback_check"?: …}``: ``current`` = nothing
    changed (checked anyway), ``rolled_back`` = the new versions failed and the old ones are back
    (and pass), ``failed`` = the check fails even so. Raises UpdateError when pip fails (the
    environment is as pip left it; a failed upgrade normally changes nothing) or another update
    holds the lock.
    """
    check = list(check or [python, "-m", "src.services.ytdlp_update", "--self-check"])
    with _lock(python):
        before = versions(python, packages)
        log(f"installed: {before}")
        _pip(python, ["install", "--upgrade", *pip_args, *packages])
        after = versions(python, packages)
        log(f"after the upgrade: {after}")
        result = run_check(check)
        changed = {name: old for name, old in before.items() if after.get(name) != old}
        report = {"before": before, "after": after, "check": result}
        if result["ok"]:
            return {"status": "updated" if changed else "current", **report}
        if not changed:
            return {"status": "failed", **report}
        log(f"self-check failed ({result['output']}); rolling back {changed}")
        _rollback(python, changed, pip_args)
        report["after"] = versions(python, packages)
        report["rollback_check"] = run_check(check)
        ok = report["rollback_check"]["ok"] and report["after"] == before
        return {"status": "rolled_back" if ok else "failed", **report}


def _rollback(python: str, previous: dict, pip_args: Sequence[str]) -> None:
    """Reinstall the recorded versions (``--no-deps``: exactly what was there), and remove what
    was not installed before."""
    pins = [f"{name}=={version}" for name, version in previous.items() if version]
    if pins:
        _pip(python, ["install", "--no-deps", *pip_args, *pins])
    new = [name for name, version in previous.items() if not version]
    if new:
        _pip(python, ["uninstall", "--yes", *new])


def self_check() -> dict:
    """What an update must keep working, in this process: yt-dlp imports, the JS runtime of the
    settings (``YTDLP_JS_RUNTIME``, from the environment and ``.env``) is found, and
    ``src.media.source`` extracts and plans the bundled clip served on 127.0.0.1. Returns
    ``{"ok", "yt_dlp", "js_runtime", "ejs", "formats"?, "error"?}``."""
    from yt_dlp.version import __version__

    from scripts.local_source import SourceServer
    from src.config import load_config
    from src.media import choice, egress, source, ytdlp_runtime

    report: dict = {"ok": False, "yt_dlp": __version__}
    try:
        settings = ytdlp_runtime.configure(load_config())
        report["js_runtime"] = ytdlp_runtime.runtime_info()
        report["ejs"] = ytdlp_runtime.ejs_version()
        if settings.js_runtime.strip().lower() != "none" and not (
                report["js_runtime"] and report["js_runtime"]["supported"]):
            raise RuntimeError("no supported JavaScript runtime found")
        egress.configure(["127.0.0.1:*"])
        with SourceServer(CHECK_CLIP.parent) as server:
            info = source.extract_info(server.url(CHECK_CLIP.name), timeout=10)
            chosen = choice.select_formats(info, "mp4", "best")
        report["formats"] = len(info["formats"])
        report["ok"] = bool(chosen.video_url)
    except Exception as exc:  # noqa: BLE001 - whatever breaks is what the check reports
        report["error"] = f"{type(exc).__name__}: {exc}"[:300]
    return report


def main(argv: Sequence[str]) -> int:
    """``--self-check``: print :func:`self_check`; else :func:`update` of this venv. Exit
    status: 0 updated (or current), ``--unchanged-exit-code`` for current, 1 otherwise."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m src.services.ytdlp_update")
    parser.add_argument("--self-check", action="store_true")
    parser.add_argument("--unchanged-exit-code", type=int, default=0)
    args = parser.parse_args(argv)
    if args.self_check:
        report = self_check()
        print(json.dumps(report))
        return 0 if report["ok"] else 1
    try:
        result = update(log=lambda msg: print(msg, file=sys.stderr))
    except UpdateError as exc:
        print(json.dumps({"status": "error", "error": str(exc)}))
        return 1
    print(json.dumps(result))
    return {"updated": 0, "current": args.unchanged_exit_code}.get(result["status"], 1)


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main(sys.argv[1:]))
