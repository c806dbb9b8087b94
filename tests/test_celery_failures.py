"""Failure tests of ``JOB_BACKEND=celery`` with real processes (issue 15, item 4).

Two API processes (``gunicorn -c gunicorn_config.py "src.app:create_app()"``, 1 worker × 8
threads each, on free ports) and two Celery workers (``celery -A src.worker worker -Q
clips,encodes,live -c 1 --pool=prefork``) share one store — scripts/mongo_wire.py in a child
process, a mongomock-backed TEST DOUBLE of MongoDB — the real Redis database this run holds
(``TEST_REDIS_URI``: store, broker, progress, heartbeats, locks) and one DOWNLOADS_DIR /
UPLOADS_DIR. The clips come from the local DASH source (tests/media_fixtures.py
``source_server``, throttled where a job must be slow); the encodes from the bundled 5.3 s 720p
clip uploaded through ``POST /api/encode/upload``. Everything is asked over HTTP, alternating
between the two API processes, as users would; each test has a hard time limit (SIGALRM), and
every process is stopped in ``finally`` (process groups; ffmpeg orphans of a killed worker by
pid, as a safety net: the tests assert that none is left). Skipped when Redis does not
answer.

ffmpeg runs in a session of its own but dies with the process that started it
(``PR_SET_PDEATHSIG``, src/media/ffmpeg.py), so after every kill below no ffmpeg naming a file
of the run may survive (:data:`FFMPEG_GONE_SECONDS`), and a redelivered run is the only writer
of its ``.part``.
"""
from __future__ import annotations

import itertools
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis as redis_lib

from scripts.mongo_wire import MongoWireServer
from src.media.ffmpeg import ffprobe
from tests.celery_procs import (
    Api,
    User,
    Worker,
    ffmpeg_under,
    kill_ffmpeg_under,
    settings,
    wait_all,
)
from tests.conftest import RUN_ID, RUN_KEY, RUN_KEY_SECONDS

pytestmark = pytest.mark.slow

CLIPS, CLIP_SECONDS = 20, 4
#: An encode slow enough to be killed or outlive two API restarts: x265 lossless on one thread.
SLOW_ENCODE = ("h265", "lossless")
#: Hard time limit of each test, seconds (starting the processes has deadlines of its own).
LIMITS = {"test_20_clips_and_2_encodes_at_once_over_two_apis_and_two_workers": 240,
          "test_kill_9_a_worker_mid_clip_and_one_mid_encode": 150,
          "test_an_encode_outlives_a_restart_of_both_api_processes": 150,
          "test_kill_9_the_pool_process_mid_encode_and_a_whole_worker_mid_clip": 170}
#: Seconds within which a killed job's ffmpeg must be gone (the kernel's death signal).
FFMPEG_GONE_SECONDS = 3


