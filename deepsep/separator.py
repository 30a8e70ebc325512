"""A model and its settings, kept for repeated use: :class:`Separator` (what Demucs users know as
``demucs.api.Separator``), on the same pipeline as ``deepsep separate``."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .audio import AudioReader
from .engine import resolve_device
from .modelcache import ModelCache
from .models.base import SeparationModel
from .options import DEFAULT_ENGINE, DEFAULT_OUTPUT, EngineOptions, OutputOptions, ProgressFn, check_engine, check_segment
from .outputs import FileResult, check_output
from .pipeline import as_signal, collect_stems, separate_signal
from .separation import separate_file
from .stems import stem_matrix
from .weights import check_name, load_manifest


class Separator:
    """Separate many signals and files with one model, loaded once.

    ``model``: a name, alias or ``.safetensors`` file (None: the manifest's default; a
    rate-dependent alias such as ``voice`` picks the model by each signal's rate, loading each
    once), or a model already loaded. ``engine``: segments, overlap, batch size, shifts and device
    ('auto': a GPU when there is one). ``output``: which stems every method gives (``stems``,
    ``two_stems``, ``atten_lim``; all the sources by default) and how :meth:`separate_file`
    writes them (format, names, existing outputs). A UsageError for options that do not go
    together, at once, and a ModelError for a model name or file that is not there (the weights are
    loaded on first use); a model that lacks a stem asked for, or whose analysis frame is longer
    than ``engine.segment``, when it is used.
    """

    def __init__(self, model: str | Path | SeparationModel | None = None, engine: EngineOptions = DEFAULT_ENGINE,
                 output: OutputOptions = DEFAULT_OUTPUT, trust_local: bool = False):
        check_engine(engine)
        check_output(output)
        self.engine = replace(engine, device=resolve_device(engine.device))
        self.output = output
        self._model: tuple[str, SeparationModel] | None = None
        self._models: ModelCache | None = None
        if isinstance(model, SeparationModel):
            check_segment(self.engine, model)
            self._model = ("model", model)
        elif model is None or isinstance(model, (str, os.PathLike)):
            manifest = load_manifest()
            name = os.fspath(model or manifest.default)
            check_name(name, manifest)
            self._models = ModelCache(name, self.engine.device, manifest, trust_local)
        else:
            raise TypeError(f"Separator takes a model name, alias or .safetensors file, or a model from "
                            f"deepsep.load_model, not {model!r}")

    def model_for(self, sample_rate: int | None = None) -> tuple[str, SeparationModel]:
        """(name, model) for a signal at ``sample_rate`` Hz (None: the alias's model without a rate limit)."""
        if self._models is None:
            assert self._model is not None
            return self._model
        return self._checked(self._models.for_rate(sample_rate))

    def _checked(self, picked: tuple[str, SeparationModel]) -> tuple[str, SeparationModel]:
        """``picked`` (name, model), once the engine's segment is known to hold one frame of it."""
        check_segment(self.engine, picked[1], picked[0])
        return picked

    def _for_file(self, path: Path) -> tuple[str, SeparationModel]:
        if self._models is None:
            assert self._model is not None
            return self._model
        return self._checked(self._models.for_file(path))

    def separate_tensor(self, audio: np.ndarray | torch.Tensor,
                        sample_rate: int) -> dict[str, np.ndarray | torch.Tensor]:
        """{stem: signal} for ``audio``, (time,) or (channels, time), numpy or torch, at
        ``sample_rate`` Hz: each stem shaped and typed like ``audio`` (as :func:`deepsep.separate`:
        integer samples are scaled to [-1, 1) for the model and the stems back, rounded).
        A rate-dependent alias picks its model as for a file: by the rate the content fills, judged
        once the input is checked (an AudioError for an empty array, a (time, channels) layout or a
        sample rate that is not a positive whole number, before any work)."""
        signal = as_signal(audio, sample_rate)  # checked and detached before the band analysis
        rate = int(sample_rate)
        if self._models is None:
            _, model = self.model_for(rate)
        else:
            _, model = self._checked(self._models.for_signal(torch.from_numpy(signal), rate))
        names, matrix = stem_matrix(model.sources, self.output)
        return separate_signal(model, audio, rate, names, matrix, self.engine, signal)

    def separate_audio_file(self, path: str | Path) -> tuple[dict[str, np.ndarray], int]:
        """A file's stems in memory: ({stem: (channels, time) float32}, the file's sample rate).
        Memory grows with the file; :meth:`separate_file` writes stems of any length."""
        _, model = self._for_file(Path(path))
        names, matrix = stem_matrix(model.sources, self.output)
        with AudioReader(path) as reader:
            return dict(zip(names, collect_stems(model, reader, matrix, self.engine))), reader.info.sample_rate

    def separate_file(self, path: str | Path, out_dir: str | Path = "outputs", track: str | None = None,
                      progress: ProgressFn | None = None) -> FileResult:
        """Write a file's stems as ``deepsep separate`` does (see :func:`deepsep.separate_file`);
        ``progress(frames done, total frames or None)`` is called after each block."""
        name, model = self._for_file(Path(path))
        return separate_file(model, path, out_dir, self.output, self.engine, track=track, progress=progress,
                             model_name=name)
