"""Peak memory and speed of `deepsep separate` for a short and a long file.

Writes two stereo test files (default 1 and 60 minutes, 44.1 kHz, 16-bit, written in blocks),
separates each in a fresh process, and prints the peak resident memory (RSS) and the real-time
factor (processing time / audio duration) of each, and the ratio of the peaks.

    python benchmarks/separate_memory.py                      # tiny-test-music, 1 and 60 min
    python benchmarks/separate_memory.py -m voice --minutes 1 5 --rate 8000 --channels 1
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def write_test_file(path: Path, minutes: float, rate: int, channels: int, seed: int = 0) -> None:
    """Noise shaped like music (pink-ish, amplitude-modulated), written a minute at a time."""
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * rate)
    with sf.SoundFile(str(path), "w", rate, channels, subtype="PCM_16") as f:
        for start in range(0, total, 60 * rate):
            n = min(60 * rate, total - start)
            x = np.cumsum(rng.standard_normal((n, channels)), axis=0)
            x -= np.linspace(x[0], x[-1], n)  # no drift: keep it a bounded random walk
            t = (start + np.arange(n)) / rate
            x *= (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t))[:, None]
            f.write((0.3 * x / (np.abs(x).max() + 1e-9)).astype(np.float32))


def child(args: argparse.Namespace) -> None:
    """Runs in a fresh process: separate one file, print JSON with peak RSS and timing."""
    import torch

    from deepsep.api import EngineOptions, separate_file
    from deepsep.weights import get_model

    torch.set_num_threads(args.threads)
    model = get_model(args.model, trust_local=True)
    start = time.perf_counter()
    result = separate_file(model, Path(args.child), Path(args.out),
                           engine=EngineOptions(segment=args.segment, batch_size=args.batch_size))
    elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"duration": result.duration, "elapsed": elapsed, "rtf": elapsed / result.duration, "peak_rss_mb": peak_mb}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", "--model", default="tiny-test-music")
    p.add_argument("--minutes", type=float, nargs=2, default=[1.0, 60.0], metavar=("SHORT", "LONG"))
    p.add_argument("--rate", type=int, default=44100)
    p.add_argument("--channels", type=int, default=2)
    p.add_argument("--segment", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workdir", type=Path, default=None, help="where test files go (default: a temporary folder)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        rows = []
        for minutes in args.minutes:
            path = Path(tmp) / f"test-{minutes:g}min.wav"
            write_test_file(path, minutes, args.rate, args.channels)
            cmd = [sys.executable, __file__, "--child", str(path), "--out", str(Path(tmp) / "out"), "-m", args.model,
                   "--threads", str(args.threads), "--batch-size", str(args.batch_size)]
            if args.segment is not None:
                cmd += ["--segment", str(args.segment)]
            stats = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
            rows.append((minutes, stats))
            print(f"{args.model}: {minutes:g} min, {args.rate} Hz, {args.channels} ch: peak RSS {stats['peak_rss_mb']:.0f} MB, "
                  f"RTF {stats['rtf']:.3f} ({stats['elapsed']:.1f} s)", flush=True)
            path.unlink()
        ratio = rows[-1][1]["peak_rss_mb"] / rows[0][1]["peak_rss_mb"]
        print(f"peak RSS ratio, {args.minutes[1]:g} min / {args.minutes[0]:g} min: {ratio:.2f}")


if __name__ == "__main__":
    main()
