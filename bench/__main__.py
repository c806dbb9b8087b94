"""``python -m bench [clip audio api encode serve shapes live workers] [--runs N]``: run the
benchmarks (all by default), print one Markdown table each under a line describing the
machine, and write the same text to ``bench/results.md``. See BENCHMARKS.md for what each
one measures."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench import api, audio, clip, encode, live, serve, shapes, workers
from bench.common import machine

BENCHES = {"clip": clip.run, "audio": audio.run, "api": api.run, "encode": encode.run,
           "serve": serve.run, "shapes": shapes.run, "live": live.run, "workers": workers.run}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="|".join(BENCHES), help="default: all")
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (median)")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    parts = [f"Machine: {machine()}\n"]
    print(parts[0], flush=True)
    for name in args.names or list(BENCHES):
        started = time.monotonic()
        text = BENCHES[name](runs=args.runs)
        text += f"\n({name}: {time.monotonic() - started:.0f} s)\n"
        print(text, flush=True)
        parts.append(text)
    Path(__file__).with_name("results.md").write_text("\n".join(parts))


if __name__ == "__main__":
    main()
