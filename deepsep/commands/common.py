"""Options that several commands share: the data root and where exports go."""

from __future__ import annotations

from pathlib import Path

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


def default_under_root(given: dict[str, str | None], relative: dict[str, str], root: Path | None) -> dict[str, str]:
    """``given`` (option -> value or None) with each missing value taken from ``relative``
    (option -> path under the data root); the root is checked only when a default is needed."""
    out = {}
    for key, rel in relative.items():
        value = given.get(key)
        out[key] = value if value is not None else str(data_root(root, check=True) / rel)
    return out
