"""The separation engine: overlapping segments, crossfaded, batched, streaming.

:func:`separate` is the pure entry point (a whole signal in, all stems out, no I/O);
:class:`StreamingSeparator` is the same computation fed block by block, so that a file of any
length is separated with memory bounded by the segment and batch sizes. Both produce identical
samples for the same settings: ``separate`` is the streaming separator fed with one block.

Segment ``k`` covers samples ``[k*hop, k*hop + length)``; the model's outputs are weighted by a
triangular window (never zero) and normalised by the sum of the weights, so an identity model
gives back its input exactly and consecutive segments crossfade without seams.
"""

from __future__ import annotations

from typing import Callable

import torch

from .channels import from_groups, to_groups
from .models.base import SeparationModel

ProgressFn = Callable[[int], None]


def segment_window(length: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Triangular crossfade weights, (length,), strictly positive (as Demucs does)."""
    i = torch.arange(length, device=device, dtype=torch.float32)
    return torch.minimum(i + 1, length - i) / max(1, (length + 1) // 2)


class StreamingSeparator:
    """Separate a signal pushed in blocks of ``(channels, n)`` samples at the model's rate.

    ``push`` and ``flush`` return the finished part of the stems, ``(sources, channels, n')``;
    concatenated over all calls they cover exactly the pushed samples. ``progress`` is called
    with the number of samples each step finishes (the last step may count a little past the end).
    """

    def __init__(
        self,
        model: SeparationModel,
        channels: int,
        *,
        segment: float | None = None,
        overlap: float = 0.25,
        batch_size: int = 1,
        device: torch.device | str = "cpu",
        progress: ProgressFn | None = None,
    ):
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.model = model
        self.channels = channels
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.progress = progress
        seconds = model.default_segment if segment is None else segment
        self.length: int | None = None if seconds <= 0 else max(1, round(seconds * model.sample_rate))
        self.hop = 0 if self.length is None else max(1, round(self.length * (1 - overlap)))
        self.window = None if self.length is None else segment_window(self.length)
        n_src, mc = len(model.sources), model.audio_channels
        groups = to_groups(torch.zeros(channels, 0), mc).shape[0]
        self._pending = torch.zeros(groups, mc, 0)  # input from the next segment's start on
        self._tail = torch.zeros(groups, n_src, mc, 0)  # weighted output not yet final
        self._tail_w = torch.zeros(0)
        self._done = False

    def _forward(self, segments: torch.Tensor) -> torch.Tensor:
        """(n, groups, mc, length) -> (n, groups, sources, mc, length) on the CPU."""
        n, g, mc, t = segments.shape
        with torch.inference_mode():
            out = self.model(segments.reshape(n * g, mc, t).to(self.device))
        return out.float().cpu().reshape(n, g, *out.shape[1:])

    def _run(self, count: int, final: bool) -> torch.Tensor:
        """Process ``count`` segments from the pending input; return finished (groups, S, mc, t)."""
        L, H = self.length, self.hop
        assert L is not None and self.window is not None
        need = (count - 1) * H + L
        pending = self._pending
        if pending.shape[-1] < need:  # only at the end: zero-pad the last segments
            pending = torch.nn.functional.pad(pending, (0, need - pending.shape[-1]))
        segs = torch.stack([pending[..., k * H : k * H + L] for k in range(count)])
        out = self._forward(segs) * self.window  # (count, g, S, mc, L)
        g, s, mc = out.shape[1:4]
        acc = torch.zeros(g, s, mc, need)
        wsum = torch.zeros(need)
        acc[..., : self._tail.shape[-1]] += self._tail
        wsum[: self._tail_w.shape[-1]] += self._tail_w
        for k in range(count):
            acc[..., k * H : k * H + L] += out[k]
            wsum[k * H : k * H + L] += self.window
        done = need if final else count * H
        self._tail, self._tail_w = acc[..., done:], wsum[done:]
        self._pending = self._pending[..., count * H :]
        if self.progress:
            self.progress(done)
        return acc[..., :done] / wsum[:done]

    def push(self, block: torch.Tensor) -> torch.Tensor:
        """Add ``(channels, n)`` samples; return the stems that are now final, (sources, channels, n')."""
        if self._done:
            raise RuntimeError("push after flush")
        block = to_groups(block.float().cpu(), self.model.audio_channels)
        self._pending = torch.cat([self._pending, block], dim=-1)
        if self.length is None:
            return self._empty()
        outs = []
        L, H = self.length, self.hop
        while self._pending.shape[-1] >= (self.batch_size - 1) * H + L:
            outs.append(self._run(self.batch_size, final=False))
        return self._join(outs)

    def flush(self) -> torch.Tensor:
        """End the signal; return the remaining stems."""
        self._done = True
        if self.length is None:  # one forward pass over the whole signal
            if self._pending.shape[-1] == 0:
                return self._empty()
            out = self._forward(self._pending.unsqueeze(0))[0]
            if self.progress:
                self.progress(out.shape[-1])
            return from_groups(out, self.channels)
        outs = []
        remaining = self._pending.shape[-1]  # samples from the next segment's start to the end
        while remaining > 0:
            count = min(self.batch_size, -(-remaining // self.hop))
            last = count * self.hop >= remaining
            chunk = self._run(count, final=last)
            if last:  # drop what lies beyond the end of the signal
                chunk = chunk[..., :remaining]
            outs.append(chunk)
            remaining -= count * self.hop
        return self._join(outs)

    def _empty(self) -> torch.Tensor:
        return torch.zeros(len(self.model.sources), self.channels, 0)

    def _join(self, outs: list[torch.Tensor]) -> torch.Tensor:
        if not outs:
            return self._empty()
        return from_groups(torch.cat(outs, dim=-1), self.channels)


def separate(
    model: SeparationModel,
    wav: torch.Tensor,
    *,
    segment: float | None = None,
    overlap: float = 0.25,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
    progress: ProgressFn | None = None,
) -> torch.Tensor:
    """Separate ``wav`` (channels, time), at the model's sample rate, into (sources, channels, time).

    ``segment`` in seconds (None: the model's default; 0: the whole signal in one pass),
    ``overlap`` as a fraction of the segment, ``batch_size`` segments per forward pass.
    """
    sep = StreamingSeparator(
        model, wav.shape[0], segment=segment, overlap=overlap, batch_size=batch_size,
        device=device, progress=progress,
    )
    return torch.cat([sep.push(wav), sep.flush()], dim=-1)
