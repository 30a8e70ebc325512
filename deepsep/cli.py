"""The ``deepsep`` command line: parsing and display only; the work is in :mod:`deepsep.separation`
(files), :mod:`deepsep.inputs` and :mod:`deepsep.outputs` (names and checks).

PyTorch and the modules that need it are imported only inside the commands that use them, and
the subcommand groups (eval, data, train) only when they run, so that ``--help`` answers at once.
"""

from __future__ import annotations

import importlib
import os
import sys
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click
from rich.markup import escape
from rich.table import Table

from . import __version__
from .audio import CLIP_POLICIES, DEFAULT_FILENAME, MP3_LEVELS, OUTPUT_FORMATS
from .console import SHIFTS_HELP, THREADS_HELP, err, fail, out, reported, warn
from .errors import DeepsepError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from rich.console import JustifyMethod

    from .modelcache import ModelCache
    from .options import ProgressFn
    from .outputs import FileResult

class LazyGroup(click.Group):
    """A group whose ``lazy`` subcommands (name -> (module, attribute, one-line help)) are imported
    only when they run; the help lists them from their one-line help, without importing them."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            module, attr, _ = self.lazy[name]
            self.add_command(getattr(importlib.import_module(module, __package__), attr), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(map(len, self.list_commands(ctx)))
        # click>=8.2 serves this deprecated helper through a module __getattr__ typed as returning object
        short_help = cast("Callable[[str, int], str]", click.utils.make_default_short_help)
        rows = [(name, short_help(self.lazy[name][2], limit)
                 if name in self.lazy and name not in self.commands else self.commands[name].get_short_help_str(limit))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


#: the subcommands imported when they run (their one-line help must be their docstring's first line)
LAZY_COMMANDS = {
    "eval": (".commands.evaluate", "evaluate_command",
             "Evaluate a model on a test set: SI-SDR(i), SDR, and PESQ/STOI for speech."),
    "data": (".commands.data", "data", "Prepare datasets: voice mixtures, test sets, drum renders, listening excerpts."),
    "train": (".commands.train", "train", "Train the voice and music models (checkpoints, resume, validation, logs, export)."),
}


@click.group(cls=LazyGroup, lazy=LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="deepsep")
def main() -> None:
    """Separate speech from noise, and songs into vocals, drums, bass and other."""


def _split_stems(values: tuple[str, ...]) -> tuple[str, ...] | None:
    """The stems of --stems A,B (repeatable): None when not given, a UsageError when given but
    naming none (``--stems ""``, which would otherwise keep every stem)."""
    names = tuple(s.strip() for v in values for s in v.split(",") if s.strip())
    if values and not names:
        raise UsageError(f"--stems {','.join(values)!r}: name the stems to keep, e.g. --stems vocals,drums "
                         "(without --stems, every stem is written)")
    return names or None


def _inputs(paths: tuple[Path, ...], input_dir: str | None, out_dir: Path | None) -> list[Path]:
    """The files to separate; a UsageError when nothing is named (no paths, no --input) or --input
    is not a folder: a missing argument or a wrong option value, as Click answers them."""
    from .inputs import input_files, input_folder

    if not paths and input_dir is None:
        raise UsageError("nothing to separate: give audio files or folders, or --input DIR")
    if input_dir is not None:
        if not input_dir:
            raise UsageError("--input '': give a folder")
        try:
            paths = (*paths, input_folder(input_dir))
        except DeepsepError as e:
            raise UsageError(str(e)) from None
    return input_files(paths, None, out_dir)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--input", "input_dir", metavar="DIR",
              help="Separate every audio file in DIR ('custom' means ./input unless a folder ./custom exists).")
@click.option("-m", "--model", "model_name", metavar="NAME",
              help="Model name, alias or .safetensors file (see `deepsep models`).")
@click.option("--trust-local", is_flag=True,
              help="Load a -m FILE that neither the manifest's sha256 nor a FILE.sha256 beside it vouches for (warned).")
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path),
              help="Output folder: stems go to OUT/<track>/<stem>.<ext> (see --filename) [default: outputs].")
@click.option("--filename", default=DEFAULT_FILENAME, show_default=True, metavar="TEMPLATE",
              help="Path of each stem under OUT, from the fields {model}, {track}, {stem} and {ext}, e.g. "
                   "'{model}/{track}/{stem}.{ext}'.")
@click.option("--suffix", metavar="SUFFIX",
              help="Write one stem beside each input instead, as <name>SUFFIX.<ext> (e.g. -m voice --suffix _clean: "
                   "call.flac -> call_clean.wav, the voice); music models need --stems or --two-stems to pick it.")
@click.option("--overwrite", is_flag=True, help="Replace outputs that exist (by default a file whose outputs exist fails).")
@click.option("--skip-existing", is_flag=True, help="Skip files whose outputs all exist (resume a batch).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--threads", type=int, metavar="N", help=THREADS_HELP)
@click.option("-j", "--jobs", type=click.IntRange(1), metavar="N",
              help="Separate N files at once (threads sharing the model; each with --threads PyTorch threads) "
                   "[default: 1; with --cluster: N Ray workers, default as many as the cluster has room for].")
@click.option("--segment", type=float, metavar="SECONDS",
              help="Segment length, at least 0.1 and one frame of the model [default: the model's].")
@click.option("--overlap", type=float, default=0.25, show_default=True,
              help="Overlap between segments, a fraction from 0 to below 1.")
@click.option("--batch-size", type=int, help="Segments per forward pass [default: 1 on CPU, 16 on GPU].")
@click.option("--shifts", type=int, default=1, show_default=True,
              help=SHIFTS_HELP)
@click.option("--stems", "stems", multiple=True, metavar="A,B", help="Keep only these stems (e.g. --stems vocals,drums).")
@click.option("--two-stems", metavar="STEM", help="Write STEM and no_STEM (the rest summed), e.g. --two-stems vocals.")
@click.option("--format", "fmt", type=click.Choice(list(OUTPUT_FORMATS)), default="wav", show_default=True,
              help="wav and flac are lossless; mp3, ogg (Vorbis) and opus are lossy (stems no longer add up exactly; "
                   "opus stores 8/12/16/24/48 kHz and mp3 up to 48 kHz: other rates are resampled to the next one).")
@click.option("--mp3-bitrate", type=click.Choice([str(b) for b in MP3_LEVELS]), metavar="KBPS",
              help=f"Constant bitrate of --format mp3, one of {', '.join(map(str, MP3_LEVELS))} [default: 320].")
@click.option("--bits", type=click.Choice(["16", "24", "32"]), help="Sample size; 32 is floating point (wav only) [default: 16].")
@click.option("--int24", is_flag=True, help="Same as --bits 24.")
@click.option("--float32", is_flag=True, help="Same as --bits 32 (float wav).")
@click.option("--clip", type=click.Choice(CLIP_POLICIES), default="rescale", show_default=True,
              help="Peaks over full scale: rescale all stems by one gain, clamp them, or leave them (kept by float "
                   "output only; 16/24-bit output clips them, with a warning).")
@click.option("--atten-lim", type=float, metavar="DB",
              help="Voice/noise models: attenuate the noise in `voice` by at most DB dB (12: the noise stays "
                   "at -12 dB; the rest is in `noise`, the stems still add up to the input) [default: no limit].")
@click.option("--plot", is_flag=True,
              help="Also write <track>/spectrograms.png (input and stems, first 2 minutes; the --filename of a stem "
                   "'spectrograms' with ext png; with --suffix, beside the output as .png).")
@click.option("--cluster", metavar="ray[://ADDRESS]",
              help="Separate on a Ray cluster (pip install 'deepsep[cluster]'): 'ray' (the cluster in RAY_ADDRESS, one "
                   "started with `ray start` here, or a new one on this machine) or 'ray://HOST[:PORT]'; one worker per GPU, "
                   "or per --threads CPUs; files and outputs on a folder every node shares. Skips files whose outputs all "
                   "exist (resumes) unless --overwrite.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
def separate(**options) -> None:
    """Separate audio files (or every file of --input DIR) into stems.

    With a model alias that depends on the sample rate (see `deepsep models`), each file gets the
    model for its rate (the rate its content fills: telephone-band audio at 48 kHz counts as 8 kHz).
    Options are checked (against every model the files need) before any file
    is separated: a usage error exits with status 2. A file whose outputs exist fails unless
    --overwrite or --skip-existing (the default with --cluster). SIGINT and SIGTERM remove the
    unfinished files and exit with status 130 and 143."""
    from .interrupts import Interrupted, interrupts_raise

    try:
        with interrupts_raise():
            _separate(**options)
    except Interrupted as e:
        err.print(f"[bold red]interrupted[/] ({e}): unfinished outputs removed", highlight=False)
        sys.exit(e.exit_status)


def _separate(paths, input_dir, model_name, trust_local, out_dir, filename, suffix, overwrite, skip_existing, device, threads,
              jobs, segment, overlap, batch_size, shifts, stems, two_stems, fmt, mp3_bitrate, bits, int24, float32, clip,
              atten_lim, plot, quiet, cluster) -> None:
    from .inputs import plan_inputs
    from .modelcache import ModelCache
    from .options import OutputOptions, check_model_name, check_segment, engine_options
    from .outputs import check_output, clip_warning, existing_policy, output_bits, output_root, spectrogram_path
    from .separation import separate_files
    from .weights import load_manifest

    with reported():
        if cluster is not None:  # its address and Ray checked first; Ray is imported only here
            from .cluster import cluster_address, import_ray

            cluster_address(cluster)
            import_ray()
        resume = cluster is not None and not overwrite  # a cluster run skips finished files by default
        output = OutputOptions(_split_stems(stems), two_stems, fmt, output_bits(bits and int(bits), int24, float32),
                               clip, atten_lim, filename, suffix, existing_policy(overwrite, skip_existing or resume),
                               int(mp3_bitrate) if mp3_bitrate else None)
        check_output(output)
        out_dir = output_root(out_dir, output)
        # with --cluster, the driver's: the models are loaded here (on the CPU) only to check the options
        engine = engine_options("cpu" if cluster else device, segment, overlap, batch_size, shifts, threads)
        batch, dropped = plan_inputs(_inputs(paths, input_dir, None if suffix is not None else out_dir), output)
        manifest = load_manifest()
        if model_name:  # the manifest's default is the manifest's business (a ModelError if wrong)
            check_model_name(model_name, manifest)
        models = ModelCache(model_name or manifest.default, engine.device, manifest, trust_local)
        for name, model in models.preload(path for path, _ in batch).items():  # every model the files need, once
            check_output(output, model.sources)
            check_segment(engine, model, name)
    for path in models.unchecked:
        warn(f"{path}: loaded unchecked (--trust-local): no sha256 in the manifest or beside it vouches for it")
    warning = clip_warning(output)
    if warning:
        warn(warning)
    if dropped:
        warn(f"{len(dropped)} input(s) named like the --suffix output of another input, not separated: "
             f"{', '.join(map(str, dropped[:3]))}{', ...' if len(dropped) > 3 else ''}")
    if cluster is not None:
        results = _run_on_cluster(cluster, models, batch, out_dir, output, engine, (device, jobs, threads, batch_size), quiet)
    else:
        results = _run_batch(lambda start: separate_files(models, batch, out_dir, output, engine, start, jobs or 1), quiet,
                             len(batch))
    if plot:
        for r in results:
            if not r.error and not r.skipped:
                from .evaluation.reports import plot_outputs

                r.outputs["spectrograms"] = plot_outputs(r.path, dict(r.outputs), spectrogram_path(r, out_dir, output))
    if not quiet:
        _print_summary(results, None if suffix is not None else out_dir)
    failed = [r for r in results if r.error]
    if failed:
        err.print(f"[bold red]{len(failed)} of {len(results)} file(s) failed[/]", highlight=False)
        sys.exit(1)


def _run_on_cluster(value: str, models: ModelCache, batch, out_dir, output, engine, workers: tuple,
                    quiet: bool) -> list[FileResult]:
    """``separate --cluster``: the batch on a Ray cluster's workers (``workers``: --device, -j,
    --threads, --batch-size); the results in the batch's order, as a local run gives them."""
    from .cluster import connected, plan_workers, separate_on_cluster

    device, jobs, threads, batch_size = workers
    with reported(), connected(value) as resources:
        plan = plan_workers(resources, device, jobs, threads, batch_size)
        if not quiet:
            err.print(f"Ray cluster ({resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs): up to "
                      f"{plan.count} worker(s) on {plan.device}, --batch-size {plan.batch_size}", highlight=False)
        results = _run_batch(lambda start: separate_on_cluster(models, batch, out_dir, output, engine, plan, threads, start),
                             quiet, len(batch))
    order = {item: i for i, item in enumerate(batch)}
    return sorted(results, key=lambda r: order[r.path, r.track])


