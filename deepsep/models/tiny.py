"""A tiny random-weights masking model, for tests and for trying the pipeline offline.

It is a real masking model (STFT, a 1x1 convolution on log magnitudes, softmax masks over the
sources, mixture phase), only untrained: its stems sum to the mixture, it runs in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..dsp import apply_masks, stft
from .base import SpectrogramMasker, StftConfig


@dataclass(frozen=True)
class TinyConfig(StftConfig):
    n_fft: int = 256
    hop: int = 64


class TinyMasker(SpectrogramMasker[TinyConfig]):
    config_class = TinyConfig
    default_segment = 2.0

    def __init__(self, config: TinyConfig):
        super().__init__(config)
        c, s = config.audio_channels, len(config.sources)
        self.proj = nn.Conv2d(c, s * c, kernel_size=1)

    def separate_with_spec(self, mix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(batch, channels, time) -> (stems (batch, sources, channels, time),
        masks (batch, sources, channels, freq, frames), mixture STFT (batch, channels, freq, frames))."""
        cfg = self.config
        b, c, t = mix.shape
        spec = stft(mix, cfg.n_fft, cfg.hop)                    # (b, c, f, n)
        logits = self.proj(torch.log1p(spec.abs()))              # (b, s*c, f, n)
        masks = logits.view(b, len(cfg.sources), c, *logits.shape[-2:]).softmax(dim=1)
        return apply_masks(spec, masks, cfg.n_fft, cfg.hop, t), masks, spec
