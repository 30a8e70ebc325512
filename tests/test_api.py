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


def test_separator_picks_an_alias_model_by_rate_and_checks_options():
    from deepsep.api import EngineOptions, OutputOptions
    from deepsep.errors import UsageError

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