@pytest.fixture(autouse=True)
def hard_timeout(request):
    """Fail the test (TimeoutError in the main thread) after its :data:`LIMITS` seconds
    (default 150); the fixtures' ``finally`` blocks then stop every process."""
    seconds = LIMITS.get(request.node.originalname, 150)

    def expire(*_):
        raise TimeoutError(f"{request.node.name}: over its hard limit of {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def cluster(source_server, tmp_path_factory, redis_uri):
    """``{"apis": [Api, Api], "workers": [Worker, ...], "redis", "base", "env"}``, all started
    and ready; the test may add workers to ``workers`` (stopped here too)."""
    if not redis_uri:
        pytest.skip("needs a Redis server (broker, heartbeats, locks)")
    client = redis_lib.Redis.from_url(redis_uri, decode_responses=True, socket_timeout=5)
    client.flushdb()
    client.set(RUN_KEY, RUN_ID, ex=RUN_KEY_SECONDS)
    base = tmp_path_factory.mktemp("failures")
    wire = MongoWireServer(subprocess=True)
    apis: list[Api] = []
    workers: list[Worker] = []
    try:
        wire.start()
        env = settings(base, redis_uri, wire.uri)
        workers += [Worker(name, env, base) for name in ("w1", "w2")]
        apis += [Api(name, env, base).start() for name in ("api1", "api2")]
        for api in apis:
            api.wait_ready()
        for worker in workers:
            worker.wait_ready()
        yield {"apis": apis, "workers": workers, "redis": client, "base": base, "env": env}
    finally:
        for api in apis:
            api.stop(signal.SIGKILL if api.proc and api.proc.poll() is None else signal.SIGTERM)
        for worker in workers:
            worker.stop()
        kill_ffmpeg_under(base)
        wire.stop()
        client.flushdb()
        client.set(RUN_KEY, RUN_ID, ex=RUN_KEY_SECONDS)


def _urls(cluster):
    """An endless alternation of the API processes' base URLs."""
    return itertools.cycle([api.url for api in cluster["apis"]])


def _run(cluster, job_id: str, lane: str) -> dict:
    """``jobrun:{job_id}:{lane}`` (src/worker.py): runs, pid, host of the process that ran it."""
    return cluster["redis"].hgetall(f"jobrun:{job_id}:{lane}")


def _job_id(cluster, video_id: str) -> str:
    """The job id of a clip or encode: the Celery task id, also its heartbeat's value."""
    return cluster["redis"].get(f"celery:job:{video_id}")


def _probe(data: bytes, path: Path) -> tuple[float, int, str]:
    path.write_bytes(data)
    probe = ffprobe(str(path))
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    return float(probe["format"]["duration"]), int(video["height"]), video["codec_name"]


def _leftovers(base: Path) -> list[str]:
    """Files under DOWNLOADS_DIR / UPLOADS_DIR that are neither a finished clip (``.mp4``) nor
    its thumbnail (``.jpg``) nor an upload or encode output (``.mp4``): partial files."""
    return sorted(str(p.relative_to(base)) for root in ("downloads", "uploads")
                  for p in (base / root).rglob("*") if p.is_file()
                  and p.suffix not in (".mp4", ".jpg"))


def _clip_folders(base: Path) -> dict[str, list[str]]:
    return {d.name: sorted(p.name for p in d.iterdir())
            for d in (base / "downloads").iterdir() if d.is_dir()}


def test_20_clips_and_2_encodes_at_once_over_two_apis_and_two_workers(cluster, source_server,
                                                                     tmp_path):
    source_server.rate_bytes_per_sec = None
    urls = _urls(cluster)
    user = User(next(urls))
    uploads = [user.upload(next(urls)) for _ in range(2)]
    clips = [user.save_clip(next(urls), source_server.dash_url, 30 + 10 * n,
                            30 + 10 * n + CLIP_SECONDS) for n in range(CLIPS)]
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:  # all 22 at once, through both API processes
        answers = list(pool.map(
            lambda job: user.start_encode(job[0], job[1]) if job[1] in uploads
            else user.download(job[0], job[1]),
            [(next(urls), job) for job in [*uploads, *clips]]))
    assert [r.status_code for r in answers] == [202] * (CLIPS + 2), [r.text for r in answers]

    ends = wait_all(lambda v: user.clip_status(next(urls), v), clips, timeout=170)
    encode_ends = wait_all(lambda e: user.encode_status(next(urls), e), uploads, timeout=60)
    elapsed = time.monotonic() - started
    assert [ends[v]["status"] for v in clips] == ["completed"] * CLIPS, ends
    assert [encode_ends[e]["status"] for e in uploads] == ["completed"] * 2, encode_ends
    print(f"\n20 clips + 2 encodes on 2 workers: {elapsed:.1f} s")

    pools = [w.pool() for w in cluster["workers"]]
    ran_by = [_run(cluster, _job_id(cluster, v), "clip") for v in clips]
    assert all(r.get("runs") == "1" for r in ran_by), ran_by  # each ran once
    assert all(any(int(r["pid"]) in p for r in ran_by) for p in pools), (ran_by, pools)
    for n in (0, CLIPS // 2, CLIPS - 1):  # a sample, downloaded through either process
        r = user.download(next(urls), clips[n])
        assert r.status_code == 200 and r.headers["Content-Type"] == "video/mp4"
        duration, height, _ = _probe(r.content, tmp_path / f"clip{n}.mp4")
        assert abs(duration - CLIP_SECONDS) <= 1 and height == 720, (n, duration, height)
    r = user.encode_download(next(urls), uploads[1])
    assert r.status_code == 200
    duration, height, codec = _probe(r.content, tmp_path / "encode.mp4")
    assert codec == "h264" and height == 720 and abs(duration - 5.3) <= 0.5

    folders = _clip_folders(cluster["base"])
    assert len(folders) == CLIPS, folders
    for names in folders.values():  # the finished clip and its thumbnail, nothing else
        assert len(names) == 2 and {Path(n).suffix for n in names} == {".mp4", ".jpg"}, names
    assert _leftovers(cluster["base"]) == []


def _assert_ffmpeg_gone(base: Path, seconds: float = FFMPEG_GONE_SECONDS) -> None:
    """No ffmpeg whose command line names a file under ``base`` is left within ``seconds``."""
    deadline = time.monotonic() + seconds
    while ffmpeg_under(base):
        assert time.monotonic() < deadline, f"ffmpeg outlived its job: {ffmpeg_under(base)}"
        time.sleep(0.1)


def _wait_running(user, url, cluster, clip: str, upload: str, timeout: float = 60) -> None:
    """Until both jobs run in a pool process and have made progress."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        clip_progress = user.clip_status(url, clip).get("progress") or {}
        encode_progress = user.encode_status(url, upload).get("progress") or 0
        if clip_progress.get("download_progress", 0) > 0 and encode_progress > 0 \
                and _run(cluster, _job_id(cluster, clip), "clip") \
                and _run(cluster, _job_id(cluster, upload), "encode"):
            return
        time.sleep(0.2)
    raise AssertionError(f"not both running: clip {clip_progress}, encode {encode_progress}")


def test_kill_9_a_worker_mid_clip_and_one_mid_encode(cluster, source_server, tmp_path):
    """Mid-clip: SIGKILL of the pool process running the clip (its worker's main process
    lives: Celery's ``reject_on_worker_lost`` puts the task back and a new pool process takes
    it). Mid-encode: SIGKILL of the whole other worker (main + pool process: a machine lost;
    the task stays unacknowledged in Redis until the visibility timeout) — its job must end
    failed with a code through the heartbeat reaper, asked by a status request."""
    urls = _urls(cluster)
    user = User(next(urls))
    upload = user.upload(next(urls))
    source_server.rate_bytes_per_sec = 200_000  # the 30 s clip takes ~15 s to fetch
    clip = user.save_clip(next(urls), source_server.dash_url, 300, 330)
    assert user.start_encode(next(urls), upload, *SLOW_ENCODE).status_code == 202
    assert user.download(next(urls), clip).status_code == 202
    _wait_running(user, next(urls), cluster, clip, upload)
    clip_job, encode_job = _job_id(cluster, clip), _job_id(cluster, upload)
    clip_pid = int(_run(cluster, clip_job, "clip")["pid"])
    encode_pid = int(_run(cluster, encode_job, "encode")["pid"])
    clip_worker = next(w for w in cluster["workers"] if clip_pid in w.pool())
    encode_worker = next(w for w in cluster["workers"] if encode_pid in w.pool())
    assert clip_worker is not encode_worker
    subprocess.run(["kill", "-9", str(clip_pid)], check=True)
    encode_worker.kill()
    killed_at = time.monotonic()
    source_server.rate_bytes_per_sec = None
    _assert_ffmpeg_gone(cluster["base"])  # their ffmpeg died with them

    clip_end = wait_all(lambda v: user.clip_status(next(urls), v), [clip], timeout=90)[clip]
    encode_end = wait_all(lambda e: user.encode_status(next(urls), e), [upload],
                          timeout=90)[upload]
    print(f"\nclip {clip_end['status']} {clip_end.get('error_code')}, encode "
          f"{encode_end['status']} {encode_end.get('error_code')} "
          f"{time.monotonic() - killed_at:.1f} s after the kills")
    for end in (clip_end, encode_end):
        assert end["status"] in ("completed", "failed"), end
        if end["status"] == "failed":
            assert end["error_code"], end
    if clip_end["status"] == "completed":  # redelivered to a new pool process and restarted
        run = _run(cluster, clip_job, "clip")
        assert run["runs"] == "2" and int(run["pid"]) != clip_pid, run
        assert int(run["pid"]) in set().union(*(w.pool() for w in cluster["workers"]
                                                if w.alive()))
        r = user.download(next(urls), clip)
        duration, height, _ = _probe(r.content, tmp_path / "redelivered.mp4")
        assert abs(duration - 30) <= 1.5 and height == 720
    if encode_end["status"] == "failed":
        assert encode_end["error_code"] == "JOB_INTERRUPTED"
    _assert_ffmpeg_gone(cluster["base"], 0)  # nothing half-written is left, nobody writes
    assert _leftovers(cluster["base"]) == []
    for names in _clip_folders(cluster["base"]).values():
        assert {Path(n).suffix for n in names} <= {".mp4", ".jpg"} and len(names) <= 2, names
    replacement = Worker("w3", cluster["env"], cluster["base"])  # for the next test
    cluster["workers"].append(replacement)
    replacement.wait_ready()


def test_an_encode_outlives_a_restart_of_both_api_processes(cluster, tmp_path):
    urls = _urls(cluster)
    user = User(next(urls))
    upload = user.upload(next(urls))
    assert user.start_encode(next(urls), upload, *SLOW_ENCODE).status_code == 202
    deadline = time.monotonic() + 60
    while not (user.encode_status(next(urls), upload).get("progress") or 0) > 0:
        assert time.monotonic() < deadline, "the encode did not start"
        time.sleep(0.2)
    job = _job_id(cluster, upload)
    apis = cluster["apis"]
    with ThreadPoolExecutor(2) as pool:  # SIGTERM: gunicorn's graceful shutdown
        codes = list(pool.map(lambda api: api.stop(signal.SIGTERM), apis))
    assert codes == [0, 0], [api.log_tail() for api in apis]
    assert cluster["redis"].get(f"heartbeat:{upload}") == job  # still beating meanwhile
    for api in apis:
        api.start()
    for api in apis:
        api.wait_ready()
    body = user.encode_status(apis[1].url, upload)
    assert body["status"] == "processing", body  # the restart happened during the encode
    end = wait_all(lambda e: user.encode_status(next(urls), e), [upload], timeout=100)[upload]
    assert end["status"] == "completed", end
    assert _run(cluster, job, "encode")["runs"] == "1"  # ran through, not restarted
    r = user.encode_download(apis[0].url, upload)
    assert r.status_code == 200, r.text
    duration, height, codec = _probe(r.content, tmp_path / "after-restart.mp4")
    assert codec == "hevc" and height == 720 and abs(duration - 5.3) <= 0.5


def test_kill_9_the_pool_process_mid_encode_and_a_whole_worker_mid_clip(cluster, source_server,
                                                                       tmp_path):
    """The other way round from the test above. Mid-encode: SIGKILL of the pool process running
    the encode only — its ffmpeg must die with it (it has a session of its own, so only the
    death signal reaches it), the redelivered run (a new pool process, once the dead run's lock
    expired) encodes again into the same ``.part`` and completes, or the job ends failed with a
    code. Mid-clip: SIGKILL of a whole worker, main and pool process, as ``systemctl kill -s
    KILL`` does — the task stays unacknowledged in Redis (visibility timeout far away), so the
    clip ends failed JOB_INTERRUPTED through the heartbeat reaper (or completed, had it been
    redelivered), never processing; a new download request then starts a fresh job (new job
    id) that completes on a worker started after the loss."""
    live = [w for w in cluster["workers"] if w.alive()]
    assert len(live) == 2, [w.name for w in cluster["workers"]]
    urls = _urls(cluster)
    user = User(next(urls))
    upload = user.upload(next(urls))
    assert user.start_encode(next(urls), upload, *SLOW_ENCODE).status_code == 202
    deadline = time.monotonic() + 60
    while not _run(cluster, _job_id(cluster, upload), "encode") \
            or not (user.encode_status(next(urls), upload).get("progress") or 0) > 0:
        assert time.monotonic() < deadline, "the encode did not start"
        time.sleep(0.2)
    source_server.rate_bytes_per_sec = 200_000  # the 30 s clip takes ~15 s to fetch
    clip = user.save_clip(next(urls), source_server.dash_url, 400, 430)
    assert user.download(next(urls), clip).status_code == 202
    _wait_running(user, next(urls), cluster, clip, upload)
    clip_job, encode_job = _job_id(cluster, clip), _job_id(cluster, upload)
    encode_pid = int(_run(cluster, encode_job, "encode")["pid"])
    clip_pid = int(_run(cluster, clip_job, "clip")["pid"])
    encode_worker = next(w for w in live if encode_pid in w.pool())
    clip_worker = next(w for w in live if clip_pid in w.pool())
    assert clip_worker is not encode_worker
    encode_out = cluster["base"] / "uploads"
    assert ffmpeg_under(encode_out), "no ffmpeg is encoding"
    subprocess.run(["kill", "-9", str(encode_pid)], check=True)
    _assert_ffmpeg_gone(encode_out)  # its ffmpeg died with the pool process
    clip_worker.kill()  # main + pool process: a machine lost
    source_server.rate_bytes_per_sec = None
    _assert_ffmpeg_gone(cluster["base"])
    replacement = Worker("w4", cluster["env"], cluster["base"])
    cluster["workers"].append(replacement)

    clip_end = wait_all(lambda v: user.clip_status(next(urls), v), [clip], timeout=80)[clip]
    print(f"\nclip after the loss of its worker: {clip_end['status']} "
          f"{clip_end.get('error_code')}")
    assert clip_end["status"] in ("completed", "failed"), clip_end
    if clip_end["status"] == "failed":
        assert clip_end["error_code"] == "JOB_INTERRUPTED", clip_end
        replacement.wait_ready()
        assert user.download(next(urls), clip).status_code == 202  # a fresh job
        assert _job_id(cluster, clip) != clip_job
        clip_end = wait_all(lambda v: user.clip_status(next(urls), v), [clip],
                            timeout=60)[clip]
        assert clip_end["status"] == "completed", clip_end
        assert _run(cluster, _job_id(cluster, clip), "clip")["runs"] == "1"
    r = user.download(next(urls), clip)
    assert r.status_code == 200, r.text
    duration, height, _ = _probe(r.content, tmp_path / "after-loss.mp4")
    assert abs(duration - 30) <= 1.5 and height == 720

    encode_end = wait_all(lambda e: user.encode_status(next(urls), e), [upload],
                          timeout=100)[upload]
    print(f"encode after the loss of its pool process: {encode_end['status']} "
          f"{encode_end.get('error_code')}")
    assert encode_end["status"] in ("completed", "failed"), encode_end
    if encode_end["status"] == "failed":
        assert encode_end["error_code"], encode_end
    else:  # redelivered to a new pool process of the same worker, encoded again
        run = _run(cluster, encode_job, "encode")
        assert run["runs"] == "2" and int(run["pid"]) != encode_pid, run
        r = user.encode_download(next(urls), upload)
        assert r.status_code == 200, r.text
        duration, height, codec = _probe(r.content, tmp_path / "re-encoded.mp4")
        assert codec == "hevc" and height == 720 and abs(duration - 5.3) <= 0.5
    _assert_ffmpeg_gone(cluster["base"], 0)
    assert _leftovers(cluster["base"]) == []
    for names in _clip_folders(cluster["base"]).values():
        assert {Path(n).suffix for n in names} <= {".mp4", ".jpg"} and len(names) <= 2, names
