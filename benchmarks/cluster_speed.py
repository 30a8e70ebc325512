"""Speed of `deepsep separate --cluster ray` against the local command, on the same files.

Writes N generated files (tones in noise, 44.1 kHz stereo by default), separates them locally
(`-j 1` and `-j 2`: threads sharing one model) and through a local Ray cluster of W workers (one
per CPU, one PyTorch thread each, as `--cluster ray` plans them), with the code paths the command
uses, and prints for each: throughput in files/s and audio-seconds/s (separation only: the model
loaded, the workers started), the startup it needs, and the overhead per file: the worker time
each file costs beyond separating it (sending it, the result coming back, idle workers at the end):
``wall x workers / files - mean separation time``. Run it on an idle machine and beside a load,
and say which.

    python benchmarks/cluster_speed.py -m tiny-test --files 20 --seconds 10 --workers 2
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from deepsep.cluster import connected, plan_workers, separate_on_cluster
from deepsep.inputs import plan_inputs
from deepsep.modelcache import ModelCache
from deepsep.options import OutputOptions, engine_options
from deepsep.outputs import FileResult
from deepsep.separation import separate_files
from deepsep.weights import load_manifest


def write_files(folder: Path, count: int, seconds: float, rate: int, channels: int) -> list[Path]:
    """``count`` files of tones in noise (each its own pitch)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    files = []
    for i in range(count):
        tone = 0.2 * np.sin(2 * np.pi * (150 + 20 * i) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
        files.append(folder / f"f{i:02d}.wav")
        sf.write(str(files[-1]), (tone[:, None] + 0.05 * rng.standard_normal((t.size, channels))).astype(np.float32), rate)
    return files


def timed(label: str, workers: int, audio_s: float, run: Callable[[Callable[[Path, str], None]], Iterable[FileResult]],
          **facts: float) -> dict:
    """Run a batch (``run(start)``: ``start`` is called as each file is sent off) and measure it
    from the first file sent (the model loaded, the workers started) to the last result."""
    sent: list[float] = []

    def start(path: Path, track: str) -> None:
        if not sent:
            sent.append(time.perf_counter())

    t0 = time.perf_counter()
    results = list(run(start))
    end = time.perf_counter()
    failed = [r.error for r in results if r.error]
    assert not failed, failed
    first = sent[0] if sent else t0
    wall, mean = end - first, sum(r.elapsed for r in results) / len(results)
    return {"run": label, "workers": workers, "files": len(results), **facts, "until_first_sent_s": round(first - t0, 1),
            "wall_s": round(wall, 2), "files_per_s": round(len(results) / wall, 2), "audio_s_per_s": round(audio_s / wall, 1),
            "separate_s_per_file": round(mean, 3), "overhead_s_per_file": round(wall * workers / len(results) - mean, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", default="tiny-test", help="tiny-test (random weights) or a real model, e.g. voice")
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=44100)
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="Ray workers (the local Ray cluster gets as many CPUs)")
    args = ap.parse_args()
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(Path(tmp), args.files, args.seconds, args.rate, args.channels)
        audio_s, output, engine = args.files * args.seconds, OutputOptions(), engine_options("cpu", threads=1)
        batch, _ = plan_inputs(files, output)
        t0 = time.perf_counter()
        models = ModelCache(args.model, "cpu", load_manifest())
        models.preload(files)
        load_s = round(time.perf_counter() - t0, 1)
        for jobs in (1, 2):
            out = Path(tmp) / f"local-j{jobs}"

            def local(start, out=out, jobs=jobs):
                return separate_files(models, batch, out, output, engine, start, jobs)

            print(json.dumps({"model": args.model, **timed(f"local -j {jobs}", jobs, audio_s, local, model_load_s=load_s)}),
                  flush=True)
        t0 = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        init_s = round(time.perf_counter() - t0, 1)
        with connected("ray") as resources:  # as `--cluster ray` does: this Ray, as it is
            plan = plan_workers(resources, "cpu", args.workers, 1)

            def on_ray(start):
                return separate_on_cluster(models, batch, Path(tmp) / "ray", output, engine, plan, 1, start)

            print(json.dumps({"model": args.model, **timed("ray", plan.count, audio_s, on_ray, ray_init_s=init_s)}),
                  flush=True)
        ray.shutdown()


if __name__ == "__main__":
    main()
