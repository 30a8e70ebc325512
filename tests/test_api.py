"""The public Python API: deepsep.load_model, deepsep.separate, deepsep.separate_file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import deepsep
from deepsep.api import separate_to_arrays
from deepsep.errors import AudioError


def test_import_is_light_and_names_are_public():
    code = "import sys, deepsep; print('torch' in sys.modules, sorted(deepsep.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.startswith("False") and "'separate'" in out and "'load_model'" in out
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        deepsep.nope  # noqa: B018


@pytest.mark.parametrize("rate,channels", [(8000, 1), (16000, 2), (44100, 3)])
def test_separate_array_is_the_file_pipeline(tmp_path, rate, channels):
    """An array gives the stems the same signal gives as a file (one pipeline), shaped like the
    input, adding up to it."""
    model = deepsep.load_model("tiny-test")
    x = (0.1 * np.random.default_rng(rate).standard_normal((channels, int(0.7 * rate)))).astype(np.float32)
    stems = deepsep.separate(model, x, rate)
    path = tmp_path / "x.wav"
    sf.write(str(path), x.T, rate, subtype="FLOAT")
    from_file, file_rate = separate_to_arrays(model, path)
    assert file_rate == rate and list(stems) == ["voice", "noise"]
    for i, name in enumerate(stems):
        assert stems[name].shape == x.shape and stems[name].dtype == np.float32
        np.testing.assert_allclose(stems[name], from_file[i], atol=1e-6)
    np.testing.assert_allclose(stems["voice"] + stems["noise"], x, atol=1e-5)


def test_separate_tensor_and_mono():
    model = deepsep.load_model("tiny-test-music")
    x = 0.1 * torch.randn(22050)
    stems = deepsep.separate(model, x, 22050)
    assert list(stems) == ["vocals", "drums", "bass", "other"]
    assert all(isinstance(v, torch.Tensor) and v.shape == x.shape for v in stems.values())
    assert torch.allclose(sum(stems.values()), x, atol=1e-5)
    for bad, word in ((np.zeros((2, 3, 4)), "shape"), (np.array([0.1, np.nan]), "NaN"), (np.zeros(0), "non-empty")):
        with pytest.raises(AudioError, match=word):
            deepsep.separate(model, bad, 8000)


def test_load_model_by_rate_and_separate_file(tmp_path, write_audio):
    model = deepsep.load_model("voice", sample_rate=8000)
    assert model.sample_rate == 8000 and deepsep.load_model("voice", sample_rate=16000).sample_rate == 16000
    src = write_audio("call.wav", seconds=0.5, sample_rate=8000)
    result = deepsep.separate_file(deepsep.load_model("tiny-test"), str(src), str(tmp_path / "o"))
    assert isinstance(result, deepsep.FileResult)
    assert sorted(p.name for p in result.outputs.values()) == ["noise.wav", "voice.wav"]
    assert all(p.is_file() for p in result.outputs.values())


def test_separator_keeps_a_model_for_signals_and_files(tmp_path, write_audio):
    """Separator: the pipeline of deepsep.separate / separate_file / separate_to_arrays, with the
    model loaded once and the stems picked once."""
    from deepsep.api import OutputOptions, limit_attenuation

    model = deepsep.load_model("tiny-test")
    separator = deepsep.Separator("tiny-test")
    x = (0.1 * np.random.default_rng(1).standard_normal((2, 12000))).astype(np.float32)
    stems = separator.separate_tensor(x, 16000)
    expected = deepsep.separate(model, x, 16000)
    assert list(stems) == ["voice", "noise"]
    for name in stems:
        np.testing.assert_array_equal(stems[name], expected[name])
    assert separator.model_for(16000)[1] is separator.model_for(8000)[1]  # loaded once

    src = write_audio("call.wav", seconds=0.6, sample_rate=16000, channels=2)
    in_memory, rate = separator.separate_audio_file(src)
    arrays, _ = separate_to_arrays(model, src)
    assert rate == 16000 and list(in_memory) == ["voice", "noise"]
    np.testing.assert_array_equal(np.stack(list(in_memory.values())), arrays)
    result = separator.separate_file(src, tmp_path / "a")
    reference = deepsep.separate_file(model, src, tmp_path / "b")
    assert sorted(result.outputs) == sorted(reference.outputs) and result.model == "tiny-test"
    for name, path in result.outputs.items():
        assert path.read_bytes() == reference.outputs[name].read_bytes()

    picked = deepsep.Separator(model, output=OutputOptions(two_stems="noise", atten_lim=6.0))
    assert picked.model_for() == ("model", model)
    two = picked.separate_tensor(x, 16000)
    limited = limit_attenuation(np.stack([expected["voice"], expected["noise"]]), model.sources, 6.0)
    assert list(two) == ["noise", "no_noise"]
    np.testing.assert_allclose(two["noise"], limited[1], atol=1e-6)
    np.testing.assert_allclose(two["no_noise"], limited[0], atol=1e-6)


def test_separator_picks_an_alias_model_by_rate_and_checks_options(tmp_path):
    from deepsep.api import EngineOptions, OutputOptions
    from deepsep.errors import UsageError
    from deepsep.modelfile import save_model
    from deepsep.models.tiny import TinyConfig, TinyMasker

    separator = deepsep.Separator("voice")
    assert separator.model_for(8000)[1].sample_rate == 8000 and separator.model_for(16000)[1].sample_rate == 16000
    stems = separator.separate_tensor(0.1 * torch.randn(4000), 8000)
    assert all(v.shape == (4000,) for v in stems.values())
    with pytest.raises(UsageError, match="--clip"):
        deepsep.Separator("tiny-test", output=OutputOptions(clip="louder"))
    with pytest.raises(UsageError, match="--overlap"):
        deepsep.Separator("tiny-test", engine=EngineOptions(overlap=1.0))
    with pytest.raises(UsageError, match="--stems"):
        deepsep.Separator("tiny-test", output=OutputOptions(stems=("drums",))).separate_tensor(np.ones(100), 8000)
    wide = TinyMasker(TinyConfig(sample_rate=8000, audio_channels=1, sources=("voice", "noise"), n_fft=4096, hop=1024))
    with pytest.raises(UsageError, match="--segment 0.2: shorter than one frame of the model"):  # as `separate`
        deepsep.Separator(wide, engine=EngineOptions(segment=0.2))
    short = deepsep.Separator(save_model(wide, tmp_path / "wide.safetensors"), engine=EngineOptions(segment=0.2),
                              trust_local=True)
    with pytest.raises(UsageError, match="--segment 0.2: shorter than one frame of .*wide.safetensors"):
        short.separate_tensor(np.ones(8000), 8000)


def test_pipeline_steps_are_pure():
    """The steps of the one pipeline: stems completed to the mixture (residual to the last
    source), padded in time, and combined into the output stems."""
    from deepsep.pipeline import mix_stems, pad_time, residual_to_last
    from deepsep.separation import output_gain

    rng = np.random.default_rng(2)
    stems = rng.standard_normal((3, 2, 50)).astype(np.float32)
    mixture = rng.standard_normal((2, 50)).astype(np.float32)
    before = stems.copy()
    done = residual_to_last(stems, mixture)
    np.testing.assert_array_equal(stems, before)  # the input is left as it was
    np.testing.assert_allclose(done.sum(axis=0), mixture, atol=1e-5)
    np.testing.assert_array_equal(done[:2], stems[:2])
    padded = pad_time(stems, 60)
    assert padded.shape == (3, 2, 60) and not padded[..., 50:].any() and pad_time(stems, 40) is stems
    matrix = np.array([[1, 0, 0], [0, 1, 1]], dtype=np.float32)
    np.testing.assert_allclose(mix_stems(matrix, stems), np.stack([stems[0], stems[1] + stems[2]]), atol=1e-6)
    assert output_gain(2.0, "rescale") == pytest.approx(1 / 2.02)
    assert output_gain(2.0, "clamp") == output_gain(0.9, "rescale") == 1.0


def test_api_facade_keeps_its_names():
    import deepsep.api

    for name in deepsep.api.__all__:
        assert getattr(deepsep.api, name) is not None, name
    assert deepsep.Separator is deepsep.api.Separator and "Separator" in deepsep.__all__
    assert deepsep.separate is deepsep.api.separate_array


@pytest.mark.parametrize("shape", [(300, 2), (3, 2)])
def test_time_major_audio_is_refused_before_any_work(shape):
    """soundfile's (time, channels) is not taken as thousands of channels (23 GB at (48000, 2))."""
    x = np.zeros(shape, np.float32)
    with pytest.raises(AudioError, match=rf"shape \({shape[0]}, {shape[1]}\).*\(time, channels\).*audio\.T"):
        deepsep.separate(deepsep.load_model("tiny-test"), x, 8000)
    with pytest.raises(AudioError, match=r"audio\.T"):
        deepsep.Separator("voice").separate_tensor(torch.from_numpy(x), 16000)
    assert deepsep.separate(deepsep.load_model("tiny-test"), x.T, 8000)["voice"].shape == x.T.shape


