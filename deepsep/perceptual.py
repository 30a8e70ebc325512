"""Speech quality and intelligibility scores: PESQ (ITU-T P.862, `pesq`) and STOI (`pystoi`).

Pure functions on numpy ``(time,)`` signals; ``None`` when a score is undefined for the input
(no speech found, too short) or its package is not installed.
"""

from __future__ import annotations

import numpy as np
import soxr

#: why PESQ columns are empty when the ``pesq`` package is missing (it has no wheel for some systems)
PESQ_MISSING = ("PESQ not computed: the pesq package is not installed (pip install 'deepsep[eval]'; it builds from "
                "source where no wheel fits, which needs a C compiler, e.g. apt-get install build-essential)")


def pesq_available() -> bool:
    try:
        import pesq  # noqa: F401
    except ImportError:
        return False
    return True


def pesq_score(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> float | None:
    """PESQ: narrow-band at 8 kHz (inputs below 16 kHz), wide-band at 16 kHz (16 kHz and above)."""
    try:
        from pesq import pesq
    except ImportError:
        return None
    if not np.any(reference) or not np.any(estimate):
        return None
    rate, mode = (16000, "wb") if sample_rate >= 16000 else (8000, "nb")
    if sample_rate != rate:
        estimate = soxr.resample(estimate, sample_rate, rate)
        reference = soxr.resample(reference, sample_rate, rate)
    try:
        return float(pesq(rate, reference.astype(np.float64), estimate.astype(np.float64), mode))
    except Exception:  # pesq raises its own errors for silence / no utterances
        return None


def stoi_score(estimate: np.ndarray, reference: np.ndarray, sample_rate: int) -> float | None:
    """STOI in [0, 1] (pystoi resamples to 10 kHz itself)."""
    try:
        from pystoi import stoi
    except ImportError:
        return None
    try:
        value = float(stoi(reference.astype(np.float64), estimate.astype(np.float64), sample_rate, extended=False))
    except Exception:
        return None
    return value if np.isfinite(value) else None
