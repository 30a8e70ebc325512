"""Invariants of the separation engine: overlap-add, chunking, streaming, channel adaptation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepsep.channels import from_groups, to_groups
from deepsep.engine import StreamingSeparator, segment_window, separate, shift_offsets, streaming_separator
from deepsep.models.bag import ModelBag
from deepsep.models.base import ModelConfig, SeparationModel
from deepsep.weights import get_model


class Identity(SeparationModel):
    """Every source is the mixture itself: overlap-add must give the input back."""

    default_segment = 0.5

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        return mix.unsqueeze(1).repeat(1, len(self.sources), 1, 1)


IDENTITY = Identity(ModelConfig(sample_rate=100, audio_channels=1, sources=("a", "b")))


@settings(max_examples=60, deadline=None)
@given(
    length=st.integers(1, 700),
    segment=st.floats(0.01, 3.0),
    overlap=st.floats(0.0, 0.95),
    batch=st.integers(1, 4),
    channels=st.integers(1, 3),
)
def test_overlap_add_of_identity_is_the_input(length, segment, overlap, batch, channels):
    x = torch.randn(channels, length)
    y = separate(IDENTITY, x, segment=segment, overlap=overlap, batch_size=batch)
    assert y.shape == (2, channels, length)
    torch.testing.assert_close(y[0], x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y[1], x, atol=1e-5, rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(length=st.integers(1, 2000), block=st.integers(1, 500), batch=st.integers(1, 3), seed=st.integers(0, 1000),
       shifts=st.integers(1, 3))
def test_streaming_in_blocks_equals_one_call(length, block, batch, seed, shifts):
    model = get_model("tiny-test")
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, length, generator=g)
    whole = separate(model, x, segment=0.05, overlap=0.3, batch_size=batch, shifts=shifts)
    sep = StreamingSeparator(model, 1, segment=0.05, overlap=0.3, batch_size=batch, shifts=shifts)
    parts = [sep.push(x[:, i : i + block]) for i in range(0, length, block)] + [sep.flush()]
    torch.testing.assert_close(torch.cat(parts, dim=-1), whole, atol=1e-5, rtol=1e-5)


class Scaled(SeparationModel):
    """Source i is the mixture times ``gains[i]`` (stems that sum to it when the gains do), with
    its own default segment: members of a bag that finish their segments at different times."""

    def __init__(self, gains: tuple[float, ...], default_segment: float):
        super().__init__(ModelConfig(sample_rate=100, audio_channels=1, sources=("a", "b")))
        self.gains, self.default_segment = gains, default_segment  # type: ignore[misc]

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        return torch.stack([g * mix for g in self.gains], dim=1)


class SegmentMean(SeparationModel):
    """Sources: the mixture minus its mean over the segment, and that mean: stems that depend on
    where the engine cuts its segments (0.23 s by default)."""

    default_segment = 0.23

    def __init__(self) -> None:
        super().__init__(ModelConfig(sample_rate=100, audio_channels=1, sources=("a", "b")))

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        mean = mix.mean(dim=-1, keepdim=True).expand_as(mix)
        return torch.stack([mix - mean, mean], dim=1)


@settings(max_examples=25, deadline=None)
@given(length=st.integers(1, 900), block=st.integers(1, 300), seed=st.integers(0, 1000))
def test_a_bag_streams_the_weighted_average_of_its_members_each_with_its_own_segment(length, block, seed):
    members = [Scaled((0.9, 0.1), 0.37), Scaled((0.2, 0.8), 1.5), SegmentMean()]
    bag = ModelBag(members, [2.0, 1.0, 1.0])
    x = torch.randn(1, length, generator=torch.Generator().manual_seed(seed))
    sep = streaming_separator(bag, 1, overlap=0.3)
    parts = [sep.push(x[:, i : i + block]) for i in range(0, length, block)] + [sep.flush()]
    got = torch.cat(parts, dim=-1)
    want = sum(w * separate(m, x, overlap=0.3) for w, m in zip((0.5, 0.25, 0.25), members))
    assert got.shape == (2, 1, length)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(separate(bag, x, overlap=0.3), got, atol=1e-5, rtol=1e-5)


def test_a_bag_of_models_whose_stems_sum_to_the_mixture_keeps_them_so():
    bag = ModelBag([Scaled((0.9, 0.1), 0.37), Scaled((0.3, 0.7), 1.5)], [0.6, 0.4])
    x = torch.randn(2, 500)
    torch.testing.assert_close(separate(bag, x).sum(dim=0), x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bag(x.unsqueeze(1)).sum(dim=1), x.unsqueeze(1), atol=1e-6, rtol=1e-6)


def test_a_bag_refuses_members_that_do_not_agree():
    other = Identity(ModelConfig(sample_rate=200, audio_channels=1, sources=("a", "b")))
    with pytest.raises(ValueError, match="share sample rate"):
        ModelBag([Scaled((1.0, 0.0), 1.0), other], [0.5, 0.5])
    with pytest.raises(ValueError, match="positive"):
        ModelBag([Scaled((1.0, 0.0), 1.0), Scaled((1.0, 0.0), 1.0)], [1.0, 0.0])


def test_shift_offsets_spread_over_one_frame():
    assert shift_offsets(16, 1) == [0]
    assert shift_offsets(16, 2) == [0, 8]
    assert shift_offsets(16, 4) == [0, 4, 8, 12]
    assert shift_offsets(4, 10) == [0, 1, 2, 3]  # at most one pass per sample of the stride
    with pytest.raises(ValueError):
        shift_offsets(16, 0)


def test_shifts_average_delayed_passes():
    model = get_model("tiny-test")  # an STFT masker, hop 64: a delay of 32 moves its frames
    x = torch.randn(1, 3000)
    one = separate(model, x, segment=0)
    two = separate(model, x, segment=0, shifts=2)
    with torch.inference_mode():
        late = model(torch.nn.functional.pad(x, (32, 0))[None])[0, ..., 32:]
    torch.testing.assert_close(two, (one + late) / 2)
    assert (two - one).abs().max() > 1e-4
    torch.testing.assert_close(two.sum(0), x, atol=1e-4, rtol=1e-4)  # still adds up to the input


class ChannelSplit(SeparationModel):
    """Source 0 is the left channel alone, source 1 the right one: a model that is not symmetric in
    its channels, as a stereo network is not."""

    @property
    def frame_stride(self) -> int:
        return 4

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        left = torch.tensor([1.0, 0.0])[:, None]
        return torch.stack([mix * left, mix * (1 - left)], dim=1)


def test_shifts_swap_the_channels_of_every_second_pass_of_a_stereo_model():
    model = ChannelSplit(ModelConfig(sample_rate=100, audio_channels=2, sources=("a", "b")))
    x = torch.randn(2, 300)
    torch.testing.assert_close(separate(model, x, segment=0), torch.stack([x * torch.tensor([[1.0], [0.0]]),
                                                                           x * torch.tensor([[0.0], [1.0]])]))
    two = separate(model, x, segment=0, shifts=2)  # the swapped pass puts each channel in the other source
    torch.testing.assert_close(two, torch.stack([x / 2, x / 2]))
    torch.testing.assert_close(two.sum(0), x)


def test_window_is_positive_and_symmetric():
    for n in (1, 2, 7, 64):
        w = segment_window(n)
        assert (w > 0).all() and torch.equal(w, w.flip(0))


@pytest.mark.parametrize("name,channels", [("tiny-test", 1), ("tiny-test", 2), ("tiny-test-music", 2), ("tiny-test-music", 1)])
def test_chunked_equals_unchunked(name, channels):
    """Long overlapping segments of a short-context model agree with one pass over the whole."""
    model = get_model(name)
    x = torch.randn(channels, model.sample_rate * 3) * 0.3
    whole = separate(model, x, segment=0)
    chunked = separate(model, x, segment=1.0, overlap=0.5, batch_size=2)
    err = (chunked - whole).pow(2).mean() / whole.pow(2).mean()
    assert err < 1e-4, err


class GainNormalised(SeparationModel):
    """Output depends on the whole segment's level (like models that normalise their input):
    zero padding would change it, so it shows whether segments ever hold padding."""

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        level = mix.abs().mean(dim=-1, keepdim=True)
        return torch.stack([mix * level / (level + 0.1), mix * 0.1 / (level + 0.1)], dim=1)


class Spy(Identity):
    """Identity that records the segments it is given."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.seen: list[torch.Tensor] = []

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        self.seen.extend(mix)
        return super().forward(mix)


