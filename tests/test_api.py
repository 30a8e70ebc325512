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
