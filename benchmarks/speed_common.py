"""What the speed benchmarks share: the engine options and the timed separation, through the one
array pipeline of ``deepsep separate`` and the Python API (:func:`deepsep.pipeline.separate_array`)."""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from deepsep.models.bag import default_segments
from deepsep.models.base import SeparationModel
from deepsep.options import EngineOptions
from deepsep.pipeline import separate_array


def add_engine_args(ap: argparse.ArgumentParser, repeat: int) -> None:
    """--threads, --segment, --overlap, --batch-size, --shifts, --repeat."""
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--segment", type=float, default=None, help="seconds (default: the model's)")
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--shifts", type=int, default=1, help="passes per segment, averaged (as deepsep separate --shifts)")
    ap.add_argument("--repeat", type=int, default=repeat, help="timed runs (the best is reported)")


def time_separation(model: SeparationModel, wav: torch.Tensor, args: argparse.Namespace) -> tuple[torch.Tensor, dict[str, Any]]:
    """Separate ``wav`` (channels, time) at the model's rate after a 10-s warm-up; (stems (sources,
    channels, time), facts with the best time)."""
    engine = EngineOptions(segment=args.segment, overlap=args.overlap, batch_size=args.batch_size, shifts=args.shifts)
    rate = model.sample_rate
    with torch.inference_mode():
        separate_array(model, wav[:, : rate * 10], rate, engine)  # warm-up
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            stems = separate_array(model, wav, rate, engine)
            best = min(best, time.perf_counter() - t0)
    out = torch.stack([torch.as_tensor(stems[s]) for s in model.sources])
    audio = wav.shape[-1] / model.sample_rate
    return out, {
        "params": sum(p.numel() for p in model.parameters()),
        "segment_s": args.segment or default_segments(model), "overlap": args.overlap, "shifts": args.shifts,
        "threads": args.threads,
        "audio_s": audio, "time_s": round(best, 2), "rtf": round(best / audio, 3), "x_realtime": round(audio / best, 1),
    }