@pytest.mark.parametrize("length", [37, 100, 250, 299])
def test_segments_are_never_zero_padded(length):
    model = GainNormalised(ModelConfig(sample_rate=100, audio_channels=1, sources=("a", "b")))
    x = torch.randn(1, length)
    # shorter than a segment: one pass of the signal's own length, exactly as unsegmented
    torch.testing.assert_close(separate(model, x, segment=5.0), separate(model, x, segment=0))
    spy = Spy(ModelConfig(sample_rate=100, audio_channels=1, sources=("a", "b")))
    separate(spy, x, segment=0.3, overlap=0.5, batch_size=2)
    assert all(seg.shape[-1] == min(30, length) for seg in spy.seen)
    assert all((seg != 0).all() for seg in spy.seen)  # random input: a zero means padding
    assert spy.seen[-1].shape[-1] == 30 and torch.equal(spy.seen[-1][0], x[0, -30:])  # the last one ends at the end


@pytest.mark.parametrize("name,channels", [("tiny-test", 1), ("tiny-test-music", 2), ("tiny-test-music", 1), ("tiny-test", 3)])
def test_masking_stems_sum_to_mixture(name, channels):
    model = get_model(name)
    x = torch.randn(channels, model.sample_rate) * 0.3
    y = separate(model, x, segment=0.3, overlap=0.25)
    torch.testing.assert_close(y.sum(0), x, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("channels,model_channels", [(1, 1), (2, 1), (5, 1), (1, 2), (2, 2), (3, 2), (6, 2)])
def test_channel_groups_round_trip(channels, model_channels):
    x = torch.randn(channels, 50)
    groups = to_groups(x, model_channels)
    assert groups.shape[1:] == (model_channels, 50)
    stems = groups.unsqueeze(1).repeat(1, 2, 1, 1)  # identity "model" with 2 sources
    back = from_groups(stems, channels)
    assert back.shape == (2, channels, 50)
    torch.testing.assert_close(back[0], x)


def test_bad_engine_settings():
    with pytest.raises(ValueError):
        StreamingSeparator(IDENTITY, 1, overlap=1.0)
    with pytest.raises(ValueError):
        StreamingSeparator(IDENTITY, 1, batch_size=0)


@settings(max_examples=25, deadline=None)
@given(rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]), n=st.integers(1, 20000),
       channels=st.integers(1, 2))
