"""Recorded drum kits in Hydrogen's format and the MIDI drum sampler (a tiny kit generated here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from deepsep.drumkit import GM_ROLES, drum_notes, find_kits, load_kit, render_notes, role_of
from deepsep.drums import hydrogen_renderer, render_folder
from deepsep.errors import DeepsepError

SR = 22050
NS = "http://www.hydrogen-music.org/drumkit"


def _tone(path: Path, freq: float, seconds: float = 0.3, channels: int = 1) -> None:
    t = np.arange(int(seconds * SR)) / SR
    x = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    sf.write(str(path), np.stack([x] * channels, axis=1), SR)


def _kit(folder: Path, instruments: dict[str, list[tuple[float, float, float]]]) -> Path:
    """A Hydrogen kit: {instrument name: [(min, max, tone Hz) per layer]}, mono tones."""
    folder.mkdir(parents=True)
    parts = []
    for i, (name, layers) in enumerate(instruments.items()):
        xml_layers = ""
        for j, (lo, hi, freq) in enumerate(layers):
            _tone(folder / f"i{i}-{j}.wav", freq)
            xml_layers += (f"<layer><filename>i{i}-{j}.wav</filename><min>{lo}</min><max>{hi}</max>"
                           "<gain>1</gain><pitch>0</pitch></layer>")
        parts.append(f"<instrument><id>{i}</id><name>{name}</name><volume>1</volume><isMuted>false</isMuted>"
                     f"<pan_L>1</pan_L><pan_R>0.5</pan_R><gain>1</gain>{xml_layers}</instrument>")
    (folder / "drumkit.xml").write_text(f'<?xml version="1.0"?><drumkit_info xmlns="{NS}"><name>{folder.name}</name>'
                                        f"<instrumentList>{''.join(parts)}</instrumentList></drumkit_info>")
    return folder


def _basic_kit(folder: Path) -> Path:
    return _kit(folder, {"Kick (Tama 22\")": [(0, 0.5, 100.0), (0.5, 1, 150.0)], "Snare Rock": [(0, 1, 1000.0)],
                         "Closed HH": [(0, 1, 3000.0)], "Open HH": [(0, 1, 4000.0)], "Cajon Slap": [(0, 1, 500.0)]})


def _peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x[0]))
    return float(np.argmax(spec) * SR / len(x[0]))


def test_instrument_names_map_to_general_midi_roles():
    cases = {"Kick (Tama Superstar 22\")": "kick", "c3 - bass drum 1": "kick", "Pearl Snare Rimshot": "rimshot",
             "Snare Roll": None, "Pearl Side Stick": "stick", "Rim Click (Pearl)": "stick", "Hand Clap": "clap",
             "Hi-Hat Closed (Paiste 14\")": "hat_closed", "VariBreaks Hat 1 Cl": "hat_closed", "Pedal HH": "hat_pedal",
             "Hi Hat Opened": "hat_open", "Sabian Hat Swish": None, "Pearl Tom Floor": "tom_low", "Tom Mid": "tom_mid",
             "tomhi2": "tom_high", "Pearl Tom 1": "tom_high", "ride-cup": "ride_bell", "Crash/Ride Bell": "ride_bell",
             "Ride Jazz": "ride", "China (Paiste Alpha 18\")": "crash", "Cowbell": "cowbell", "Djembe1 Slap": None}
    assert {n: role_of(n) for n in cases} == cases
    assert {GM_ROLES[n] for n in (36, 38, 42, 44, 46)} == {"kick", "snare", "hat_closed", "hat_pedal", "hat_open"}


def test_kit_loads_by_role_and_refuses_kits_that_cannot_play_a_beat(tmp_path):
    kit = load_kit(_basic_kit(tmp_path / "k"), SR)
    assert sorted(kit.instruments) == ["hat_closed", "hat_open", "kick", "snare"]  # the cajon has no GM role
    kick = kit.instruments["kick"][0]
    assert kick.layer(0.2).audio.shape == (2, int(0.3 * SR)) and kick.layer(0.9) is kick.layers[1]
    np.testing.assert_allclose(kick.layers[0].audio[1], 0.5 * kick.layers[0].audio[0], atol=1e-6)  # pan_R 0.5
    assert [i.name for i in kit.for_role("hat_pedal")] == ["Closed HH"]  # a pedal hi-hat plays the closed one
    assert kit.for_role("ride") == []  # nothing to play it
    _kit(tmp_path / "hands", {"Cajon Thump": [(0, 1, 80.0)], "Hand Clap": [(0, 1, 900.0)]})
    with pytest.raises(DeepsepError, match="no kick, snare, hat_closed"):
        load_kit(tmp_path / "hands", SR)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "drumkit.xml").write_text("<drumkit_info><instrumentList>")  # cut short
    assert find_kits(tmp_path) == [tmp_path / "k"]


def test_notes_play_their_layer_at_their_time_and_a_hihat_chokes_the_one_before(tmp_path):
    kit = load_kit(_basic_kit(tmp_path / "k"), SR)
    rng = np.random.default_rng(0)
    soft = render_notes(kit, [(0.1, 36, 30)], 1.0, rng)
    hard = render_notes(kit, [(0.1, 36, 120)], 1.0, rng)
    assert soft.shape == (2, SR) and np.argmax(np.abs(soft[0]) > 1e-4) == pytest.approx(0.1 * SR, abs=2)
    assert _peak_hz(soft) == pytest.approx(100, abs=5) and _peak_hz(hard) == pytest.approx(150, abs=5)  # velocity layers
    assert np.abs(hard).max() > 3 * np.abs(soft).max()  # and velocity scales the hit
    assert not render_notes(kit, [(0.1, 81, 100)], 1.0, rng).any()  # a note without a role plays nothing
    ringing = render_notes(kit, [(0.0, 46, 100)], 1.0, rng)
    choked = render_notes(kit, [(0.0, 46, 100), (0.1, 42, 1)], 1.0, rng)  # a barely audible closed hat at 0.1 s
    assert np.abs(ringing[0, int(0.2 * SR):int(0.25 * SR)]).max() > 0.1
    assert np.abs(choked[0, int(0.2 * SR):]).max() < 0.01  # the open hi-hat stopped at the closed one
    late = render_notes(kit, [(0.9, 38, 100)], 1.0, rng)
    assert late.shape == (2, SR) and np.abs(late[0, int(0.9 * SR):]).max() > 0.1  # cut at the end


def _beat(path: Path) -> None:
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    for beat in range(4):
        for note in (36 if beat % 2 == 0 else 38, 22):  # 22: the TD-11 closed hi-hat edge
            track.append(mido.Message("note_on", channel=9, note=note, velocity=100, time=0))
        track.append(mido.Message("note_off", channel=9, note=22, velocity=0, time=480))
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(str(path))


def test_a_midi_folder_renders_with_recorded_kits_the_same_every_time(tmp_path):
    _beat(tmp_path / "midi" / "d1" / "a.mid")
    notes, length = drum_notes(tmp_path / "midi" / "d1" / "a.mid", {22: 42})
    assert length == pytest.approx(2.0) and {n for _, n, _ in notes} == {36, 38, 42}
    kits = [_basic_kit(tmp_path / "kits" / "k1"), _basic_kit(tmp_path / "kits" / "k2")]
    _kit(tmp_path / "rich", {f"{name} {v}": [(0, 1, freq * (1 + v / 10))] for v in range(4)  # 4 of each: 64 kits to draw
                             for name, freq in (("Kick", 100.0), ("Snare", 900.0), ("Closed HH", 3000.0))})
    [out] = render_folder(tmp_path / "midi", tmp_path / "out", hydrogen_renderer(kits, SR), SR)
    again = render_folder(tmp_path / "midi", tmp_path / "again", hydrogen_renderer(kits, SR), SR)[0]
    a, rate = sf.read(str(out), always_2d=True)
    assert out.name == "d1_a.flac" and rate == SR and a.shape == (int(2.0 * SR), 2)
    np.testing.assert_array_equal(a, sf.read(str(again), always_2d=True)[0])
    # and in another process, whose string hashes are salted otherwise (the kit's instruments drawn in a fixed order)
    code = ("import sys, numpy as np; from deepsep.drumkit import load_kit, render_notes, drum_notes; "
            "n, l = drum_notes(sys.argv[1], {22: 42}); "
            "import hashlib; sys.stdout.write(hashlib.sha1(render_notes(load_kit(sys.argv[2], 22050), n, l, "
            "np.random.default_rng(5)).tobytes()).hexdigest())")
    args = [sys.executable, "-c", code, str(tmp_path / "midi" / "d1" / "a.mid"), str(tmp_path / "rich")]
    runs = [subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed}, check=True).stdout
            for seed in ("1", "2", "3")]
    assert len(set(runs)) == 1
    with pytest.raises(DeepsepError, match="unreadable MIDI"):
        (tmp_path / "bad.mid").write_bytes(b"not midi")
        drum_notes(tmp_path / "bad.mid")


def test_data_drums_command_with_hydrogen_kits(tmp_path):
    from deepsep.commands.data import data

    _beat(tmp_path / "midi" / "a.mid")
    _basic_kit(tmp_path / "kits" / "k1")
    res = CliRunner().invoke(data, ["drums", "--midi", str(tmp_path / "midi"), "--hydrogen", str(tmp_path / "kits"),
                                    "--out", str(tmp_path / "out"), "--sample-rate", str(SR)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.flac"]
    res = CliRunner().invoke(data, ["drums", "--midi", str(tmp_path / "midi"), "--hydrogen", str(tmp_path / "kits"),
                                    "--kits", "0,8", "--out", str(tmp_path / "out2")])
    assert res.exit_code == 2 and "--kits" in res.output and not (tmp_path / "out2").exists()
    res = CliRunner().invoke(data, ["drums", "--midi", str(tmp_path / "midi"), "--hydrogen", str(tmp_path / "midi"),
                                    "--out", str(tmp_path / "out3")])
    assert res.exit_code == 2 and "no Hydrogen drum kit" in res.output and not (tmp_path / "out3").exists()
