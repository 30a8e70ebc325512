"""An ensemble ("bag of models", as Demucs calls it): the weighted average of several trained
models' stems.

The members must agree on sample rate, channels and sources. With weights that sum to one, stems
that sum to the mixture stay so. Separation runs each member with its own segment length
(:class:`~deepsep.engine.BagSeparator`); ``forward`` on one tensor is the same average.
A bag has no weights of its own and no file: the manifest lists its members (``bags``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from .base import ModelConfig, SeparationModel


class ModelBag(SeparationModel[ModelConfig]):
    """``sum_i weights[i] * members[i](mix)``: (batch, channels, time) -> (batch, sources, channels, time)."""

    def __init__(self, members: Sequence[SeparationModel], weights: Sequence[float]):
        if not members or len(members) != len(weights):
            raise ValueError("a bag needs one weight per member, and at least one member")
        if any(w <= 0 for w in weights):
            raise ValueError(f"a bag's weights must be positive, got {list(weights)}")
        first = members[0]
        for m in members[1:]:
            if (m.sample_rate, m.audio_channels, m.sources) != (first.sample_rate, first.audio_channels, first.sources):
                raise ValueError("a bag's members must share sample rate, channels and sources")
        super().__init__(ModelConfig(first.sample_rate, first.audio_channels, first.sources))
        self._members = nn.ModuleList(members)
        total = float(sum(weights))
        self.weights: tuple[float, ...] = tuple(float(w) / total for w in weights)

    @property
    def members(self) -> list[SeparationModel]:
        """The member models, in the manifest's order."""
        return [cast(SeparationModel, m) for m in self._members]

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """(batch, channels, time) -> (batch, sources, channels, time), the members' weighted average."""
        out = None
        for w, m in zip(self.weights, self.members):
            y = w * m(mix).float()
            out = y if out is None else out + y
        assert out is not None
        return out


def default_segments(model: SeparationModel) -> float | list[float]:
    """The segment length(s) in seconds that separation uses by default: the model's, or a bag's
    members' (each member runs with its own)."""
    if isinstance(model, ModelBag):
        return [m.default_segment for m in model.members]
    return model.default_segment
