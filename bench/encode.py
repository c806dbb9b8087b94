"""encode: the service's encoder (``src.media.encode.encode_to_mp4``: ffmpeg with ``-progress``
parsed several times a second, temporary file, rename, ffprobe of the result) against the
identical ffmpeg command (``build_encode_command``) run by hand. Like the encode job, the
encoder is given the input's probe made when the file was uploaded (made once here, untimed).

Run: ``.venv/bin/python -m bench.encode [--runs 5] [--codec h264] [--preset medium]``.
Input: the bundled 5.3 s 720p clip looped to 10.6 s (stream copy), so each encode lasts seconds.
"""
from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import median, table
from scripts.local_source import CLIP
from src.media import encode
from src.media.ffmpeg import FFMPEG


def run(runs: int = 5, codec: str = "h264", preset: str = "medium") -> str:
    with tempfile.TemporaryDirectory(prefix="bench-encode-") as tmp:
        tmp = Path(tmp)
        src = str(tmp / "input.mp4")
        subprocess.run([FFMPEG, "-v", "error", "-stream_loop", "1", "-i", str(CLIP), "-c", "copy",
                        src], check=True)
        source = encode.probe_video(src)
        job_times, hand_times, updates = [], [], []
        for i in range(runs + 1):  # the first pair warms the page cache and is dropped
            out = str(tmp / f"job{i}.mp4")
            started = time.monotonic()
            encode.encode_to_mp4(src, out, codec, preset,  # the upload's probe, as the job
                                 on_progress=lambda percent, progress: updates.append(percent),
                                 source=source)
            job = time.monotonic() - started
            args = encode.build_encode_command(src, str(tmp / f"hand{i}.mp4"), codec, preset,
                                               source)
            started = time.monotonic()
            subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args],
                           check=True)
            hand = time.monotonic() - started
            if i:
                job_times.append(job)
                hand_times.append(hand)
    overhead = median([j / h - 1 for j, h in zip(job_times, hand_times)])
    rows = [["encode_to_mp4 (job)", f"{median(job_times):.2f}"],
            ["same ffmpeg command by hand", f"{median(hand_times):.2f}"],
            ["overhead (target ≤ 3 %)", f"{100 * overhead:+.1f} %"],
            ["progress updates per encode", f"{len(updates) / (runs + 1):.0f}"]]
    return table(f"encode — {codec}/{preset}, 10.6 s 720p input, median of {runs}",
                 ["what", "seconds"], rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--codec", default="h264")
    parser.add_argument("--preset", default="medium")
    args = parser.parse_args(argv)
    print(run(args.runs, args.codec, args.preset))


if __name__ == "__main__":
    main()
