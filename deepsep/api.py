"""The layer between the CLI and the engine: read, resample, separate, write, one file at a time.

Memory stays bounded whatever the file's length: the input is read in blocks, resampled by
streaming resamplers, separated by :class:`~deepsep.engine.StreamingSeparator` and written in
blocks to hidden temporary files that are renamed only once every stem of the file is complete.

Outputs go to ``<out>/<--filename template>`` (default ``<track>/<stem>.<ext>``) or, with
``--suffix``, beside the input; existing outputs are refused unless the options say to replace or
skip them, and SIGINT/SIGTERM (see :func:`interrupts_raise`) remove the hidden files on the way out.
"""

from __future__ import annotations

import math
import os
import signal
import string
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection, Iterable, Iterator, Sequence

import numpy as np
import torch

from .audio import (
    AUDIO_EXTENSIONS, CLIP_POLICIES, DEFAULT_FILENAME, FILENAME_FIELDS, MP3_LEVELS, OUTPUT_FORMATS, AudioInfo,
    AudioReader, Fifo, StemWriter, StreamResampler, remove_stale_partials, subtype_for,
)
from .engine import StreamingSeparator, resolve_device
from .errors import AudioError, DeepsepError, ModelError, UsageError
from .models.base import SeparationModel
from .weights import TEST_MODELS, Manifest, alias_for_rate, load_manifest, load_resolved, resolve

#: a file whose outputs exist: refuse it (an error), overwrite them, or skip the file when all exist
EXISTING_POLICIES = ("refuse", "overwrite", "skip")


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
    skipped: bool = False  # --skip-existing: every output existed, nothing was done
    warnings: list[str] = field(default_factory=list)  # about the input, e.g. a truncated file

    @property
    def rtf(self) -> float:
        """Real-time factor: processing time over audio duration (lower is faster)."""
        return self.elapsed / self.duration if self.duration else float("nan")


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


def unique_tracks(files: Sequence[Path], per_folder: bool = False) -> list[str]:
    """Track names (:func:`track_name`), made distinct when inputs share one (song.wav, song.flac ->
    song, song_flac): across the batch, or only among files of the same folder (``per_folder``)."""
    names: list[str] = []
    seen: set[tuple[Path | None, str]] = set()
    for f in files:
        folder = f.parent if per_folder else None
        name = track_name(f)
        if (folder, name) in seen:
            base = f"{name}_{f.suffix.lstrip('.')}" if f.suffix else name
            name, i = base, 2
            while (folder, name) in seen:
                name, i = f"{base}_{i}", i + 1
        seen.add((folder, name))
        names.append(name)
    return names


def plan_inputs(files: Sequence[Path], output: OutputOptions) -> tuple[list[tuple[Path, str]], list[Path]]:
    """The batch as (file, track name) pairs, and the files left out: with ``--suffix``, inputs named
    like the output of another input (``call_clean.wav`` or ``.flac`` beside ``call.flac``: an earlier run's).
    A UsageError when several files would share their outputs (a --filename without {track})."""
    dropped: list[Path] = []
    if output.suffix is not None:  # in any format: an earlier run may have written another
        outs = {_absolute(f.parent / f"{track_name(f)}{output.suffix}") for f in files}
        dropped = [f for f in files if _absolute(f.parent / track_name(f)) in outs]
        files = [f for f in files if f not in dropped]
    elif len(files) > 1 and "track" not in filename_fields(output.filename):
        raise UsageError(f"--filename {output.filename!r} has no {{track}}: the {len(files)} files would all be "
                         "written to the same paths")
    return list(zip(files, unique_tracks(files, per_folder=output.suffix is not None))), dropped


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


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
    if output.mp3_bitrate is not None:
        if output.fmt != "mp3":
            raise UsageError(f"--mp3-bitrate is for --format mp3, not {output.fmt}")
        if output.mp3_bitrate not in MP3_LEVELS:
            raise UsageError(f"--mp3-bitrate {output.mp3_bitrate}: choose from {', '.join(map(str, MP3_LEVELS))}")
    if output.stems and output.two_stems is not None:
        raise UsageError("--stems and --two-stems cannot go together: give one")
    if output.stems and len(set(output.stems)) < len(output.stems):
        raise UsageError(f"--stems {','.join(output.stems)}: a stem is named twice")
    check_atten_lim(output.atten_lim)
    if output.existing not in EXISTING_POLICIES:
        raise UsageError(f"existing outputs: {output.existing!r} is not one of {', '.join(EXISTING_POLICIES)}")
    if output.suffix is not None:
        check_suffix(output)
    else:
        check_filename(output.filename)
    if sources is not None:
        names, _ = stem_matrix(sources, output)  # a stem the model lacks; --atten-lim on a model without voice/noise
        if output.suffix is None and len(set(output_paths(Path(), Path(), "t", "m", names, output).values())) < len(names):
            raise UsageError(f"--filename {output.filename!r} gives different stems ({', '.join(names)}) the same name")


