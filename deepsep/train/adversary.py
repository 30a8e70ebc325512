"""The adversary of the semi-supervised music training: a discriminator per source on magnitude
spectrograms and its LSGAN losses (Michelashvili, Benaim & Wolf, ICASSP 2019)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .distributed import average_gradients


class Discriminator(nn.Module):
    """A small conditional patch discriminator on source magnitude spectrograms.

    (items, channels, freq, frames) magnitudes and (items,) source indices -> (items,) mean scores.
    One output head per source; log magnitudes, minus their per-item mean (gain invariant).
    """

    def __init__(self, channels: int = 2, n_sources: int = 4, width: int = 8, pool: int = 8):
        super().__init__()
        self.pool = pool
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(channels, w, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, n_sources, 3, padding=1),
        )

    def forward(self, mag: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        x = torch.log(mag + 1e-4)
        x = x - x.mean(dim=(1, 2, 3), keepdim=True)
        if self.pool > 1:
            x = nn.functional.avg_pool2d(x, (self.pool, 1), ceil_mode=True)
        scores = self.net(x)  # (items, sources, f', n')
        return scores[torch.arange(len(source)), source].mean(dim=(-2, -1))


class Adversary:
    """The discriminator and its optimizer together: LSGAN losses for both players."""

    def __init__(self, channels: int, n_sources: int, lr: float, device: torch.device):
        self.n_sources = n_sources
        self.disc = Discriminator(channels, n_sources).to(device)
        self.opt = torch.optim.Adam(self.disc.parameters(), lr=lr, betas=(0.5, 0.9))

    @staticmethod
    def _flat(mags: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, sources, channels, f, n) -> items (batch*sources, channels, f, n), source ids;
        with ``keep`` (batch, sources) bool, only those items."""
        b, s = mags.shape[:2]
        items, src = mags.reshape(b * s, *mags.shape[2:]), torch.arange(s, device=mags.device).repeat(b)
        if keep is not None:
            flat = keep.reshape(-1)
            items, src = items[flat], src[flat]
        return items, src

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        """LSGAN loss of the separator: estimated source magnitudes (batch, sources, ...) should score 1."""
        x, src = self._flat(fake)
        return (self.disc(x, src) - 1).pow(2).mean()

    def step(self, real: torch.Tensor, fake: torch.Tensor, real_known: torch.Tensor | None = None) -> float:
        """One discriminator update: real source magnitudes -> 1 (only the known stems, with
        ``real_known`` (batch, sources) bool), estimated (detached) -> 0; its loss (the mean over
        the ranks under torchrun, whose gradients are averaged)."""
        xr, sr = self._flat(real, real_known)
        xf, sf = self._flat(fake.detach())
        loss = 0.5 * ((self.disc(xr, sr) - 1).pow(2).mean() + self.disc(xf, sf).pow(2).mean())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        loss = average_gradients(self.disc.parameters(), loss)  # over the ranks of a torchrun run
        self.opt.step()
        return float(loss.detach())

    def state_dict(self) -> dict[str, Any]:
        return {"disc": {k: v.detach().cpu() for k, v in self.disc.state_dict().items()},
                "opt": self.opt.state_dict()}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.disc.load_state_dict(s["disc"])
        self.opt.load_state_dict(s["opt"])
