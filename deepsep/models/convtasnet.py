"""Conv-TasNet for voice / noise separation (Luo & Mesgarani, 2019), wrapping
:class:`torchaudio.models.ConvTasNet` (a faithful implementation: learned encoder/decoder,
temporal convolutional masker); nothing is rewritten here.

Sized for a 2-core CPU at 8 kHz: a 32-sample encoder kernel (4 ms, stride 16 -> 500 frames/s),
256 encoder filters, a masker with 64 bottleneck / 256 hidden channels, 7 blocks per stack and
2 stacks. That is well over 20x real time on two CPU cores (see ``benchmarks/voice_speed.py``).

Voice + noise = mixture: the network estimates two sources ``v, n`` and they are projected
onto the set of estimates that sum to the mixture (mixture consistency, Wisdom et al. 2019):
``v' = v + (mix - v - n) / 2``, ``n' = n + (mix - v - n) / 2``, which is the orthogonal
projection with equal weights; then ``v' + n' = mix`` exactly (up to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torchaudio.models import ConvTasNet as _TorchaudioConvTasNet

from ..metrics import si_sdr
from .base import ModelConfig, SeparationModel
from .fast_layers import speed_up


@dataclass(frozen=True)
class ConvTasNetConfig(ModelConfig):
    enc_kernel_size: int = 32   # L (stride L/2)
    enc_num_feats: int = 256    # N
    msk_kernel_size: int = 3    # P
    msk_num_feats: int = 64     # B (= Sc)
    msk_num_hidden_feats: int = 256  # H
    msk_num_layers: int = 7     # X
    msk_num_stacks: int = 2     # R
    msk_activate: str = "sigmoid"


class ConvTasNet(SeparationModel[ConvTasNetConfig]):
    """(batch, channels=1, time) -> (batch, sources=2 [voice, noise], channels=1, time)."""

    config_class = ConvTasNetConfig
    default_segment = 4.0

    def __init__(self, config: ConvTasNetConfig):
        super().__init__(config)
        if config.audio_channels != 1:
            raise ValueError("Conv-TasNet here is mono (audio_channels=1)")
        self.net = _TorchaudioConvTasNet(
            num_sources=len(config.sources),
            enc_kernel_size=config.enc_kernel_size,
            enc_num_feats=config.enc_num_feats,
            msk_kernel_size=config.msk_kernel_size,
            msk_num_feats=config.msk_num_feats,
            msk_num_hidden_feats=config.msk_num_hidden_feats,
            msk_num_layers=config.msk_num_layers,
            msk_num_stacks=config.msk_num_stacks,
            msk_activate=config.msk_activate,
        )
        speed_up(self.net)  # same function and parameters, ~23 % cheaper training steps on a CPU

    @property
    def frame_stride(self) -> int:
        return self.config.enc_kernel_size // 2

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """(batch, 1, time) -> (batch, sources, 1, time); the sources sum to ``mix``."""
        est = self.net(mix)  # (batch, sources, time); torchaudio pads to its stride internally
        est = est + (mix - est.sum(dim=1, keepdim=True)) / est.shape[1]
        return est.unsqueeze(2)


class ConvTasNetLossOptions(Protocol):
    """The training options that Conv-TasNet's loss reads."""

    @property
    def noise_weight(self) -> float: ...


def training_loss(model: SeparationModel, mix: torch.Tensor, voice: torch.Tensor, opts: ConvTasNetLossOptions,
                  partner: tuple[torch.Tensor, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv-TasNet's training loss on a batch: mix, voice (batch, channels=1, time) -> (loss,
    stems (batch, sources, channels, time)).

    Negative SI-SNR (Luo & Mesgarani) of the voice, or with ``noise_weight`` the weighted mean over
    voice and noise (noise = mix - voice): the noise term fixes the voice's scale, which SI-SNR
    alone leaves free, so that the stems are at the right level (SDR) and not only in shape (SI-SDR).
    With a ``partner`` (its stems, computed without gradients, and its weight w) the loss scores the
    ensemble's stems ``w * partner + (1 - w) * model``, which are returned.
    """
    stems = model(mix)
    if partner is not None:
        stems = partner[1] * partner[0] + (1 - partner[1]) * stems
    loss = -si_sdr(stems[:, 0], voice).mean()
    if opts.noise_weight:
        loss = (loss - opts.noise_weight * si_sdr(stems[:, 1], mix - voice).mean()) / (1 + opts.noise_weight)
    return loss, stems
