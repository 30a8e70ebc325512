"""Music separation against the input's level: SDR per stem with every track scaled as a whole.

Each track of a music test set is scaled by each ``--gains`` factor (its stems and so its mixture,
so that the scores compare like with like) and separated from memory through the pipeline of
``deepsep eval``, which scales a track outside the model's ``level_range_db`` into it first. A
model whose quality does not depend on the level scores the same at every gain.

    deepsep data prepare --only music
    python benchmarks/music_level.py --dataset data/music-test -m music-4stem --gains 1 0.1 3 --threads 1
    python benchmarks/music_level.py ... --no-level-range     # each track at its own level, as before
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from deepsep.evaluation import evaluate
from deepsep.evaluation.items import music_items
from deepsep.evaluation.scoring import sdr_means
from deepsep.weights import get_model


def scaled_references(refs: dict[str, np.ndarray], rate: int, gain: float) -> Callable[[], tuple[dict[str, np.ndarray], int]]:
    """A reference loader: ``refs`` (source -> (channels, time)) times ``gain``, at ``rate``."""
    return lambda: ({s: np.float32(gain) * x for s, x in refs.items()}, rate)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=Path("data/music-test"))
    ap.add_argument("-m", "--model", default="music-4stem")
    ap.add_argument("--gains", nargs="+", type=float, default=[1.0, 0.1, 3.0])
    ap.add_argument("--no-level-range", action="store_true",
                    help="separate every track at its own level (the model's level_range_db off: as before session 18)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = get_model(args.model, trust_local=True)
    if args.no_level_range:
        model.config = dataclasses.replace(model.config, level_range_db=None)
    tracks = [(item, *item.load_references()) for item in music_items(args.dataset)]
    levels = [10 * np.log10(np.mean(np.sum(list(refs.values()), axis=0) ** 2) + 1e-20) for _, refs, _ in tracks]
    print(f"{len(tracks)} tracks of {args.dataset}, RMS level {min(levels):.1f} to {max(levels):.1f} dBFS; "
          f"{args.model}'s level range: {model.level_range_db}")
    print("| gain | " + " | ".join(model.sources) + " | avg |")
    print("|---:|" + "---:|" * (len(model.sources) + 1))
    for gain in args.gains:
        scaled = [dataclasses.replace(item, mixture=None, rate=rate, load_references=scaled_references(refs, rate, gain))
                  for item, refs, rate in tracks]
        sdr = sdr_means(evaluate(model, scaled, perceptual=False).rows, model.sources)
        print(f"| x{gain:g} | " + " | ".join(f"{sdr[s]:.2f}" for s in model.sources) + f" | {sdr['avg']:.2f} |")


if __name__ == "__main__":
    main()
