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
