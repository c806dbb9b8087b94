"""src/media/encode.py and probe.py on the real Big Buck Bunny clip (© Blender Foundation,
CC-BY 3.0).

Every encode runs the real ffmpeg; results are checked with ffprobe and by decoding them.
The two slow lossless encoders (x265 lossless, libaom lossless) run on a 2 s / 1 s stream-copied
cut of the clip; lossless is checked frame by frame against the decoded input (framemd5).
"""
import os
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

from src.media.encode import (
    CODECS,
    InvalidMediaError,
    build_encode_command,
    encode_time_limit,
    encode_to_mp4,
    probe_video,
)
from src.media.ffmpeg import FFmpegError, FFmpegTimeout, ffprobe, run_ffmpeg
from src.media.probe import UPLOAD_DEMUXERS

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

MEDIA = Path(__file__).parent / "media"
CLIP = MEDIA / "big_buck_bunny_720p_5s.mp4"
SHARED_CLIP = Path("/work/shared/media/big_buck_bunny_720p_5s.mp4")
EXPECTED_VCODEC = {"h264": "h264", "h265": "hevc", "av1": "av1"}
#: Seconds of the clip used per codec for the lossless case (None = the whole 5.3 s clip).
LOSSLESS_CUT = {"h264": None, "h265": 2, "av1": 1}


@pytest.fixture(scope="module")
def clip():
    if not CLIP.exists() and SHARED_CLIP.exists():
        MEDIA.mkdir(exist_ok=True)
        shutil.copyfile(SHARED_CLIP, CLIP)
    if not CLIP.exists():
        pytest.skip(f"test clip missing: {CLIP}")
    return str(CLIP)


@pytest.fixture(scope="module")
def cuts(clip, tmp_path_factory):
    """Stream-copied cuts of the clip: {seconds: path}, and "video_only": 1 s without audio."""
    folder = tmp_path_factory.mktemp("cuts")
    out = {}
    for seconds in (1, 2):
        out[seconds] = str(folder / f"cut_{seconds}s.mp4")
        _ffmpeg("-i", clip, "-t", str(seconds), "-c", "copy", out[seconds])
    out["video_only"] = str(folder / "video_only.mp4")
    _ffmpeg("-i", clip, "-t", "1", "-map", "0:v", "-c", "copy", out["video_only"])
    return out


def _ffmpeg(*args) -> str:
    done = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-y", "-v", "error", *args],
                          capture_output=True, text=True, check=True)
    return done.stdout


def framemd5(path) -> list:
    """MD5 of every decoded video frame, in order (ffmpeg's framemd5 muxer)."""
    text = _ffmpeg("-i", str(path), "-map", "0:v:0", "-f", "framemd5", "-")
    return [line.rsplit(",", 1)[1].strip() for line in text.splitlines()
            if line and not line.startswith("#")]


def _stream(info, kind):
    return next((s for s in info["streams"] if s["codec_type"] == kind), None)


def _assert_playable_mp4(path, codec, source_path):
    info = ffprobe(str(path))
    assert "mp4" in info["format"]["format_name"]
    video, audio = _stream(info, "video"), _stream(info, "audio")
    assert video["codec_name"] == EXPECTED_VCODEC[codec]
    assert (video["width"], video["height"]) == (1280, 720)
    assert audio["codec_name"] == "aac"
    assert 150_000 <= int(audio["bit_rate"]) <= 230_000  # 192k target; AAC VBR drifts a little
    source = ffprobe(str(source_path))
    assert abs(float(info["format"]["duration"]) - float(source["format"]["duration"])) < 0.1
    # Decodes end to end without a single error, and keeps every source frame exactly once.
    _ffmpeg("-xerror", "-i", str(path), "-f", "null", "-")
    assert int(video["nb_frames"]) == int(_stream(source, "video")["nb_frames"])


CASES = [(codec, preset) for codec, presets in CODECS.items() for preset in presets]


@pytest.mark.parametrize("codec,preset", CASES, ids=[f"{c}-{p}" for c, p in CASES])
def test_every_codec_and_preset_gives_a_playable_mp4(codec, preset, clip, cuts, tmp_path):
    lossless = preset == "lossless"
    source = cuts[LOSSLESS_CUT[codec]] if lossless and LOSSLESS_CUT[codec] else clip
    out = tmp_path / f"out_{codec}_{preset}.mp4"

    result = encode_to_mp4(source, str(out), codec, preset)

    assert sorted(os.listdir(tmp_path)) == [out.name]  # no .part left behind
    assert result["size_bytes"] == out.stat().st_size > 0
    assert result["vcodec"] == EXPECTED_VCODEC[codec] and result["acodec"] == "aac"
    _assert_playable_mp4(out, codec, source)
    if lossless:
        expected, actual = framemd5(source), framemd5(out)
        assert len(actual) == len(expected) > 0
        assert actual == expected, "lossless output differs from the source frame by frame"


