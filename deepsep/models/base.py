"""The interface every separation model follows.

Axis vocabulary used across deepsep: ``batch``, ``sources``, ``channels``, ``time``.
A model maps a mixture ``(batch, channels, time)`` to its sources
``(batch, sources, channels, time)`` at its own ``sample_rate``; ``channels`` equals
``audio_channels`` (1 for the voice models, 2 for the music model). A model accepts any
``time`` length (it pads internally when its architecture needs a multiple of something).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

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
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
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


class SeparationModel(nn.Module):
    """Base class: holds the config and exposes what the separation path reads."""

    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    #: segment length in seconds that suits the model when the user gives none
    default_segment: ClassVar[float] = 8.0

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config

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
        return int(getattr(self.config, "hop", 1))

    def forward(self, mix: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """(batch, channels, time) -> (batch, sources, channels, time)."""
        raise NotImplementedError
