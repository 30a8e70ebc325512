"""The folders deepsep's commands default to, set in one place.

- The **data root**: the real audio that training and ``deepsep data`` read (speech, noise,
  wideband, music). ``--data-root DIR``, else ``$DEEPSEP_DATA``, else ``../shared/data`` where
  that folder exists (a checkout of the repository beside the shared data), else a clear error.
- The **test sets**: what ``deepsep data prepare`` builds and ``deepsep eval --dataset NAME``
  reads. ``--sets DIR``, else ``$DEEPSEP_SETS``, else ``data``.

And the **cache root** that what deepsep builds for itself goes under (decoded tracks, simulated
rooms, drum renders, Debian packages): ``$DEEPSEP_CACHE``, else ``~/.cache/deepsep``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UsageError

DATA_ENV = "DEEPSEP_DATA"
DEFAULT_DATA = Path("..") / "shared" / "data"
SETS_ENV = "DEEPSEP_SETS"
DEFAULT_SETS = Path("data")
CACHE_ENV = "DEEPSEP_CACHE"


def data_root(given: str | Path | None = None, *, check: bool = False) -> Path:
    """The data root: ``given``, else ``$DEEPSEP_DATA``, else ``../shared/data``.

    With ``check``, a root that does not exist is a :class:`UsageError` naming the ways to set it.
    """
    root = Path(given) if given else Path(os.environ[DATA_ENV]) if os.environ.get(DATA_ENV) else DEFAULT_DATA
    if check and not root.is_dir():
        how = "--data-root" if given else f"${DATA_ENV}" if os.environ.get(DATA_ENV) else "the default data root"
        raise UsageError(f"{how} {root} is not a folder: give --data-root DIR (or set {DATA_ENV}) where the "
                         "training data lies, or the data folders themselves")
    return root


def data_path(*parts: str | Path, root: str | Path | None = None) -> str:
    """A folder under the data root (not checked: readers say when a folder is missing)."""
    return str(data_root(root).joinpath(*parts))


def sets_root(given: str | Path | None = None) -> Path:
    """Where named test sets live: ``given``, else ``$DEEPSEP_SETS``, else ``data``."""
    return Path(given) if given else Path(os.environ[SETS_ENV]) if os.environ.get(SETS_ENV) else DEFAULT_SETS


def cache_root() -> Path:
    """Where deepsep keeps what it builds for itself: ``$DEEPSEP_CACHE``, else ``~/.cache/deepsep``."""
    return Path(os.environ[CACHE_ENV]) if os.environ.get(CACHE_ENV) else Path.home() / ".cache" / "deepsep"