#: in a batch of more files, only this many finished files keep their progress bars, below one bar
#: for the whole batch (the display draws every bar at each refresh: a thousand made it the work)
SHOWN_FINISHED = 20


def _run_batch(separated: Callable[[Callable[[Path, str], ProgressFn]], Generator[FileResult, None, None]],
               quiet: bool, count: int) -> list[FileResult]:
    """Show the progress of a batch of ``count`` files, ``separated(start)`` (``start(file, track)``
    makes a file's progress bar and gives its callback), with its warnings and errors; its results."""
    from collections import deque

    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    results: list[FileResult] = []
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=quiet, transient=False,
    )
    tasks: dict[tuple[Path, str], TaskID] = {}  # (file, track) -> its progress bar, made as the file starts
    overall = progress.add_task(f"{count} files", total=count) if count > SHOWN_FINISHED else None
    finished: deque[TaskID] = deque()

    def start(path: Path, track: str) -> ProgressFn:
        task = tasks[path, track] = progress.add_task(escape(track[:40]), total=None)
        return lambda done, total: progress.update(task, completed=done, total=total)

    # closing() ends the generator, and with it the workers, if the loop stops early
    with progress, closing(separated(start)) as results_of:
        for result in results_of:
            if (result.path, result.track) not in tasks:  # failed before it started (its model or header)
                start(result.path, result.track)
            task, label = tasks.pop((result.path, result.track)), escape(result.track[:40])
            for warning in result.warnings:
                progress.console.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
            if result.error:
                progress.update(task, description=f"[red]{label}[/]")
                progress.console.print(f"[bold red]error:[/] {escape(result.error)}", highlight=False, soft_wrap=True)
            else:
                progress.update(task, completed=1, total=1,
                                description=f"{label} (skipped: outputs exist)" if result.skipped else label)
            results.append(result)
            finished.append(task)
            if overall is not None:
                progress.advance(overall)
                if len(finished) > SHOWN_FINISHED:
                    progress.remove_task(finished.popleft())
    return results


