"""The voice training loop: it learns, resumes, checkpoints as plain data, exports and reloads."""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from deepsep.cli import main
from deepsep.commands.train import train as train_group
from deepsep.errors import UsageError
from deepsep.modelfile import load_model
from deepsep.train import VoiceTrainOptions, export_model, load_checkpoint, train
from deepsep.train.checkpoints import init_weights, model_from_checkpoint
from deepsep.train.core import lr_at, make_model
from deepsep.train.voice import VoiceTask, voice_loss
from deepsep.voicedata import OnTheFlyMixer
from deepsep.weights import load_manifest, resolve, sha256_file

SR = 8000
TINY = {
    "unet": {"n_fft": 64, "hop": 16, "channels": [4, 8]},
    "convtasnet": {"enc_kernel_size": 16, "enc_num_feats": 16, "msk_num_feats": 8, "msk_num_hidden_feats": 16,
                   "msk_num_layers": 2, "msk_num_stacks": 1},
}


def _opts(dirs, tmp_path, model="unet", **kw):
    base = dict(
        model=model, config=TINY[model], speech_dir=str(dirs / "speech" / "train"),
        noise_dir=str(dirs / "noise" / "train"), valid_speech_dir=str(dirs / "speech" / "valid"),
        valid_noise_dir=str(dirs / "noise" / "valid"), valid_dir=str(tmp_path / "valid"), valid_seconds=0.5,
        steps=10, batch_size=4, segment=0.5, lr=3e-3, warmup=2, out=str(tmp_path / "run"), ckpt_every=5,
        valid_every=5, log_every=1, threads=1,
    )
    base.update(kw)
    return VoiceTrainOptions(**base)


class _Const(torch.nn.Module):
    """A stand-in partner that returns fixed stems (batch, sources, channels, time)."""

    def __init__(self, stems):
        super().__init__()
        self.stems = stems

    def forward(self, mix):
        return self.stems


def _losses(path):
    return [json.loads(line)["loss"] for line in Path(path).read_text().splitlines() if '"train"' in line]


@pytest.mark.parametrize("model", ["unet", "convtasnet"])
def test_training_lowers_the_loss(dirs, tmp_path, model):
    opts = _opts(dirs, tmp_path, model, steps=40, valid_every=40, ckpt_every=40, si_weight=0.01, noise_weight=0.5)
    torch.manual_seed(0)
    batch = __import__("deepsep.voicedata", fromlist=["x"]).OnTheFlyMixer.from_folders(
        opts.speech_dir, opts.noise_dir, SR, 4000, seed=123).batch(8)
    summary = train(opts, progress=False)
    assert summary["step"] == 40
    ck = load_checkpoint(tmp_path / "run" / "last.pt")
    fresh = make_model(opts).eval()
    trained = model_from_checkpoint(tmp_path / "run" / "last.pt")
    with torch.no_grad():
        before = float(voice_loss(fresh, batch[0], batch[1], opts))
        after = float(voice_loss(trained, batch[0], batch[1], opts))
    assert after < before
    assert ck["step"] == 40 and (tmp_path / "run" / "best.pt").is_file()
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "end" and any(r["event"] == "valid" for r in log)


def test_checkpoint_is_plain_data_and_resume_continues(dirs, tmp_path):
    opts = _opts(dirs, tmp_path, steps=6, ckpt_every=3, valid_every=3)
    train(opts, progress=False)
    raw = torch.load(tmp_path / "run" / "last.pt", weights_only=True)  # no pickled classes
    assert raw["step"] == 6 and raw["arch"] == "unet" and "optimizer" in raw
    opts.steps = 9
    summary = train(opts, progress=False, resume=True)
    assert summary["step"] == 9
    lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    starts = [json.loads(line) for line in lines if '"start"' in line]
    assert [s["step"] for s in starts] == [0, 6]
    steps = [json.loads(line)["step"] for line in lines if '"train"' in line]
    assert steps == list(range(1, 10))


def test_resume_matches_uninterrupted(dirs, tmp_path):
    a = _opts(dirs, tmp_path / "a", steps=6, ckpt_every=3, valid_every=100)
    train(a, progress=False)
    b = _opts(dirs, tmp_path / "b", steps=3, ckpt_every=3, valid_every=100)
    train(b, progress=False)
    b.steps = 6
    train(b, progress=False, resume=True)
    sa = load_checkpoint(tmp_path / "a" / "run" / "last.pt")["model"]
    sb = load_checkpoint(tmp_path / "b" / "run" / "last.pt")["model"]
    assert all(torch.allclose(sa[k].float(), sb[k].float(), atol=1e-5) for k in sa)


