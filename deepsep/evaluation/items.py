"""Test items: what a test set folder holds, as :class:`EvalItem` (no scoring, no files written).

Two layouts: the voice/noise folders of the original project (numbered folders with
``mix_snr_XX.wav``, ``voice.wav``, ``noise.wav``) and MUSDB18-style music tracks (``.stem.mp4``
or one file per stem). Signals are float32 arrays (channels, time).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import AudioReader, resample
from ..errors import DeepsepError
from ..inputs import input_content_rate, input_rate
from ..musdb import SAMPLE_RATE, SOURCES, TrackRef, decode_track, find_tracks
from ..voicedata import read_layout

#: an item's reference loader: () -> ({source: (channels, time) float32}, sample rate)
References = Callable[[], tuple[dict[str, np.ndarray], int]]


@dataclass(frozen=True)
class EvalItem:
    """One test item: the mixture to separate and a loader for its references.

    ``mixture``: a file, separated as ``deepsep separate`` reads it; its samples (channels, time)
    at ``rate`` (:func:`in_memory`); or None: the sum of the references, at ``rate`` (the rate
    that ``load_references`` returns), e.g. a music track folder without a mixture file. The last
    two are separated from memory (:func:`deepsep.evaluation.evaluate`), with no file written.
    """

    name: str
    task: str  # "speech" or "music"
    group: str  # aggregation group: "snr -5" for speech, "" for music
    mixture: Path | np.ndarray | None
    load_references: References
    rate: int | None = None  # the sample rate of a mixture in memory (mixture an array or None)


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """A whole file as ``deepsep separate`` reads it: ((channels, time) float32, sample rate)."""
    with AudioReader(path) as reader:
        blocks = list(reader.blocks(1 << 20))
        return np.concatenate(blocks, axis=1), reader.info.sample_rate


def speech_items(root: Path) -> list[EvalItem]:
    """The items of a voice/noise folder (references "voice" and "noise"), grouped by SNR."""
    def loader(voice: Path, noise: Path) -> References:
        def load() -> tuple[dict[str, np.ndarray], int]:
            (v, rate), (n, _) = read_audio(voice), read_audio(noise)
            return {"voice": v, "noise": n}, rate
        return load

    try:
        layout = read_layout(root)
    except (ValueError, FileNotFoundError) as e:
        raise DeepsepError(str(e)) from None
    return [EvalItem(it.folder.name, "speech", f"snr {it.snr:+d}", it.mix, loader(it.voice, it.noise)) for it in layout]


def _mixture_file(track: TrackRef) -> Path | None:
    """The file that ``deepsep separate`` would be given: the .stem.mp4 (its first stream is the
    mixture) or the track's mixture file; None for a folder of stems only (the sum of its stems)."""
    if track.stem_mp4 is not None:
        return track.stem_mp4
    return dict(track.files).get("mixture")


def music_items(root: Path) -> list[EvalItem]:
    """One item per MUSDB18-style track; its references are the known stems (an unknown stem is
    not scored)."""
    def loader(track: TrackRef) -> References:
        def load() -> tuple[dict[str, np.ndarray], int]:
            stems = decode_track(track, SAMPLE_RATE)  # (1 + sources, channels, time): mixture, stems
            return {s: stems[1 + i] for i, s in enumerate(SOURCES) if track.known[i]}, SAMPLE_RATE
        return load

    return [EvalItem(t.name, "music", "", _mixture_file(t), loader(t), SAMPLE_RATE) for t in find_tracks(root)]


def detect_items(root: Path) -> list[EvalItem]:
    """The items of a test set folder, whichever layout it has."""
    if not root.is_dir():
        raise DeepsepError(f"test set not found: {root}")
    if any(root.glob("*/mix_snr_*.wav")):
        return speech_items(root)
    items = music_items(root)
    if not items:
        raise DeepsepError(f"{root}: neither the voice/noise layout (NNNN/mix_snr_XX.wav) nor music tracks")
    return items


def resolve_dataset(name_or_path: str, sets: Path) -> Path:
    """A dataset argument: an existing path, else a name under ``sets`` (the test sets' folder)."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    named = sets / name_or_path
    if named.is_dir():
        return named
    raise DeepsepError(f"dataset {name_or_path!r} not found (no folder {path} nor {named}); "
                       "build the test sets with `deepsep data prepare`")


def mixture_rate(item: EvalItem, content: bool = False) -> int:
    """The sample rate of the item's mixture as separated: its file's, or the one in memory; with
    ``content``, the rate its file's content fills (:func:`deepsep.inputs.input_content_rate`),
    which picks a rate-dependent alias's model as `separate` does."""
    if not isinstance(item.mixture, Path):
        assert item.rate is not None, "an item with its mixture in memory needs its rate"
        return item.rate
    return input_content_rate(item.mixture) if content else input_rate(item.mixture)


def in_memory(item: EvalItem) -> EvalItem:
    """The item with its references and mixture file read now and kept, for a set scored again
    and again (training validation): the same samples, no reading at each pass."""
    refs = item.load_references()
    if not isinstance(item.mixture, Path):
        return dataclasses.replace(item, load_references=lambda: refs)
    mixture, rate = read_audio(item.mixture)
    return dataclasses.replace(item, mixture=mixture, rate=rate, load_references=lambda: refs)


def resample_item(item: EvalItem, rate: int) -> EvalItem:
    """The item with its references resampled to ``rate`` and its mixture their sum, in memory:
    a file of that rate with the same content, which the pipeline brings to the model's rate and
    back (a 16 kHz item at 48 kHz: what a 48 kHz recording's band edge looks like to a 16 kHz model)."""
    refs, ref_rate = item.load_references()
    if ref_rate != rate:
        refs = {s: resample(x, ref_rate, rate).astype(np.float32) for s, x in refs.items()}
    mixture = np.sum(list(refs.values()), axis=0)
    return dataclasses.replace(item, mixture=mixture, rate=rate, load_references=lambda: (refs, rate))
