"""The training core that every task (``train/voice.py``, ``train/music.py``) runs on.

The options every run has (:class:`RunOptions`), the learning-rate schedule, the moving average of
the weights, the JSON-lines log, starting a run in its folder, and the step loop
(:class:`StepLoop`) over a small task protocol (:class:`Task`: a batch's loss, validation, the
task's own state for checkpoints). Checkpoints themselves: :mod:`deepsep.train.checkpoints`.

A run folder holds ``last.pt`` (every ``ckpt_every`` steps and at the end), ``best.pt`` (whenever
the validation score improves) and ``log.jsonl`` (one JSON object per logged event).

Under ``torchrun`` the loop runs in every process (:mod:`deepsep.train.distributed`): the
gradients, logged numbers and the time budget are shared, and only rank 0 validates and writes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol, cast

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..models.base import ModelConfig, SeparationModel
from ..registry import ARCHITECTURES, build_model
from . import distributed
from .checkpoints import BatchSource, init_weights, prepare_run_folder, resume_from, save_checkpoint


@dataclass(kw_only=True)
class RunOptions:
    """The options every training run has; a task's dataclass adds its own and gives the
    defaults left open here (all are saved in the run's checkpoints and log)."""

    model: str                            # registry name
    config: dict[str, Any] = field(default_factory=dict)  # overrides of the model config
    init: str | None = None               # start from these weights (model name, .safetensors or training .pt)
    steps: int
    batch_size: int = 8
    lr: float                             # peak learning rate (Adam)
    warmup: int
    min_lr_ratio: float = 0.05
    grad_clip: float = 5.0
    segment: float                        # seconds
    device: str = "auto"
    seed: int = 0
    threads: int = 0                      # 0: torch's default
    out: str | None                       # the run folder (None: runs/<model>)
    ckpt_every: int = 100
    valid_every: int
    max_minutes: float = 0.0              # 0: no time limit
    log_every: int = 10
    ema: float = 0.0                      # decay of a moving average of the weights (0: off), see Run
    freeze_bn: bool = False               # batch-norm layers keep their running statistics (fine-tuning)

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"runs/{self.model}")


def freeze_batch_norm(model: torch.nn.Module) -> None:
    """Put ``model``'s batch-norm layers in eval mode: they normalise with their running statistics
    and no longer update them, while their scale and shift still train (fine-tuning weights trained
    at a larger batch with small, noisy batches)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def _config_dict(opts: RunOptions) -> dict[str, Any]:
    """The architecture's default config with ``opts.config`` over it, as a dict."""
    config_cls, _ = ARCHITECTURES[opts.model]
    return {**config_cls().to_dict(), **opts.config}


def model_config(opts: RunOptions) -> ModelConfig:
    """The run's model config (without building the model)."""
    return ARCHITECTURES[opts.model][0].from_dict(_config_dict(opts))


def make_model(opts: RunOptions) -> SeparationModel:
    """A new (untrained) model of the run's architecture and config."""
    return build_model(opts.model, _config_dict(opts))


def lr_at(opts: RunOptions, step: int, elapsed: float = 0.0) -> float:
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


