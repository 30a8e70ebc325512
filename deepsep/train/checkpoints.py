"""Training checkpoints: the one place that writes, resumes and reads them, and checks a run
folder for them (commands import it).

A checkpoint is plain data (``torch.save`` of dicts of tensors, numbers and strings, loadable with
``weights_only=True``): ``arch`` (registry name), ``config`` and ``options`` (JSON), ``model`` and
``optimizer`` state, ``step``, ``best`` (validation score), ``rng_torch``, ``data_rng`` (the batch
source's state: a tensor or JSON), ``extra`` (JSON: elapsed seconds, validation) and any further
state dicts of the task or the loop (``"adversary"``, ``"ema"``). The model files that ship are
another format: :mod:`deepsep.modelfile`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

import torch

from ..errors import UsageError
from ..models.base import SeparationModel
from ..registry import arch_name, build_model

#: what a run keeps in its folder and ``--overwrite`` removes (split.json: a music run's validation split)
RUN_FILES = ("last.pt", "best.pt", "log.jsonl", "split.json")


class BatchSource(Protocol):
    """What a checkpoint keeps of a task's batch source: its random state (a tensor or JSON-able)."""

    def state(self) -> Any: ...

    def set_state(self, s: Any) -> None: ...


def save_checkpoint(path: Path, model: SeparationModel, opt: torch.optim.Optimizer, step: int, data: BatchSource,
                    options: dict[str, Any], best: float, extra: dict[str, Any] | None = None,
                    states: dict[str, Any] | None = None) -> None:
    """Write a checkpoint as plain data, atomically.

    ``options`` are the run's options (its dataclass as a dict; ``model``: the registry name),
    ``data`` the batch source, ``extra`` JSON-able facts (elapsed time, validation), ``states``
    further state dicts (the music adversary's, the EMA's).
    """
    data_state = data.state()
    ck = {
        "arch": options["model"],
        "config": json.dumps(model.config.to_dict()),
        "options": json.dumps(options),
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


def resume_from(path: Path, model: SeparationModel, opt: torch.optim.Optimizer, data: BatchSource) -> dict[str, Any]:
    """Restore model, optimizer, torch and data random states from a checkpoint; return the checkpoint
    (``step``, ``best``, ``extra["elapsed"]`` and any further states saved with it)."""
    ck = load_checkpoint(path)
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    torch.set_rng_state(ck["rng_torch"])
    ds = ck["data_rng"]
    data.set_state(ds if isinstance(ds, torch.Tensor) else json.loads(ds))
    return ck


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint as saved by :func:`save_checkpoint` (``weights_only=True``), JSON fields decoded."""
    ck = torch.load(str(path), map_location="cpu", weights_only=True)
    ck["config"] = json.loads(ck["config"])
    ck["options"] = json.loads(ck["options"])
    ck["extra"] = json.loads(ck["extra"])
    return ck


def load_frozen(source: str, device: str | torch.device = "cpu") -> SeparationModel:
    """A model to train beside, not to train: a manifest name, a ``.safetensors`` file (the
    developer's own, loaded unchecked) or a training checkpoint ``.pt``; eval mode, no gradients."""
    from ..weights import get_model

    model = (model_from_checkpoint(source) if source.endswith(".pt")
             else get_model(source, device, trust_local=True)).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def averaged_weights(ck: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The moving average of the weights in a checkpoint of a run with ``--ema`` (its ``"ema"``
    state, an ``AveragedModel``'s) as the model's own state dict."""
    return {k.removeprefix("module."): v for k, v in ck["ema"].items() if k.startswith("module.")}


def model_from_checkpoint(path: str | Path, average: bool = False) -> SeparationModel:
    """The model a training checkpoint holds, in eval mode: its ``model`` weights, or with ``average``
    the moving average of the weights where a run with ``--ema`` kept one beside them (``"ema"``: in
    last.pt the average of the raw weights it holds; in best.pt the two are the same)."""
    ck = load_checkpoint(path)
    model = build_model(ck["arch"], ck["config"])
    if average and "ema" in ck:
        model.load_state_dict(averaged_weights(ck))
    else:
        model.load_state_dict(ck["model"])
    return model.eval()


def check_init(source: str, option: str = "--init") -> None:
    """A UsageError, before any work, for an ``--init`` (or another ``option`` that names one model's
    weights) that cannot give weights: a file that is not there, or a name that is no single model
    (an unknown name, an alias, an ensemble: these have no weights of their own)."""
    from ..errors import ModelError
    from ..weights import check_name, is_model_path, load_manifest

    if source.endswith(".pt") or is_model_path(source):
        if not Path(source).expanduser().is_file():
            raise UsageError(f"{option} {source}: no such file")
        return
    manifest = load_manifest()
    if source in manifest.bags or source in manifest.rate_aliases:
        kind = "an ensemble" if source in manifest.bags else "an alias of several models"
        members = [m for t in manifest.targets(source) for m in (manifest.bags[t].members if t in manifest.bags else (t,))]
        raise UsageError(f"{option} {source}: {kind}, with no weights of its own; give one of its models "
                         f"({', '.join(members)})")
    try:
        check_name(source, manifest)
    except ModelError as e:
        raise UsageError(f"{option} {source}: {e}") from None


def init_weights(model: SeparationModel, source: str) -> list[str]:
    """Load the weights of ``source`` (a model name, a ``.safetensors`` file or a training
    checkpoint ``.pt``) into ``model``, which must have the same architecture and either the same
    config, one whose differences leave every weight's shape as it is (e.g. another STFT hop), or
    one the model can grow into (:meth:`~deepsep.models.base.SeparationModel.grow_from`: e.g. more
    band-split layers); returns those differences as ``field: theirs -> ours`` (empty when the
    configs are equal)."""
    from ..weights import get_model

    if source.endswith(".pt"):
        ck = load_checkpoint(source)
        arch, config, state = ck["arch"], ck["config"], ck["model"]
    else:
        other = get_model(source)
        arch, config, state = arch_name(other), other.config.to_dict(), other.state_dict()
    ours = model.config.to_dict()
    theirs = type(model.config).from_dict(config).to_dict() if arch == arch_name(model) else {}
    changed = [f"{k}: {theirs[k]} -> {ours[k]}" for k in ours if k in theirs and theirs[k] != ours[k]]
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    same_shapes = {k: tuple(v.shape) for k, v in state.items()} == shapes
    if arch == arch_name(model) and same_shapes:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        return changed
    if arch == arch_name(model) and changed and model.grow_from(state):
        return [*changed, "the new parts start as the identity"]
    raise ValueError(f"--init {source}: a {arch} model with another config than this run's "
                     f"({arch_name(model)}); give --config to match it")


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
