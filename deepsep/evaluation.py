"""Evaluation: test sets, metrics per item, baselines, aggregates (no printing, no files).

A test set is the voice/noise layout of the original project (numbered folders with
``mix_snr_XX.wav``, ``voice.wav``, ``noise.wav``) or MUSDB18-style music tracks. Each item's
mixture goes through :func:`deepsep.api.separate_to_arrays`, the very path of ``deepsep
separate``, and every number comes from :mod:`deepsep.metrics` and :mod:`deepsep.perceptual`.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import soundfile as sf
import torch

from .api import ArrayReader, EngineOptions, input_rate, separate_to_arrays
from .dsp import istft, stft
from .errors import DeepsepError
from .metrics import sdr, si_sdr
from .models.base import SeparationModel
from .perceptual import pesq_score, stoi_score

#: a reference quieter than this (RMS, dBFS) is silent: its item is reported but not averaged
SILENT_DB = -70.0
BASELINES = ("mixture", "oracle-irm")


@dataclass(frozen=True)
class EvalItem:
    """One test item: the mixture file to separate and a loader for its references.

    ``mixture`` None: the mixture is the sum of the references (a music track folder without a
    mixture file), at ``rate`` (the rate that ``load_references`` returns); :func:`evaluate`
    writes it to a temporary float WAV, separates that file and removes it.
    """

    name: str
    task: str  # "speech" or "music"
    group: str  # aggregation group: "snr -5" for speech, "" for music
    mixture: Path | None
    load_references: Callable[[], tuple[dict[str, np.ndarray], int]]  # source -> (channels, time), rate
    rate: int | None = None  # the summed mixture's sample rate (mixture None)


def _read(path: Path) -> tuple[np.ndarray, int]:
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), rate


def speech_items(root: Path) -> list[EvalItem]:
    from .voicedata import read_layout

    def loader(voice: Path, noise: Path) -> Callable[[], tuple[dict[str, np.ndarray], int]]:
        def load() -> tuple[dict[str, np.ndarray], int]:
            (v, rate), (n, _) = _read(voice), _read(noise)
            return {"voice": v, "noise": n}, rate
        return load

    try:
        layout = read_layout(root)
    except (ValueError, FileNotFoundError) as e:
        raise DeepsepError(str(e)) from None
    return [EvalItem(it.folder.name, "speech", f"snr {it.snr:+d}", it.mix, loader(it.voice, it.noise)) for it in layout]


def detect_items(root: Path) -> list[EvalItem]:
    """The items of a test set folder, whichever layout it has."""
    if not root.is_dir():
        raise DeepsepError(f"test set not found: {root}")
    if any(root.glob("*/mix_snr_*.wav")):
        return speech_items(root)
    from .musdb_eval import music_items  # music layouts (.stem.mp4, per-stem folders)

    items = music_items(root)
    if not items:
        raise DeepsepError(f"{root}: neither the voice/noise layout (NNNN/mix_snr_XX.wav) nor music tracks")
    return items


def resolve_dataset(name_or_path: str, data_root: Path) -> Path:
    """A dataset argument: an existing path, else a name under ``data_root``."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    named = data_root / name_or_path
    if named.is_dir():
        return named
    raise DeepsepError(
        f"dataset {name_or_path!r} not found (no folder {path} nor {named}); build the test sets with `deepsep data prepare`"
    )


def is_silent(x: np.ndarray) -> bool:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) < 10 ** (SILENT_DB / 20)


