"""deepsep eval: metrics by hand, baselines, the command on tiny test sets of both layouts, reports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from deepsep.cli import main
from deepsep.evaluation import evaluate, in_memory, oracle_irm, score, speech_items
from deepsep.metrics import sdr, si_sdr
from deepsep.modelfile import save_model
from deepsep.perceptual import PESQ_MISSING, pesq_available, pesq_score, stoi_score
from deepsep.registry import build_model

RATE = 8000


def speechlike(seconds: float, seed: int) -> np.ndarray:
    """Harmonic bursts with pauses: enough like speech for PESQ's voice activity detector."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 15))
    envelope = (np.sin(2 * np.pi * 1.5 * t) > -0.3).astype(float)
    return (0.2 * x * envelope + 0.001 * rng.standard_normal(t.size)).astype(np.float32)


def test_sdr_and_si_sdr_by_hand():
    rng = np.random.default_rng(0)
    ref = torch.from_numpy(rng.standard_normal(8000))
    noise = torch.from_numpy(rng.standard_normal(8000))
    noise = noise - (noise @ ref) / (ref @ ref) * ref  # orthogonal to ref
    noise = noise * ref.norm() / noise.norm() * 10 ** (-10 / 20)  # 10 dB below ref
    assert float(sdr(ref + noise, ref)) == pytest.approx(10.0, abs=1e-6)
    assert float(si_sdr(ref + noise, ref, zero_mean=False)) == pytest.approx(10.0, abs=1e-6)
    # SI-SDR ignores a gain on the estimate, SDR counts it as distortion: 10 log10(1 / 0.5^2)
    assert float(si_sdr(0.5 * (ref + noise), ref, zero_mean=False)) == pytest.approx(10.0, abs=1e-6)
    assert float(sdr(0.5 * ref, ref)) == pytest.approx(20 * np.log10(1 / 0.5), abs=1e-6)
    assert float(si_sdr(ref, ref)) > 100


def test_pesq_and_stoi_by_hand():
    pytest.importorskip("pesq", reason=PESQ_MISSING)
    clean = speechlike(3.0, 1)
    assert pesq_score(clean, clean, RATE) == pytest.approx(4.55, abs=0.05)  # narrow-band maximum
    assert stoi_score(clean, clean, RATE) == pytest.approx(1.0, abs=1e-6)
    noisy = clean + 0.1 * np.random.default_rng(2).standard_normal(clean.size).astype(np.float32)
    assert pesq_score(noisy, clean, RATE) < 3.0
    assert stoi_score(noisy, clean, RATE) < 0.98
    assert pesq_score(np.zeros(RATE, np.float32), np.zeros(RATE, np.float32), RATE) is None


def test_oracle_irm_upper_bound():
    t = np.arange(RATE) / RATE
    low = (0.3 * np.sin(2 * np.pi * 200 * t))[None].astype(np.float32)
    high = (0.3 * np.sin(2 * np.pi * 3000 * t))[None].astype(np.float32)
    est = oracle_irm(low + high, np.stack([low, high]), 512, 128)
    metrics = score({"a": est[0], "b": est[1]}, {"a": low, "b": high}, low + high, RATE, "music")
    assert metrics["a"]["sdr"] > 30 and metrics["b"]["sdr"] > 30
    one = oracle_irm(low, low[None], 512, 128)  # a single source is the mixture itself
    np.testing.assert_allclose(one[0], low, atol=1e-5)


def make_speech_set(root: Path, items: int = 4) -> None:
    from deepsep.voicedata import write_item

    rng = np.random.default_rng(0)
    for i in range(items):
        voice = speechlike(1.5, i)
        noise = (0.05 * rng.standard_normal(voice.size)).astype(np.float32)
        if i == items - 1:
            noise[:] = 0  # a silent reference: reported, not averaged
        write_item(root, i, voice, noise, 5, RATE)


def make_music_set(root: Path) -> None:
    """Two tracks in the MUSDB18-HQ layout: <track>/{mixture,vocals,drums,bass,other}.wav."""
    rng = np.random.default_rng(1)
    for name in ("Artist - One", "Artist - Two"):
        stems = {s: (0.1 * rng.standard_normal((22050, 2))).astype(np.float32) for s in ("vocals", "drums", "bass", "other")}
        (root / name).mkdir(parents=True)
        for s, x in stems.items():
            sf.write(str(root / name / f"{s}.wav"), x, 44100, subtype="FLOAT")
        sf.write(str(root / name / "mixture.wav"), sum(stems.values()), 44100, subtype="FLOAT")


