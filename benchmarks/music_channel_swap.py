"""What the channel swap of ``--shifts`` is worth to a stereo music model: per-stem SDR on a test set
for passes that differ by a delay within a frame, by swapped channels, or both, through the pipeline
and scores of ``deepsep eval`` (the engine's pass averaging replaced by one with a fixed swap pattern).

    python benchmarks/music_channel_swap.py --dataset data/music-test -m music-4stem
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

import deepsep.engine
from deepsep.evaluation import evaluate, music_items, sdr_means
from deepsep.models.base import SeparationModel
from deepsep.options import EngineOptions
from deepsep.weights import get_model

#: (name, shifts, which passes hear swapped channels; None: the engine's own averaging)
SETTINGS: list[tuple[str, int, tuple[bool, ...] | None]] = [
    ("one pass", 1, (False,)), ("delay only", 2, (False, False)), ("swap only", 2, (False, True)),
    ("delay + swap", 2, (False, True)), ("--shifts 2 (the engine's)", 2, None), ("--shifts 4 (the engine's)", 4, None)]


def averaging(swaps: tuple[bool, ...], delay: bool) -> Callable[[SeparationModel, torch.Tensor, list[int]], torch.Tensor]:
    """A stand-in for :func:`deepsep.engine.average_over_shifts` with this swap pattern (and, without
    ``delay``, every pass at offset 0)."""
    def average(model: SeparationModel, x: torch.Tensor, offsets: list[int]) -> torch.Tensor:
        total = torch.zeros(())
        for s, swap in zip(offsets if delay else [0] * len(offsets), swaps, strict=True):
            xi = x.flip(1) if swap else x
            y = model(F.pad(xi, (s, 0)))[..., s:] if s else model(xi)
            total = total + (y.flip(2) if swap else y).float()
        return total / len(offsets)
    return average


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="a folder of test tracks (as deepsep eval --dataset)")
    ap.add_argument("-m", "--model", default="music-4stem", help="model name or file")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = get_model(args.model)
    if model.audio_channels != 2:
        ap.error(f"{args.model} is not a stereo model: it has no channels to swap")
    items = music_items(Path(args.dataset))
    print(f"{args.model} on {args.dataset} ({len(items)} tracks): SDR (dB)")
    print(f"{'passes':32s} " + " ".join(f"{s:>7}" for s in [*model.sources, "avg"]))
    original = deepsep.engine.average_over_shifts
    try:
        for name, shifts, swaps in SETTINGS:
            deepsep.engine.average_over_shifts = (original if swaps is None
                                                  else averaging(swaps, delay=name != "swap only"))
            means = sdr_means(evaluate(model, items, EngineOptions(shifts=shifts), perceptual=False).rows, model.sources)
            print(f"{name:32s} " + " ".join(f"{means[s]:7.2f}" for s in [*model.sources, "avg"]), flush=True)
    finally:
        deepsep.engine.average_over_shifts = original


if __name__ == "__main__":
    main()
