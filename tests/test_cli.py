"""The `deepsep` command end to end with the tiny random-weights models (offline, seconds)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from deepsep.audio import HOST, pid_alive
from deepsep.cli import main


def run(*args: str) -> object:
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
    (["--segment", "0.001"], ["--segment 0.001", "at least 0.1 seconds"]),  # looked hung (thousands of passes)
    (["--segment", "0.05"], ["--segment 0.05", "at least 0.1 seconds"]),
    (["--segment", "nan"], ["--segment nan"]),
    (["--overlap", "1"], ["--overlap 1"]),
    (["--overlap", "-0.1"], ["--overlap -0.1"]),
    (["--shifts", "0"], ["--shifts 0"]),
    (["--batch-size", "0"], ["--batch-size 0"]),
    (["--threads", "-1"], ["--threads -1"]),
    (["--filename", "{track}/{foo}.{ext}"], ["unknown field {foo}", "{model}, {track}, {stem}, {ext}"]),
    (["--filename", "{track}/{}.{ext}"], ["unknown field {}"]),
    (["--filename", "{track}.{ext}"], ["has no {stem}"]),
    (["--filename", "{track}/{stem.{ext}"], ["--filename"]),
    (["--filename", "/tmp/{track}/{stem}.{ext}"], ["inside the output folder"]),
    (["--filename", "../{track}/{stem}.{ext}"], ["inside the output folder"]),
    (["--filename", "{stem}.{ext}"], ["has no {track}", "3 files"]),
    (["--filename", "{track}/{stem:.0}.{ext}"], ["{stem:.0} has a format spec", "as {stem}"]),
    (["--filename", "{track}/{stem:>10}.{ext}"], ["{stem:>10} has a format spec"]),  # gave '     voice.wav'
    (["--filename", "{track}/{stem!r}.{ext}"], ["{stem!r} has a conversion"]),  # gave 'voice'.wav
    (["--filename", "{track!s:x}/{stem}.{ext}"], ["{track!s:x} has a conversion"]),
    (["--filename", "{track}/{stem:{ext}}.{ext}"], ["has a format spec"]),
    (["--stems", ""], ["--stems ''", "name the stems to keep"]),  # wrote every stem
    (["--stems", " , "], ["name the stems to keep"]),
    (["--device", "gpu"], ["unknown device 'gpu'"]),  # exit status 1 before
    (["-m", "nosuchmodel"], ["unknown model 'nosuchmodel'", "tiny-test"]),
    (["-m", "missing.safetensors"], ["-m missing.safetensors: model file not found"]),
    (["--overwrite", "--skip-existing"], ["--overwrite and --skip-existing"]),
    (["--suffix", "_x"], ["-o and --suffix"]),
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
        res = run("separate", src, "-m", "tiny-test", "-o", str(tmp_path / "o"), "--device", "cpu", "-q", "--overwrite",
                  *args)
        assert res.exit_code == 0, res.output
        assert calls == expected, (args, calls)
    calls.clear()  # eval sets them before it looks for its test set
    res = run("eval", "--dataset", "nope", "--sets", str(tmp_path), "-m", "tiny-test", "--device", "cpu",
              "--threads", "2")
    assert res.exit_code == 1 and calls == [2]
    for args in (["--threads", "-2"], ["--overlap", "1.5"], ["--segment", "0"], ["--shifts", "0"]):
        res = run("eval", "--dataset", "nope", "--sets", str(tmp_path), "-m", "tiny-test", *args)
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
                      "zero": "empty", "nan": "NaN"}.items():
        assert any(bad[key].name in e and word in e for e in errors), (key, errors)
    assert (out / "good" / "voice.wav").is_file()
    for key in bad:  # nothing half-written for a failed file, not even an empty track folder
        assert not (out / key).exists(), key
    assert sorted(p.name for p in out.iterdir()) == ["good"]  # and no hidden partial files


def test_digital_silence_separates_into_silent_stems(tmp_path):
    """As in Demucs (and deepsep.separate): a silent file is audio, not an error; a warning says so."""
    src = tmp_path / "silence.wav"
    sf.write(str(src), np.zeros(8000, np.float32), 8000)
    res = run("separate", str(src), "-m", "tiny-test", "-o", str(tmp_path / "o"))
    assert res.exit_code == 0 and "digital silence: its stems are silent" in res.output, res.output
    for stem in ("voice", "noise"):
        audio, rate = sf.read(str(tmp_path / "o" / "silence" / f"{stem}.wav"))
        assert rate == 8000 and audio.shape == (8000,) and not audio.any()


def test_unwritable_output_folder(tmp_path, write_audio):
    src = write_audio("a.wav")
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    res = run("separate", str(src), "-m", "tiny-test", "-o", str(blocker))
    assert res.exit_code == 2 and "a file, not a folder" in res.output  # a usage error, before any work
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "a").write_text("x")  # the track's folder is a file: this file fails
    res = run("separate", str(src), "-m", "tiny-test", "-o", str(tmp_path / "o"))
    assert res.exit_code == 1 and "cannot create output folder" in res.output, res.output
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        res = run("separate", str(src), "-m", "tiny-test", "-o", str(ro))
        assert res.exit_code == 1 and "Permission denied" in res.output and "System error" not in res.output


@pytest.mark.parametrize("fmt,rate", [("mp3", 44100), ("ogg", 44100), ("opus", 44100), ("opus", 16000)])
def test_lossy_output_formats(tmp_path, write_audio, fmt, rate):
    """mp3, ogg (Vorbis) and opus stems: readable, the input's length, close to the input when summed;
    opus at a rate it cannot store is written at the next one it can (48 kHz)."""
    src = write_audio("song.wav", seconds=2.0, sample_rate=rate, channels=2)
    res = run("separate", str(src), "-m", "tiny-test-music", "-o", str(tmp_path / "o"), "--format", fmt)
    assert res.exit_code == 0, res.output
    stems = sorted((tmp_path / "o" / "song").glob(f"*.{fmt}"))
    assert len(stems) == 4
    mix, _ = read(src)
    out_rate = 48000 if fmt == "opus" and rate == 44100 else rate
    total = 0
    for stem in stems:
        data, sr = read(stem)
        assert sr == out_rate and abs(len(data) - len(mix) * out_rate / rate) < 0.01 * len(data)
        total = total + data
    if out_rate == rate:
        n = min(len(total), len(mix))
        corr = np.sum(total[:n] * mix[:n]) / np.sqrt(np.sum(total[:n] ** 2) * np.sum(mix[:n] ** 2))
        assert corr > 0.9


def test_mp3_bitrate(tmp_path, write_audio):
    src = write_audio("song.wav", seconds=2.0, sample_rate=44100, channels=2)
    sizes = {}
    for kbps in ("320", "128"):
        res = run("separate", str(src), "-m", "tiny-test", "-o", str(tmp_path / kbps), "--format", "mp3",
                  "--mp3-bitrate", kbps)
        assert res.exit_code == 0, res.output
        sizes[kbps] = (tmp_path / kbps / "song" / "voice.mp3").stat().st_size
    assert sizes["128"] < 0.6 * sizes["320"]
    for args, word in ((["--format", "flac", "--mp3-bitrate", "128"], "--mp3-bitrate is for --format mp3"),
                       (["--format", "mp3", "--mp3-bitrate", "100"], "100")):
        res = run("separate", str(src), "-m", "tiny-test", "-o", str(tmp_path / "x"), *args)
        assert res.exit_code == 2 and word in res.output


def test_truncated_wav_is_separated_with_a_warning(tmp_path, write_audio):
    src = write_audio("cut.wav", seconds=3.0, sample_rate=8000, channels=1)
    os.truncate(src, src.stat().st_size // 10)
    res = run("separate", str(src), "-m", "tiny-test", "-o", str(tmp_path / "o"))
    assert res.exit_code == 0, res.output
    warning = [line for line in res.output.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "truncated" in warning[0] and "promises 3.00 s" in warning[0], res.output
    whole = write_audio("whole.wav", seconds=1.0, sample_rate=8000, channels=1)
    res = run("separate", str(whole), "-m", "tiny-test", "-o", str(tmp_path / "o"))
    assert "warning" not in res.output


def test_m4a_without_ffmpeg_says_so(tmp_path, monkeypatch):
    from deepsep import audio
    from deepsep.errors import AudioError

    fake = tmp_path / "talk.m4a"
    fake.write_bytes(b"\0\0\0\x20ftypM4A " + bytes(64))
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    with pytest.raises(AudioError, match="m4a files needs ffmpeg, which is not installed"):
        audio.AudioReader(fake)


def test_failure_keeps_earlier_outputs(tmp_path, write_audio):
    """A failed run leaves an older complete stem as it was, and no partial files."""
    out = tmp_path / "out"
    good = write_audio("song.wav")
    assert run("separate", str(good), "-m", "tiny-test", "-o", str(out)).exit_code == 0
    before = (out / "song" / "voice.wav").read_bytes()
    x = np.full(16000, 0.1, np.float32)
    x[-10] = np.inf  # the failure comes late, after blocks were already written
    sf.write(str(tmp_path / "song.wav"), x, 8000, subtype="FLOAT")
    res = run("separate", str(tmp_path / "song.wav"), "-m", "tiny-test", "-o", str(out), "--overwrite")
    assert res.exit_code == 1 and "NaN or infinite" in res.output
    assert (out / "song" / "voice.wav").read_bytes() == before
    assert sorted(p.name for p in (out / "song").iterdir()) == ["noise.wav", "voice.wav"]
    assert sorted(p.name for p in out.iterdir()) == ["song"]


def test_usage_errors(tmp_path, write_audio, monkeypatch):
    """A missing argument or a wrong option value is a usage error (exit status 2, one line, as Click
    answers them); a named input that is missing or holds no audio is a failed run (1)."""
    src = write_audio("a.wav")
    res = run("separate", "-m", "tiny-test")  # no paths, no --input
    assert res.exit_code == 2 and res.output == "error: nothing to separate: give audio files or folders, or --input DIR\n"
    res = run("separate", "--input", str(tmp_path / "nope"), "-m", "tiny-test")
    assert res.exit_code == 2 and res.output == f"error: input folder not found: {tmp_path / 'nope'}\n", res.output
    res = run("separate", "--input", str(src), "-m", "tiny-test")
    assert res.exit_code == 2 and "not a folder" in res.output
    res = run("separate", "--input", "", "-m", "tiny-test")
    assert res.exit_code == 2 and "--input ''" in res.output
    res = run("separate", str(src), "-m", "nonexistent-model")
    assert res.exit_code == 2 and "unknown model 'nonexistent-model'" in res.output
    res = run("separate", str(src), "-m", "tiny-test", "--device", "gpu")
    assert res.exit_code == 2 and "unknown device 'gpu'" in res.output
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = run("separate", str(src), "-m", "tiny-test", "--device", "cuda", "-o", str(tmp_path / "o"))
    assert res.exit_code == 2 and "no CUDA GPU" in res.output and not (tmp_path / "o").exists(), res.output
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run("separate", str(empty), "-m", "tiny-test")
    assert res.exit_code == 1 and "no audio files" in res.output
    res = run("separate", str(tmp_path / "x.wav"), "-m", "tiny-test", "-o", str(tmp_path / "o"))
    assert res.exit_code == 1 and "no such file" in res.output  # a file of the batch that fails, not a usage error


def test_model_name_and_device_are_checked_before_any_work(tmp_path, write_audio, monkeypatch):
    """-m, --device, --stems and -o mistakes come before a model is loaded or a file read."""
    from deepsep.modelcache import ModelCache

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(ModelCache, "preload", no_loading)
    src = write_audio("a.wav")
    afile = tmp_path / "afile"
    afile.write_text("x")
    for args in (["-m", "nosuch"], ["--device", "gpu"], ["--stems", ""], ["-o", str(afile)]):
        res = run("separate", str(src), "-m", "tiny-test", *args)
        assert res.exit_code == 2 and len(res.output.splitlines()) == 1, (args, res.output)


def test_output_folder_that_is_a_file_is_a_usage_error(tmp_path, write_audio, monkeypatch):
    """-o naming a file (or a path through one) is one usage error before any work, not one
    'cannot create output folder' per input with exit status 1."""
    files = [str(write_audio(f"{n}.wav")) for n in "abc"]
    afile = tmp_path / "afile"
    afile.write_text("x")
    res = run("separate", *files, "-m", "tiny-test", "-o", str(afile))
    assert res.exit_code == 2 and res.output == f"error: -o {afile}: a file, not a folder\n", res.output
    res = run("separate", *files, "-m", "tiny-test", "-o", str(afile / "sub"))
    assert res.exit_code == 2 and res.output == f"error: -o {afile / 'sub'}: a file, not a folder ({afile} is a file)\n"
    assert afile.read_text() == "x"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").write_text("x")  # the default output folder is a file: refused, but --suffix needs none
    res = run("separate", files[0], "-m", "tiny-test")
    assert res.exit_code == 2 and res.output == "error: -o outputs: a file, not a folder\n", res.output
    assert run("separate", files[0], "-m", "tiny-test", "--suffix", "_v", "-q").exit_code == 0
    assert (tmp_path / "a_v.wav").is_file()
    link = tmp_path / "link"  # a link to a folder is a folder
    (tmp_path / "real").mkdir()
    link.symlink_to(tmp_path / "real")
    assert run("separate", files[0], "-m", "tiny-test", "-o", str(link), "-q").exit_code == 0
    assert (tmp_path / "real" / "a" / "voice.wav").is_file()


def test_segment_shorter_than_a_model_frame_is_refused(tmp_path, write_audio):
    """Beyond the fixed floor (0.1 s), a segment must hold one analysis frame of each model the
    files need: a model with a 4096-sample STFT window at 8 kHz needs 0.512 s."""
    from deepsep.modelfile import save_model
    from deepsep.models.tiny import TinyConfig, TinyMasker
    from deepsep.options import MIN_SEGMENT, EngineOptions, model_window

    config = TinyConfig(sample_rate=8000, audio_channels=1, sources=("voice", "noise"), n_fft=4096, hop=1024)
    model = save_model(TinyMasker(config), tmp_path / "wide.safetensors")
    src = write_audio("a.wav")
    out = tmp_path / "o"
    res = run("separate", str(src), "-m", str(model), "--trust-local", "-o", str(out), "--segment", "0.2")
    assert res.exit_code == 2 and "--segment 0.2: shorter than one frame of" in res.output and "0.512 seconds" in res.output
    assert not out.exists()
    res = run("separate", str(src), "-m", str(model), "--trust-local", "-o", str(out), "--segment", "0.6", "-q")
    assert res.exit_code == 0, res.output
    assert run("separate", str(src), "-m", "tiny-test", "-o", str(tmp_path / "p"), "--segment", "0.1", "-q").exit_code == 0
    from deepsep.models.bag import ModelBag
    from deepsep.weights import get_model

    bag = ModelBag([get_model("tiny-test"), TinyMasker(config)], [1, 1])
    assert model_window(bag) == 4096 and model_window(get_model("tiny-test")) == 256
    assert EngineOptions().segment is None and f"at least {MIN_SEGMENT:g}" in run("separate", "--help").output


def test_models_lists_test_models():
    res = run("models", "--json")
    assert res.exit_code == 0
    assert "tiny-test-music" in res.output and "random weights" in res.output
    res = run("models")  # in a pipe: laid out wide, each model's facts on one line, nothing cut off or wrapped
    assert res.exit_code == 0 and "tiny-test-music" in res.output and "…" not in res.output
    lines = res.output.splitlines()
    assert "    vocals drums bass other; 44.1 kHz stereo; -; built in, random weights, for tests" in lines, res.output
    assert not any(a.startswith("    ") and b.startswith("    ") for a, b in zip(lines, lines[1:])), res.output  # unwrapped


def test_output_to_a_pipe_is_not_wrapped(tmp_path, write_audio, monkeypatch):
    """Output that is not a terminal is laid out wide: a summary row keeps the file, the model's
    name and the outputs on one line (at 80 columns they were cut mid-word); $COLUMNS still rules."""
    folder = tmp_path / "a folder with quite a long name to push the table past eighty columns"
    src = write_audio(f"{folder.name}/recording-with-a-long-name.wav")
    res = run("separate", str(src), "-m", "tiny-test-music", "-o", str(folder / "outputs"))
    assert res.exit_code == 0, res.output
    assert any(str(src) in line and " tiny-test-music " in line and "vocals.wav, drums.wav, bass.wav, other.wav" in line
               for line in res.output.splitlines()), res.output
    monkeypatch.setenv("COLUMNS", "80")
    res = run("separate", str(src), "-m", "tiny-test-music", "-o", str(folder / "o2"))
    assert res.exit_code == 0 and max(map(len, res.output.splitlines())) <= 80, res.output
    assert any(" tiny-test-music " in line for line in res.output.splitlines()), res.output  # the name stays whole
    res = run("models")
    assert max(map(len, res.output.splitlines())) <= 80


def test_duplicate_track_names_do_not_overwrite(tmp_path, write_audio):
    a = write_audio("x/song.wav")
    b = write_audio("y/song.flac")
    res = run("separate", str(a), str(b), "-m", "tiny-test", "-o", str(tmp_path / "o"))
    assert res.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["song_flac", "song_wav"]
    c = write_audio("z/song.flac")  # a third one gets a name of its own too
    res = run("separate", str(a), str(b), str(c), "-m", "tiny-test", "-o", str(tmp_path / "p"))
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["song_flac_y", "song_flac_z", "song_wav"]


def error_lines(res) -> list[str]:
    return [line for line in res.output.splitlines() if line.startswith("error:")]


def test_existing_stems_are_refused_overwritten_or_skipped(tmp_path, write_audio):
    """A rerun into the same folder fails each file whose outputs exist, before reading it,
    unless --overwrite (replaces them) or --skip-existing (skips the file, exit status 0)."""
    src = write_audio("song.wav")
    out = tmp_path / "out"
    assert run("separate", str(src), "-m", "tiny-test", "-o", str(out), "-q").exit_code == 0
    voice = out / "song" / "voice.wav"
    before = voice.read_bytes()
    src.write_bytes(b"not audio any more")  # refused before the file is read: no decoding error
    res = run("separate", str(src), "-m", "tiny-test", "-o", str(out))
    assert res.exit_code == 1
    assert error_lines(res) == [f"error: {voice} exists: --overwrite replaces the outputs, --skip-existing skips "
                                "files whose outputs all exist"], res.output
    assert voice.read_bytes() == before
    res = run("separate", str(src), "-m", "tiny-test", "-o", str(out), "--skip-existing")
    assert res.exit_code == 0 and "1 skipped" in res.output and "skipped" in res.output, res.output
    assert voice.read_bytes() == before
    write_audio("song.wav", seconds=0.5)
    res = run("separate", str(src), "-m", "tiny-test", "-o", str(out), "--overwrite", "-q")
    assert res.exit_code == 0, res.output
    assert read(voice)[0].shape[0] == 4000 and voice.read_bytes() != before
    assert sorted(p.name for p in out.rglob("*")) == ["noise.wav", "song", "voice.wav"]  # no partial files
    res = run("separate", str(src), "-m", "tiny-test", "-o", str(out), "--overwrite", "--skip-existing")
    assert res.exit_code == 2 and "--overwrite and --skip-existing cannot go together" in res.output


def test_skip_existing_resumes_a_batch(tmp_path, write_audio):
    files = [write_audio(f"{name}.wav") for name in ("a", "b", "c")]
    out = tmp_path / "out"
    assert run("separate", str(files[0]), "-m", "tiny-test", "-o", str(out), "-q", "--plot").exit_code == 0
    assert sorted(p.name for p in (out / "a").iterdir()) == ["noise.wav", "spectrograms.png", "voice.wav"]
    done = (out / "a" / "voice.wav").stat().st_mtime_ns
    res = run("separate", *map(str, files), "-m", "tiny-test", "-o", str(out), "--skip-existing")
    assert res.exit_code == 0, res.output
    assert "2 of 3 separated" in res.output and "1 skipped" in res.output, res.output
    assert (out / "a" / "voice.wav").stat().st_mtime_ns == done
    assert all((out / n / "noise.wav").is_file() for n in "abc")
    (out / "b" / "noise.wav").unlink()  # half there (another run's --stems?): not skipped, not overwritten
    res = run("separate", *map(str, files), "-m", "tiny-test", "-o", str(out), "--skip-existing")
    assert res.exit_code == 1 and error_lines(res) == [
        f"error: {out / 'b' / 'voice.wav'} exists but noise.wav does not (an earlier run with other stems?): "
        "--overwrite separates the file again"], res.output


def test_other_models_stems_are_not_mixed_in(tmp_path, write_audio):
    """voice/noise into a folder of vocals/drums/bass/other is refused (suggesting {model} in
    --filename) unless --overwrite; --filename with {model} keeps them apart."""
    src = write_audio("song.wav", sample_rate=44100, channels=2)
    out = tmp_path / "out"
    assert run("separate", str(src), "-m", "tiny-test-music", "-o", str(out), "-q", "--stems", "drums").exit_code == 0
    res = run("separate", str(src), "-m", "tiny-test", "-o", str(out), "--format", "flac")
    assert res.exit_code == 1, res.output
    assert error_lines(res) == [
        f"error: {out / 'song'} holds stems of another model (drums.wav); writing voice, noise there would mix two "
        'separations: use --filename "{model}/{track}/{stem}.{ext}" to keep both apart, or --overwrite'], res.output
    assert sorted(p.name for p in (out / "song").iterdir()) == ["drums.wav"]
    # the same model's other stems are no conflict
    assert run("separate", str(src), "-m", "tiny-test-music", "-o", str(out), "-q", "--stems", "bass").exit_code == 0
    res = run("separate", str(src), "-m", "tiny-test", "-o", str(out), "-q", "--filename", "{model}/{track}/{stem}.{ext}")
    assert res.exit_code == 0, res.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) == [
        "song/bass.wav", "song/drums.wav", "tiny-test/song/noise.wav", "tiny-test/song/voice.wav"]
    res = run("separate", str(src), "-m", "tiny-test", "-o", str(out), "-q", "--overwrite")
    assert res.exit_code == 0, res.output
    # --overwrite replaces the other model's separation: its stems go, with a warning that names them
    assert sorted(p.name for p in (out / "song").iterdir()) == ["noise.wav", "voice.wav"]
    assert [line for line in res.output.splitlines() if line.startswith("warning:")] == [
        f"warning: --overwrite: removed the outputs of another model from {out / 'song'}: bass.wav, drums.wav"]


def test_overwrite_removes_another_models_stems_and_their_plot(tmp_path, write_audio):
    """A model run with --overwrite into a track folder that holds another model's stems leaves
    only its own: the others (in any format) and the spectrograms.png that pictured them are
    removed once the new stems are in place; a file that fails removes nothing."""
    src = write_audio("song.wav", sample_rate=44100, channels=2)
    out = tmp_path / "out"
    assert run("separate", str(src), "-m", "tiny-test", "-o", str(out), "-q", "--plot").exit_code == 0
    assert run("separate", str(src), "-m", "tiny-test", "-o", str(out), "-q", "--format", "flac",
               "--skip-existing").exit_code == 0
    assert sorted(p.name for p in (out / "song").iterdir()) == [
        "noise.flac", "noise.wav", "spectrograms.png", "voice.flac", "voice.wav"]
    (out / "song" / "notes.txt").write_text("mine")  # not a stem: stays
    bad = tmp_path / "bad" / "song.wav"
    bad.parent.mkdir()
    bad.write_bytes(b"not audio")
    res = run("separate", str(bad), "-m", "tiny-test-music", "-o", str(out), "--overwrite")
    assert res.exit_code == 1 and (out / "song" / "voice.wav").is_file()  # failed: the earlier outputs stay
    res = run("separate", str(src), "-m", "tiny-test-music", "-o", str(out), "--overwrite")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (out / "song").iterdir()) == [
        "bass.wav", "drums.wav", "notes.txt", "other.wav", "vocals.wav"]
    warning = next(line for line in res.output.splitlines() if line.startswith("warning:"))
    assert warning.endswith(f"{out / 'song'}: noise.flac, noise.wav, spectrograms.png, voice.flac, voice.wav"), warning
    res = run("separate", str(src), "-m", "tiny-test", "-o", str(out), "--overwrite", "--plot", "-q")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (out / "song").iterdir()) == ["noise.wav", "notes.txt", "spectrograms.png", "voice.wav"]
    by_stem = ["--filename", "{stem}/{track}.{ext}", "-o", str(tmp_path / "by_stem")]  # one folder per stem
    assert run("separate", str(src), "-m", "tiny-test", *by_stem, "-q").exit_code == 0
    res = run("separate", str(src), "-m", "tiny-test-music", *by_stem, "--overwrite")
    assert res.exit_code == 0 and (f"removed the outputs of another model from {tmp_path / 'by_stem'}: noise/song.wav, "
                                   "voice/song.wav") in res.output, res.output
    assert sorted(p.parent.name for p in (tmp_path / "by_stem").rglob("*.wav")) == ["bass", "drums", "other", "vocals"]


def test_the_input_is_never_an_output(tmp_path, write_audio, monkeypatch):
    """An output path that is the input file itself is refused, with or without --overwrite, and
    --overwrite never removes the input as another model's stem."""
    src = write_audio("x/voice.wav")
    before = src.read_bytes()
    monkeypatch.chdir(tmp_path)
    for extra in ([], ["--overwrite"], ["--skip-existing"]):
        res = run("separate", "x/voice.wav", "-m", "tiny-test", "-o", ".", "--filename", "x/{stem}.{ext}", *extra)
        assert res.exit_code == 1, (extra, res.output)
        assert error_lines(res) == ["error: x/voice.wav: its output x/voice.wav is the input itself, which is never "
                                    "replaced: choose another -o or --filename"], res.output
        assert src.read_bytes() == before and sorted(p.name for p in src.parent.iterdir()) == ["voice.wav"]
    (tmp_path / "link").symlink_to(tmp_path / "x")  # the same file by another name
    res = run("separate", "x/voice.wav", "-m", "tiny-test", "-o", "link", "--filename", "{stem}.{ext}", "--overwrite")
    assert res.exit_code == 1 and "is the input itself" in res.output and src.read_bytes() == before
    # a music model into the input's folder: x/voice.wav looks like another model's stem, and stays
    res = run("separate", "x/voice.wav", "-m", "tiny-test-music", "-o", ".", "--filename", "x/{stem}.{ext}",
              "--overwrite", "-q")
    assert res.exit_code == 0, res.output
    assert src.read_bytes() == before
    assert sorted(p.name for p in src.parent.iterdir()) == ["bass.wav", "drums.wav", "other.wav", "vocals.wav", "voice.wav"]


