"""Shared fixtures: small signals written to files, the tiny random-weights models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

torch.set_num_threads(2)


def tone(seconds: float, sample_rate: int, channels: int, seed: int = 0) -> np.ndarray:
    """(time, channels) float32: a few sines plus a little noise, peak below 0.8."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    cols = []
    for c in range(channels):
        f = 110.0 * (c + 1)
        cols.append(0.3 * np.sin(2 * np.pi * f * t) + 0.2 * np.sin(2 * np.pi * 3.1 * f * t) + 0.05 * rng.standard_normal(t.size))
    return np.stack(cols, axis=1).astype(np.float32)


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """Commands set torch's thread count (`separate` uses 1 on the CPU): restore it after each test."""
    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture
def write_audio(tmp_path: Path):
    def _write(name: str, seconds: float = 1.0, sample_rate: int = 8000, channels: int = 1, **kw) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), tone(seconds, sample_rate, channels), sample_rate, **kw)
        return path

    return _write


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """Tiny train/valid speech and noise folders of generated signals at 8 kHz (the voice training tests')."""
    root, sr = tmp_path_factory.mktemp("data"), 8000
    rng = np.random.default_rng(0)
    t = np.arange(sr) / sr
    for split, n in [("train", 3), ("valid", 2)]:
        (root / "speech" / split).mkdir(parents=True)
        (root / "noise" / split).mkdir(parents=True)
        for i in range(n):
            f0 = 200 + 40 * i + (0 if split == "train" else 20)
            x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))
            sf.write(root / "speech" / split / f"s{i}.wav", (0.2 * x).astype(np.float32), sr)
            sf.write(root / "noise" / split / f"n{i}.wav", (0.1 * rng.standard_normal(sr)).astype(np.float32), sr)
    return root