def test_ema_is_validated_saved_as_best_and_resumed(dirs, tmp_path):
    """With --ema the moving average (not the raw weights) is validated and becomes best.pt; last.pt
    keeps both, and a resume continues the average exactly as an uninterrupted run."""
    a = _opts(dirs, tmp_path / "a", steps=6, ckpt_every=3, valid_every=6, ema=0.5)
    train(a, progress=False)
    b = _opts(dirs, tmp_path / "b", steps=3, ckpt_every=3, valid_every=100, ema=0.5)
    train(b, progress=False)
    b.steps, b.valid_every = 6, 6
    train(b, progress=False, resume=True)
    la, lb = (load_checkpoint(tmp_path / r / "run" / "last.pt") for r in "ab")
    assert float(la["ema"]["n_averaged"]) == 6
    for k in la["ema"]:
        assert torch.allclose(la["ema"][k].float(), lb["ema"][k].float(), atol=1e-5), k
    best = load_checkpoint(tmp_path / "a" / "run" / "best.pt")["model"]
    raw = la["model"]
    avg = {k[len("module."):]: v for k, v in la["ema"].items() if k.startswith("module.")}
    assert all(torch.equal(best[k], avg[k]) for k in best)
    assert any(not torch.equal(best[k], raw[k]) for k in best if best[k].is_floating_point())
    valid = [json.loads(r) for r in (tmp_path / "a" / "run" / "log.jsonl").read_text().splitlines() if '"valid"' in r]
    assert valid[-1]["raw"]["si_sdr"] != valid[-1]["si_sdr"]  # the raw weights are scored too, for the log
    c = _opts(dirs, tmp_path / "c", steps=3, ckpt_every=3, valid_every=100)  # started without an average
    train(c, progress=False)
    c.steps, c.ema = 5, 0.5
    train(c, progress=False, resume=True)
    assert float(load_checkpoint(tmp_path / "c" / "run" / "last.pt")["ema"]["n_averaged"]) == 2


def test_lr_schedule():
    o = VoiceTrainOptions(steps=100, warmup=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(o, 0) == pytest.approx(0.1)
    assert lr_at(o, 10) == pytest.approx(1.0)
    assert lr_at(o, 100) == pytest.approx(0.1)
    o.max_minutes = 1.0
    assert lr_at(o, 20, elapsed=60.0) == pytest.approx(0.1)  # the time budget ends the decay too


@pytest.mark.parametrize("half", [False, True])
def test_export_and_reload_identical(dirs, tmp_path, half):
    opts = _opts(dirs, tmp_path, steps=3, ckpt_every=3, valid_every=3)
    train(opts, progress=False)
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"version": 1, "default": "", "aliases": {}, "models": [
        {"name": "other", "task": "speech", "arch": "tiny", "config": {}, "sample_rate": 8000, "channels": 1,
         "sources": ["voice", "noise"], "file": "o.safetensors", "sha256": "0", "size": 1}]}))
    for _ in range(2):  # exporting twice replaces the entry
        entry = export_model(tmp_path / "run" / "best.pt", "voice-x", tmp_path / "w", manifest, half=half,
                             alias="voice", training_command="deepsep train unet")
    path = tmp_path / "w" / "voice-x.safetensors"
    assert entry["sha256"] == sha256_file(path) and entry["size"] == path.stat().st_size
    assert entry["task"] == "speech" and entry["arch"] == "unet" and entry["sources"] == ["voice", "noise"]
    assert "UrbanSound8K" in entry["license"] and "si_sdri" in entry["metrics"]
    assert set(entry["metrics"]["per_snr"]) == {"-5", "0", "5", "10"}
    m = load_manifest(manifest)
    assert set(m.entries) == {"other", "voice-x"} and m.aliases == {"voice": "voice-x"}
    reloaded = load_model(path)
    original = model_from_checkpoint(tmp_path / "run" / "best.pt")
    if half:
        for p in list(original.parameters()) + list(original.buffers()):
            if p.is_floating_point():
                p.data = p.data.half().float()
    x = torch.randn(2, 1, 3000)
    with torch.no_grad():
        assert torch.equal(reloaded(x), original(x))


