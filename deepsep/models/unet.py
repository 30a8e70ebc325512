"""Spectrogram U-Net for voice / noise separation, after Jansson et al., "Singing voice
separation with deep U-Net convolutional networks" (ISMIR 2017).

Architecture (as in the paper): six 5x5 convolutions with stride 2 going down (16, 32, 64, 128,
256, 512 channels; batch norm, leaky ReLU 0.2), six 5x5 transposed convolutions with stride 2
going up (batch norm, ReLU, dropout 0.5 on the first three), skip connections that concatenate
each encoder output with the decoder input at the same scale, and a sigmoid on the last layer
that gives a soft mask ``m`` on the mixture's magnitude spectrogram. The voice is ``m * |X|``
with the mixture phase and the noise uses ``1 - m``: since the iSTFT is linear the two stems
sum to the mixture exactly (up to float rounding).

STFT sizes for 8 kHz: ``n_fft = 512`` (64 ms Hann window, 15.6 Hz bins) and ``hop = 128``
(16 ms, 75 % overlap). The paper used a 1024-sample window at 8192 Hz; for speech a 64 ms
window still resolves the harmonics of voiced speech (pitch >= 80 Hz, i.e. >= 5 bins apart)
while a 16 ms hop follows phoneme onsets, and 75 % overlap of a Hann window gives a clean
overlap-add with the mixture phase. The 257 bins are cropped to 256 (the Nyquist bin is
dropped and its mask copied from the bin below), a multiple of 2**6 = 64 as the six stride-2
layers need, exactly as the paper keeps 512 of 513 bins; the number of frames is padded to a
multiple of 64 internally, so any input length works.

Input scaling: the magnitude is divided by its mean over (freq, frames) per example and
compressed with ``log1p``, so the mask does not depend on the input's gain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ..dsp import apply_masks, stft
from ..metrics import si_sdr
from .base import SeparationModel, SpectrogramMasker, StftConfig


@dataclass(frozen=True)
class UNetConfig(StftConfig):
    n_fft: int = 512
    hop: int = 128
    #: channels of the six encoder layers (the decoder mirrors them)
    channels: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    kernel_size: int = 5
    dropout: float = 0.5
    #: how many of the first decoder layers use dropout
    dropout_layers: int = 3


class UNet(SpectrogramMasker[UNetConfig]):
    """(batch, channels=1, time) -> (batch, sources=2 [voice, noise], channels=1, time)."""

    config_class = UNetConfig
    default_segment = 8.0

    def __init__(self, config: UNetConfig):
        super().__init__(config)
        if len(config.sources) != 2:
            raise ValueError("the U-Net separates exactly two sources (target, residual)")
        k, pad = config.kernel_size, config.kernel_size // 2
        chans = list(config.channels)
        ins = [config.audio_channels] + chans[:-1]
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(i, o, k, stride=2, padding=pad), nn.BatchNorm2d(o), nn.LeakyReLU(0.2))
            for i, o in zip(ins, chans)
        )
        self.up = nn.ModuleList()
        n = len(chans)
        for j in range(n):  # decoder layer j maps scale n-j -> n-j-1
            cin = chans[n - 1 - j] * (1 if j == 0 else 2)
            last = j == n - 1
            cout = config.audio_channels if last else chans[n - 2 - j]
            layers: list[nn.Module] = [nn.ConvTranspose2d(cin, cout, k, stride=2, padding=pad, output_padding=1)]
            if not last:
                layers += [nn.BatchNorm2d(cout), nn.ReLU()]
                if j < config.dropout_layers and config.dropout > 0:
                    layers.append(nn.Dropout(config.dropout))
            self.up.append(nn.Sequential(*layers))
        self.multiple = 2 ** n

    @property
    def freq_bins(self) -> int:
        cfg = self.config
        return (cfg.n_fft // 2 + 1) // self.multiple * self.multiple

    def mask(self, mag: torch.Tensor) -> torch.Tensor:
        """Voice mask in [0, 1] from a magnitude spectrogram.

        mag: (batch, channels, freq = n_fft//2+1, frames) -> same shape.
        """
        b, c, f, n = mag.shape
        fb = self.freq_bins
        x = mag[:, :, :fb]
        x = x / (x.mean(dim=(-2, -1), keepdim=True) + 1e-8)
        x = torch.log1p(x)
        n_pad = (-n) % self.multiple
        if n_pad:
            x = F.pad(x, (0, n_pad))
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        skips.pop()  # the deepest output is the decoder's input, not a skip
        for j, layer in enumerate(self.up):
            if j > 0:
                x = torch.cat([x, skips.pop()], dim=1)
            x = layer(x)
        m = torch.sigmoid(x)[..., :n]
        if fb < f:  # bins above the cropped range reuse the top mask bin
            m = torch.cat([m, m[:, :, -1:].expand(b, c, f - fb, n)], dim=2)
        return m

    def separate_with_spec(self, mix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stems plus what the training loss needs.

        mix: (batch, channels, time) -> (stems (batch, sources, channels, time),
        mask (batch, channels, freq, frames), mixture spectrogram (batch, channels, freq, frames), complex).
        """
        cfg = self.config
        t = mix.shape[-1]
        spec = stft(mix, cfg.n_fft, cfg.hop)
        m = self.mask(spec.abs())
        masks = torch.stack([m, 1.0 - m], dim=1)  # (b, 2, c, f, n)
        stems = apply_masks(spec, masks, cfg.n_fft, cfg.hop, t, mix=mix)
        return stems, m, spec


class UNetLossOptions(Protocol):
    """The training options that the U-Net's loss reads."""

    @property
    def mag_power(self) -> float: ...

    @property
    def si_weight(self) -> float: ...


def training_loss(model: SeparationModel, mix: torch.Tensor, voice: torch.Tensor, opts: UNetLossOptions,
                  partner: tuple[torch.Tensor, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The U-Net's training loss on a batch: mix, voice (batch, channels=1, time) -> (loss, stems
    (batch, sources, channels, time)).

    L1 between the masked mixture magnitude and the voice magnitude (Jansson et al.), both divided
    by the mixture's mean magnitude per example (the gain the network sees), plus ``si_weight``
    times the negative SI-SDR of the voice waveform; with ``mag_power`` p the magnitudes are
    compressed (|X|^p) before the L1, which weighs quiet bins more.

    With a ``partner`` (its stems (batch, sources, channels, time), computed without gradients, and
    its weight w) both terms score the ensemble ``w * partner + (1 - w) * U-Net``: its voice
    spectrogram ``w * STFT(partner voice) + (1 - w) * mask * mixture`` and its stems are returned.
    """
    if not isinstance(model, UNet):
        raise TypeError(f"the U-Net loss needs a U-Net, not a {type(model).__name__}")
    stems, m, spec = model.separate_with_spec(mix)
    cfg = model.config
    mag = spec.abs()
    vmag = stft(voice, cfg.n_fft, cfg.hop).abs()
    est = m * mag
    if partner is not None:
        p_stems, w = partner
        est = (w * stft(p_stems[:, 0], cfg.n_fft, cfg.hop) + (1 - w) * m * spec).abs()
        stems = w * p_stems + (1 - w) * stems
    p = opts.mag_power
    est, ref = (est ** p, vmag ** p) if p != 1.0 else (est, vmag)
    scale = (mag ** p if p != 1.0 else mag).mean(dim=(-2, -1), keepdim=True) + 1e-8
    loss = ((est - ref).abs() / scale).mean()
    if opts.si_weight:
        loss = loss - opts.si_weight * si_sdr(stems[:, 0], voice).mean()
    return loss, stems
