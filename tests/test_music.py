"""The music side: MUSDB18 readers and cache, augmentation, the masking network, the adversarial
training steps, export. Tiny configs and tiny signals only (fast)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from deepsep import musdb
from deepsep.audio import resample
from deepsep.dsp import apply_masks, istft, stft
from deepsep.modelfile import load_model
from deepsep.models.bandsplit import BandSplitConfig, BandSplitMasker
from deepsep.models.music import MusicMasker, MusicMaskerConfig, SourceMasker
from deepsep.registry import build_model
from deepsep.train.adversary import Adversary
from deepsep.train.checkpoints import averaged_weights, init_weights, load_checkpoint, model_from_checkpoint
from deepsep.train.music import (
    MusicBatches,
    MusicLoss,
    MusicTrainOptions,
    export_music,
    load_data,
    mask_losses,
    merge_unknown,
    track_weights,
    train_music,
    trained_on,
)

SR = 44100
TINY = {"n_fft": 256, "hop": 128, "hidden": 16, "layers": 1, "max_freq": 4000.0}
FREQS = {"mixture": 200.0, "drums": 300.0, "bass": 400.0, "other": 500.0, "vocals": 600.0}


def _peak(x: np.ndarray, sr: int = SR) -> float:
    spec = np.abs(np.fft.rfft(x.mean(0)))
    return float(np.argmax(spec) * sr / x.shape[-1])


def _tone(f: float, n: int, sr: int = SR, stereo_gain=(1.0, 0.5)) -> np.ndarray:
    t = np.arange(n) / sr
    x = 0.2 * np.sin(2 * np.pi * f * t)
    return np.stack([x * stereo_gain[0], x * stereo_gain[1]]).astype(np.float32)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_stem_mp4_reader_and_cache(tmp_path, monkeypatch):
    path = tmp_path / "Artist - Song.stem.mp4"
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    for f in FREQS.values():
        cmd += ["-f", "lavfi", "-i", f"sine=frequency={f}:sample_rate={SR}:duration=0.5"]
    for i in range(5):
        cmd += ["-map", str(i)]
    cmd += ["-ac", "2", "-c:a", "aac", "-b:a", "96k", str(path)]
    subprocess.run(cmd, check=True)
    tracks = musdb.find_tracks(tmp_path)
    assert [t.name for t in tracks] == ["Artist - Song"]
    data = musdb.decode_track(tracks[0])
    assert data.shape[:2] == (5, 2) and abs(data.shape[-1] - SR // 2) < 2048
    order = ("mixture", *musdb.SOURCES)  # cached layout: mixture, vocals, drums, bass, other
    for k, name in enumerate(order):
        assert abs(_peak(data[k]) - FREQS[name]) < 10, name
    cache = tmp_path / "cache"
    first = musdb.cached_track(tracks[0], cache)
    assert first.dtype == np.float16 and len(list(cache.glob("*.npy"))) == 1
    monkeypatch.setattr(musdb, "decode_track", lambda *a, **k: pytest.fail("decoded twice"))
    np.testing.assert_array_equal(musdb.cached_track(tracks[0], cache), first)


def _write_stems(folder, n=2048, with_mix=True, names=musdb.SOURCES, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    stems = {s: (0.1 * rng.standard_normal((n, 2))).astype(np.float32) for s in names}
    for s, x in stems.items():
        sf.write(folder / f"{s}.wav", x, SR, subtype="FLOAT")
    if with_mix:
        sf.write(folder / "mixture.wav", sum(stems.values()), SR, subtype="FLOAT")
    return stems


def test_folder_layouts(tmp_path):
    hq = tmp_path / "hq"
    stems = _write_stems(hq / "Track B", seed=1)
    _write_stems(hq / "Track A", with_mix=False, seed=2)
    (hq / "not a track").mkdir()
    refs = musdb.find_tracks(hq)
    assert [t.name for t in refs] == ["Track A", "Track B"]
    data = musdb.decode_track(refs[1])
    assert data.shape == (5, 2, 2048)
    np.testing.assert_allclose(data[1], stems["vocals"].T, atol=1e-6)
    np.testing.assert_allclose(data[0], data[1:].sum(0), atol=1e-5)
    no_mix = musdb.decode_track(refs[0])
    np.testing.assert_allclose(no_mix[0], no_mix[1:].sum(0), atol=1e-6)
    sf.write(hq / "Track B" / "mixture.wav", 0.5 * sum(stems.values()), SR, subtype="FLOAT")  # its own mixture
    ds = musdb.MusicDataset(hq, n_valid=1, cache_dir=tmp_path / "cache")
    np.testing.assert_allclose(ds.mixture("Track B").astype(np.float32), 0.5 * sum(stems.values()).T, atol=1e-3)
    np.testing.assert_allclose(ds.mixture("Track A").astype(np.float32), no_mix[0], atol=2e-3)  # none: the stems' sum

    dsd = tmp_path / "dsd"
    src = _write_stems(dsd / "Sources" / "Dev" / "051 - Song", with_mix=False)
    mixdir = dsd / "Mixtures" / "Dev" / "051 - Song"
    mixdir.mkdir(parents=True)
    sf.write(mixdir / "mixture.wav", sum(src.values()), SR, subtype="FLOAT")
    refs = musdb.find_tracks(dsd)
    assert [t.name for t in refs] == ["051 - Song"]
    data = musdb.decode_track(refs[0])
    np.testing.assert_allclose(data[3], src["bass"].T, atol=1e-6)


def test_stem_folders_opus_mono_and_an_unknown_stem(tmp_path):
    """Opus and WAV stems at 48 kHz, one mono, lengths off by a few ms, no bass: found, read at
    44.1 kHz in stereo, cut to the shortest, bass marked unknown (zeros), mixture = sum of the rest."""
    root, rate = tmp_path / "music", 48000
    song = root / "Song"
    song.mkdir(parents=True)
    tones = {"vocals": 600.0, "drums": 300.0, "other": 500.0}
    lengths = {"vocals": rate, "drums": rate + 100, "other": rate + 200}
    for s in ("vocals", "other"):
        sf.write(song / f"{s}.opus", _tone(tones[s], lengths[s], rate).T, rate, format="OGG", subtype="OPUS")
    drums = _tone(tones["drums"], lengths["drums"], rate)[0]  # mono
    sf.write(song / "drums.wav", drums, rate, subtype="FLOAT")
    (root / "Solo").mkdir()
    sf.write(root / "Solo" / "vocals.wav", drums, rate)  # one stem is not a track
    _write_stems(root / "Full", n=SR // 2, with_mix=False)
    refs = {t.name: t for t in musdb.find_tracks(root)}
    assert sorted(refs) == ["Full", "Song"]
    ref = refs["Song"]
    assert ref.sources == ("vocals", "drums", "other") and ref.location == song
    np.testing.assert_array_equal(ref.known, [True, True, False, True])
    assert refs["Full"].known.all()
    data = musdb.decode_track(ref)
    assert data.shape[:2] == (5, 2) and abs(data.shape[-1] - SR) <= 2  # 1 s (the shortest) at 44.1 kHz
    for k, s in enumerate(musdb.SOURCES):
        if s in tones:
            assert abs(_peak(data[1 + k]) - tones[s]) < 3, s  # resampled: the tone keeps its pitch
    vocals, drums_out, bass = data[1], data[2], data[3]
    assert np.abs(vocals).max() > 0.1 and not np.array_equal(vocals[0], vocals[1])  # stereo Opus kept
    np.testing.assert_array_equal(drums_out[0], drums_out[1])  # mono duplicated
    np.testing.assert_allclose(drums_out[0], resample(drums[None], rate, SR)[0, :data.shape[-1]], atol=1e-6)
    assert not bass.any()
    np.testing.assert_allclose(data[0], data[1:].sum(0), atol=1e-6)

    cache = tmp_path / "cache"
    ds = musdb.MusicDataset(root, n_valid=1, cache_dir=cache)
    assert ds.unknown_stems() == {"Song": ["bass"]} and ds.known["Full"].all()
    np.testing.assert_array_equal(ds.known["Song"], ref.known)
    np.testing.assert_allclose(ds.stems("Song").astype(np.float32), data[1:], atol=1e-3)
    musdb.cached_track(ref, cache, 22050)  # the rate is part of the cache key
    assert len(list(cache.glob("Song.*.npy"))) == 2
    opts = MusicTrainOptions(config=TINY, data=str(root), cache=str(cache), n_valid=1, out=str(tmp_path / "run"))
    if "Song" in ds.valid_names:  # validation scores every stem: a validation track must have all four
        with pytest.raises(ValueError, match=r"Song \(no bass\)"):
            load_data(opts)
    else:  # a training track may miss one: the loss leaves it out
        assert load_data(opts).unknown_stems() == {"Song": ["bass"]}
    full_only = tmp_path / "full_only"  # the bass-less song as an extra, training-only folder
    (full_only / "Full").mkdir(parents=True)
    for f in (root / "Full").iterdir():
        (full_only / "Full" / f.name).write_bytes(f.read_bytes())
    (full_only / "Other").mkdir()
    for f in (root / "Full").iterdir():
        (full_only / "Other" / f.name).write_bytes(f.read_bytes())
    ds = load_data(MusicTrainOptions(config=TINY, data=str(full_only), extra=[str(root)], cache=str(cache), n_valid=1,
                                     out=str(tmp_path / "run2")))
    assert "music/Song" in ds.train_names and not any(n.startswith("music/") for n in ds.valid_names)
    assert ds.unknown_stems() == {"music/Song": ["bass"]}


def test_validation_split_by_track_is_deterministic(tmp_path):
    names = [f"track {i:02d}" for i in range(94)]
    train, valid = musdb.split_tracks(names, 10, seed=42)
    assert len(valid) == 10 and len(train) == 84 and not set(train) & set(valid)
    assert sorted(train + valid) == sorted(names)
    assert musdb.split_tracks(list(reversed(names)), 10, seed=42) == (train, valid)
    assert musdb.split_tracks(names, 10, seed=7)[1] != valid
    root = tmp_path / "hq"
    for i in range(4):
        _write_stems(root / f"T{i}", n=1024, seed=i)
    split = tmp_path / "run" / "split.json"
    ds = musdb.MusicDataset(root, n_valid=1, cache_dir=tmp_path / "cache", split_file=split)
    saved = json.loads(split.read_text())
    assert saved["valid"] == ds.valid_names and len(ds.valid_names) == 1
    again = musdb.MusicDataset(root, n_valid=1, split_seed=999, cache_dir=tmp_path / "cache", split_file=split)
    assert again.valid_names == ds.valid_names  # the run's saved split wins


def test_augmentation_keeps_mixture_the_sum_of_stems():
    rng = np.random.default_rng(0)
    tracks = [rng.standard_normal((4, 2, 500)).astype(np.float16) for _ in range(3)]
    for _ in range(20):
        stems, known = musdb.remix(tracks, 300, rng, p_silent=0.2)
        assert known.all()
        assert stems.shape == (4, 2, 300) and stems.dtype == np.float32
        np.testing.assert_allclose(musdb.mixture_of(stems), stems.sum(0))
    # without remixing, gains, swaps or flips: a contiguous excerpt of one track, mixture included
    stems, _ = musdb.remix(tracks, 300, rng, p_remix=0, gain_db=(0, 0), p_swap=0, p_flip=0)
    src = next(t for t in tracks if any(np.array_equal(stems[0, 0], t[0, 0, o:o + 300].astype(np.float32))
                                        for o in range(201)))
    off = next(o for o in range(201) if np.array_equal(stems[0, 0], src[0, 0, o:o + 300].astype(np.float32)))
    np.testing.assert_array_equal(stems, src[..., off:off + 300].astype(np.float32))
    x = rng.standard_normal((4, 2, 50)).astype(np.float32)
    np.testing.assert_allclose(musdb.apply_gains(x, np.full(4, 0.5)).sum(0), 0.5 * x.sum(0), rtol=1e-6)
    sw = musdb.swap_channels(x, np.array([1, 0, 1, 0], bool))
    np.testing.assert_array_equal(sw[0], x[0, ::-1])
    np.testing.assert_array_equal(sw[1], x[1])
    np.testing.assert_array_equal(musdb.swap_channels(x, np.ones(4, bool)).sum(0), x.sum(0)[::-1])
    np.testing.assert_array_equal(musdb.flip_signs(x, np.ones(4, bool)).sum(0), -x.sum(0))
    np.testing.assert_array_equal(musdb.random_excerpt(x, 80, rng)[..., 50:], 0)  # short: zero-padded


def test_speed_augmentation_changes_pitch_and_tempo_together_and_keeps_the_mixture_the_sum():
    from deepsep.errors import UsageError

    sr, f0 = 8000, 500.0
    tone = np.sin(2 * np.pi * f0 * np.arange(2 * sr) / sr).astype(np.float32)
    x = np.stack([tone, tone])[None].repeat(4, 0)  # (4, 2, 2 s)
    faster = musdb.change_speed(x, 50, 55)  # played 1.1 times as fast: 10 % shorter, 10 % higher
    assert faster.shape[:2] == (4, 2) and abs(faster.shape[-1] - round(2 * sr / 1.1)) <= 1
    peak = np.argmax(np.abs(np.fft.rfft(faster[0, 0]))) * sr / faster.shape[-1]
    assert abs(peak - 1.1 * f0) < 2
    rng = np.random.default_rng(0)
    peaks = set()
    for _ in range(30):  # a tone track: each example's rate shows in its pitch, within 1 +- 0.1
        stems, known = musdb.remix([x], 4000, rng, speed=0.1)
        assert stems.shape == (4, 2, 4000) and stems.dtype == np.float32 and known.all()
        np.testing.assert_allclose(musdb.mixture_of(stems), stems.sum(0))
        peaks.add(round(float(np.argmax(np.abs(np.fft.rfft(stems[0, 0])))) * sr / 4000))
    assert len(peaks) >= 5 and min(peaks) >= 0.9 * f0 - 2 and max(peaks) <= 1.1 * f0 + 2
    # one rate for all stems of an example: without remixing, gains, swaps or flips, the stems of a
    # track whose four stems are the same signal stay the same signal
    same = [np.repeat(rng.standard_normal((1, 2, 2000)), 4, axis=0).astype(np.float32)]
    for _ in range(10):
        stems, _ = musdb.remix(same, 300, rng, p_remix=0, gain_db=(0, 0), p_swap=0, p_flip=0, speed=0.2)
        np.testing.assert_array_equal(stems[1:], np.broadcast_to(stems[0], stems[1:].shape))
    with pytest.raises(UsageError, match="--speed"):
        MusicTrainOptions(speed=0.5)


TINY_BANDS = {"n_fft": 256, "hop": 128, "hidden": 8, "layers": 1, "max_freq": 4000.0, "bands": [500.0, 1000.0, 2500.0]}


@pytest.mark.parametrize("arch,config", [("music_masker", TINY), ("music_bandsplit", TINY_BANDS)])
def test_stems_sum_to_mixture_and_any_length(arch, config):
    torch.manual_seed(0)
    model = build_model(arch, config).eval()
    assert isinstance(model, SourceMasker) and model.sources == ("vocals", "drums", "bass", "other")
    for n in (1000, 4410):
        mix = torch.randn(2, 2, n)
        with torch.no_grad():
            out = model(mix)
        assert out.shape == (2, 4, 2, n)
        torch.testing.assert_close(out.sum(1), mix, atol=1e-4, rtol=1e-4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        MusicMaskerConfig().__setattr__("hidden", 3)  # frozen


def test_masks_applied_with_the_mixture_give_the_same_stems():
    """apply_masks given the mixture's waveform (the last stem as the mixture minus the others)
    returns what masking every source does, for masks summing to one, at any length."""
    torch.manual_seed(0)
    for n in (1000, 4410):
        mix = torch.randn(2, 2, n)
        spec = stft(mix, 256, 64)
        masks = torch.randn(2, 4, *spec.shape[1:]).softmax(dim=1)
        every = apply_masks(spec, masks, 256, 64, n)
        torch.testing.assert_close(apply_masks(spec, masks, 256, 64, n, mix=mix), every, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(every, istft(masks * spec.unsqueeze(1), 256, 64, n))  # real masks, complex spec


def test_default_model_fits_the_budget():
    for model in (MusicMasker(MusicMaskerConfig()), BandSplitMasker(BandSplitConfig())):
        n = sum(p.numel() for p in model.parameters())
        assert n * 2 <= 30e6  # fp16 storage
        assert model.default_segment > 0


def test_bands_cover_the_bins_the_network_sees():
    cfg = BandSplitConfig()
    edges = cfg.band_edges()
    assert edges[0] == 0 and edges[-1] == cfg.bins and all(b > a for a, b in zip(edges, edges[1:]))
    assert len(edges) - 1 == len(cfg.bands) == 24 and edges[1] == round(125 * cfg.n_fft / cfg.sample_rate)
    small = BandSplitConfig(n_fft=256, hop=128, max_freq=4000.0, bands=(10.0, 10.0, 500.0, 9000.0))
    e = small.band_edges()  # bands narrower than a bin merge into one of a bin; the last ends at max_freq
    assert e[0] == 0 and e[-1] == small.bins and all(b > a for a, b in zip(e, e[1:]))
    # each band's projection reads that band's bins of both channels
    model = BandSplitMasker(BandSplitConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in TINY_BANDS.items()}))
    assert [m[1].in_features for m in model.split] == [2 * w for w in model.widths]


def _checkpoint(path: Path, model: torch.nn.Module) -> str:
    """A training checkpoint of ``model`` as --init reads it."""
    torch.save({"arch": "music_bandsplit", "config": json.dumps(model.config.to_dict()), "options": "{}",
                "extra": "{}", "model": model.state_dict()}, path)
    return str(path)


def test_init_grows_a_band_split_model_deeper_and_it_separates_as_before(tmp_path):
    """--init from a band-split checkpoint with fewer layer pairs: the grown model's new pairs start
    as the identity (the same stems as the smaller model), and they train; other shape changes refuse."""
    torch.manual_seed(0)
    small = build_model("music_bandsplit", TINY_BANDS)
    with torch.no_grad():
        for p in small.parameters():
            p.add_(0.1 * torch.randn_like(p))
    source = _checkpoint(tmp_path / "small.pt", small)
    deep = build_model("music_bandsplit", {**TINY_BANDS, "layers": 3})
    assert init_weights(deep, source) == ["layers: 1 -> 3", "the new parts start as the identity"]
    mix = 0.1 * torch.randn(1, 2, 4000)
    with torch.no_grad():
        torch.testing.assert_close(deep(mix), small(mix))
    opts = MusicTrainOptions(config={**TINY_BANDS, "layers": 3}, model="music_bandsplit", supervised_only=True)
    MusicLoss(deep, opts, None)(0.1 * torch.randn(2, 4, 2, 4000))[0].backward()
    assert deep.time_rnns[2].proj.weight.grad.abs().sum() > 0  # the new pairs learn
    with pytest.raises(ValueError, match="another config"):  # wider: not grown
        init_weights(build_model("music_bandsplit", {**TINY_BANDS, "hidden": 12}), source)
    with pytest.raises(ValueError, match="another config"):  # shallower than the weights
        init_weights(build_model("music_bandsplit", TINY_BANDS), _checkpoint(tmp_path / "deep.pt", deep))


def test_generator_and_discriminator_steps_change_weights():
    torch.manual_seed(0)
    model = build_model("music_masker", TINY)
    opts = MusicTrainOptions(config=TINY, synth_fraction=0.5, identity_fraction=0.5)
    adv = Adversary(2, 4, 1e-3, torch.device("cpu"))
    loss_fn = MusicLoss(model, opts, adv)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    stems = 0.1 * torch.randn(4, 4, 2, 4096)
    g0 = {k: v.clone() for k, v in model.state_dict().items()}
    d0 = {k: v.clone() for k, v in adv.disc.state_dict().items()}
    for _ in range(2):  # the second step also uses synthetic mixtures (estimates of the first)
        loss, parts, est, real = loss_fn(stems)
        assert torch.isfinite(loss) and {"l1", "wave", "identity", "g_adv"} <= set(parts)
        opt.zero_grad()
        loss.backward()
        opt.step()
        d = adv.step(real, est)
        assert np.isfinite(d)
    assert "synth" in parts
    assert any(not torch.equal(g0[k], v) for k, v in model.state_dict().items())
    assert all(not torch.equal(d0[k], v) for k, v in adv.disc.state_dict().items())
    # supervised only: no adversary, only the supervised terms
    loss, parts, *_ = MusicLoss(model, MusicTrainOptions(config=TINY, supervised_only=True), None)(stems)
    assert set(parts) == {"l1", "wave"}


def test_batches_are_reproducible():
    tracks = [np.random.default_rng(i).standard_normal((4, 2, 3000)).astype(np.float16) for i in range(3)]
    a, b = MusicBatches(tracks, 1000, seed=3), MusicBatches(tracks, 1000, seed=3)
    state = a.state()
    x = a.batch(2)
    torch.testing.assert_close(x, b.batch(2))
    a.set_state(json.loads(json.dumps(state)))
    torch.testing.assert_close(a.batch(2), x)


def test_train_resume_export_reload(tmp_path):
    root = tmp_path / "data"
    for i in range(3):
        _write_stems(root / f"T{i}", n=SR // 2, seed=i)
    opts = MusicTrainOptions(config=TINY, data=str(root), cache=str(tmp_path / "cache"), n_valid=1,
                             steps=2, batch_size=2, segment=0.2, out=str(tmp_path / "run"), ckpt_every=1,
                             valid_every=2, threads=1)
    s = train_music(opts, progress=False)
    assert s["step"] == 2 and (tmp_path / "run" / "best.pt").is_file()
    assert (tmp_path / "run" / "split.json").is_file()
    ck = load_checkpoint(tmp_path / "run" / "last.pt")  # weights_only loading
    assert ck["step"] == 2 and "adversary" in ck
    opts.steps = 3
    assert train_music(opts, progress=False, resume=True)["step"] == 3
    manifest = tmp_path / "manifest.json"
    entry = export_music(tmp_path / "run" / "best.pt", "m4", tmp_path / "out", manifest, half=False,
                         data=load_data(opts))
    reloaded = load_model(tmp_path / "out" / "m4.safetensors")
    ref = model_from_checkpoint(tmp_path / "run" / "best.pt")
    mix = torch.randn(1, 2, 3000)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(mix), ref(mix), rtol=0, atol=0)
    raw = json.loads(manifest.read_text())
    assert raw["models"][0]["name"] == "m4" and entry["task"] == "music"
    assert set(entry["metrics"]["sdr"]) == {"vocals", "drums", "bass", "other", "avg"}
    assert "irm2" in entry["metrics"]["baselines"] and "non-commercial" in entry["license"]
    half = export_music(tmp_path / "run" / "best.pt", "m4h", tmp_path / "out", None, half=True, data=load_data(opts))
    assert half["size"] < entry["size"]
    model_h = load_model(tmp_path / "out" / "m4h.safetensors")
    assert all(p.dtype == torch.float32 for p in model_h.parameters())


def test_selection_tracks_pick_the_checkpoint_and_validation_tracks_pick_nothing(tmp_path, monkeypatch):
    """--select-tracks: that many training tracks are held out (saved in split.json, disjoint from
    training and validation) and their SDR picks best.pt; the validation tracks are scored and logged."""
    import deepsep.train.music as music_train

    root = tmp_path / "data"
    for i in range(5):
        _write_stems(root / f"T{i}", n=SR // 4, seed=i)
    calls: dict[str, int] = {"valid": 0, "select": 0}

    def fake_sdr(model, data, names=None, device="cpu", segment=None):
        kind = "select" if names is not None and list(names) == data.select_names else "valid"
        calls[kind] += 1  # validation gets worse at every call, selection better
        avg = float(calls[kind]) if kind == "select" else -float(calls[kind])
        return {"tracks": 1, "sdr": {"avg": avg}}

    monkeypatch.setattr(music_train, "evaluate_music", fake_sdr)
    opts = MusicTrainOptions(config=TINY, data=str(root), cache=str(tmp_path / "cache"), n_valid=1, n_select=1,
                             steps=3, batch_size=2, segment=0.1, out=str(tmp_path / "run"), ckpt_every=1,
                             valid_every=1, threads=1, supervised_only=True)
    train_music(opts, progress=False)
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert len(split["select"]) == 1 and len(split["valid"]) == 1 and len(split["train"]) == 3
    assert not set(split["select"]) & (set(split["train"]) | set(split["valid"]))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    valid = [r for r in log if r["event"] == "valid"]
    assert [v["select"]["sdr"]["avg"] for v in valid] == [1.0, 2.0, 3.0]
    assert [v["sdr"]["avg"] for v in valid] == [-1.0, -2.0, -3.0]
    assert load_checkpoint(tmp_path / "run" / "best.pt")["step"] == 3  # the best on selection, the worst on validation


def test_gan_command_trains_evaluates_and_exports(tmp_path):
    from click.testing import CliRunner

    from deepsep.commands import train_music as cmd

    root = tmp_path / "data"
    for i in range(3):
        _write_stems(root / f"T{i}", n=SR // 4, seed=i)
    common = ["--data", str(root), "--cache", str(tmp_path / "cache"), "--valid-tracks", "1", "-o",
              str(tmp_path / "run"), "--config", json.dumps(TINY), "--threads", "1", "--no-progress"]
    runner = CliRunner()
    res = runner.invoke(cmd.music, [*common, "--steps", "2", "--batch-size", "2", "--segment", "0.1",
                                  "--supervised-only"])
    assert res.exit_code == 0, res.output
    split = (tmp_path / "run" / "split.json").read_text()
    for extra, words in (([], "--resume to continue it or --overwrite"), (["--resume", "--overwrite"], "cannot go")):
        res = runner.invoke(cmd.music, [*common, "--steps", "2", *extra])  # refused before the data is read
        assert res.exit_code == 2 and words in res.output and len(res.output.strip().splitlines()) == 1, res.output
    res = runner.invoke(cmd.music, [*common, "-o", str(tmp_path / "new"), "--resume"])
    assert res.exit_code == 2 and "nothing to resume" in res.output and not (tmp_path / "new").exists()
    res = runner.invoke(cmd.music, [*common, "--evaluate"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    assert set(out["baselines"]) == {"mixture", "irm1", "irm2"} and "avg" in out["model"]["sdr"]
    res = runner.invoke(cmd.music, [a for a in common if a != "--no-progress"] + ["--evaluate"])
    assert res.exit_code == 0 and "decoded" in res.stderr and json.loads(res.stdout) == out  # progress off stdout
    res = runner.invoke(cmd.music, [*common, "--evaluate", "--export", "m"])  # into the run folder
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run" / "m.safetensors").is_file() and (tmp_path / "run" / "m.safetensors.sha256").is_file()
    res = runner.invoke(cmd.music, [*common, "--evaluate", "--export", "m", "--export-to", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    entry = json.loads((tmp_path / "out" / "weights_manifest.json").read_text())["models"][0]
    assert "--supervised-only" in entry["training_command"] and (tmp_path / "out" / "m.safetensors").is_file()
    assert entry["metrics"]["method"] == "supervised only"
    res = runner.invoke(cmd.music, [*common, "--steps", "1", "--batch-size", "2", "--segment", "0.1",
                                  "--supervised-only", "--overwrite"])
    assert res.exit_code == 0, res.output
    log = (tmp_path / "run" / "log.jsonl").read_text()
    assert log.count('"start"') == 1 and (tmp_path / "run" / "split.json").read_text() == split
    # the band-split network trains, exports and loads through the same commands
    bands = [*common[:6], "-o", str(tmp_path / "bands"), "--arch", "music_bandsplit", "--config", json.dumps(TINY_BANDS),
             "--threads", "1", "--no-progress"]
    res = runner.invoke(cmd.music, [*bands, "--steps", "2", "--batch-size", "2", "--segment", "0.1", "--supervised-only",
                                    "--export", "b"])
    assert res.exit_code == 0, res.output
    model = load_model(tmp_path / "bands" / "b.safetensors")
    assert isinstance(model, BandSplitMasker) and len(model.widths) == 3
    # a stage from that checkpoint file records the stage before it (--earlier-stages) and its own
    (tmp_path / "stages.json").write_text(json.dumps([{"command": "stage one", "minutes": 44.0}]))
    stage2 = [*bands[:6], "-o", str(tmp_path / "bands2"), *bands[8:], "--init", str(tmp_path / "bands" / "best.pt"),
              "--steps", "1", "--batch-size", "2", "--segment", "0.1", "--supervised-only", "--export", "b2"]
    (tmp_path / "bad.json").write_text('{"command": "not a list"}')
    res = runner.invoke(cmd.music, [*stage2, "--earlier-stages", str(tmp_path / "bad.json")])
    assert res.exit_code == 2 and "JSON list" in res.output and not (tmp_path / "bands2").exists(), res.output
    res = runner.invoke(cmd.music, [*stage2, "--earlier-stages", str(tmp_path / "stages.json"), "--ema", "0.5"])
    assert res.exit_code == 0, res.output
    assert "(raw weights: avg" in res.output  # with a moving average, the raw weights' score is shown beside it
    valid = [json.loads(r) for r in (tmp_path / "bands2" / "log.jsonl").read_text().splitlines() if '"valid"' in r]
    assert valid and all("avg" in v["raw"]["sdr"] for v in valid)
    stages = json.loads((tmp_path / "bands2" / "weights_manifest.json").read_text())["models"][0]["stages"]
    assert [st["command"] for st in stages][0] == "stage one" and len(stages) == 2 and stages[1]["steps"] == 1


def test_final_exports_the_last_checkpoints_moving_average(tmp_path):
    """--final: what a rule fixed before the run takes, the run's last weights as their moving
    average (last.pt keeps the raw weights for a resume and the average beside them)."""
    from click.testing import CliRunner

    from deepsep.commands import train_music as cmd

    root = tmp_path / "data"
    for i in range(3):
        _write_stems(root / f"T{i}", n=SR // 4, seed=i)
    common = ["--data", str(root), "--cache", str(tmp_path / "cache"), "--valid-tracks", "1", "-o", str(tmp_path / "run"),
              "--arch", "music_bandsplit", "--config", json.dumps(TINY_BANDS), "--threads", "1", "--no-progress"]
    runner = CliRunner()
    res = runner.invoke(cmd.music, [*common, "--final"])
    assert res.exit_code == 2 and "--final" in res.output and not (tmp_path / "run").exists(), res.output
    res = runner.invoke(cmd.music, [*common, "--steps", "3", "--batch-size", "2", "--segment", "0.1", "--supervised-only",
                                    "--ema", "0.5", "--lr", "0.01"])
    assert res.exit_code == 0, res.output
    (tmp_path / "run" / "best.pt").unlink()  # what --final reads is last.pt
    res = runner.invoke(cmd.music, [*common, "--evaluate"])
    assert res.exit_code != 0 and "best.pt not found" in res.output
    res = runner.invoke(cmd.music, [*common, "--evaluate", "--final", "--export", "f", "--export-to", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    exported = load_model(tmp_path / "out" / "f.safetensors").state_dict()
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    average = averaged_weights(last)
    assert set(exported) == set(average) and last["step"] == 3
    assert all(torch.allclose(exported[k].float(), average[k].float(), atol=1e-3) for k in exported)
    assert any(not torch.allclose(average[k], last["model"][k]) for k in average)  # not the raw weights
    entry = json.loads((tmp_path / "out" / "weights_manifest.json").read_text())["models"][0]
    assert "final weights, which no split picked" in entry["metrics"]["validation"] and entry["metrics"]["step"] == 3


def test_remix_draws_stems_from_tracks_that_know_them_and_long_tracks_more_often():
    rng = np.random.default_rng(0)
    full = np.ones((4, 2, 400), np.float32)
    nobass = 2 * np.ones((3, 2, 4000), np.float32)  # vocals, drums, other: the stems it has
    masks = [np.ones(4, bool), np.array([True, True, False, True])]
    for _ in range(200):
        stems, known = musdb.remix([full, nobass], 300, rng, known=masks, p_remix=0.5, gain_db=(0, 0), p_flip=0)
        if known.all() and stems[2].any():
            assert np.all(stems[2] == 1)  # a remixed bass comes from the track that has one
        if not known[2]:
            np.testing.assert_array_equal(stems[:, 0, 0], [2, 2, 0, 2])  # all of the bass-less track
    batches = MusicBatches([full, nobass], 300, seed=1, p_remix=0, known=masks)
    assert batches.weights is not None
    _, known = batches.batch(200)
    assert (~known[:, 2]).float().mean() > 0.8  # the bass-less track, 10 times longer, drawn ~10 times in 11


def test_main_share_divides_the_draws_between_the_main_tracks_and_the_added_sets():
    from deepsep.errors import UsageError

    lengths, main = [100, 300, 1000, 3000], [True, True, False, False]
    np.testing.assert_allclose(track_weights(lengths, main), np.array(lengths) / 4400)  # default: by length
    w = track_weights(lengths, main, 0.6)
    np.testing.assert_allclose(w, [0.15, 0.45, 0.4 / 4, 0.4 * 3 / 4])  # 60 % main (by length within), 40 % the rest
    np.testing.assert_allclose(track_weights(lengths, [True] * 4, 0.6), np.array(lengths) / 4400)  # nothing to divide
    # drawn as weighted: a one-track-per-set pair, the added track 10 times longer, 70 % main
    full, added = np.ones((4, 2, 400), np.float32), 10 * np.ones((4, 2, 4000), np.float32)
    batches = MusicBatches([full, added], 300, seed=1, p_remix=0, weights=track_weights([400, 4000], [True, False], 0.7))
    stems, _ = batches.batch(400)
    assert 0.62 < float((stems[:, 0, 0, 0].abs() < 3).float().mean()) < 0.78  # gains: -6..+3 dB
    with pytest.raises(UsageError, match="between 0 and 1"):
        MusicTrainOptions(main_share=1.0, extra=["x"])
    with pytest.raises(UsageError, match="added sets"):
        MusicTrainOptions(main_share=0.5)


def test_loss_leaves_unknown_stems_out():
    """An unknown stem has no loss of its own, and its estimate counts inside ``other`` (where its
    sound is in a track without that stem): moving mask from bass to other changes nothing."""
    torch.manual_seed(0)
    b, s, c, f, n = 2, 4, 2, 9, 5
    mix = torch.randn(b, c, f, n, dtype=torch.complex64)
    target = torch.randn(b, s, c, f, n, dtype=torch.complex64)
    target[0, 2] = 0  # example 0: bass unknown
    known = torch.ones(b, s, dtype=torch.bool)
    known[0, 2] = False
    masks = torch.rand(b, s, c, f, n)
    moved = masks.clone()
    moved[0, 3] += moved[0, 2]
    moved[0, 2] = 0
    same = [torch.stack(mask_losses(m, mix, target, known)) for m in (masks, moved)]
    torch.testing.assert_close(same[0], same[1])
    plain = [torch.stack(mask_losses(m, mix, target)) for m in (masks, moved)]
    assert not torch.allclose(plain[0], plain[1])
    everyone = torch.ones(b, s, dtype=torch.bool)  # all known: the same as no mask
    torch.testing.assert_close(torch.stack(mask_losses(masks, mix, target, everyone)), plain[0])


def test_losses_are_the_masked_mixtures_errors():
    """The losses (computed in a rearranged form for speed) are what they say: the mean L1 between
    masked and target magnitudes and the mean |M X - Y|^2, each relative to the mixture's level,
    over known stems; and their gradients are those of that direct form (zero mixture bins too)."""
    torch.manual_seed(1)
    b, s, c, f, n = 3, 4, 2, 7, 6
    mix = torch.randn(b, c, f, n, dtype=torch.complex64)
    mix[1, :, :2] = 0
    target = torch.randn(b, s, c, f, n, dtype=torch.complex64)
    known = torch.ones(b, s, dtype=torch.bool)
    known[2, 1] = False
    logits = torch.randn(b, s, c, f, n, requires_grad=True)
    l1, wave = mask_losses(logits.softmax(dim=1), mix, target, known)
    (l1 + 0.5 * wave).backward()
    fast = logits.grad.clone()
    logits.grad = None
    m = merge_unknown(logits.softmax(dim=1), known)
    level, energy = mix.abs().mean(dim=(1, 2, 3)), mix.abs().pow(2).mean(dim=(1, 2, 3))
    w = known.float()
    l1_ref = (((m * mix.abs()[:, None] - target.abs()).abs().mean(dim=(2, 3, 4)) / level[:, None]) * w).sum() / w.sum()
    wave_ref = s * (((m * mix[:, None] - target).abs().pow(2).mean(dim=(2, 3, 4)) / energy[:, None]) * w).sum() / w.sum()
    torch.testing.assert_close(torch.stack([l1, wave]), torch.stack([l1_ref, wave_ref]).detach())
    (l1_ref + 0.5 * wave_ref).backward()
    torch.testing.assert_close(fast, logits.grad)


def test_a_cappella_files_train_as_vocals_at_the_songs_vocal_level(tmp_path):
    root = tmp_path / "music"
    for i in range(3):
        _write_stems(root / f"T{i}", n=SR // 2, with_mix=False, seed=i)  # vocals RMS 0.1
    solo = tmp_path / "pjs"
    solo.mkdir()
    sf.write(solo / "a.wav", _tone(440.0, SR // 2)[0] * 0.1, SR)  # mono, far quieter
    sf.write(solo / "b.flac", _tone(550.0, SR // 2)[0] * 2.0, SR)
    (solo / "notes.txt").write_text("not audio")
    sf.write(solo / "c.flac.partial.flac", _tone(660.0, SR // 2)[0], SR)  # a half-written render: not a track
    assert [t.name for t in musdb.solo_tracks(solo, "vocals")] == ["a", "b"]
    assert [t.name for t in musdb.solo_tracks(solo, "vocals", max_seconds=0.1)] == ["a"]
    ds = musdb.MusicDataset(root, n_valid=1, cache_dir=tmp_path / "cache", solo=[("vocals", solo)])
    assert {"pjs/a", "pjs/b"} <= set(ds.train_names) and not set(ds.valid_names) & {"pjs/a", "pjs/b"}
    np.testing.assert_array_equal(ds.known["pjs/a"], [True, False, False, False])
    ref = np.median([musdb.active_rms(ds.stems(n)[0].astype(np.float32)) for n in ds.train_names + ds.valid_names
                     if not n.startswith("pjs/")])
    for n in ("pjs/a", "pjs/b"):
        assert musdb.active_rms(ds.stems(n)[0].astype(np.float32)) == pytest.approx(ref, rel=0.02)
        assert not ds.stems(n)[1:].any()
    rng = np.random.default_rng(0)
    assert ds.known_stems("pjs/a").shape[0] == 1  # only what it has is kept in memory
    np.testing.assert_array_equal(ds.mixture("pjs/a"), ds.known_stems("pjs/a")[0])
    tracks = [ds.known_stems(n) for n in ds.train_names]
    known = [ds.known[n] for n in ds.train_names]
    for _ in range(20):  # remixed: every stem known, the accompaniment from the full tracks
        stems, mask = musdb.remix(tracks, 1000, rng, known=known, p_remix=1.0)
        assert mask.all() and all(stems[s].any() for s in range(1, 4))
    for _ in range(20):  # drawn whole: a song, never an a cappella file on its own
        stems, mask = musdb.remix(tracks, 1000, rng, known=known, p_remix=0.0)
        assert mask.all() and stems[1:].any()


def test_wiener_filtering_keeps_the_stems_summing_to_the_mixture():
    torch.manual_seed(0)
    plain = build_model("music_masker", TINY).eval()
    filtered = build_model("music_masker", {**TINY, "wiener_iterations": 1}).eval()
    filtered.load_state_dict(plain.state_dict())
    x = 0.1 * torch.randn(2, 2, 8192)
    with torch.inference_mode():
        a, b = plain(x), filtered(x)
    assert b.shape == a.shape and not torch.allclose(a, b, atol=1e-4)
    torch.testing.assert_close(b.sum(1), x, atol=1e-3, rtol=0)
    filtered.train()  # training never filters: the losses see the masks
    with torch.no_grad():
        torch.testing.assert_close(filtered(x), plain.train()(x))


def test_unlabelled_songs_train_the_semi_supervised_losses_and_init_continues_a_model(tmp_path):
    root = tmp_path / "data"
    for i in range(3):
        _write_stems(root / f"T{i}", n=SR // 2, seed=i)
    songs = tmp_path / "songs"
    songs.mkdir()
    sf.write(songs / "a.flac", _tone(700.0, SR // 2, 48000)[0], 48000)  # mono, 48 kHz
    (songs / "pkg").mkdir()
    sf.write(songs / "pkg" / "b.wav", _tone(800.0, SR // 2).T, SR)  # subfolders are searched too
    opts = MusicTrainOptions(config=TINY, data=str(root), cache=str(tmp_path / "cache"), n_valid=1, mixtures=[str(songs)],
                             steps=2, batch_size=2, segment=0.2, out=str(tmp_path / "run"), ckpt_every=1,
                             valid_every=2, threads=1, log_every=1)
    data = load_data(opts)
    assert sorted(data.songs) == ["songs/a", "songs/pkg/b"]
    a = data.songs["songs/a"]
    assert a.shape[0] == 2 and abs(a.shape[-1] - SR // 2 * SR // 48000) < 64 and abs(_peak(a.astype(np.float32)) - 700) < 10
    np.testing.assert_array_equal(a[0], a[1])  # mono upmixed
    # the loss: the songs' estimates are judged and feed the next step's synthetic mixtures
    torch.manual_seed(0)
    model = build_model("music_masker", TINY)
    adv = Adversary(2, 4, 1e-3, torch.device("cpu"))
    loss_fn = MusicLoss(model, opts, adv)
    batches = MusicBatches([data.stems(n) for n in data.train_names], 4410, seed=0, songs=list(data.songs.values()))
    mixes = batches.songs_batch(3)
    assert mixes.shape == (3, 2, 4410) and mixes.abs().amax() > 0
    stems, known = batches.batch(2)
    loss, parts, est, real = loss_fn(stems, known, mixes)
    assert torch.isfinite(loss) and est.shape[:2] == (5, 4) and real.shape[:2] == (2, 4)
    assert loss_fn.pool is not None and len(loss_fn.pool) == 3  # the songs' estimates
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    # a run with songs, then a run from its weights (--init)
    assert train_music(opts, progress=False, data=data)["step"] == 2
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all("g_adv" in r and "d" in r for r in log if r.get("event") == "train")
    first = model_from_checkpoint(tmp_path / "run" / "best.pt")
    later = MusicTrainOptions(**{**opts.__dict__, "out": str(tmp_path / "run2"), "init": str(tmp_path / "run" / "best.pt"),
                                 "steps": 1, "lr": 0.0, "mixtures": []})
    train_music(later, progress=False)
    second = model_from_checkpoint(tmp_path / "run2" / "last.pt")
    for k, v in first.state_dict().items():  # no learning rate: the weights it started from
        torch.testing.assert_close(second.state_dict()[k], v)
    entry = export_music(tmp_path / "run2" / "last.pt", "m2", tmp_path / "out", None, half=False)
    assert entry["stages"][-1]["init"].endswith("best.pt") and "unlabelled mixtures" not in entry["trained_on"]
    assert "unlabelled mixtures of" in trained_on(opts)


def test_music_command_refuses_songs_without_the_semi_supervised_losses_and_answers_to_its_old_name(tmp_path):
    from click.testing import CliRunner

    from deepsep.commands.train import train

    for name in ("music", "gan"):
        res = CliRunner().invoke(train, [name, "--supervised-only", "--mixtures", str(tmp_path), "-o",
                                         str(tmp_path / "run")])
        assert res.exit_code == 2 and "drop --supervised-only" in res.output
        assert ("deprecated" in res.output.lower()) == (name == "gan")
    assert not (tmp_path / "run").exists()


def test_listen_writes_excerpts_and_every_models_stems_and_refuses_to_overwrite(tmp_path):
    from click.testing import CliRunner

    from deepsep.commands.data import data
    from deepsep.listen import spread

    assert spread(list(range(10)), 4) == [0, 2, 5, 7] and spread([1, 2], 5) == [1, 2]
    songs = tmp_path / "songs"
    songs.mkdir()
    for i, f in enumerate((300.0, 500.0, 700.0)):
        sf.write(songs / f"s{i}.flac", _tone(f, 3 * 48000, 48000).T, 48000)
    (songs / "cover.jpg").write_bytes(b"not audio")
    out = tmp_path / "listen"
    args = ["listen", "--songs-dir", str(songs), "--count", "2", "-m", "tiny-test-music", "--start", "2",
            "--seconds", "1.5", "-o", str(out)]
    res = CliRunner().invoke(data, args)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["s0", "s1"]
    mix, rate = sf.read(out / "s1" / "mixture.wav", always_2d=True)
    assert rate == 48000 and mix.shape == (72000, 2)  # moved back to fit: the last 1.5 s
    stems = [sf.read(out / "s1" / "tiny-test-music" / f"{s}.wav", always_2d=True)[0] for s in musdb.SOURCES]
    np.testing.assert_allclose(np.sum(stems, axis=0), mix, atol=1e-4)  # the stems add up to the excerpt
    again = CliRunner().invoke(data, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    other = CliRunner().invoke(data, [*args[:-4], "--seconds", "1", "--overwrite", "-o", str(out)])
    assert other.exit_code == 1 and "another excerpt" in other.output
    assert not list(out.rglob(".*partial*"))


def test_music_validation_gives_the_numbers_of_deepsep_eval(tmp_path):
    from deepsep.evaluation import detect_items, evaluate, stft_settings
    from deepsep.train.validation import baselines, evaluate_music

    root = tmp_path / "data"
    for i in range(3):
        _write_stems(root / f"T{i}", n=SR // 2, with_mix=False, seed=i)
    data = musdb.MusicDataset(root, n_valid=2, cache_dir=tmp_path / "cache")
    torch.manual_seed(0)
    model = build_model("music_masker", TINY).eval()
    ours = evaluate_music(model, data)["sdr"]
    rows = [r for r in evaluate(model, detect_items(root), baselines=True).rows if r["item"] in data.valid_names]
    base = baselines(data, *stft_settings(model, musdb.SAMPLE_RATE))  # the oracle mask of deepsep eval --baselines
    for method, name in (("model", None), ("mixture", "mixture"), ("oracle-irm", "irm1")):
        for s in musdb.SOURCES:  # the cache holds float16 audio: equal within its rounding
            expected = np.mean([r["sdr"] for r in rows if r["method"] == method and r["source"] == s])
            assert (base[name] if name else ours)[s] == pytest.approx(expected, abs=0.02)
    assert all(base["irm2"][s] > base["mixture"][s] for s in musdb.SOURCES)


def test_the_band_split_masker_takes_the_semi_supervised_losses_too():
    torch.manual_seed(0)
    model = build_model("music_bandsplit", TINY_BANDS)
    loss_fn = MusicLoss(model, MusicTrainOptions(config=TINY_BANDS, model="music_bandsplit"),
                        Adversary(2, 4, 1e-3, torch.device("cpu")))
    stems, songs = 0.1 * torch.randn(4, 4, 2, 4410), 0.1 * torch.randn(2, 2, 4410)
    loss_fn(stems, None, songs)  # the first step fills the pool of estimates
    loss, parts, est, _ = loss_fn(stems, None, songs)
    assert {"synth", "identity", "g_adv"} <= set(parts) and torch.isfinite(loss) and est.shape[:2] == (6, 4)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