def test_filename_template(tmp_path, write_audio):
    files = [write_audio("a.wav"), write_audio("sub/b.flac")]
    out = tmp_path / "out"
    res = run("separate", *map(str, files), "-m", "tiny-test", "-o", str(out), "--filename", "{track}-{stem}.{ext}",
              "--format", "flac", "--plot")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == [
        "a-noise.flac", "a-spectrograms.png", "a-voice.flac", "b-noise.flac", "b-spectrograms.png", "b-voice.flac"]
    res = run("separate", str(files[0]), "-m", "tiny-test-music", "-o", str(out), "-q",
              "--filename", "{model}/{stem}/{track}.{ext}", "--plot")
    assert res.exit_code == 0, res.output
    assert sorted(p.relative_to(out / "tiny-test-music").as_posix() for p in (out / "tiny-test-music").rglob("*")) == [
        "bass", "bass/a.wav", "drums", "drums/a.wav", "other", "other/a.wav", "spectrograms", "spectrograms/a.png",
        "vocals", "vocals/a.wav"]
    src = write_audio("c.wav")  # one file needs no {track}
    assert run("separate", str(src), "-m", "tiny-test", "-o", str(out / "one"), "-q", "--filename", "{stem}.{ext}").exit_code == 0
    assert sorted(p.name for p in (out / "one").iterdir()) == ["noise.wav", "voice.wav"]