def test_train_command(dirs, tmp_path, monkeypatch):
    """The recipe's data folders come from --data-root; --export writes into the run folder (with
    a .sha256 that deepsep trusts) unless --export-to says where."""
    o = _opts(dirs, tmp_path)
    monkeypatch.delenv("DEEPSEP_DATA", raising=False)
    res = CliRunner().invoke(train_group, [
        "convtasnet", "--data-root", str(dirs), "--valid-dir", o.valid_dir, "--steps", "2", "--batch-size", "2",
        "--segment", "0.25", "--config", json.dumps(TINY["convtasnet"]), "-o", str(tmp_path / "cli"),
        "--threads", "1", "--no-progress", "--export", "t0",
    ])
    assert res.exit_code == 0, res.output
    options = json.loads((tmp_path / "cli" / "log.jsonl").read_text().splitlines()[0])["options"]
    assert options["speech_dir"] == str(dirs / "speech" / "train")
    assert options["valid_noise_dir"] == str(dirs / "noise" / "valid")
    exported = tmp_path / "cli" / "t0.safetensors"
    assert load_manifest(tmp_path / "cli" / "weights_manifest.json").entries["t0"].arch == "convtasnet"
    assert resolve(str(exported), load_manifest()).origin == "file"  # its .sha256 vouches
    res = CliRunner().invoke(train_group, ["export", str(tmp_path / "cli" / "best.pt"), "--name", "t",
                                           "--export-to", str(tmp_path / "w")])
    assert res.exit_code == 0, res.output
    assert load_manifest(tmp_path / "w" / "weights_manifest.json").entries["t"].arch == "convtasnet"
    res = CliRunner().invoke(train_group, ["export", str(tmp_path / "cli" / "best.pt"), "--name", "t16",
                                           "--export-to", str(tmp_path / "w"), "--recipe", "convtasnet16"])
    assert res.exit_code == 0, res.output
    entry = load_manifest(tmp_path / "w" / "weights_manifest.json").entries["t16"]
    assert "wideband" in entry.trained_on and "CC BY 4.0" in entry.license and "NC" not in entry.license


def test_missing_data_root_is_a_usage_error(tmp_path, monkeypatch):
    """No data root (a missing $DEEPSEP_DATA or --data-root): one line, exit 2, before any work."""
    monkeypatch.setenv("DEEPSEP_DATA", str(tmp_path / "nowhere"))
    res = CliRunner().invoke(train_group, ["unet", "-o", str(tmp_path / "run"), "--no-progress"])
    assert res.exit_code == 2 and "DEEPSEP_DATA" in res.output and "nowhere" in res.output, res.output
    assert not (tmp_path / "run").exists()
    res = CliRunner().invoke(train_group, ["unet", "--data-root", str(tmp_path / "no"), "-o", str(tmp_path / "run")])
    assert res.exit_code == 2 and "--data-root" in res.output, res.output
    res = CliRunner().invoke(train_group, ["unet", "--narrow-speech", str(tmp_path), "--data-root", str(tmp_path),
                                           "-o", str(tmp_path / "run")])
    assert res.exit_code == 2 and "band-limited examples" in res.output, res.output  # no band-limited examples at 8 kHz
    assert not (tmp_path / "run").exists()
    for extra, message in ((["--p-full-rate", "1.5"], "from 0 to 1"), (["--p-full-rate", "0.5", "--mixtures", str(tmp_path)],
                                                                      "does not go with --mixtures")):
        res = CliRunner().invoke(train_group, ["unet16", *extra, "--data-root", str(tmp_path), "-o", str(tmp_path / "run")])
        assert res.exit_code == 2 and message in res.output, res.output
        assert not (tmp_path / "run").exists()