def _outputs_text(r: FileResult, out_dir: Path | None) -> str:
    """'song/: vocals.wav, drums.wav': the outputs' folder (under the output folder) and their names."""
    paths = list(r.outputs.values())
    if out_dir is None:  # --suffix: beside each input
        return ", ".join(map(str, paths))
    folder = Path(os.path.commonpath([str(p.parent) for p in paths]))
    shown = folder.relative_to(out_dir) if folder.is_relative_to(out_dir) else folder
    return f"{shown}/: " + ", ".join(str(p.relative_to(folder)) for p in paths)


def _print_summary(results: list[FileResult], out_dir: Path | None) -> None:
    done = sum(not r.error and not r.skipped for r in results)
    skipped = sum(r.skipped for r in results)
    where = f"into {escape(str(out_dir))}/" if out_dir is not None else "beside their inputs"
    title = f"deepsep: {done} of {len(results)} separated {where}" + (f", {skipped} skipped (outputs exist)" if skipped else "")
    table = Table(title=title)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("file", "left"), ("model", "left"), ("duration", "right"), ("time", "right"), ("RTF", "right"), ("outputs", "left"))
    for col, justify in columns:  # a narrow terminal folds a long file name or path, never cuts it; the
        # model's name and the numbers stay whole (a pipe is laid out wide: nothing wraps there)
        table.add_column(col, justify=justify, overflow="fold", no_wrap=col not in ("file", "outputs"))
    for r in results:
        if r.error:
            table.add_row(escape(str(r.path)), r.model, "", "", "", "[red]failed[/]")
            continue
        if r.skipped:
            table.add_row(escape(str(r.path)), r.model, "", "", "", escape(f"skipped, they exist: {_outputs_text(r, out_dir)}"))
            continue
        stems = _outputs_text(r, out_dir)
        if r.gain_db:
            stems += f"  (rescaled {r.gain_db:+.1f} dB to avoid clipping)"
        table.add_row(escape(str(r.path)), r.model, f"{r.duration:.1f} s", f"{r.elapsed:.1f} s", f"{r.rtf:.3f}",
                      escape(stems))
    out.print(table)


