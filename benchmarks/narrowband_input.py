"""Telephone-band speech stored at a higher rate: which model serves it, and does `-m voice` pick it?

A call recorded to a 44.1 or 48 kHz file, or an 8 kHz recording converted to 16 kHz, holds nothing
above 4 kHz. The `voice` alias picks its model by the rate such a file's *content* fills
(:func:`deepsep.dsp.content_rate`), so it gets the model that serves 8 kHz input. This benchmark
resamples an 8 kHz speech test set (``deepsep data prepare --only speech``: ``data/test``) with
soxr to each of ``--rates``, keeps it in memory, and scores each model on it through the same
separation and metric code as ``deepsep eval`` (SI-SDRi, and PESQ wide-band at 16 kHz or more);
an alias picks its model per item from the mixture, as `separate` does for a file (the table says
which it picked, and how often). A wide-band set (``data/test16``) run with ``--rates 16000 48000``
checks the other side: no wide-band item may be taken for telephone band. ``--codec mp3`` (or
``ogg``) passes each mixture through that lossy codec first, as a call saved to an MP3 would be.

    deepsep data prepare --only speech
    nice python benchmarks/narrowband_input.py --dataset data/test --rates 16000 48000 \\
        -m voice -m voice16-unet -m voice-convtasnet --threads 1
"""

from __future__ import annotations

import argparse
import io
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from deepsep.evaluation import EvalItem, EvalResult, evaluate, resample_item, speech_items
from deepsep.modelcache import ModelCache
from deepsep.options import EngineOptions
from deepsep.weights import load_manifest

#: --codec: libsndfile's (format, subtype) of a lossy copy of each mixture
CODECS = {"mp3": ("MP3", "MPEG_LAYER_III"), "ogg": ("OGG", "VORBIS")}


def through_codec(mix: np.ndarray, rate: int, codec: str) -> np.ndarray:
    """(channels, time) float32 encoded with ``codec`` at libsndfile's default quality and decoded."""
    buf = io.BytesIO()
    fmt, subtype = CODECS[codec]
    sf.write(buf, mix.T, rate, format=fmt, subtype=subtype)
    buf.seek(0)
    out = sf.read(buf, dtype="float32", always_2d=True)[0].T
    return np.pad(out, ((0, 0), (0, max(0, mix.shape[-1] - out.shape[-1]))))[:, : mix.shape[-1]]


def upsampled(item: EvalItem, rate: int, codec: str | None = None) -> EvalItem:
    """The item's mixture and references resampled to ``rate``, in memory (mixture = voice + noise);
    with ``codec``, the mixture goes through that lossy codec (the references do not; the noise
    reference becomes mixture - voice, so that the two still add up to the mixture)."""
    item = resample_item(item, rate)
    if not codec:
        return item
    refs, _ = item.load_references()
    mix = through_codec(item.mixture, rate, codec)
    refs = {**refs, "noise": mix - refs["voice"]}
    return EvalItem(item.name, item.task, item.group, mix, lambda: (refs, rate), rate)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", type=Path, default=Path("data/test"), help="a speech test set folder")
    ap.add_argument("--rates", type=int, nargs="+", default=[16000, 48000], help="file rates to resample it to")
    ap.add_argument("-m", "--model", action="append", help="models or aliases (default: voice, voice16-unet, "
                                                           "voice-convtasnet)")
    ap.add_argument("--codec", choices=sorted(CODECS), help="pass each mixture through a lossy codec first")
    ap.add_argument("--limit", type=int, help="only the first N items")
    ap.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads (0: PyTorch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = args.model or ["voice", "voice16-unet", "voice-convtasnet"]
    manifest, items = load_manifest(), speech_items(args.dataset)[: args.limit]
    print("| file rate | model | picked | voice SI-SDRi | PESQ | STOI |")
    print("|---|---|---|---:|---:|---:|")
    for rate in args.rates:
        at_rate = [upsampled(item, rate, args.codec) for item in items]
        for name in models:
            cache, picked, result = ModelCache(name, "cpu", manifest), Counter[str](), EvalResult()
            for item in at_rate:
                assert isinstance(item.mixture, np.ndarray)
                concrete, model = cache.for_signal(torch.from_numpy(item.mixture), rate)
                picked[concrete] += 1
                result.rows += evaluate(model, [item], EngineOptions(device="cpu")).rows
            row = next(r for r in result.summary() if r["method"] == "model" and r["source"] == "voice"
                       and r["group"] == "all")
            print(f"| {rate} | {name} | {', '.join(f'{m} x{n}' for m, n in picked.most_common())} | "
                  f"{row['si_sdri_mean']:.2f} | {row['pesq_mean']:.3f} | {row['stoi_mean']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
