"""Listening sets: excerpts of a few songs with each model's stems beside them, to hear what changed.

``<out>/<song>/mixture.wav`` holds the excerpt and ``<out>/<song>/<label>/<stem>.wav`` what each
model makes of it, through the one separation pipeline (:func:`deepsep.pipeline.separate_array`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from .audio import sf_name
from .errors import DeepsepError
from .models.base import SeparationModel

T = TypeVar("T")


def spread(items: Sequence[T], count: int) -> list[T]:
    """``count`` items evenly spaced over ``items`` (all of them when there are fewer)."""
    if count >= len(items):
        return list(items)
    return [items[int(i * len(items) / count)] for i in range(count)]


def excerpt(path: Path, start: float, seconds: float) -> tuple[np.ndarray, int]:
    """(audio (channels, time) float32, rate): ``seconds`` of ``path`` from ``start`` (moved back so
    that the excerpt fits when the file is shorter)."""
    import soundfile as sf

    try:
        info = sf.info(sf_name(path))
    except RuntimeError as e:
        raise DeepsepError(f"{path}: cannot read it as audio ({str(e).splitlines()[0]})") from None
    frames = min(info.frames, int(round(seconds * info.samplerate)))
    first = max(0, min(int(round(start * info.samplerate)), info.frames - frames))
    x, rate = sf.read(sf_name(path), start=first, frames=frames, dtype="float32", always_2d=True)
    return np.ascontiguousarray(x.T), int(rate)


def _write(path: Path, audio: np.ndarray, rate: int) -> None:
    """Write (channels, time) float WAV atomically (a hidden partial file, then a rename)."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}.wav")
    sf.write(sf_name(tmp), audio.T, rate, subtype="FLOAT")
    os.replace(tmp, path)


def targets(songs: Sequence[Path], labels: Sequence[str], out_dir: Path) -> list[Path]:
    """The model folders a listening set would write: ``<out>/<song>/<label>``."""
    return [out_dir / song.stem / label for song in songs for label in labels]


def listening_set(songs: Sequence[Path], models: Mapping[str, SeparationModel], out_dir: Path, start: float = 60.0,
                  seconds: float = 20.0, overwrite: bool = False) -> list[Path]:
    """Write each song's excerpt and every model's stems of it; return the folders written.

    Refuses (DeepsepError, before any work) a model folder that exists unless ``overwrite``, and
    a ``mixture.wav`` that holds another excerpt (other ``start`` / ``seconds``) in any case.
    """
    from .pipeline import separate_array

    taken = [p for p in targets(songs, list(models), out_dir) if p.exists()]
    if taken and not overwrite:
        raise DeepsepError(f"{taken[0]} exists (and {len(taken) - 1} more): give --overwrite to replace them")
    written = []
    for song in songs:
        audio, rate = excerpt(song, start, seconds)
        mix_path = out_dir / song.stem / "mixture.wav"
        if mix_path.is_file():
            import soundfile as sf

            old, old_rate = sf.read(sf_name(mix_path), dtype="float32", always_2d=True)
            if old_rate != rate or old.T.shape != audio.shape or not np.array_equal(old.T, audio):
                raise DeepsepError(f"{mix_path} holds another excerpt of {song.name}: "
                                   f"use another output folder or the same --start / --seconds")
        else:
            _write(mix_path, audio, rate)
        for label, model in models.items():
            stems = separate_array(model, audio, rate)
            for name, stem in stems.items():
                _write(out_dir / song.stem / label / f"{name}.wav", np.asarray(stem), rate)
            written.append(out_dir / song.stem / label)
    return written
