"""Which stems a separation gives, as matrices over the model's sources: --stems, --two-stems, the
one stem of --suffix, and --atten-lim (the noise left in ``voice``). Pure functions; the pipeline
applies the matrix to every block (:func:`deepsep.pipeline.stream`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch

from .errors import UsageError
from .options import OutputOptions

#: the sources that --atten-lim applies to
VOICE_NOISE = ("voice", "noise")

Stems = TypeVar("Stems", np.ndarray, torch.Tensor)


def check_atten_lim(db: float | None, sources: Sequence[str] | None = None) -> None:
    """Raise UsageError unless ``db`` (None: no limit) is a valid --atten-lim for a model with
    ``sources`` (None: not known yet, check the value only)."""
    if db is None:
        return
    if not db >= 0:  # NaN too
        raise UsageError(f"--atten-lim {db:g}: the limit is an attenuation in dB, 0 or more")
    if sources is not None and sorted(sources) != sorted(VOICE_NOISE):
        raise UsageError("--atten-lim needs a model with the sources voice and noise; "
                         f"this one has {', '.join(sources)}")


def atten_lim_matrix(sources: Sequence[str], db: float | None) -> np.ndarray:
    """The (sources, sources) matrix of :func:`limit_attenuation`: the identity when ``db`` is None."""
    m = np.eye(len(sources), dtype=np.float64)
    if db is not None:
        check_atten_lim(db, sources)
        v, n = (list(sources).index(s) for s in VOICE_NOISE)
        g = 10 ** (-db / 20)
        m[v, n], m[n, n] = g, 1 - g
    return m


def limit_attenuation(stems: Stems, sources: Sequence[str], db: float | None) -> Stems:
    """Stems (sources first, any shape after) with the noise attenuated by at most ``db`` dB in
    ``voice``: voice + g * noise and (1 - g) * noise, g = 10 ** (-db / 20), so that they still add
    up to the same mixture (DeepFilterNet's ``--atten-lim``). Same type and shape out."""
    m = atten_lim_matrix(sources, db)
    if isinstance(stems, torch.Tensor):
        return torch.tensordot(torch.from_numpy(m).to(stems), stems, dims=1)
    return np.tensordot(m, stems, axes=1).astype(stems.dtype, copy=False)


def stem_matrix(sources: Sequence[str], opts: OutputOptions) -> tuple[list[str], np.ndarray]:
    """Output stem names and the (stems, sources) float32 matrix that makes them from the model's
    sources (after :func:`limit_attenuation`, folded in)."""
    names, select = _select_matrix(list(sources), opts)
    if opts.suffix is not None:
        names, select = _one_stem(list(sources), opts, names, select)
    return names, (select @ atten_lim_matrix(sources, opts.atten_lim)).astype(np.float32)


def _one_stem(sources: list[str], opts: OutputOptions, names: list[str],
              select: np.ndarray) -> tuple[list[str], np.ndarray]:
    """--suffix writes one stem: the one --stems or --two-stems picks, else a voice/noise model's voice."""
    if opts.two_stems is None and opts.stems:
        if len(names) != 1:
            raise UsageError(f"--suffix writes one stem, and --stems {','.join(names)} picks {len(names)}")
    elif opts.two_stems is None:
        if sorted(sources) != sorted(VOICE_NOISE):
            raise UsageError("--suffix writes one stem: pick it with --stems or --two-stems (the model's sources "
                             f"are {', '.join(sources)})")
        i = names.index("voice")
        names, select = names[i:], select[i:]
    return names[:1], select[:1]


def _select_matrix(sources: list[str], opts: OutputOptions) -> tuple[list[str], np.ndarray]:
    """Stem names and the 0/1 (stems, sources) matrix of --stems / --two-stems."""
    if opts.two_stems is not None:
        if opts.two_stems not in sources:
            raise UsageError(f"--two-stems {opts.two_stems}: the model's sources are {', '.join(sources)}")
        i = sources.index(opts.two_stems)
        m = np.zeros((2, len(sources)), dtype=np.float32)
        m[0, i] = 1
        m[1] = 1
        m[1, i] = 0
        return [opts.two_stems, f"no_{opts.two_stems}"], m
    names = list(opts.stems) if opts.stems else sources
    unknown = [s for s in names if s not in sources]
    if unknown:
        raise UsageError(f"--stems: unknown stem(s) {', '.join(unknown)}: the model's sources are {', '.join(sources)}")
    m = np.zeros((len(names), len(sources)), dtype=np.float32)
    for row, name in enumerate(names):
        m[row, sources.index(name)] = 1
    return names, m
