"""Export a trained checkpoint as a shipped model: safetensors file plus manifest entry."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..modelfile import load_model, save_model
from ..models.base import SeparationModel
from ..weights import BUNDLED_DIR, sha256_file
from .checkpoints import load_checkpoint, model_from_checkpoint
from .validation import ValidationSet, evaluate, validation_set_for

LICENSE = "CC BY-NC 3.0 (inherits UrbanSound8K terms); code MIT"
TRAINED_ON = (
    "DNS Challenge clean speech (150 files, 1.86 h, 8 kHz) mixed on the fly with UrbanSound8K folds 1-2 "
    "and Speech Commands background noise (1.58 h) at SNR -5..10 dB (../shared/data speech/train, noise/train)"
)
REPO_ROOT = Path(__file__).resolve().parents[2]


def update_manifest(entry: dict[str, Any], manifest_path: str | Path, alias: str | None = None) -> None:
    """Put ``entry`` into the manifest's models list (replacing one of the same name); set an alias."""
    path = Path(manifest_path)
    raw: dict[str, Any] = (json.loads(path.read_text()) if path.is_file()
                           else {"version": 1, "default": "", "aliases": {}, "models": []})
    models = [m for m in raw.get("models", []) if m.get("name") != entry["name"]]
    models.append(entry)
    raw["models"] = sorted(models, key=lambda m: m["name"])
    if alias:
        raw.setdefault("aliases", {})[alias] = entry["name"]
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(raw, indent=2) + "\n")
    os.replace(tmp, path)


def training_stages(ck: dict[str, Any], training_command: str,
                    earlier: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every training stage behind a checkpoint: those of the model it started from (``earlier``
    when given, else, for ``--init`` NAME, read from the manifest), then its own (command,
    minutes, steps)."""
    from ..weights import load_manifest

    init = ck["options"].get("init")
    if earlier is not None:
        earlier = list(earlier)
    elif init and not init.endswith((".pt", ".safetensors")):
        entry = load_manifest().lookup(init)
        if entry is not None:
            earlier = list(entry.stages) or [{"command": entry.training_command, "model": entry.name}]
    earlier = earlier or []
    own = {"command": training_command, "minutes": round(float(ck["extra"].get("elapsed", 0.0)) / 60, 1),
           "steps": int(ck["step"]), "init": init}
    return [*earlier, own]


def manifest_entry(name: str, task: str, arch: str, model: SeparationModel, path: Path, license: str,
                   trained_on: str, metrics: dict[str, Any], training_command: str, description: str,
                   stages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The weights_manifest.json entry of an exported model file (its sha256 and size read from ``path``)."""
    return {
        "name": name, "task": task, "arch": arch, "config": model.config.to_dict(),
        "sample_rate": model.sample_rate, "channels": model.audio_channels, "sources": list(model.sources),
        "file": path.name, "sha256": sha256_file(path), "size": path.stat().st_size,
        "license": license, "trained_on": trained_on, "metrics": metrics,
        "training_command": training_command, "description": description,
        **({"stages": stages} if stages else {}),
    }


def _describe(vdir: Path) -> str:
    """What a validation folder holds, from its params.json stamp."""
    p = json.loads((vdir / "params.json").read_text()) if (vdir / "params.json").is_file() else {}
    if not p:
        return "a prepared mixture folder"
    parts = ["/".join(Path(p["speech_dir"]).parts[-3:]) + " x " + "/".join(Path(p["noise_dir"]).parts[-3:]),
             "SNR " + ", ".join(str(s) for s in p["snrs"]) + " dB", f"{p['clip_seconds']:g} s items",
             f"{p['sample_rate']} Hz"]
    if p.get("p_reverb"):
        parts.append(f"{p['p_reverb']:.0%} reverberant")
    return ", ".join(parts)


def destination(export_to: str | Path | None, run_dir: Path) -> tuple[Path, Path]:
    """(folder, manifest) of an export: ``export_to`` or else the run folder, with a
    ``weights_manifest.json`` there; the package's ``pretrained`` folder pairs with the repository's
    manifest (what ships)."""
    folder = Path(export_to) if export_to else run_dir
    if folder.resolve() == BUNDLED_DIR.resolve():
        return BUNDLED_DIR, REPO_ROOT / "weights_manifest.json"
    return folder, folder / "weights_manifest.json"


def write_weights(checkpoint: str | Path, name: str, out_dir: str | Path, license: str,
                  half: bool, average: bool = False) -> tuple[dict[str, Any], SeparationModel, Path]:
    """Write ``<out_dir>/<name>.safetensors`` from a training checkpoint (``half``: floating tensors
    as float16; ``average``: its moving average where it has one, see :func:`model_from_checkpoint`)
    and, outside the package, ``<name>.safetensors.sha256`` beside it (so that ``deepsep separate
    -m FILE`` trusts it). Returns (checkpoint, the file reloaded, its path)."""
    ck = load_checkpoint(checkpoint)
    model = model_from_checkpoint(checkpoint, average)
    if half:
        for p in list(model.parameters()) + list(model.buffers()):
            if p.is_floating_point():
                p.data = p.data.half()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.safetensors"
    save_model(model, path, {"deepsep.name": name, "deepsep.step": str(ck["step"]), "deepsep.license": license})
    if out.resolve() != BUNDLED_DIR.resolve():
        path.with_name(path.name + ".sha256").write_text(f"{sha256_file(path)}  {path.name}\n")
    return ck, load_model(path), path


def export_model(checkpoint: str | Path, name: str, out_dir: str | Path = BUNDLED_DIR,
                 manifest: str | Path | None = REPO_ROOT / "weights_manifest.json",
                 half: bool = False, alias: str | None = None, training_command: str = "",
                 valid_dir: str | Path | None = None, valid_rate: int | None = None, trained_on: str = TRAINED_ON,
                 description: str = "", license: str = LICENSE,
                 earlier_stages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write ``<out_dir>/<name>.safetensors`` from a training checkpoint and return its manifest entry.

    ``half`` stores the floating tensors as float16 (half the file size; the model is rebuilt in
    float32 when loaded). The metrics are measured on the exported file itself, reloaded with
    :func:`deepsep.modelfile.load_model`, on the run's validation set (``valid_dir``, default
    the one the run used), resampled to ``valid_rate`` first (default: the run's ``valid_rate``).
    With ``manifest`` the entry is merged into that file. ``earlier_stages``: the stages before
    this checkpoint's own, where ``--init`` was a file (see :func:`training_stages`).
    """
    ck, reloaded, path = write_weights(checkpoint, name, out_dir, license, half)
    opts = ck["options"]
    vdir = Path(valid_dir) if valid_dir else validation_set_for(opts, reloaded.sample_rate)
    file_rate = (opts.get("valid_rate") if valid_rate is None else valid_rate) or None
    metrics = evaluate(reloaded, ValidationSet(vdir, reloaded.sample_rate, file_rate))
    at = f", resampled to {file_rate} Hz" if file_rate else ""
    metrics = {"validation": f"voice SI-SDR / SI-SDRi / SDR (dB) on {vdir} ({_describe(vdir)}{at})",
               "step": ck["step"], **metrics}
    entry = manifest_entry(name, "speech", ck["arch"], reloaded, path, license, trained_on, metrics,
                           training_command, description, training_stages(ck, training_command, earlier_stages))
    if manifest:
        update_manifest(entry, manifest, alias)
    return entry
