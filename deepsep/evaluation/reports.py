"""Evaluation reports (JSON, CSV, Markdown) and pictures (PNG, matplotlib without a display)."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("si_sdr", "si_sdri", "sdr", "pesq", "stoi")
LABELS = {"si_sdr": "SI-SDR", "si_sdri": "SI-SDRi", "sdr": "SDR", "pesq": "PESQ", "stoi": "STOI"}


def _write_whole(path: Path, text: str) -> None:
    """``text`` into ``path`` all or nothing: written beside it under a hidden name, then renamed."""
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        partial.write_text(text, newline="")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _csv(rows: list[dict[str, Any]]) -> str:
    """items.csv: one line per (item, method, source), the metrics as columns."""
    f = io.StringIO()
    writer = csv.DictWriter(f, fieldnames=["item", "group", "method", "source", "silent", *METRICS],
                            extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "silent": bool(r.get("silent"))})
    return f.getvalue()


def write_reports(rows: list[dict[str, Any]], summary: list[dict[str, Any]], meta: dict[str, Any],
                  out_dir: Path) -> dict[str, Path]:
    """report.json (meta, summary, items), items.csv and summary.md in ``out_dir``, each written
    whole (a crash leaves the previous file or none, never half of one)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "csv": out_dir / "items.csv", "markdown": out_dir / "summary.md"}
    _write_whole(paths["json"], json.dumps({**meta, "summary": summary, "items": rows}, indent=1))
    _write_whole(paths["csv"], _csv(rows))
    _write_whole(paths["markdown"], markdown_summary(summary, meta))
    return paths


def present_metrics(summary: Sequence[dict[str, Any]]) -> list[str]:
    """The metrics that the summary holds, in :data:`METRICS` order."""
    return [m for m in METRICS if any(f"{m}_mean" in s for s in summary)]


def markdown_summary(summary: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    """summary.md: the means (medians) per (method, source, group) as a table, and the command."""
    metrics = present_metrics(summary)
    lines = [
        f"# deepsep eval: {meta['model']['name']} on {meta['dataset']['name']}", "",
        f"{meta['dataset']['items']} items; {meta['excluded']} (item, method, source) rows with a silent reference "
        "are listed in the report but not averaged. Values: mean (median).", "",
        "| method | source | group | n | " + " | ".join(LABELS[m] for m in metrics) + " |",
        "|---|---|---|---|" + "---|" * len(metrics),
    ]
    for s in summary:
        cells = [f"{s[m + '_mean']:.2f} ({s[m + '_median']:.2f})" if f"{m}_mean" in s else "" for m in metrics]
        lines.append(f"| {s['method']} | {s['source']} | {s['group']} | {s['count']} | " + " | ".join(cells) + " |")
    lines += ["", f"Command: `{meta['command']}`",
              f"deepsep {meta['deepsep_version']}, model sha256 {meta['model']['sha256']}", ""]
    return "\n".join(lines)


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_distribution(rows: list[dict[str, Any]], metric: str, path: Path) -> Path:
    """Box plot of ``metric`` per group (speech: SNR) or per source (music), one box per method."""
    plt = _pyplot()
    rows = [r for r in rows if r.get(metric) is not None and not r.get("silent")]
    by_group = any(r["group"] for r in rows)
    key = "group" if by_group else "source"
    if by_group:
        rows = [r for r in rows if r["source"] == rows[0]["source"]] if rows else rows
    cats = sorted({r[key] for r in rows}, key=lambda g: (len(g), g) if not by_group else float(g.split()[-1]))
    methods = [m for m in ("mixture", "model", "oracle-irm") if any(r["method"] == m for r in rows)]
    fig, ax = plt.subplots(figsize=(min(14, 2.5 + 1.4 * len(cats)), 4))
    width = 0.8 / max(1, len(methods))
    for j, method in enumerate(methods):
        data = [[r[metric] for r in rows if r[key] == c and r["method"] == method] or [np.nan] for c in cats]
        pos = [i + (j - (len(methods) - 1) / 2) * width for i in range(len(cats))]
        bp = ax.boxplot(data, positions=pos, widths=width * 0.9, patch_artist=True, showfliers=True)
        for patch in bp["boxes"]:
            patch.set_facecolor(f"C{j}")
            patch.set_alpha(0.6)
        ax.plot([], [], color=f"C{j}", lw=6, alpha=0.6, label=method)
    ax.set_xticks(range(len(cats)), cats)
    ax.set_ylabel(f"{LABELS[metric]} (dB)" if metric in ("si_sdr", "si_sdri", "sdr") else LABELS[metric])
    title_source = f" ({rows[0]['source']})" if by_group and rows else ""
    ax.set_title(f"{LABELS[metric]}{title_source}")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_spectrograms(signals: dict[str, np.ndarray], rate: int, path: Path, title: str = "") -> Path:
    """One log-magnitude spectrogram per named signal (each (channels, time), channels averaged)."""
    plt = _pyplot()
    n = len(signals)
    fig, axes = plt.subplots(n, 1, figsize=(9, 1.8 * n + 0.6), sharex=True, squeeze=False)
    n_fft = 2 ** int(np.clip(np.round(np.log2(0.046 * rate)), 8, 12))
    for ax, (name, x) in zip(axes[:, 0], signals.items()):
        mono = np.asarray(x, dtype=np.float64).reshape(-1, np.asarray(x).shape[-1]).mean(0)
        if mono.size < n_fft:
            mono = np.pad(mono, (0, n_fft - mono.size))
        ax.specgram(mono, NFFT=n_fft, Fs=rate, noverlap=n_fft * 3 // 4, cmap="magma", vmin=-120, vmax=-20, scale="dB")
        ax.set_ylabel("Hz")
        ax.set_title(name, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_outputs(source: Path, stems: dict[str, Path], path: Path, seconds: float = 120.0) -> Path:
    """Spectrograms of an input file and its written stems (their first ``seconds``)."""
    import soundfile as sf

    from ..audio import sf_name

    def head(p: Path) -> tuple[np.ndarray, int]:
        info = sf.info(sf_name(p))
        data, rate = sf.read(sf_name(p), frames=int(seconds * info.samplerate), dtype="float32", always_2d=True)
        return data.T, rate

    try:
        mix, rate = head(source)
    except RuntimeError:  # formats only ffmpeg reads: plot the stems alone
        mix, rate = None, 0
    signals = {"input": mix} if mix is not None else {}
    for name, p in stems.items():
        signals[name], rate = head(p)
    path.parent.mkdir(parents=True, exist_ok=True)
    return plot_spectrograms(signals, rate, path, source.name)
