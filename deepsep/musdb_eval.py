"""Music test items for :mod:`deepsep.evaluation`: MUSDB18-style tracks as EvalItems."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .evaluation import EvalItem
from .musdb import SAMPLE_RATE, SOURCES, TrackRef, decode_track, find_tracks


def _mixture_file(track: TrackRef) -> Path | None:
    """The file that `deepsep separate` would be given: the .stem.mp4 (its first stream is the
    mixture) or the track's mixture file; None for a folder of stems only, whose mixture is the
    sum of its stems (:func:`deepsep.evaluation.evaluate` writes it to a temporary file)."""
    if track.stem_mp4 is not None:
        return track.stem_mp4
    return dict(track.files).get("mixture")


def music_items(root: Path) -> list[EvalItem]:
    """One item per track; its references are the known stems (an unknown stem is not scored)."""
    def loader(track: TrackRef):
        def load() -> tuple[dict[str, np.ndarray], int]:
            stems = decode_track(track, SAMPLE_RATE)
            return {s: stems[1 + i] for i, s in enumerate(SOURCES) if track.known[i]}, SAMPLE_RATE
        return load

    return [EvalItem(t.name, "music", "", _mixture_file(t), loader(t), SAMPLE_RATE) for t in find_tracks(root)]