def test_run_folder_is_never_replaced_silently(dirs, tmp_path):
    """Into a folder that holds a run: refused (exit 2, one line, before any data is read) without
    --resume or --overwrite; --resume needs a last.pt; --overwrite starts over."""
    o = _opts(dirs, tmp_path)
    run_dir = tmp_path / "cli"
    args = ["unet", "--speech", o.speech_dir, "--noise", o.noise_dir, "--valid-speech", o.valid_speech_dir,
            "--valid-noise", o.valid_noise_dir, "--valid-dir", o.valid_dir, "--steps", "2", "--batch-size", "2",
            "--segment", "0.25", "--config", json.dumps(TINY["unet"]), "-o", str(run_dir), "--threads", "1",
            "--no-progress", "--valid-every", "2"]
    nowhere = ["--speech", str(tmp_path / "no-speech")]  # data that would fail to load
    invoke = CliRunner().invoke

    def refused(extra: list[str], words: str) -> None:
        res = invoke(train_group, [*args, *extra, *nowhere])
        assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
        assert words in res.output, res.output

    refused(["--resume"], "nothing to resume")
    assert invoke(train_group, args).exit_code == 0
    before = {f: (run_dir / f).read_bytes() for f in ("last.pt", "best.pt", "log.jsonl")}
    refused([], "holds last.pt and best.pt of a run: use --resume to continue it or --overwrite to start over")
    refused(["--resume", "--overwrite"], "cannot go together")
    assert {f: (run_dir / f).read_bytes() for f in before} == before
    (run_dir / "last.pt").unlink()  # best.pt alone is a run too
    refused([], "holds best.pt")
    with pytest.raises(UsageError, match="--resume to continue"):  # the library refuses as well
        train(_opts(dirs, tmp_path, out=str(run_dir)), progress=False)
    res = invoke(train_group, [*args, "--overwrite", "--steps", "1"])
    assert res.exit_code == 0, res.output
    starts = [json.loads(line)["step"] for line in Path(run_dir / "log.jsonl").read_text().splitlines() if '"start"' in line]
    assert starts == [0] and load_checkpoint(run_dir / "last.pt")["step"] == 1


