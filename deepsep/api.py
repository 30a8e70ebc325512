"""The layer between the CLI and the engine: read, resample, separate, write, one file at a time.

Memory stays bounded whatever the file's length: the input is read in blocks, resampled by
streaming resamplers, separated by :class:`~deepsep.engine.StreamingSeparator` and written in
blocks to temporary files that are renamed only once complete.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from .audio import AUDIO_EXTENSIONS, AudioReader, Fifo, StemWriter, StreamResampler, subtype_for
from .engine import StreamingSeparator
from .errors import AudioError, DeepsepError, UsageError
from .models.base import SeparationModel
from .weights import Manifest, alias_for_rate, get_model

CLIP_POLICIES = ("rescale", "clamp", "none")


@dataclass(frozen=True)
class OutputOptions:
    """How stems are written: which, in what format, and what to do with peaks over full scale."""

    stems: tuple[str, ...] | None = None  # keep only these sources
    two_stems: str | None = None  # write this source and "no_<source>" (the rest summed)
    fmt: str = "wav"
    bits: int = 16
    clip: str = "rescale"
    atten_lim: float | None = None  # dB: the most a voice/noise model takes off the noise in `voice`


@dataclass(frozen=True)
class EngineOptions:
    segment: float | None = None  # seconds; None: the model's default
    overlap: float = 0.25
    batch_size: int = 1
    device: str = "cpu"
    shifts: int = 1  # passes per segment at offsets within one frame, averaged


@dataclass
class FileResult:
    path: Path
    track: str
    duration: float = 0.0  # seconds of input audio
    elapsed: float = 0.0  # seconds of wall time
    outputs: dict[str, Path] = field(default_factory=dict)
    gain_db: float = 0.0  # the common gain that "rescale" applied (0: none)
    model: str = ""  # the model that separated it (a rate-dependent alias picks one per file)
    error: str | None = None

    @property
    def rtf(self) -> float:
        """Real-time factor: processing time over audio duration (lower is faster)."""
        return self.elapsed / self.duration if self.duration else float("nan")


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is there, else 'cpu'; a clear error for an absent GPU."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeepsepError("--device cuda was asked for, but PyTorch sees no CUDA GPU (use --device cpu)")
    if device != "cpu" and not device.startswith("cuda"):
        raise DeepsepError(f"unknown device {device!r} (choose auto, cpu or cuda)")
    return device


def collect_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to their audio files (recursively, sorted)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(
                f for f in p.rglob("*")
                if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS and not f.name.startswith(".")
            ))
        else:
            found.append(p)
    return found


def input_files(paths: Sequence[str | Path], input_dir: str | None = None) -> list[Path]:
    """The files to separate: ``paths`` (folders expanded) and those of the folder ``input_dir``
    ('custom': ./input); a DeepsepError when there are none."""
    if input_dir:
        folder = Path("input") if input_dir == "custom" else Path(input_dir)
        if not folder.is_dir():
            raise DeepsepError(f"input folder not found: {folder}")
        paths = (*paths, folder)
    if not paths:
        raise DeepsepError("nothing to separate: give audio files or folders, or --input DIR")
    files = collect_inputs(paths)
    if not files:
        raise DeepsepError(f"no audio files in {', '.join(map(str, paths))}")
    return files


def track_name(path: Path) -> str:
    """'song.wav' -> 'song'; MUSDB's 'Artist - Title.stem.mp4' -> 'Artist - Title'."""
    name = path.name
    for suffix in (".stem.mp4", path.suffix):
        if suffix and name.lower().endswith(suffix.lower()):
            return name[: -len(suffix)] or name
    return name


#: the sources that --atten-lim applies to
VOICE_NOISE = ("voice", "noise")


def check_atten_lim(db: float | None, sources: Sequence[str] | None = None) -> None:
    """Raise UsageError unless ``db`` (None: no limit) is a valid --atten-lim for a model with
    ``sources`` (None: not known yet, check the value only)."""
    if db is None:
        return
    if not db >= 0:  # NaN too
        raise UsageError(f"--atten-lim {db:g}: the limit is an attenuation in dB, 0 or more")
    if sources is not None and sorted(sources) != sorted(VOICE_NOISE):
        raise UsageError(f"--atten-lim needs a model with the sources voice and noise; this one has {', '.join(sources)}")


