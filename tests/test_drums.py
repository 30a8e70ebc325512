"""Drum stems rendered from MIDI with FluidSynth (CI installs fluidsynth and the TimGM6mb soundfont)."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from deepsep.drums import TD11_TO_GM, kit_for, prepared_midi, render_drums, render_folder, soundfont_renderer
from deepsep.errors import DeepsepError

SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


def _groove(path: Path, bars: int = 2) -> float:
    """A little rock beat (kick, snare, TD-11 closed hi-hat edge) at 120 bpm; its length in seconds."""
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    for beat in range(4 * bars):
        notes = [36 if beat % 2 == 0 else 38, 22]
        for note in notes:
            track.append(mido.Message("note_on", channel=9, note=note, velocity=100, time=0))
        track.append(mido.Message("note_off", channel=9, note=notes[0], velocity=0, time=240))
        track.append(mido.Message("note_off", channel=9, note=notes[1], velocity=0, time=240))
    midi.save(str(path))
    return float(mido.MidiFile(str(path)).length)


def test_prepared_midi_maps_td11_notes_and_selects_the_kit(tmp_path):
    length = _groove(tmp_path / "a.mid")
    assert prepared_midi(tmp_path / "a.mid", tmp_path / "b.mid", kit=25) == pytest.approx(length)
    msgs = [m for t in mido.MidiFile(str(tmp_path / "b.mid")).tracks for m in t]
    notes = {m.note for m in msgs if m.type == "note_on"}
    assert notes == {36, 38, TD11_TO_GM[22]}
    assert any(m.type == "program_change" and m.channel == 9 and m.program == 25 for m in msgs)
    assert kit_for("drummer1_x", (0, 8, 25)) == kit_for("drummer1_x", (0, 8, 25))


def test_render_is_a_drum_stem_of_the_midis_length(tmp_path):
    length = _groove(tmp_path / "g.mid")
    audio = render_drums(tmp_path / "g.mid", SOUNDFONT, kit=0, sample_rate=22050)
    assert audio.shape == (2, round(length * 22050)) and audio.dtype == np.float32
    assert np.sqrt(np.mean(audio**2)) > 1e-3  # not silent
    first_hit = np.argmax(np.abs(audio[0]) > 1e-3)
    assert first_hit < 0.05 * 22050  # the kick at 0 s
    (tmp_path / "midi" / "d1").mkdir(parents=True)
    _groove(tmp_path / "midi" / "d1" / "x.mid", bars=1)
    out = render_folder(tmp_path / "midi", tmp_path / "out", soundfont_renderer(SOUNDFONT, (0,), 22050), 22050)
    assert [p.name for p in out] == ["d1_x.flac"] and sf.info(str(out[0])).samplerate == 22050
    (tmp_path / "out" / "d1_y.flac.partial.flac").write_bytes(b"killed half-way")
    mtime = out[0].stat().st_mtime_ns
    render_folder(tmp_path / "midi", tmp_path / "out", soundfont_renderer(SOUNDFONT, (0,), 22050), 22050)
    assert out[0].stat().st_mtime_ns == mtime  # resumed: kept, not rendered again
    assert not list((tmp_path / "out").glob("*.partial*"))  # what a killed render left is removed
    with pytest.raises(DeepsepError, match="soundfont not found"):
        render_drums(tmp_path / "g.mid", tmp_path / "none.sf2")
    with pytest.raises(DeepsepError, match="soundfont not found"):
        soundfont_renderer(tmp_path / "none.sf2")


def _song(path: Path) -> None:
    """Two seconds of a GM song: drums (channel 10), a bass (program 33) on channel 1, a piano on
    channel 2 that switches to a synth bass (program 38) half-way."""
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track += [mido.Message("program_change", channel=0, program=33, time=0),
              mido.Message("program_change", channel=1, program=0, time=0)]
    for beat in range(4):
        if beat == 2:
            track.append(mido.Message("program_change", channel=1, program=38, time=0))
        for ch, note in ((9, 36), (0, 40), (1, 72 if beat < 2 else 45)):
            track.append(mido.Message("note_on", channel=ch, note=note, velocity=100, time=0))
        for i, (ch, note) in enumerate(((9, 36), (0, 40), (1, 72 if beat < 2 else 45))):
            track.append(mido.Message("note_off", channel=ch, note=note, velocity=0, time=480 if i == 0 else 0))
    midi.save(str(path))


def test_midi_songs_render_into_parts_that_add_up_to_the_song(tmp_path):
    from deepsep import midistems
    from deepsep.drums import render_midi

    _song(tmp_path / "song.mid")
    files, length = midistems.split_parts(tmp_path / "song.mid", tmp_path)
    sounding = {part: [(m.channel, m.note) for t in mido.MidiFile(str(f)).tracks for m in t
                       if m.type == "note_on" and m.velocity > 0] for part, f in files.items()}
    assert set(sounding["drums"]) == {(9, 36)}
    assert set(sounding["bass"]) == {(0, 40), (1, 45)}  # the piano channel's notes after its switch to a bass
    assert set(sounding["other"]) == {(1, 72)}
    if not SOUNDFONT.is_file():
        pytest.skip("needs the TimGM6mb soundfont")
    [folder] = midistems.render_songs([tmp_path / "song.mid"], tmp_path / "out", SOUNDFONT)
    stems = {s: sf.read(folder / f"{s}.flac", always_2d=True)[0].T for s in ("vocals", "drums", "bass", "other")}
    assert not stems["vocals"].any() and all(np.abs(stems[s]).max() > 0.01 for s in midistems.PARTS)
    whole = render_midi(tmp_path / "song.mid", SOUNDFONT, length=length + 2.0)
    mix = sum(stems.values())
    gain = np.abs(mix).max() / np.abs(whole).max()
    assert np.abs(mix - gain * whole).max() < 0.02  # the parts add up to the song as one render plays it
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["song"]


def test_renders_are_limited_in_cpu_time_not_wall_time_and_in_output_size(tmp_path):
    import signal
    import subprocess
    import sys

    from deepsep.drums import _limit_child

    busy = subprocess.run([sys.executable, "-c", "while True: pass"], preexec_fn=lambda: _limit_child(1, 1 << 20), timeout=120)
    assert busy.returncode in (-signal.SIGXCPU, -signal.SIGKILL)
    idle = subprocess.run([sys.executable, "-c", "import time; time.sleep(1.5)"], preexec_fn=lambda: _limit_child(1, 1 << 20))
    assert idle.returncode == 0  # 1.5 s of wall time, no CPU: not stopped
    # a render that writes on and on (a hung note) is stopped at its size limit, not at the disk's
    out = tmp_path / "out.wav"
    writer = "import sys\nwith open(sys.argv[1], 'wb') as f:\n    while True: f.write(bytes(65536))"
    big = subprocess.run([sys.executable, "-c", writer, str(out)], preexec_fn=lambda: _limit_child(60, 1 << 20),
                         capture_output=True, timeout=120)
    assert big.returncode != 0 and out.stat().st_size <= 1 << 20
