"""The fixed validation set of the voice models and its evaluation with :mod:`deepsep.metrics`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..augment import room_impulse_responses
from ..models.base import SeparationModel
from ..voicedata import build_mixtures

DEFAULT_VALID_SNRS = (-5, 0, 5, 10)
#: the simulated rooms of validation items: a bank that training (seeded by its own seed) never draws
VALID_RIRS, VALID_RIR_SEED = 50, 987654


def validation_set_for(opts: dict[str, Any], sample_rate: int) -> Path:
    """The validation folder of a run's options (``TrainOptions`` as a dict), built if needed."""
    return build_validation_set(opts["valid_speech_dir"], opts["valid_noise_dir"], opts["valid_dir"],
                                clip_seconds=opts.get("valid_seconds", 4.0), sample_rate=sample_rate,
                                p_reverb=opts.get("valid_p_reverb", 0.0))


def build_validation_set(speech_dir: str | Path, noise_dir: str | Path, out_dir: str | Path,
                         snrs: Sequence[int] = DEFAULT_VALID_SNRS, clip_seconds: float = 4.0,
                         per_file: int = 1, sample_rate: int = 8000, seed: int = 1234,
                         p_reverb: float = 0.0) -> Path:
    """Build (once) the validation mixtures: every speech file at every SNR, ``per_file`` times.

    With ``p_reverb``, that share of the items (drawn with the seed) has reverberant speech, from
    simulated rooms that training never sees (another seed of the room bank). A ``params.json``
    stamp records the arguments; the folder is rebuilt only when they change, and the same
    arguments always give the same files (fixed seed).
    """
    from ..voicedata import list_audio

    out = Path(out_dir)
    params = {
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
    """The validation items of a folder (the voice/noise layout), read once: what
    :func:`deepsep.evaluation.evaluate` scores, so that validation and ``deepsep eval`` agree."""

    def __init__(self, root: str | Path, sample_rate: int = 8000):
        from ..evaluation import speech_items

        self.root = Path(root)
        self.sample_rate = sample_rate
        self.items = [_in_memory(it) for it in speech_items(self.root)]


def _in_memory(item: Any) -> Any:
    """An evaluation item whose references are read now and kept (validation repeats)."""
    import dataclasses

    refs = item.load_references()
    return dataclasses.replace(item, load_references=lambda: refs)


@torch.no_grad()
def evaluate(model: SeparationModel, valid: ValidationSet, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Voice SI-SDR, SI-SDR improvement and SDR on the validation set (means, and per SNR), through
    the pipeline and metric code of ``deepsep eval`` (:func:`deepsep.evaluation.evaluate`, without
    PESQ/STOI)."""
    from ..api import EngineOptions
    from ..evaluation import evaluate as evaluate_items

    was_training = model.training
    model.eval()
    rows = [r for r in evaluate_items(model, valid.items, EngineOptions(device=str(device)), perceptual=False).rows
            if r["source"] == "voice" and not r.get("silent")]
    model.train(was_training)

    def means(rs: list[dict[str, Any]]) -> dict[str, float]:
        return {k: round(float(np.mean([r[k] for r in rs])), 3) for k in ("si_sdr", "si_sdri", "sdr")}

    res: dict[str, Any] = {"items": len(rows), **means(rows)}
    res["mixture_si_sdr"] = round(float(np.mean([r["si_sdr"] - r["si_sdri"] for r in rows])), 3)
    snrs = sorted({int(r["group"].split()[-1]) for r in rows})
    res["per_snr"] = {str(snr): means([r for r in rows if int(r["group"].split()[-1]) == snr]) for snr in snrs}
    return res
