"""`deepsep data prepare`: build the named test sets that `deepsep eval --dataset NAME` finds."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click

DEFAULT_SHARED = Path("..") / "shared" / "data"


def prepare_speech(shared: Path, out: Path) -> Path:
    """``out`` = the voice validation mixtures (every valid speech file at -5, 0, 5, 10 dB, 4 s,
    seed 1234): the very set that training validates on, so eval and training agree."""
    from ..train.validation import build_validation_set

    return build_validation_set(shared / "speech" / "valid", shared / "noise" / "valid", out)


def prepare_music(shared: Path, out: Path) -> Path:
    """``out`` = links to the music tracks that training holds out (the same seeded split)."""
    from ..musdb import find_tracks, split_tracks

    tracks = {t.name: t for t in find_tracks(shared / "musdb7" / "train")}
    _, valid = split_tracks(list(tracks))
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in valid:
        src = tracks[name].stem_mp4
        assert src is not None
        dst = tmp / src.name
        try:
            os.symlink(src.resolve(), dst)
        except OSError:
            shutil.copy2(src, dst)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


@click.command("prepare")
@click.option("--shared", type=click.Path(path_type=Path), default=DEFAULT_SHARED, show_default=True,
              help="The training data folder (speech/, noise/, musdb7/).")
@click.option("--data-root", type=click.Path(path_type=Path), default=Path("data"), show_default=True,
              envvar="DEEPSEP_DATA", help="Where the named test sets are written.")
@click.option("--only", type=click.Choice(["speech", "music"]), help="Build only one of the two.")
def prepare(shared: Path, data_root: Path, only: str | None) -> None:
    """Build `test` (speech, from the valid folders) and `music-test` (held-out MUSDB tracks)."""
    if not shared.is_dir():
        raise click.ClickException(f"data folder not found: {shared} (give --shared)")
    if only in (None, "speech"):
        path = prepare_speech(shared, data_root / "test")
        click.echo(f"test (speech, {sum(1 for _ in path.glob('[0-9]*'))} mixtures): {path}")
    if only in (None, "music"):
        path = prepare_music(shared, data_root / "music-test")
        click.echo(f"music-test ({sum(1 for _ in path.iterdir())} tracks): {path}")
