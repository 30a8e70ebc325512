"""`deepsep data prepare`: build the named test sets that `deepsep eval --dataset NAME` finds."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click

from .. import paths
from ..console import reported
from .common import data_root_option

#: seed of the speech test sets: their excerpts, noise pairings and rooms differ from those of the
#: sets that training validates on and picks checkpoints with (``VALID_SEED``: runs/voice-valid,
#: runs/voice16-valid), drawn from the same valid folders
TEST_SEED = 4321


def prepare_speech(shared: Path, out: Path) -> Path:
    """``out`` = 8 kHz mixtures: every ``speech/valid`` file at -5, 0, 5, 10 dB in ``noise/valid``
    noise, three excerpts each, 4 s, seed 4321 (until session 21 this was the training's validation
    set itself, seed 1234, one excerpt each)."""
    from ..train.validation import build_validation_set

    return build_validation_set(shared / "speech" / "valid", shared / "noise" / "valid", out, per_file=3,
                                seed=TEST_SEED)


def prepare_speech16(shared: Path, out: Path) -> Path:
    """``out`` = wide-band mixtures at 16 kHz: every ``wideband/speech/valid`` file at -5, 0, 5, 10 dB
    in ``wideband/noise/valid`` noise, 4 s, a quarter of them reverberant (simulated rooms that
    training never sees), seed 4321."""
    from ..train.validation import build_validation_set

    wide = shared / "wideband"
    return build_validation_set(wide / "speech" / "valid", wide / "noise" / "valid", out, sample_rate=16000,
                                p_reverb=0.25, seed=TEST_SEED)


def prepare_music(shared: Path, out: Path) -> Path:
    """``out`` = links to the music tracks that training holds out (the same seeded split): to
    their track folders (or ``.stem.mp4`` files where MUSDB18's native layout is used)."""
    from ..musdb import SHARED_MUSDB7, find_tracks, split_tracks

    tracks = {t.name: t for t in find_tracks(shared / SHARED_MUSDB7)}
    _, valid = split_tracks(list(tracks))
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in valid:
        src = tracks[name].location
        dst = tmp / (src.name if tracks[name].stem_mp4 is not None else name)
        try:
            os.symlink(src.resolve(), dst, target_is_directory=src.is_dir())
        except OSError:
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


@click.command("prepare")
@data_root_option
@click.option("--sets", "sets_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Where the named test sets are written [default: ${paths.SETS_ENV}, else data].")
@click.option("--only", type=click.Choice(["speech", "speech16", "music"]), help="Build only one of them.")
def prepare(data_root: Path | None, sets_dir: Path | None, only: str | None) -> None:
    """Build `test` (8 kHz speech, from the valid folders), `test16` (16 kHz speech, from
    wideband/ valid, some reverberant) and `music-test` (held-out MUSDB tracks)."""
    with reported():
        shared = paths.data_root(data_root, check=True)
    sets = paths.sets_root(sets_dir)
    if only in (None, "speech"):
        path = prepare_speech(shared, sets / "test")
        click.echo(f"test (speech, {sum(1 for _ in path.glob('[0-9]*'))} mixtures): {path}")
    if only in (None, "speech16"):
        path = prepare_speech16(shared, sets / "test16")
        click.echo(f"test16 (wide-band speech, {sum(1 for _ in path.glob('[0-9]*'))} mixtures): {path}")
    if only in (None, "music"):
        path = prepare_music(shared, sets / "music-test")
        click.echo(f"music-test ({sum(1 for _ in path.iterdir())} tracks): {path}")
