"""Scores: per-item metrics, the mixture and oracle-mask baselines, aggregates (no printing, no files).

Each item's mixture goes through :func:`deepsep.api.separate_to_arrays`, the very path of
``deepsep separate`` (from memory when it has no file); every number comes from
:mod:`deepsep.metrics` and :mod:`deepsep.perceptual`. Training validation
(:mod:`deepsep.train.validation`) scores with this module too, so its numbers are ``deepsep eval``'s.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..dsp import istft, stft
from ..errors import DeepsepError
from ..metrics import sdr, si_sdr
from ..models.base import SeparationModel, SpectrogramMasker
from ..options import EngineOptions
from ..perceptual import pesq_score, stoi_score
from ..pipeline import ArrayReader, separate_to_arrays
from .items import EvalItem

#: a reference quieter than this (RMS, dBFS) is silent: its item is reported but not averaged
SILENT_DB = -70.0
BASELINES = ("mixture", "oracle-irm")
#: what :func:`evaluate` sees of each item: (item, estimates, references, mixture, rate)
OnItem = Callable[[EvalItem, dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, int], None]


def is_silent(x: np.ndarray) -> bool:
    """Whether a signal's RMS is below :data:`SILENT_DB`."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) < 10 ** (SILENT_DB / 20)


def oracle_irm(mixture: np.ndarray, references: np.ndarray, n_fft: int, hop: int, power: float = 1.0) -> np.ndarray:
    """Ideal ratio mask estimates, the upper bound of magnitude masking with the mixture's phase.

    mixture (channels, time), references (sources, channels, time) -> (sources, channels, time).
    The masks are ratios of the references' magnitudes raised to ``power`` (1: magnitude, 2: power).
    """
    mix = torch.from_numpy(mixture).double()
    refs = torch.from_numpy(references).double()
    weights = stft(refs, n_fft, hop).abs().pow(power)
    masks = weights / weights.sum(0, keepdim=True).clamp_min(1e-12)
    return istft(masks * stft(mix, n_fft, hop), n_fft, hop, mixture.shape[-1]).float().numpy()


def stft_settings(model: SeparationModel, sample_rate: int) -> tuple[int, int]:
    """The model's STFT size and hop scaled to ``sample_rate`` (64 ms / 16 ms for STFT-free models)."""
    if isinstance(model, SpectrogramMasker):
        n_fft, hop = model.config.n_fft, model.config.hop
        ratio = sample_rate / model.sample_rate
        return max(16, 2 ** round(math.log2(n_fft * ratio))), max(4, round(hop * ratio))
    n = 2 ** round(math.log2(0.064 * sample_rate))
    return n, n // 4


def baseline_estimates(mixture: np.ndarray, references: Mapping[str, np.ndarray], n_fft: int, hop: int,
                       masks: Sequence[tuple[str, float]] = (("oracle-irm", 1.0),)) -> dict[str, dict[str, np.ndarray]]:
    """The baselines' estimates, method -> source -> (channels, time): "mixture" (the unprocessed
    mixture for every source) and an oracle ideal ratio mask per ``masks`` entry (name, power)."""
    names = list(references)
    out = {"mixture": {s: mixture for s in names}}
    for method, power in masks:
        estimates = oracle_irm(mixture, np.stack([references[s] for s in names]), n_fft, hop, power)
        out[method] = dict(zip(names, estimates))
    return out


def score(estimates: Mapping[str, np.ndarray], references: Mapping[str, np.ndarray], mixture: np.ndarray,
          rate: int, task: str, perceptual: bool = True) -> dict[str, dict[str, float | None]]:
    """Metrics per source: SI-SDR, SI-SDRi (over the mixture), SDR, and (``perceptual``) PESQ/STOI
    for speech's voice; a silent reference gives ``{"silent": True}``.

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
        row: dict[str, Any] = {"si_sdr": value, "si_sdri": value - float(si_sdr(mix_flat, r)),
                               "sdr": float(sdr(est, r))}
        if perceptual and task == "speech" and source == "voice":
            row["pesq"] = pesq_score(estimates[source].mean(0), ref.mean(0), rate)
            row["stoi"] = stoi_score(estimates[source].mean(0), ref.mean(0), rate)
        out[source] = row
    return out


def score_rows(item: EvalItem, methods: Mapping[str, Mapping[str, np.ndarray]], references: Mapping[str, np.ndarray],
               mixture: np.ndarray, rate: int, perceptual: bool = True) -> list[dict[str, Any]]:
    """The rows of one item: one per (method, source), with :func:`score`'s metrics."""
    return [{"item": item.name, "group": item.group, "method": method, "source": source, **metrics}
            for method, estimates in methods.items()
            for source, metrics in score(estimates, references, mixture, rate, item.task, perceptual).items()]


