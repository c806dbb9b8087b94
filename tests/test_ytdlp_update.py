"""Updating yt-dlp in place (issue 13, item 7): src/services/ytdlp_update.py, ``flask ytdlp
update``.

The upgrade, the version record and the rollback run a real pip on a throwaway venv
(``python -m venv --without-pip``; this venv's pip drives it with ``--python``) against a local
wheel folder of a tiny package built here in two versions (no network: ``--no-index``); the
self-check command decides whether the new version is good. The real self-check of this venv
(yt-dlp, deno, EJS, a local extraction) runs as the update runs it: in a fresh interpreter.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from src.services import ytdlp_update
from src.services.ytdlp_update import UpdateError, run_check, update, versions

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

NAME, MODULE = "ytd-fake", "ytd_fake"


def _wheel(folder: Path, version: str, ok: bool, name: str = NAME) -> Path:
    """A pure-Python wheel of ``name`` ``version`` whose module says ``OK = ok``."""
    module = name.replace("-", "_")
    dist = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\nOK = {ok!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join(record + [f"{dist}/RECORD,,"]) + "\n"
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


@pytest.fixture
def env(tmp_path):
    """A throwaway venv with ytd-fake 1.0 installed, and a wheel folder (``.wheels``) holding
    1.0 and a 2.0 that ``.publish(ok)`` writes (OK=True: a good release, False: broken)."""
    python = str(tmp_path / "venv" / "bin" / "python")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")],
                   check=True)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "1.0", True)
    pip_args = ["--no-index", "--find-links", str(wheels)]
    ytdlp_update._pip(python, ["install", *pip_args, f"{NAME}==1.0"])

    class Env:
        pass

    e = Env()
    e.python, e.wheels, e.pip_args = python, wheels, pip_args
    e.check = [python, "-c", f"import sys, {MODULE}; sys.exit(0 if {MODULE}.OK else 1)"]
    e.publish = lambda ok: _wheel(wheels, "2.0", ok)
    e.module_version = lambda: subprocess.run(
        [python, "-c", f"import {MODULE}; print({MODULE}.VERSION)"], capture_output=True,
        text=True).stdout.strip()
    e.update = functools.partial(update, python=python, packages=(NAME,), pip_args=pip_args,
                                 check=e.check)
    return e


def test_a_good_release_is_kept(env):
    env.publish(ok=True)
    report = env.update()
    assert report["status"] == "updated" and report["check"]["ok"] is True
    assert report["before"] == {NAME: "1.0"} and report["after"] == {NAME: "2.0"}
    assert env.module_version() == "2.0"
    assert env.update()["status"] == "current"  # run again: nothing newer


def test_a_broken_release_is_rolled_back(env):
    env.publish(ok=False)
    report = env.update()
    assert report["status"] == "rolled_back", report
    assert report["check"]["ok"] is False and report["rollback_check"]["ok"] is True
    assert report["before"] == report["after"] == {NAME: "1.0"}
    assert versions(env.python, [NAME]) == {NAME: "1.0"} and env.module_version() == "1.0"


def test_a_package_new_to_the_venv_is_removed_on_rollback(env):
    other = "ytd-other"  # not installed yet; its first release breaks the check
    _wheel(env.wheels, "0.1", False, name=other)
    check = [env.python, "-c", "import sys, importlib.util\n"
             "sys.exit(1 if importlib.util.find_spec('ytd_other') else 0)"]
    report = update(python=env.python, packages=(NAME, other), pip_args=env.pip_args,
                    check=check)
    assert report["status"] == "rolled_back", report
    assert report["before"] == {NAME: "1.0", other: None} == report["after"]
    assert versions(env.python, [other]) == {other: None}


def test_pip_failure_and_a_second_update_are_refused(env):
    with pytest.raises(UpdateError, match="pip install failed"):
        update(python=env.python, packages=("ytd-nowhere",), pip_args=env.pip_args,
               check=env.check)
    assert versions(env.python, [NAME]) == {NAME: "1.0"}
    with ytdlp_update._lock(env.python):
        with pytest.raises(UpdateError, match="another update is running"):
            env.update()


def test_the_cli_update_reports_and_fails_on_rollback(app, env, monkeypatch):
    """``flask ytdlp update`` runs the same update (here on the throwaway venv)."""
    monkeypatch.setattr(ytdlp_update, "update", env.update)
    env.publish(ok=False)
    result = app.test_cli_runner().invoke(args=["ytdlp", "update"])
    assert result.exit_code == 1
    assert json.loads(result.stdout.strip().splitlines()[-1])["status"] == "rolled_back"
    assert "rolling back" in result.stderr
    env.publish(ok=True)
    result = app.test_cli_runner().invoke(args=["ytdlp", "update"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["after"] == {NAME: "2.0"}


def test_the_real_self_check_of_this_venv(monkeypatch):
    """What the update runs after pip: yt-dlp, the venv's deno, EJS, and an extraction of the
    bundled clip served on 127.0.0.1 through src.media.source, in a fresh interpreter."""
    import yt_dlp_ejs
    from yt_dlp.version import __version__

    monkeypatch.delenv("YTDLP_JS_RUNTIME", raising=False)
    result = run_check([sys.executable, "-m", "src.services.ytdlp_update", "--self-check"])
    assert result["ok"] is True, result
    out = result["output"]
    assert out["yt_dlp"] == __version__ and out["ejs"] == yt_dlp_ejs.version
    assert out["js_runtime"]["name"] == "deno" and out["formats"] >= 1
    # without a runtime the check fails, which is what makes an update roll back
    monkeypatch.setenv("YTDLP_JS_RUNTIME", "node:/nonexistent/node")
    result = run_check([sys.executable, "-m", "src.services.ytdlp_update", "--self-check"])
    assert result["ok"] is False and "JavaScript runtime" in result["output"]["error"]