def test_eval_speech_layout_reports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_speech_set(tmp_path / "data" / "test")
    res = CliRunner().invoke(main, ["eval", "-m", "tiny-test", "--baselines", "--plot-items", "1"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = tmp_path / "outputs" / "eval" / "tiny-test_test"
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["name"] == "tiny-test" and report["dataset"]["items"] == 4
    assert report["excluded"] == 3  # the silent noise of one item, for each of the three methods
    assert {"deepsep_version", "command", "summary", "items", "engine"} <= set(report)
    assert report["engine"]["segment"] == 2.0  # the model's default segment, the one used, not "none given"
    mixture_rows = [r for r in report["items"] if r["method"] == "mixture" and r["source"] == "voice"]
    assert all(abs(r["si_sdri"]) < 1e-9 for r in mixture_rows)  # the mixture improves on itself by 0 dB
    voice_all = {s["method"]: s for s in report["summary"] if s["source"] == "voice" and s["group"] == "all"}
    assert voice_all["oracle-irm"]["si_sdri_mean"] > voice_all["mixture"]["si_sdri_mean"] + 3
    assert {"pesq_mean", "stoi_mean"} <= set(voice_all["model"]) or not pesq_available()
    assert (PESQ_MISSING in res.output) == (not pesq_available())
    with open(out / "items.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * 3 * 2 and {"item", "method", "source", "si_sdr", "pesq"} <= set(rows[0])
    assert "| model | voice | all |" in (out / "summary.md").read_text()
    assert not list(out.glob(".*"))  # each report written whole, no partial file left behind
    for png in (out / "si_sdri_distribution.png", out / "spectrograms_0000.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        import matplotlib.image

        assert matplotlib.image.imread(str(png)).shape[0] > 100
    # a second evaluation into the same folder is refused before any work, unless --overwrite
    before = (out / "report.json").read_text()
    res = CliRunner().invoke(main, ["eval", "-m", "tiny-test", "--limit", "1"])
    assert res.exit_code == 2 and "already holds a report" in res.output and (out / "report.json").read_text() == before
    res = CliRunner().invoke(main, ["eval", "-m", "tiny-test", "--limit", "1", "--overwrite"], catch_exceptions=False)
    assert res.exit_code == 0 and json.loads((out / "report.json").read_text())["dataset"]["items"] == 1
    # checkpoints of the same file name in two run folders get a report folder each
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        save_model(build_model("tiny", {"sample_rate": 8000}), tmp_path / run / "best.safetensors")
        res = CliRunner().invoke(main, ["eval", "--checkpoint", str(tmp_path / run / "best.safetensors"), "--limit", "1"])
        assert res.exit_code == 0, res.output
        assert (tmp_path / "outputs" / "eval" / f"{run}-best_test" / "report.json").is_file()


def test_eval_music_layout(tmp_path):
    make_music_set(tmp_path / "tracks")
    res = CliRunner().invoke(main, ["eval", "--dataset", str(tmp_path / "tracks"), "-m", "tiny-test-music",
                                    "-o", str(tmp_path / "r"), "--plot-items", "0"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert {r["source"] for r in report["items"]} == {"vocals", "drums", "bass", "other"}
    assert report["dataset"]["task"] == "music" and (tmp_path / "r" / "sdr_distribution.png").is_file()


def test_prepare_and_eval_music_track_folders(tmp_path, monkeypatch):
    """`data prepare --only music` links the held-out track folders (Opus stems, no mixture file,
    some without bass); eval separates the sum of the stems from memory (no temporary file), and
    scores only the known stems."""
    from deepsep.musdb import SHARED_MUSDB7, split_tracks

    shared = tmp_path / "shared"
    rng = np.random.default_rng(2)
    names = [f"Artist - Song {i:02d}" for i in range(12)]
    for i, name in enumerate(names):
        folder = shared / SHARED_MUSDB7 / name
        folder.mkdir(parents=True)
        for s in ("vocals", "drums", "other") + (() if i % 2 else ("bass",)):
            x = (0.1 * rng.standard_normal((12000, 2))).astype(np.float32)
            sf.write(str(folder / f"{s}.opus"), x, 48000, format="OGG", subtype="OPUS")
    res = CliRunner().invoke(main, ["data", "prepare", "--only", "music", "--data-root", str(shared),
                                    "--sets", str(tmp_path / "data")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    test_set = tmp_path / "data" / "music-test"
    held_out = split_tracks(names)[1]
    assert sorted(p.name for p in test_set.iterdir()) == held_out
    assert all((test_set / n).is_dir() and (test_set / n).is_symlink() for n in held_out)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    res = CliRunner().invoke(main, ["eval", "--dataset", str(test_set), "-m", "tiny-test-music", "--limit", "4",
                                    "--baselines", "-o", str(tmp_path / "r"), "--plot-items", "0"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert not list(scratch.iterdir())  # no temporary file was written
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    scored = {(r["item"], r["source"]) for r in report["items"] if r["method"] == "model"}
    for item in held_out[:4]:
        has_bass = names.index(item) % 2 == 0
        expected = {"vocals", "drums", "other"} | ({"bass"} if has_bass else set())
        assert {s for i, s in scored if i == item} == expected
    mixture_rows = [r for r in report["items"] if r["method"] == "mixture"]
    assert all(r["si_sdri"] == pytest.approx(0, abs=1e-9) for r in mixture_rows)


def test_items_in_memory_score_as_their_files(tmp_path):
    """Items read once into memory (training validation's) give the numbers of the files, which
    are not read again."""
    import shutil

    import deepsep

    make_speech_set(tmp_path / "set")
    model = deepsep.load_model("tiny-test")
    from_files = evaluate(model, speech_items(tmp_path / "set"), perceptual=False).rows
    items = [in_memory(it) for it in speech_items(tmp_path / "set")]
    assert all(isinstance(it.mixture, np.ndarray) and it.rate == RATE for it in items)
    shutil.rmtree(tmp_path / "set")
    assert evaluate(model, items, perceptual=False).rows == from_files
    assert evaluate(model, items, perceptual=False).rows == from_files  # and again


def test_eval_errors(tmp_path):
    make_speech_set(tmp_path / "set", items=1)
    res = CliRunner().invoke(main, ["eval", "--dataset", str(tmp_path / "set"), "-m", "tiny-test-music",
                                    "-o", str(tmp_path / "r")])
    assert res.exit_code == 1 and "do not match" in res.output
    res = CliRunner().invoke(main, ["eval", "--dataset", "nope", "--sets", str(tmp_path), "-m", "tiny-test"])
    assert res.exit_code == 1 and "deepsep data prepare" in res.output


@pytest.mark.parametrize("only, rate", [("speech", 8000), ("speech16", 16000)])
def test_prepared_speech_test_sets_share_no_item_with_training_validation(dirs, tmp_path, monkeypatch, only, rate):
    """`data prepare` builds `test` and `test16` from the valid folders that training validates on,
    but with another seed: no test mixture is one that picked a checkpoint."""
    from deepsep.train.validation import build_validation_set

    monkeypatch.setattr("deepsep.train.validation.VALID_RIRS", 3)  # a small room bank: quicker
    shared = tmp_path / "shared"
    (shared / "wideband").mkdir(parents=True)
    for sub in ("speech", "noise"):  # the same tiny folders in both layouts
        (shared / sub).symlink_to(dirs / sub)
        (shared / "wideband" / sub).symlink_to(dirs / sub)
    res = CliRunner().invoke(main, ["data", "prepare", "--only", only, "--data-root", str(shared),
                                    "--sets", str(tmp_path / "sets")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    name = "test" if only == "speech" else "test16"
    test_items = [sf.read(str(p))[0] for p in sorted((tmp_path / "sets" / name).glob("*/mix_*.wav"))]
    assert len(test_items) == len(list((dirs / "speech" / "valid").iterdir())) * 4 * (3 if only == "speech" else 1)
    valid = build_validation_set(shared / ("speech" if only == "speech" else "wideband/speech") / "valid",
                                 dirs / "noise" / "valid", tmp_path / "valid", sample_rate=rate,
                                 p_reverb=0.0 if only == "speech" else 0.25)
    valid_items = [sf.read(str(p))[0] for p in sorted(valid.glob("*/mix_*.wav"))]
    assert valid_items and all(a.shape == b.shape for a in test_items for b in valid_items)
    assert not any(np.allclose(a, b) for a in test_items for b in valid_items)