def test_stems_add_up_to_the_input_at_any_rate_and_length(tmp_path_factory, rate, n, channels):
    """Through the file pipeline (resampling to the model's rate and back), every sample of the
    input is in the stems' sum, including the last ones the round trip rounds away."""
    import numpy as np
    import soundfile as sf

    from deepsep.api import separate_to_arrays

    x = (0.1 * np.random.default_rng(n).standard_normal((n, channels))).astype(np.float32)
    path = tmp_path_factory.mktemp("sum") / "x.wav"
    sf.write(path, x, rate, subtype="FLOAT")
    stems, stem_rate = separate_to_arrays(get_model("tiny-test"), path)
    assert stem_rate == rate and stems.shape[-1] == n
    np.testing.assert_allclose(stems.sum(axis=0), x.T, atol=1e-5)


def _band_limited(rate: int, seconds: float = 2.0, band_rate: int = 8000, channels: int = 1) -> torch.Tensor:
    """(channels, time): noise at ``band_rate`` resampled to ``rate``, so nothing above band_rate/2."""
    import soxr

    noise = np.random.default_rng(0).standard_normal((int(seconds * band_rate), channels)) * 0.1
    return torch.from_numpy(soxr.resample(noise, band_rate, rate).T.copy())


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_content_rate_finds_the_band_a_signal_fills(rate):
    from deepsep.dsp import content_rate

    assert content_rate(_band_limited(rate), rate) == 8000  # telephone band stored at a higher rate
    assert content_rate(_band_limited(rate, channels=2), rate) == 8000
    wide = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 2 * rate)) * 0.1)
    assert content_rate(wide, rate) == rate  # white noise fills the whole band
    assert content_rate(wide * 1e-2 + _band_limited(rate), rate) == rate  # a quiet top band (-40 dB) counts
    assert content_rate(wide * 1e-4 + _band_limited(rate), rate) == 8000  # a floor 80 dB down (dither) does not
    if rate > 16000:
        assert content_rate(_band_limited(rate, band_rate=16000), rate) == 16000
    assert content_rate(torch.zeros(1, rate), rate) == rate  # silence: no judgement
    assert content_rate(_band_limited(rate)[:, :100], rate) == rate  # shorter than one frame
    assert content_rate(_band_limited(8000), 8000) == 8000


