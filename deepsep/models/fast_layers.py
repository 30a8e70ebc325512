"""Drop-in faster versions of three layers of torchaudio's Conv-TasNet on a CPU.

All compute exactly the same function with the same parameters (same state-dict keys), so
weights move freely between the stock and the fast modules. Measured on the 2-core dev CPU
(fwd + bwd of a (8, 256, 1000) tensor): a dilated depthwise ``Conv1d`` costs 21-24 ms in
oneDNN against 9-10 ms as an undilated ``Conv2d`` over the folded time axis; ``nn.PReLU``'s
backward (its one-parameter gradient) costs 11.7 ms against 5.2 ms here. One Conv-TasNet
training step (batch 8 x 2 s) goes from about 0.9 to 0.7 s. Separation (no gradients) takes
the depthwise convolutions as shifted multiply-adds and the decoder as a matrix product:
``python benchmarks/voice_speed.py`` gives the numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _PReLUFn(torch.autograd.Function):
    """PReLU with a single slope ``a`` (shape (1,)), as leaky ReLU plus one dot product."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, a)
        return F.leaky_relu(x, float(a))

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, a = ctx.saved_tensors
        gx = torch.ops.aten.leaky_relu_backward(g, x, float(a), False)
        ga = torch.dot(g.reshape(-1), x.clamp_max(0).reshape(-1)).reshape(a.shape)
        return gx, ga


class FastPReLU(torch.nn.PReLU):
    """``nn.PReLU(num_parameters=1)`` with a cheaper backward on the CPU (same output, same grads)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or self.weight.numel() != 1:
            return super().forward(x)
        return _PReLUFn.apply(x, self.weight)


class DepthwiseConv1d(torch.nn.Conv1d):
    """A depthwise ``Conv1d`` (dilation ``d``, "same" padding) computed the way that is fastest on a CPU.

    With gradients (training), a dilated one runs as an undilated ``Conv2d`` over the time axis
    folded into (time / d, d): sample ``t = i * d + j`` sits at ``(i, j)``, so a shift by ``d`` in
    time is a shift by 1 along ``i``. Without (separation), it is the sum of its ``k`` shifted taps,
    ``y[t] = b + sum_j w_j x[t + j d - p]``, in place: 0.4 ms against 0.5-7.5 ms (varying with the
    dilation) for oneDNN's depthwise kernel on a (1, 256, 4000) tensor, one thread of the dev CPU.
    (batch, C, T) -> (batch, C, T).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, p, k = self.dilation[0], _int_padding(self), self.kernel_size[0]
        if (p is None or 2 * p != (k - 1) * d or self.stride[0] != 1
                or self.groups != self.in_channels or self.out_channels != self.in_channels):
            return super().forward(x)
        if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            return self._folded(x, p) if d > 1 and p % d == 0 else super().forward(x)
        return self._taps(x, p)

    def _taps(self, x: torch.Tensor, p: int) -> torch.Tensor:
        d, k = self.dilation[0], self.kernel_size[0]
        t = x.shape[-1]
        w = self.weight[:, 0, :, None]  # (C, k, 1)
        y = x * w[:, p // d] if p % d == 0 else torch.zeros_like(x)
        for j in range(k):
            shift = j * d - p  # y[t] += w_j x[t + shift]
            if shift == 0 or abs(shift) >= t:
                continue
            if shift > 0:
                y[..., :t - shift].addcmul_(x[..., shift:], w[:, j])
            else:
                y[..., -shift:].addcmul_(x[..., :t + shift], w[:, j])
        return y if self.bias is None else y.add_(self.bias[:, None])

    def _folded(self, x: torch.Tensor, p: int) -> torch.Tensor:
        d = self.dilation[0]
        b, c, t = x.shape
        extra = (-t) % d
        folded = F.pad(x, (p, p + extra)).view(b, c, -1, d)
        y = F.conv2d(folded, self.weight.unsqueeze(-1), self.bias, groups=self.groups)
        return y.reshape(b, c, -1)[..., :t]


class MatmulConvTranspose1d(torch.nn.ConvTranspose1d):
    """``ConvTranspose1d`` (no groups, no dilation, no output padding) as one matrix product and an
    overlap-add (``F.fold``): Conv-TasNet's decoder, 256 channels -> 1, kernel 32, stride 16, on
    2 x 4000 frames: 4 ms against 22 ms forward, 37 against 56 ms forward and backward (batch 16 x
    1000), one thread of the dev CPU. (batch, C_in, M) -> (batch, C_out, (M - 1) * stride - 2 * pad + k).
    """

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        k, s, p = self.kernel_size[0], self.stride[0], _int_padding(self)
        if (p is None or output_size is not None or self.groups != 1 or self.dilation[0] != 1
                or self.output_padding[0] or x.ndim != 3):
            return super().forward(x, output_size)
        b, c, m = x.shape
        frames = torch.matmul(x.transpose(1, 2), self.weight.reshape(c, -1))  # (b, M, C_out * k)
        full = (m - 1) * s + k
        y = F.fold(frames.transpose(1, 2), (1, full), (1, k), stride=(1, s)).reshape(b, self.out_channels, full)
        y = y[..., p:full - p]
        return y if self.bias is None else y + self.bias[:, None]


def _int_padding(layer: torch.nn.modules.conv._ConvNd) -> int | None:
    """A 1-d convolution's padding in samples (None when given by name, "same" or "valid")."""
    return None if isinstance(layer.padding, str) else int(layer.padding[0])


def speed_up(net: torch.nn.Module) -> torch.nn.Module:
    """Swap, in place, every one-slope ``nn.PReLU``, every depthwise ``nn.Conv1d`` and every plain
    ``nn.ConvTranspose1d`` in ``net`` for the fast versions above, keeping their parameters; returns
    ``net``."""
    for parent in list(net.modules()):
        for name, layer in list(parent.named_children()):
            if type(layer) is torch.nn.PReLU and layer.weight.numel() == 1:
                fast: torch.nn.Module = FastPReLU()
            elif (type(layer) is torch.nn.Conv1d and layer.groups == layer.in_channels == layer.out_channels > 1
                  and (pad := _int_padding(layer)) is not None):
                fast = DepthwiseConv1d(layer.in_channels, layer.out_channels, layer.kernel_size[0],
                                       padding=pad, dilation=layer.dilation[0], groups=layer.groups,
                                       bias=layer.bias is not None)
            elif (type(layer) is torch.nn.ConvTranspose1d and layer.groups == 1 and layer.dilation[0] == 1
                  and not layer.output_padding[0] and (pad := _int_padding(layer)) is not None):
                fast = MatmulConvTranspose1d(layer.in_channels, layer.out_channels, layer.kernel_size[0],
                                             stride=layer.stride[0], padding=pad,
                                             bias=layer.bias is not None)
            else:
                continue
            fast.load_state_dict(layer.state_dict())
            setattr(parent, name, fast.to(layer.weight.device, layer.weight.dtype))
    return net