def sdr_means(rows: Iterable[dict[str, Any]], sources: Sequence[str]) -> dict[str, float]:
    """Mean SDR per source over the rows (silent ones left out) and their average ("avg"), in dB,
    rounded to 3 decimals: the summary of training validation."""
    rows = [r for r in rows if not r.get("silent")]
    per = {s: float(np.mean([r["sdr"] for r in rows if r["source"] == s])) for s in sources}
    return {**{s: round(v, 3) for s, v in per.items()}, "avg": round(float(np.mean(list(per.values()))), 3)}


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
        return sorted(out, key=lambda a: (order.get(a["method"], 1), a["source"], a["group"] != "all",
                                          group_order(a["group"])))


def group_order(group: str) -> tuple[float, str]:
    """Sort key of a group label: 'snr -5' < 'snr +0' < 'snr +10'."""
    try:
        return float(group.split()[-1]), group
    except (ValueError, IndexError):
        return 0.0, group


def _separate(model: SeparationModel, item: EvalItem, mixture: np.ndarray, ref_rate: int,
              engine: EngineOptions) -> tuple[np.ndarray, int]:
    """The model's stems of the item's mixture, (sources, channels, time), and their rate: its
    file, or from memory (its samples, else ``mixture``, the sum of the references at ``ref_rate``)."""
    if isinstance(item.mixture, Path):
        source: Path | ArrayReader = item.mixture
    elif item.mixture is None:
        source = ArrayReader(np.ascontiguousarray(mixture), ref_rate)
    else:
        assert item.rate is not None, "an item with its mixture in memory needs its rate"
        source = ArrayReader(np.ascontiguousarray(item.mixture), item.rate)
    stems, rate = separate_to_arrays(model, source, engine)
    if rate != ref_rate:
        raise DeepsepError(f"{item.mixture if isinstance(item.mixture, Path) else item.name}: "
                           f"mixture at {rate} Hz but references at {ref_rate} Hz")
    return stems, rate


def evaluate(
    model: SeparationModel,
    items: Iterable[EvalItem],
    engine: EngineOptions | None = None,
    baselines: bool = False,
    *,
    perceptual: bool = True,
    on_item: OnItem | None = None,
) -> EvalResult:
    """Separate and score every item with ``engine`` (None: the default options); PESQ/STOI too
    unless ``perceptual`` is False; with ``baselines``, the mixture and the oracle ideal ratio mask
    too; ``on_item`` sees (item, estimates, references, mixture, rate)."""
    engine = engine or EngineOptions()
    result = EvalResult()
    for item in items:
        references, ref_rate = item.load_references()
        missing = [s for s in references if s not in model.sources]
        if missing:
            raise DeepsepError(f"the model's sources ({', '.join(model.sources)}) do not match "
                               f"the test set's ({', '.join(references)})")
        mixture = functools.reduce(np.add, references.values())  # (channels, time)
        stems, rate = _separate(model, item, mixture, ref_rate, engine)
        n = min(stems.shape[-1], mixture.shape[-1])
        estimates = {s: stems[i][..., :n] for i, s in enumerate(model.sources)}
        references = {s: r[..., :n] for s, r in references.items()}
        mixture = mixture[..., :n]
        methods = {"model": estimates}
        if baselines:
            methods.update(baseline_estimates(mixture, references, *stft_settings(model, rate)))
        result.rows += score_rows(item, methods, references, mixture, rate, perceptual)
        if on_item:
            on_item(item, estimates, references, mixture, rate)
    return result