def test_wideband_training_with_augmentation(dirs, tmp_path, monkeypatch):
    """A 16 kHz run on 8 kHz files (resampled), with reverberation, EQ and band limiting (with
    narrow-band corpora for the band-limited examples)."""
    monkeypatch.setenv("DEEPSEP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("deepsep.train.validation.VALID_RIRS", 2)
    opts = _opts(dirs, tmp_path, config={**TINY["unet"], "sample_rate": 16000}, steps=4, valid_every=4,
                 p_reverb=0.5, p_eq=0.5, p_band_limit=0.5, rir_count=2, valid_p_reverb=0.5,
                 narrow_speech_dir=str(dirs / "speech" / "valid"), narrow_noise_dir=str(dirs / "noise" / "valid"))
    summary = train(opts, progress=False)
    assert summary["step"] == 4 and np.isfinite(summary["best_si_sdr"])
    params = json.loads((tmp_path / "valid" / "params.json").read_text())
    assert params["sample_rate"] == 16000 and params["p_reverb"] == 0.5
    assert sf.info(str(next((tmp_path / "valid").glob("0000/voice.wav")))).samplerate == 16000


def test_init_continues_from_given_weights_and_export_records_stages(dirs, tmp_path, monkeypatch):
    train(_opts(dirs, tmp_path, steps=3, ckpt_every=3, valid_every=3))
    manifest = tmp_path / "w" / "m.json"
    manifest.parent.mkdir()
    export_model(tmp_path / "run" / "best.pt", "voice-x", tmp_path / "w", manifest, training_command="stage one")
    monkeypatch.setenv("DEEPSEP_MANIFEST", str(manifest))
    first = model_from_checkpoint(tmp_path / "run" / "best.pt")
    for source in (str(tmp_path / "run" / "best.pt"), "voice-x", str(tmp_path / "w" / "voice-x.safetensors")):
        model = make_model(_opts(dirs, tmp_path))
        init_weights(model, source)
        for k, v in first.state_dict().items():
            torch.testing.assert_close(model.state_dict()[k], v)
    with pytest.raises(ValueError, match="another config"):
        init_weights(make_model(_opts(dirs, tmp_path, config={**TINY["unet"], "channels": [4, 4]})), "voice-x")
    other_hop = make_model(_opts(dirs, tmp_path, config={**TINY["unet"], "hop": 8}))  # the same weights' shapes
    assert init_weights(other_hop, "voice-x") == ["hop: 16 -> 8"]
    torch.testing.assert_close(other_hop.state_dict(), first.state_dict())
    second = _opts(dirs, tmp_path, steps=2, ckpt_every=2, valid_every=2, init="voice-x", out=str(tmp_path / "run2"))
    train(second, progress=False)
    entry = export_model(tmp_path / "run2" / "best.pt", "voice-y", tmp_path / "w", manifest,
                         training_command="stage two")
    assert [s["command"] for s in entry["stages"]] == ["stage one", "stage two"]
    assert entry["stages"][1]["init"] == "voice-x" and entry["stages"][1]["steps"] == 2
    assert load_manifest(manifest).entries["voice-y"].stages[0]["command"] == "stage one"
    given = export_model(tmp_path / "run2" / "best.pt", "voice-z", tmp_path / "w", manifest,
                         training_command="stage two", earlier_stages=[{"command": "on a GPU", "minutes": 5.5}])
    assert [s["command"] for s in given["stages"]] == ["on a GPU", "stage two"]


@pytest.mark.parametrize("model", ["unet", "convtasnet"])
def test_perceptual_loss_terms(dirs, tmp_path, model):
    """--mag-power and --stft-weight change the loss, keep it differentiable, and a short run with
    them still lowers it."""
    mixer = __import__("deepsep.voicedata", fromlist=["x"]).OnTheFlyMixer.from_folders(
        str(dirs / "speech" / "train"), str(dirs / "noise" / "train"), SR, 4000, seed=1)
    mix, voice, _ = mixer.batch(4)
    net = make_model(_opts(dirs, tmp_path, model))
    plain = voice_loss(net, mix, voice, _opts(dirs, tmp_path, model))
    opts = _opts(dirs, tmp_path, model, mag_power=0.3, stft_weight=1.0, steps=30, valid_every=30, ckpt_every=30)
    both = voice_loss(net, mix, voice, opts)
    both.backward()
    assert torch.isfinite(both) and float(both.detach()) != float(plain.detach())
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    train(opts, progress=False)
    losses = _losses(tmp_path / "run" / "log.jsonl")
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_worker_batches_train_resume_and_differ_by_worker(dirs, tmp_path):
    """--workers: batches mixed in background processes (each worker its own random stream), the
    run checkpoints how many were drawn, and a resume goes on from there with fresh examples."""
    from deepsep.train.batches import WorkerBatches
    from deepsep.voicedata import OnTheFlyMixer

    mixer = OnTheFlyMixer.from_folders(str(dirs / "speech" / "train"), str(dirs / "noise" / "train"), SR, 2000)
    batches = WorkerBatches(mixer, 3, workers=2, seed=5)
    a, b = batches.batch(3), batches.batch(3)
    assert a[0].shape == (3, 1, 2000) and torch.allclose(a[0], a[1] + a[2])
    assert not torch.equal(a[0], b[0]) and batches.state() == {"seed": 5, "drawn": 2}
    with pytest.raises(ValueError, match="batches of 3"):
        batches.batch(4)
    opts = _opts(dirs, tmp_path, steps=4, ckpt_every=2, valid_every=4, workers=2)
    assert train(opts, progress=False)["step"] == 4
    assert json.loads(load_checkpoint(tmp_path / "run" / "last.pt")["data_rng"]) == {"seed": 0, "drawn": 4}
    opts.steps = 6
    assert train(opts, progress=False, resume=True)["step"] == 6
    with pytest.raises(UsageError, match="--mixtures"):  # refused with the options, before any work
        _opts(dirs, tmp_path, workers=2, mixtures=str(tmp_path))


def test_validation_gives_the_numbers_of_deepsep_eval(dirs, tmp_path):
    """The same weights on the same items: training validation and `deepsep eval` agree."""
    from deepsep.commands.evaluate import evaluate_command

    opts = _opts(dirs, tmp_path, steps=4, ckpt_every=4, valid_every=4)
    train(opts, progress=False)
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if '"valid"' in line][-1]
    res = CliRunner().invoke(evaluate_command, ["--dataset", str(tmp_path / "valid"), "--checkpoint",
                                                str(tmp_path / "run" / "last.pt"), "-o", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "ev" / "report.json").read_text())
    rows = rows.get("summary", rows)
    voice = next(r for r in rows if r["method"] == "model" and r["source"] == "voice" and r["group"] == "all")
    assert voice["si_sdr_mean"] == pytest.approx(logged["si_sdr"], abs=2e-3)
    assert voice["si_sdri_mean"] == pytest.approx(logged["si_sdri"], abs=2e-3)
    assert voice["sdr_mean"] == pytest.approx(logged["sdr"], abs=2e-3)