def _audio_text(r: dict) -> str:
    channels = {1: "mono", 2: "stereo"}.get(r["channels"], f"{r['channels']} channels")
    return f"{r['sample_rate'] / 1000:g} kHz {channels}"


def _size_text(r: dict) -> str:
    return f"{r['size'] / 1e6:.1f} MB" if r["size"] else "-"


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def models(as_json: bool) -> None:
    """List the available models: where they come from, whether they are present and verified."""
    from .modelinfo import model_rows
    from .weights import load_manifest

    try:
        manifest = load_manifest()
    except DeepsepError as e:
        fail(str(e))
    rows = model_rows(manifest)
    if as_json:
        import json

        click.echo(json.dumps(rows, indent=2))
        return
    if out.is_terminal and out.width >= 120:
        table = Table(title=f"deepsep models (manifest: {escape(str(manifest.path))})")
        for col in ("name", "sources", "audio", "size", "from", "status", "validation"):
            table.add_column(col, no_wrap=col in ("name", "size"))
        for r in rows:
            name = r["name"] + (" (default)" if r["default"] else "") + "".join(f"\n= {a}" for a in r["aliases"])
            table.add_row(name, " ".join(r["sources"]), _audio_text(r), _size_text(r), r["origin"], r["status"], r["metrics"])
        out.print(table)
    else:  # a narrow terminal (wrapped, nothing cut off) or a pipe (laid out wide: two lines per model, unwrapped)
        import textwrap

        out.print(f"deepsep models (manifest: {escape(str(manifest.path))})", highlight=False)
        for r in rows:
            head = r["name"] + (" (default)" if r["default"] else "") + "".join(f", = {a}" for a in r["aliases"])
            facts = (f"{' '.join(r['sources'])}; {_audio_text(r)}; {_size_text(r)}; {r['origin']}, {r['status']}"
                     + (f"; {r['metrics']}" if r["metrics"] else ""))
            out.print(head, highlight=False, soft_wrap=True)
            out.print(textwrap.fill(facts, max(40, out.width), initial_indent="    ", subsequent_indent="    "),
                      highlight=False, soft_wrap=True)
    for alias in manifest.rate_aliases:
        out.print(f"{alias} -> {manifest.describe_alias(alias)}", highlight=False)
    if not manifest.entries:
        out.print("No trained models are in the manifest yet; the tiny-test models run the pipeline with random weights.")



if __name__ == "__main__":
    main()
