"""The files of a batch: inputs as given (folders expanded), their track names (made distinct),
and what the batch leaves out."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .audio import AUDIO_EXTENSIONS, FFMPEG_SUFFIXES, AudioReader
from .errors import DeepsepError, UsageError
from .options import OutputOptions
from .outputs import filename_fields

#: the suffixes of the files a folder input gives: every one the reader reads (libsndfile's, and the
#: containers it hands to ffmpeg), so that a file separated when named is not left out of its folder
INPUT_SUFFIXES = frozenset(AUDIO_EXTENSIONS | FFMPEG_SUFFIXES)


def collect_inputs(paths: Iterable[str | Path], out_dir: Path | None = None) -> list[Path]:
    """Files as given, folders expanded to their audio files (recursively, sorted; not hidden files or
    folders (.Trash, .cache), nor what is inside the output folder ``out_dir``: an earlier run's
    stems), each file once: the first of the paths that resolve to it (``call.wav ./call.wav``, a
    file given and in a folder given)."""
    skip = out_dir.resolve() if out_dir is not None else None
    found: list[Path] = []
    seen: set[Path] = set()
    for p in map(Path, paths):
        for f in sorted(_folder_files(p, skip)) if p.is_dir() else (p,):
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                found.append(f)
    return found


def _folder_files(folder: Path, skip: Path | None) -> Iterator[Path]:
    """The audio files under ``folder`` but not under the folder ``skip`` (resolved) when that is inside
    it: an output folder that holds ``folder`` (``-o .``) leaves it whole."""
    for top, dirs, names in os.walk(folder):  # links to folders are not followed, as Path.rglob does
        dirs[:] = [d for d in dirs if not d.startswith(".") and (skip is None or Path(top, d).resolve() != skip)]
        for name in names:
            f = Path(top, name)
            if f.suffix.lower() in INPUT_SUFFIXES and not name.startswith(".") and f.is_file():
                yield f


def input_files(paths: Sequence[str | Path], input_dir: str | None = None, out_dir: Path | None = None) -> list[Path]:
    """The files to separate (:func:`collect_inputs`): ``paths`` (folders expanded) and those of the
    folder ``input_dir`` (:func:`input_folder`), without the output folder ``out_dir``'s files; a
    DeepsepError when there are none."""
    if input_dir:
        paths = (*paths, input_folder(input_dir))
    if not paths:
        raise DeepsepError("nothing to separate: give audio files or folders, or --input DIR")
    files = collect_inputs(paths, out_dir)
    if not files:
        raise DeepsepError(f"no audio files in {', '.join(map(str, paths))}")
    return files


def input_folder(name: str) -> Path:
    """The folder of ``--input NAME``: NAME, or for 'custom' without a folder of that name, ./input (the
    README's quick start); a DeepsepError when it is not a folder."""
    folder = Path(name)
    if name == "custom" and not folder.is_dir():
        if Path("input").is_dir():
            return Path("input")
        raise DeepsepError("input folder not found: custom (nor ./input, which --input custom means when there "
                           "is no folder ./custom)")
    if folder.is_dir():
        return folder
    if folder.exists():
        raise DeepsepError(f"--input {name}: not a folder (give files as arguments, without --input)")
    raise DeepsepError(f"input folder not found: {folder}")


def unique_tracks(files: Sequence[Path], per_folder: bool = False) -> list[str]:
    """Track names (:func:`track_name`), distinct across the batch, or only among files of the same
    folder (``per_folder``). A name that several inputs share goes to none of them: each takes its next
    longer name (:func:`track_names`), which depends on the file alone (song.wav, song.flac ->
    song_wav, song_flac; a/call.wav, b/call.wav -> call_wav_a, call_wav_b). So no file gets a name that
    another file would have alone, and files added to a batch never make an earlier run's outputs
    (--skip-existing) pass for those of another input."""
    options = [track_names(f) for f in files]
    folders = [_absolute(f).parent if per_folder else None for f in files]
    level = [0] * len(files)
    while True:
        keys = [(folder, names[i]) for folder, names, i in zip(folders, options, level)]
        count = Counter(keys)
        clashing = [j for j, key in enumerate(keys) if count[key] > 1 and level[j] < len(options[j]) - 1]
        if not clashing:
            break
        for j in clashing:
            level[j] += 1
    names, seen = [], set()
    for key in keys:  # left: the same file given twice (inputs are distinct files from collect_inputs)
        name, i = key[1], 2
        while (key[0], name) in seen:
            name, i = f"{key[1]}_{i}", i + 1
        seen.add((key[0], name))
        names.append(name)
    return names


def track_names(path: Path) -> list[str]:
    """A file's track names, shortest first, each from the file alone: 'song' (:func:`track_name`),
    with its extension ('song_wav'; 'x.stem.mp4' -> 'x_stem_mp4'), its folder's name ('song_wav_a'),
    and 8 hex digits of the SHA-1 of its absolute path ('song_wav_a_0123abcd')."""
    name = track_name(path)
    names = [name]
    ext = path.name[len(name):].strip(".").replace(".", "_")
    if ext:
        names.append(f"{name}_{ext}")
    absolute = _absolute(path)
    if absolute.parent.name:
        names.append(f"{names[-1]}_{absolute.parent.name}")
    names.append(f"{names[-1]}_{hashlib.sha1(os.fsencode(absolute)).hexdigest()[:8]}")
    return names


def plan_inputs(files: Sequence[Path], output: OutputOptions) -> tuple[list[tuple[Path, str]], list[Path]]:
    """The batch as (file, track name) pairs, and the files left out: with ``--suffix``, inputs named
    like the output of another input, under any of its :func:`track_names` (``call_clean.wav`` or ``.flac``
    beside ``call.flac``, ``call_wav_clean.wav`` beside ``call.wav``: an earlier run's).
    A UsageError when several files would share their outputs (a --filename without {track})."""
    dropped: list[Path] = []
    if output.suffix is not None:  # in any format: an earlier run may have written another
        outs = {_absolute(f.parent / f"{name}{output.suffix}") for f in files for name in track_names(f)}
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
