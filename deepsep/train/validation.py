"""Validation during training, scored by :mod:`deepsep.evaluation` so that its numbers are ``deepsep eval``'s.

Voice: the fixed validation set (:func:`build_validation_set`), held in memory (:class:`ValidationSet`),
and :func:`evaluate`. Music: the held-out tracks of a :class:`~deepsep.musdb.MusicDataset`,
:func:`evaluate_music` and the mixture and oracle-mask :func:`baselines`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..augment import room_impulse_responses
from ..evaluation import EvalItem, baseline_estimates, in_memory, resample_item, score_rows, sdr_means, speech_items
from ..evaluation import evaluate as evaluate_items
from ..models.base import SeparationModel
from ..musdb import SOURCES, MusicDataset
from ..options import EngineOptions
from ..voicedata import build_mixtures

DEFAULT_VALID_SNRS = (-5, 0, 5, 10)
#: the simulated rooms of validation items: a bank that training (seeded by its own seed) never draws
VALID_RIRS, VALID_RIR_SEED = 50, 987654
#: seed of the validation sets that training builds (the test sets of `deepsep data prepare` use another)
VALID_SEED = 1234


def validation_set_for(opts: dict[str, Any], sample_rate: int) -> Path:
    """The validation folder of a run's options (``TrainOptions`` as a dict), built if needed."""
    return build_validation_set(opts["valid_speech_dir"], opts["valid_noise_dir"], opts["valid_dir"],
                                clip_seconds=opts.get("valid_seconds", 4.0), sample_rate=sample_rate,
                                p_reverb=opts.get("valid_p_reverb", 0.0))


def build_validation_set(speech_dir: str | Path, noise_dir: str | Path, out_dir: str | Path,
                         snrs: Sequence[int] = DEFAULT_VALID_SNRS, clip_seconds: float = 4.0,
                         per_file: int = 1, sample_rate: int = 8000, seed: int = VALID_SEED,
                         p_reverb: float = 0.0) -> Path:
    """Build (once) the validation mixtures: every speech file at every SNR, ``per_file`` times.

    With ``p_reverb``, that share of the items (drawn with the seed) has reverberant speech, from
    simulated rooms that training never sees (another seed of the room bank). A ``params.json``
    stamp records the arguments; the folder is rebuilt only when they change, and the same
    arguments always give the same files (fixed seed).
    """
    from ..voicedata import list_audio

    out = Path(out_dir)
    params: dict[str, Any] = {
        "speech_dir": str(Path(speech_dir).resolve()), "noise_dir": str(Path(noise_dir).resolve()),
        "snrs": [int(s) for s in snrs], "clip_seconds": clip_seconds, "per_file": per_file,
        "sample_rate": sample_rate, "seed": seed, "version": 1,
    }
    if p_reverb:
        params["p_reverb"] = p_reverb
    stamp = out / "params.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == params:
        return out
    n = len(list_audio(speech_dir)) * len(params["snrs"]) * per_file
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    rirs = room_impulse_responses(VALID_RIRS, sample_rate, seed=VALID_RIR_SEED) if p_reverb else []
    build_mixtures(speech_dir, noise_dir, tmp, n, clip_seconds, params["snrs"], sample_rate, seed,
                   rirs=rirs, p_reverb=p_reverb)
    (tmp / "params.json").write_text(json.dumps(params, indent=1))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return out


class ValidationSet:
    """The validation items of a folder (the voice/noise layout), their mixtures and references read
    once and held in memory: what :func:`deepsep.evaluation.evaluate` scores, so that validation and
    ``deepsep eval`` agree."""

    def __init__(self, root: str | Path, sample_rate: int = 8000, file_rate: int | None = None):
        """``file_rate``: the items resampled to that rate first, so that they reach the model as
        files of that rate would (e.g. 48000 for a 16 kHz model that serves 48 kHz files)."""
        self.root = Path(root)
        self.sample_rate = sample_rate
        items = [in_memory(it) for it in speech_items(self.root)]
        self.items = [resample_item(it, file_rate) for it in items] if file_rate else items


