"""Augmentations for voice training data: room reverberation, EQ, band limiting.

Pure functions on mono numpy ``float32`` signals of shape (time,). Each is linear in the signal
(a fixed filter), so applying the same one to voice and noise keeps mixture = voice + noise.

* :func:`room_impulse_responses`: a bank of simulated room impulse responses (image source
  method of ``pyroomacoustics`` in shoebox rooms with RT60 drawn in a range), cached on disk.
* :func:`reverberate`: a signal convolved with an impulse response, same length; the
  reverberant speech is the ``voice`` target (a user's room is part of their voice).
* :func:`random_eq`: a random low shelf, high shelf and peak (RBJ biquads), gains within +-dB.
* :func:`band_limit`: what a narrow-band recording looks like at the model's rate (resampled
  down to ``rate`` and back with soxr), so that 8 kHz input still works on a 16 kHz model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .paths import cache_root

RIR_VERSION = 1


def _cache_dir() -> Path:
    return cache_root() / "rirs"


def _draw_room(rng: np.random.Generator, rt60_range: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """One room's random draws, in a fixed order: dimensions (m), RT60 (s), source, microphone."""
    dims = rng.uniform([3.0, 3.0, 2.4], [12.0, 9.0, 4.5])
    rt60 = float(rng.uniform(*rt60_range))
    src = rng.uniform([0.5, 0.5, 1.0], dims - 0.5)
    mic = rng.uniform([0.5, 0.5, 0.8], dims - 0.5)
    return dims, np.array(rt60), src, mic


def _simulate_rir(room: tuple[np.ndarray, ...], sample_rate: int) -> np.ndarray:
    """The impulse response (taps,) of one drawn room (:func:`_draw_room`), unit energy, direct path first."""
    import pyroomacoustics as pra

    dims, rt60, src, mic = room
    try:
        e_abs, max_order = pra.inverse_sabine(float(rt60), dims)
    except ValueError:  # the room is too small for this RT60: take the largest the room allows
        e_abs, max_order = 0.98, 8
    shoebox = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(e_abs), max_order=min(max_order, 120),
                          use_rand_ism=False)
    shoebox.add_source(src)
    shoebox.add_microphone(mic)
    shoebox.compute_rir()
    h = np.asarray(shoebox.rir[0][0], dtype=np.float64)
    onset = max(0, int(np.argmax(np.abs(h))) - int(0.0025 * sample_rate))
    h = h[onset:]  # the direct path at the start: no pure delay between voice and its target
    return (h / (np.sqrt(np.sum(h ** 2)) + 1e-12)).astype(np.float32)


def room_impulse_responses(count: int, sample_rate: int, seed: int = 0,
                           rt60_range: tuple[float, float] = (0.15, 0.9)) -> list[np.ndarray]:
    """``count`` simulated room impulse responses (unit energy, direct path first), each (taps,).

    Rooms of 3x3x2.4 to 12x9x4.5 m, absorption from an RT60 drawn uniformly in ``rt60_range``
    seconds (Sabine), random source and microphone positions. The same arguments give the same
    bank; it is cached under ``$DEEPSEP_CACHE/rirs`` (default ``~/.cache/deepsep/rirs``). The rooms
    are simulated on all CPU cores.
    """
    key = json.dumps([count, sample_rate, seed, list(rt60_range), RIR_VERSION])
    path = _cache_dir() / f"rirs-{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
    if path.is_file():
        with np.load(path) as z:
            return [z[f"h{i}"] for i in range(count)]
    rng = np.random.default_rng(seed)
    rooms = [_draw_room(rng, rt60_range) for _ in range(count)]
    workers = min(len(rooms), os.cpu_count() or 1)
    if workers > 1:  # about 0.6 s a room on one core: simulate them on all cores
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            bank = list(pool.map(_simulate_rir, rooms, [sample_rate] * len(rooms), chunksize=4))
    else:
        bank = [_simulate_rir(room, sample_rate) for room in rooms]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".partial-{os.getpid()}.npz")
    # values typed Any: with ndarray values mypy checks the ** mapping against savez's allow_pickle: bool too
    arrays: dict[str, Any] = {f"h{i}": h for i, h in enumerate(bank)}
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return bank


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``x`` convolved with ``rir`` and cut to ``len(x)``: (time,) -> (time,)."""
    from scipy.signal import fftconvolve

    return fftconvolve(x, rir)[: len(x)].astype(np.float32)


def _biquad(kind: str, f0: float, gain_db: float, q: float, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ audio-EQ-cookbook coefficients (b, a) of a 'low', 'high' shelf or 'peak' filter."""
    a_gain = 10.0 ** (gain_db / 40.0)
    w0 = 2 * math.pi * f0 / sample_rate
    cw, alpha = math.cos(w0), math.sin(w0) / (2 * q)
    if kind == "peak":
        b = [1 + alpha * a_gain, -2 * cw, 1 - alpha * a_gain]
        a = [1 + alpha / a_gain, -2 * cw, 1 - alpha / a_gain]
    else:
        s = 1 if kind == "low" else -1
        sq = 2 * math.sqrt(a_gain) * alpha
        b = [a_gain * ((a_gain + 1) - s * (a_gain - 1) * cw + sq),
             s * 2 * a_gain * ((a_gain - 1) - s * (a_gain + 1) * cw),
             a_gain * ((a_gain + 1) - s * (a_gain - 1) * cw - sq)]
        a = [(a_gain + 1) + s * (a_gain - 1) * cw + sq,
             -s * 2 * ((a_gain - 1) + s * (a_gain + 1) * cw),
             (a_gain + 1) + s * (a_gain - 1) * cw - sq]
    return np.array(b) / a[0], np.array(a) / a[0]


def random_eq(x: np.ndarray, rng: np.random.Generator, sample_rate: int, max_db: float = 6.0) -> np.ndarray:
    """``x`` through a random low shelf (100-400 Hz), high shelf (2-6 kHz, below Nyquist) and
    peak (300 Hz-4 kHz), each with a gain drawn in +-``max_db``: (time,) -> (time,)."""
    from scipy.signal import lfilter

    nyq = sample_rate / 2
    y = x.astype(np.float64)
    for kind, lo, hi in (("low", 100.0, 400.0), ("high", 2000.0, 6000.0), ("peak", 300.0, 4000.0)):
        f0 = math.exp(rng.uniform(math.log(lo), math.log(min(hi, 0.8 * nyq))))
        b, a = _biquad(kind, f0, float(rng.uniform(-max_db, max_db)), 0.707 if kind != "peak" else 1.0, sample_rate)
        y = lfilter(b, a, y)
    return y.astype(np.float32)


def band_limit(x: np.ndarray, sample_rate: int, rate: int) -> np.ndarray:
    """``x`` resampled to ``rate`` and back (soxr), as a narrow-band recording would reach a
    model at ``sample_rate``: nothing left above ``rate / 2``; with ``rate`` above
    ``sample_rate``, as a file at ``rate`` would (the resampler's transition band, the top ~6 %
    below ``sample_rate / 2``, cut); (time,) -> (time,)."""
    import soxr

    y = soxr.resample(soxr.resample(x, sample_rate, rate, quality="HQ"), rate, sample_rate, quality="HQ")
    out = np.zeros_like(x)
    n = min(len(x), len(y))
    out[:n] = y[:n]
    return out
