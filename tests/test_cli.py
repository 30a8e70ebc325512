"""The `deepsep` command end to end with the tiny random-weights models (offline, seconds)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from deepsep.cli import main


def run(*args: str) -> "object":
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def read(path: Path) -> tuple[np.ndarray, int]:
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return data, sr


@pytest.mark.parametrize(
    "name,sample_rate,channels,model",
    [
        ("a.wav", 8000, 1, "tiny-test"),
        ("b.flac", 44100, 2, "tiny-test"),  # stereo into a mono model: each channel on its own
        ("c.ogg", 22050, 1, "tiny-test-music"),  # mono into a stereo model
        ("d.wav", 11025, 3, "tiny-test-music"),  # odd channel count and rate
        ("e.aiff", 16000, 2, "tiny-test-music"),
    ],
)
def test_outputs_keep_rate_channels_length_and_sum(tmp_path, write_audio, name, sample_rate, channels, model):
    src = write_audio(name, seconds=1.3, sample_rate=sample_rate, channels=channels)
    out = tmp_path / "out"
    res = run("separate", str(src), "-m", model, "-o", str(out), "--bits", "32")
    assert res.exit_code == 0, res.output
    mix, _ = read(src)
    stems = sorted((out / src.stem).glob("*.wav"))
    assert len(stems) in (2, 4)
    total = 0
    for stem in stems:
        data, sr = read(stem)
        assert sr == sample_rate and data.shape == mix.shape
        total = total + data
    # a masking model's stems add up to the input, through both resamplers
    assert np.sqrt(np.mean((total - mix) ** 2)) < 0.01 * np.sqrt(np.mean(mix**2)) + 1e-3
    assert not list(out.rglob(".*partial*"))


def test_shifts_option(tmp_path, write_audio):
    src = write_audio("s.wav", seconds=1.0, sample_rate=8000, channels=1)
    voice = {}
    for shifts in (1, 3):
        res = run("separate", str(src), "-m", "tiny-test", "-o", str(tmp_path / str(shifts)), "--bits", "32",
                  "--shifts", str(shifts))
        assert res.exit_code == 0, res.output
        voice[shifts], _ = read(tmp_path / str(shifts) / "s" / "voice.wav")
    assert np.abs(voice[1] - voice[3]).max() > 1e-4  # the averaged passes reach the output
    assert run("separate", str(src), "-m", "tiny-test", "--shifts", "0").exit_code == 2


def test_folder_and_input_custom(tmp_path, write_audio, monkeypatch):
    write_audio("input/one.wav")
    write_audio("input/sub/two.flac")
    (tmp_path / "input" / "notes.txt").write_text("not audio")
    monkeypatch.chdir(tmp_path)
    res = run("separate", "--input", "custom", "-m", "tiny-test")
    assert res.exit_code == 0, res.output
    assert sorted(p.relative_to(tmp_path / "outputs").as_posix() for p in (tmp_path / "outputs").rglob("*.wav")) == [
        "one/noise.wav", "one/voice.wav", "two/noise.wav", "two/voice.wav",
    ]
    res = run("separate", str(tmp_path / "input"), "-m", "tiny-test", "-o", "again")
    assert res.exit_code == 0 and len(list((tmp_path / "again").rglob("*.wav"))) == 4


def test_formats_and_stem_selection(tmp_path, write_audio):
    src = write_audio("song.wav", seconds=1.0, sample_rate=44100, channels=2)
    out = tmp_path / "o"
    assert run("separate", str(src), "-m", "tiny-test-music", "-o", str(out), "--format", "flac", "--int24").exit_code == 0
    info = sf.info(str(out / "song" / "vocals.flac"))
    assert info.format == "FLAC" and info.subtype == "PCM_24"
    assert run("separate", str(src), "-m", "tiny-test-music", "-o", str(out / "s"), "--stems", "vocals,bass").exit_code == 0
    assert sorted(p.name for p in (out / "s" / "song").iterdir()) == ["bass.wav", "vocals.wav"]
    res = run("separate", str(src), "-m", "tiny-test-music", "-o", str(out / "t"), "--two-stems", "vocals", "--float32")
    assert res.exit_code == 0
    vocals, _ = read(out / "t" / "song" / "vocals.wav")
    rest, _ = read(out / "t" / "song" / "no_vocals.wav")
    mix, _ = read(src)
    assert np.abs(vocals + rest - mix).max() < 0.02
    assert sf.info(str(out / "t" / "song" / "vocals.wav")).subtype == "FLOAT"
    bad = run("separate", str(src), "-m", "tiny-test-music", "-o", str(out), "--stems", "guitar")
    assert bad.exit_code == 2 and "guitar" in bad.output
    bad = run("separate", str(src), "-m", "tiny-test-music", "-o", str(out), "--format", "flac", "--float32")
    assert bad.exit_code == 2 and "flac cannot store 32-bit" in bad.output


@pytest.mark.parametrize("args,words", [
    (["--two-stems", "guitar"], ["--two-stems guitar", "vocals, drums, bass, other"]),
    (["--stems", "vocals,piano"], ["piano", "vocals, drums, bass, other"]),
    (["--stems", "vocals,vocals"], ["named twice"]),
    (["--format", "flac", "--float32"], ["flac cannot store 32-bit"]),
    (["--format", "flac", "--bits", "32"], ["flac cannot store 32-bit"]),
    (["--stems", "vocals", "--two-stems", "drums"], ["--stems and --two-stems"]),
    (["--int24", "--float32"], ["--int24 and --float32"]),
    (["--bits", "16", "--float32"], ["--bits and --float32"]),
    (["--segment", "0"], ["--segment 0", "positive"]),
    (["--segment", "-2"], ["--segment -2"]),
    (["--segment", "inf"], ["--segment inf"]),
    (["--overlap", "1"], ["--overlap 1"]),
    (["--overlap", "-0.1"], ["--overlap -0.1"]),
    (["--shifts", "0"], ["--shifts 0"]),
    (["--batch-size", "0"], ["--batch-size 0"]),
    (["--threads", "-1"], ["--threads -1"]),
])
def test_usage_errors_come_once_before_any_file(tmp_path, write_audio, args, words):
    """Options that cannot work (alone, together, or with the model) are one line and exit status
    2 before any file is read or written, however many files there are."""
    files = [str(write_audio(f"{i}.wav", seconds=0.3, sample_rate=44100, channels=2)) for i in range(3)]
    out = tmp_path / "out"
    res = run("separate", *files, "-m", "tiny-test-music", "-o", str(out), *args)
    assert res.exit_code == 2, res.output
    assert len(res.output.strip().splitlines()) == 1 and res.output.startswith("error:"), res.output
    assert all(w in res.output for w in words), res.output
    assert not out.exists()


def test_options_that_agree_are_accepted(tmp_path, write_audio):
    src = write_audio("a.wav", seconds=0.3, sample_rate=44100, channels=2)
    res = run("separate", str(src), "-m", "tiny-test-music", "-o", str(tmp_path / "o"), "--bits", "24", "--int24",
              "--format", "flac", "--two-stems", "bass", "--segment", "0.1", "--overlap", "0.995", "--batch-size", "64",
              "-q")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "o" / "a").iterdir()) == ["bass.flac", "no_bass.flac"]
    assert sf.info(str(tmp_path / "o" / "a" / "bass.flac")).subtype == "PCM_24"


def test_clip_none_with_integer_output_warns_once(tmp_path):
    t = np.arange(4000) / 8000
    loud = (1.5 * np.sin(2 * np.pi * 50 * t)).astype(np.float32)  # peaks over full scale
    files = []
    for name in ("x", "y"):
        files.append(str(tmp_path / f"{name}.wav"))
        sf.write(files[-1], loud, 8000, subtype="FLOAT")
    res = run("separate", *files, "-m", "tiny-test", "-o", str(tmp_path / "o"), "--clip", "none", "-q")
    assert res.exit_code == 0, res.output
    warnings = [line for line in res.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "16-bit" in warnings[0] and "clipped" in warnings[0], res.output
    res = run("separate", *files, "-m", "tiny-test", "-o", str(tmp_path / "f"), "--clip", "none", "--float32", "-q")
    assert res.exit_code == 0 and "warning" not in res.output
    assert max(np.abs(read(tmp_path / "f" / n / "noise.wav")[0]).max() for n in ("x", "y")) > 1.0  # float keeps them


def test_threads_default_to_one_on_the_cpu(tmp_path, write_audio, monkeypatch):
    import torch

    calls: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    src = str(write_audio("a.wav", seconds=0.3))
    for args, expected in (([], [1]), (["--threads", "3"], [3]), (["--threads", "0"], [])):
        calls.clear()
        res = run("separate", src, "-m", "tiny-test", "-o", str(tmp_path / "o"), "--device", "cpu", "-q", *args)
        assert res.exit_code == 0, res.output
        assert calls == expected, (args, calls)
    calls.clear()  # eval sets them before it looks for its test set
    res = run("eval", "--dataset", "nope", "--data-root", str(tmp_path), "-m", "tiny-test", "--device", "cpu",
              "--threads", "2")
    assert res.exit_code == 1 and calls == [2]
    for args in (["--threads", "-2"], ["--overlap", "1.5"], ["--segment", "0"], ["--shifts", "0"]):
        res = run("eval", "--dataset", "nope", "--data-root", str(tmp_path), "-m", "tiny-test", *args)
        assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, (args, res.output)


def test_clip_policy_rescale_uses_one_gain(tmp_path):
    t = np.arange(8000) / 8000
    loud = (1.0 * np.sign(np.sin(2 * np.pi * 50 * t))).astype(np.float32)  # full-scale square wave
    src = tmp_path / "loud.wav"
    sf.write(str(src), loud, 8000, subtype="FLOAT")
    res = run("separate", str(src), "-m", "tiny-test", "-o", str(tmp_path / "o"), "--float32")
    assert res.exit_code == 0
    voice, _ = read(tmp_path / "o" / "loud" / "voice.wav")
    noise, _ = read(tmp_path / "o" / "loud" / "noise.wav")
    assert max(np.abs(voice).max(), np.abs(noise).max()) <= 1.0


def make_bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    files["missing"] = tmp_path / "missing.wav"
    files["empty"] = tmp_path / "empty.wav"
    files["empty"].write_bytes(b"")
    files["corrupt"] = tmp_path / "corrupt.wav"
    files["corrupt"].write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    files["zero"] = tmp_path / "zero.wav"
    sf.write(str(files["zero"]), np.zeros((0, 1), np.float32), 8000)
    files["nan"] = tmp_path / "nan.wav"
    x = np.full(8000, 0.1, np.float32)
    x[4000] = np.nan
    sf.write(str(files["nan"]), x, 8000, subtype="FLOAT")
    files["silence"] = tmp_path / "silence.wav"
    sf.write(str(files["silence"]), np.zeros(8000, np.float32), 8000)
    return files


def test_bad_inputs_fail_one_line_each_and_batch_goes_on(tmp_path, write_audio):
    bad = make_bad_files(tmp_path)
    good = write_audio("good.wav")
    out = tmp_path / "out"
    res = run("separate", *map(str, bad.values()), str(good), "-m", "tiny-test", "-o", str(out))
    assert res.exit_code == 1
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == len(bad), res.output
    for key, word in {"missing": "no such file", "empty": "empty", "corrupt": "not a readable audio file",
                      "zero": "empty", "nan": "NaN", "silence": "silence"}.items():
        assert any(bad[key].name in e and word in e for e in errors), (key, errors)
    assert (out / "good" / "voice.wav").is_file()
    for key in bad:  # nothing half-written for a failed file
        assert not (out / key).exists() or not any((out / key).iterdir()), key


def test_unwritable_output_folder(tmp_path, write_audio):
    src = write_audio("a.wav")
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    res = run("separate", str(src), "-m", "tiny-test", "-o", str(blocker))
    assert res.exit_code == 1 and "cannot create output folder" in res.output
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        res = run("separate", str(src), "-m", "tiny-test", "-o", str(ro))
        assert res.exit_code == 1


def test_failure_keeps_earlier_outputs(tmp_path, write_audio):
    """A failed run leaves an older complete stem as it was, and no partial files."""
    out = tmp_path / "out"
    good = write_audio("song.wav")
    assert run("separate", str(good), "-m", "tiny-test", "-o", str(out)).exit_code == 0
    before = (out / "song" / "voice.wav").read_bytes()
    x = np.full(16000, 0.1, np.float32)
    x[-10] = np.inf  # the failure comes late, after blocks were already written
    sf.write(str(tmp_path / "song.wav"), x, 8000, subtype="FLOAT")
    res = run("separate", str(tmp_path / "song.wav"), "-m", "tiny-test", "-o", str(out))
    assert res.exit_code == 1
    assert (out / "song" / "voice.wav").read_bytes() == before
    assert sorted(p.name for p in (out / "song").iterdir()) == ["noise.wav", "voice.wav"]


def test_usage_errors(tmp_path):
    assert run("separate").exit_code == 1
    res = run("separate", "--input", str(tmp_path / "nope"), "-m", "tiny-test")
    assert res.exit_code == 1 and "input folder not found" in res.output
    res = run("separate", str(tmp_path), "-m", "tiny-test")
    assert res.exit_code == 1 and "no audio files" in res.output
    res = run("separate", str(tmp_path / "x.wav"), "-m", "nonexistent-model")
    assert res.exit_code == 1 and "unknown model" in res.output


def test_models_lists_test_models():
    res = run("models", "--json")
    assert res.exit_code == 0
    assert "tiny-test-music" in res.output and "random weights" in res.output


def test_duplicate_track_names_do_not_overwrite(tmp_path, write_audio):
    a = write_audio("x/song.wav")
    b = write_audio("y/song.flac")
    res = run("separate", str(a), str(b), "-m", "tiny-test", "-o", str(tmp_path / "o"))
    assert res.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["song", "song_flac"]
