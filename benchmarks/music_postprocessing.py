"""What post-processing is worth to a music model: per-stem SDR on a test set with multichannel
Wiener filtering (``wiener_iterations`` of the model config), with the shift trick (``--shifts``)
and with sharper or softer masks (``--mask-power``: the softmax masks raised to a power and
renormalised, ``mask_power`` of the model config), each setting through the pipeline and scores
of ``deepsep eval``.

    python benchmarks/music_postprocessing.py --dataset data/music-test -m music-4stem --wiener 0,1,2 --shifts 1,2,4
    python benchmarks/music_postprocessing.py --dataset data/eif-heldout --wiener 0 --shifts 1 --mask-power 0.8,1.2,1.5
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from deepsep.evaluation import evaluate, music_items, sdr_means
from deepsep.models.music import SourceMasker
from deepsep.options import EngineOptions
from deepsep.weights import get_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="a folder of test tracks (as deepsep eval --dataset)")
    ap.add_argument("-m", "--model", default="music-4stem", help="model name or file")
    ap.add_argument("--wiener", default="0,1", help="Wiener EM iterations to try, comma-separated")
    ap.add_argument("--shifts", default="1,2", help="shifts to try (with no Wiener filtering), comma-separated")
    ap.add_argument("--mask-power", default="1", help="mask powers to try (no Wiener filtering, one pass), comma-separated")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = get_model(args.model)
    if not isinstance(model, SourceMasker):
        ap.error(f"{args.model} is not a music masker (no Wiener filtering to set)")
    items = music_items(Path(args.dataset))
    power = model.config.mask_power
    settings = ([(int(w), 1, power) for w in args.wiener.split(",")]
                + [(0, int(s), power) for s in args.shifts.split(",") if s != "1"]
                + [(0, 1, float(p)) for p in args.mask_power.split(",") if float(p) != power])
    print(f"{args.model} on {args.dataset} ({len(items)} tracks): SDR (dB)")
    print("wiener shifts power " + " ".join(f"{s:>7}" for s in [*model.sources, "avg"]))
    for wiener, shifts, power in settings:
        model.config = dataclasses.replace(model.config, wiener_iterations=wiener, mask_power=power)
        means = sdr_means(evaluate(model, items, EngineOptions(shifts=shifts), perceptual=False).rows, model.sources)
        print(f"{wiener:6d} {shifts:6d} {power:5.2f} " + " ".join(f"{means[s]:7.2f}" for s in [*model.sources, "avg"]),
              flush=True)


if __name__ == "__main__":
    main()