def filename_fields(template: str) -> list[str]:
    """The fields of a --filename template ('{track}/{stem}.{ext}' -> track, stem, ext); a
    UsageError when it is not a valid template."""
    try:
        return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise UsageError(f"--filename {template!r}: {e} (write {{{{ and }}}} for literal braces)") from None


def check_filename(template: str) -> None:
    """Raise UsageError unless ``template`` is a usable --filename: only the fields of
    FILENAME_FIELDS, {stem} among them, and a path inside the output folder."""
    fields = filename_fields(template)
    unknown = [f for f in fields if f not in FILENAME_FIELDS]
    if unknown:
        raise UsageError(f"--filename {template!r}: unknown field {{{unknown[0]}}} (the fields are "
                         f"{', '.join('{' + f + '}' for f in FILENAME_FIELDS)})")
    if "stem" not in fields:
        raise UsageError(f"--filename {template!r} has no {{stem}}: every stem of a file would get the same name")
    try:
        path = render_filename(template, model="model", track="track", stem="stem", ext="wav")
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise UsageError(f"--filename {template!r}: {e}") from None
    if path.is_absolute() or ".." in path.parts or not path.name:
        raise UsageError(f"--filename {template!r}: give a file path inside the output folder (-o), without '..'")


def check_suffix(output: OutputOptions) -> None:
    """Raise UsageError unless --suffix can name a file beside its input (not the input itself)."""
    suffix = output.suffix or ""
    if not suffix or "/" in suffix or os.sep in suffix or "\0" in suffix:
        raise UsageError(f"--suffix {suffix!r}: give a non-empty text without '/', added to the input's name")
    if output.filename != DEFAULT_FILENAME:
        raise UsageError("--suffix and --filename cannot go together: --suffix writes beside each input")


def output_root(out_dir: Path | None, output: OutputOptions) -> Path:
    """The output folder: ``out_dir`` (default ``outputs``); a UsageError for -o with --suffix,
    which writes beside each input."""
    if output.suffix is not None and out_dir is not None:
        raise UsageError("-o and --suffix cannot go together: --suffix writes beside each input")
    return out_dir if out_dir is not None else Path("outputs")


def existing_policy(overwrite: bool = False, skip_existing: bool = False) -> str:
    """The EXISTING_POLICIES entry that --overwrite and --skip-existing ask for (a UsageError for both)."""
    if overwrite and skip_existing:
        raise UsageError("--overwrite and --skip-existing cannot go together: give one")
    return "overwrite" if overwrite else "skip" if skip_existing else "refuse"


def render_filename(template: str, *, model: str, track: str, stem: str, ext: str) -> Path:
    """A --filename template filled in: the path of one stem under the output folder."""
    return Path(template.format(model=model, track=track, stem=stem, ext=ext))


