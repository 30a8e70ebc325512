"""SIGINT and SIGTERM during a separation: raised where the program was, so that the hidden files
of the file being written are removed on the way out, and held back while a file's stems are
renamed, so that they appear together."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised where the program was (see :func:`interrupts_raise`), so that the
    hidden files of the file being written are removed on the way out."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by the signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def interrupts_raise() -> Iterator[None]:
    """Inside, SIGINT and SIGTERM raise :class:`Interrupted`; the first one only: later ones are
    ignored while the program cleans up. A library that turns it into a KeyboardInterrupt of its
    own (Ray, waiting for its workers) has it raised again as :class:`Interrupted` on the way out.
    Outside the main thread, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        for s in INTERRUPTS:
            signal.signal(s, signal.SIG_IGN)
        received.append(signum)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in INTERRUPTS}
    try:
        yield
    except KeyboardInterrupt as e:
        if received and not isinstance(e, Interrupted):
            raise Interrupted(received[0]) from None
        raise
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive inside are delivered on the way out (where the OS can hold them)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
