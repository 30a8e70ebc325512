"""The separation engine: overlapping segments, crossfaded, batched, streaming.

:func:`separate` is the pure entry point (a whole signal in, all stems out, no I/O);
:class:`StreamingSeparator` is the same computation fed block by block, so that a file of any
length is separated with memory bounded by the segment and batch sizes. Both produce identical
samples for the same settings: ``separate`` is the streaming separator fed with one block.

Segment ``k`` covers samples ``[k*hop, k*hop + length)`` and one last segment ends exactly at the
signal's end, so no segment is padded with zeros. The model's outputs are weighted by a
triangular window (never zero) and normalised by the sum of the weights, so an identity model
gives back its input exactly and consecutive segments crossfade without seams.

With ``shifts = N > 1`` each segment is separated N times, delayed by N offsets spread evenly over
the model's frame stride (the "shift trick" of Demucs, here within one frame: the model's STFT or
encoder frames fall differently each time), and the N results are averaged; a stereo model hears
every second pass with its left and right channels swapped. The delayed copies start with their
delay in zeros (less than one frame), the one exception to "never padded".

A :class:`~deepsep.models.bag.ModelBag` (an ensemble) is separated by a :class:`BagSeparator`: one
streaming separator per member, each with its own default segment, their stems averaged with the
bag's weights as they become final (:func:`streaming_separator` picks the right one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from .channels import from_groups, to_groups
from .errors import DeepsepError
from .models.bag import ModelBag
from .models.base import SeparationModel

ProgressFn = Callable[[int], None]


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is there, else 'cpu'; a clear error for an absent GPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeepsepError("--device cuda was asked for, but PyTorch sees no CUDA GPU (use --device cpu)")
    if device != "cpu" and not device.startswith("cuda"):
        raise DeepsepError(f"unknown device {device!r} (choose auto, cpu or cuda)")
    return device


def segment_window(length: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Triangular crossfade weights, (length,), strictly positive (as Demucs does)."""
    i = torch.arange(length, device=device, dtype=torch.float32)
    return torch.minimum(i + 1, length - i) / max(1, (length + 1) // 2)


def shift_offsets(stride: int, shifts: int) -> list[int]:
    """``shifts`` delays in samples, spread evenly over one frame stride: [0, stride/N, ...]."""
    if shifts < 1:
        raise ValueError(f"shifts must be at least 1, got {shifts}")
    return sorted({i * stride // shifts for i in range(shifts)})


def average_over_shifts(model: SeparationModel, x: torch.Tensor, offsets: list[int]) -> torch.Tensor:
    """Mean of ``model`` over copies of ``x`` (batch, channels, time) delayed by ``offsets``
    samples (zeros in front, cropped after): (batch, sources, channels, time). A stereo model hears
    every second copy with its channels swapped (and its stems are swapped back): a second view
    that differs more than a delay does."""
    total = None
    for i, s in enumerate(offsets):
        swap = i % 2 == 1 and x.shape[1] == 2
        xi = x.flip(1) if swap else x
        y = model(F.pad(xi, (s, 0)))[..., s:] if s else model(xi)
        y = y.flip(2) if swap else y
        total = y.float() if total is None else total + y.float()
    assert total is not None
    return total / len(offsets)


class StreamingSeparator:
    """Separate a signal pushed in blocks of ``(channels, n)`` samples at the model's rate.

    ``push`` and ``flush`` return the finished part of the stems, ``(sources, channels, n')``;
    concatenated over all calls they cover exactly the pushed samples.

    ``segment`` in seconds (None: the model's default; 0: the whole signal in one pass),
    ``overlap`` as a fraction of the segment, ``batch_size`` segments per forward pass, ``shifts``
    passes per segment at offsets within one frame, averaged (N times slower); ``progress`` is
    called with the number of samples each step finishes.

    Regular segments start every ``hop`` samples. The signal's end is covered by one last segment
    that ends exactly there (``[end - length, end)``), so no segment is ever padded with zeros:
    the models see real audio everywhere, as in training, and a signal shorter than a segment is
    separated in one pass of its own length.
    """

    def __init__(
        self,
        model: SeparationModel,
        channels: int,
        *,
        segment: float | None = None,
        overlap: float = 0.25,
        batch_size: int = 1,
        shifts: int = 1,
        device: torch.device | str = "cpu",
        progress: ProgressFn | None = None,
    ):
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.model = model
        self.offsets = shift_offsets(model.frame_stride, shifts)
        self.channels = channels
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.progress = progress
        seconds = model.default_segment if segment is None else segment
        self.length: int | None = None if seconds <= 0 else max(1, round(seconds * model.sample_rate))
        self.hop = 0 if self.length is None else max(1, round(self.length * (1 - overlap)))
        n_src, mc = len(model.sources), model.audio_channels
        groups = to_groups(torch.zeros(channels, 0), mc).shape[0]
        self._buffer = torch.zeros(groups, mc, 0)  # input from absolute sample _buffer_start on
        self._buffer_start = 0
        self._next = 0  # start of the next regular segment = first sample not final yet
        self._covered = 0  # end of the last segment run so far
        self._tail = torch.zeros(groups, n_src, mc, 0)  # weighted sums from _next on
        self._tail_w = torch.zeros(0)
        self._done = False

    @property
    def _received(self) -> int:
        return self._buffer_start + self._buffer.shape[-1]

    def _input(self, start: int, stop: int) -> torch.Tensor:
        """Buffered input samples [start, stop) in absolute positions: (groups, mc, stop - start)."""
        return self._buffer[..., start - self._buffer_start : stop - self._buffer_start]

    def _forward(self, segments: torch.Tensor) -> torch.Tensor:
        """(n, groups, mc, length) -> (n, groups, sources, mc, length) on the CPU."""
        n, g, mc, t = segments.shape
        with torch.inference_mode():
            out = average_over_shifts(self.model, segments.reshape(n * g, mc, t).to(self.device), self.offsets)
        return out.cpu().reshape(n, g, *out.shape[1:])

    def _accumulate(self, starts: list[int], length: int, stop: int) -> None:
        """Run the segments ``[s, s + length)`` and add their weighted outputs from ``_next`` to ``stop``."""
        out = self._forward(torch.stack([self._input(s, s + length) for s in starts]))
        window = segment_window(length)
        size = stop - self._next
        acc = torch.zeros(*self._tail.shape[:-1], size)
        wsum = torch.zeros(size)
        keep = min(size, self._tail.shape[-1])
        acc[..., :keep] += self._tail[..., :keep]
        wsum[:keep] += self._tail_w[:keep]
        for s, y in zip(starts, out):
            lo = max(s, self._next)  # samples before _next are final already
            acc[..., lo - self._next : s + length - self._next] += (y * window)[..., lo - s :]
            wsum[lo - self._next : s + length - self._next] += window[lo - s :]
        self._tail, self._tail_w = acc, wsum
        self._covered = max(self._covered, starts[-1] + length)

    def _emit(self, stop: int) -> torch.Tensor:
        """Finish samples [_next, stop): (groups, sources, mc, stop - _next)."""
        n = stop - self._next
        out = self._tail[..., :n] / self._tail_w[:n]
        self._tail, self._tail_w = self._tail[..., n:], self._tail_w[n:]
        self._next = stop
        drop = max(0, self._next - (self.length or 0) - self._buffer_start)  # keep one segment of history
        self._buffer = self._buffer[..., drop:]
        self._buffer_start += drop
        if self.progress:
            self.progress(n)
        return out

    def _run_regular(self, count: int) -> torch.Tensor:
        """Run ``count`` regular segments from ``_next``; finish the ``count * hop`` samples before the next."""
        L, H = self.length, self.hop
        assert L is not None
        starts = [self._next + k * H for k in range(count)]
        self._accumulate(starts, L, starts[-1] + L)
        return self._emit(self._next + count * H)

    def push(self, block: torch.Tensor) -> torch.Tensor:
        """Add ``(channels, n)`` samples; return the stems that are now final, (sources, channels, n')."""
        if self._done:
            raise RuntimeError("push after flush")
        block = to_groups(block.float().cpu(), self.model.audio_channels)
        self._buffer = torch.cat([self._buffer, block], dim=-1)
        if self.length is None:
            return self._empty()
        outs = []
        while self._received - self._next >= (self.batch_size - 1) * self.hop + self.length:
            outs.append(self._run_regular(self.batch_size))
        return self._join(outs)

    def flush(self) -> torch.Tensor:
        """End the signal; return the remaining stems."""
        self._done = True
        end = self._received
        if self.length is None:  # one forward pass over the whole signal
            if end == 0:
                return self._empty()
            out = self._forward(self._buffer.unsqueeze(0))[0]
            if self.progress:
                self.progress(end)
            return from_groups(out, self.channels)
        L, H = self.length, self.hop
        outs = []
        while end - self._next >= L:  # the regular segments that fit
            outs.append(self._run_regular(min(self.batch_size, (end - self._next - L) // H + 1)))
        if self._next < end:
            if self._covered < end:  # one last segment, aligned to the end
                start = max(0, end - L)
                self._accumulate([start], end - start, end)
            outs.append(self._emit(end))
        return self._join(outs)

    def _empty(self) -> torch.Tensor:
        return torch.zeros(len(self.model.sources), self.channels, 0)

    def _join(self, outs: list[torch.Tensor]) -> torch.Tensor:
        if not outs:
            return self._empty()
        return from_groups(torch.cat(outs, dim=-1), self.channels)


class BagSeparator:
    """A :class:`ModelBag` separated as a stream: a :class:`StreamingSeparator` per member (the same
    settings, each member's own default segment unless ``segment`` is given), whose stems are
    averaged with the bag's weights as far as every member has finished them. ``push`` and
    ``flush`` behave as :class:`StreamingSeparator`'s; ``progress`` sees the samples finished."""

    def __init__(self, bag: ModelBag, channels: int, *, progress: ProgressFn | None = None, **settings: Any):
        self.weights = bag.weights
        self.parts = [StreamingSeparator(m, channels, **settings) for m in bag.members]
        self.progress = progress
        self._pending = [torch.zeros(len(bag.sources), channels, 0) for _ in self.parts]

    def _combine(self, outs: list[torch.Tensor]) -> torch.Tensor:
        """Add each member's new stems (sources, channels, n_i) to its pending ones; return the
        weighted sum over the samples all members have finished."""
        self._pending = [torch.cat([p, o], dim=-1) for p, o in zip(self._pending, outs)]
        n = min(p.shape[-1] for p in self._pending)
        out = sum(w * p[..., :n] for w, p in zip(self.weights, self._pending))
        self._pending = [p[..., n:] for p in self._pending]
        if self.progress and n:
            self.progress(n)
        assert isinstance(out, torch.Tensor)
        return out

    def push(self, block: torch.Tensor) -> torch.Tensor:
        """Add ``(channels, n)`` samples; return the stems that are now final, (sources, channels, n')."""
        return self._combine([p.push(block) for p in self.parts])

    def flush(self) -> torch.Tensor:
        """End the signal; return the remaining stems."""
        return self._combine([p.flush() for p in self.parts])


def streaming_separator(model: SeparationModel, channels: int, **settings: Any) -> StreamingSeparator | BagSeparator:
    """The streaming separator for ``model``: a :class:`BagSeparator` for an ensemble, else a
    :class:`StreamingSeparator`; ``settings`` are their keyword options."""
    if isinstance(model, ModelBag):
        return BagSeparator(model, channels, **settings)
    return StreamingSeparator(model, channels, **settings)


def separate(model: SeparationModel, wav: torch.Tensor, **settings: Any) -> torch.Tensor:
    """Separate ``wav`` (channels, time), at the model's sample rate, into (sources, channels, time):
    a streaming separator (:func:`streaming_separator`) fed with one block. ``settings``: its keyword
    options (``segment``, ``overlap``, ``batch_size``, ``shifts``, ``device``, ``progress``)."""
    sep = streaming_separator(model, wav.shape[0], **settings)
    return torch.cat([sep.push(wav), sep.flush()], dim=-1)
