"""Music from Debian packages: selection, checks, the Frets on Fire split, licences, resuming.
A tiny .deb is built by the test with dpkg-deb (nothing is downloaded)."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from deepsep import debian

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
SR = 44100


def _ogg(path, seconds: float, seed: int = 0, level: float = 0.1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = level * np.random.default_rng(seed).standard_normal((int(seconds * SR), 2)).astype(np.float32)
    sf.write(str(path), x, SR, format="OGG", subtype="VORBIS")


def _deb(tmp_path, name: str, files: dict[str, float | bytes]) -> None:
    """Build debs/<name>_1.0_all.deb holding noise files {path under the root: seconds, or bytes
    as they are} and a copyright."""
    root = tmp_path / "src" / name
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(f"Package: {name}\nVersion: 1.0\nArchitecture: all\n"
                                             "Maintainer: t <t@t>\nDescription: test\n")
    doc = root / "usr" / "share" / "doc" / name
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(f"{name}: CC0\n")
    for i, (rel, content) in enumerate(files.items()):
        if isinstance(content, bytes):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(content)
        else:
            _ogg(root / rel, content, seed=i)
    (tmp_path / "debs").mkdir(exist_ok=True)
    subprocess.run(["dpkg-deb", "-Zgzip", "-b", str(root), str(tmp_path / "debs" / f"{name}_1.0_all.deb")],
                   check=True, capture_output=True)


def test_musdb_test_songs_are_recognised_by_name():
    assert debian.is_musdb_test_song("music/Zeno - Signs.ogg")
    assert debian.is_musdb_test_song("The Easton Ellises (Baumi) - SDRNR/mixture.wav")
    assert debian.is_musdb_test_song("x/tiring.ogg")  # a title alone
    assert not debian.is_musdb_test_song("music/battle_theme.ogg") and not debian.is_musdb_test_song("signs_of_war.ogg")
    assert len(debian.MUSDB18_TEST) == 50


def test_build_sorts_music_keeps_licences_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(debian, "MIN_SECONDS", 2.0)  # short files keep the test fast
    music = debian.Package("fake-music", "mixtures", ("./usr/share/games/fake/music/*",), "CC0",
                           exclude=("*/music/sfx_*",))
    fof = debian.Package("fake-fof", "fof", ("./usr/share/games/fretsonfire/data/songs/*/*/*.ogg",), "CC-BY-SA-3.0")
    _deb(tmp_path, "fake-music", {"usr/share/games/fake/music/theme.ogg": 2.5, "usr/share/games/fake/music/jingle.ogg": 1,
                                  "usr/share/games/fake/music/Zeno - Signs.ogg": 2.5,
                                  "usr/share/games/fake/music/sfx_boom.ogg": 2.5,
                                  "usr/share/games/fake/sounds/step.ogg": 2.5})
    song = "usr/share/games/fretsonfire/data/songs/band/Metal song/"
    _deb(tmp_path, "fake-fof", {song + "song.ogg": 2.5, song + "guitar.ogg": 2.5})
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in ("music/a.ogg", "music/dynamictest-1.ogg", "maps/b.ogg"):
            _ogg(tmp_path / "z.ogg", 2.5, seed=len(name))
            z.write(tmp_path / "z.ogg", name)
    _deb(tmp_path, "fake-zip", {"usr/share/games/z/base/0music.pk3": buf.getvalue()})
    zipped = debian.Package("fake-zip", "mixtures", ("./usr/share/games/z/base/0music.pk3",), "GPL-2",
                            inner=("music/*.ogg",), inner_exclude=("music/dynamictest-*",))
    out = tmp_path / "out"
    records = debian.build(out, [music, fof, zipped], debs=tmp_path / "debs", keep_debs=True)
    assert [k["file"] for k in records[2]["kept"]] == ["mixtures/fake-zip/music__a.ogg"]
    assert [k["file"] for k in records[0]["kept"]] == ["mixtures/fake-music/theme.ogg"]
    why = {s["file"].split("/")[-1]: s["why"] for s in records[0]["skipped"]}
    assert set(why) == {"jingle.ogg", "Zeno - Signs.ogg"} and "< 2 s" in why["jingle.ogg"]
    assert sorted(p.name for p in (out / "mixtures" / "fake-music").iterdir()) == ["theme.ogg"]
    guitar, _ = sf.read(out / "other" / "fake-fof" / "Metal_song.ogg")
    mix, rate = sf.read(out / "mixtures" / "fake-fof" / "Metal_song.flac")
    parts = sf.read(tmp_path / "src" / "fake-fof" / song / "song.ogg")[0] + guitar
    assert rate == SR and mix.shape == parts.shape
    np.testing.assert_allclose(mix, parts, atol=1e-5)  # the song as heard: song.ogg + guitar.ogg
    assert (out / "licences" / "fake-fof.copyright").read_text() == "fake-fof: CC0\n"
    saved = json.loads((out / "sources" / "fake-music.json").read_text())
    assert saved["licence"] == "CC0" and len(saved["sha256"]) == 64
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no unpacked leftovers
    monkeypatch.setattr(debian, "download", lambda *a: pytest.fail("a done package is fetched again"))
    assert debian.build(out, [music, fof, zipped], debs=tmp_path / "debs") == records


def test_debian_command_lists_and_refuses_unknown_packages():
    from deepsep.commands.data import data

    res = CliRunner().invoke(data, ["debian", "--list"])
    assert res.exit_code == 0 and "fretsonfire-songs-muldjord" in res.output
    res = CliRunner().invoke(data, ["debian", "--package", "no-such-package"])
    assert res.exit_code == 1 and "unknown package" in res.output


def test_midi_packages_are_rendered_into_track_folders(tmp_path):
    from pathlib import Path

    import mido

    soundfont = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
    if not soundfont.is_file() or shutil.which("fluidsynth") is None:
        pytest.skip("needs fluidsynth and the TimGM6mb soundfont")
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track += [mido.Message("program_change", channel=0, program=33, time=0)]
    for ch, note in ((9, 36), (0, 40), (1, 72)):
        track.append(mido.Message("note_on", channel=ch, note=note, velocity=100, time=0))
    track.append(mido.Message("note_off", channel=1, note=72, velocity=0, time=960))
    midi.save(str(tmp_path / "tune.mid"))
    _deb(tmp_path, "fake-midi", {"usr/share/games/m/tune.mid": (tmp_path / "tune.mid").read_bytes()})
    package = debian.Package("fake-midi", "midi", ("./usr/share/games/m/*.mid",), "GPL-2")
    [record] = debian.build(tmp_path / "out", [package], debs=tmp_path / "debs", soundfont=soundfont)
    assert [k["file"] for k in record["kept"]] == ["rendered/fake-midi/tune"]
    folder = tmp_path / "out" / "rendered" / "fake-midi" / "tune"
    assert sorted(p.name for p in folder.iterdir()) == ["bass.flac", "drums.flac", "other.flac", "vocals.flac"]


def test_drum_kit_packages_keep_the_kits_that_can_play_a_beat(tmp_path):
    from deepsep.drumkit import find_kits

    def kit(names: list[str]) -> bytes:
        inst = "".join(f"<instrument><name>{n}</name><layer><filename>s{i}.wav</filename><min>0</min><max>1</max>"
                       "</layer></instrument>" for i, n in enumerate(names))
        return f'<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit"><instrumentList>{inst}</instrumentList></drumkit_info>'.encode()

    base = "usr/share/hydrogen/data/drumkits"
    files: dict[str, float | bytes] = {f"{base}/Rock Kit/drumkit.xml": kit(["Kick", "Snare", "Closed HH"]),
                                       f"{base}/Hands/drumkit.xml": kit(["Cajon", "Clap"])}
    for i in range(3):
        files[f"{base}/Rock Kit/s{i}.wav"] = 0.1
    _deb(tmp_path, "fake-kits", files)
    package = debian.Package("fake-kits", "drumkits", ("./usr/share/hydrogen/data/drumkits/*",), "GPL-2")
    [record] = debian.build(tmp_path / "out", [package], debs=tmp_path / "debs")
    assert [k["file"] for k in record["kept"]] == ["drumkits/fake-kits/Rock Kit"]
    assert record["skipped"][0]["file"] == "Hands" and (tmp_path / "out" / "licences" / "fake-kits.copyright").is_file()
    assert find_kits(tmp_path / "out" / "drumkits") == [tmp_path / "out" / "drumkits" / "fake-kits" / "Rock Kit"]


def test_mma_charts_are_seeded_spread_over_the_grooves_and_main_grooves_only(tmp_path):
    from deepsep.accompaniment import main_grooves, make_charts

    (tmp_path / "a.mma").write_text("DefGroove Rock\nDefGroove RockSus\nDefGroove RockFill\nDefGroove RockEnd\n")
    (tmp_path / "b.mma").write_text("  defgroove Bossa\nDefGroove BossaIntro\n")
    grooves = main_grooves(tmp_path)
    assert grooves == ["Bossa", "Rock", "RockSus"]
    charts = make_charts(grooves, 6, seed=3, bars=5)
    assert charts == make_charts(grooves, 6, seed=3, bars=5) != make_charts(grooves, 6, seed=4, bars=5)
    assert [c.text.splitlines()[2] for c in charts[:3]] == ["Groove Bossa", "Groove Rock", "Groove RockSus"]
    assert all(len(c.text.splitlines()) == 3 + 5 for c in charts) and len({c.name for c in charts}) == 6


def test_mma_package_writes_accompaniment_songs_and_renders_them(tmp_path, monkeypatch):
    from pathlib import Path

    soundfont, home = Path("/usr/share/sounds/sf2/TimGM6mb.sf2"), Path("/usr/share/mma")
    if not soundfont.is_file() or shutil.which("fluidsynth") is None or not (home / "lib" / "stdlib").is_dir():
        pytest.skip("needs fluidsynth, the TimGM6mb soundfont and Debian's mma")
    keep = [*(home / "MMA").glob("*.py"), *(home / "includes").glob("*"), home / "lib" / "stdlib" / "50srock.mma",
            home / "lib" / "stdlib" / "bossanova.mma"]
    files: dict[str, float | bytes] = {"usr/bin/mma": Path("/usr/bin/mma").read_bytes()}
    files.update({str(f.relative_to("/")): f.read_bytes() for f in keep if f.is_file()})
    _deb(tmp_path, "fake-mma", files)
    monkeypatch.setattr(debian, "MMA_SONGS", 2)
    monkeypatch.setattr(debian, "MMA_BARS", 2)
    package = debian.Package("fake-mma", "mma", ("./usr/bin/mma", "./usr/share/mma/*"), "GPL-2+")
    [record] = debian.build(tmp_path / "out", [package], debs=tmp_path / "debs", soundfont=soundfont, keep_debs=True)
    first, second = (k["file"] for k in record["kept"])  # spread over the two files' grooves
    assert first == "rendered/fake-mma/mma-000-50sRock" and second.startswith("rendered/fake-mma/mma-001-Bossa")
    stems = {s: sf.read(tmp_path / "out" / "rendered" / "fake-mma" / "mma-000-50sRock" / f"{s}.flac")[0]
             for s in ("drums", "bass", "other", "vocals")}
    assert not stems["vocals"].any() and all(np.abs(stems[s]).max() > 0.01 for s in ("drums", "bass", "other"))
    assert (tmp_path / "out" / "licences" / "fake-mma.copyright").is_file()
    # a build stopped after the first song: a rerun writes and renders only the second
    shutil.rmtree(tmp_path / "out" / second)
    (tmp_path / "out" / "sources" / "fake-mma.json").unlink()
    from deepsep.accompaniment import Mma

    written = []
    real = Mma.write_midi
    monkeypatch.setattr(Mma, "write_midi", lambda self, chart, d: written.append(chart.name) or real(self, chart, d))
    [again] = debian.build(tmp_path / "out", [package], debs=tmp_path / "debs", soundfont=soundfont)
    assert written == [second.split("/")[-1]] and again["kept"] == record["kept"]


def test_mma_that_never_finishes_is_stopped_by_its_cpu_limit(tmp_path):
    from deepsep.accompaniment import Mma
    from deepsep.errors import DeepsepError

    (tmp_path / "mma").write_text("while True:\n    pass\n")
    with pytest.raises(DeepsepError, match="within 1 s of CPU time"):
        Mma(tmp_path / "mma", tmp_path, cpu_seconds=1).index_grooves()


def test_drum_loops_are_repeated_into_drum_stems(tmp_path):
    _deb(tmp_path, "fake-loops", {"usr/share/s/loop_amen.flac": b"", "usr/share/s/loop_beat.ogg": 0.5})  # an empty file
    package = debian.Package("fake-loops", "loops", ("./usr/share/s/loop_*",), "CC0")
    [record] = debian.build(tmp_path / "out", [package], debs=tmp_path / "debs")
    [kept], [skipped] = record["kept"], record["skipped"]
    assert kept["file"] == "drums/fake-loops/loop_beat.flac" and skipped["why"] == "not readable audio"
    loop = sf.read(tmp_path / "src" / "fake-loops" / "usr/share/s/loop_beat.ogg", dtype="float32")[0]
    tiled, rate = sf.read(tmp_path / "out" / "drums" / "fake-loops" / "loop_beat.flac", dtype="float32")
    assert len(tiled) >= debian.MIN_SECONDS * rate and len(tiled) % len(loop) == 0
    assert np.allclose(tiled[len(loop):2 * len(loop)], loop, atol=1e-4)
