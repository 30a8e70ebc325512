"""The training loop shared by the voice models.

Checkpoints are plain data (``torch.save`` of dicts of tensors, numbers and strings, loadable
with ``weights_only=True``): model and optimizer state, step, random states, the architecture
name, its config and the training options. ``<out>/last.pt`` is written every ``ckpt_every``
steps (and at the end), ``<out>/best.pt`` whenever validation SI-SDR improves; ``<out>/log.jsonl``
gets one JSON object per logged event.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..metrics import si_sdr
from ..models.base import SeparationModel
from ..augment import room_impulse_responses
from ..engine import resolve_device
from ..errors import UsageError
from ..registry import ARCHITECTURES, arch_name, build_model
from ..voicedata import Augmentation, MixtureFolder, OnTheFlyMixer
from .batches import WorkerBatches
from .validation import ValidationSet, evaluate, validation_set_for

DATA = Path("..") / "shared" / "data"


@dataclass
class TrainOptions:
    """Everything a run depends on (saved in its checkpoints and log)."""

    model: str = "unet"                   # registry name: "unet" or "convtasnet"
    config: dict[str, Any] = field(default_factory=dict)  # overrides of the model config
    speech_dir: str = str(DATA / "speech" / "train")
    noise_dir: str = str(DATA / "noise" / "train")
    mixtures: str | None = None           # a prepared mixture folder instead of on-the-fly mixing
    valid_speech_dir: str = str(DATA / "speech" / "valid")
    valid_noise_dir: str = str(DATA / "noise" / "valid")
    valid_dir: str = "runs/voice-valid"   # where the validation mixtures are built (once)
    valid_seconds: float = 4.0
    steps: int = 3000
    batch_size: int = 8
    lr: float = 1e-3
    warmup: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 5.0
    segment: float = 4.0                  # seconds
    snr_low: float = -5.0
    snr_high: float = 10.0
    device: str = "auto"
    seed: int = 0
    threads: int = 0                      # 0: torch's default
    out: str | None = None                # default runs/<model>
    ckpt_every: int = 100
    valid_every: int = 500
    max_minutes: float = 0.0              # 0: no time limit
    si_weight: float = 0.0                # U-Net: weight of a waveform -SI-SDR term added to L1
    noise_weight: float = 0.0             # Conv-TasNet: weight of the noise SI-SNR next to the voice's
    ema: float = 0.0                      # decay of a moving average of the weights (0: off), see Run.ema
    log_every: int = 10
    p_reverb: float = 0.0                 # augmentation (voicedata.Augmentation): reverberated speech
    p_eq: float = 0.0                     # random EQ of the voice and, independently, of the noise
    p_band_limit: float = 0.0             # voice and noise limited to the band of an 8 kHz recording
    rir_count: int = 200                  # simulated rooms for training (validation has its own)
    valid_p_reverb: float = 0.0           # share of reverberant validation items
    init: str | None = None               # start from these weights (model name or file)
    mag_power: float = 1.0                # U-Net: the L1 loss on magnitudes raised to this power (0.3: compressed)
    stft_weight: float = 0.0              # weight of a multi-resolution STFT loss on the voice waveform (auraloss)
    workers: int = 0                      # processes mixing batches ahead of the step (0: in the training process)

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"runs/{self.model}")


def lr_at(opts: TrainOptions, step: int, elapsed: float = 0.0) -> float:
    """Linear warm-up then cosine decay to ``min_lr_ratio * lr``.

    The decay follows whichever budget runs out first: ``steps``, or ``max_minutes`` of training
    time (``elapsed`` seconds so far, over all resumed sessions), so a time-bounded run still
    ends at the low learning rate.
    """
    if step < opts.warmup:
        return opts.lr * (step + 1) / opts.warmup
    p = min(1.0, (step - opts.warmup) / max(1, opts.steps - opts.warmup))
    if opts.max_minutes:
        p = max(p, min(1.0, elapsed / (opts.max_minutes * 60)))
    return opts.lr * (opts.min_lr_ratio + (1 - opts.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def init_weights(model: SeparationModel, source: str) -> None:
    """Load the weights of ``source`` (a model name, a ``.safetensors`` file or a training
    checkpoint ``.pt``) into ``model``, which must have the same architecture and config."""
    from ..weights import get_model

    if source.endswith(".pt"):
        ck = load_checkpoint(source)
        arch, config, state = ck["arch"], ck["config"], ck["model"]
    else:
        other = get_model(source)
        arch, config, state = arch_name(other), other.config.to_dict(), other.state_dict()
    if arch != arch_name(model) or type(model.config).from_dict(config) != model.config:
        raise ValueError(f"--init {source}: a {arch} model with another config than this run's "
                         f"({arch_name(model)}); give --config to match it")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})


def make_model(opts: TrainOptions) -> SeparationModel:
    config_cls, _ = ARCHITECTURES[opts.model]
    base = config_cls().to_dict()
    base.update(opts.config)
    return build_model(opts.model, base)


def loss_fn(model: SeparationModel, mix: torch.Tensor, voice: torch.Tensor, opts: TrainOptions) -> torch.Tensor:
    """The model's training loss on a batch; mix, voice: (batch, channels=1, time).

    U-Net: L1 between the masked mixture magnitude and the voice magnitude (Jansson et al.),
    both divided by the mixture's mean magnitude per example (the gain the network sees), plus
    ``si_weight`` times the negative SI-SDR of the voice waveform; with ``mag_power`` p the
    magnitudes are compressed (|X|^p) before the L1, which weighs quiet bins more. Conv-TasNet: negative SI-SNR
    (Luo & Mesgarani), of the voice, or with ``noise_weight`` the weighted mean over voice and
    noise (noise = mix - voice): the noise term fixes the voice's scale, which SI-SNR alone
    leaves free, so that the stems are at the right level (SDR) and not only in shape (SI-SDR).
    Either: plus ``stft_weight`` times a multi-resolution STFT loss on the voice waveform.
    """
    if opts.model == "unet":
        from ..dsp import stft

        stems, m, mag = model.separate_with_spec(mix)  # type: ignore[attr-defined]
        cfg = model.config
        vmag = stft(voice, cfg.n_fft, cfg.hop).abs()  # type: ignore[attr-defined]
        p = opts.mag_power
        est, ref = ((m * mag) ** p, vmag ** p) if p != 1.0 else (m * mag, vmag)
        scale = (mag ** p if p != 1.0 else mag).mean(dim=(-2, -1), keepdim=True) + 1e-8
        loss = ((est - ref).abs() / scale).mean()
        if opts.si_weight:
            loss = loss - opts.si_weight * si_sdr(stems[:, 0], voice).mean()
    else:
        stems = model(mix)
        loss = -si_sdr(stems[:, 0], voice).mean()
        if opts.noise_weight:
            loss = (loss - opts.noise_weight * si_sdr(stems[:, 1], mix - voice).mean()) / (1 + opts.noise_weight)
    if opts.stft_weight:
        loss = loss + opts.stft_weight * _mrstft(model.sample_rate)(stems[:, 0], voice)
    return loss


_MRSTFT: dict[int, Any] = {}


def _mrstft(sample_rate: int) -> Any:
    """auraloss's multi-resolution STFT loss (spectral convergence + log magnitude) with windows
    of 16, 32 and 64 ms at ``sample_rate``, 75 % overlap; inputs (batch, channels, time)."""
    if sample_rate not in _MRSTFT:
        from auraloss.freq import MultiResolutionSTFTLoss

        ffts = [int(sample_rate * ms / 1000) for ms in (16, 32, 64)]
        _MRSTFT[sample_rate] = MultiResolutionSTFTLoss(fft_sizes=ffts, hop_sizes=[f // 4 for f in ffts],
                                                      win_lengths=ffts)
    return _MRSTFT[sample_rate]


class _FolderBatches:
    """Random batches from a prepared mixture folder (same interface as OnTheFlyMixer.batch)."""

    def __init__(self, root: str, sample_rate: int, segment: int, seed: int):
        self.gen = torch.Generator().manual_seed(seed)
        self.ds = MixtureFolder(root, sample_rate, segment, self.gen)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.ds), (size,), generator=self.gen).tolist()
        return tuple(torch.stack(t) for t in zip(*(self.ds[i] for i in idx)))  # type: ignore[return-value]

    def state(self) -> Any:
        return self.gen.get_state()

    def set_state(self, s: Any) -> None:
        self.gen.set_state(s)


class JsonlLog:
    """Appends one JSON object per event (with a timestamp) to a log file; passes it on to ``on_log``."""

    def __init__(self, path: Path, on_log: Callable[[dict[str, Any]], None] | None = None):
        self._f = open(path, "a")
        self._on_log = on_log

    def __call__(self, rec: dict[str, Any]) -> None:
        rec = {"time": round(time.time(), 1), **rec}
        self._f.write(json.dumps(rec) + "\n")
        self._f.flush()
        if self._on_log:
            self._on_log(rec)

    def close(self) -> None:
        self._f.close()


def save_checkpoint(path: Path, model: SeparationModel, opt: torch.optim.Optimizer, step: int, data: Any,
                    opts: Any, best: float, extra: dict[str, Any] | None = None,
                    states: dict[str, Any] | None = None) -> None:
    """Write a checkpoint as plain data, atomically.

    ``opts`` is the run's options dataclass, ``data`` the batch source (``state()``/``set_state``),
    ``extra`` JSON-able facts (elapsed time, validation), ``states`` further state dicts (the
    music adversary's).
    """
    data_state = data.state()
    ck = {
        "arch": opts.model,
        "config": json.dumps(model.config.to_dict()),
        "options": json.dumps(dataclasses.asdict(opts)),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "step": int(step),
        "best": float(best),
        "rng_torch": torch.get_rng_state(),
        "data_rng": data_state if isinstance(data_state, torch.Tensor) else json.dumps(data_state),
        "extra": json.dumps(extra or {}),
        **(states or {}),
    }
    tmp = path.with_name(path.name + ".partial")
    torch.save(ck, tmp)
    os.replace(tmp, path)


def resume_from(path: Path, model: SeparationModel, opt: torch.optim.Optimizer, data: Any) -> dict[str, Any]:
    """Restore model, optimizer, torch and data random states from a checkpoint; return the checkpoint
    (``step``, ``best``, ``extra["elapsed"]`` and any further ``states`` the caller saved)."""
    ck = load_checkpoint(path)
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    torch.set_rng_state(ck["rng_torch"])
    ds = ck["data_rng"]
    data.set_state(ds if isinstance(ds, torch.Tensor) else json.loads(ds))
    return ck


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint as saved by :func:`save_checkpoint` (``weights_only=True``)."""
    ck = torch.load(str(path), map_location="cpu", weights_only=True)
    ck["config"] = json.loads(ck["config"])
    ck["options"] = json.loads(ck["options"])
    ck["extra"] = json.loads(ck["extra"])
    return ck


def model_from_checkpoint(path: str | Path) -> SeparationModel:
    ck = load_checkpoint(path)
    model = build_model(ck["arch"], ck["config"])
    model.load_state_dict(ck["model"])
    return model.eval()


def make_ema(model: SeparationModel, decay: float) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights and buffers (None when ``decay`` is 0)."""
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


#: what a run keeps in its folder and ``--overwrite`` removes (split.json: a music run's validation split)
RUN_FILES = ("last.pt", "best.pt", "log.jsonl", "split.json")


def prepare_run_folder(out: Path, resume: bool = False, overwrite: bool = False) -> None:
    """Raise UsageError unless a run may use the folder ``out``: a resume needs its last.pt, a new
    run a folder without checkpoints (last.pt, best.pt), unless ``overwrite``, which removes the
    old run's files (:data:`RUN_FILES`) first. Called before any data is loaded."""
    if resume and overwrite:
        raise UsageError("--resume and --overwrite cannot go together: continue the run or start over")
    if resume:
        if not (out / "last.pt").is_file():
            raise UsageError(f"nothing to resume: {out / 'last.pt'} does not exist (leave out --resume to start a run)")
        return
    if overwrite:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        return
    found = [name for name in ("last.pt", "best.pt") if (out / name).is_file()]
    if found:
        raise UsageError(f"{out} already holds {' and '.join(found)} of a run: use --resume to continue it or "
                         "--overwrite to start over")


def start_run(opts: Any, resume: bool = False) -> tuple[torch.device, tuple[Path, Path, Path]]:
    """Check the run folder (:func:`prepare_run_folder`); set threads, device and seed for a run;
    make its folder; (device, (last.pt, best.pt, log.jsonl))."""
    prepare_run_folder(opts.out_dir, resume)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    out = opts.out_dir
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(opts.seed)
    return torch.device(resolve_device(opts.device)), (out / "last.pt", out / "best.pt", out / "log.jsonl")


@dataclass
class Run:
    """One run's moving parts, as the shared step loop (:func:`run_steps`) needs them.

    ``batch_loss()`` draws a batch and returns (loss, parts: floats to log, after: called after the
    optimizer step and returning more floats to log, or None); ``evaluate(model)`` measures a model
    on the validation data; ``score(res)`` is the number to maximise; ``val_text(res)`` its short
    form for the progress bar; ``states()`` further state dicts for checkpoints.
    ``ema``, when given, is an exponential moving average of the weights (Polyak averaging),
    updated after every optimizer step: it, not the raw model, is validated and saved as best.pt
    (so exported); last.pt keeps the raw model and the average (``"ema"``) for a resume.
    """

    opts: Any
    model: SeparationModel
    opt: torch.optim.Optimizer
    data: Any
    paths: tuple[Path, Path, Path]                    # last.pt, best.pt, log.jsonl
    batch_loss: Callable[[], tuple[torch.Tensor, dict[str, float], Callable[[], dict[str, float]] | None]]
    evaluate: Callable[[SeparationModel], dict[str, Any]]
    score: Callable[[dict[str, Any]], float]
    val_text: Callable[[dict[str, Any]], str]
    title: str
    best_key: str                                     # name of the best score in the end summary
    states: Callable[[], dict[str, Any] | None] = lambda: None
    ema: AveragedModel | None = None


def run_steps(run: Run, step: int, best: float, prior: float, log: JsonlLog, progress: bool) -> dict[str, Any]:
    """The step loop shared by all training: LR schedule, gradient clipping, skipping non-finite
    steps, logging means every ``log_every`` steps, validation (best.pt on improvement) and
    last.pt every ``ckpt_every`` steps, a time limit; returns the end summary (also logged).
    ``step``, ``best``, ``prior`` (elapsed seconds before this session) come from a resume."""
    opts, model, opt = run.opts, run.model, run.opt
    last_path, best_path, _ = run.paths
    t0 = time.time()
    last_val: dict[str, Any] | None = None
    acc: dict[str, list[float]] = {}

    def elapsed() -> float:
        return prior + time.time() - t0

    def checkpoint(path: Path, extra: dict[str, Any], weights: SeparationModel = model) -> None:
        states = run.states() or {}
        if run.ema is not None:
            states = {**states, "ema": run.ema.state_dict()}
        save_checkpoint(path, weights, opt, step, run.data, opts, best, extra, states or None)

    validated = model if run.ema is None else run.ema.module

    def validate() -> None:
        nonlocal best, last_val
        res = run.evaluate(validated)
        last_val = res
        improved = run.score(res) > best
        if improved:
            best = run.score(res)
        log({"event": "valid", "step": step, **res, "best": improved})
        if improved:
            checkpoint(best_path, {"valid": res, "elapsed": elapsed()}, validated)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [TextColumn(run.title), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
               TextColumn("val {task.fields[val]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    model.train()
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("train", total=opts.steps, completed=step, loss="-", val="-")
        while step < opts.steps:
            if opts.max_minutes and elapsed() > opts.max_minutes * 60:
                log({"event": "time_limit", "step": step})
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(opts, step, elapsed())
            loss, parts, after = run.batch_loss()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), opts.grad_clip)
            if torch.isfinite(loss) and torch.isfinite(gnorm):
                opt.step()
                if run.ema is not None:
                    run.ema.update_parameters(model)
            if after is not None:
                parts = {**parts, **after()}
            step += 1
            for k, v in {"loss": float(loss.detach()), **parts}.items():
                acc.setdefault(k, []).append(v)
            if step % opts.log_every == 0:
                means = {k: round(float(np.mean(v)), 5) for k, v in acc.items()}
                log({"event": "train", "step": step, **means, "lr": opt.param_groups[0]["lr"],
                     "elapsed": round(elapsed(), 1)})
                bar.update(task, loss=f"{means['loss']:.4f}")
                acc = {}
            if step % opts.valid_every == 0:
                validate()
                bar.update(task, val=run.val_text(last_val))  # type: ignore[arg-type]
            if step % opts.ckpt_every == 0:
                checkpoint(last_path, {"elapsed": elapsed()})
            bar.update(task, completed=step)
    if last_val is None or step % opts.valid_every != 0:
        validate()
    checkpoint(last_path, {"elapsed": elapsed()})
    summary = {"event": "end", "step": step, run.best_key: best, "last": last_val, "elapsed": round(elapsed(), 1)}
    log(summary)
    log.close()
    return summary


def train(opts: TrainOptions, progress: bool = True, resume: bool = False,
          on_log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train (or resume) a model; return the final summary (steps done, best validation)."""
    if opts.workers and opts.mixtures:
        raise UsageError("--workers mixes examples on the fly; it does not go with --mixtures")
    device, paths = start_run(opts, resume)
    model = make_model(opts).to(device)
    sr = model.sample_rate
    segment = int(round(opts.segment * sr))
    if opts.init:
        init_weights(model, opts.init)
    if opts.mixtures:
        data: Any = _FolderBatches(opts.mixtures, sr, segment, opts.seed)
    else:
        augment = Augmentation(sr, room_impulse_responses(opts.rir_count, sr, seed=opts.seed) if opts.p_reverb else [],
                               opts.p_reverb, opts.p_eq, opts.p_band_limit)
        data = OnTheFlyMixer.from_folders(opts.speech_dir, opts.noise_dir, sr, segment,
                                          snr_range=(opts.snr_low, opts.snr_high), seed=opts.seed, augment=augment)
        if opts.workers:
            data = WorkerBatches(data, opts.batch_size, opts.workers, opts.seed, pin_memory=device.type == "cuda")
    valid = ValidationSet(validation_set_for(dataclasses.asdict(opts), sr), sr)
    opt = torch.optim.Adam(model.parameters(), lr=opts.lr)
    ema = make_ema(model, opts.ema)
    step, best, prior = 0, -math.inf, 0.0
    if resume:
        ck = resume_from(paths[0], model, opt, data)
        step, best, prior = ck["step"], ck["best"], float(ck["extra"].get("elapsed", 0.0))
        if ema is not None and "ema" in ck:  # a run started without --ema starts its average here
            ema.load_state_dict(ck["ema"])

    def batch_loss() -> tuple[torch.Tensor, dict[str, float], None]:
        mix, voice, _ = data.batch(opts.batch_size)
        return loss_fn(model, mix.to(device), voice.to(device), opts), {}, None

    log = JsonlLog(paths[2], on_log)
    log({"event": "start", "step": step, "options": dataclasses.asdict(opts), "device": str(device),
         "params": sum(p.numel() for p in model.parameters())})
    run = Run(opts, model, opt, data, paths, batch_loss, evaluate=lambda m: evaluate(m, valid, device=device),
              score=lambda r: r["si_sdr"], val_text=lambda r: f"SI-SDRi {r['si_sdri']:.2f} dB",
              title=f"train {opts.model}", best_key="best_si_sdr", ema=ema)
    return run_steps(run, step, best, prior, log, progress)
