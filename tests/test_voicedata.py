"""Voice data: the mix_snr_XX layout, the reproducible mixture builder, on-the-fly mixing."""

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from deepsep.commands.data import data as data_group
from deepsep.voicedata import (
    MixtureFolder,
    OnTheFlyMixer,
    build_mixtures,
    load_corpus,
    read_layout,
    snr_db,
    write_item,
)

SR = 8000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Tiny speech and noise folders: modulated tones, a short noise, a silent one, a 16 kHz one."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    sp, nz = root / "speech", root / "noise"
    sp.mkdir()
    nz.mkdir()
    t = np.arange(int(1.5 * SR)) / SR
    for i in range(3):
        x = 0.3 * np.sin(2 * np.pi * (150 + 50 * i) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
        sf.write(sp / f"s{i}.flac", x.astype(np.float32), SR)
    sf.write(nz / "long.flac", (0.1 * rng.standard_normal(2 * SR)).astype(np.float32), SR)
    sf.write(nz / "short.flac", (0.5 * rng.standard_normal(int(0.2 * SR))).astype(np.float32), SR)
    sf.write(nz / "silent.flac", np.zeros(SR, np.float32), SR)
    sf.write(nz / "hires.wav", (0.2 * rng.standard_normal(2 * 16000)).astype(np.float32), 16000)
    return sp, nz


def test_build_layout_snr_and_sum(corpus, tmp_path):
    sp, nz = corpus
    items = build_mixtures(sp, nz, tmp_path / "mix", count=8, clip_seconds=0.5, snrs=[-5, 0, 5, 10], seed=1)
    assert [p.name for p in sorted((tmp_path / "mix").iterdir())] == [f"{i:04d}" for i in range(8)]
    assert [it.snr for it in items] == [-5, 0, 5, 10] * 2
    for it in read_layout(tmp_path / "mix"):
        mix, sr = sf.read(it.mix, dtype="float32")
        voice, _ = sf.read(it.voice, dtype="float32")
        noise, _ = sf.read(it.noise, dtype="float32")
        assert sr == SR and len(mix) == SR // 2
        assert it.mix.name == f"mix_snr_{it.snr}.wav"
        assert abs(snr_db(voice, noise) - it.snr) < 0.1
        np.testing.assert_array_equal(mix, voice + noise)
        assert np.abs(mix).max() <= 0.95 + 1e-6
        assert np.abs(noise).max() > 0


def test_build_is_reproducible(corpus, tmp_path):
    sp, nz = corpus
    for name, seed in [("a", 3), ("b", 3), ("c", 4)]:
        build_mixtures(sp, nz, tmp_path / name, count=4, clip_seconds=0.3, snrs=[-5, 5], seed=seed, snr_range=True)
    for sub in ["0000", "0003"]:
        a = sorted((tmp_path / "a" / sub).iterdir())
        b = sorted((tmp_path / "b" / sub).iterdir())
        assert [p.name for p in a] == [p.name for p in b]
        # the same samples (not the same bytes: libsndfile stamps float WAVs' PEAK chunk with the time)
        assert all(np.array_equal(sf.read(x)[0], sf.read(y)[0]) for x, y in zip(a, b))
    va = sf.read(tmp_path / "a" / "0000" / "noise.wav")[0]
    vc = sf.read(tmp_path / "c" / "0000" / "noise.wav")[0]
    assert not np.array_equal(va, vc)
    assert all(-5 <= it.snr <= 5 for it in read_layout(tmp_path / "a"))


def test_loud_input_never_clips(tmp_path):
    sp, nz = tmp_path / "sp", tmp_path / "nz"
    sp.mkdir()
    nz.mkdir()
    sf.write(sp / "a.wav", np.full(SR, 0.9, np.float32) * np.sign(np.sin(np.arange(SR))), SR)
    sf.write(nz / "b.wav", np.random.default_rng(0).uniform(-1, 1, SR).astype(np.float32), SR)
    build_mixtures(sp, nz, tmp_path / "m", count=2, clip_seconds=0.5, snrs=[-5], seed=0)
    for it in read_layout(tmp_path / "m"):
        v, n = sf.read(it.voice)[0], sf.read(it.noise)[0]
        assert np.abs(v + n).max() <= 0.95 + 1e-6
        assert abs(snr_db(v, n) + 5) < 0.1


def test_read_layout_negative_and_errors(tmp_path):
    v = np.zeros(100, np.float32) + 0.1
    write_item(tmp_path, 0, v, v, -5, SR)
    write_item(tmp_path, 1, v, v * 0.5, 6, SR)
    items = read_layout(tmp_path)
    assert [i.snr for i in items] == [-5, 6]
    ds = MixtureFolder(tmp_path, SR, segment=64, generator=torch.Generator().manual_seed(0))
    mix, voice, noise = ds[0]
    assert mix.shape == voice.shape == noise.shape == (1, 64)
    (tmp_path / "0001" / "voice.wav").unlink()
    with pytest.raises(ValueError, match="voice.wav"):
        read_layout(tmp_path)
    with pytest.raises(ValueError):
        read_layout(tmp_path / "0000")


def test_corpus_skips_silence_and_resamples(corpus):
    _, nz = corpus
    noise = load_corpus(nz, SR)
    assert len(noise) == 3  # silent.flac skipped
    assert sorted(len(x) for x in noise) == [int(0.2 * SR), 2 * SR, 2 * SR]  # hires.wav resampled to 8 kHz


def test_on_the_fly_mixer(corpus):
    sp, nz = corpus
    a = OnTheFlyMixer.from_folders(sp, nz, SR, 4000, seed=5)
    b = OnTheFlyMixer.from_folders(sp, nz, SR, 4000, seed=5)
    mix, voice, noise = a.batch(6)
    assert mix.shape == voice.shape == noise.shape == (6, 1, 4000)
    assert torch.equal(mix, voice + noise)
    assert mix.abs().max() <= 0.95 + 1e-6
    snrs = [snr_db(v[0].numpy(), n[0].numpy()) for v, n in zip(voice, noise)]
    assert all(-5.1 <= s <= 10.1 for s in snrs)
    assert torch.equal(b.batch(6)[0], mix)  # same seed, same stream
    state = a.state()
    nxt = a.batch(2)[0]
    a.set_state(state)
    assert torch.equal(a.batch(2)[0], nxt)


def test_data_mix_command(corpus, tmp_path):
    sp, nz = corpus
    res = CliRunner().invoke(data_group, ["mix", "--speech", str(sp), "--noise", str(nz), "--out", str(tmp_path / "o"),
                                          "--count", "3", "--seconds", "0.25", "--snr", "-5,0", "--seed", "2"])
    assert res.exit_code == 0, res.output
    assert [i.snr for i in read_layout(tmp_path / "o")] == [-5, 0, -5]
    res = CliRunner().invoke(data_group, ["mix", "--speech", str(sp), "--noise", str(nz), "--out", str(tmp_path / "p"),
                                          "--snr", "loud"])
    assert res.exit_code != 0


def test_opus_corpora_are_read_at_the_model_rate(tmp_path):
    """The shared data's layout: Ogg Opus speech at 16 kHz and noise at 48 kHz, read at 16 kHz."""
    from deepsep.voicedata import list_audio, load_mono

    t = np.arange(2 * 48000) / 48000
    (tmp_path / "speech").mkdir()
    (tmp_path / "noise").mkdir()
    sf.write(tmp_path / "speech" / "a.opus", (0.3 * np.sin(2 * np.pi * 440 * t[::3])).astype(np.float32), 16000,
             format="OGG", subtype="OPUS")
    sf.write(tmp_path / "noise" / "b.opus", (0.3 * np.sin(2 * np.pi * 12000 * t)).astype(np.float32), 48000,
             format="OGG", subtype="OPUS")
    assert sorted(p.name for p in list_audio(tmp_path)) == ["a.opus", "b.opus"]
    speech, noise = load_mono(tmp_path / "speech" / "a.opus", 16000), load_mono(tmp_path / "noise" / "b.opus", 16000)
    assert abs(len(speech) - 2 * 16000) < 400 and abs(len(noise) - 2 * 16000) < 400
    spec = np.abs(np.fft.rfft(speech))
    assert abs(np.argmax(spec) * 16000 / len(speech) - 440) < 5  # the tone kept its pitch
    assert np.sqrt(np.mean(noise ** 2)) < 0.01  # 12 kHz is above the 16 kHz rate's band: filtered out
    mixer = OnTheFlyMixer.from_folders(tmp_path / "speech", tmp_path / "speech", 16000, 8000)
    mix, voice, noise_ = mixer.example()
    torch.testing.assert_close(mix, voice + noise_)


def test_training_data_with_file_names_that_are_not_utf8(tmp_path):
    """A corpus file named in another encoding (Latin-1 'café': byte 0xE9) reads, as in `separate`."""
    import os

    from deepsep.voicedata import list_audio, load_corpus

    folder = tmp_path / "speech"
    folder.mkdir()
    name = os.fsdecode(os.fsencode(folder) + b"/caf\xe9.wav")
    sf.write(os.fsencode(name), 0.1 * np.ones(8000, np.float32), 8000)
    assert [p.name for p in list_audio(folder)] == [os.fsdecode(b"caf\xe9.wav")]
    (clip,) = load_corpus(folder, 8000)
    assert clip.shape == (8000,)