def test_suffix_writes_one_stem_beside_the_input(tmp_path, write_audio, monkeypatch):
    call = write_audio("in/call.flac", seconds=1.0)
    res = run("separate", str(call), "-m", "tiny-test", "--suffix", "_clean", "--float32")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in call.parent.iterdir()) == ["call.flac", "call_clean.wav"]
    assert run("separate", str(call), "-m", "tiny-test", "-o", str(tmp_path / "o"), "--float32", "-q").exit_code == 0
    clean, rate = read(call.parent / "call_clean.wav")
    assert rate == 8000 and np.array_equal(clean, read(tmp_path / "o" / "call" / "voice.wav")[0])  # the voice stem
    res = run("separate", str(call), "-m", "tiny-test", "--suffix", "_clean", "--float32")  # same rules for existing outputs
    assert res.exit_code == 1 and error_lines(res) == [
        f"error: {call.parent / 'call_clean.wav'} exists: --overwrite replaces the outputs, --skip-existing skips "
        "files whose outputs all exist"], res.output
    res = run("separate", str(call), "-m", "tiny-test", "--suffix", "_clean", "--format", "flac", "--stems", "noise",
              "--plot", "-q")
    assert res.exit_code == 0, res.output
    noise, _ = read(call.parent / "call_clean.flac")
    assert np.abs(clean + noise - read(call)[0]).max() < 1e-3  # --stems picked the noise
    assert (call.parent / "call_clean.png").is_file()
    # a folder run again: earlier outputs are not taken for inputs; call.flac, whose name call.wav now
    # shares, is separated again under its longer name
    write_audio("in/call.wav", seconds=0.5)  # same name, other format: a name of its own
    res = run("separate", str(call.parent), "-m", "tiny-test", "--suffix", "_clean", "--skip-existing")
    assert res.exit_code == 0, res.output
    assert "warning: 2 input(s) named like the --suffix output of another input" in res.output, res.output
    assert sorted(p.name for p in call.parent.iterdir()) == [
        "call.flac", "call.wav", "call_clean.flac", "call_clean.png", "call_clean.wav", "call_flac_clean.wav",
        "call_wav_clean.wav"]
    song = write_audio("song.wav", sample_rate=44100, channels=2)
    res = run("separate", str(song), "-m", "tiny-test-music", "--suffix", "_vocals", "--two-stems", "vocals", "-q")
    assert res.exit_code == 0 and sf.info(str(tmp_path / "song_vocals.wav")).channels == 2
    monkeypatch.chdir(tmp_path)
    for args, words in ((["-m", "tiny-test-music"], "pick it with --stems or --two-stems"),
                        (["-m", "tiny-test-music", "--stems", "vocals,bass"], "--stems vocals,bass picks 2"),
                        (["-m", "tiny-test", "-o", "x"], "-o and --suffix"),
                        (["-m", "tiny-test", "--filename", "{stem}.{ext}"], "--suffix and --filename"),
                        (["-m", "tiny-test", "--suffix", ""], "non-empty"),
                        (["-m", "tiny-test", "--suffix", "a/b"], "without '/'")):
        res = run("separate", str(song), "--suffix", "_x", *args)
        assert res.exit_code == 2 and words in res.output and len(res.output.strip().splitlines()) == 1, (args, res.output)
    assert not list(tmp_path.glob("song_x*")) and not (tmp_path / "outputs").exists()