def oracle_irm(mixture: np.ndarray, references: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Ideal ratio mask estimates, the upper bound of magnitude masking with the mixture's phase.

    mixture (channels, time), references (sources, channels, time) -> (sources, channels, time).
    """
    mix = torch.from_numpy(mixture).double()
    refs = torch.from_numpy(references).double()
    mags = stft(refs, n_fft, hop).abs()
    masks = mags / mags.sum(0, keepdim=True).clamp_min(1e-12)
    return istft(masks * stft(mix, n_fft, hop), n_fft, hop, mixture.shape[-1]).float().numpy()


def stft_settings(model: SeparationModel, sample_rate: int) -> tuple[int, int]:
    """The model's STFT size and hop scaled to ``sample_rate`` (64 ms / 16 ms for STFT-free models)."""
    n_fft = getattr(model.config, "n_fft", None)
    hop = getattr(model.config, "hop", None) or getattr(model.config, "hop_length", None)
    if n_fft and hop:
        ratio = sample_rate / model.sample_rate
        return max(16, 2 ** round(math.log2(n_fft * ratio))), max(4, round(hop * ratio))
    n = 2 ** round(math.log2(0.064 * sample_rate))
    return n, n // 4


def score(estimates: dict[str, np.ndarray], references: dict[str, np.ndarray], mixture: np.ndarray,
          rate: int, task: str, perceptual: bool = True) -> dict[str, dict[str, float | None]]:
    """Metrics per source: SI-SDR, SI-SDRi (over the mixture), SDR, and (``perceptual``) PESQ/STOI
    for speech's voice.

    Each signal is (channels, time); channels are concatenated in time for the metrics.
    """
    out: dict[str, dict[str, float | None]] = {}
    mix_flat = torch.from_numpy(mixture.reshape(-1)).double()
    for source, ref in references.items():
        if is_silent(ref):
            out[source] = {"silent": True}
            continue
        est = torch.from_numpy(estimates[source].reshape(-1)).double()
        r = torch.from_numpy(ref.reshape(-1)).double()
        value = float(si_sdr(est, r))
        row: dict[str, Any] = {"si_sdr": value, "si_sdri": value - float(si_sdr(mix_flat, r)), "sdr": float(sdr(est, r))}
        if perceptual and task == "speech" and source == "voice":
            row["pesq"] = pesq_score(estimates[source].mean(0), ref.mean(0), rate)
            row["stoi"] = stoi_score(estimates[source].mean(0), ref.mean(0), rate)
        out[source] = row
    return out


@dataclass
class EvalResult:
    """Rows of per-item metrics: one per (item, method, source)."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def excluded(self) -> int:
        return sum(1 for r in self.rows if r.get("silent"))

    def summary(self) -> list[dict[str, Any]]:
        """Mean and median of each metric per (method, source, group), plus 'all' groups."""
        keyed: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for r in self.rows:
            if r.get("silent"):
                continue
            for group in (r["group"], "all") if r["group"] else ("all",):
                keyed.setdefault((r["method"], r["source"], group), []).append(r)
        out = []
        for (method, source, group), rows in keyed.items():
            agg: dict[str, Any] = {"method": method, "source": source, "group": group, "count": len(rows)}
            for metric in ("si_sdr", "si_sdri", "sdr", "pesq", "stoi"):
                values = [r[metric] for r in rows if r.get(metric) is not None]
                if values:
                    agg[f"{metric}_mean"] = float(np.mean(values))
                    agg[f"{metric}_median"] = float(statistics.median(values))
            out.append(agg)
        order = {m: i for i, m in enumerate(["mixture", "model", "oracle-irm"])}
        return sorted(out, key=lambda a: (order.get(a["method"], 1), a["source"], a["group"] != "all", group_order(a["group"])))


def group_order(group: str) -> tuple[float, str]:
    """Sort key of a group label: 'snr -5' < 'snr +0' < 'snr +10'."""
    try:
        return float(group.split()[-1]), group
    except (ValueError, IndexError):
        return 0.0, group


def mixture_rate(item: EvalItem) -> int:
    """The sample rate of the item's mixture as separated: its file's, or the summed references'."""
    if item.mixture is None:
        assert item.rate is not None, "an item without a mixture file needs its rate"
        return item.rate
    return input_rate(item.mixture)


def evaluate(
    model: SeparationModel,
    items: Iterable[EvalItem],
    engine: EngineOptions = EngineOptions(),
    baselines: bool = False,
    *,
    perceptual: bool = True,
    on_item: Callable[[EvalItem, dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, int], None] | None = None,
) -> EvalResult:
    """Separate and score every item (PESQ/STOI too unless ``perceptual`` is False); ``on_item``
    sees (item, estimates, references, mixture, rate)."""
    result = EvalResult()
    for item in items:
        references, ref_rate = item.load_references()
        missing = [s for s in references if s not in model.sources]
        if missing:
            raise DeepsepError(
                f"the model's sources ({', '.join(model.sources)}) do not match the test set's ({', '.join(references)})"
            )
        mixture = sum(references.values())
        source = item.mixture if item.mixture is not None else ArrayReader(np.ascontiguousarray(mixture), ref_rate)
        stems, rate = separate_to_arrays(model, source, engine)
        if rate != ref_rate:
            raise DeepsepError(f"{item.mixture}: mixture at {rate} Hz but references at {ref_rate} Hz")
        n = min(stems.shape[-1], mixture.shape[-1])
        estimates = {s: stems[i][..., :n] for i, s in enumerate(model.sources)}
        references = {s: r[..., :n] for s, r in references.items()}
        mixture = mixture[..., :n]
        methods = {"model": estimates}
        if baselines:
            methods["mixture"] = {s: mixture for s in references}
            n_fft, hop = stft_settings(model, rate)
            names = list(references)
            irm = oracle_irm(mixture, np.stack([references[s] for s in names]), n_fft, hop)
            methods["oracle-irm"] = dict(zip(names, irm))
        for method, est in methods.items():
            for source, metrics in score(est, references, mixture, rate, item.task, perceptual).items():
                result.rows.append({"item": item.name, "group": item.group, "method": method, "source": source, **metrics})
        if on_item:
            on_item(item, estimates, references, mixture, rate)
    return result
