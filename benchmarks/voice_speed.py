"""Speed of the voice models on CPU: real-time factor on a 5-minute 8 kHz mono signal.

The signal is separated in overlapping segments by the generic separation path
(``deepsep.pipeline.separate_array``), as ``deepsep separate`` does. Speed does not depend on the
weights, so by default the architectures' default configs are timed with random weights;
``-m NAME`` times a manifest model or a ``.safetensors`` file instead.

    python benchmarks/voice_speed.py                     # unet and convtasnet, 2 threads, 5 min
    python benchmarks/voice_speed.py -m voice-unet -m voice-convtasnet --threads 1
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from speed_common import add_engine_args, time_separation

from deepsep.registry import build_model
from deepsep.weights import get_model


def test_signal(seconds: float, rate: int, seed: int = 0) -> torch.Tensor:
    """(channels=1, time): amplitude-modulated harmonic tones plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    x = 0.1 * x + 0.05 * rng.standard_normal(len(t))
    return torch.from_numpy(x.astype(np.float32)).unsqueeze(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", action="append", help="model name or file (default: both archs, random weights)")
    ap.add_argument("--minutes", type=float, default=5.0)
    add_engine_args(ap, repeat=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = {}
    for name in args.model or ["unet", "convtasnet"]:
        models[name] = get_model(name, trust_local=True) if args.model else build_model(name, {}).eval()
    for name, model in models.items():
        wav = test_signal(args.minutes * 60, model.sample_rate)
        out, facts = time_separation(model, wav, args)
        assert out.shape[-1] == wav.shape[-1]
        print(json.dumps({"model": name, **facts}))


if __name__ == "__main__":
    main()
