"""Evaluation: test items (:mod:`.items`), their scores (:mod:`.scoring`), reports and pictures
(:mod:`.reports`).

The one place of the separation scores of ``deepsep eval`` and of training validation: items are
separated through the pipeline of ``deepsep separate`` and scored with :mod:`deepsep.metrics`
(SI-SDR, SDR) and :mod:`deepsep.perceptual` (PESQ, STOI). Nothing here writes a file but the
reports.
"""

from __future__ import annotations

from .items import (
    EvalItem,
    detect_items,
    in_memory,
    mixture_rate,
    music_items,
    read_audio,
    resample_item,
    resolve_dataset,
    speech_items,
)
from .reports import (
    LABELS,
    METRICS,
    markdown_summary,
    plot_distribution,
    plot_outputs,
    plot_spectrograms,
    present_metrics,
    write_reports,
)
from .scoring import (
    BASELINES,
    SILENT_DB,
    EvalResult,
    baseline_estimates,
    evaluate,
    group_order,
    is_silent,
    oracle_irm,
    score,
    score_rows,
    sdr_means,
    stft_settings,
)

__all__ = [
    "BASELINES", "LABELS", "METRICS", "SILENT_DB", "EvalItem", "EvalResult", "baseline_estimates", "detect_items",
    "evaluate", "group_order", "in_memory", "is_silent", "markdown_summary", "mixture_rate", "music_items",
    "oracle_irm", "plot_distribution", "plot_outputs", "plot_spectrograms", "present_metrics", "read_audio",
    "resample_item", "resolve_dataset", "score", "score_rows", "sdr_means", "speech_items", "stft_settings", "write_reports",
]
