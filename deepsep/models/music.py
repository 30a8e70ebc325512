"""The stereo four-source music masking network ("music_masker").

An Open-Unmix-like spectrogram masker (Stöter et al., 2019) with one shared trunk for all four
sources, as the generator of the semi-supervised adversarial training of Michelashvili, Benaim &
Wolf (ICASSP 2019), extended to stereo and four sources:

    mix (batch, channels=2, time) --STFT--> |X| (batch, channels, freq, frames)
    log |X| (bins up to ``max_freq``), per-(channel, bin) affine normalisation
    -> Linear(channels * bins -> hidden) + LayerNorm + tanh
    -> BLSTM (``layers`` layers, ``hidden`` features) with a skip connection
    -> Linear(2 * hidden -> hidden) + LayerNorm + ReLU -> Linear(hidden -> sources * channels * bins)
    -> logits; bins above ``max_freq`` reuse the mean logits of the top ``tail_bins`` bins
    -> softmax over sources = masks summing to one -> masks * X (mixture phase) --iSTFT--> stems

``mask_power`` (separation only) raises the masks to a power and renormalises them, a cheap
Wiener-style sharpening; it is kept only where it measurably helps on validation.

Because the masks sum to one and the iSTFT is linear, the stems sum to the mixture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from ..dsp import apply_masks, istft, stft, wiener
from .base import SpectrogramMasker, StftConfig

EPS = 1e-4


@dataclass(frozen=True)
class MusicMaskerConfig(StftConfig):
    sample_rate: int = 44100
    audio_channels: int = 2
    sources: tuple[str, ...] = ("vocals", "drums", "bass", "other")
    n_fft: int = 2048
    hop: int = 1024
    max_freq: float = 16000.0  # Hz: bins the network sees (the rest reuse the top bins' masks)
    hidden: int = 384
    layers: int = 2
    tail_bins: int = 16
    mask_power: float = 1.0  # separation only: masks ~ mask^power (sharper when > 1, Wiener-like)
    wiener_iterations: int = 0  # separation only: multichannel Wiener EM iterations on the masks' estimates (0: off)
    #: separation only: the RMS levels (dBFS) of the mixtures the network learned from; a track outside is
    #: separated as if scaled into them (see :attr:`~deepsep.models.base.SeparationModel.level_range_db`)
    level_range_db: tuple[float, float] | None = (-20.0, -14.0)

    @property
    def bins(self) -> int:
        total = self.n_fft // 2 + 1
        return min(total, int(math.ceil(self.max_freq * self.n_fft / self.sample_rate)) + 1)


M = TypeVar("M", bound=MusicMaskerConfig)


class SourceMasker(SpectrogramMasker[M]):
    """What the music maskers share: log-magnitude input (bins up to ``max_freq``) with a learned
    per-(channel, bin) affine, a trunk that turns it into logits (each subclass's :meth:`logits`),
    the top bins' mean logits reused above ``max_freq``, softmax over sources, mixture phase."""

    default_segment = 10.0

    @property
    def level_range_db(self) -> tuple[float, float] | None:
        return self.config.level_range_db

    def __init__(self, config: M):
        super().__init__(config)
        c, f = config.audio_channels, config.bins
        self.input_mean = nn.Parameter(torch.zeros(c * f))
        self.input_scale = nn.Parameter(torch.ones(c * f))

    def features(self, mag: torch.Tensor) -> torch.Tensor:
        """(batch, channels, freq, frames) magnitudes -> (batch, frames, channels * bins) network input."""
        cfg = self.config
        b, c, _, n = mag.shape
        x = torch.log(mag[:, :, : cfg.bins] + EPS)
        return x.permute(0, 3, 1, 2).reshape(b, n, c * cfg.bins)

    def logits(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Normalised features (batch, frames, channels * bins) -> logits (batch, sources, channels, bins, frames)."""
        raise NotImplementedError

    def masks(self, spec: torch.Tensor, full: bool = True) -> torch.Tensor:
        """Mixture STFT (batch, channels, freq, frames), complex or magnitude -> masks (batch, sources, channels, freq', frames).

        ``full``: masks for every bin (freq' = freq); else only the bins the network sees
        (freq' = ``config.bins``; what training uses, as the losses are computed there).
        """
        cfg = self.config
        b, c, nf, n = spec.shape
        s, f = len(cfg.sources), cfg.bins
        logits = self.logits((self.features(spec.abs()) - self.input_mean) * self.input_scale)
        if full:
            if nf > f:
                tail = logits[:, :, :, f - cfg.tail_bins:].mean(dim=3, keepdim=True)
                logits = torch.cat([logits, tail.expand(b, s, c, nf - f, n)], dim=3)
            if cfg.mask_power != 1.0:  # softmax(p * logits) = softmax(logits)^p, renormalised
                logits = logits * cfg.mask_power
        return logits.softmax(dim=1)

    def separate_with_spec(self, mix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(stems (batch, sources, channels, time), masks, mixture STFT) for training losses."""
        cfg = self.config
        spec = stft(mix, cfg.n_fft, cfg.hop)
        m = self.masks(spec)
        if cfg.wiener_iterations and not self.training:
            y = wiener(spec, m, cfg.wiener_iterations)
            y = y + m * (spec - y.sum(dim=1)).unsqueeze(1)  # what the regularisation left out, by mask share
            return istft(y, cfg.n_fft, cfg.hop, mix.shape[-1]), m, spec
        return apply_masks(spec, m, cfg.n_fft, cfg.hop, mix.shape[-1], mix=mix), m, spec

    @torch.no_grad()
    def set_normalisation(self, mix: torch.Tensor) -> None:
        """Initialise the input affine from example mixtures (batch, channels, time): zero mean, unit std."""
        cfg = self.config
        feats = self.features(stft(mix, cfg.n_fft, cfg.hop).abs()).reshape(-1, self.input_mean.numel())
        self.input_mean.copy_(feats.mean(0))
        self.input_scale.copy_(1.0 / (feats.std(0) + 1e-3))


class MusicMasker(SourceMasker[MusicMaskerConfig]):
    """The BLSTM trunk (see the module's docstring)."""

    config_class = MusicMaskerConfig

    def __init__(self, config: MusicMaskerConfig):
        super().__init__(config)
        c, s, h, f = config.audio_channels, len(config.sources), config.hidden, config.bins
        if h % 2:
            raise ValueError("hidden must be even (two LSTM directions)")
        self.fc1 = nn.Linear(c * f, h, bias=False)
        self.norm1 = nn.LayerNorm(h)
        self.lstm = nn.LSTM(h, h // 2, num_layers=config.layers, bidirectional=True, batch_first=True)
        self.fc2 = nn.Linear(2 * h, h, bias=False)
        self.norm2 = nn.LayerNorm(h)
        self.fc3 = nn.Linear(h, s * c * f)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        b, n, _ = x.shape
        x = torch.tanh(self.norm1(self.fc1(x)))                       # (b, n, h)
        y, _ = self.lstm(x)
        x = torch.relu(self.norm2(self.fc2(torch.cat([x, y], dim=-1))))
        return self.fc3(x).view(b, n, len(cfg.sources), cfg.audio_channels, cfg.bins).permute(0, 2, 3, 4, 1)
