"""Subtitle tracks added to a cut clip (src/media/embed.py): the remux keeps every packet of
the clip as ffmpeg's own stream-copy remux does (WebM: the Opus codec delay moves the video's
timestamps by a few ms in any remux) and adds one text stream per language, whose cues read
back (by ffmpeg) as written."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from scripts.subtitle_source import ffprobe_cues
from src.media.embed import embed_subtitles, iso639_2
from src.media.errors import MediaError
from src.media.ffmpeg import ffprobe

MEDIA = Path(__file__).resolve().parent / "media" / "big_buck_bunny_720p_5s.mp4"
VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nFirst line\n\n" \
      "00:00:02.000 --> 00:00:03.250\n<i>Second</i> & more\n"


def _packets(path: Path) -> list:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-map",
                          "0:a", "-c", "copy", "-f", "framemd5", "-"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if not line.startswith("#")]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A stream-copy cut of the real clip (MP4, with the edit list of an input seek) and a
    short VP9/Opus WebM made from it."""
    folder = tmp_path_factory.mktemp("embed")
    mp4, webm = folder / "clip.mp4", folder / "clip.webm"
    subprocess.run(["ffmpeg", "-v", "error", "-ss", "1.3", "-t", "3", "-i", str(MEDIA),
                    "-c", "copy", str(mp4)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-t", "3", "-i", str(MEDIA), "-vf", "scale=320:-2",
                    "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
                    "-c:a", "libopus", str(webm)], check=True)
    return {"mp4": mp4, "webm": webm}


@pytest.mark.parametrize("container,codec", [("mp4", "mov_text"), ("webm", "webvtt")])
def test_tracks_are_added_and_the_clip_is_unchanged(clips, tmp_path, container, codec):
    clip = tmp_path / f"clip.{container}"
    clip.write_bytes(clips[container].read_bytes())
    remuxed = tmp_path.parent / f"{tmp_path.name}-remuxed.{container}"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-c", "copy", str(remuxed)],
                   check=True)
    before = _packets(remuxed)
    (tmp_path / "en.vtt").write_text(VTT)
    (tmp_path / "pt.vtt").write_text(VTT.replace("First", "Primeira"))
    embed_subtitles(clip, container, [("en", "en", tmp_path / "en.vtt"),
                                      ("pt-BR", "pt-BR (automatic)", tmp_path / "pt.vtt")])
    assert _packets(clip) == before
    text = [s for s in ffprobe(str(clip))["streams"] if s["codec_type"] == "subtitle"]
    assert [s["codec_name"] for s in text] == [codec, codec]
    assert [s["tags"]["language"] for s in text] == ["eng", "por"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [clip.name, "en.vtt", "pt.vtt"]
    back = tmp_path / "back.vtt"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-map", "0:s:1", "-c:s",
                    "webvtt", str(back)], check=True)
    cues = ffprobe_cues(back)
    # within 10 ms: the WebM remux moves every stream by the Opus codec delay (6.5 ms) alike
    assert len(cues) == 2
    for (a, b, _), (c, d) in zip(cues, [(0.0, 1.5), (2.0, 3.25)]):
        assert abs(a - c) <= 0.01 and abs(b - d) <= 0.01
    assert cues[0][2].strip() == "Primeira line"


def test_a_broken_clip_is_an_error_and_stays_as_it_was(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 100)
    (tmp_path / "en.vtt").write_text(VTT)
    with pytest.raises(MediaError) as caught:
        embed_subtitles(clip, "mp4", [("en", "en", tmp_path / "en.vtt")])
    assert caught.value.code == "FFMPEG_FAILED"
    assert clip.read_bytes() == b"\x00\x00\x00\x18ftypisom" + b"\x00" * 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "en.vtt"]


def test_language_codes():
    assert [iso639_2(code) for code in ("en", "en-GB", "deu", "zh-Hans", "xx", "en-orig")] == \
        ["eng", "eng", "deu", "zho", None, "eng"]
