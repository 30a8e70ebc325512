"""`deepsep eval`: metrics of a model on a test set, as a table, report files and plots."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import __version__
from ..console import SHIFTS_HELP, THREADS_HELP, err, fail, reported, warn
from ..errors import DeepsepError, UsageError
from ..evaluation import EvalItem, EvalResult, detect_items, evaluate, mixture_rate, resolve_dataset
from ..evaluation.reports import LABELS, plot_distribution, plot_spectrograms, present_metrics, write_reports
from ..models.bag import default_segments
from ..options import engine_options
from ..paths import SETS_ENV, sets_root
from ..perceptual import PESQ_MISSING, pesq_available
from ..weights import get_model, load_bag, load_manifest, load_resolved, resolve, sha256_file

out = Console()


def load_eval_model(model_name: str | None, checkpoint: str | None, task: str, device: str,
                    item: EvalItem | None = None, trust_local: bool = False):
    """(model, description dict) from -m NAME/PATH or --checkpoint (training .pt or .safetensors, the
    developer's own: loaded unchecked); ``item``, the test set's first, decides a rate-dependent alias
    such as ``voice`` as `separate` does for a file: by its rate, or the band its content fills where
    the alias has a model for a lower rate; ``trust_local``: as ``separate --trust-local``."""
    if checkpoint:
        path = Path(checkpoint)
        if not path.is_file():
            raise DeepsepError(f"checkpoint not found: {path}")
        if path.suffix == ".pt":
            from ..train.checkpoints import model_from_checkpoint

            model = model_from_checkpoint(path).to(device)
        else:
            model = get_model(str(path), device, trust_local=True)
        return model, {"name": path.name, "origin": "checkpoint", "sha256": sha256_file(path), "path": str(path)}
    manifest = load_manifest()
    name = model_name or ("voice" if task == "speech" else manifest.default)
    rate = None
    if item is not None and name in manifest.rate_aliases:
        rate = manifest.pick_rate(name, mixture_rate(item), lambda: mixture_rate(item, content=True))
    bag = manifest.bags.get(manifest.alias_for_rate(name, rate))
    if bag is not None:
        shas = ", ".join(f"{m} {manifest.entries[m].sha256}" for m in bag.members)
        return load_bag(bag, manifest, device), {"name": bag.name, "origin": "bag", "sha256": shas, "path": ""}
    res = resolve(name, manifest, rate=rate, trust_local=trust_local)
    if res.origin == "unchecked file":
        warn(f"{res.path}: loaded unchecked (--trust-local): no sha256 in the manifest or beside it vouches for it")
    model = load_resolved(res, device)
    sha = res.entry.sha256 if res.entry else (sha256_file(res.path) if res.path else "random weights")
    return model, {"name": res.name, "origin": res.origin, "sha256": sha, "path": str(res.path or "")}


def _report_name(model_info: dict[str, str]) -> str:
    """The model's part of the default report folder: its name, and for a checkpoint file also its
    folder's (runs/a/best.pt and runs/b/best.pt must not share a report)."""
    stem = Path(model_info["name"]).stem
    return f"{Path(model_info['path']).parent.name}-{stem}" if model_info["origin"] == "checkpoint" else stem


@click.command("eval")
@click.option("--dataset", default="test", show_default=True, help="A test set folder, or a name under --sets.")
@click.option("--sets", "sets_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Where named test sets live, as `deepsep data prepare` builds them [default: ${SETS_ENV}, else data].")
@click.option("-m", "--model", "model_name", help="Model name or .safetensors file [default: voice or the music default].")
@click.option("--trust-local", is_flag=True,
              help="Load a -m FILE that neither the manifest's sha256 nor a FILE.sha256 beside it vouches for (warned).")
@click.option("--checkpoint", type=click.Path(), help="A training checkpoint (.pt) or model file to evaluate instead.")
@click.option("--baselines", is_flag=True, help="Also score the unprocessed mixture and an oracle ideal ratio mask.")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path),
              help="Report folder [default: outputs/eval/<model>_<dataset>; a checkpoint's model part is "
                   "<its folder>-<its name>].")
