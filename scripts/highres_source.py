"""A 1440p DASH ladder shaped like YouTube's above-1080p offer: VP9 WebM only at 1440p.

Built from the bundled real clip into ``<cache>/hires/``: ``video_1440p.webm`` (VP9, 2560x1440),
``video_720p.mp4`` (H.264), ``audio.webm`` (Opus), ``audio.m4a`` (AAC), each one minute long, and
``manifest.mpd`` listing them as separate representations with direct URLs (yt-dlp's generic
extractor reads it like YouTube's formats). Served by :class:`scripts.local_source.SourceServer`
at ``/hires/manifest.mpd``. Used by the tests of the ≥1440p MP4 path (re-encode to H.265).
"""
from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

from src.media.ffmpeg import run_ffmpeg

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "tests" / "media" / "big_buck_bunny_720p_5s.mp4"
UNIT_SECONDS, LOOPS = 4, 15          # 60 s: long enough for a clip in the middle
RECIPE = "hires-v1"
MPD_PATH = "hires/manifest.mpd"

UNITS = {  # file name → ffmpeg output options for one 4 s unit
    "video_1440p.webm": ["-an", "-vf", "scale=2560:1440", "-c:v", "libvpx-vp9", "-deadline",
                         "realtime", "-cpu-used", "8", "-row-mt", "1", "-b:v", "1500k",
                         "-g", "50", "-keyint_min", "50"],
    "video_720p.mp4": ["-an", "-c:v", "libx264", "-preset", "veryfast", "-b:v", "600k",
                       "-g", "50", "-keyint_min", "50", "-sc_threshold", "0"],
    "audio.webm": ["-vn", "-c:a", "libopus", "-ac", "2", "-b:a", "96k"],
    "audio.m4a": ["-vn", "-c:a", "aac", "-ac", "2", "-b:a", "96k"],
}

MPD = """<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" minBufferTime="PT2S"
     mediaPresentationDuration="PT{seconds}S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
 <Period start="PT0S">
  <AdaptationSet mimeType="video/webm" contentType="video">
   <Representation id="video-1440p" codecs="vp9" width="2560" height="1440" frameRate="25"
                   bandwidth="1500000"><BaseURL>video_1440p.webm</BaseURL></Representation>
  </AdaptationSet>
  <AdaptationSet mimeType="video/mp4" contentType="video">
   <Representation id="video-720p" codecs="avc1.64001f" width="1280" height="720" frameRate="25"
                   bandwidth="600000"><BaseURL>video_720p.mp4</BaseURL></Representation>
  </AdaptationSet>
  <AdaptationSet mimeType="audio/webm" contentType="audio">
   <Representation id="audio-opus" codecs="opus" audioSamplingRate="48000" bandwidth="96000">
    <BaseURL>audio.webm</BaseURL></Representation>
  </AdaptationSet>
  <AdaptationSet mimeType="audio/mp4" contentType="audio">
   <Representation id="audio-aac" codecs="mp4a.40.2" audioSamplingRate="48000" bandwidth="96000">
    <BaseURL>audio.m4a</BaseURL></Representation>
  </AdaptationSet>
 </Period>
</MPD>
"""


def build_highres_source(cache_dir: str | os.PathLike) -> str:
    """Build (once; cached by a recipe stamp) the 1440p ladder; return the MPD's path.

    Takes about 10 s on 2 cores the first time. Raises FFmpegError when ffmpeg fails.
    """
    folder = Path(cache_dir) / "hires"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / "recipe.txt"
    with open(folder / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == RECIPE:
            return str(folder / "manifest.mpd")
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            for name, options in UNITS.items():
                unit = os.path.join(tmp, "unit_" + name)
                run_ffmpeg(["-i", str(CLIP), "-t", str(UNIT_SECONDS), *options, unit])
                run_ffmpeg(["-stream_loop", str(LOOPS - 1), "-i", unit, "-c", "copy",
                            *(["-movflags", "+faststart"] if name.endswith(("mp4", "m4a")) else []),
                            os.path.join(tmp, name)])
                os.replace(os.path.join(tmp, name), folder / name)
        (folder / "manifest.mpd").write_text(MPD.format(seconds=UNIT_SECONDS * LOOPS))
        stamp.write_text(RECIPE)
    return str(folder / "manifest.mpd")