@pytest.mark.parametrize("dtype,scale,offset", [(np.int16, 2 ** 15, 0), (np.int32, 2 ** 31, 0), (np.uint8, 128, 128)])
def test_integer_audio_is_scaled_and_stems_keep_its_type(dtype, scale, offset):
    """Integer samples go to the model in [-1, 1) (as a WAV of that type reads) and every stem comes
    back in the input's type, rounded: within 1 LSB of the float stems, summing to the input within
    1 LSB per stem (of float32's 24 bits for int32)."""
    model = deepsep.load_model("tiny-test-music")
    x = 0.3 * np.random.default_rng(3).standard_normal((2, 6000))
    xi = np.clip(np.round(x * scale) + offset, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
    as_float = ((xi.astype(np.float64) - offset) / scale).astype(np.float32)
    stems, want = deepsep.separate(model, xi, 22050), deepsep.separate(model, as_float, 22050)
    for name, stem in stems.items():
        assert stem.dtype == dtype and stem.shape == xi.shape
        assert np.abs(stem.astype(np.float64) - (np.asarray(want[name], np.float64) * scale + offset)).max() <= 1
    total = sum(stem.astype(np.int64) - offset for stem in stems.values()) + offset
    lsb = max(1.0, scale * 2.0 ** -23)  # the model computes in float32: int32 keeps 24 bits
    assert np.abs(total - xi.astype(np.int64)).max() <= len(stems) * lsb
    mono = deepsep.Separator(model).separate_tensor(torch.from_numpy(xi[0].copy()), 22050)
    assert all(v.dtype == torch.from_numpy(xi).dtype and v.shape == (6000,) for v in mono.values())


def test_64_bit_integer_audio_is_refused():
    """No audio format stores int64: such samples (a list of Python ints) would have been scaled by
    2**63 to silence; an AudioError says what to give instead."""
    with pytest.raises(AudioError, match="int64 samples: give floats"):
        deepsep.separate(deepsep.load_model("tiny-test"), [0, 1000, -1000] * 100, 8000)


def test_float_stems_keep_the_input_type():
    model = deepsep.load_model("tiny-test")
    x = 0.1 * np.random.default_rng(4).standard_normal(4000)
    stems = deepsep.separate(model, x, 8000)
    assert all(v.dtype == np.float64 for v in stems.values())
    np.testing.assert_allclose(stems["voice"] + stems["noise"], x, atol=1e-5)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        t = torch.from_numpy(x).to(dtype)
        out = deepsep.Separator("tiny-test").separate_tensor(t, 8000)
        assert all(isinstance(v, torch.Tensor) and v.dtype == dtype and v.shape == t.shape for v in out.values())


@pytest.mark.parametrize("audio", [np.zeros(0), np.zeros((0, 4000)), np.zeros((2, 0))])
def test_empty_audio_is_refused_before_the_alias_picks_a_model(audio):
    with pytest.raises(AudioError, match="non-empty"):
        deepsep.Separator("voice").separate_tensor(audio, 16000)


@pytest.mark.parametrize("rate", ["16000", None, 22050.5, 0, -8000, float("nan"), True])
def test_a_sample_rate_must_be_a_positive_integer(rate):
    x = np.zeros(1000, np.float32)
    with pytest.raises(AudioError, match="sample_rate"):
        deepsep.Separator("voice").separate_tensor(x, rate)
    with pytest.raises(AudioError, match="sample_rate"):
        deepsep.separate(deepsep.load_model("tiny-test"), x, rate)


def test_integral_sample_rates_of_other_types_are_taken():
    separator = deepsep.Separator("voice")
    for rate in (np.int64(16000), 16000.0, np.float32(16000)):
        assert separator.separate_tensor(np.zeros(1000, np.float32), rate)["voice"].shape == (1000,)


def test_separate_names_what_it_takes():
    with pytest.raises(TypeError, match=r"load_model.*Separator"):
        deepsep.separate("voice", np.zeros(100, np.float32), 16000)


def test_a_tensor_that_requires_grad_gives_no_warning():
    import warnings

    x = (0.1 * torch.randn(16000)).requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stems = deepsep.Separator("voice").separate_tensor(x, 16000)
    assert stems["voice"].shape == x.shape and not stems["voice"].requires_grad


def test_separator_checks_the_model_name_at_once(tmp_path):
    from deepsep.errors import ModelError

    with pytest.raises(ModelError, match="unknown model 'nosuch'"):
        deepsep.Separator("nosuch")
    with pytest.raises(ModelError, match="not found"):
        deepsep.Separator(str(tmp_path / "missing.safetensors"))
    separator = deepsep.Separator("voice")  # known: checked without loading any weights
    assert separator._models is not None and not separator._models.loaded