def model_label(name: str) -> str:
    """A model name as {model} writes it: a local file's name without '.safetensors', others as they are."""
    return Path(name).name.removesuffix(".safetensors") or name


def output_paths(path: Path, out_dir: Path, track: str, model_name: str, names: Sequence[str],
                 output: OutputOptions) -> dict[str, Path]:
    """Stem name -> the file it is written to: ``out_dir / <--filename>``, or with --suffix the
    one stem beside the input, ``<track><suffix>.<fmt>``."""
    if output.suffix is not None:
        return {name: path.parent / f"{track}{output.suffix}.{output.fmt}" for name in names[:1]}
    model = model_label(model_name)
    return {n: out_dir / render_filename(output.filename, model=model, track=track, stem=n, ext=output.fmt)
            for n in names}


def spectrogram_path(result: FileResult, out_dir: Path, output: OutputOptions) -> Path:
    """Where --plot puts a file's spectrograms: the --filename path of a stem named 'spectrograms'
    (``<track>/spectrograms.png``), or beside the --suffix output with '.png'."""
    if output.suffix is not None:
        return next(iter(result.outputs.values())).with_suffix(".png")
    return out_dir / render_filename(output.filename, model=model_label(result.model), track=result.track,
                                     stem="spectrograms", ext="png")


def known_sources(manifest: Manifest | None = None, models: Iterable[SeparationModel] = ()) -> frozenset[str]:
    """Every source name of the manifest's models, the test models and ``models``: the stems that
    other separations may have left in a track folder."""
    found = {s for _, config, _ in TEST_MODELS.values() for s in config["sources"]}
    try:
        entries = (manifest or load_manifest()).entries.values()
    except ModelError:
        entries = ()
    found.update(s for e in entries for s in e.sources)
    found.update(s for m in models for s in m.sources)
    return frozenset(found)


def other_stem_paths(path: Path, out_dir: Path, track: str, model_name: str, sources: Sequence[str],
                     output: OutputOptions, known: Collection[str]) -> list[Path]:
    """Where stems of the ``known`` sources that this model does not have would be for this track
    (in every output format): stems a model with other sources wrote."""
    ours = {*sources, *(f"no_{s}" for s in sources)}
    theirs = sorted({*known, *(f"no_{s}" for s in known)} - ours)
    if output.suffix is not None or not theirs:
        return []
    return [p for ext in OUTPUT_FORMATS
            for p in output_paths(path, out_dir, track, model_name, theirs, OutputOptions(
                filename=output.filename, fmt=ext)).values()]


def skip_or_refuse(targets: dict[str, Path], others: Iterable[Path], output: OutputOptions) -> bool:
    """Whether to skip a file (--skip-existing, every output exists); a DeepsepError when outputs
    exist that may not be replaced, or when the track's folder holds stems of another set of
    sources (voice/noise beside vocals/drums/bass/other), unless --overwrite."""
    if output.existing == "overwrite":
        return False
    present = [p for p in targets.values() if os.path.lexists(p)]
    if present and output.existing == "skip":
        if len(present) == len(targets):
            return True
        missing = next(p for p in targets.values() if p not in present)
        raise DeepsepError(f"{present[0]} exists but {missing.name} does not (an earlier run with other stems?): "
                           "--overwrite separates the file again")
    if present:
        raise DeepsepError(f"{present[0]} exists: --overwrite replaces the outputs, --skip-existing skips files "
                           "whose outputs all exist")
    other = next((p for p in others if os.path.lexists(p)), None)
    if other is not None:
        raise DeepsepError(f"{other.parent} holds stems of another model ({other.name}); writing "
                           f"{', '.join(targets)} there would mix two separations: use --filename "
                           '"{model}/{track}/{stem}.{ext}" to keep both apart, or --overwrite')
    return False


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
    if opts.suffix is not None:
        names, select = _one_stem(list(sources), opts, names, select)
    return names, (select @ atten_lim_matrix(sources, opts.atten_lim)).astype(np.float32)


