"""One-line errors and warnings on stderr, shared by the ``deepsep`` commands."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape

from .errors import DeepsepError, UsageError

err = Console(stderr=True)

#: --threads of `separate` and `eval`
THREADS_HELP = ("CPU threads for PyTorch (0: PyTorch's default, one per core) [default: 1 on the CPU, where more "
                "threads than free cores made runs on a busy machine many times slower].")


def fail(message: str, status: int = 1) -> None:
    """Print a one-line error and exit with ``status`` (1; 2 for a usage error). The message is plain
    text: brackets in it (a file named ``take [live].wav``) are printed as they are."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(status)


def warn(message: str) -> None:
    """Print a one-line warning (plain text, as :func:`fail`)."""
    err.print(f"[bold yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


@contextmanager
def reported() -> Iterator[None]:
    """Turn a DeepsepError raised inside into its one-line error: exit status 2 for a UsageError
    (options that cannot work, found before any work), 1 otherwise."""
    try:
        yield
    except DeepsepError as e:
        fail(str(e), status=2 if isinstance(e, UsageError) else 1)
