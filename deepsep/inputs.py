"""The files of a batch: inputs as given (folders expanded), their track names (made distinct),
and what the batch leaves out."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .audio import AUDIO_EXTENSIONS, AudioReader
from .errors import DeepsepError, UsageError
from .options import OutputOptions
from .outputs import filename_fields


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


def input_rate(path: Path) -> int:
    """The sample rate of an audio file (read from its header)."""
    with AudioReader(path) as reader:
        return reader.info.sample_rate


def input_content_rate(path: Path) -> int:
    """The rate whose band holds an audio file's content, judged on its first 30 s (see
    :func:`deepsep.dsp.content_rate`): 8000 for telephone-band speech stored at 44.1 kHz."""
    import numpy as np
    import torch

    from .dsp import CONTENT_SECONDS, content_rate

    with AudioReader(path) as reader:
        rate, wanted, blocks, have = reader.info.sample_rate, int(CONTENT_SECONDS * reader.info.sample_rate), [], 0
        for block in reader.blocks(min(wanted, 1 << 16)):
            blocks.append(block)
            have += block.shape[-1]
            if have >= wanted:
                break
    return content_rate(torch.from_numpy(np.concatenate(blocks, axis=-1)[:, :wanted]), rate)