@click.option("--overwrite", is_flag=True, help="Replace the report of an earlier evaluation in the report folder.")
@click.option("--device", default="auto", show_default=True)
@click.option("--threads", type=int, metavar="N", help=THREADS_HELP)
@click.option("--segment", type=float, help="Segment length in seconds, more than 0 (as for separate).")
@click.option("--overlap", type=float, default=0.25, show_default=True, help="From 0 to below 1.")
@click.option("--batch-size", type=int, default=1, show_default=True)
@click.option("--shifts", type=int, default=1, show_default=True,
              help=SHIFTS_HELP)
@click.option("--limit", type=click.IntRange(1), help="Only the first N items.")
@click.option("--plot-items", type=click.IntRange(0), default=2, show_default=True,
              help="Spectrogram pictures for this many items (0: none).")
def evaluate_command(dataset, sets_dir, model_name, trust_local, checkpoint, baselines, out_dir, overwrite, device, threads,
                     segment, overlap, batch_size, shifts, limit, plot_items) -> None:
    """Evaluate a model on a test set: SI-SDR(i), SDR, and PESQ/STOI for speech."""
    with reported():
        engine = engine_options(device, segment, overlap, batch_size, shifts, threads)
        root = resolve_dataset(dataset, sets_root(sets_dir))
        items = detect_items(root)[:limit]
        model, model_info = load_eval_model(model_name, checkpoint, items[0].task, engine.device, items[0], trust_local)
        out_dir = out_dir or Path("outputs") / "eval" / f"{_report_name(model_info)}_{root.name}"
        if (out_dir / "report.json").exists() and not overwrite:
            raise UsageError(f"{out_dir} already holds a report: give --overwrite to replace it, or another -o")
    if items[0].task == "speech" and not pesq_available():
        warn(PESQ_MISSING)
    out_dir.mkdir(parents=True, exist_ok=True)
    plotted: list[str] = []

    def on_item(item, estimates, references, mixture, rate) -> None:
        progress.advance(task)
        if len(plotted) < plot_items:
            signals = {"mixture": mixture}
            for s in references:
                signals[f"{s} (estimate)"] = estimates[s]
                signals[f"{s} (reference)"] = references[s]
            plot_spectrograms(signals, rate, out_dir / f"spectrograms_{item.name}.png", f"{item.name} {item.group}")
            plotted.append(item.name)

    with Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err) as progress:
        task = progress.add_task("eval", total=len(items))
        try:
            result = evaluate(model, items, engine, baselines, on_item=on_item)
        except DeepsepError as e:
            progress.stop()
            fail(str(e))
    summary = result.summary()
    meta = {
        "deepsep_version": __version__,
        "command": "deepsep " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "model": {**model_info, "arch_sources": list(model.sources), "sample_rate": model.sample_rate},
        "dataset": {"name": root.name, "path": str(root), "task": items[0].task, "items": len(items)},
        "engine": {"segment": default_segments(model) if segment is None else segment, "overlap": overlap,
                   "batch_size": batch_size, "device": engine.device, "shifts": shifts},
        "excluded": result.excluded,
    }
    paths = write_reports(result.rows, summary, meta, out_dir)
    metric = "si_sdri" if items[0].task == "speech" else "sdr"
    paths["plot"] = plot_distribution(result.rows, metric, out_dir / f"{metric}_distribution.png")
    _print_table(result, summary, meta)
    for kind, path in paths.items():
        out.print(f"{kind}: {path}", highlight=False)


def _print_table(result: EvalResult, summary, meta) -> None:
    """Means: every source over all items, and per group (SNR) for the first source (voice)."""
    metrics = present_metrics(summary)
    first = meta["model"]["arch_sources"][0]
    table = Table(title=f"{meta['model']['name']} on {meta['dataset']['name']} ({meta['dataset']['items']} items), means")
    for col in ("method", "source", "group", "n", *[LABELS[m] for m in metrics]):
        table.add_column(col, justify="left" if col in ("method", "source", "group") else "right")
    for s in summary:
        if s["group"] != "all" and s["source"] != first:
            continue
        cells = [f"{s[m + '_mean']:.2f}" if f"{m}_mean" in s else "" for m in metrics]
        table.add_row(s["method"], s["source"], s["group"], str(s["count"]), *cells)
    out.print(table)
    if result.excluded:
        out.print(f"{result.excluded} (item, source) pairs have a silent reference: listed in the report, not averaged.")
