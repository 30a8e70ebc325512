"""Options that several commands share: the data root, where exports go, earlier training stages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..paths import DATA_ENV, data_root

#: ``--data-root DIR`` (or ``$DEEPSEP_DATA``): the folder every default data path is under
data_root_option = click.option(
    "--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
    help=f"The training data folder that default paths are under (speech/, noise/, wideband/, music/) "
         f"[default: ${DATA_ENV}, else ../shared/data where it exists].")

#: ``--export-to DIR``: where ``--export NAME`` writes (default: the run folder)
export_to_option = click.option(
    "--export-to", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where --export writes NAME.safetensors, its .sha256 and a weights_manifest.json entry "
         "[default: the run folder; deepsep/pretrained: the package's weights and the repository's manifest].")


def _earlier_stages(ctx: click.Context, param: click.Parameter, value: Path | None) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    try:
        stages = json.loads(value.read_text())
    except json.JSONDecodeError as e:
        raise click.BadParameter(f"{value}: not JSON ({e})") from None
    if not isinstance(stages, list) or not all(isinstance(s, dict) and "command" in s for s in stages):
        raise click.BadParameter(f'{value}: want a JSON list of {{"command": ...}} objects')
    return stages


#: ``--earlier-stages FILE``: the stages behind an ``--init`` checkpoint file, for the manifest
earlier_stages_option = click.option(
    "--earlier-stages", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    callback=_earlier_stages,
    help="A JSON list of the training stages before this checkpoint's (each {command, minutes, steps, init}), "
         "where it started from a checkpoint file rather than a manifest model.")


def default_under_root(given: dict[str, str | None], relative: dict[str, str], root: Path | None) -> dict[str, str]:
    """``given`` (option -> value or None) with each missing value taken from ``relative``
    (option -> path under the data root); the root is checked only when a default is needed."""
    out = {}
    for key, rel in relative.items():
        value = given.get(key)
        out[key] = value if value is not None else str(data_root(root, check=True) / rel)
    return out


def echo_start(rec: dict[str, Any]) -> None:
    """What a training's start event tells the user: the config fields in which the run differs
    from its ``--init`` weights (which were loaded into it all the same)."""
    if rec.get("event") == "start" and rec.get("init_changes"):
        click.echo(f"--init: the run's config differs ({'; '.join(rec['init_changes'])}); "
                   "the weights are loaded into it", err=True)