def test_lossy_presets_are_not_bit_exact_and_medium_is_smaller(cuts, tmp_path):
    # Guards the lossless check above: it must be able to tell a lossy encode apart.
    high = encode_to_mp4(cuts[2], str(tmp_path / "high.mp4"), "h264", "high")
    medium = encode_to_mp4(cuts[2], str(tmp_path / "medium.mp4"), "h264", "medium")
    assert framemd5(tmp_path / "high.mp4") != framemd5(cuts[2])
    assert medium["size_bytes"] < high["size_bytes"]


def test_progress_goes_up_and_ends_at_100(clip, tmp_path):
    seen = []
    encode_to_mp4(clip, str(tmp_path / "out.mp4"), "h264", "high",
                  on_progress=lambda percent, progress: seen.append((percent, progress)))
    percents = [p for p, _ in seen]
    assert any(0 < p < 100 for p in percents), percents
    assert percents[-1] == 100.0 and percents.count(100.0) == 1
    assert seen[-1][1].done
    assert percents == sorted(percents) and all(0 <= p <= 100 for p in percents)
    assert all(round(p, 1) == p for p in percents)


def test_video_only_input_is_encoded_without_audio(cuts, tmp_path):
    out = tmp_path / "out.mp4"
    result = encode_to_mp4(cuts["video_only"], str(out), "h264", "medium")
    assert result["vcodec"] == "h264" and result["acodec"] is None
    assert [s["codec_type"] for s in ffprobe(str(out))["streams"]] == ["video"]


def test_the_probe_given_is_used_and_an_incomplete_one_is_replaced(cuts, tmp_path):
    probe = probe_video(cuts[1])
    # told the input has no audio (as a stored upload probe would say), the encoder maps none
    out = tmp_path / "given.mp4"
    result = encode_to_mp4(cuts[1], str(out), "h264", "medium",
                           source={**probe, "has_audio": False})
    assert result["acodec"] is None
    assert [s["codec_type"] for s in ffprobe(str(out))["streams"]] == ["video"]
    out = tmp_path / "probed.mp4"  # a probe without the fields needed: probed again
    result = encode_to_mp4(cuts[1], str(out), "h264", "medium", source={"duration": 1.0})
    assert result["acodec"] == "aac"
    assert sorted(s["codec_type"] for s in ffprobe(str(out))["streams"]) == ["audio", "video"]


class Cancelled(Exception):
    pass


def test_exception_from_on_progress_stops_ffmpeg_and_leaves_no_file(clip, tmp_path):
    started, calls = [], []

    def on_progress(percent, progress):
        calls.append(percent)
        if percent > 0:
            raise Cancelled()

    out = tmp_path / "out.mp4"
    with pytest.raises(Cancelled):
        encode_to_mp4(clip, str(out), "h265", "high", on_progress=on_progress,
                      on_start=started.append)
    assert started and started[0].poll() is not None  # ffmpeg is gone
    assert 0 < calls[-1] < 100
    assert os.listdir(tmp_path) == []  # neither the output nor the .part file


def test_ffmpeg_failure_raises_ffmpeg_error_and_leaves_no_file(cuts, tmp_path):
    out = tmp_path / "no-such-folder" / "out.mp4"  # ffmpeg cannot open its output
    with pytest.raises(FFmpegError):
        encode_to_mp4(cuts[1], str(out), "h264", "medium")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("codec,preset", [("vp9", "high"), ("h264", "ultra"), ("av1", ""),
                                          ("H264", "high")])
def test_unknown_codec_or_preset_is_a_value_error(codec, preset, clip, tmp_path):
    source = probe_video(clip)
    with pytest.raises(ValueError):
        build_encode_command(clip, str(tmp_path / "o.mp4"), codec, preset, source, 1)
    with pytest.raises(ValueError):
        encode_to_mp4(clip, str(tmp_path / "o.mp4"), codec, preset)
    assert os.listdir(tmp_path) == []


def test_threads_reach_the_encoder(clip, tmp_path):
    source = probe_video(clip)
    for codec, marker in (("h264", None), ("h265", "pools=3"), ("av1", "lp=3")):
        args = build_encode_command(clip, "o.mp4", codec, "high", source, 3)
        assert args[args.index("-threads", args.index("-i")) + 1] == "3"
        if marker:
            assert any(marker in a for a in args)


