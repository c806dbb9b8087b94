"""A Python client generated from ``/openapi.json`` by openapi-python-client works (issue 16,
item 1): it logs in, gets a public token, saves a clip, reads its status and starts its
download, each answer parsed into the generated models (an error answer into ``Error``).

The client talks to the app through httpx's WSGI transport (no socket). openapi-python-client
0.29 reads binary answers only as ``application/octet-stream``, so its configuration maps the
document's ``video/mp4`` / ``video/webm`` to that (``content_type_overrides``); the document
itself keeps the true content types.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys

import httpx  # requirements-dev.txt (make install)
import pytest

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

CONFIG = {"project_name_override": "ytd_client", "package_name_override": "ytd_client",
          "content_type_overrides": {"video/mp4": "application/octet-stream",
                                     "video/webm": "application/octet-stream"}}


@pytest.fixture
def generated(app, tmp_path, monkeypatch):
    """The ``ytd_client`` package generated from the app's document, importable."""
    tool = shutil.which("openapi-python-client", path=os.path.dirname(sys.executable))
    if not tool:
        pytest.skip("openapi-python-client is not installed (requirements-dev.txt)")
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(app.test_client().get("/openapi.json").json))
    config = tmp_path / "config.json"
    config.write_text(json.dumps(CONFIG))
    result = subprocess.run([tool, "generate", "--path", str(spec), "--config", str(config),
                             "--meta", "none", "--output-path", str(tmp_path / "ytd_client")],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout, result.stdout  # every operation and answer generated
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [name for name in sys.modules if name.startswith("ytd_client")]:
        del sys.modules[name]
    return importlib.import_module("ytd_client")


def _api(name: str):
    return importlib.import_module(f"ytd_client.api.{name}")


def test_generated_client_logs_in_saves_a_clip_and_reads_its_status(app, generated):
    from ytd_client import models

    transport = httpx.WSGITransport(app=app)
    anonymous = generated.Client(base_url="http://testserver", httpx_args={"transport": transport})
    email, password = "client@example.com", "correct horse 1"
    _api("auth.post_api_auth_register").sync(client=anonymous, body=models.Credentials(
        email=email, password=password))
    login = _api("auth.post_api_auth_login").sync(client=anonymous, body=models.Login(
        email=email, password=password))
    assert isinstance(login, models.LoginResponse) and login.user.email == email

    private = generated.AuthenticatedClient(base_url="http://testserver", token=login.token,
                                            httpx_args={"transport": transport})
    public = _api("auth.get_api_auth_token_public").sync(client=private)
    assert isinstance(public, models.PublicTokenResponse) and public.user_id == login.user.id
    saver = generated.AuthenticatedClient(base_url="http://testserver", token=public.token,
                                          httpx_args={"transport": transport})
    saved = _api("video.post_api_video_save").sync(client=saver, body=models.SaveVideo(
        url="http://127.0.0.1:9/clip.mp4", start_time=60, end_time=90))
    assert isinstance(saved, models.SavedResponse), saved

    status = _api("video.get_api_video_status_video_id").sync(saved.video_id, client=private)
    assert isinstance(status, models.VideoStatus)
    assert (status.video_id, status.status, status.start_time, status.end_time) == \
        (saved.video_id, "pending", 60, 90)

    refused = _api("video.get_api_video_status_video_id").sync("0" * 24, client=private)
    assert isinstance(refused, models.Error) and refused.code == "NOT_FOUND"
    response = _api("video.post_api_video_download_video_id").sync_detailed(
        saved.video_id, client=private)
    assert response.status_code == 202 and response.parsed.status == "processing"