def check_output(output: OutputOptions, sources: Sequence[str] | None = None) -> None:
    """Raise UsageError unless the output options go together and, given the model's ``sources``
    (None: not known yet), with the model: the CLI checks once, before any file is read."""
    if output.clip not in CLIP_POLICIES:
        raise UsageError(f"--clip {output.clip}: choose from {', '.join(CLIP_POLICIES)}")
    try:
        subtype_for(output.fmt, output.bits)
    except DeepsepError as e:
        raise UsageError(str(e)) from None
    if output.stems and output.two_stems is not None:
        raise UsageError("--stems and --two-stems cannot go together: give one")
    if output.stems and len(set(output.stems)) < len(output.stems):
        raise UsageError(f"--stems {','.join(output.stems)}: a stem is named twice")
    check_atten_lim(output.atten_lim)
    if sources is not None:
        stem_matrix(sources, output)  # a stem the model lacks; --atten-lim on a model without voice/noise


def output_bits(bits: int | None, int24: bool = False, float32: bool = False) -> int:
    """The sample size asked for by --bits, --int24 and --float32 (16 when none is given); a
    UsageError when they ask for different ones."""
    asked = {flag: b for flag, b, given in (("--bits", bits, bits is not None), ("--int24", 24, int24),
                                             ("--float32", 32, float32)) if given}
    if len(set(asked.values())) > 1:
        raise UsageError(f"{' and '.join(asked)} ask for different sample sizes: give one")
    return next(iter(asked.values()), 16)


def clip_warning(output: OutputOptions) -> str | None:
    """The warning for --clip none with an integer output format, which cannot hold peaks over full scale."""
    if output.clip == "none" and subtype_for(output.fmt, output.bits)[1].startswith("PCM"):
        return (f"--clip none with {output.bits}-bit output: peaks over full scale will be clipped by the integer "
                "format (--float32 keeps them)")
    return None


def check_engine(engine: EngineOptions) -> None:
    """Raise UsageError unless --segment, --overlap, --shifts and --batch-size are usable."""
    if engine.segment is not None and not (engine.segment > 0 and math.isfinite(engine.segment)):
        raise UsageError(f"--segment {engine.segment:g}: the segment length must be a positive number of seconds")
    if not 0 <= engine.overlap < 1:
        raise UsageError(f"--overlap {engine.overlap:g}: the overlap is a fraction of a segment, from 0 to below 1")
    if engine.shifts < 1:
        raise UsageError(f"--shifts {engine.shifts}: each segment is separated at least once (1 or more)")
    if engine.batch_size < 1:
        raise UsageError(f"--batch-size {engine.batch_size}: at least one segment per pass (1 or more)")


def engine_options(device: str, segment: float | None = None, overlap: float = 0.25, batch_size: int | None = None,
                   shifts: int = 1, threads: int | None = None) -> EngineOptions:
    """A command's engine options, checked (:func:`check_engine`), with the device resolved
    ('auto'), the batch size defaulted (1 on the CPU, 16 on a GPU) and torch's threads set
    (:func:`set_threads`)."""
    device = resolve_device(device)
    if batch_size is None:
        batch_size = 16 if device.startswith("cuda") else 1
    engine = EngineOptions(segment, overlap, batch_size, device, shifts)
    check_engine(engine)
    set_threads(threads, device)
    return engine


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


def atten_lim_matrix(sources: Sequence[str], db: float | None) -> np.ndarray:
    """The (sources, sources) matrix of :func:`limit_attenuation`: the identity when ``db`` is None."""
    m = np.eye(len(sources), dtype=np.float64)
    if db is not None:
        check_atten_lim(db, sources)
        v, n = (list(sources).index(s) for s in VOICE_NOISE)
        g = 10 ** (-db / 20)
        m[v, n], m[n, n] = g, 1 - g
    return m


def limit_attenuation(stems: np.ndarray | torch.Tensor, sources: Sequence[str], db: float | None):
    """Stems (sources first, any shape after) with the noise attenuated by at most ``db`` dB in
    ``voice``: voice + g * noise and (1 - g) * noise, g = 10 ** (-db / 20), so that they still add
    up to the same mixture (DeepFilterNet's ``--atten-lim``). Same type and shape out."""
    m = atten_lim_matrix(sources, db)
    if isinstance(stems, torch.Tensor):
        return torch.tensordot(torch.from_numpy(m).to(stems), stems, dims=1)
    return np.tensordot(m, stems, axes=1).astype(stems.dtype, copy=False)


