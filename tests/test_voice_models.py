"""Voice models (U-Net, Conv-TasNet) and the metrics: shapes, invariants, hand-computed values."""

import math

import pytest
import torch

from deepsep.metrics import sdr, si_sdr, si_sdr_improvement
from deepsep.models.convtasnet import ConvTasNet, ConvTasNetConfig
from deepsep.models.unet import UNet, UNetConfig
from deepsep.registry import ARCHITECTURES, build_model

TINY_UNET = dict(n_fft=64, hop=16, channels=(4, 8, 8))
TINY_TASNET = dict(enc_kernel_size=16, enc_num_feats=16, msk_num_feats=8, msk_num_hidden_feats=16,
                   msk_num_layers=2, msk_num_stacks=1)


def test_registered():
    assert ARCHITECTURES["unet"] == (UNetConfig, UNet)
    assert ARCHITECTURES["convtasnet"] == (ConvTasNetConfig, ConvTasNet)


@pytest.mark.parametrize("length", [1, 100, 1000, 4097])
@pytest.mark.parametrize("arch,cfg", [("unet", TINY_UNET), ("convtasnet", TINY_TASNET)])
def test_shapes_and_sum_to_mixture(arch, cfg, length):
    torch.manual_seed(0)
    model = build_model(arch, {**cfg}).eval()
    mix = torch.randn(3, 1, length)
    with torch.no_grad():
        out = model(mix)
    assert out.shape == (3, 2, 1, length)
    assert torch.allclose(out.sum(dim=1), mix, atol=1e-5)


def test_default_unet_is_the_paper_shape():
    model = UNet(UNetConfig()).eval()
    assert len(model.down) == 6 and len(model.up) == 6
    assert [m[0].out_channels for m in model.down] == [16, 32, 64, 128, 256, 512]
    assert all(m[0].kernel_size == (5, 5) and m[0].stride == (2, 2) for m in model.down)
    assert model.freq_bins == 256
    assert sum(isinstance(x, torch.nn.Dropout) for m in model.up for x in m) == 3
    mix = torch.randn(1, 1, 3000)
    with torch.no_grad():
        out = model(mix)
    assert torch.allclose(out.sum(1), mix, atol=1e-5)


def test_unet_mask_in_unit_interval_and_gain_invariant():
    torch.manual_seed(0)
    model = UNet(UNetConfig(**TINY_UNET)).eval()
    mix = torch.randn(2, 1, 2000)
    with torch.no_grad():
        _, m, spec = model.separate_with_spec(mix)
        _, m2, _ = model.separate_with_spec(mix * 10)
    assert m.shape == spec.shape == (2, 1, 33, 2000 // 16 + 1)
    assert float(m.min()) >= 0 and float(m.max()) <= 1
    assert torch.allclose(m, m2, atol=1e-4)


def test_convtasnet_default_is_small():
    model = ConvTasNet(ConvTasNetConfig())
    assert sum(p.numel() for p in model.parameters()) * 4 < 20e6
    assert model.default_segment > 0


@pytest.mark.parametrize("length", [37, 1000])
def test_fast_layers_match_torchaudio(length):
    """The CPU speed-ups compute torchaudio's Conv-TasNet exactly: same outputs with and without
    gradients, same gradients, same state-dict keys (the shipped weights load into either)."""
    from torchaudio.models import ConvTasNet as Stock

    from deepsep.models.fast_layers import DepthwiseConv1d, FastPReLU, MatmulConvTranspose1d, speed_up

    torch.manual_seed(0)
    kw = dict(num_sources=2, enc_kernel_size=8, enc_num_feats=16, msk_num_feats=8, msk_num_hidden_feats=12,
              msk_num_layers=4, msk_num_stacks=2)
    stock = Stock(**kw)
    for m in stock.modules():  # distinct PReLU slopes, so that a mixed-up parameter would show
        if isinstance(m, torch.nn.PReLU):
            m.weight.data.uniform_(0.05, 0.5)
    fast = Stock(**kw)
    fast.load_state_dict(stock.state_dict())
    speed_up(fast)
    assert sum(isinstance(m, DepthwiseConv1d) for m in fast.modules()) == 2 * 4  # dilations 1, 2, 4, 8
    assert isinstance(fast.decoder, MatmulConvTranspose1d)
    assert sum(isinstance(m, FastPReLU) for m in fast.modules()) == 2 * 4 * 2 + 1
    assert fast.state_dict().keys() == stock.state_dict().keys()
    x = torch.randn(3, 1, length)
    y0, y1 = stock(x), fast(x)
    assert torch.allclose(y0, y1, atol=1e-5)
    with torch.inference_mode():  # separation's path: shifted taps instead of convolutions
        assert torch.allclose(stock(x), fast(x), atol=1e-5)
    w = torch.randn_like(y0)
    (y0 * w).sum().backward()
    (y1 * w).sum().backward()
    for (name, p0), p1 in zip(stock.named_parameters(), fast.parameters()):
        assert torch.allclose(p0.grad, p1.grad, rtol=1e-4, atol=1e-5), name


def test_config_roundtrip():
    cfg = UNetConfig(**TINY_UNET)
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    cfg2 = ConvTasNetConfig(**TINY_TASNET)
    assert ConvTasNetConfig.from_dict(cfg2.to_dict()) == cfg2


# --- metrics ----------------------------------------------------------------------------------

def test_identity_is_very_high():
    ref = torch.randn(4, 1000)
    assert (si_sdr(ref, ref) > 80).all()
    assert (sdr(ref, ref) > 80).all()


def test_sdr_hand_computed():
    ref = torch.tensor([1.0, 0.0, 0.0, 0.0])
    est = torch.tensor([0.5, 0.0, 0.0, 0.0])
    assert float(sdr(est, ref)) == pytest.approx(10 * math.log10(1 / 0.25), abs=1e-4)


@pytest.mark.parametrize("snr", [-5.0, 0.0, 7.5, 20.0])
def test_known_snr_with_orthogonal_noise(snr):
    t = torch.arange(8000) / 8000
    ref = torch.sin(2 * math.pi * 100 * t)
    noise = torch.cos(2 * math.pi * 100 * t)  # orthogonal to ref, zero mean, same energy
    est = ref + noise * 10 ** (-snr / 20)
    assert float(sdr(est, ref)) == pytest.approx(snr, abs=1e-3)
    assert float(si_sdr(est, ref)) == pytest.approx(snr, abs=1e-3)


def test_si_sdr_scale_invariance_and_batching():
    torch.manual_seed(0)
    ref = torch.randn(2, 3, 500)
    est = ref + 0.3 * torch.randn(2, 3, 500)
    s = si_sdr(est, ref)
    assert s.shape == (2, 3)
    assert torch.allclose(si_sdr(est * 7.0, ref), s, atol=1e-3)
    assert torch.allclose(si_sdr(est, ref * 0.1), s, atol=1e-3)
    assert torch.allclose(s[1, 2], si_sdr(est[1, 2], ref[1, 2]))
    assert not torch.allclose(sdr(est * 7.0, ref), sdr(est, ref))  # SDR is not scale invariant
    assert torch.allclose(si_sdr_improvement(est, ref, est), torch.zeros(2, 3), atol=1e-5)


def test_metrics_reject_shape_mismatch():
    with pytest.raises(ValueError):
        si_sdr(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError):
        sdr(torch.zeros(3), torch.zeros(4))
