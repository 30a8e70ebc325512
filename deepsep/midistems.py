"""Multitrack stems rendered from General MIDI songs: each song played by FluidSynth once per part
(:data:`PARTS`), so that the parts add up to the song, into a track folder that music training
reads like any other (``<song>/{drums,bass,other,vocals}.flac``).

A note belongs to ``drums`` on MIDI channel 10, to ``bass`` when its channel's program at that
moment is a GM bass (33-40: acoustic, electric, fretless, slap and synth basses), else to
``other``. A MIDI song has no singer, so ``vocals`` is written as silence: a known, silent stem,
which teaches the model that a lead synth is not a voice.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .audio import sf_name
from .drums import DRUM_CHANNEL, render_midi
from .errors import DeepsepError

PARTS = ("drums", "bass", "other")
BASS_PROGRAMS = range(32, 40)  # GM programs 33-40, counted from 0


def part_of(channel: int, program: int) -> str:
    """The stem of a note on ``channel`` played with ``program`` (both counted from 0)."""
    if channel == DRUM_CHANNEL:
        return "drums"
    return "bass" if program in BASS_PROGRAMS else "other"


def _release_at_end(midi) -> None:
    """Release every note at the song's end (sustain pedal up, all notes off, on all 16 channels),
    in place: a note left on would keep FluidSynth rendering long after the song."""
    import mido

    ends = [sum(m.time for m in t) for t in midi.tracks]
    track = midi.tracks[int(np.argmax(ends))]
    delta = 0
    if track and track[-1].type == "end_of_track":
        delta = track.pop().time
    for ch in range(16):
        track.append(mido.Message("control_change", channel=ch, control=64, value=0, time=delta if ch == 0 else 0))
        track.append(mido.Message("control_change", channel=ch, control=123, value=0, time=0))
    track.append(mido.MetaMessage("end_of_track", time=0))


def split_parts(src: Path, out_dir: Path) -> tuple[dict[str, Path], float]:
    """Write one MIDI file per part of ``src`` into ``out_dir`` (every message kept, the notes of
    the other parts silenced: velocity 0); return ({part: file}, the song's length in seconds)."""
    import mido

    midi = mido.MidiFile(str(src))
    changes: dict[int, list[tuple[int, int]]] = {}  # channel -> [(tick, program)]
    for track in midi.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "program_change":
                changes.setdefault(msg.channel, []).append((tick, msg.program))
    for c in changes.values():
        c.sort()

    def program(channel: int, tick: int) -> int:
        current = 0
        for t, p in changes.get(channel, []):
            if t > tick:
                break
            current = p
        return current

    _release_at_end(midi)
    files = {}
    for part in PARTS:
        copy = mido.MidiFile(type=midi.type, ticks_per_beat=midi.ticks_per_beat)
        for track in midi.tracks:
            tick, kept = 0, mido.MidiTrack()
            for msg in track:
                tick += msg.time
                if msg.type == "note_on" and msg.velocity > 0 and part_of(msg.channel, program(msg.channel, tick)) != part:
                    msg = msg.copy(velocity=0)
                kept.append(msg)
            copy.tracks.append(kept)
        files[part] = out_dir / f"{part}.mid"
        copy.save(str(files[part]))
    return files, float(midi.length)


def render_song(src: Path, soundfont: str | Path, sample_rate: int = 44100, tail: float = 2.0) -> dict[str, np.ndarray]:
    """The parts of a MIDI song as audio {stem: (2, time) float32}, ``vocals`` silent; all scaled
    by one gain so that their sum (the song) peaks at 0.99. ``tail`` seconds after the last
    event let notes and reverb ring out."""
    with tempfile.TemporaryDirectory() as tmp:
        files, length = split_parts(src, Path(tmp))
        stems = {part: render_midi(f, soundfont, sample_rate, length + tail) for part, f in files.items()}
    mix = sum(stems.values())
    peak = float(np.abs(mix).max())
    if peak == 0:
        raise DeepsepError(f"{src}: the song renders as silence")
    stems = {k: v * (0.99 / peak) for k, v in stems.items()}
    stems["vocals"] = np.zeros_like(mix)
    return stems


def render_songs(files: Sequence[Path], out_dir: Path, soundfont: str | Path, sample_rate: int = 44100,
                 progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Render each MIDI song into ``out_dir/<name>/<stem>.flac`` (24-bit); songs already there are
    kept (resumable: a song's folder appears whole, by a rename). Returns the track folders."""
    import os
    import shutil

    import soundfile as sf

    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for i, f in enumerate(files):
        dst = out_dir / f.stem
        if not dst.is_dir():
            stems = render_song(f, soundfont, sample_rate)
            tmp = out_dir / f".{f.stem}.partial-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            for name, audio in stems.items():
                sf.write(sf_name(tmp / f"{name}.flac"), audio.T, sample_rate, subtype="PCM_24")
            os.replace(tmp, dst)
        done.append(dst)
        if progress:
            progress(i + 1, len(files))
    return done
