"""The explicit registry of architectures: name -> (config dataclass, model class).

No ``globals()`` or dynamic imports on user strings: a name that is not a key here is an error.
Other architectures register by adding one line to ``ARCHITECTURES`` (a voice architecture also
its training loss, defined beside its model, to ``TRAINING_LOSSES``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from .errors import ModelError
from .models import convtasnet, unet
from .models.bandsplit import BandSplitConfig, BandSplitMasker
from .models.base import ModelConfig, SeparationModel
from .models.convtasnet import ConvTasNet, ConvTasNetConfig
from .models.music import MusicMasker, MusicMaskerConfig
from .models.tiny import TinyConfig, TinyMasker
from .models.unet import UNet, UNetConfig

ARCHITECTURES: dict[str, tuple[type[ModelConfig], type[SeparationModel]]] = {
    "tiny": (TinyConfig, TinyMasker),
    "unet": (UNetConfig, UNet),
    "convtasnet": (ConvTasNetConfig, ConvTasNet),
    "music_masker": (MusicMaskerConfig, MusicMasker),
    "music_bandsplit": (BandSplitConfig, BandSplitMasker),
}


class VoiceLossOptions(unet.UNetLossOptions, convtasnet.ConvTasNetLossOptions, Protocol):
    """What the voice architectures' training losses read from a run's options."""


#: (model, mix (batch, channels, time), voice (batch, channels, time), options, partner: None or (its
#: stems, its weight) when the loss scores an ensemble) -> (loss, stems (batch, sources, channels, time))
TrainingLoss = Callable[[SeparationModel, torch.Tensor, torch.Tensor, VoiceLossOptions,
                         tuple[torch.Tensor, float] | None], tuple[torch.Tensor, torch.Tensor]]

#: the training loss of each voice architecture, defined beside its model (the music model's
#: losses are its task's: ``train/music.py``)
TRAINING_LOSSES: dict[str, TrainingLoss] = {
    "unet": unet.training_loss,
    "convtasnet": convtasnet.training_loss,
}


def build_model(arch: str, config: dict[str, Any] | ModelConfig) -> SeparationModel:
    """Build an untrained model of architecture ``arch`` from its config (dict or dataclass)."""
    try:
        config_cls, model_cls = ARCHITECTURES[arch]
    except KeyError:
        raise ModelError(f"unknown architecture {arch!r} (known: {', '.join(sorted(ARCHITECTURES))})") from None
    if not isinstance(config, ModelConfig):
        try:
            config = config_cls.from_dict(config)
        except (TypeError, ValueError) as e:
            raise ModelError(f"bad config for architecture {arch!r}: {e}") from None
    return model_cls(config)


def arch_name(model: SeparationModel) -> str:
    """The registry name of a model instance's architecture."""
    for name, (_, cls) in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise ModelError(f"{type(model).__name__} is not a registered architecture")


def training_loss(arch: str) -> TrainingLoss:
    """The voice training loss of architecture ``arch`` (:data:`TRAINING_LOSSES`)."""
    try:
        return TRAINING_LOSSES[arch]
    except KeyError:
        raise ModelError(f"no voice training loss for architecture {arch!r} "
                         f"(known: {', '.join(sorted(TRAINING_LOSSES))})") from None
