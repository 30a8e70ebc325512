"""Music test items for :mod:`deepsep.evaluation`: MUSDB18-style tracks as EvalItems."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from .evaluation import EvalItem
from .musdb import SOURCES, TrackRef, decode_track, find_tracks


def _mixture_file(track: TrackRef) -> Path:
    """The file that `deepsep separate` would be given: the .stem.mp4 (its first stream is the
    mixture), the track's mixture file, or the sum of its stems written to a temporary wav."""
    if track.stem_mp4 is not None:
        return track.stem_mp4
    files = dict(track.files)
    if "mixture" in files:
        return files["mixture"]
    stems = decode_track(track)
    path = Path(tempfile.mkdtemp(prefix="deepsep-eval-")) / f"{track.name}.wav"
    sf.write(str(path), stems[0].T, 44100, subtype="FLOAT")
    return path


def music_items(root: Path) -> list[EvalItem]:
    def loader(track: TrackRef):
        def load() -> tuple[dict[str, np.ndarray], int]:
            stems = decode_track(track)
            return {s: stems[1 + i] for i, s in enumerate(SOURCES)}, 44100
        return load

    return [EvalItem(t.name, "music", "", _mixture_file(t), loader(t)) for t in find_tracks(root)]