def test_command_line_records_the_options_as_given():
    """The training command a manifest records (voice and music alike): the options given, in their
    long form, a repeatable option once per value (not its tuple)."""
    from deepsep.commands.command_line import command_line
    from deepsep.commands.train import unet
    from deepsep.commands.train_music import music

    ctx = music.make_context("music", ["--extra", "runs/eif6", "--extra", "a b", "--supervised-only", "--steps", "5",
                                       "-o", "runs/x"])
    assert command_line(ctx) == "music --extra runs/eif6 --extra 'a b' --supervised-only --steps 5 --out runs/x"
    ctx = unet.make_context("unet", ["--steps", "5", "-o", "r", "--no-progress", "--lr", "2e-3"])
    assert command_line(ctx) == "unet --steps 5 --lr 0.002 --out r --no-progress"


def test_validation_at_a_file_rate_scores_the_items_as_files_of_that_rate(dirs, tmp_path):
    """--valid-rate 48000: the validation items resampled to 48 kHz (mixture = voice + noise), which the
    pipeline brings to the model's rate and back; logged, and recorded by the export."""
    from deepsep.train.validation import ValidationSet, evaluate

    opts = _opts(dirs, tmp_path, steps=3, ckpt_every=3, valid_every=3, p_full_rate=1.0, valid_rate=48000)
    train(opts, progress=False)
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines() if '"valid"' in line][-1]
    model = model_from_checkpoint(tmp_path / "run" / "last.pt")
    at48, at8 = ValidationSet(tmp_path / "valid", SR, 48000), ValidationSet(tmp_path / "valid", SR)
    item = at48.items[0]
    refs, rate = item.load_references()
    assert rate == item.rate == 48000 and refs["voice"].shape[-1] == 6 * at8.items[0].load_references()[0]["voice"].shape[-1]
    np.testing.assert_allclose(item.mixture, refs["voice"] + refs["noise"], atol=1e-6)
    assert evaluate(model, at48)["si_sdr"] == pytest.approx(logged["si_sdr"], abs=2e-3)
    assert evaluate(model, at8)["si_sdr"] != pytest.approx(logged["si_sdr"], abs=1e-3)
    entry = export_model(tmp_path / "run" / "last.pt", "v48", tmp_path / "w", manifest=None)
    assert "resampled to 48000 Hz" in entry["metrics"]["validation"]
    assert entry["metrics"]["si_sdr"] == pytest.approx(logged["si_sdr"], abs=0.05)  # the float32 file
    at_model_rate = export_model(tmp_path / "run" / "last.pt", "v8", tmp_path / "w", manifest=None, valid_rate=0)
    assert "resampled" not in at_model_rate["metrics"]["validation"]
    with pytest.raises(UsageError, match="--valid-rate"):
        _opts(dirs, tmp_path, valid_rate=-1)


@pytest.mark.parametrize("source, message", [
    ("voice16-ensemble",
     "an ensemble, with no weights of its own; give one of its models (voice16-unet, voice16-convtasnet-member)"),
    ("voice", "an alias of several models"),
    ("nosuch", "unknown model 'nosuch'"),
    ("missing/best.pt", "no such file"),
])
def test_an_init_without_weights_is_a_usage_error_before_any_work(tmp_path, source, message):
    from deepsep.train.checkpoints import check_init

    with pytest.raises(UsageError, match=re.escape(f"--init {source}: ") + ".*" + re.escape(message)):
        check_init(source)
    res = CliRunner().invoke(main, ["train", "unet16", "--init", source, "--steps", "1", "-o", str(tmp_path / "run"),
                                    "--data-root", str(tmp_path)])
    assert res.exit_code == 2 and f"--init {source}: " in res.output and not (tmp_path / "run").exists(), res.output


