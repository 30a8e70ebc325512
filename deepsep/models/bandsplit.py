"""A band-split recurrent music masker ("music_bandsplit"), after Luo & Yu, "Music Source
Separation with Band-split RNN" (IEEE/ACM TASLP 2023), made small enough to train on a CPU.

The music masker's input, masks and losses (:class:`~deepsep.models.music.SourceMasker`) with
another trunk: instead of one vector per frame for the whole spectrum, the spectrum is split into
``bands`` (narrow at low frequencies, where pitch lives; wide above), each band projected to
``hidden`` features, and ``layers`` pairs of residual BLSTMs model the grid of (band, frame)
vectors, one across time within each band, one across bands within each frame:

    log |X| (batch, frames, channels, bins), normalised
    -> per band: LayerNorm + Linear(channels * width -> hidden)          (batch, bands, frames, hidden)
    -> layers x [BLSTM over frames, per band; BLSTM over bands, per frame] (residual, LayerNorm first)
    -> per band: LayerNorm + Linear(hidden -> 2 hidden) + tanh + Linear(-> sources * channels * width)
    -> logits (batch, sources, channels, bins, frames) -> the music masker's softmax masks
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .music import MusicMaskerConfig, SourceMasker


@dataclass(frozen=True)
class BandSplitConfig(MusicMaskerConfig):
    hidden: int = 48   # features per (band, frame)
    layers: int = 2    # pairs of (time, band) BLSTMs
    #: band widths in Hz from 0 up (the last band ends at ``max_freq``): 125 Hz to 1 kHz, 375 Hz to
    #: 4 kHz, 1 kHz to 8 kHz, 2 kHz to 16 kHz: 24 bands
    bands: tuple[float, ...] = (125.0,) * 8 + (375.0,) * 8 + (1000.0,) * 4 + (2000.0,) * 4

    def band_edges(self) -> list[int]:
        """Bin indices [0, ..., bins] where the bands start and end (each band at least one bin)."""
        edges = [0]
        top = 0.0
        for width in self.bands:
            top += width
            edge = min(self.bins, max(edges[-1] + 1, round(top * self.n_fft / self.sample_rate)))
            if edge > edges[-1]:
                edges.append(edge)
        edges[-1] = self.bins
        return edges


class _ResidualBLSTM(nn.Module):
    """x + Linear(BLSTM(LayerNorm(x))) over the middle axis of (batch, length, features)."""

    def __init__(self, features: int):
        super().__init__()
        self.norm = nn.LayerNorm(features)
        self.rnn = nn.LSTM(features, features, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * features, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.rnn(self.norm(x))
        return x + self.proj(y)


class BandSplitMasker(SourceMasker[BandSplitConfig]):
    config_class = BandSplitConfig

    def __init__(self, config: BandSplitConfig):
        super().__init__(config)
        c, s, h = config.audio_channels, len(config.sources), config.hidden
        edges = config.band_edges()
        self.widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
        self.split = nn.ModuleList(nn.Sequential(nn.LayerNorm(c * w), nn.Linear(c * w, h)) for w in self.widths)
        self.time_rnns = nn.ModuleList(_ResidualBLSTM(h) for _ in range(config.layers))
        self.band_rnns = nn.ModuleList(_ResidualBLSTM(h) for _ in range(config.layers))
        self.heads = nn.ModuleList(nn.Sequential(nn.LayerNorm(h), nn.Linear(h, 2 * h), nn.Tanh(), nn.Linear(2 * h, s * c * w))
                                   for w in self.widths)

    def grow_from(self, state: Mapping[str, torch.Tensor]) -> bool:
        """Load a model with fewer layer pairs (and otherwise this config) into this deeper one: the
        extra pairs' output projections start at zero, so each is the identity (residual) and the
        grown model separates exactly as the smaller one did until training moves them."""
        ours = self.state_dict()
        old = len({k.split(".")[1] for k in state if k.startswith("time_rnns.")})
        extra = [k for k in ours if k not in state]
        if (any(k not in ours or ours[k].shape != v.shape for k, v in state.items())
                or any(not k.startswith(("time_rnns.", "band_rnns.")) or int(k.split(".")[1]) < old for k in extra)):
            return False
        self.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=False)
        with torch.no_grad():
            for block in [*self.time_rnns[old:], *self.band_rnns[old:]]:
                block.proj.weight.zero_()
                block.proj.bias.zero_()
        return True

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        b, n, _ = x.shape
        c, s, k = cfg.audio_channels, len(cfg.sources), len(self.widths)
        x = x.view(b, n, c, cfg.bins)
        bands = torch.split(x, self.widths, dim=3)  # each (b, n, c, width)
        z = torch.stack([f(band.reshape(b, n, -1)) for f, band in zip(self.split, bands)], dim=1)  # (b, k, n, h)
        for over_time, over_bands in zip(self.time_rnns, self.band_rnns):
            z = over_time(z.reshape(b * k, n, -1)).view(b, k, n, -1)
            z = over_bands(z.transpose(1, 2).reshape(b * n, k, -1)).view(b, n, k, -1).transpose(1, 2)
        out = [head(z[:, i]).view(b, n, s, c, w) for i, (head, w) in enumerate(zip(self.heads, self.widths))]
        return torch.cat(out, dim=4).permute(0, 2, 3, 4, 1)  # (b, s, c, bins, n)
