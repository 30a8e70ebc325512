"""Separation metrics: pure functions on torch tensors, used by training validation and eval.

Shapes: ``estimate`` and ``reference`` are (..., time) with the same shape (any leading axes,
e.g. (batch, sources, channels, time)); results are (...) in dB, one value per signal.
"""

from __future__ import annotations

import torch

EPS = 1e-8


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = EPS, zero_mean: bool = True) -> torch.Tensor:
    """Scale-invariant SDR (Le Roux et al., 2019) in dB: (..., time) x (..., time) -> (...).

    The reference is scaled by ``alpha = <est, ref> / <ref, ref>`` (the projection of the
    estimate on it); SI-SDR = 10 log10(|alpha ref|^2 / |alpha ref - est|^2). With
    ``zero_mean`` both signals have their mean removed first (the usual SI-SNR convention).
    """
    if estimate.shape != reference.shape:
        raise ValueError(f"shape mismatch: estimate {tuple(estimate.shape)} vs reference {tuple(reference.shape)}")
    if zero_mean:
        estimate = estimate - estimate.mean(dim=-1, keepdim=True)
        reference = reference - reference.mean(dim=-1, keepdim=True)
    alpha = (estimate * reference).sum(-1, keepdim=True) / (reference.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * reference
    noise = target - estimate
    return 10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))


def sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Global SDR of the MDX challenges in dB: 10 log10(sum ref^2 / sum (ref - est)^2).

    (..., time) x (..., time) -> (...). Not scale invariant: a gain error counts as distortion.
    """
    if estimate.shape != reference.shape:
        raise ValueError(f"shape mismatch: estimate {tuple(estimate.shape)} vs reference {tuple(reference.shape)}")
    num = reference.pow(2).sum(-1)
    den = (reference - estimate).pow(2).sum(-1)
    return 10 * torch.log10((num + eps) / (den + eps))


def si_sdr_improvement(estimate: torch.Tensor, reference: torch.Tensor, mixture: torch.Tensor,
                       eps: float = EPS) -> torch.Tensor:
    """SI-SDR of the estimate minus SI-SDR of the unprocessed mixture: (..., time) -> (...)."""
    return si_sdr(estimate, reference, eps) - si_sdr(mixture, reference, eps)
