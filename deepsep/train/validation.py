"""The fixed validation set of the voice models and its evaluation with :mod:`deepsep.metrics`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..augment import room_impulse_responses
from ..metrics import sdr, si_sdr
from ..models.base import SeparationModel
from ..voicedata import build_mixtures, load_layout

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
    """Validation items in memory: mix, voice (items, channels=1, time) tensors and SNRs (items,)."""

    def __init__(self, root: str | Path, sample_rate: int = 8000):
        items = load_layout(root, sample_rate)
        n = min(len(m) for m, *_ in items)
        self.mix = torch.from_numpy(np.stack([m[:n] for m, *_ in items])).unsqueeze(1)
        self.voice = torch.from_numpy(np.stack([v[:n] for _, v, *_ in items])).unsqueeze(1)
        self.snr = torch.tensor([s for *_, s in items])


@torch.no_grad()
def evaluate(model: SeparationModel, valid: ValidationSet, batch_size: int = 16,
             device: str | torch.device = "cpu") -> dict[str, Any]:
    """Voice SI-SDR, SI-SDR improvement and SDR on the validation set (means, and per SNR)."""
    was_training = model.training
    model.eval()
    est = []
    for i in range(0, len(valid.mix), batch_size):
        out = model(valid.mix[i:i + batch_size].to(device))  # (b, sources, 1, time)
        est.append(out[:, 0].float().cpu())
    model.train(was_training)
    voice_est = torch.cat(est)
    s = si_sdr(voice_est, valid.voice)[:, 0]
    s_mix = si_sdr(valid.mix, valid.voice)[:, 0]
    d = sdr(voice_est, valid.voice)[:, 0]
    res: dict[str, Any] = {
        "items": len(s),
        "si_sdr": round(float(s.mean()), 3),
        "si_sdri": round(float((s - s_mix).mean()), 3),
        "sdr": round(float(d.mean()), 3),
        "mixture_si_sdr": round(float(s_mix.mean()), 3),
        "per_snr": {},
    }
    for snr in sorted(set(valid.snr.tolist())):
        k = valid.snr == snr
        res["per_snr"][str(snr)] = {
            "si_sdr": round(float(s[k].mean()), 3),
            "si_sdri": round(float((s[k] - s_mix[k]).mean()), 3),
            "sdr": round(float(d[k].mean()), 3),
        }
    return res
