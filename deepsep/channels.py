"""Pure functions that fit any channel count to a model's and back.

A signal ``(channels, time)`` becomes ``(groups, model_channels, time)``; each group is
separated on its own (groups fold into the batch axis) and the result is mapped back to
``(sources, channels, time)``:

- mono model (``model_channels == 1``): each input channel is a group;
- stereo model, mono input: the channel is duplicated, the stems are averaged back;
- stereo model, more than two channels: consecutive pairs, the last channel duplicated when odd.
"""

from __future__ import annotations

import torch


def to_groups(wav: torch.Tensor, model_channels: int) -> torch.Tensor:
    """(channels, time) -> (groups, model_channels, time)."""
    c, t = wav.shape
    if model_channels == 1:
        return wav.unsqueeze(1)
    if c == 1:
        return wav.expand(model_channels, t).unsqueeze(0)
    groups = -(-c // model_channels)
    pad = groups * model_channels - c
    if pad:
        wav = torch.cat([wav, wav[-1:].expand(pad, t)], dim=0)
    return wav.reshape(groups, model_channels, t)


def from_groups(stems: torch.Tensor, channels: int) -> torch.Tensor:
    """(groups, sources, model_channels, time) -> (sources, channels, time); inverse of :func:`to_groups`."""
    g, s, mc, t = stems.shape
    if mc > 1 and channels == 1:
        return stems[0].mean(dim=1, keepdim=True)
    flat = stems.permute(1, 0, 2, 3).reshape(s, g * mc, t)
    return flat[:, :channels]