def test_stale_partials_of_dead_processes_are_removed(tmp_path, write_audio):
    """Hidden files of killed runs go on the next run into the same folders; those of running
    processes and files not named like deepsep's stay."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    out = tmp_path / "out"
    (out / "song").mkdir(parents=True)
    (out / "other").mkdir()
    stale = [out / f".voice.wav.partial-{pid}-0.w64", out / f".noise.wav.partial-{pid}-1",
             out / "song" / f".voice.wav.partial-{pid}.w64", out / "song" / f".noise.wav.partial-{pid}",
             out / f".voice.wav.partial-{pid}-2@{HOST}.w64"]
    kept = [out / f".voice.wav.partial-{os.getppid()}-0.w64", out / ".notes.partial", out / f"voice.wav.partial-{pid}",
            out / "other" / f".voice.wav.partial-{pid}.w64",  # a folder this run does not write to
            out / f".voice.wav.partial-{pid}-3@another-machine.w64"]  # a cluster worker's: its PID is not ours to judge
    for p in stale + kept:
        p.write_bytes(b"x")
    src = write_audio("song.wav")
    assert run("separate", str(src), "-m", "tiny-test", "-o", str(out), "-q").exit_code == 0
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert sorted(p.name for p in (out / "song").iterdir()) == ["noise.wav", "voice.wav"]


def test_progress_of_a_large_batch_keeps_the_last_bars(capsys):
    """Past SHOWN_FINISHED files, the oldest finished bars give way to one bar for the batch (every
    bar is drawn at each refresh: thousands of files made the display itself the work)."""
    from deepsep import cli
    from deepsep.outputs import FileResult

    files = [(Path(f"f{i:02d}.wav"), f"f{i:02d}") for i in range(cli.SHOWN_FINISHED + 10)]

    def separated(start):
        for path, track in files:
            start(path, track)
            yield FileResult(path, track, 1.0, 0.1, {"voice": Path("o") / track / "voice.wav"})

    assert len(cli._run_batch(separated, quiet=False, count=len(files))) == len(files)
    shown = capsys.readouterr().err
    assert f"{len(files)} files" in shown and "f29" in shown and "f10" in shown and "f09" not in shown, shown


@pytest.mark.parametrize("signum,status,jobs", [(signal.SIGTERM, 143, 1), (signal.SIGINT, 130, 1),
                                               (signal.SIGINT, 130, 2)])
def test_signals_remove_partial_files(tmp_path, signum, status, jobs):
    """SIGTERM is handled like SIGINT: the partial files of the files being written are removed
    (with -j 2, of both files under way), no track folder is left, and the exit status is 128 +
    the signal's number."""
    srcs = []
    for i in range(jobs + 1):
        srcs.append(tmp_path / f"long{i}.wav")
        sf.write(str(srcs[-1]), (0.1 * np.random.default_rng(i).standard_normal(8000 * 600)).astype(np.float32), 8000)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "deepsep", "separate", *map(str, srcs), "-m", "tiny-test", "-o",
                             str(out), "--segment", "0.1", "--overlap", "0.5", "-q", "-j", str(jobs)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while (len(list(out.glob(".voice.wav.partial-*.w64"))) < jobs and proc.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[0]
        assert len(list(out.glob(f".voice.wav.partial-{proc.pid}-*.w64"))) == jobs
        proc.send_signal(signum)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == status, output
    assert "interrupted" in output and signal.Signals(signum).name in output, output
    assert list(out.iterdir()) == []  # no partial files, no track folder


def test_interrupt_while_the_batch_is_handed_out_stops_the_files_under_way(tmp_path):
    """An interrupt that comes while the batch is still being handed to the jobs, with a file
    already running, stops that file and removes its hidden files at once: the process does not
    wait for it to finish (the race that made the -j 2 SIGINT test above hang now and then)."""
    from deepsep.api import EngineOptions, ModelCache, separate_files
    from deepsep.weights import load_manifest

    src, out = tmp_path / "long.wav", tmp_path / "out"
    sf.write(str(src), (0.1 * np.random.default_rng(0).standard_normal(8000 * 600)).astype(np.float32), 8000)

    def batch():
        yield src, "long"
        deadline = time.monotonic() + 120
        while not list(out.glob(".voice.wav.partial-*.w64")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        raise KeyboardInterrupt

    results = separate_files(ModelCache("tiny-test", "cpu", load_manifest()), batch(), out,
                             engine=EngineOptions(segment=0.05), jobs=2)
    with pytest.raises(KeyboardInterrupt):
        next(results)
    assert list(out.iterdir()) == []  # stopped: no stems, no hidden files


def test_local_model_file_is_refused_unless_vouched_for_or_trusted(tmp_path, write_audio):
    from deepsep.modelfile import save_model
    from deepsep.weights import get_model

    src = write_audio("a.wav")
    model = save_model(get_model("tiny-test"), tmp_path / "mine.safetensors")
    res = run("separate", str(src), "-m", str(model), "-o", str(tmp_path / "o"))
    assert res.exit_code == 1 and "--trust-local" in res.output and not (tmp_path / "o").exists()
    res = run("separate", str(src), "-m", str(model), "-o", str(tmp_path / "o"), "--trust-local")
    assert res.exit_code == 0, res.output
    assert sum("loaded unchecked" in line for line in res.output.splitlines()) == 1
    assert (tmp_path / "o" / "a" / "voice.wav").is_file()


def test_help_does_not_import_torch():
    """`deepsep --help` and `separate --help` answer without importing PyTorch (seconds on a busy
    machine); the lazy subcommands' one-line help is their own."""
    code = ("import sys; from deepsep.cli import main\n"
            "for args in (['--help'], ['separate', '--help'], ['models', '--help']):\n"
            "    try: main(args)\n"
            "    except SystemExit: pass\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "False", proc.stdout + proc.stderr
    from deepsep.cli import LAZY_COMMANDS
    from deepsep.cli import main as group

    ctx = click.Context(group)
    for name, (_, _, short) in LAZY_COMMANDS.items():
        command = group.get_command(ctx, name)
        assert command is not None and (command.help or "").strip().splitlines()[0] == short


def test_brackets_in_file_names_are_printed_as_they_are(tmp_path, write_audio):
    """Rich markup must not eat `[live]` from a file name, in errors or in the summary."""
    good = write_audio("take [live].wav")
    gone = tmp_path / "gone [demo].wav"
    res = run("separate", str(good), str(gone), "-m", "tiny-test", "-o", str(tmp_path / "o [x]"))
    text = res.output.replace("\n", "")
    assert res.exit_code == 1 and f"error: {gone}: no such file" in text, res.output
    assert "take [live]" in text and "o [x]" in text
    assert (tmp_path / "o [x]" / "take [live]" / "voice.wav").is_file()


def test_jobs_give_the_same_stems_in_the_same_order(tmp_path, write_audio):
    files = [write_audio(f"f{i}.wav", seconds=0.5 + 0.2 * i, sample_rate=(8000, 16000, 44100)[i % 3]) for i in range(5)]
    bad = tmp_path / "missing.wav"
    outs = {}
    for jobs in ("1", "3"):
        res = run("separate", *map(str, files[:2]), str(bad), *map(str, files[2:]), "-m", "tiny-test", "-o",
                  str(tmp_path / jobs), "-j", jobs)
        assert res.exit_code == 1 and "missing.wav: no such file" in res.output, res.output
        outs[jobs] = {p.relative_to(tmp_path / jobs): read(p)[0] for p in sorted((tmp_path / jobs).rglob("*.wav"))}
    assert outs["1"].keys() == outs["3"].keys() and len(outs["1"]) == 10
    for k in outs["1"]:
        np.testing.assert_array_equal(outs["1"][k], outs["3"][k])
    assert run("separate", str(files[0]), "-j", "0").exit_code == 2
    from deepsep.api import ModelCache, separate_files
    from deepsep.weights import load_manifest

    batch = [(f, f.stem) for f in [*files[:2], bad, *files[2:]]]
    results = list(separate_files(ModelCache("tiny-test", "cpu", load_manifest()), batch, tmp_path / "api", jobs=3))
    assert [r.path for r in results] == [p for p, _ in batch] and [bool(r.error) for r in results].count(True) == 1


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux /proc to see a zombie")
def test_a_dead_process_not_yet_reaped_is_not_alive():
    """A worker that died but that its parent has not reaped yet (a zombie: what a cluster
    worker is for a moment after os._exit) leaves hidden files that count as stale."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while "Z" not in Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1][:3]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not pid_alive(child.pid)
    child.wait()
    assert pid_alive(os.getpid())
