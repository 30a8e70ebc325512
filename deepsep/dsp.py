"""Pure signal-processing helpers shared by the masking models (no state, no I/O)."""

from __future__ import annotations

import torch


def stft(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Complex STFT with a periodic Hann window, centred frames.

    x: (..., time) -> (..., freq = n_fft // 2 + 1, frames = time // hop + 1)
    """
    shape = x.shape
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    spec = torch.stft(
        x.reshape(-1, shape[-1]), n_fft, hop, window=window, center=True,
        pad_mode="constant", return_complex=True,
    )
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def istft(spec: torch.Tensor, n_fft: int, hop: int, length: int) -> torch.Tensor:
    """Inverse of :func:`stft`: (..., freq, frames) -> (..., length)."""
    shape = spec.shape
    window = torch.hann_window(n_fft, device=spec.device, dtype=spec.real.dtype)
    x = torch.istft(
        spec.reshape(-1, *shape[-2:]), n_fft, hop, window=window, center=True, length=length,
    )
    return x.reshape(*shape[:-2], length)


def apply_masks(spec: torch.Tensor, masks: torch.Tensor, n_fft: int, hop: int, length: int) -> torch.Tensor:
    """Apply real masks to a mixture spectrogram (mixture phase) and return waveforms.

    spec: (batch, channels, freq, frames) complex; masks: (batch, sources, channels, freq, frames)
    -> (batch, sources, channels, length). Masks that sum to one over sources give stems that
    sum to the mixture (the iSTFT is linear).
    """
    return istft(masks * spec.unsqueeze(1), n_fft, hop, length)