def _one_stem(sources: list[str], opts: OutputOptions, names: list[str], select: np.ndarray) -> tuple[list[str], np.ndarray]:
    """--suffix writes one stem: the one --stems or --two-stems picks, else a voice/noise model's voice."""
    if opts.two_stems is None and opts.stems:
        if len(names) != 1:
            raise UsageError(f"--suffix writes one stem, and --stems {','.join(names)} picks {len(names)}")
    elif opts.two_stems is None:
        if sorted(sources) != sorted(VOICE_NOISE):
            raise UsageError("--suffix writes one stem: pick it with --stems or --two-stems (the model's sources "
                             f"are {', '.join(sources)})")
        i = names.index("voice")
        names, select = names[i:], select[i:]
    return names[:1], select[:1]


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

    def __init__(self, name: str, device: str, manifest: Manifest, trust_local: bool = False):
        self.name, self.device, self.manifest = name, device, manifest
        self.trust_local = trust_local  # load a local file that no sha256 vouches for (see weights.check_local_file)
        self.unchecked: list[Path] = []  # such files, loaded
        self.loaded: dict[str, SeparationModel] = {}  # concrete model name -> model
        self._lock = threading.Lock()  # files separated in threads (jobs) load a model once
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
        with self._lock:
            if name not in self.loaded:
                res = resolve(name, self.manifest, trust_local=self.trust_local)
                if res.origin == "unchecked file" and res.path is not None:
                    self.unchecked.append(res.path)
                self.loaded[name] = load_resolved(res, self.device)
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
    path: str | Path,
    out_dir: str | Path,
    output: OutputOptions = OutputOptions(),
    engine: EngineOptions = EngineOptions(),
    track: str | None = None,
    progress: ProgressFn | None = None,
    block_seconds: float = 5.0,
    model_name: str = "model",
    known: Collection[str] | None = None,
    cleaned: set[Path] | None = None,
) -> FileResult:
    """Separate one file into the paths of :func:`output_paths` (default ``out_dir/<track>/<stem>.<fmt>``);
    raise DeepsepError on bad input, and on outputs that exist (see :func:`skip_or_refuse`;
    ``known``: the source names of other models, default those of :func:`known_sources`).
    ``model_name`` is the model's name for --filename's {model}.

    Outputs keep the input's sample rate and channel count. Stems are written to hidden files in
    the output folder (``out_dir``; with --suffix the input's folder) and renamed together when
    all are complete, so that a track folder appears only then. On any error, or SIGINT/SIGTERM
    (see :func:`interrupts_raise`), the hidden files are removed and earlier outputs under the
    final names are left as they were. Hidden files that killed runs left in these folders are
    removed first (``cleaned``: folders a batch has already scanned, skipped and added to).
    """
    start = time.perf_counter()
    path, out_dir = Path(path), Path(out_dir)
    check_output(output, model.sources)
    major, subtype = subtype_for(output.fmt, output.bits)
    names, matrix = stem_matrix(model.sources, output)
    track = track or track_name(path)
    targets = output_paths(path, out_dir, track, model_name, names, output)
    staging = path.parent if output.suffix is not None else out_dir
    for folder in {staging, *(p.parent for p in targets.values())} - (cleaned if cleaned is not None else set()):
        remove_stale_partials(folder)
        if cleaned is not None:  # a batch scans each folder once, not once per file
            cleaned.add(folder)
    others = other_stem_paths(path, out_dir, track, model_name, model.sources, output,
                              known_sources() if known is None else known)
    if skip_or_refuse(targets, others, output):
        return FileResult(path, track, outputs=targets, model=model_name, skipped=True)
    with AudioReader(path) as reader:
        info = reader.info
        try:
            staging.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DeepsepError(f"cannot create output folder {staging}: {_reason(e)}") from None
        writers: list[StemWriter] = []
        try:
            for final in targets.values():
                writers.append(StemWriter(final, info.sample_rate, info.channels, staging))
        except (OSError, RuntimeError) as e:
            for w in writers:
                w.discard()
            raise DeepsepError(f"cannot write in output folder {staging}: {_reason(e)}") from None
        try:
            frames, peak = _stream(model, reader, writers, matrix, engine, progress, block_seconds)
            if peak == 0.0:
                raise AudioError(f"{path}: the audio is digital silence, there is nothing to separate")
            out_peak = max(w.peak for w in writers)
            scale = 1.0
            if output.clip == "rescale" and out_peak > 1.0:
                scale = 1.0 / (1.01 * out_peak)  # one gain for all stems keeps their sum consistent
            for w in writers:
                w.convert(frames, major, subtype, scale, clamp=output.clip == "clamp", mp3_bitrate=output.mp3_bitrate or 320)
            _commit(writers)
        except BaseException:
            for w in writers:
                w.discard()
            raise
    result = FileResult(path, track, frames / info.sample_rate, time.perf_counter() - start, targets, model=model_name,
                        warnings=reader.warnings)
    result.gain_db = float(20 * np.log10(scale)) if scale != 1.0 else 0.0
    return result


