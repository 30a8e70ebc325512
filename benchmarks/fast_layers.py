"""Conv-TasNet's forward pass with torchaudio's stock layers against deepsep's fast ones
(``deepsep.models.fast_layers``), timed alternately in one process so that the shared machine's
load falls on both alike; min / lower quartile / median milliseconds per segment.

    python benchmarks/fast_layers.py -m voice16-convtasnet --threads 1 --rounds 20
    python benchmarks/fast_layers.py --train   # one training step's forward and backward instead
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch
from torchaudio.models import ConvTasNet as StockConvTasNet

from deepsep.models.convtasnet import ConvTasNet
from deepsep.weights import get_model


def stock_copy(model: ConvTasNet) -> torch.nn.Module:
    """The same Conv-TasNet and weights with torchaudio's own layers."""
    cfg = model.config
    stock = StockConvTasNet(
        num_sources=len(cfg.sources), enc_kernel_size=cfg.enc_kernel_size, enc_num_feats=cfg.enc_num_feats,
        msk_kernel_size=cfg.msk_kernel_size, msk_num_feats=cfg.msk_num_feats,
        msk_num_hidden_feats=cfg.msk_num_hidden_feats, msk_num_layers=cfg.msk_num_layers,
        msk_num_stacks=cfg.msk_num_stacks, msk_activate=cfg.msk_activate)
    stock.load_state_dict(model.net.state_dict())
    out = copy.deepcopy(model)
    out.net = stock
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", default="voice16-convtasnet", help="a Conv-TasNet model name or file")
    ap.add_argument("--seconds", type=float, default=4.0, help="segment length (the model's default: 4)")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--train", action="store_true", help="time forward + backward in training mode")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    fast = get_model(args.model).float()
    if not isinstance(fast, ConvTasNet):
        ap.error(f"{args.model}: not a Conv-TasNet model")
    models = {"stock": stock_copy(fast), "fast": fast}
    for m in models.values():
        m.train(args.train)
    x = 0.1 * torch.randn(args.batch_size, 1, int(args.seconds * fast.sample_rate))

    def step(m: torch.nn.Module) -> torch.Tensor:
        if args.train:
            y = m(x)
            y.square().mean().backward()
            return y.detach()
        with torch.inference_mode():
            return m(x)

    diff = float((step(models["stock"]) - step(models["fast"])).abs().max()) if not args.train else None
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(args.rounds):
        for name, m in models.items():
            t0 = time.perf_counter()
            step(m)
            times[name].append(time.perf_counter() - t0)
    report = {"model": args.model, "threads": args.threads, "seconds": args.seconds, "batch": args.batch_size,
              "train": args.train, "rounds": args.rounds, "max_abs_diff": diff}
    for name, t in times.items():
        t.sort()
        report[name] = {"min_ms": round(1e3 * t[0], 1), "q25_ms": round(1e3 * t[len(t) // 4], 1),
                        "median_ms": round(1e3 * t[len(t) // 2], 1)}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
