"""`deepsep train`: train and export the voice models (U-Net, Conv-TasNet); music: train_music.py.

Defaults reproduce the shipped weights from ``../shared/data`` (run from the repository root).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..console import reported
from ..train.checkpoints import check_init, prepare_run_folder
from ..train.distributed import is_main, local_batch
from ..train.export import destination, export_model
from ..train.voice import VoiceTrainOptions
from ..train.voice import train as run_training
from .command_line import command_line
from .common import data_root_option, default_under_root, earlier_stages_option, echo_start, export_to_option

#: each recipe's data folders, under the data root (--data-root)
DATA_8K = dict(speech_dir="speech/train", noise_dir="noise/train", valid_speech_dir="speech/valid",
               valid_noise_dir="noise/valid")
DATA_16K = {k: f"wideband/{v}" for k, v in DATA_8K.items()}
#: the validation set and augmentation of the wide-band recipes
_WIDEBAND = dict(valid_dir="runs/voice16-valid", valid_p_reverb=0.25, p_reverb=0.3, p_eq=0.3, p_band_limit=0.1)
TRAINED_ON_16K = (
    "wide-band speech (../shared/data/wideband/speech/train: LibriSpeech, speechocean762, Picovoice commands, "
    "Arabic Speech Commands; 16 kHz, 4.3 h) mixed on the fly with wideband/noise/train (cafe, street, transport, "
    "household, nature...; 2.1 h, resampled to 16 kHz) at SNR -5..10 dB; 30 % of the speech reverberated in "
    "simulated rooms (RT60 0.15-0.9 s), 30 % random EQ, 10 % band-limited to 4 kHz"
)
LICENSE_16K = ("inherits its training data's terms: CC BY 4.0 (LibriSpeech, Arabic Speech Commands, ESC-10), "
               "Apache-2.0 (Picovoice, speechocean762), CC0 / Pixabay (moodist, Blanket); code MIT")

#: the recipes: registry architecture, config overrides and options of each shipped model, which
#: was trained with exactly these (``deepsep train RECIPE --threads N --export NAME``).
RECIPES: dict[str, dict] = {
    "unet": dict(model="unet", steps=6000, batch_size=8, lr=1e-3, segment=4.0, si_weight=0.02, valid_every=250,
                 ckpt_every=100),
    "convtasnet": dict(model="convtasnet", steps=12000, max_minutes=115.0, batch_size=8, lr=2e-3, segment=2.0,
                       noise_weight=0.5, ema=0.999, valid_every=500, ckpt_every=100),
    "unet16": dict(model="unet", config={"sample_rate": 16000, "n_fft": 1024, "hop": 256}, steps=6000,
                   max_minutes=130.0, batch_size=8, lr=1e-3, segment=4.0, si_weight=0.02, valid_every=250,
                   ckpt_every=100, **_WIDEBAND),
    "convtasnet16": dict(model="convtasnet", config={"sample_rate": 16000}, steps=12000, max_minutes=130.0,
                         batch_size=8, lr=2e-3, segment=2.0, noise_weight=0.5, ema=0.999, valid_every=500,
                         ckpt_every=100, **_WIDEBAND),
}
#: what an export of each recipe records (training data and licence of the weights)
EXPORT: dict[str, dict[str, Any]] = {
    "unet": dict(half=True), "convtasnet": dict(half=False),
    "unet16": dict(half=True, trained_on=TRAINED_ON_16K, license=LICENSE_16K),
    "convtasnet16": dict(half=False, trained_on=TRAINED_ON_16K, license=LICENSE_16K),
}


def _options(f):
    opts = [
        click.option("--speech", "speech_dir", default=None,
                     help="Clean speech folder (on-the-fly mixing) [default: the recipe's, under --data-root]."),
        click.option("--noise", "noise_dir", default=None, help="Noise folder (on-the-fly mixing) [default: the recipe's]."),
        click.option("--mixtures", default=None, help="Train on a prepared mixture folder instead (mix_snr_XX.wav layout)."),
        click.option("--narrow-speech", "narrow_speech_dir", default=None, metavar="DIR",
                     help="16 kHz recipes: narrow-band speech (e.g. DATA_ROOT/speech/train, 8 kHz) for half the "
                          "voices of the band-limited examples [default: none]."),
        click.option("--narrow-noise", "narrow_noise_dir", default=None, metavar="DIR",
                     help="16 kHz recipes: narrow-band noise (e.g. DATA_ROOT/noise/train) for half the noises of the "
                          "band-limited examples [default: none]."),
        click.option("--p-full-rate", type=float, default=0.0, show_default=True,
                     help="Share of examples whose voice and noise go through a 48 kHz round trip, as the model "
                          "hears a 44.1/48 kHz file (the top of its band cut by the resampler)."),
        click.option("--valid-rate", type=int, default=None, metavar="HZ",
                     help="Validate on the validation items resampled to this file rate first, as files of that "
                          "rate reach the model (e.g. 48000 with --p-full-rate 1) [default: the model's rate]."),
        click.option("--valid-speech", "valid_speech_dir", default=None, help="[default: the recipe's]"),
        click.option("--valid-noise", "valid_noise_dir", default=None, help="[default: the recipe's]"),
        click.option("--valid-dir", default=None,
                     help="Where the fixed validation mixtures are built once (SNR -5, 0, 5, 10 dB) "
                          "[default: runs/voice-valid, 16 kHz recipes runs/voice16-valid]."),
        click.option("--init", default=None,
                     help="Start from these weights: a model name (e.g. voice16-unet), a .safetensors file or a "
                          "training checkpoint .pt (a new stage; the export records every stage)."),
        click.option("--partner", default=None, metavar="MODEL",
                     help="Train the model as an ensemble member beside this frozen model (a name, .safetensors "
                          "or .pt): the loss and validation score their stems' weighted average [default: none]."),
        click.option("--partner-weight", type=float, default=None,
                     help="The partner's weight in that average (the bag's weight for it) [default: 0.75]."),
        click.option("--steps", type=int, default=None, help="Training steps (model default if omitted)."),
        click.option("--batch-size", type=int, default=None,
                     help="Examples per step, in total over the processes of a torchrun run (a multiple of their number)."),
        click.option("--lr", type=float, default=None, help="Peak learning rate (Adam; warm-up then cosine)."),
        click.option("--segment", type=float, default=None, help="Training excerpt length in seconds."),
        click.option("--si-weight", type=float, default=None, help="U-Net: weight of the waveform -SI-SDR loss term."),
        click.option("--noise-weight", type=float, default=None,
                     help="Conv-TasNet: weight of the noise SI-SNR term (sets the voice's scale)."),
        click.option("--mag-power", type=float, default=None,
                     help="U-Net: compress magnitudes as |X|^P in the L1 loss (1: linear, the shipped recipes; "
                          "0.3 weighs quiet bins more)."),
        click.option("--stft-weight", type=float, default=None,
                     help="Add this weight times a multi-resolution STFT loss (auraloss; 16/32/64 ms) on the voice (0: off)."),
        click.option("--ema", type=float, default=None,
                     help="Decay of a moving average of the weights, validated and exported instead (0: off; "
                          "Conv-TasNet default 0.999; not for the U-Net, whose batch norm it does not suit)."),
        click.option("--freeze-bn", is_flag=True,
                     help="Batch-norm layers keep their running statistics (eval mode) while the rest trains: "
                          "fine-tuning with small batches (the U-Net)."),
        click.option("--config", "config_json", default="{}", help="JSON overrides of the model config."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--threads", type=int, default=0, help="CPU threads (0: torch default)."),
        click.option("--workers", type=int, default=None,
                     help="Processes that mix training batches ahead of the step (0: none; a GPU wants several)."),
        click.option("-o", "--out", default=None, help="Run folder [default: runs/<model>]."),
        click.option("--ckpt-every", type=int, default=None, help="Save last.pt every N steps."),
        click.option("--valid-every", type=int, default=None, help="Validate every N steps."),
        click.option("--max-minutes", type=float, default=None,
                     help="Stop (and save) after this many minutes; the LR decay then follows the time budget."),
        click.option("--resume", is_flag=True, help="Continue from <out>/last.pt."),
        click.option("--overwrite", is_flag=True,
                     help="Start over in a run folder that holds a run (its last.pt, best.pt and log.jsonl are removed)."),
        click.option("--export", "export_name", default=None,
                     help="After training, export best.pt as NAME.safetensors + manifest entry (see --export-to)."),
        export_to_option,
        data_root_option,
        click.option("--no-progress", is_flag=True, help="No progress bar (logs only)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _run(recipe: str, kw: dict) -> None:
    export_name, export_to = kw.pop("export_name"), kw.pop("export_to")
    resume, overwrite = kw.pop("resume"), kw.pop("overwrite")
    progress = not kw.pop("no_progress")
    d = dict(RECIPES[recipe])
    d["config"] = {**d.get("config", {}), **json.loads(kw.pop("config_json"))}
    folders = DATA_16K if recipe.endswith("16") else DATA_8K
    if kw["mixtures"]:  # a prepared mixture folder replaces the speech and noise of on-the-fly mixing
        folders = {k: v for k, v in folders.items() if k.startswith("valid_")}
    with reported():
        kw.update(default_under_root(kw, folders, kw.pop("data_root")))
    for k, v in kw.items():
        if v is not None:
            d[k] = v
    d.setdefault("out", f"runs/{recipe}")
    with reported():
        opts = VoiceTrainOptions(**d)
        if opts.init:
            check_init(opts.init)
        if opts.partner:
            check_init(opts.partner, "--partner")
        prepare_run_folder(opts.out_dir, resume, overwrite)
        local_batch(opts.batch_size)  # under torchrun: the total must divide among the processes
    command = command_line(click.get_current_context())

    def echo(rec: dict) -> None:
        echo_start(rec)
        if rec.get("event") == "valid":
            raw = f" (raw weights: SI-SDRi {rec['raw']['si_sdri']:.2f})" if "raw" in rec else ""
            click.echo(f"step {rec['step']}: val SI-SDR {rec['si_sdr']:.2f} dB, SI-SDRi {rec['si_sdri']:.2f} dB"
                       f"{' (best)' if rec['best'] else ''}{raw}", err=True)

    summary = run_training(opts, progress=progress, resume=resume, on_log=echo)
    if not is_main():  # the other ranks of a torchrun run: rank 0 reports and exports
        return
    click.echo(f"done: {summary['step']} steps, best val SI-SDR {summary['best_si_sdr']:.2f} dB -> {opts.out_dir}")
    if export_name:
        folder, manifest = destination(export_to, opts.out_dir)
        entry = export_model(opts.out_dir / "best.pt", export_name, folder, manifest, training_command=command,
                             valid_dir=opts.valid_dir, **EXPORT[recipe])
        click.echo(f"exported {entry['file']} (SI-SDRi {entry['metrics']['si_sdri']:.2f} dB)")


@click.group("train")
def train() -> None:
    """Train the voice and music models (checkpoints, resume, validation, logs, export)."""


@train.command("unet")
@_options
def unet(**kw) -> None:
    """Spectrogram U-Net (Jansson et al. 2017): L1 magnitude loss (+ waveform SI-SDR term)."""
    _run("unet", kw)


@train.command("convtasnet")
@_options
def convtasnet(**kw) -> None:
    """Conv-TasNet (Luo & Mesgarani 2019, torchaudio's implementation): SI-SNR loss."""
    _run("convtasnet", kw)


@train.command("unet16")
@_options
def unet16(**kw) -> None:
    """Wide-band (16 kHz) U-Net: STFT 1024/256, on wideband/ speech and noise with reverberation, EQ
    and band-limit augmentation."""
    _run("unet16", kw)


@train.command("convtasnet16")
@_options
def convtasnet16(**kw) -> None:
    """Wide-band (16 kHz) Conv-TasNet on wideband/ speech and noise with reverberation, EQ and
    band-limit augmentation."""
    _run("convtasnet16", kw)


@train.command("export")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", required=True, help="Model name in the manifest (file NAME.safetensors).")
@export_to_option
@click.option("--half", is_flag=True, help="Store float16 tensors (half the size).")
@click.option("--alias", default=None, help="Also make ALIAS point to this model (e.g. voice).")
@click.option("--training-command", default="", help="The command that trained it (recorded in the manifest).")
@click.option("--valid-dir", default=None, help="Validation mixtures to measure on [default: the run's].")
@click.option("--valid-rate", type=int, default=None, metavar="HZ",
              help="Measure on them resampled to this file rate first (0: the model's) [default: the run's --valid-rate].")
@click.option("--recipe", type=click.Choice(sorted(RECIPES)), default=None,
              help="The recipe that trained it: records its training data and licence (and float16 for a U-Net) "
                   "[default: the 8 kHz data's].")
@click.option("--description", default="", help="A note for the manifest entry (e.g. how the run really went).")
@earlier_stages_option
def export(checkpoint, name, export_to, half, alias, training_command, valid_dir, valid_rate, recipe, description,
           earlier_stages) -> None:
    """Export a training checkpoint (best.pt) as safetensors plus its manifest entry."""
    kw = dict(EXPORT[recipe], description=description) if recipe else {"description": description}
    if earlier_stages is not None:
        kw["earlier_stages"] = earlier_stages
    kw["half"] = half or kw.get("half", False)
    folder, manifest = destination(export_to, Path(checkpoint).parent)
    entry = export_model(Path(checkpoint), name, folder, manifest, alias=alias,
                         training_command=training_command, valid_dir=valid_dir, valid_rate=valid_rate, **kw)
    m = entry["metrics"]
    click.echo(f"{entry['file']}: {entry['size'] / 1e6:.1f} MB, val SI-SDR {m['si_sdr']:.2f} dB, "
               f"SI-SDRi {m['si_sdri']:.2f} dB")


from .train_music import gan, music  # noqa: E402  (the music model's training, a subcommand of its own module)

train.add_command(music)
train.add_command(gan)

if __name__ == "__main__":  # python -m deepsep.commands.train ...
    train()
