"""Accompaniment songs written by MMA (Musical MIDI Accompaniment, Debian package ``mma``) from
chord charts that this module makes up: a groove of MMA's standard library (drums, bass, chords,
arpeggios... in a style: rock, bossa nova, swing, waltz), a common chord progression, a key and a
tempo, all drawn from one seeded stream. MMA turns each chart into a General MIDI song, which
:mod:`deepsep.midistems` renders per part into drums / bass / other stems (no melody: the vocals
stem is silent).

A chart, as MMA reads it (one bar a line, ``/`` repeats the chord on a beat)::

    Tempo 104
    Transpose -3
    Groove BossaNova
    1 C
    2 Am7
    ...
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DeepsepError

#: common progressions in C, one chord a bar (the chart repeats them; ``Transpose`` moves the key)
PROGRESSIONS: tuple[tuple[str, ...], ...] = (
    ("C", "G", "Am", "F"),
    ("Am", "F", "C", "G"),
    ("C", "Am", "F", "G"),
    ("C", "F", "C", "G"),
    ("C", "Em", "F", "G"),
    ("F", "G", "Em", "Am"),
    ("Dm7", "G7", "Cmaj7", "Cmaj7"),
    ("Cmaj7", "Am7", "Dm7", "G7"),
    ("Am", "Dm", "E7", "Am"),
    ("Am", "G", "F", "E7"),
    ("C7", "C7", "C7", "C7", "F7", "F7", "C7", "C7", "G7", "F7", "C7", "G7"),  # 12-bar blues
    ("C", "C", "F", "F", "G", "G", "C", "C"),
)
#: groove names that are not a song's main groove (intros, endings, fills, breaks, a metronome)
_NOT_MAIN = re.compile(r"intro|end|fill|break|metronome", re.IGNORECASE)
_DEFGROOVE = re.compile(r"^\s*defgroove\s+(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Chart:
    """One made-up song: its name (a file name) and its MMA text."""

    name: str
    text: str


def main_grooves(lib: Path) -> list[str]:
    """The main grooves that the ``.mma`` files of an MMA library folder define (``DefGroove``),
    sorted by name, without intros, endings, fills and breaks."""
    names = {m for f in lib.glob("*.mma") for m in _DEFGROOVE.findall(f.read_text(errors="replace"))}
    return sorted((n for n in names if not _NOT_MAIN.search(n)), key=str.lower)


def chart(groove: str, progression: Sequence[str], tempo: int, transpose: int, bars: int) -> str:
    """The MMA text of a song: ``groove`` playing ``progression`` over ``bars`` bars."""
    head = [f"Tempo {tempo}", f"Transpose {transpose}", f"Groove {groove}"]
    return "\n".join(head + [f"{i + 1} {progression[i % len(progression)]}" for i in range(bars)]) + "\n"


def make_charts(grooves: Sequence[str], count: int, seed: int = 0, bars: int = 24) -> list[Chart]:
    """``count`` charts on grooves spread evenly over ``grooves`` (all of them when there are
    fewer), each with a progression, a key (-5 to +6 semitones from C) and a tempo (70 to 150
    bpm) drawn from ``seed``."""
    if not grooves:
        raise DeepsepError("no MMA grooves to write songs with")
    rng = np.random.default_rng(seed)
    picks = np.linspace(0, len(grooves), num=count, endpoint=False).astype(int) if count < len(grooves) \
        else np.arange(count) % len(grooves)
    charts = []
    for i, g in enumerate(picks):
        progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
        text = chart(grooves[g], progression, int(rng.integers(70, 151)), int(rng.integers(-5, 7)), bars)
        charts.append(Chart(f"mma-{i:03d}-{grooves[g]}", text))
    return charts


class Mma:
    """The MMA program of an unpacked ``mma`` package: ``bin`` its ``usr/bin/mma`` script and
    ``home`` its ``usr/share/mma`` folder (modules, includes and the groove library), run with
    this Python (MMA is pure Python 3), at most ``cpu_seconds`` of CPU time a call (CPU, not wall
    time: a busy machine slows MMA down without making it wrong)."""

    def __init__(self, bin: Path, home: Path, cpu_seconds: int = 120):
        self.bin, self.home, self.cpu_seconds = bin, home, cpu_seconds

    def _run(self, *args: str, cwd: Path | None = None) -> None:
        env = dict(os.environ, MMA_HOME=str(self.home))
        limit = self.cpu_seconds
        proc = subprocess.run([sys.executable, str(self.bin), *args], env=env, cwd=cwd, capture_output=True,
                              preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CPU, (limit, limit + 5)))
        if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            raise DeepsepError(f"mma {' '.join(args)}: no result within {limit} s of CPU time")
        if proc.returncode:
            out = (proc.stdout + proc.stderr).decode(errors="replace").splitlines()
            why = next((ln for ln in out if ln.startswith("Error")), f"exit status {proc.returncode}")
            raise DeepsepError(f"mma {' '.join(args)}: {why}")

    def index_grooves(self) -> None:
        """Build MMA's groove database (``mma -G``), which it needs to find a groove by name."""
        self._run("-G")

    def write_midi(self, song: Chart, out_dir: Path) -> Path:
        """``out_dir/<song.name>.mid``, written by MMA from the chart."""
        out_dir.mkdir(parents=True, exist_ok=True)
        src, mid = out_dir / f"{song.name}.mma", out_dir / f"{song.name}.mid"
        src.write_text(song.text)
        self._run(str(src), "-f", str(mid), cwd=out_dir)
        return mid
