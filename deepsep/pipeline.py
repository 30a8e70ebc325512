"""The one separation pipeline: a signal at any rate and channel count in, stems at that rate out.

Blocks read from a file (:class:`~deepsep.audio.AudioReader`) or an array (:class:`ArrayReader`)
are resampled to the model's rate (soxr, streaming), fitted to its channels and separated in
overlapping segments (:class:`~deepsep.engine.StreamingSeparator`), resampled back, completed
(what the stems miss of the input goes to the last source), turned into the requested stems (a
(stems, sources) matrix, :mod:`deepsep.stems`) and handed to writers: hidden files on disk
(:class:`~deepsep.audio.StemWriter`) or :class:`ArraySink` in memory. Memory stays bounded
whatever the signal's length, except for what the sinks keep.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from .audio import AudioInfo, AudioReader, Fifo, StemWriter, StreamResampler
from .engine import streaming_separator
from .errors import AudioError
from .models.base import SeparationModel
from .options import DEFAULT_ENGINE, EngineOptions, ProgressFn


class ArrayReader:
    """A signal in memory, read like a file (:class:`AudioReader`'s ``info`` and ``blocks``), so that
    arrays go through the very pipeline files do."""

    def __init__(self, audio: np.ndarray, sample_rate: int):
        """``audio``: (channels, time) float32."""
        self.audio = audio
        self.info = AudioInfo(sample_rate, audio.shape[0], audio.shape[1])

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        for start in range(0, self.audio.shape[1], frames):
            yield self.audio[:, start:start + frames]


class ArraySink:
    """Collects written (channels, n) blocks in memory, like a StemWriter that never touches disk."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []

    def write(self, block: np.ndarray) -> None:
        self.blocks.append(block)

    def array(self, frames: int) -> np.ndarray:
        """The first ``frames`` samples, zero-padded if fewer came: (channels, frames)."""
        data = np.concatenate(self.blocks, axis=-1)[:, :frames]
        return np.pad(data, ((0, 0), (0, frames - data.shape[-1])))


def pad_time(x: np.ndarray, frames: int) -> np.ndarray:
    """``x`` (..., n) with zeros appended up to ``frames`` samples (as it is when n >= frames)."""
    missing = frames - x.shape[-1]
    if missing <= 0:
        return x
    return np.concatenate([x, np.zeros((*x.shape[:-1], missing), x.dtype)], -1)


def residual_to_last(stems: np.ndarray, mixture: np.ndarray) -> np.ndarray:
    """``stems`` (sources, channels, n) with what they miss of ``mixture`` (channels, n) added to
    the last source (noise, other), so that they add up to it: (sources, channels, n)."""
    out = stems.copy()
    out[-1] += mixture - stems.sum(axis=0)
    return out


def mix_stems(matrix: np.ndarray, stems: np.ndarray) -> np.ndarray:
    """The output stems (outputs, channels, n) that ``matrix`` (outputs, sources) makes of
    ``stems`` (sources, channels, n)."""
    return torch.einsum("os,sct->oct", torch.from_numpy(matrix), torch.from_numpy(stems)).numpy()


def level_db(reader: AudioReader | ArrayReader, block_seconds: float = 5.0) -> float:
    """The RMS level (dBFS) of the reader's whole signal, over all its channels: a pass of its own."""
    total, count = 0.0, 0
    for block in reader.blocks(max(1, int(block_seconds * reader.info.sample_rate))):
        total += float(np.square(block, dtype=np.float64).sum())
        count += block.size
    return 10 * math.log10(total / count + 1e-20) if count else -200.0


def gain_into(level: float, low: float, high: float) -> float:
    """The gain that brings a signal at ``level`` dB into [low, high] dB: 1 within, else to the nearer edge."""
    return 10 ** ((min(max(level, low), high) - level) / 20)


def stream(
    model: SeparationModel,
    reader: AudioReader | ArrayReader,
    writers: Sequence[StemWriter | ArraySink],
    matrix: np.ndarray,
    engine: EngineOptions,
    progress: ProgressFn | None = None,
    block_seconds: float = 5.0,
) -> tuple[int, float]:
    """Run the signal through resampler -> separator -> resampler -> ``matrix`` (outputs, sources)
    -> one writer per output; (frames read, input peak).

    What the stems, back at the input's rate, miss of the input (the band above the model's
    Nyquist frequency when the input's rate is higher; rounding otherwise) goes to the model's
    last source (noise, other), so that the stems always add up to the input.

    A model with a :attr:`~deepsep.models.base.SeparationModel.level_range_db` hears a track whose
    level lies outside that range scaled into it (a first pass measures the level), and its stems
    are scaled back: a quiet recording or a loud master is separated as one at the level it learned.
    """
    gain = gain_into(level_db(reader, block_seconds), *model.level_range_db) if model.level_range_db else 1.0
    info = reader.info
    n_src = len(model.sources)
    to_model = StreamResampler(info.sample_rate, model.sample_rate, info.channels)
    from_model = StreamResampler(model.sample_rate, info.sample_rate, n_src * info.channels)
    sep = streaming_separator(
        model, info.channels, segment=engine.segment, overlap=engine.overlap,
        batch_size=engine.batch_size, shifts=engine.shifts, device=engine.device,
    )
    inputs = Fifo(info.channels)  # input samples whose stems are not written yet

    def emit(stems: torch.Tensor, last: bool = False) -> None:
        """stems (sources, channels, n) at the model rate -> resampled stem blocks to the writers.
        At the end, input samples that the round trip through the model's rate did not give back
        (a sample or two of rounding) go to the last source too."""
        back = from_model(stems.reshape(n_src * info.channels, -1).numpy() / gain, last=last).reshape(n_src, info.channels, -1)
        if last:
            back = pad_time(back, len(inputs))
        back = residual_to_last(back, inputs.pop(back.shape[-1]))
        for w, block in zip(writers, mix_stems(matrix, back)):
            w.write(block)

    frames, peak = 0, 0.0
    for block in reader.blocks(max(1, int(block_seconds * info.sample_rate))):
        frames += block.shape[-1]
        peak = max(peak, float(np.abs(block).max()))
        inputs.push(block)
        emit(sep.push(torch.from_numpy(to_model(block if gain == 1.0 else block * np.float32(gain)))))
        if progress:
            progress(frames, info.frames)
    tail = to_model(np.zeros((info.channels, 0), dtype=np.float32), last=True)
    stems = sep.push(torch.from_numpy(tail))
    emit(torch.cat([stems, sep.flush()], dim=-1), last=True)
    return frames, peak


def collect_stems(model: SeparationModel, reader: AudioReader | ArrayReader, matrix: np.ndarray,
                  engine: EngineOptions, block_seconds: float = 5.0) -> list[np.ndarray]:
    """The stems that ``matrix`` (stems, sources) makes of the reader's signal, in memory: one
    (channels, frames) array each, at the reader's rate."""
    sinks = [ArraySink() for _ in range(matrix.shape[0])]
    frames, _ = stream(model, reader, sinks, matrix, engine, None, block_seconds)
    return [s.array(frames) for s in sinks]


def separate_to_arrays(
    model: SeparationModel, source: Path | ArrayReader, engine: EngineOptions = DEFAULT_ENGINE,
    block_seconds: float = 5.0,
) -> tuple[np.ndarray, int]:
    """The model's sources for a file (or a signal in memory, as an :class:`ArrayReader`), in
    memory: ((sources, channels, time), sample rate).

    The same path as :func:`~deepsep.separation.separate_file` (same reading, resampling and
    segmenting), for evaluation and plots; memory grows with the file, so keep it to test items.
    """
    matrix = np.eye(len(model.sources), dtype=np.float32)
    if isinstance(source, ArrayReader):
        return np.stack(collect_stems(model, source, matrix, engine, block_seconds)), source.info.sample_rate
    with AudioReader(source) as reader:
        return np.stack(collect_stems(model, reader, matrix, engine, block_seconds)), reader.info.sample_rate


def as_signal(audio: np.ndarray | torch.Tensor, sample_rate: int) -> np.ndarray:
    """``audio``, (time,) or (channels, time), numpy or torch, checked and as a contiguous float32
    (channels, time) numpy array, integer samples scaled to [-1, 1) as a WAV file of their type
    reads (int16 / 2**15, int32 / 2**31, uint8 (x - 128) / 128).

    An AudioError, before any work, for an empty, non-numeric or complex array, one with more
    channels than samples (soundfile's (time, channels): never transposed silently, since a short
    signal of many channels would be ambiguous), NaN or infinite samples, or a sample rate that is
    not a positive whole number of Hz (numpy integers and integral floats such as 16000.0 are).
    """
    if isinstance(audio, torch.Tensor):
        tensor = audio.detach().cpu()
        x = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()  # numpy has no bfloat16
    else:
        x = np.asarray(audio)
    integer = np.issubdtype(x.dtype, np.integer)
    if x.ndim not in (1, 2) or x.size == 0 or not (integer or np.issubdtype(x.dtype, np.floating)):
        raise AudioError(f"audio must be a non-empty (time,) or (channels, time) array of real numbers, "
                         f"not shape {x.shape} of {x.dtype}")
    if integer and x.dtype.itemsize > 4:  # no audio format stores 64-bit integers: a list of Python ints
        raise AudioError(f"audio of {x.dtype} samples: give floats in [-1, 1] or int16/int32/uint8 samples "
                         "(a list of Python ints is int64)")
    if x.ndim == 2 and x.shape[0] > x.shape[1]:
        raise AudioError(f"audio of shape {x.shape} looks like (time, channels), with more channels than samples: "
                         f"pass audio.T (deepsep takes (channels, time))")
    if not integer and not np.isfinite(x).all():
        raise AudioError("audio holds NaN or infinite samples")
    whole = isinstance(sample_rate, (int, np.integer)) or (
        isinstance(sample_rate, (float, np.floating)) and float(sample_rate).is_integer())
    if isinstance(sample_rate, bool) or not whole or sample_rate < 1:
        raise AudioError(f"sample_rate must be a positive whole number of Hz, not {sample_rate!r}")
    x = x[None] if x.ndim == 1 else x
    if integer:  # to [-1, 1): the type's range is 2 * half wide, centred on offset (0 unless unsigned)
        info = np.iinfo(x.dtype)
        half = (int(info.max) - int(info.min) + 1) // 2
        offset = int(info.min) + half
        x = (x.astype(np.float32) - np.float32(offset)) / np.float32(half)
    return np.ascontiguousarray(x, dtype=np.float32)


def separate_signal(
    model: SeparationModel, audio: np.ndarray | torch.Tensor, sample_rate: int, names: Sequence[str],
    matrix: np.ndarray, engine: EngineOptions = DEFAULT_ENGINE, signal: np.ndarray | None = None,
) -> dict[str, np.ndarray | torch.Tensor]:
    """The stems ``names`` that ``matrix`` (stems, sources) makes of ``audio`` (see
    :func:`separate_array`): {name: stem}, each shaped and typed like ``audio`` (a tensor: its
    dtype and device). The model computes in float32: integer stems are scaled back from [-1, 1),
    rounded and clipped to the type's range. ``signal``: ``as_signal(audio, sample_rate)`` where
    the caller has it already."""
    x = as_signal(audio, sample_rate) if signal is None else signal
    stems = collect_stems(model, ArrayReader(x, int(sample_rate)), matrix, engine)
    dtype: np.dtype
    if isinstance(audio, torch.Tensor):  # numpy has no bfloat16: float32 here, the tensor's dtype below
        dtype = np.dtype(np.float32) if audio.dtype == torch.bfloat16 else torch.empty(0, dtype=audio.dtype).numpy().dtype
    else:
        dtype = np.asarray(audio).dtype

    def typed(stem: np.ndarray) -> np.ndarray:
        if not np.issubdtype(dtype, np.integer):
            return stem.astype(dtype, copy=False)
        info = np.iinfo(dtype)
        half = (int(info.max) - int(info.min) + 1) // 2
        return np.clip(np.rint(stem.astype(np.float64) * half + (int(info.min) + half)), info.min, info.max).astype(dtype)

    stems = [typed(stem[0] if np.ndim(audio) == 1 else stem) for stem in stems]
    if isinstance(audio, torch.Tensor):
        return {name: torch.from_numpy(stem).to(device=audio.device, dtype=audio.dtype) for name, stem in zip(names, stems)}
    return {name: stem for name, stem in zip(names, stems)}


def separate_array(
    model: SeparationModel, audio: np.ndarray | torch.Tensor, sample_rate: int, engine: EngineOptions = DEFAULT_ENGINE,
) -> dict[str, np.ndarray | torch.Tensor]:
    """Separate a signal in memory: {source: stem}, each shaped and typed like ``audio``.

    ``model``: a model (:func:`deepsep.load_model`); a TypeError for a name (a
    :class:`deepsep.Separator` takes names). ``audio``: (time,) or (channels, time), a numpy
    array or a torch tensor, float or integer (scaled to [-1, 1) for the model, as a WAV file of
    its type reads), at ``sample_rate`` Hz, any rate and channel count. The pipeline of
    :func:`~deepsep.separation.separate_file` (resampling to the model's rate and back, fitting
    channels, overlapping segments, what the model cannot hear to its last source), so the stems
    add up to ``audio``: float stems within float32 rounding (the model's precision), integer
    stems (int16, uint8) only within 1 LSB per stem, since each is rounded to the type (int32: to
    float32's precision, 2**-24 of full scale), unless one is clipped to the type's range.
    """
    if not isinstance(model, SeparationModel):
        raise TypeError(f"deepsep.separate takes a model from deepsep.load_model(name, sample_rate=...), not "
                        f"{model!r}; for a model name, use deepsep.Separator(name).separate_tensor(audio, rate)")
    return separate_signal(model, audio, sample_rate, model.sources, np.eye(len(model.sources), dtype=np.float32),
                           engine)
