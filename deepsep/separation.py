"""Separating files: read, separate (:mod:`deepsep.pipeline`), write, one file at a time or a
batch in threads (``-j``).

Memory stays bounded whatever the file's length: the input is read in blocks, separated in
blocks and written in blocks to hidden temporary files that are renamed only once every stem of
the file is complete. Outputs go where :mod:`deepsep.outputs` says; SIGINT/SIGTERM (see
:func:`~deepsep.interrupts.interrupts_raise`) remove the hidden files on the way out.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection, Generator, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .audio import AudioInfo, AudioReader, StemWriter, remove_stale_partials, subtype_for
from .errors import DeepsepError
from .inputs import track_name
from .interrupts import signals_deferred
from .modelcache import ModelCache
from .models.base import SeparationModel
from .options import DEFAULT_ENGINE, DEFAULT_OUTPUT, EngineOptions, OutputOptions, ProgressFn
from .outputs import (
    FileResult,
    check_output,
    known_sources,
    other_stem_paths,
    output_paths,
    refuse_input_as_output,
    same_file,
    skip_or_refuse,
    spectrogram_path,
)
from .pipeline import stream
from .stems import stem_matrix


def separate_file(
    model: SeparationModel,
    path: str | Path,
    out_dir: str | Path,
    output: OutputOptions = DEFAULT_OUTPUT,
    engine: EngineOptions = DEFAULT_ENGINE,
    track: str | None = None,
    progress: ProgressFn | None = None,
    block_seconds: float = 5.0,
    model_name: str = "model",
    known: Collection[str] | None = None,
    cleaned: set[Path] | None = None,
) -> FileResult:
    """Separate one file into the paths of :func:`~deepsep.outputs.output_paths` (default
    ``out_dir/<track>/<stem>.<fmt>``); raise DeepsepError on bad input, and on outputs that exist
    (see :func:`~deepsep.outputs.skip_or_refuse`; ``known``: the source names of other models,
    default those of :func:`~deepsep.outputs.known_sources`), and on an output that is the input
    itself, even with --overwrite. ``model_name`` is the model's name for --filename's {model}.
    With --overwrite, the stems of another model in the track's folder (and its spectrograms.png,
    which shows them) are removed once the new stems are in place, with a warning.

    Outputs keep the input's sample rate and channel count. Stems are written to hidden files in
    the output folder (``out_dir``; with --suffix the input's folder) and renamed together when
    all are complete, so that a track folder appears only then. On any error, or SIGINT/SIGTERM
    (see :func:`~deepsep.interrupts.interrupts_raise`), the hidden files are removed and earlier
    outputs under the final names are left as they were. Hidden files that killed runs left in
    these folders are removed first (``cleaned``: folders a batch has already scanned, skipped and
    added to).
    """
    start = time.perf_counter()
    path, out_dir = Path(path), Path(out_dir)
    check_output(output, model.sources)
    _, matrix = stem_matrix(model.sources, output)
    track = track or track_name(path)
    targets, others = _targets(model, path, out_dir, track, model_name, output, known)
    staging = path.parent if output.suffix is not None else out_dir
    _remove_partials({staging, *(p.parent for p in targets.values())}, cleaned)
    refuse_input_as_output(path, targets.values())
    if skip_or_refuse(targets, others, output):
        return FileResult(path, track, outputs=targets, model=model_name, skipped=True)
    stale = _stale_outputs(path, out_dir, track, model_name, others, output)
    with AudioReader(path) as reader:
        writers = _open_writers(targets, reader.info, staging)
        try:
            frames, peak = stream(model, reader, writers, matrix, engine, progress, block_seconds)
            scale, notes = _write_outputs(writers, frames, output, stale)
            if peak == 0.0:  # as in Demucs: a batch goes on, and silence separates into silent stems
                notes.insert(0, f"{path}: the audio is digital silence: its stems are silent")
        except BaseException:
            for w in writers:
                w.discard()
            raise
    result = FileResult(path, track, frames / reader.info.sample_rate, time.perf_counter() - start, targets,
                        model=model_name, warnings=[*reader.warnings, *notes])
    result.gain_db = float(20 * np.log10(scale)) if scale != 1.0 else 0.0
    return result


def _targets(model: SeparationModel, path: Path, out_dir: Path, track: str, model_name: str, output: OutputOptions,
             known: Collection[str] | None) -> tuple[dict[str, Path], list[Path]]:
    """A file's stem paths, and where stems of the ``known`` sources that the model lacks would be
    (see :func:`~deepsep.outputs.other_stem_paths`)."""
    names, _ = stem_matrix(model.sources, output)
    targets = output_paths(path, out_dir, track, model_name, names, output)
    others = other_stem_paths(path, out_dir, track, model_name, model.sources, output,
                              known_sources() if known is None else known)
    return targets, others


def finished_result(models: ModelCache, path: Path, track: str, out_dir: Path, output: OutputOptions,
                    known: Collection[str] | None = None) -> FileResult | None:
    """The skipped result of a file whose outputs all exist under --skip-existing (the rule of
    :func:`separate_file`, checked without reading the audio), or None: the file is to be separated
    (or fails there, with its error)."""
    if output.existing != "skip":
        return None
    try:
        name, model = models.for_file(path)
        targets, others = _targets(model, path, out_dir, track, name, output, known)
        refuse_input_as_output(path, targets.values())
        if skip_or_refuse(targets, others, output):
            return FileResult(path, track, outputs=targets, model=name, skipped=True)
    except DeepsepError:
        pass
    return None


def _stale_outputs(path: Path, out_dir: Path, track: str, model_name: str, others: Iterable[Path],
                   output: OutputOptions) -> list[Path]:
    """What --overwrite removes besides the stems it replaces: the stems of another model found in
    the track's folder (``others``, never the input itself) and, with them, the track's
    spectrograms.png, which pictures them; nothing without --overwrite."""
    if output.existing != "overwrite":
        return []
    found = [p for p in others if os.path.lexists(p) and not same_file(p, path)]
    if not found or output.suffix is not None:
        return found
    plot = spectrogram_path(FileResult(path, track, model=model_name), out_dir, output)
    return [*found, plot] if os.path.lexists(plot) and not os.path.isdir(plot) else found


def _remove_partials(folders: set[Path], cleaned: set[Path] | None) -> None:
    """Remove the hidden files that killed runs left in ``folders``, but for those already
    ``cleaned`` (a batch scans each folder once, not once per file; added to)."""
    for folder in folders - (cleaned if cleaned is not None else set()):
        remove_stale_partials(folder)
        if cleaned is not None:
            cleaned.add(folder)


def _open_writers(targets: Mapping[str, Path], info: AudioInfo, staging: Path) -> list[StemWriter]:
    """A hidden-file writer in ``staging`` for each stem's final path, at the input's rate and
    channels; a DeepsepError (and nothing left behind) when the folder cannot be written."""
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
    return writers


def output_gain(peak: float, clip: str) -> float:
    """The one gain applied to all stems (which keeps their sum consistent): below 1 when
    ``clip`` is 'rescale' and the stems' ``peak`` is over full scale, else 1."""
    return 1.0 / (1.01 * peak) if clip == "rescale" and peak > 1.0 else 1.0


def _write_outputs(writers: Sequence[StemWriter], frames: int, output: OutputOptions,
                   stale: Sequence[Path] = ()) -> tuple[float, list[str]]:
    """Convert the hidden float files to the output format and rename them together (removing
    ``stale``, see :func:`_commit`); the gain applied, and the warnings of the removal."""
    major, subtype = subtype_for(output.fmt, output.bits)
    scale = output_gain(max(w.peak for w in writers), output.clip)
    for w in writers:
        w.convert(frames, major, subtype, scale, clamp=output.clip == "clamp", mp3_bitrate=output.mp3_bitrate or 320)
    return scale, _commit(writers, stale)


def _commit(writers: Sequence[StemWriter], stale: Sequence[Path] = ()) -> list[str]:
    """Rename every complete stem to its final name, creating its folder only now, then remove the
    ``stale`` outputs of another model; warnings that name those removed and those that cannot be.
    SIGINT and SIGTERM wait until this is done, so that a file's stems appear together, and the
    stale ones go with them."""
    notes: list[str] = []
    removed: list[Path] = []
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
        for p in stale:
            try:
                p.unlink()
                removed.append(p)
            except FileNotFoundError:
                pass
            except OSError as e:
                notes.append(f"cannot remove {p}, an output of another model: {_reason(e)}")
    if removed:
        folder = Path(os.path.commonpath([p.parent for p in removed]))
        notes.insert(0, f"--overwrite: removed the outputs of another model from {folder}: "
                        f"{', '.join(sorted(str(p.relative_to(folder)) for p in removed))}")
    return notes


def separate_files(
    models: ModelCache,
    files: Iterable[tuple[Path, str]],
    out_dir: Path,
    output: OutputOptions = DEFAULT_OUTPUT,
    engine: EngineOptions = DEFAULT_ENGINE,
    progress_for: Callable[[Path, str], ProgressFn | None] | None = None,
    jobs: int = 1,
) -> Generator[FileResult, None, None]:
    """Separate a batch of (file, track name) pairs (:func:`~deepsep.inputs.plan_inputs`), yielding
    each file's result in the batch's order: a file that fails has its ``error`` set and the batch
    goes on. ``progress_for(file, track)`` gives the progress callback of a file as it starts.

    ``jobs`` > 1 separates that many files at once, in threads that share the loaded models
    (PyTorch, soxr and libsndfile work outside Python's lock). If the caller stops early (an
    exception, e.g. :class:`~deepsep.interrupts.Interrupted`, in the thread that iterates), the
    files under way stop at their next block, remove their hidden files, and are waited for.
    """
    known = known_sources(models.manifest, models.loaded.values())
    cleaned: set[Path] = set()
    stop = threading.Event()

    def one(path: Path, track: str) -> FileResult:
        progress = progress_for(path, track) if progress_for else None
        if jobs > 1:
            progress = stoppable(progress, stop)
        return separate_batch_file(models, path, track, out_dir, output, engine, progress, known, cleaned)

    if jobs <= 1:
        for path, track in files:
            yield one(path, track)
        return
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(jobs, thread_name_prefix="deepsep-job")
    futures = []
    try:  # the submissions too: a signal may come while the first files already run
        for path, track in files:
            futures.append(pool.submit(one, path, track))
        for future in futures:
            yield future.result()
    finally:  # stopped early (or done): files not started never start, those under way stop and clean up
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def separate_batch_file(models: ModelCache, path: Path, track: str, out_dir: Path, output: OutputOptions,
                        engine: EngineOptions, progress: ProgressFn | None, known: Collection[str],
                        cleaned: set[Path]) -> FileResult:
    """One file of a batch (:func:`separate_file` with the model ``models`` picks for it): its
    result, with ``error`` set when it fails, so that the batch goes on."""
    name = ""
    try:
        name, model = models.for_file(path)
        return separate_file(model, path, out_dir, output, engine, track=track, progress=progress,
                             model_name=name, known=known, cleaned=cleaned)
    except DeepsepError as e:
        return FileResult(path, track, model=name, error=str(e))
    except Exception as e:  # an unexpected failure on one file: report it, go on with the others
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return FileResult(path, track, model=name, error=f"{path}: {type(e).__name__}: {detail}")


class Stopped(Exception):
    """A batch stopped while this file was under way (its hidden files are removed)."""


def stoppable(progress: ProgressFn | None, stop: threading.Event) -> ProgressFn:
    """``progress``, raising :class:`Stopped` once ``stop`` is set (the stream calls it every block)."""

    def call(done: int, total: int | None) -> None:
        if stop.is_set():
            raise Stopped("the batch was stopped")
        if progress is not None:
            progress(done, total)

    return call


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e).strip().splitlines()[0]