def _commit(writers: Sequence[StemWriter]) -> None:
    """Rename every complete stem to its final name, creating its folder only now. SIGINT and
    SIGTERM wait until the renames are done, so that a file's stems appear together."""
    with signals_deferred():
        for folder in dict.fromkeys(w.final.parent for w in writers):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise DeepsepError(f"cannot create output folder {folder}: {_reason(e)}") from None
        for w in writers:
            try:
                w.commit()
            except OSError as e:
                raise DeepsepError(f"cannot write {w.final}: {_reason(e)}") from None


def separate_files(
    models: ModelCache,
    files: Sequence[tuple[Path, str]],
    out_dir: Path,
    output: OutputOptions = OutputOptions(),
    engine: EngineOptions = EngineOptions(),
    progress_for: Callable[[Path, str], ProgressFn | None] | None = None,
    jobs: int = 1,
) -> Iterator[FileResult]:
    """Separate a batch of (file, track name) pairs (:func:`plan_inputs`), yielding each file's
    result in the batch's order: a file that fails has its ``error`` set and the batch goes on.
    ``progress_for(file, track)`` gives the progress callback of a file as it starts.

    ``jobs`` > 1 separates that many files at once, in threads that share the loaded models
    (PyTorch, soxr and libsndfile work outside Python's lock). If the caller stops early (an
    exception, e.g. :class:`Interrupted`, in the thread that iterates), the files under way stop
    at their next block, remove their hidden files, and are waited for.
    """
    known = known_sources(models.manifest, models.loaded.values())
    cleaned: set[Path] = set()
    stop = threading.Event()

    def one(path: Path, track: str) -> FileResult:
        name = ""
        progress = progress_for(path, track) if progress_for else None
        if jobs > 1:
            progress = _stoppable(progress, stop)
        try:
            name, model = models.for_file(path)
            return separate_file(model, path, out_dir, output, engine, track=track, progress=progress,
                                 model_name=name, known=known, cleaned=cleaned)
        except DeepsepError as e:
            return FileResult(path, track, model=name, error=str(e))
        except Exception as e:  # an unexpected failure on one file: report it, go on with the others
            detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
            return FileResult(path, track, model=name, error=f"{path}: {type(e).__name__}: {detail}")

    if jobs <= 1:
        for path, track in files:
            yield one(path, track)
        return
    from concurrent.futures import ThreadPoolExecutor, wait

    with ThreadPoolExecutor(jobs, thread_name_prefix="deepsep-job") as pool:
        futures = [pool.submit(one, path, track) for path, track in files]
        try:
            for future in futures:
                yield future.result()
        finally:  # stopped early (or done): files not started never start, those under way stop and clean up
            stop.set()
            for future in futures:
                future.cancel()
            wait(futures)


