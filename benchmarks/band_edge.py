"""How much does a 16 kHz voice model lose when its input comes from a 44.1/48 kHz file?

A 48 kHz file reaches ``voice16-unet`` through soxr's resampler, which passes up to about 7.5 kHz:
the model sees no top half-kilohertz, unlike the 16 kHz files it was validated on. This scores, on
items of a 16 kHz speech test set (``deepsep data prepare --only speech16``: ``data/test16``), the
voice SI-SDR (dB, mean) of four paths, so that the loss can be pinned on the model's input rather
than on the scoring:

* ``16 kHz file``: the item as it is;
* ``16 kHz file, scored at RATE``: the same stems and references resampled to RATE (the scoring);
* ``input through RATE``: the mixture resampled to RATE and back with soxr, separated at 16 kHz,
  scored against the 16 kHz reference (the model's input only);
* ``RATE file``: the mixture and the reference resampled to RATE and separated as `separate` does
  (the pipeline's own resampling both ways).

    nice python benchmarks/band_edge.py --dataset data/test16 -m voice16-unet --every 7 --items 40
    nice python benchmarks/band_edge.py --checkpoint runs/NAME/best.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soxr
import torch

import deepsep
from deepsep.evaluation import speech_items
from deepsep.metrics import si_sdr


def sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    return float(si_sdr(torch.from_numpy(np.asarray(estimate, np.float64)), torch.from_numpy(np.asarray(reference, np.float64))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", type=Path, default=Path("data/test16"), help="a 16 kHz speech test set folder")
    ap.add_argument("-m", "--model", default="voice16-unet")
    ap.add_argument("--checkpoint", type=Path, help="a training checkpoint (.pt) to score instead of -m")
    ap.add_argument("--rate", type=int, default=48000, help="the file rate to go through")
    ap.add_argument("--every", type=int, default=7, help="take every Nth item")
    ap.add_argument("--items", type=int, default=40, help="at most this many items")
    ap.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads (0: PyTorch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.checkpoint:
        from deepsep.train.checkpoints import model_from_checkpoint

        model = model_from_checkpoint(args.checkpoint).eval()
    else:
        model = deepsep.load_model(args.model)
    high = args.rate
    paths: dict[str, list[float]] = {"16 kHz file": [], f"16 kHz file, scored at {high}": [],
                                     f"input through {high}": [], f"{high} file": []}
    for item in speech_items(args.dataset)[:: args.every][: args.items]:
        refs, rate = item.load_references()
        voice, mix = refs["voice"][0], (refs["voice"] + refs["noise"])[0]
        up = soxr.resample(mix, rate, high).astype(np.float32)
        voice_up = soxr.resample(voice, rate, high)
        native = deepsep.separate(model, mix, rate)["voice"]
        scores = [sdr(native, voice), sdr(soxr.resample(native, rate, high), voice_up),
                  sdr(deepsep.separate(model, soxr.resample(up, high, rate).astype(np.float32), rate)["voice"], voice),
                  sdr(deepsep.separate(model, up, high)["voice"], voice_up)]
        for name, value in zip(paths, scores):
            paths[name].append(value)
    for name, values in paths.items():
        print(f"{name}: voice SI-SDR {np.mean(values):.2f} dB ({len(values)} items)")


if __name__ == "__main__":
    main()
