"""Speed of the music model on CPU: real-time factor on a 60-s stereo 44.1 kHz signal.

The signal goes through the separation pipeline (``deepsep.pipeline.separate_array``, overlapping
segments, crossfaded), as ``deepsep separate`` does. By default the shipped ``music-4stem`` model
is timed (random weights of its network and config when its file is absent: speed does not
depend on the weights); ``-m NAME`` times another manifest model or a ``.safetensors`` file.

    python benchmarks/music_speed.py                    # music-4stem, 2 threads, 60 s
    python benchmarks/music_speed.py -m music-4stem --threads 1 --seconds 120
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from speed_common import add_engine_args, time_separation

from deepsep.errors import ModelError
from deepsep.registry import build_model
from deepsep.weights import get_model, load_manifest


def test_signal(seconds: float, rate: int = 44100, seed: int = 0) -> torch.Tensor:
    """(channels=2, time): music-like stereo noise (pink-ish, amplitude-modulated) plus tones."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    x = np.cumsum(rng.standard_normal((2, n)), axis=1)
    x -= np.linspace(x[:, 0], x[:, -1], n).T
    x = x / (np.abs(x).max() + 1e-9) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))
    x += 0.2 * np.sin(2 * np.pi * 220 * t) * np.array([[1.0], [0.6]])
    return torch.from_numpy((0.3 * x).astype(np.float32))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", default="music-4stem", help="model name or file")
    ap.add_argument("--seconds", type=float, default=60.0)
    add_engine_args(ap, repeat=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        model, weights = get_model(args.model, trust_local=True), args.model
    except ModelError as e:
        entry = load_manifest().lookup(args.model)  # a manifest model whose weights are absent: time its network
        if entry is None:
            raise SystemExit(f"error: {e}") from None
        model, weights = build_model(entry.arch, entry.config).eval(), f"random ({entry.arch}, {args.model}'s config)"
    wav = test_signal(args.seconds, model.sample_rate)
    out, facts = time_separation(model, wav, args)
    assert out.shape == (len(model.sources), 2, wav.shape[-1])
    print(json.dumps({"model": args.model, "weights": weights, **facts}))


if __name__ == "__main__":
    main()