def test_input_content_rate_judges_a_file_by_its_start(tmp_path):
    import soundfile as sf

    from deepsep.dsp import CONTENT_SECONDS
    from deepsep.inputs import input_content_rate

    rate = 16000
    start = _band_limited(rate, seconds=CONTENT_SECONDS + 1)[0].numpy()  # telephone band, then wide band
    wide = np.random.default_rng(2).standard_normal(5 * rate) * 0.1
    sf.write(tmp_path / "call.flac", np.concatenate([start, wide]), rate)
    sf.write(tmp_path / "wide.flac", np.concatenate([start[:rate], wide]), rate)
    assert input_content_rate(tmp_path / "call.flac") == 8000  # what follows the first 30 s is not read
    assert input_content_rate(tmp_path / "wide.flac") == rate


class LevelDependent(SeparationModel):
    """Source a is the mixture times min(1, 3 x its RMS), b the rest: stems that change with the
    input's level, as a network's do; it learned from tracks at -20 to -14 dBFS."""

    default_segment = 0.5

    def __init__(self) -> None:
        super().__init__(ModelConfig(sample_rate=100, audio_channels=1, sources=("a", "b")))

    @property
    def level_range_db(self) -> tuple[float, float] | None:
        return (-20.0, -14.0)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        share = (3 * mix.square().mean(dim=(1, 2), keepdim=True).sqrt()).clamp(max=1.0)
        return torch.stack([share * mix, (1 - share) * mix], dim=1)


def test_gain_into_a_level_range():
    from deepsep.pipeline import gain_into

    assert gain_into(-17.0, -20.0, -14.0) == 1.0
    assert gain_into(-40.0, -20.0, -14.0) == pytest.approx(10.0)  # +20 dB to the range's floor
    assert gain_into(-4.0, -20.0, -14.0) == pytest.approx(10 ** (-10 / 20))


def test_a_track_outside_the_models_level_range_is_separated_as_if_scaled_into_it():
    from deepsep.pipeline import separate_array

    model = LevelDependent()
    x = np.random.default_rng(0).standard_normal((1, 400)).astype(np.float32)
    x *= 10 ** (-17 / 20) / np.sqrt(np.mean(x**2))  # -17 dBFS: within the range, separated as it is
    ref = separate_array(model, x, 100)
    for scale in (0.01, 20.0):  # -57 and +9 dBFS: scaled into the range, the stems scaled back
        quiet = separate_array(model, scale * x, 100)
        at_edge = np.float32(10 ** (((-20 if scale < 1 else -14) + 17) / 20))  # x scaled to the nearer edge
        edge = separate_array(model, at_edge * x, 100)
        np.testing.assert_allclose(quiet["a"], scale / at_edge * edge["a"], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(quiet["a"] + quiet["b"], scale * x, rtol=1e-5, atol=1e-6)
        assert not np.allclose(quiet["a"] / scale, ref["a"])  # the edge, not the middle: a real gain