def make_ema(model: SeparationModel, decay: float) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights and buffers (None when ``decay`` is 0)."""
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


class JsonlLog:
    """Appends one JSON object per event (with a timestamp) to a log file; passes it on to ``on_log``.
    Without a ``path`` (the ranks other than 0 of a distributed run) it records nothing."""

    def __init__(self, path: Path | None, on_log: Callable[[dict[str, Any]], None] | None = None):
        self._f = None if path is None else open(path, "a")  # noqa: SIM115  (open for the whole run: see close)
        self._on_log = on_log

    def __call__(self, rec: dict[str, Any]) -> None:
        if self._f is None:
            return
        rec = {"time": round(time.time(), 1), **rec}
        self._f.write(json.dumps(rec) + "\n")
        self._f.flush()
        if self._on_log:
            self._on_log(rec)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


class RunPaths(NamedTuple):
    """The files of a run folder."""

    last: Path
    best: Path
    log: Path


def start_run(opts: RunOptions, resume: bool = False) -> tuple[torch.device, RunPaths, SeparationModel, dict[str, Any]]:
    """Check the run folder (:func:`~deepsep.train.checkpoints.prepare_run_folder`); set threads,
    device and seed (under torchrun: join the process group, check that the batch divides among
    the ranks); make the folder; build the model on the device (from ``opts.init``'s weights if
    given). Returns (device, the run's files, model, facts for the start of the log: as
    ``init_changes``, the config fields in which the run differs from the ``--init`` weights')."""
    prepare_run_folder(opts.out_dir, resume)
    distributed.local_batch(opts.batch_size)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    out = opts.out_dir
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(opts.seed)
    device = distributed.setup(opts.device)
    model = make_model(opts).to(device)
    changed = init_weights(model, opts.init) if opts.init else []
    facts = {"init_changes": changed} if changed else {}
    return device, RunPaths(out / "last.pt", out / "best.pt", out / "log.jsonl"), model, facts


#: a step's (loss, parts: floats to log, after: called after the optimizer step, returning more
#: floats to log, or None)
StepLoss = tuple[torch.Tensor, dict[str, float], Callable[[], dict[str, float]] | None]


class Validation(NamedTuple):
    """A validation's results (logged), its score (to maximise) and its short form for the progress bar."""

    results: dict[str, Any]
    score: float
    text: str


class Task(Protocol):
    """What the step loop needs from a training task."""

    @property
    def title(self) -> str:
        """The progress bar's label."""

    @property
    def best_key(self) -> str:
        """The end summary's name for the best score (e.g. ``best_si_sdr``)."""

    @property
    def data(self) -> BatchSource:
        """The batch source, whose random state checkpoints keep."""

    def step_loss(self) -> StepLoss:
        """Draw a batch and return its loss (see :data:`StepLoss`)."""

    def validate(self, model: SeparationModel) -> Validation:
        """Measure ``model`` (the trained one or its moving average) on the validation data."""

    def states(self) -> dict[str, Any]:
        """The task's further state dicts for checkpoints (e.g. the adversary's)."""

    def load_states(self, ck: dict[str, Any]) -> None:
        """Restore what :meth:`states` saved, from the checkpoint of a resume."""


@dataclass
class Run:
    """One run's moving parts, as the step loop drives them.

    ``ema``, when given, is an exponential moving average of the weights (Polyak averaging),
    updated after every optimizer step: it, not the raw model, is validated and saved as best.pt
    (so exported), and the raw model's validation is logged beside it (``"raw"``); last.pt keeps
    the raw model and the average (``"ema"``) for a resume.
    """

    opts: RunOptions
    model: SeparationModel
    opt: torch.optim.Optimizer
    task: Task
    paths: RunPaths
    log: JsonlLog
    ema: AveragedModel | None = None


def _progress_bar(title: str, show: bool) -> Any:
    """A rich progress bar with the fields ``loss`` and ``val``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn(title), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
               TextColumn("val {task.fields[val]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, disable=not show, transient=False)


class StepLoop:
    """The step loop shared by all training: LR schedule, gradient clipping, skipping non-finite
    steps, logging means every ``log_every`` steps, validation (best.pt on improvement) every
    ``valid_every`` and last.pt every ``ckpt_every`` steps, a time limit. ``step``, ``best`` and
    ``prior`` (elapsed seconds before this session) come from a resume.

    Under torchrun every rank runs it: gradients and logged numbers are averaged over the ranks,
    rank 0's clock sets the time budget, and rank 0 alone validates (the others learn its score)
    and writes checkpoints and the log."""

    def __init__(self, run: Run, step: int = 0, best: float = -math.inf, prior: float = 0.0):
        self.run, self.step, self.best, self.prior = run, step, best, prior
        self.t0 = time.time()
        self.last_val: dict[str, Any] | None = None
        self.acc: dict[str, list[float]] = {}
        self.main = distributed.is_main()
        #: what is validated and saved as best.pt: the moving average where there is one
        self.validated = run.model if run.ema is None else cast(SeparationModel, run.ema.module)

    def elapsed(self) -> float:
        """Training seconds over all sessions of the run."""
        return self.prior + time.time() - self.t0

    def shared_elapsed(self) -> float:
        """:meth:`elapsed`, rank 0's on every rank where it matters (a time limit: the LR and the stop)."""
        if not self.run.opts.max_minutes:
            return self.elapsed()
        return distributed.broadcast([self.elapsed()])[0]

    def save(self, path: Path, extra: dict[str, Any], weights: SeparationModel | None = None) -> None:
        """A checkpoint of ``weights`` (default: the trained model) with the run's state at this step
        (rank 0 only)."""
        if not self.main:
            return
        r = self.run
        states = r.task.states()
        if r.ema is not None:
            states = {**states, "ema": r.ema.state_dict()}
        save_checkpoint(path, r.model if weights is None else weights, r.opt, self.step, r.task.data,
                        dataclasses.asdict(r.opts), self.best, extra, states or None)

    def validate(self) -> str:
        """Validate (rank 0; the others learn its score), log, save best.pt on improvement; the
        progress bar's text."""
        res: dict[str, Any] = {}
        score, text = 0.0, ""
        if self.main:
            res, score, text = self.run.task.validate(self.validated)
            if self.validated is not self.run.model:  # the average's gain over the raw weights, for the log
                res = {**res, "raw": self.run.task.validate(self.run.model).results}
        score = distributed.broadcast([score])[0]
        self.last_val = res
        improved = score > self.best
        if improved:
            self.best = score
        self.run.log({"event": "valid", "step": self.step, **res, "best": improved})
        if improved:
            self.save(self.run.paths.best, {"valid": res, "elapsed": self.elapsed()}, self.validated)
        return text

    def train_step(self, elapsed: float) -> None:
        """One optimizer step at ``elapsed`` seconds (skipped when the loss or the gradient is not
        finite); keeps its numbers for the log."""
        r, opts = self.run, self.run.opts
        for g in r.opt.param_groups:
            g["lr"] = lr_at(opts, self.step, elapsed)
        loss, parts, after = r.task.step_loss()
        r.opt.zero_grad(set_to_none=True)
        loss.backward()
        loss = distributed.average_gradients(r.model.parameters(), loss)
        gnorm = torch.nn.utils.clip_grad_norm_(r.model.parameters(), opts.grad_clip)
        if torch.isfinite(loss) and torch.isfinite(gnorm):
            r.opt.step()
            if r.ema is not None:
                r.ema.update_parameters(r.model)
        if after is not None:
            parts = {**parts, **after()}
        self.step += 1
        for k, v in {"loss": float(loss.detach()), **parts}.items():
            self.acc.setdefault(k, []).append(v)

    def log_means(self) -> float:
        """Log the means of the numbers since the last log (over all ranks); the mean loss."""
        means = distributed.average({k: float(np.mean(v)) for k, v in self.acc.items()})
        means = {k: round(v, 5) for k, v in means.items()}
        self.run.log({"event": "train", "step": self.step, **means, "lr": self.run.opt.param_groups[0]["lr"],
                      "elapsed": round(self.elapsed(), 1)})
        self.acc = {}
        return means["loss"]

    def __call__(self, progress: bool = True) -> dict[str, Any]:
        """Train up to ``opts.steps`` (or the time limit), validate and save at the end; return the
        end summary (also logged)."""
        r, opts = self.run, self.run.opts
        r.model.train()
        if opts.freeze_bn:
            freeze_batch_norm(r.model)
        with _progress_bar(r.task.title, progress and self.main) as bar:
            bar_task = bar.add_task("train", total=opts.steps, completed=self.step, loss="-", val="-")
            while self.step < opts.steps:
                elapsed = self.shared_elapsed()
                if opts.max_minutes and elapsed > opts.max_minutes * 60:
                    r.log({"event": "time_limit", "step": self.step})
                    break
                self.train_step(elapsed)
                if self.step % opts.log_every == 0:
                    bar.update(bar_task, loss=f"{self.log_means():.4f}")
                if self.step % opts.valid_every == 0:
                    bar.update(bar_task, val=self.validate())
                if self.step % opts.ckpt_every == 0:
                    self.save(r.paths.last, {"elapsed": self.elapsed()})
                bar.update(bar_task, completed=self.step)
        if self.last_val is None or self.step % opts.valid_every != 0:
            self.validate()
        self.save(r.paths.last, {"elapsed": self.elapsed()})
        summary = {"event": "end", "step": self.step, r.task.best_key: self.best, "last": self.last_val,
                   "elapsed": round(self.elapsed(), 1)}
        r.log(summary)
        r.log.close()
        return summary


def train_task(opts: RunOptions, model: SeparationModel, task: Task, device: torch.device, paths: RunPaths,
               resume: bool = False, progress: bool = True, on_log: Callable[[dict[str, Any]], None] | None = None,
               facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``model`` on ``task`` (from :func:`start_run`) with Adam, from step 0 or, with
    ``resume``, from last.pt, with a moving average of the weights when ``opts.ema`` > 0;
    ``facts``: more to log at the start. Returns the end summary. Under torchrun every rank
    resumes from the same last.pt and starts from rank 0's weights; at the end they leave the
    process group together."""
    opt = torch.optim.Adam(model.parameters(), lr=opts.lr)
    average = make_ema(model, opts.ema)
    step, best, prior = 0, -math.inf, 0.0
    if resume:
        ck = resume_from(paths.last, model, opt, task.data)
        task.load_states(ck)
        if average is not None and "ema" in ck:  # a run started without --ema starts its average here
            average.load_state_dict(ck["ema"])
        step, best, prior = ck["step"], ck["best"], float(ck["extra"].get("elapsed", 0.0))
    distributed.broadcast_module(model)
    main, n = distributed.is_main(), distributed.world_size()
    log = JsonlLog(paths.log if main else None, on_log)
    log({"event": "start", "step": step, "options": dataclasses.asdict(opts), "device": str(device),
         "params": sum(p.numel() for p in model.parameters()), **({"processes": n} if n > 1 else {}),
         **(facts or {})})
    summary = StepLoop(Run(opts, model, opt, task, paths, log, average), step, best, prior)(progress)
    distributed.finish()
    return summary
