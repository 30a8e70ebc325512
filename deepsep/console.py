"""One-line errors and warnings on stderr, shared by the ``deepsep`` commands."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console, ConsoleDimensions
from rich.markup import escape

from .errors import DeepsepError, UsageError

#: the columns that output to a pipe or a file is laid out in (unless $COLUMNS says): wide enough that
#: no line or table row is wrapped. Rich's own choice there is the width of a terminal the process
#: may have on another stream, else 80, which cut model names (voice16-unet-4 / 8k) and values
#: (SDR 4.6 / dB) in two for whatever reads the pipe.
PIPE_WIDTH = 1000


class PipeConsole(Console):
    """A Rich console that lays out output that is not a terminal PIPE_WIDTH columns wide, unless a
    width is given (``width=``, $COLUMNS); a terminal gets its own width, as with Rich. Decided at
    each use, so that it follows the stream written to (``sys.stdout`` as it is then)."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and "COLUMNS" not in self._environ and not self.is_terminal:
            return ConsoleDimensions(PIPE_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


#: standard output (results: tables, lists) and standard error (progress, warnings, errors)
out = PipeConsole()
err = PipeConsole(stderr=True)

#: --threads of `separate` and `eval`
THREADS_HELP = ("CPU threads for PyTorch (0: PyTorch's default, one per core) [default: 1 on the CPU, where more "
                "threads than free cores made runs on a busy machine many times slower].")
SHIFTS_HELP = ("Separate each segment N times at offsets within one model frame (a stereo model hears every second "
               "pass with left and right swapped) and average (N times slower, slightly better).")


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
