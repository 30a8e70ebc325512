"""The weights of a bag (an ensemble of voice models): SI-SDRi of the members' weighted average.

Each member separates every item of a voice/noise set once, through the pipeline of ``deepsep
eval`` (optionally resampled first to ``--file-rate``, as files of that rate reach the models);
then each weight vector of the grid is scored on the same stems, without separating again. Pick
the weights on a validation split (``runs/voice16-valid`` is built by ``deepsep train unet16``),
not on the set that reports the bag's numbers (``data/test16``), and write them in the manifest's
``bags`` entry.

    python benchmarks/bag_weights.py --set runs/voice16-valid -m voice16-unet -m voice16-convtasnet \\
        --weights 1,0 0.8,0.2 0.75,0.25 0.7,0.3 0.6,0.4 --threads 1
    python benchmarks/bag_weights.py --set runs/voice16-valid --file-rate 8000 \\
        -m voice-convtasnet -m voice-unet --weights 1,0 0.6,0.4 0.5,0.5 0.4,0.6 --threads 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from deepsep.evaluation import evaluate, resample_item, speech_items
from deepsep.evaluation.items import in_memory
from deepsep.metrics import si_sdr
from deepsep.weights import get_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", required=True, type=Path, help="a voice/noise item folder (validation split)")
    ap.add_argument("-m", "--model", action="append", required=True, help="a member (give two or more)")
    ap.add_argument("--weights", nargs="+", required=True, help="weight vectors, one per member each: 0.75,0.25")
    ap.add_argument("--file-rate", type=int, default=None, help="resample the items to this rate first")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    grid = [[float(w) for w in v.split(",")] for v in args.weights]
    if any(len(w) != len(args.model) for w in grid):
        ap.error("each --weights vector needs one weight per -m model")
    torch.set_num_threads(args.threads)
    items = [in_memory(it) for it in speech_items(args.set)]
    if args.file_rate:
        items = [resample_item(it, args.file_rate) for it in items]
    voices: dict[str, list[np.ndarray]] = {}
    refs: list[tuple[np.ndarray, np.ndarray]] = []  # (voice reference, mixture) per item
    for name in args.model:
        got: list[np.ndarray] = []

        def keep(item, estimates, references, mixture, rate, got=got) -> None:
            got.append(estimates["voice"])
            if len(refs) < len(items):
                refs.append((references["voice"], mixture))

        evaluate(get_model(name, rate=args.file_rate), items, perceptual=False, on_item=keep)
        voices[name] = got

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    print(f"{len(items)} items of {args.set}" + (f" at {args.file_rate} Hz" if args.file_rate else ""))
    print("| weights (" + ", ".join(args.model) + ") | SI-SDRi |")
    print("|---|---:|")
    for w in grid:
        total = sum(w)
        scores = []
        for i, (ref, mix) in enumerate(refs):
            n = min(ref.shape[-1], *(voices[m][i].shape[-1] for m in args.model))
            est = np.sum([wk / total * voices[m][i][..., :n] for wk, m in zip(w, args.model)], axis=0)
            scores.append(float(si_sdr(t(est), t(ref[..., :n])).mean() - si_sdr(t(mix[..., :n]), t(ref[..., :n])).mean()))
        print(f"| {', '.join(f'{wk / total:g}' for wk in w)} | {np.mean(scores):.3f} |")


if __name__ == "__main__":
    main()