def test_probe_video_describes_the_clip(clip):
    info = probe_video(clip)
    assert info["resolution"] == "1280x720" and (info["width"], info["height"]) == (1280, 720)
    assert info["original_codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert info["has_audio"] is True and info["fps"] == 25.0
    assert 5.2 < info["duration"] < 5.4


def test_garbage_named_mp4_is_invalid_media(tmp_path):
    bad = tmp_path / "upload.mp4"
    bad.write_bytes(os.urandom(200_000))
    with pytest.raises(InvalidMediaError):
        probe_video(str(bad))
    with pytest.raises(InvalidMediaError):
        encode_to_mp4(str(bad), str(tmp_path / "out.mp4"), "h264", "high")
    assert os.listdir(tmp_path) == ["upload.mp4"]


def test_valid_header_with_random_picture_data_is_invalid_media(clip, tmp_path):
    # The clip's container index intact, every byte of its media data replaced by noise:
    # ffprobe accepts it, only decoding reveals that there is no picture in it.
    data = bytearray(Path(clip).read_bytes())
    at = data.find(b"mdat")
    end = at - 4 + struct.unpack(">I", data[at - 4:at])[0]
    data[at + 4:end] = os.urandom(end - at - 4)
    bad = tmp_path / "noise.mp4"
    bad.write_bytes(bytes(data))
    assert _stream(ffprobe(str(bad)), "video")["codec_name"] == "h264"
    with pytest.raises(InvalidMediaError):
        probe_video(str(bad))


def test_empty_and_audio_only_files_are_invalid_media(clip, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    audio = tmp_path / "audio.m4a"
    _ffmpeg("-i", clip, "-t", "1", "-map", "0:a", "-c", "copy", str(audio))
    for path in (empty, audio, tmp_path / "missing.mp4"):
        with pytest.raises(InvalidMediaError):
            probe_video(str(path))


# --- limits (issue 11): the input allow-list and the encode time limit -----------------------


def test_inputs_are_opened_with_the_allow_list_only(clip, tmp_path):
    """An input the probe did not see (here a playlist naming the clip, with a probe of the real
    clip handed over) is refused by ffmpeg itself: UNSUPPORTED_FORMAT, no output."""
    args = build_encode_command(clip, "o.mp4", "h264", "high", probe_video(clip), 1)
    before_input = args[:args.index("-i")]
    assert before_input[before_input.index("-format_whitelist") + 1] == ",".join(UPLOAD_DEMUXERS)
    assert before_input[before_input.index("-protocol_whitelist") + 1] == "file"
    playlist = tmp_path / "in.mp4"
    playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:5.3,\n"
                        f"{os.path.abspath(clip)}\n#EXT-X-ENDLIST\n")
    with pytest.raises(InvalidMediaError) as refused:
        encode_to_mp4(str(playlist), str(tmp_path / "out.mp4"), "h264", "medium",
                      source=probe_video(clip))
    assert refused.value.code == "UNSUPPORTED_FORMAT"
    assert os.listdir(tmp_path) == ["in.mp4"]


def test_encode_time_limit_formula():
    clip = {"duration": 5.312, "width": 1280, "height": 720, "fps": 25.0}
    assert encode_time_limit(clip, "h265", "high", 4) == pytest.approx(60 + 4 * 2.0 * 5.312)
    assert encode_time_limit(clip, "h264", "lossless", 1) == pytest.approx(60 + 5.312)
    hd = {**clip, "width": 1920, "height": 1080, "fps": 30.0}   # 2.7 × the pixels per second
    assert encode_time_limit(hd, "av1", "lossless", 4) == pytest.approx(
        60 + 4 * 14.3 * 5.312 * 2.7)
    stored = {"duration": 10, "resolution": "1280x720"}          # no size fields, no fps: 30
    assert encode_time_limit(stored, "av1", "high", 2) == pytest.approx(60 + 2 * 2.0 * 10 * 1.2)
    with pytest.raises(ValueError):
        encode_time_limit(clip, "vp9", "high", 4)


def test_encode_past_its_timeout_is_killed_and_leaves_no_file(clip, tmp_path):
    started = []
    begun = time.monotonic()
    with pytest.raises(FFmpegTimeout):
        encode_to_mp4(clip, str(tmp_path / "out.mp4"), "h265", "high", timeout=0.5,
                      on_start=started.append)
    assert time.monotonic() - begun < 10
    assert started and started[0].poll() is not None     # ffmpeg is gone
    assert os.listdir(tmp_path) == []


def test_a_killed_ffmpeg_is_not_reported_as_a_timeout(tmp_path):
    """ffmpeg killed by someone else while a timeout is set: a plain FFmpegError saying so."""
    with pytest.raises(FFmpegError) as failed:
        run_ffmpeg(["-f", "lavfi", "-i", "testsrc=s=64x64:r=25", "-t", "600", "-f", "null", "-"],
                   timeout=60, on_start=lambda proc: os.kill(proc.pid, signal.SIGKILL))
    assert not isinstance(failed.value, FFmpegTimeout)
    assert "signal 9" in str(failed.value)
