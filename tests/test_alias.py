"""Rate-dependent aliases (`-m voice` picks a model by the input's sample rate) and --atten-lim."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from rich.console import Console

import deepsep.cli
import deepsep.modelcache
from deepsep.api import OutputOptions, atten_lim_matrix, limit_attenuation, stem_matrix
from deepsep.cli import main
from deepsep.errors import ModelError, UsageError
from deepsep.modelfile import save_model
from deepsep.registry import build_model
from deepsep.weights import alias_for_rate, load_manifest, resolve, sha256_file

RULES = [{"max_rate": 8000, "model": "voice-8k"}, {"model": "voice-16k"}]


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _entry(name: str, rate: int, folder: Path, sources: tuple[str, ...] = ("voice", "noise")) -> dict:
    """A manifest entry for a tiny random model (voice/noise) at ``rate``, its file beside the manifest."""
    config = {"sample_rate": rate, "audio_channels": 1, "sources": list(sources)}
    torch.manual_seed(rate + zlib.crc32(name.encode()))  # two models of one rate differ
    path = save_model(build_model("tiny", config).eval(), folder / f"{name}.safetensors")
    return {"name": name, "task": "speech", "arch": "tiny", "config": config, "sample_rate": rate, "channels": 1,
            "sources": config["sources"], "file": path.name, "sha256": sha256_file(path), "size": path.stat().st_size}


def _use_manifest(tmp_path: Path, monkeypatch, aliases: dict, models: list[tuple], bags: dict | None = None) -> Path:
    """A manifest in force with ``aliases`` (the first is the default), ``bags`` and tiny models,
    each ``(name, rate[, sources])``, in ``tmp_path/models``."""
    folder = tmp_path / "models"
    folder.mkdir()
    path = folder / "manifest.json"
    path.write_text(json.dumps({
        "version": 1, "default": next(iter(aliases)), "aliases": aliases, "bags": bags or {},
        "models": [_entry(name, rate, folder, *sources) for name, rate, *sources in models],
    }))
    monkeypatch.setenv("DEEPSEP_MANIFEST", str(path))
    return path


@pytest.fixture
def rate_manifest(tmp_path, monkeypatch) -> Path:
    """A manifest whose `voice` alias picks voice-8k up to 8 kHz and voice-16k above; in force."""
    return _use_manifest(tmp_path, monkeypatch, {"voice": RULES, "v8": "voice-8k"},
                         [("voice-8k", 8000), ("voice-16k", 16000)])


def test_alias_for_rate_rules(rate_manifest):
    m = load_manifest()
    assert [m.alias_for_rate("voice", r) for r in (4000, 8000, 8001, 16000, 44100)] == [
        "voice-8k", "voice-8k", "voice-16k", "voice-16k", "voice-16k"]
    assert m.alias_for_rate("voice") == "voice-16k"  # no rate: the rule without a limit
    assert m.alias_for_rate("v8", 44100) == "voice-8k" and m.alias_for_rate("voice-16k", 8000) == "voice-16k"
    assert alias_for_rate("tiny-test", 44100) == "tiny-test"
    assert resolve("voice", rate=8000).name == "voice-8k" and resolve("voice", rate=22050).name == "voice-16k"
    assert m.targets("voice") == ("voice-8k", "voice-16k")


@pytest.mark.parametrize("value", [[], [{"max_rate": 8000, "model": "a"}], [{"model": 3}], [{"model": "a", "max_rate": -1}], 7])
def test_bad_alias_rules_are_refused(tmp_path, value):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"default": "", "aliases": {"voice": value}, "models": []}))
    with pytest.raises(ModelError, match="alias 'voice'"):
        load_manifest(path)


def test_separate_picks_model_per_file_and_loads_each_once(rate_manifest, tmp_path, write_audio, monkeypatch):
    files = [write_audio("a8.wav", 0.5, 8000), write_audio("b16.flac", 0.5, 16000), write_audio("c44.wav", 0.5, 44100),
             write_audio("d8.wav", 0.5, 8000)]
    loads: list[str] = []
    real = deepsep.modelcache.load_resolved
    monkeypatch.setattr(deepsep.modelcache, "load_resolved", lambda res, *a, **k: loads.append(res.name) or real(res, *a, **k))
    monkeypatch.setattr(deepsep.cli, "out", Console(width=300))  # the whole summary table on one line per file
    missing = tmp_path / "missing.wav"  # its rate cannot be read: it fails alone, the others go on
    res = run("separate", *map(str, files), str(missing), "-m", "voice", "-o", str(tmp_path / "out"))
    assert res.exit_code == 1 and f"error: {missing}: no such file" in res.output.replace("\n", ""), res.output
    assert sorted(loads) == ["voice-16k", "voice-8k"]  # each model once, for four files
    lines = res.output.splitlines()
    for f, model in zip(files, ["voice-8k", "voice-16k", "voice-16k", "voice-8k"]):  # the summary names each model
        assert any(f.name in line and f" {model} " in line for line in lines), (f.name, res.output)
    for f in files:
        assert sf.info(str(tmp_path / "out" / f.stem / "voice.wav")).samplerate == sf.info(str(f)).samplerate


def test_alias_picks_by_the_band_the_content_fills(rate_manifest, tmp_path, write_audio, monkeypatch):
    """Telephone-band audio stored at 44.1 kHz gets the 8 kHz model, from a file, an array and in eval;
    wide-band audio at the same rate the 16 kHz one."""
    import soxr

    from deepsep.separator import Separator
    from deepsep.voicedata import write_item

    rng = np.random.default_rng(0)
    narrow = soxr.resample(0.1 * rng.standard_normal(8000), 8000, 44100).astype(np.float32)
    sf.write(tmp_path / "call.wav", narrow, 44100)
    wide = write_audio("wide.wav", 1.0, 44100)
    monkeypatch.setattr(deepsep.cli, "out", Console(width=300))
    res = run("separate", str(tmp_path / "call.wav"), str(wide), "-m", "voice", "-o", str(tmp_path / "out"))
    assert res.exit_code == 0, res.output
    assert any("call.wav" in line and " voice-8k " in line for line in res.output.splitlines()), res.output
    assert any("wide.wav" in line and " voice-16k " in line for line in res.output.splitlines()), res.output
    assert sf.info(str(tmp_path / "out" / "call" / "voice.wav")).samplerate == 44100
    separator = Separator("voice")
    assert separator.separate_tensor(narrow, 44100)["voice"].shape == narrow.shape
    assert set(separator._models.loaded) == {"voice-8k"}  # the array's band picked the model
    assert Separator("v8")._models.name_for(tmp_path / "call.wav") == "voice-8k"  # a plain alias reads no audio
    voice, noise = (0.1 * rng.standard_normal((2, 8000))).astype(np.float32)
    up = [soxr.resample(s, 8000, 16000).astype(np.float32) for s in (voice, noise)]
    write_item(tmp_path / "set", 0, up[0], up[1], 0, 16000)
    res = run("eval", "--dataset", str(tmp_path / "set"), "-m", "voice", "-o", str(tmp_path / "r"), "--plot-items", "0")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r" / "report.json").read_text())["model"]["name"] == "voice-8k"


def test_a_file_rate_above_the_wide_band_model_picks_its_own_model_of_the_same_rate(tmp_path, write_audio, monkeypatch):
    """Rules 8 kHz / 16 kHz / above, the last two both 16 kHz models: content picks only a model of a
    lower rate (telephone band), so a 44.1 kHz file gets the model for such files whatever band its
    content fills, and a 16 kHz file the plain one."""
    import soxr

    rules = [{"max_rate": 8000, "model": "voice-8k"}, {"max_rate": 16000, "model": "voice-16k"},
             {"model": "voice-16k-hr"}]
    _use_manifest(tmp_path, monkeypatch, {"voice": rules}, [("voice-8k", 8000), ("voice-16k", 16000),
                                                            ("voice-16k-hr", 16000)])
    m = load_manifest()
    for rate, content, want in [(8000, 8000, "voice-8k"), (16000, 16000, "voice-16k"), (16000, 8000, "voice-8k"),
                                (44100, 44100, "voice-16k-hr"), (44100, 16000, "voice-16k-hr"),
                                (44100, 22050, "voice-16k-hr"), (48000, 8000, "voice-8k")]:
        assert m.alias_for_rate("voice", m.pick_rate("voice", rate, lambda c=content: c)) == want, (rate, content)
    assert m.describe_alias("voice") == ("voice-8k (<= 8000 Hz or content below 4000 Hz), voice-16k (<= 16000 Hz), "
                                         "voice-16k-hr (above)")
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "up16.wav", soxr.resample(0.1 * rng.standard_normal(16000), 16000, 44100).astype(np.float32), 44100)
    files = [write_audio("wide16.wav", 1.0, 16000), write_audio("wide44.wav", 1.0, 44100), tmp_path / "up16.wav"]
    monkeypatch.setattr(deepsep.cli, "out", Console(width=300))
    res = run("separate", *map(str, files), "-m", "voice", "-o", str(tmp_path / "out"))
    assert res.exit_code == 0, res.output
    for f, model in zip(files, ["voice-16k", "voice-16k-hr", "voice-16k-hr"]):
        assert any(f.name in line and f" {model} " in line for line in res.output.splitlines()), (f.name, res.output)


def test_models_lists_rules(rate_manifest):
    res = run("models")
    assert res.exit_code == 0
    assert "voice -> voice-8k (<= 8000 Hz or content below 4000 Hz), voice-16k (above)" in res.output
    rows = {r["name"]: r for r in json.loads(run("models", "--json").output)}
    assert rows["voice-8k"]["aliases"] == ["v8", "voice"] and rows["voice-16k"]["aliases"] == ["voice"]
    assert rows["voice-16k"]["default"] and rows["voice-8k"]["default"]


def test_eval_picks_by_dataset_rate(rate_manifest, tmp_path):
    from deepsep.commands.evaluate import load_eval_model
    from deepsep.evaluation import detect_items
    from deepsep.voicedata import write_item

    rng = np.random.default_rng(0)
    voice, noise = (0.1 * rng.standard_normal((2, 8000))).astype(np.float32)
    write_item(tmp_path / "set16", 0, voice, noise, 0, 16000)
    write_item(tmp_path / "set8", 0, voice, noise, 0, 8000)
    res = run("eval", "--dataset", str(tmp_path / "set16"), "-m", "voice", "-o", str(tmp_path / "r"), "--plot-items", "0")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["model"]["name"] == "voice-16k" and report["model"]["sample_rate"] == 16000
    _, info = load_eval_model("voice", None, "speech", "cpu", detect_items(tmp_path / "set16")[0])
    model, info8 = load_eval_model(None, None, "speech", "cpu", detect_items(tmp_path / "set8")[0])  # speech default: voice
    assert info["name"] == "voice-16k" and info8["name"] == "voice-8k" and model.sample_rate == 8000


def test_an_alias_rule_can_pick_a_bag_whose_stems_are_its_members_weighted_average(tmp_path, write_audio, monkeypatch):
    bags = {"duo16": {"members": [{"model": "voice-16k", "weight": 0.75}, {"model": "voice-16k-b", "weight": 0.25}]}}
    _use_manifest(tmp_path, monkeypatch, {"voice": RULES[:1] + [{"model": "duo16"}]},
                  [("voice-8k", 8000), ("voice-16k", 16000), ("voice-16k-b", 16000)], bags)
    manifest = load_manifest()
    assert manifest.alias_for_rate("voice", 16000) == "duo16" and manifest.sample_rate_of("duo16") == 16000
    assert "duo16 (above)" in manifest.describe_alias("voice")
    f = write_audio("talk.wav", 0.5, 16000)
    res = run("separate", str(f), "-m", "voice", "-o", str(tmp_path / "out"))
    assert res.exit_code == 0, res.output
    got = sf.read(str(tmp_path / "out" / "talk" / "voice.wav"), dtype="float32")[0]
    x = sf.read(str(f), dtype="float32")[0]
    from deepsep.api import separate_array
    from deepsep.weights import get_model

    want = sum(w * separate_array(get_model(m), x, 16000)["voice"] for m, w in (("voice-16k", 0.75), ("voice-16k-b", 0.25)))
    np.testing.assert_allclose(got, want, atol=1e-4)  # the WAV's 16-bit rounding
    rows = {r["name"]: r for r in json.loads(run("models", "--json").output)}
    assert rows["duo16"]["origin"] == "ensemble of 0.75 x voice-16k + 0.25 x voice-16k-b"
    assert rows["duo16"]["status"] == "verified" and rows["duo16"]["aliases"] == ["voice"]
    with pytest.raises(ModelError, match="ensemble"):
        resolve("duo16")  # no single file: get_model loads it


@pytest.mark.parametrize("bag, match", [
    ({"members": [{"model": "voice-16k", "weight": 1.0}]}, "two or more"),
    ({"members": [{"model": "voice-16k", "weight": 1.0}, {"model": "nope", "weight": 1.0}]}, "nope is not a model"),
    ({"members": [{"model": "voice-16k", "weight": 1.0}, {"model": "voice-8k", "weight": 1.0}]}, "differ in sample rate"),
    ({"members": [{"model": "voice-16k", "weight": 0}, {"model": "voice-8k", "weight": 1.0}]}, "two or more"),
])
def test_bad_bags_are_refused(tmp_path, monkeypatch, bag, match):
    path = _use_manifest(tmp_path, monkeypatch, {"voice": RULES}, [("voice-8k", 8000), ("voice-16k", 16000)], {"b": bag})
    with pytest.raises(ModelError, match=f"bag 'b'.*{match}"):
        load_manifest(path)


def test_atten_lim_function():
    g = 10 ** (-12 / 20)
    stems = np.random.default_rng(0).standard_normal((2, 3, 50)).astype(np.float32)  # (voice, noise), channels, time
    out = limit_attenuation(stems, ("voice", "noise"), 12)
    assert out.shape == stems.shape and out.dtype == np.float32
    np.testing.assert_allclose(out[0], stems[0] + g * stems[1], atol=1e-6)
    np.testing.assert_allclose(out[1], (1 - g) * stems[1], atol=1e-6)
    np.testing.assert_allclose(out.sum(0), stems.sum(0), atol=1e-6)
    flipped = limit_attenuation(torch.from_numpy(stems[::-1].copy()), ("noise", "voice"), 12)  # any order of sources
    torch.testing.assert_close(flipped, torch.from_numpy(out[::-1].copy()))
    assert np.array_equal(limit_attenuation(stems, ("voice", "noise"), None), stems)
    assert np.allclose(atten_lim_matrix(("voice", "noise"), 0), [[1, 1], [0, 0]])  # 0 dB: all noise in voice
    names, m = stem_matrix(("voice", "noise"), OutputOptions(two_stems="voice", atten_lim=12))
    assert names == ["voice", "no_voice"] and np.allclose(m, [[1, g], [0, 1 - g]])
    for bad in ({"sources": ("vocals", "drums", "bass", "other"), "db": 6}, {"sources": ("voice", "noise"), "db": -1}):
        with pytest.raises(UsageError):
            limit_attenuation(stems, bad["sources"], bad["db"])


def test_atten_lim_cli_arithmetic(tmp_path, write_audio):
    src = write_audio("n.wav", seconds=0.7, sample_rate=16000)
    stems = {}
    for db in (None, 12.0):
        out = tmp_path / str(db)
        res = run("separate", str(src), "-m", "tiny-test", "-o", str(out), "--float32",
                  *(["--atten-lim", str(db)] if db is not None else []))
        assert res.exit_code == 0, res.output
        stems[db] = {s: sf.read(str(out / "n" / f"{s}.wav"), dtype="float32")[0] for s in ("voice", "noise")}
    g = 10 ** (-12 / 20)
    np.testing.assert_allclose(stems[12.0]["voice"], stems[None]["voice"] + g * stems[None]["noise"], atol=1e-5)
    np.testing.assert_allclose(stems[12.0]["noise"], (1 - g) * stems[None]["noise"], atol=1e-5)
    mix = sf.read(str(src), dtype="float32")[0]
    assert np.abs(stems[12.0]["voice"] + stems[12.0]["noise"] - mix).max() < 1e-5


def test_atten_lim_usage_errors(tmp_path, write_audio):
    src = write_audio("song.wav", seconds=0.5, sample_rate=44100, channels=2)
    for args in (["-m", "tiny-test-music", "--atten-lim", "6"], ["-m", "tiny-test", "--atten-lim", "-3"]):
        res = run("separate", str(src), "-o", str(tmp_path / "out"), *args)
        assert res.exit_code == 2, res.output
        assert len(res.output.strip().splitlines()) == 1 and "--atten-lim" in res.output
        assert not (tmp_path / "out").exists()


def test_options_are_checked_against_each_model_of_a_rate_alias(tmp_path, write_audio, monkeypatch):
    """With an alias that picks a model per file, a stem option must suit every model the files
    need: refused once (exit 2) before any file is separated when one of them lacks the stem."""
    _use_manifest(tmp_path, monkeypatch, {"mixed": [{"max_rate": 8000, "model": "voice-8k"}, {"model": "speech-16k"}]},
                  [("voice-8k", 8000), ("speech-16k", 16000, ("speech", "noise"))])
    narrow, wide = write_audio("a8.wav", 0.3, 8000), write_audio("b16.wav", 0.3, 16000)
    res = run("separate", str(narrow), "-m", "mixed", "-o", str(tmp_path / "ok"), "--two-stems", "voice", "-q")
    assert res.exit_code == 0, res.output
    for args in (["--two-stems", "voice"], ["--stems", "noise,voice"], ["--atten-lim", "6"]):
        res = run("separate", str(narrow), str(wide), "-m", "mixed", "-o", str(tmp_path / "out"), *args)
        assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
        assert "speech, noise" in res.output and not (tmp_path / "out").exists(), res.output


def test_filename_model_field_is_the_model_picked_for_each_file(rate_manifest, tmp_path, write_audio):
    files = [write_audio("a8.wav", 0.5, 8000), write_audio("b16.wav", 0.5, 16000)]
    out = tmp_path / "out"
    res = run("separate", *map(str, files), "-m", "voice", "-o", str(out), "-q", "--filename", "{model}/{track}/{stem}.{ext}")
    assert res.exit_code == 0, res.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.wav")) == [
        "voice-16k/b16/noise.wav", "voice-16k/b16/voice.wav", "voice-8k/a8/noise.wav", "voice-8k/a8/voice.wav"]
