"""`deepsep train music` (formerly `train gan`, still accepted): train the stereo four-source
music model (supervised, or semi-supervised with adversarial losses).

Defaults train on ``music/musdb7/train`` under the data root (``--data-root``): the
MUSDB18 excerpts of the shipped ``music-4stem`` weights, which were trained on their ``.stem.mp4``
(AAC) form, now as Opus stems. Attached to the ``train`` group by :mod:`deepsep.cli`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..console import reported
from ..errors import UsageError
from ..musdb import SHARED_MUSDB7, MusicDataset
from ..train.checkpoints import check_init, model_from_checkpoint, prepare_run_folder
from ..train.distributed import is_main, local_batch, main_first
from ..train.export import destination
from ..train.music import MusicTrainOptions, export_music, load_data, train_music
from ..train.validation import baselines, evaluate_music
from .command_line import command_line
from .common import data_root_option, default_under_root, earlier_stages_option, echo_start, export_to_option


def _fmt(d: dict) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in d.items())


@click.command("music")
@click.option("--data", default=None,
              help="MUSDB18-style tracks: .stem.mp4 files, or one folder of stem files per track "
                   f"(any format libsndfile reads; MUSDB18-HQ, DSD100) [default: DATA_ROOT/{SHARED_MUSDB7.as_posix()}].")
@data_root_option
@click.option("--extra", multiple=True, metavar="DIR",
              help="More track folders for training only (repeatable), e.g. ../shared/data/music/eif: tracks may "
                   "miss stems (no loss of their own; see the README).")
@click.option("--vocals", multiple=True, metavar="DIR",
              help="Folders of a cappella files for training only (repeatable), e.g. ../shared/data/music/pjs: "
                   "remixed over other tracks' accompaniment.")
@click.option("--drums", multiple=True, metavar="DIR",
              help="Folders of drum stems for training only (repeatable): what `deepsep data drums` renders.")
@click.option("--other", multiple=True, metavar="DIR",
              help="Folders of 'other' stems alone for training only (repeatable), e.g. the Frets on Fire guitars "
                   "of `deepsep data debian`: remixed like --drums.")
@click.option("--mixtures", multiple=True, metavar="DIR",
              help="Folders of unlabelled full mixes for the semi-supervised losses (repeatable), e.g. "
                   "../shared/data/music/songs; not with --supervised-only.")
@click.option("--solo-minutes", type=float, default=60.0, show_default=True,
              help="At most this much audio of each --vocals / --drums / --other folder (a minute of one stem "
                   "takes ~11 MB of memory).")
@click.option("--mixture-minutes", type=float, default=120.0, show_default=True,
              help="At most this much audio of each --mixtures folder (a minute takes ~11 MB of memory).")
@click.option("--main-share", type=float, default=None, metavar="F",
              help="Draw this share of the training examples' tracks from --data (MUSDB18) and the rest from the "
                   "added sets (--extra, --vocals, --drums, --other) [default: every track by its length].")
@click.option("--init", default=None, metavar="NAME_OR_FILE",
              help="Start from these weights (a model name, .safetensors or training .pt of the same config); "
                   "the export records every stage.")
@click.option("--cache", default=None, help="Decoded-track cache folder [default: ~/.cache/deepsep/musdb].")
@click.option("--valid-tracks", "n_valid", type=int, default=10, show_default=True,
              help="Tracks held out for validation (seeded shuffle of the sorted names; saved in OUT/split.json).")
@click.option("--select-tracks", "n_select", type=int, default=0, show_default=True,
              help="Training tracks held out to pick the best checkpoint with, so that the validation tracks "
                   "(what the README reports) pick nothing; 0: the validation tracks pick it.")
@click.option("--speed", type=float, default=0.0, show_default=True, metavar="F",
              help="Augmentation: play each training example at a random rate in 1 +- F (pitch and tempo "
                   "together, steps of 2 %; e.g. 0.1).")
@click.option("--supervised-only", is_flag=True, help="No adversarial / synthetic-mixture / identity losses.")
@click.option("--steps", type=int, default=20000, show_default=True)
@click.option("--max-minutes", type=float, default=0.0, help="Stop (and save) after this many minutes of training.")
@click.option("--batch-size", type=int, default=8, show_default=True,
              help="Examples per step, in total over the processes of a torchrun run (a multiple of their number).")
@click.option("--lr", type=float, default=2e-3, show_default=True, help="Peak learning rate (Adam; warm-up then cosine).")
@click.option("--d-lr", type=float, default=2e-4, show_default=True, help="Discriminator learning rate.")
@click.option("--segment", type=float, default=3.0, show_default=True, help="Training excerpt length in seconds.")
@click.option("--adv-weight", type=float, default=0.02, show_default=True)
@click.option("--synth-weight", type=float, default=0.25, show_default=True)
@click.option("--identity-weight", type=float, default=0.25, show_default=True)
@click.option("--wave-weight", type=float, default=1.0, show_default=True)
@click.option("--ema", type=float, default=0.0, show_default=True,
              help="Decay of a moving average of the weights, validated and exported instead (0: off; e.g. 0.995 "
                   "averages over ~200 steps); the raw weights' validation is logged beside it.")
@click.option("--arch", type=click.Choice(["music_masker", "music_bandsplit"]), default="music_masker", show_default=True,
              help="The network: the BLSTM masker of music-4stem, or a band-split recurrent masker (see the README).")
@click.option("--config", "config_json", default="{}", help="JSON overrides of the model config.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=0, help="CPU threads (0: torch default).")
@click.option("-o", "--out", default="runs/music", show_default=True, help="Run folder.")
@click.option("--ckpt-every", type=int, default=100, show_default=True)
@click.option("--valid-every", type=int, default=250, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt.")
@click.option("--overwrite", is_flag=True,
              help="Start over in a run folder that holds a run (its last.pt, best.pt, log.jsonl and split.json are removed).")
@click.option("--export", "export_name", default=None,
              help="After training, export OUT/best.pt as NAME.safetensors + manifest entry (see --export-to).")
@export_to_option
@earlier_stages_option
@click.option("--evaluate", "evaluate_only", is_flag=True,
              help="No training: evaluate OUT/best.pt (and the baselines) on the validation tracks, "
                   "or with --export, export it.")
@click.option("--final", is_flag=True,
              help="With --evaluate or --export: the run's final weights (OUT/last.pt, as their moving average "
                   "with --ema) instead of OUT/best.pt: a rule fixed before the run, where no split picks the checkpoint.")
@click.option("--no-progress", is_flag=True, help="No progress bar (logs only).")
def music(data, data_root, extra, vocals, drums, other, mixtures, solo_minutes, mixture_minutes, main_share, init, cache, n_valid,
          n_select, speed, supervised_only, steps, max_minutes, batch_size, lr, d_lr, segment, adv_weight, synth_weight,
          identity_weight, wave_weight, ema, arch, config_json, device, seed, threads, out, ckpt_every, valid_every, resume,
          overwrite, export_name, export_to, earlier_stages, evaluate_only, final, no_progress) -> None:
    """Stereo 4-source music model: supervised, or semi-supervised with adversarial losses (Michelashvili et al. 2019)."""
    with reported():  # options that cannot go together, or no data root: exit 2 before any work
        data = default_under_root({"data": data}, {"data": SHARED_MUSDB7.as_posix()}, data_root)["data"]
        opts = MusicTrainOptions(
            model=arch, config=json.loads(config_json), data=data, extra=list(extra), vocals=list(vocals), drums=list(drums),
            other=list(other), mixtures=list(mixtures), solo_minutes=solo_minutes, mixture_minutes=mixture_minutes,
            main_share=main_share, init=init, cache=cache, n_valid=n_valid, n_select=n_select,
            speed=speed, supervised_only=supervised_only,
            steps=steps, max_minutes=max_minutes, batch_size=batch_size, lr=lr, d_lr=d_lr, segment=segment,
            adv_weight=adv_weight, synth_weight=synth_weight, identity_weight=identity_weight, wave_weight=wave_weight, ema=ema,
            device=device, seed=seed, threads=threads, out=out, ckpt_every=ckpt_every, valid_every=valid_every,
        )
        if init:
            check_init(init)
        if final and not (evaluate_only or export_name):
            raise UsageError("--final chooses what --evaluate or --export reads: give one of them")
        if not evaluate_only:
            prepare_run_folder(opts.out_dir, resume, overwrite)
            local_batch(opts.batch_size)  # under torchrun: the total must divide among the processes
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        with main_first(opts.device):  # under torchrun rank 0 decodes into the cache, then the others read it
            dataset = load_data(opts, progress=not no_progress and is_main())
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        raise click.ClickException(str(e)) from None
    commands = opts.out_dir / "commands.txt"  # the run's training commands, for the manifest
    if evaluate_only and not export_name and is_main():
        _evaluate(opts, dataset, final)
    elif not evaluate_only:
        if is_main():
            opts.out_dir.mkdir(parents=True, exist_ok=True)
            with open(commands, "w" if not resume else "a") as f:
                f.write(command_line(click.get_current_context()) + "\n")
        _train(opts, dataset, resume, progress=not no_progress)
    if export_name and is_main():
        _export(opts, dataset, export_name, export_to, commands, earlier_stages, final)


def _checkpoint(opts: MusicTrainOptions, final: bool) -> Path:
    """OUT/best.pt, or with ``final`` OUT/last.pt (a ClickException if it is not there)."""
    path = opts.out_dir / ("last.pt" if final else "best.pt")
    if not path.is_file():
        raise click.ClickException(f"{path} not found: train first")
    return path


def _evaluate(opts: MusicTrainOptions, dataset: MusicDataset, final: bool) -> None:
    """Print the best (or ``final``) checkpoint's validation SDR and the baselines', as JSON."""
    model = model_from_checkpoint(_checkpoint(opts, final), average=final)
    res = {"model": evaluate_music(model, dataset),
           "baselines": baselines(dataset, model.config.n_fft, model.config.hop, sources=model.sources)}
    click.echo(json.dumps(res, indent=1))


def _train(opts: MusicTrainOptions, dataset: MusicDataset, resume: bool, progress: bool) -> None:
    def echo(rec: dict) -> None:
        echo_start(rec)
        if rec.get("event") == "valid":
            raw = f" (raw weights: avg {rec['raw']['sdr']['avg']:.2f})" if "raw" in rec else ""
            picked = f"; selection SDR avg {rec['select']['sdr']['avg']:.2f}" if "select" in rec else ""
            click.echo(f"step {rec['step']}: val SDR {_fmt(rec['sdr'])}{picked}{' (best)' if rec['best'] else ''}{raw}",
                       err=True)

    summary = train_music(opts, progress=progress, resume=resume, on_log=echo, data=dataset)
    if is_main():
        picked_on = "selection" if dataset.select_names else "val"
        click.echo(f"done: {summary['step']} steps, best {picked_on} SDR {summary['best_sdr']:.2f} dB -> {opts.out_dir}")


def _export(opts: MusicTrainOptions, dataset: MusicDataset, name: str, export_to: Path | None, commands: Path,
            earlier_stages: list[dict] | None = None, final: bool = False) -> None:
    """Export OUT/best.pt (``final``: OUT/last.pt's moving average) with the run's training commands
    (commands.txt) as its recipe."""
    trained_by = commands.read_text().strip().replace("\n", " && ") if commands.is_file() else ""
    folder, manifest = destination(export_to, opts.out_dir)
    entry = export_music(_checkpoint(opts, final), name, folder, manifest, training_command=trained_by, data=dataset,
                         earlier_stages=earlier_stages, final=final)
    click.echo(f"exported {entry['file']} ({entry['size'] / 1e6:.1f} MB; val SDR {_fmt(entry['metrics']['sdr'])})")


#: the command's old name, kept working for scripts and the manifest's recorded commands
gan = click.Command("gan", callback=music.callback, params=music.params, help=music.help, hidden=True,
                    deprecated=True, context_settings=music.context_settings)

if __name__ == "__main__":  # python -m deepsep.commands.train_music ...
    music()