def stem_matrix(sources: Sequence[str], opts: OutputOptions) -> tuple[list[str], np.ndarray]:
    """Output stem names and the (stems, sources) matrix that makes them from the model's sources
    (after :func:`limit_attenuation`, folded in)."""
    names, select = _select_matrix(list(sources), opts)
    return names, (select @ atten_lim_matrix(sources, opts.atten_lim)).astype(np.float32)


def _select_matrix(sources: list[str], opts: OutputOptions) -> tuple[list[str], np.ndarray]:
    """Stem names and the 0/1 (stems, sources) matrix of --stems / --two-stems."""
    if opts.two_stems is not None:
        if opts.two_stems not in sources:
            raise UsageError(f"--two-stems {opts.two_stems}: the model's sources are {', '.join(sources)}")
        i = sources.index(opts.two_stems)
        m = np.zeros((2, len(sources)), dtype=np.float32)
        m[0, i] = 1
        m[1] = 1
        m[1, i] = 0
        return [opts.two_stems, f"no_{opts.two_stems}"], m
    names = list(opts.stems) if opts.stems else sources
    unknown = [s for s in names if s not in sources]
    if unknown:
        raise UsageError(f"--stems: unknown stem(s) {', '.join(unknown)}: the model's sources are {', '.join(sources)}")
    m = np.zeros((len(names), len(sources)), dtype=np.float32)
    for row, name in enumerate(names):
        m[row, sources.index(name)] = 1
    return names, m


def input_rate(path: Path) -> int:
    """The sample rate of an audio file (read from its header)."""
    with AudioReader(path) as reader:
        return reader.info.sample_rate


class ModelCache:
    """The models of one run, each loaded once and reused across files. ``name`` may be a
    rate-dependent alias (``-m voice``), which picks a model for each file by its sample rate."""

    def __init__(self, name: str, device: str, manifest: Manifest):
        self.name, self.device, self.manifest = name, device, manifest
        self.loaded: dict[str, SeparationModel] = {}  # concrete model name -> model
        self._picked: dict[Path, str] = {}  # input file -> concrete model name

    def name_for(self, path: Path | None = None) -> str:
        """The concrete model name for a file (reads its header only when the alias needs its rate)."""
        if path is None or self.name not in self.manifest.rate_aliases:
            return alias_for_rate(self.name, None, self.manifest)
        if path not in self._picked:
            self._picked[path] = alias_for_rate(self.name, input_rate(path), self.manifest)
        return self._picked[path]

    def model(self, name: str) -> SeparationModel:
        """The concrete model ``name``, loaded on first use."""
        if name not in self.loaded:
            self.loaded[name] = get_model(name, self.device, self.manifest)
        return self.loaded[name]

    def for_file(self, path: Path | None = None) -> tuple[str, SeparationModel]:
        """(concrete name, model) for a file."""
        name = self.name_for(path)
        return name, self.model(name)

    def preload(self, paths: Iterable[Path]) -> dict[str, SeparationModel]:
        """Load every model that ``paths`` need, so that a model error comes before any file is
        separated; a file whose header cannot be read is left to fail on its own."""
        names = set()
        for path in paths:
            try:
                names.add(self.name_for(path))
            except Exception:  # noqa: BLE001 - reported with the file when it is separated
                pass
        for name in sorted(names):
            self.model(name)
        return self.loaded


ProgressFn = Callable[[int, int | None], None]  # (frames done, total frames or None)


def separate_file(
    model: SeparationModel,
    path: Path,
    out_dir: Path,
    output: OutputOptions = OutputOptions(),
    engine: EngineOptions = EngineOptions(),
    track: str | None = None,
    progress: ProgressFn | None = None,
    block_seconds: float = 5.0,
) -> FileResult:
    """Separate one file into ``out_dir/<track>/<stem>.<fmt>``; raise DeepsepError on bad input.

    Outputs keep the input's sample rate and channel count. On any error the temporary files
    are removed and earlier outputs under the final names are left as they were.
    """
    start = time.perf_counter()
    check_output(output, model.sources)
    major, subtype = subtype_for(output.fmt, output.bits)
    names, matrix = stem_matrix(model.sources, output)
    track = track or track_name(path)
    with AudioReader(path) as reader:
        info = reader.info
        folder = out_dir / track
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DeepsepError(f"cannot create output folder {folder}: {e.strerror or e}") from None
        writers: list[StemWriter] = []
        try:
            for name in names:
                writers.append(StemWriter(folder / f"{name}.{output.fmt}", info.sample_rate, info.channels))
        except (OSError, RuntimeError) as e:
            for w in writers:
                w.discard()
            raise DeepsepError(f"cannot write in output folder {folder}: {_reason(e)}") from None
        try:
            frames, peak = _stream(model, reader, writers, matrix, engine, progress, block_seconds)
            if peak == 0.0:
                raise AudioError(f"{path}: the audio is digital silence, there is nothing to separate")
            out_peak = max(w.peak for w in writers)
            scale = 1.0
            if output.clip == "rescale" and out_peak > 1.0:
                scale = 1.0 / (1.01 * out_peak)  # one gain for all stems keeps their sum consistent
            outputs = {}
            for name, w in zip(names, writers):
                outputs[name] = w.finish(frames, major, subtype, scale, clamp=output.clip == "clamp")
        except BaseException:
            for w in writers:
                w.discard()
            raise
    result = FileResult(path, track, frames / info.sample_rate, time.perf_counter() - start, outputs)
    result.gain_db = float(20 * np.log10(scale)) if scale != 1.0 else 0.0
    return result


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


