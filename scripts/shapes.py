"""Local sources of every shape yt-dlp hands over for segmented video (issue 12, item 6).

The clip pipeline must cope with what sites really serve, so the test sources are what plain
ffmpeg muxers write with their default options — never shaped to our code (DESIGN.md, "Running
without the internet"). Each source is ~10 minutes, built from the real clip in ``tests/media``
(Big Buck Bunny, CC-BY 3.0 Blender Foundation) into ``.cache/shapes/``:

- ``dash_number``, ``dash_time``: ``-f dash`` SegmentTemplate + SegmentTimeline with ``$Number$``
  (the muxer's default) and with ``$Time$``; video 720p + 480p and AAC audio in two AdaptationSets;
- ``dash_list``: ``-f dash -single_file 1``: SegmentList of ``mediaRange`` byte ranges;
- ``hls_ts``, ``hls_fmp4`` (``EXT-X-MAP``), ``hls_aes`` (``EXT-X-KEY`` AES-128),
  ``hls_byterange`` (``EXT-X-BYTERANGE``), ``hls_master`` (two variants, ``-var_stream_map``);
- ``webm_cues_end`` (the webm muxer's default: Cues after the clusters) and ``webm_cues_front``
  (``-cues_to_front 1``): progressive VP9 + Opus;
- ``hires``: the 1-minute 1440p VP9 WebM ladder of :mod:`scripts.highres_source`.

Cheap on 2 cores: one 4 s unit per rendition (two 2 s GOPs, as :mod:`scripts.local_source`) is
encoded once, looped with ``-stream_loop`` and stream copy into 10-minute intermediates (video
and audio looped separately, so the video keeps a constant 25 fps), and every shape is muxed
from those with ``-c copy``. ``python -m scripts.shapes --port 8766`` builds and serves them.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from scripts.highres_source import MPD_PATH as HIRES_MPD
from scripts.highres_source import build_highres_source
from scripts.local_source import CLIP, LOOPS, ROOT, UNIT_SECONDS, X264, SourceServer, cached_build
from src.media.ffmpeg import ffprobe, run_ffmpeg

DEFAULT_CACHE = ROOT / ".cache" / "shapes"
RECIPE = "shapes-v1"  # bump when a command below changes, so cached shapes get rebuilt
STAMP = "shapes.json"
#: A fixed AES-128 key (test material, not a secret): the HLS-AES source is then reproducible.
AES_KEY = bytes(range(16))
VP9 = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1",
       "-b:v", "600k", "-g", "50", "-keyint_min", "50"]
UNITS = {  # one 4 s unit per rendition: file name → ffmpeg output options
    "v720.mp4": ["-an", *X264, "-b:v", "600k", "-maxrate", "800k", "-bufsize", "1200k"],
    "v480.mp4": ["-an", "-vf", "scale=854:480", *X264, "-b:v", "300k", "-maxrate", "400k",
                 "-bufsize", "600k"],
    "aac.m4a": ["-vn", "-c:a", "aac", "-ac", "2", "-ar", "48000", "-b:a", "96k"],
    "vp9.webm": ["-an", *VP9],
    "opus.webm": ["-vn", "-c:a", "libopus", "-ac", "2", "-b:a", "96k"],
}
LONG = {  # 10-minute intermediates: name → (video unit, audio unit or None)
    "long720.mp4": ("v720.mp4", "aac.m4a"),
    "long480.mp4": ("v480.mp4", None),
    "longvp9.webm": ("vp9.webm", "opus.webm"),
}
_LADDER = ["-i", "{d}/long720.mp4", "-i", "{d}/long480.mp4", "-map", "0:v", "-map", "1:v",
           "-map", "0:a", "-c", "copy", "-f", "dash",
           "-adaptation_sets", "id=0,streams=v id=1,streams=a"]
_HLS = ["-i", "{d}/long720.mp4", "-c", "copy", "-f", "hls", "-hls_playlist_type", "vod"]
_WEBM = ["-i", "{d}/longvp9.webm", "-c", "copy", "-f", "webm"]
#: shape → (manifest or file relative to the cache, the ffmpeg options before that output;
#: ``{d}`` is the build folder).
SHAPES = {
    "dash_number": ("dash_number/manifest.mpd", _LADDER),
    "dash_time": ("dash_time/manifest.mpd", [
        *_LADDER, "-use_template", "1", "-use_timeline", "1",
        "-media_seg_name", "chunk-stream$RepresentationID$-$Time$.$ext$"]),
    "dash_list": ("dash_list/manifest.mpd", [*_LADDER, "-single_file", "1"]),
    "hls_ts": ("hls_ts/index.m3u8", _HLS),
    "hls_fmp4": ("hls_fmp4/index.m3u8", [*_HLS, "-hls_segment_type", "fmp4"]),
    "hls_aes": ("hls_aes/index.m3u8", [*_HLS, "-hls_key_info_file", "{d}/hls_aes.keyinfo"]),
    "hls_byterange": ("hls_byterange/index.m3u8", [*_HLS, "-hls_flags", "single_file"]),
    "hls_master": ("hls_master/master.m3u8", [
        "-i", "{d}/long720.mp4", "-i", "{d}/long480.mp4", "-map", "0:v", "-map", "0:a",
        "-map", "1:v", "-map", "0:a", "-c", "copy", "-f", "hls", "-hls_playlist_type", "vod",
        "-master_pl_name", "master.m3u8", "-var_stream_map", "v:0,a:0 v:1,a:1"]),
    "webm_cues_end": ("webm/cues_end.webm", _WEBM),
    "webm_cues_front": ("webm/cues_front.webm", [*_WEBM, "-cues_to_front", "1"]),
}
#: The master playlist is written beside the variant playlists ffmpeg is given as output.
OUTPUT = {"hls_master": "hls_master/stream_%v.m3u8"}


def build_shapes(cache_dir=DEFAULT_CACHE, log=print) -> dict:
    """Build (once) every shape in ``cache_dir``; return ``{shape: facts}``.

    ``facts``: ``{"path": manifest or file relative to cache_dir, "duration": seconds (ffprobe's
    format duration of the built source), "heights": [video heights, best first],
    "audio": bool}``. Cached: a ``shapes.json`` stamp holds the recipe, the facts and every file's
    size; the build is skipped when they match. Built in a temporary folder and moved in, stamp
    last, under an flock (as :func:`scripts.local_source.build_sources`). The ``hires`` entry is
    built by :func:`scripts.highres_source.build_highres_source` under its own stamp. About 30 s
    and ~700 MB the first time. Raises FFmpegError.
    """
    cache = Path(cache_dir)
    stamp = cached_build(cache, RECIPE, STAMP, lambda tmp: _build(tmp, log), log,
                         "source shapes")
    shapes = dict(stamp["shapes"])
    build_highres_source(cache)
    shapes["hires"] = {"path": HIRES_MPD, **_facts(str(cache / HIRES_MPD))}
    return shapes


def _build(tmp: Path, log) -> tuple:
    """Encode the units, loop them into the intermediates, mux every shape; return
    ``([files relative to tmp], {"shapes": facts})`` (intermediates and units are not kept)."""
    log(f"building source shapes from {CLIP.name} (~{UNIT_SECONDS * LOOPS // 60} min each)")
    for name, options in UNITS.items():
        run_ffmpeg(["-i", str(CLIP), "-t", str(UNIT_SECONDS), *options, str(tmp / name)])
    loop = ["-stream_loop", str(LOOPS - 1), "-i"]
    for name, (video, audio) in LONG.items():
        inputs = [*loop, str(tmp / video)] + ([*loop, str(tmp / audio)] if audio else [])
        maps = ["-map", "0:v"] + (["-map", "1:a"] if audio else [])
        run_ffmpeg([*inputs, *maps, "-c", "copy", str(tmp / name)])
    (tmp / "hls_aes.keyinfo").write_text(f"enc.key\n{tmp / 'hls_aes' / 'enc.key'}\n")
    facts, before = {}, _files(tmp)
    for shape, (path, options) in SHAPES.items():
        (tmp / path).parent.mkdir(parents=True, exist_ok=True)
        if shape == "hls_aes":
            (tmp / "hls_aes" / "enc.key").write_bytes(AES_KEY)
        log(f"  {shape}: {path}")
        output = OUTPUT.get(shape, path)
        run_ffmpeg([arg.replace("{d}", str(tmp)) for arg in options] + [str(tmp / output)])
        facts[shape] = {"path": path, **_facts(str(tmp / path))}
    return sorted(_files(tmp) - before), {"shapes": facts}


def _files(folder: Path) -> set:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def _facts(path: str) -> dict:
    """Duration (s), video heights (best first) and whether audio is there, from ffprobe of the
    built manifest or file (ffmpeg's own demuxers: dash, hls, matroska). ``-allowed_extensions
    ALL``: ffmpeg 5.1.9's hls demuxer refuses to open a local ``enc.key`` otherwise."""
    args = ["-allowed_extensions", "ALL"] if path.endswith(".m3u8") else []
    probe = ffprobe(path, timeout=60, input_args=args)
    streams = probe.get("streams", [])
    heights = sorted({s["height"] for s in streams if s.get("codec_type") == "video"},
                     reverse=True)
    return {"duration": round(float(probe["format"]["duration"]), 3), "heights": heights,
            "audio": any(s.get("codec_type") == "audio" for s in streams)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--rate", type=int, default=None, help="throttle, bytes per second")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    args = parser.parse_args(argv)
    shapes = build_shapes(args.cache_dir)
    with SourceServer(args.cache_dir, args.port, args.rate, args.host) as server:
        for shape, facts in shapes.items():
            print(f"{shape:16} {server.url(facts['path'])}  {facts['duration']:.1f} s "
                  f"{facts['heights']}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
