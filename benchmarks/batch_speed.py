"""Speed of `deepsep separate` on a batch of files: wall time for -j/--jobs and --threads settings.

Writes N generated files (speech-like tones in noise, 44.1 kHz stereo by default, so that reading,
resampling and writing count as they do for users), then runs the real command line once per
setting into a fresh folder and reports the wall time, model loading included. Run it on an idle
machine and beside a load (e.g. another `deepsep` run) and say which.

    python benchmarks/batch_speed.py -m voice --files 8 --seconds 30 --settings 1x1,1x2,2x1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", default="voice")
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rate", type=int, default=44100)
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--settings", default="1x1,1x2,2x1", help="JOBSxTHREADS, comma-separated")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        t = np.arange(int(args.seconds * args.rate)) / args.rate
        for i in range(args.files):
            tone = 0.2 * np.sin(2 * np.pi * (150 + 20 * i) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
            x = tone[:, None] + 0.05 * rng.standard_normal((t.size, args.channels))
            files.append(Path(tmp) / f"f{i}.wav")
            sf.write(str(files[-1]), x.astype(np.float32), args.rate)
        for setting in args.settings.split(","):
            jobs, threads = (int(v) for v in setting.split("x"))
            out = Path(tmp) / f"out-{setting}"
            cmd = [sys.executable, "-m", "deepsep", "separate", *map(str, files), "-m", args.model, "-o", str(out),
                   "-q", "-j", str(jobs), "--threads", str(threads)]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True)
            wall = time.perf_counter() - t0
            audio = args.files * args.seconds
            print(json.dumps({"model": args.model, "files": args.files, "seconds_each": args.seconds,
                              "jobs": jobs, "threads": threads, "wall_s": round(wall, 1),
                              "x_realtime": round(audio / wall, 1)}), flush=True)


if __name__ == "__main__":
    main()