@pytest.mark.parametrize("model", ["convtasnet", "unet"])
def test_partner_trains_a_member_of_an_ensemble(dirs, tmp_path, model):
    """--partner: the loss and the validation score the weighted average of a frozen partner's stems
    and the model's (the ensemble it is trained for), not the model alone."""
    from deepsep.models.bag import ModelBag
    from deepsep.train.validation import ValidationSet, evaluate

    train(_opts(dirs, tmp_path / "p", "convtasnet", steps=3, ckpt_every=3, valid_every=100), progress=False)
    partner_pt = tmp_path / "p" / "run" / "last.pt"
    opts = _opts(dirs, tmp_path / "m", model, steps=4, ckpt_every=4, valid_every=4, partner=str(partner_pt),
                 partner_weight=0.6, si_weight=0.5)
    train(opts, progress=False)
    logged = [json.loads(r) for r in (tmp_path / "m" / "run" / "log.jsonl").read_text().splitlines() if '"valid"' in r][-1]
    partner, member = model_from_checkpoint(partner_pt), model_from_checkpoint(tmp_path / "m" / "run" / "last.pt")
    valid = ValidationSet(opts.valid_dir, SR)
    bag = evaluate(ModelBag([partner, member], [0.6, 0.4]), valid)
    assert not partner.training and not member.training  # validation gives each member its own mode back
    alone = evaluate(member, valid)
    assert logged["si_sdr"] == pytest.approx(bag["si_sdr"], abs=1e-3)
    assert abs(alone["si_sdr"] - bag["si_sdr"]) > 1e-2
    batch = OnTheFlyMixer.from_folders(opts.speech_dir, opts.noise_dir, SR, 4000, seed=1).batch(2)

    class Fixed:
        def batch(self, size):
            return batch

    task = VoiceTask(opts, member, Fixed(), valid, torch.device("cpu"), partner)  # type: ignore[arg-type]
    mix, voice = batch[:2]
    with torch.no_grad():  # the step's loss is the bag's
        step = float(task.step_loss()[0])
        plain = float(voice_loss(member, mix, voice, opts))
        assert abs(step - plain) > 1e-3
        if model == "convtasnet":  # a waveform loss: exactly the bag's
            assert step == pytest.approx(float(voice_loss(ModelBag([partner, member], [0.6, 0.4]), mix, voice, opts)),
                                         abs=1e-4)
        else:  # the U-Net's spectral loss on the bag's voice: near the plain loss for a tiny partner weight,
            # lower beside a partner that is right (the true stems)
            oracle = torch.stack([voice, mix - voice], dim=1)
            near = dataclasses.replace(opts, partner_weight=1e-4)
            assert float(voice_loss(member, mix, voice, near, _Const(partner(mix)))) == pytest.approx(plain, rel=1e-3)
            assert float(voice_loss(member, mix, voice, opts, _Const(oracle))) < 0.6 * plain
    with pytest.raises(UsageError, match="--partner-weight"):
        _opts(dirs, tmp_path, "convtasnet", partner=str(partner_pt), partner_weight=1.0)
    with pytest.raises(UsageError, match="--partner voice16-convtasnet: 16000 Hz"):
        train(_opts(dirs, tmp_path / "x", "convtasnet", steps=1, partner="voice16-convtasnet"), progress=False)
    res = CliRunner().invoke(main, ["train", "convtasnet16", "--partner", "voice16-ensemble", "--steps", "1",
                                    "-o", str(tmp_path / "run"), "--data-root", str(tmp_path)])
    assert res.exit_code == 2 and "--partner voice16-ensemble: an ensemble" in res.output, res.output


def test_freeze_bn_keeps_the_running_statistics(dirs, tmp_path):
    """--freeze-bn: the U-Net's batch-norm statistics stay those of its --init weights (through
    validations too), while its weights train; without it they move."""
    train(_opts(dirs, tmp_path / "a", steps=3, ckpt_every=3, valid_every=100), progress=False)
    init = tmp_path / "a" / "run" / "last.pt"

    def stats(path):
        state = load_checkpoint(path)["model"]
        return {k: v for k, v in state.items() if "running_" in k}, {k: v for k, v in state.items() if "weight" in k}

    before_stats, before_w = stats(init)
    assert before_stats
    for freeze in (True, False):
        out = tmp_path / f"f{freeze}"
        train(_opts(dirs, out, steps=4, ckpt_every=4, valid_every=2, init=str(init), freeze_bn=freeze), progress=False)
        after_stats, after_w = stats(out / "run" / "last.pt")
        same = all(torch.equal(before_stats[k], after_stats[k]) for k in before_stats)
        assert same is freeze
        assert any(not torch.equal(before_w[k], after_w[k]) for k in before_w)
    res = CliRunner().invoke(train_group, ["unet16", "--help"])
    assert "--freeze-bn" in res.output