class Stopped(Exception):
    """A batch stopped while this file was under way (its hidden files are removed)."""


def _stoppable(progress: ProgressFn | None, stop: threading.Event) -> ProgressFn:
    """``progress``, raising :class:`Stopped` once ``stop`` is set (the stream calls it every block)."""

    def call(done: int, total: int | None) -> None:
        if stop.is_set():
            raise Stopped("the batch was stopped")
        if progress is not None:
            progress(done, total)

    return call


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised where the program was (see :func:`interrupts_raise`), so that the
    hidden files of the file being written are removed on the way out."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by the signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def interrupts_raise() -> Iterator[None]:
    """Inside, SIGINT and SIGTERM raise :class:`Interrupted`; the first one only: later ones are
    ignored while the program cleans up. Outside the main thread, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        for s in INTERRUPTS:
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in INTERRUPTS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive inside are delivered on the way out (where the OS can hold them)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


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
    model: SeparationModel, source: Path | ArrayReader, engine: EngineOptions = EngineOptions(),
    block_seconds: float = 5.0,
) -> tuple[np.ndarray, int]:
    """The model's sources for a file (or a signal in memory, as an :class:`ArrayReader`), in
    memory: ((sources, channels, time), sample rate).

    The same path as :func:`separate_file` (same reading, resampling and segmenting), for
    evaluation and plots; memory grows with the file, so keep it to test items.
    """
    matrix = np.eye(len(model.sources), dtype=np.float32)
    sinks = [ArraySink() for _ in model.sources]
    if isinstance(source, ArrayReader):
        frames, _ = _stream(model, source, sinks, matrix, engine, None, block_seconds)
        return np.stack([s.array(frames) for s in sinks]), source.info.sample_rate
    with AudioReader(source) as reader:
        frames, _ = _stream(model, reader, sinks, matrix, engine, None, block_seconds)
        return np.stack([s.array(frames) for s in sinks]), reader.info.sample_rate


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


def separate_array(
    model: SeparationModel, audio: np.ndarray | torch.Tensor, sample_rate: int, engine: EngineOptions = EngineOptions(),
) -> dict[str, np.ndarray | torch.Tensor]:
    """Separate a signal in memory: {source: stem}, each shaped and typed like ``audio``.

    ``audio``: (time,) or (channels, time), a numpy array or a torch tensor, at ``sample_rate``
    Hz, any rate and channel count. The pipeline of :func:`separate_file` (resampling to the
    model's rate and back, fitting channels, overlapping segments, what the model cannot hear to
    its last source), so the stems add up to ``audio``.
    """
    is_torch = isinstance(audio, torch.Tensor)
    x = audio.detach().cpu().numpy() if is_torch else np.asarray(audio)
    if x.ndim not in (1, 2) or x.size == 0 or not np.issubdtype(x.dtype, np.number):
        raise AudioError(f"audio must be a non-empty (time,) or (channels, time) array of numbers, not shape {x.shape}")
    if not np.isfinite(x).all():
        raise AudioError("audio holds NaN or infinite samples")
    if sample_rate < 1:
        raise AudioError(f"sample_rate must be a positive number of Hz, not {sample_rate}")
    mono = x.ndim == 1
    x = np.ascontiguousarray(x[None] if mono else x, dtype=np.float32)
    sinks = [ArraySink() for _ in model.sources]
    frames, _ = _stream(model, ArrayReader(x, int(sample_rate)), sinks, np.eye(len(model.sources), dtype=np.float32),
                        engine, None, 5.0)
    stems = {name: sink.array(frames)[0] if mono else sink.array(frames) for name, sink in zip(model.sources, sinks)}
    return {k: torch.from_numpy(v) for k, v in stems.items()} if is_torch else stems


def _stream(
    model: SeparationModel,
    reader: AudioReader | ArrayReader,
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
