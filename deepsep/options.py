"""What a separation is asked for: the output options (which stems, format, names, existing
outputs) and the engine options (segments, device, threads), as the commands and the API pass them."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .audio import DEFAULT_FILENAME
from .engine import resolve_device
from .errors import DeepsepError, ModelError, UsageError
from .models.bag import ModelBag
from .models.base import SeparationModel, SpectrogramMasker
from .weights import Manifest, check_name

#: a file whose outputs exist: refuse it (an error), overwrite them, or skip the file when all exist
EXISTING_POLICIES = ("refuse", "overwrite", "skip")

ProgressFn = Callable[[int, int | None], None]  # (frames done, total frames or None)


@dataclass(frozen=True)
class OutputOptions:
    """How stems are written: which, in what format, and what to do with peaks over full scale."""

    stems: tuple[str, ...] | None = None  # keep only these sources
    two_stems: str | None = None  # write this source and "no_<source>" (the rest summed)
    fmt: str = "wav"
    bits: int = 16
    clip: str = "rescale"
    atten_lim: float | None = None  # dB: the most a voice/noise model takes off the noise in `voice`
    filename: str = DEFAULT_FILENAME  # where each stem goes under the output folder (--filename)
    suffix: str | None = None  # instead: one stem beside the input, as <name><suffix>.<fmt> (--suffix)
    existing: str = "refuse"  # outputs that exist already: one of EXISTING_POLICIES
    mp3_bitrate: int | None = None  # kbit/s for --format mp3 (one of audio.MP3_LEVELS; None: 320)


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs: segments, their overlap, the batch, the device, the shifts."""

    segment: float | None = None  # seconds; None: the model's default
    overlap: float = 0.25
    batch_size: int = 1
    device: str = "cpu"
    shifts: int = 1  # passes per segment at offsets within one frame, averaged


#: the shortest --segment, in seconds, whatever the model: shorter segments make thousands of
#: forward passes (0.001 s on a 10-s file: over a minute instead of 0.3 s) and stems that are no
#: separation (voice16-unet at 0.02 s: -11 dB SI-SDRi; 0.1 s is above every shipped model's
#: analysis window, 46 ms music, 64 ms voice U-Nets)
MIN_SEGMENT = 0.1

#: the defaults, shared (both are frozen)
DEFAULT_OUTPUT = OutputOptions()
DEFAULT_ENGINE = EngineOptions()


def check_engine(engine: EngineOptions) -> None:
    """Raise UsageError unless --segment, --overlap, --shifts and --batch-size are usable."""
    if engine.segment is not None and not (engine.segment > 0 and math.isfinite(engine.segment)):
        raise UsageError(f"--segment {engine.segment:g}: the segment length must be a positive number of seconds "
                         f"(at least {MIN_SEGMENT:g})")
    if engine.segment is not None and engine.segment < MIN_SEGMENT:
        raise UsageError(f"--segment {engine.segment:g}: too short, give at least {MIN_SEGMENT:g} seconds "
                         "(shorter ones take many times longer and separate badly)")
    if not 0 <= engine.overlap < 1:
        raise UsageError(f"--overlap {engine.overlap:g}: the overlap is a fraction of a segment, from 0 to below 1")
    if engine.shifts < 1:
        raise UsageError(f"--shifts {engine.shifts}: each segment is separated at least once (1 or more)")
    if engine.batch_size < 1:
        raise UsageError(f"--batch-size {engine.batch_size}: at least one segment per pass (1 or more)")


def check_model_name(name: str, manifest: Manifest) -> None:
    """Raise UsageError when ``-m name`` names no model (:func:`~deepsep.weights.check_name`): a
    model that is named but cannot load fails later, as a model error."""
    try:
        check_name(name, manifest)
    except ModelError as e:
        raise UsageError(f"-m {name}: {e}") from None


def model_window(model: SeparationModel) -> int:
    """The samples one analysis frame of ``model`` spans: a spectrogram model's STFT window, an
    encoder's kernel (two strides), the longest of a bag's members (they share the rate)."""
    if isinstance(model, ModelBag):
        return max(model_window(m) for m in model.members)
    if isinstance(model, SpectrogramMasker):
        return int(model.config.n_fft)
    return 2 * model.frame_stride


def check_segment(engine: EngineOptions, model: SeparationModel, name: str = "the model") -> None:
    """Raise UsageError when --segment is shorter than one analysis frame of ``model`` (``name``
    in the message): the segment the engine cuts (its length rounded to samples) must hold one."""
    window = model_window(model)
    if engine.segment is not None and round(engine.segment * model.sample_rate) < window:
        raise UsageError(f"--segment {engine.segment:g}: shorter than one frame of {name} ({window} samples at "
                         f"{model.sample_rate} Hz: give at least {window / model.sample_rate:.3g} seconds)")


def engine_options(device: str, segment: float | None = None, overlap: float = 0.25, batch_size: int | None = None,
                   shifts: int = 1, threads: int | None = None) -> EngineOptions:
    """A command's engine options, checked (:func:`check_engine`), with the device resolved
    ('auto'), the batch size defaulted (1 on the CPU, 16 on a GPU) and torch's threads set
    (:func:`set_threads`). An unknown --device, or cuda without a GPU, is a UsageError."""
    try:
        device = resolve_device(device)
    except DeepsepError as e:
        raise UsageError(str(e)) from None
    engine = EngineOptions(segment, overlap, default_batch_size(device) if batch_size is None else batch_size, device, shifts)
    check_engine(engine)
    set_threads(threads, device)
    return engine


def default_batch_size(device: str) -> int:
    """Segments per forward pass when --batch-size is not given: 1 on the CPU, 16 on a GPU."""
    return 16 if device.startswith("cuda") else 1


def set_threads(threads: int | None, device: str) -> None:
    """Set torch's CPU threads: ``threads`` (0: torch's default, one per core); when None, 1 on the
    CPU (torch's default made runs on a busy 2-core machine 7-18x slower than one thread) and
    torch's default on a GPU."""
    if threads is None:
        if device != "cpu":
            return
        threads = 1
    if threads < 0:
        raise UsageError(f"--threads {threads}: give 1 or more (0: torch's default, one per core)")
    if threads:
        torch.set_num_threads(threads)