def separate_to_arrays(
    model: SeparationModel, path: Path, engine: EngineOptions = EngineOptions(), block_seconds: float = 5.0,
) -> tuple[np.ndarray, int]:
    """The model's sources for a file, in memory: ((sources, channels, time), sample rate).

    The same path as :func:`separate_file` (same reading, resampling and segmenting), for
    evaluation and plots; memory grows with the file, so keep it to test items.
    """
    matrix = np.eye(len(model.sources), dtype=np.float32)
    with AudioReader(path) as reader:
        sinks = [ArraySink() for _ in model.sources]
        frames, _ = _stream(model, reader, sinks, matrix, engine, None, block_seconds)
        return np.stack([s.array(frames) for s in sinks]), reader.info.sample_rate


def _stream(
    model: SeparationModel,
    reader: AudioReader,
    writers: Sequence[StemWriter | ArraySink],
    matrix: np.ndarray,
    engine: EngineOptions,
    progress: ProgressFn | None,
    block_seconds: float,
) -> tuple[int, float]:
    """Run the file through resampler -> separator -> resampler -> writers; (frames read, input peak).

    What the stems, back at the input's rate, miss of the input (the band above the model's
    Nyquist frequency when the input's rate is higher; rounding otherwise) goes to the model's
    last source (noise, other), so that the stems always add up to the input.
    """
    info = reader.info
    n_src = len(model.sources)
    to_model = StreamResampler(info.sample_rate, model.sample_rate, info.channels)
    from_model = StreamResampler(model.sample_rate, info.sample_rate, n_src * info.channels)
    sep = StreamingSeparator(
        model, info.channels, segment=engine.segment, overlap=engine.overlap,
        batch_size=engine.batch_size, shifts=engine.shifts, device=engine.device,
    )
    mix_matrix = torch.from_numpy(matrix)
    inputs = Fifo(info.channels)  # input samples whose stems are not written yet

    def emit(stems: torch.Tensor, last: bool = False) -> None:
        """stems (sources, channels, n) at the model rate -> resampled stem blocks to the writers.
        At the end, input samples that the round trip through the model's rate did not give back
        (a sample or two of rounding) go to the last source too."""
        flat = stems.reshape(n_src * info.channels, -1).numpy()
        back = from_model(flat, last=last).reshape(n_src, info.channels, -1)
        if last and len(inputs) > back.shape[-1]:
            back = np.concatenate([back, np.zeros((n_src, info.channels, len(inputs) - back.shape[-1]), back.dtype)], -1)
        back[-1] += inputs.pop(back.shape[-1]) - back.sum(axis=0)
        mixed = torch.einsum("os,sct->oct", mix_matrix, torch.from_numpy(back)).numpy()
        for w, block in zip(writers, mixed):
            w.write(block)

    frames, peak = 0, 0.0
    for block in reader.blocks(max(1, int(block_seconds * info.sample_rate))):
        frames += block.shape[-1]
        peak = max(peak, float(np.abs(block).max()))
        inputs.push(block)
        emit(sep.push(torch.from_numpy(to_model(block))))
        if progress:
            progress(frames, info.frames)
    tail = to_model(np.zeros((info.channels, 0), dtype=np.float32), last=True)
    stems = sep.push(torch.from_numpy(tail))
    emit(torch.cat([stems, sep.flush()], dim=-1), last=True)
    return frames, peak


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e).strip().splitlines()[0]
