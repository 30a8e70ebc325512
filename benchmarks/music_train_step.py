"""Time of one supervised music training step on the CPU: the generator's losses on a batch of random
stems, backward, Adam (what `deepsep train music --supervised-only` repeats), and of the losses alone
(on fixed logits), so a change to the model or the losses can be judged by its cost.

    python benchmarks/music_train_step.py --arch music_bandsplit --config '{"hop": 512}' --threads 1

Prints the median over ``--repeats`` steps (after one warm-up step). The machine's load changes the
numbers: compare two versions by running them alternately, and say how busy the machine was.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from deepsep.dsp import stft
from deepsep.registry import build_model
from deepsep.train.music import MusicLoss, MusicTrainOptions, mask_losses


def median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="music_bandsplit")
    ap.add_argument("--config", default="{}", help="JSON overrides of the model config")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--segment", type=float, default=3.0, help="seconds")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.arch, json.loads(args.config))
    cfg = model.config
    loss = MusicLoss(model, MusicTrainOptions(model=args.arch, supervised_only=True), None)
    opt = torch.optim.Adam(model.parameters())
    stems = 0.1 * torch.randn(args.batch_size, len(cfg.sources), cfg.audio_channels, int(args.segment * cfg.sample_rate))
    known = torch.ones(stems.shape[:2], dtype=torch.bool)

    def step() -> None:
        value = loss(stems, known)[0]
        opt.zero_grad()
        value.backward()
        opt.step()

    Y = stft(stems, cfg.n_fft, cfg.hop)[..., : cfg.bins, :]
    X = Y.sum(dim=1)
    logits = torch.randn(Y.shape, requires_grad=True)

    def losses_only() -> None:
        l1, wave = mask_losses(logits.softmax(dim=1), X, Y, known)
        (l1 + wave).backward()

    s_step = median_seconds(step, args.repeats)
    s_loss = median_seconds(losses_only, args.repeats)
    print(f"{args.arch} {args.config}: batch {args.batch_size} x {args.segment:g} s, {args.threads} thread(s), "
          f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"training step {s_step:.2f} s (median of {args.repeats}); of which the losses on fixed masks "
          f"{s_loss:.2f} s ({100 * s_loss / s_step:.0f} %)")


if __name__ == "__main__":
    main()
