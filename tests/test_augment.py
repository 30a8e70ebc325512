"""Voice data augmentation: reverberation, EQ, band limiting keep mixture = voice + noise; --init."""

import numpy as np
import pytest
import soundfile as sf
import torch

from deepsep.augment import band_limit, random_eq, reverberate, room_impulse_responses
from deepsep.voicedata import Augmentation, OnTheFlyMixer, build_mixtures, read_layout

SR = 16000


def _band_energy(x: np.ndarray, lo: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float(spec[f > lo].sum() / spec.sum())


@pytest.fixture(scope="module")
def rirs(tmp_path_factory):
    import os

    os.environ["DEEPSEP_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        bank = room_impulse_responses(3, SR, seed=1, rt60_range=(0.2, 0.3))
        again = room_impulse_responses(3, SR, seed=1, rt60_range=(0.2, 0.3))  # from the cache
    finally:
        del os.environ["DEEPSEP_CACHE"]
    for a, b in zip(bank, again):
        np.testing.assert_array_equal(a, b)
    return bank


def test_room_impulse_responses_unit_energy_direct_path_first(rirs):
    for h in rirs:
        assert h.dtype == np.float32 and len(h) > 0.1 * SR  # a reverberant tail
        assert abs(float(np.sum(h.astype(np.float64) ** 2)) - 1.0) < 1e-4
        assert int(np.argmax(np.abs(h))) < 0.005 * SR


def test_filters_are_linear_and_band_limit_removes_the_top_band():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(SR).astype(np.float32), rng.standard_normal(SR).astype(np.float32)
    h = np.exp(-np.arange(800) / 100.0).astype(np.float32) * rng.standard_normal(800).astype(np.float32)
    np.testing.assert_allclose(reverberate(a + b, h), reverberate(a, h) + reverberate(b, h), atol=1e-4)
    eq = [random_eq(x, np.random.default_rng(7), SR) for x in (a + b, a, b)]
    np.testing.assert_allclose(eq[0], eq[1] + eq[2], atol=1e-4)
    assert not np.allclose(eq[1], a, atol=1e-2)  # it did filter
    lim = [band_limit(x, SR, 8000) for x in (a + b, a, b)]
    np.testing.assert_allclose(lim[0], lim[1] + lim[2], atol=1e-4)
    assert len(lim[1]) == len(a) and _band_energy(lim[1], 4200) < 1e-3 < _band_energy(a, 4200)


def test_augmented_mixer_keeps_mixture_equal_voice_plus_noise(rirs):
    rng = np.random.default_rng(1)
    t = np.arange(3 * SR) / SR
    speech = [(0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)]
    noise = [(0.1 * rng.standard_normal(2 * SR)).astype(np.float32)]
    dry = OnTheFlyMixer(speech, noise, SR, seed=3)
    wet = OnTheFlyMixer(speech, noise, SR, seed=3, augment=Augmentation(SR, rirs, p_reverb=1.0, p_eq=1.0))
    narrow = OnTheFlyMixer(speech, noise, SR, seed=3, augment=Augmentation(SR, p_band_limit=1.0))
    full_rate = OnTheFlyMixer(speech, noise, SR, seed=3, augment=Augmentation(SR, p_full_rate=1.0))
    for mixer in (dry, wet, narrow, full_rate):
        for _ in range(3):
            mix, voice, noise_ = mixer.example()
            assert mix.shape == voice.shape == (1, SR)
            torch.testing.assert_close(mix, voice + noise_)
    _, v_dry, _ = dry.example()
    _, v_wet, _ = wet.example()
    assert not torch.allclose(v_dry, v_wet, atol=1e-3)
    _, v, z = narrow.example()
    assert _band_energy(v[0].numpy(), 4200) < 1e-3 and _band_energy(z[0].numpy(), 4200) < 1e-3
    _, v, z = full_rate.example()  # the top of the band cut as a 48 kHz file's is, the rest kept
    _, v_dry, z_dry = dry.example()
    assert _band_energy(z[0].numpy(), 0.48 * SR) < 1e-3 < _band_energy(z_dry[0].numpy(), 0.48 * SR)
    assert _band_energy(z[0].numpy(), 4200) > 0.5 * _band_energy(z_dry[0].numpy(), 4200)


def test_narrow_band_corpora_feed_only_the_band_limited_examples():
    t = np.arange(2 * SR) / SR
    tone = lambda f, a: [(a * np.sin(2 * np.pi * f * t)).astype(np.float32)]  # noqa: E731
    speech, noise, narrow_speech, narrow_noise = tone(300, 0.2), tone(1000, 0.1), tone(500, 0.2), tone(2000, 0.1)

    def examples(p_band: float, with_narrow: bool, n: int = 40) -> list[tuple[int, int]]:
        narrow = dict(narrow_speech=narrow_speech, narrow_noise=narrow_noise) if with_narrow else {}
        mixer = OnTheFlyMixer(speech, noise, SR // 2, seed=5, augment=Augmentation(SR, p_band_limit=p_band, **narrow))
        out = []
        for _ in range(n):
            _, v, z = mixer.example()
            out.append(tuple(int(np.argmax(np.abs(np.fft.rfft(x[0].numpy())))) * 2 for x in (v, z)))  # Hz
        return out

    assert examples(0.0, True) == examples(0.0, False)  # no band-limited examples: nothing changes
    voices, noises = zip(*examples(1.0, True))
    assert set(voices) == {300, 500} and set(noises) == {1000, 2000}  # each from either corpus
    assert 0.25 < voices.count(500) / len(voices) < 0.75 and 0.25 < noises.count(2000) / len(noises) < 0.75


def test_build_mixtures_with_reverberation(tmp_path, rirs):
    (tmp_path / "s").mkdir()
    (tmp_path / "n").mkdir()
    t = np.arange(2 * SR) / SR
    sf.write(tmp_path / "s" / "a.wav", (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), SR)
    sf.write(tmp_path / "n" / "b.wav", (0.1 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32), SR)
    dry = build_mixtures(tmp_path / "s", tmp_path / "n", tmp_path / "dry", 2, 1.0, [0, 5], SR, seed=2)
    wet = build_mixtures(tmp_path / "s", tmp_path / "n", tmp_path / "wet", 2, 1.0, [0, 5], SR, seed=2,
                         rirs=rirs, p_reverb=1.0)
    assert len(read_layout(tmp_path / "wet")) == 2
    for d, w in zip(dry, wet):
        mix, v, n = (sf.read(p, dtype="float32")[0] for p in (w.mix, w.voice, w.noise))
        np.testing.assert_allclose(mix, v + n, atol=1e-6)
        assert not np.allclose(v, sf.read(d.voice, dtype="float32")[0], atol=1e-3)