def _rows(model: SeparationModel, items: Sequence[EvalItem], engine: EngineOptions) -> list[dict[str, Any]]:
    """The rows of :func:`deepsep.evaluation.evaluate` (no PESQ/STOI), the model in eval mode meanwhile.

    Each submodule's mode is restored, not the model's mode on all: a bag built for validation
    around a frozen partner (in eval mode) and a training model must give each back its own.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        return evaluate_items(model, items, engine, perceptual=False).rows
    finally:
        for m, mode in modes:
            m.training = mode


@torch.no_grad()
def evaluate(model: SeparationModel, valid: ValidationSet, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Voice SI-SDR, SI-SDR improvement and SDR on the validation set (means, and per SNR), through
    the pipeline and metric code of ``deepsep eval`` (:func:`deepsep.evaluation.evaluate`, without
    PESQ/STOI)."""
    rows = [r for r in _rows(model, valid.items, EngineOptions(device=str(device)))
            if r["source"] == "voice" and not r.get("silent")]

    def means(rs: list[dict[str, Any]]) -> dict[str, float]:
        return {k: round(float(np.mean([r[k] for r in rs])), 3) for k in ("si_sdr", "si_sdri", "sdr")}

    res: dict[str, Any] = {"items": len(rows), **means(rows)}
    res["mixture_si_sdr"] = round(float(np.mean([r["si_sdr"] - r["si_sdri"] for r in rows])), 3)
    snrs = sorted({int(r["group"].split()[-1]) for r in rows})
    res["per_snr"] = {str(snr): means([r for r in rows if int(r["group"].split()[-1]) == snr]) for snr in snrs}
    return res


def _track_item(data: MusicDataset, name: str, sources: Sequence[str] = SOURCES) -> EvalItem:
    """A track of ``data`` as an evaluation item: its stems (float32, named ``sources``) are the
    references, their sum the mixture (separated from memory)."""
    def references() -> tuple[dict[str, np.ndarray], int]:
        return {s: data.stems(name)[i].astype(np.float32) for i, s in enumerate(sources)}, data.sample_rate

    return EvalItem(name, "music", "", None, references, data.sample_rate)


@torch.no_grad()
def evaluate_music(model: SeparationModel, data: MusicDataset, names: Sequence[str] | None = None,
                   device: str | torch.device = "cpu", segment: float | None = None) -> dict[str, Any]:
    """Per-stem SDR (dB, mean over tracks, and their average) of ``model`` on whole tracks
    (default: the validation tracks), through the pipeline and metric code of ``deepsep eval``
    (:func:`deepsep.evaluation.evaluate`)."""
    names = list(names if names is not None else data.valid_names)
    rows = _rows(model, [_track_item(data, n) for n in names], EngineOptions(segment=segment, device=str(device)))
    return {"tracks": len(names), "sdr": sdr_means(rows, model.sources)}


#: the oracle masks of :func:`baselines`: (name, power of the magnitude ratios)
IRMS = (("irm1", 1.0), ("irm2", 2.0))


@torch.no_grad()
def baselines(data: MusicDataset, n_fft: int, hop: int, names: Sequence[str] | None = None,
              sources: Sequence[str] = SOURCES) -> dict[str, Any]:
    """Per-stem SDR (as :func:`evaluate_music`) of the mixture as every estimate, and of oracle ideal
    ratio masks at (n_fft, hop): ``irm1`` (magnitude ratios) and ``irm2`` (power ratios), applied to
    the mixture with its phase (:func:`deepsep.evaluation.baseline_estimates`). As everywhere in
    :mod:`deepsep.evaluation`, a stem with a silent reference is left out of the means."""
    rows: list[dict[str, Any]] = []
    for name in names if names is not None else data.valid_names:
        item = _track_item(data, name, sources)
        references, rate = item.load_references()
        mixture = data.mixture(name).astype(np.float32)  # (channels, time)
        methods = baseline_estimates(mixture, references, n_fft, hop, IRMS)
        rows += score_rows(item, methods, references, mixture, rate, perceptual=False)
    return {m: sdr_means([r for r in rows if r["method"] == m], sources) for m in ("mixture", *dict(IRMS))}
