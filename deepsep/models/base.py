"""The interface every separation model follows.

Axis vocabulary used across deepsep: ``batch``, ``sources``, ``channels``, ``time``.
A model maps a mixture ``(batch, channels, time)`` to its sources
``(batch, sources, channels, time)`` at its own ``sample_rate``; ``channels`` equals
``audio_channels`` (1 for the voice models, 2 for the music model). A model accepts any
``time`` length (it pads internally when its architecture needs a multiple of something).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Generic, TypeVar

import torch
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    """Base of every architecture's frozen config: what the separation path needs to know."""

    sample_rate: int = 8000
    audio_channels: int = 1
    sources: tuple[str, ...] = ("voice", "noise")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sources"] = list(self.sources)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
        kw = dict(d)
        if "sources" in kw:
            kw["sources"] = tuple(kw["sources"])
        for f in fields(cls):  # JSON has no tuples: turn lists back into tuples
            if f.name in kw and isinstance(kw[f.name], list):
                kw[f.name] = tuple(kw[f.name])
        return cls(**kw)


@dataclass(frozen=True)
class StftConfig(ModelConfig):
    """Config of a spectrogram model: its STFT window (``n_fft`` samples, Hann) and hop."""

    n_fft: int = 512
    hop: int = 128


C = TypeVar("C", bound=ModelConfig)
S = TypeVar("S", bound=StftConfig)


class SeparationModel(nn.Module, Generic[C]):
    """Base class: holds its typed config (``C``) and exposes what the separation path reads."""

    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    #: segment length in seconds that suits the model when the user gives none
    default_segment: ClassVar[float] = 8.0

    def __init__(self, config: C):
        super().__init__()
        self.config: C = config

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def audio_channels(self) -> int:
        return self.config.audio_channels

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(self.config.sources)

    @property
    def frame_stride(self) -> int:
        """Samples between the model's analysis frames (its STFT hop or encoder stride): the
        period of its time grid, over which ``--shifts`` spreads its offsets."""
        return 1

    @property
    def level_range_db(self) -> tuple[float, float] | None:
        """The RMS levels (dBFS, whole track) this model separates best, those of its training
        mixtures: separation scales a track outside them into them first, and its stems back
        (:func:`deepsep.pipeline.stream`), as Demucs normalises a track's level; None: as it is
        (a model whose output does not depend on the input's level)."""
        return None

    def set_normalisation(self, mix: torch.Tensor) -> None:
        """Set input statistics from example mixtures (batch, channels, time) before training:
        a model with a learned input normalisation overrides this; the others need nothing."""

    def grow_from(self, state: Mapping[str, torch.Tensor]) -> bool:
        """Load the weights of a smaller model of this architecture (``state``, whose shapes differ
        from this model's) so that this model computes the same function, its new parts starting
        neutral; False when this architecture cannot (the default), True when loaded."""
        return False

    def forward(self, mix: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """(batch, channels, time) -> (batch, sources, channels, time)."""
        raise NotImplementedError


class SpectrogramMasker(SeparationModel[S]):
    """A model that masks the mixture's STFT (``config.n_fft``, ``config.hop``): the U-Nets,
    the music masker, the tiny test model. Training losses and oracle masks read its STFT."""

    @property
    def frame_stride(self) -> int:
        return self.config.hop

    def separate_with_spec(self, mix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """mix (batch, channels, time) -> (stems (batch, sources, channels, time), the model's
        masks, the mixture spectrogram (batch, channels, freq, frames)) for the training losses."""
        raise NotImplementedError  # pragma: no cover - abstract

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """(batch, channels, time) -> (batch, sources, channels, time)."""
        return self.separate_with_spec(mix)[0]
