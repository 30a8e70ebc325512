"""Training batches drawn in background processes, for a device that outruns one CPU core."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ..voicedata import OnTheFlyMixer


class _BatchStream(torch.utils.data.IterableDataset):
    """Endless batches of ``mixer``; each worker process reseeds its copy from (seed, worker id)."""

    def __init__(self, mixer: OnTheFlyMixer, size: int, seed: list[int]):
        self.mixer, self.size, self.seed = mixer, size, seed

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        self.mixer.rng = np.random.default_rng([*self.seed, info.id if info else 0])
        while True:
            yield self.mixer.batch(self.size)


class WorkerBatches:
    """Batches of an :class:`OnTheFlyMixer` mixed by ``workers`` processes that prefetch ahead of the
    training step (a ``torch`` DataLoader; the corpora are shared with the workers by fork).

    ``batch(size)`` returns (mix, voice, noise), each (batch, channels=1, time), like the mixer's.
    The random stream depends on ``seed``, the worker count and the batches drawn before a resume:
    ``state()`` records how many were drawn and a resume reseeds from it, so a resumed run draws
    fresh examples but not the very sequence an uninterrupted run would have drawn.
    """

    def __init__(self, mixer: OnTheFlyMixer, size: int, workers: int, seed: int = 0, pin_memory: bool = False):
        self.mixer, self.size, self.workers, self.seed = mixer, size, workers, seed
        self.pin_memory = pin_memory
        self.drawn = 0
        self._it: Iterator[Any] | None = None

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if size != self.size:
            raise ValueError(f"batches of {self.size} are drawn, not {size}")
        if self._it is None:
            stream = _BatchStream(self.mixer, self.size, [self.seed, self.drawn])
            loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=self.workers,
                                                 prefetch_factor=4, pin_memory=self.pin_memory)
            self._it = iter(loader)
        self.drawn += 1
        return next(self._it)

    def state(self) -> dict[str, int]:
        return {"seed": self.seed, "drawn": self.drawn}

    def set_state(self, state: dict[str, int]) -> None:
        self.seed, self.drawn = int(state["seed"]), int(state["drawn"])
        self._it = None
