"""Pure signal-processing helpers shared by the masking models (no state, no I/O)."""

from __future__ import annotations

import math

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


def apply_masks(spec: torch.Tensor, masks: torch.Tensor, n_fft: int, hop: int, length: int,
                mix: torch.Tensor | None = None) -> torch.Tensor:
    """Apply real masks to a mixture spectrogram (mixture phase) and return waveforms.

    spec: (batch, channels, freq, frames) complex; masks: (batch, sources, channels, freq, frames)
    -> (batch, sources, channels, length). Masks that sum to one over sources give stems that
    sum to the mixture (the iSTFT is linear); given that mixture's waveform ``mix`` (batch,
    channels, length), of which ``spec`` is the STFT, such masks' last stem is computed as ``mix``
    minus the others (one inverse STFT fewer; the same stems up to float rounding).
    """
    if mix is None:
        return istft(_masked(spec, masks), n_fft, hop, length)
    rest = istft(_masked(spec, masks[:, :-1]), n_fft, hop, length)
    return torch.cat([rest, (mix - rest.sum(dim=1)).unsqueeze(1)], dim=1)


def _masked(spec: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Real masks (batch, sources, channels, freq, frames) times a complex spectrogram (batch,
    channels, freq, frames), multiplied as real pairs (the masks are not made complex first)."""
    return torch.view_as_complex(torch.view_as_real(spec).unsqueeze(1) * masks.unsqueeze(-1))


def wiener(spec: torch.Tensor, masks: torch.Tensor, iterations: int = 1) -> torch.Tensor:
    """Multichannel Wiener filtering of mask estimates (Open-Unmix's implementation of norbert's EM).

    spec: (batch, channels, freq, frames) complex mixture; masks: (batch, sources, channels, freq,
    frames), whose estimates (masks times the mixture, mixture phase) start the EM. Each source's
    spatial covariance and power are re-estimated ``iterations`` times; returns complex source
    STFTs (batch, sources, channels, freq, frames). No gradient: separation only.
    """
    from openunmix.filtering import wiener as umx_wiener

    mags = (masks * spec.abs().unsqueeze(1)).detach()
    out = []
    for m, x in zip(mags, spec.detach()):
        y = umx_wiener(m.permute(3, 2, 1, 0), torch.view_as_real(x.permute(2, 1, 0)), iterations)
        out.append(torch.view_as_complex(y.permute(4, 2, 1, 0, 3).contiguous()))  # (sources, channels, freq, frames)
    return torch.stack(out).to(spec.dtype)


#: sample rates whose band a recording's content may fill (telephone, wide-band, ...), lowest first
CONTENT_RATES = (8000, 16000, 22050, 24000, 32000)
#: the length of a signal's start that :func:`content_rate` judges (a file needs only that much read)
CONTENT_SECONDS = 30.0
#: the band above a rate's Nyquist counts as empty when it holds this much less power than the band below
EMPTY_BAND_DB = -60.0


def content_rate(x: torch.Tensor, rate: int, empty_db: float = EMPTY_BAND_DB) -> int:
    """The lowest rate of :data:`CONTENT_RATES` below ``rate`` whose band holds the content of ``x``,
    else ``rate``: 8000 for telephone-band speech stored at 44.1 kHz (upsampled, or through a codec).

    x: (channels, time) or (time,), of which the first :data:`CONTENT_SECONDS` are judged. A
    candidate rate r holds the content when, over the active STFT frames (within 30 dB of the
    loudest), the power from 1.1 x r/2 up to 0.95 x rate/2 is ``empty_db`` below the power from
    100 Hz to 0.9 x r/2 (the margins leave the resampler's transition band out).
    A signal with no active frame (silence), or shorter than one frame, keeps ``rate``.
    """
    x = x.reshape(-1, x.shape[-1])[:, : int(CONTENT_SECONDS * rate)].float()
    n_fft = 1 << max(8, round(rate * 0.064 - 1).bit_length())  # ~64 ms or more: 1024 at 16 kHz
    if x.shape[-1] < n_fft:
        return rate
    frames = x.unfold(-1, n_fft, n_fft) * torch.hann_window(n_fft)  # whole frames only: a cut edge
    power = torch.fft.rfft(frames).abs().square().sum(0).double().T  # would splash the high band; (freq, frames)

    def band(low_hz: float, high_hz: float) -> torch.Tensor:  # (frames,): power of bins low_hz <= f < high_hz
        return power[math.ceil(low_hz * n_fft / rate): math.ceil(high_hz * n_fft / rate)].sum(0)

    for candidate in (r for r in CONTENT_RATES if r < rate):
        low, high = band(100, 0.45 * candidate), band(0.55 * candidate, 0.475 * rate)
        if low.max() <= 0:
            return rate
        active = low > 1e-3 * low.max()
        if 10 * math.log10(float(high[active].sum() / low[active].sum()) + 1e-300) < empty_db:
            return candidate
    return rate
