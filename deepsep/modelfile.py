"""The model-file format: safetensors tensors plus JSON metadata (architecture, config, extras).

Never pickled classes: a model file is ``{name: tensor}`` and a string header with
``deepsep.arch`` (a registry key) and ``deepsep.config`` (the config dataclass as JSON).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from .errors import ModelError
from .models.base import SeparationModel
from .registry import arch_name, build_model

ARCH_KEY = "deepsep.arch"
CONFIG_KEY = "deepsep.config"


def save_model(model: SeparationModel, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a safetensors file (atomically: temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {ARCH_KEY: arch_name(model), CONFIG_KEY: json.dumps(model.config.to_dict())}
    for k, v in (metadata or {}).items():
        header[k] = v if isinstance(v, str) else json.dumps(v)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(canonical_header(save(tensors, metadata=header)))
    os.chmod(tmp, 0o644)  # an installable data file, readable by all (safetensors writes 0600)
    os.replace(tmp, path)
    return path


def canonical_header(data: bytes) -> bytes:
    """A safetensors file's bytes with its JSON header's keys sorted: safetensors writes the metadata
    in hash-map order, which changes from run to run, so the same weights would get another sha256
    at each export. Same tensors, offsets and metadata; the header padded to 8 bytes as safetensors does."""
    n = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8: 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + data[8 + n:]


def read_header(path: str | Path) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(architecture, config dict, all metadata) of a model file, without loading tensors."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{path}: not a readable safetensors model file ({e})") from None
    if ARCH_KEY not in meta or CONFIG_KEY not in meta:
        raise ModelError(f"{path}: safetensors file without deepsep architecture metadata")
    return meta[ARCH_KEY], json.loads(meta[CONFIG_KEY]), meta


def load_model(path: str | Path, device: str | torch.device = "cpu") -> SeparationModel:
    """Build the model described by a file's header and load its tensors (eval mode)."""
    arch, config, _ = read_header(path)
    model = build_model(arch, config)
    tensors: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        for k in f.keys():  # noqa: SIM118  (a safetensors file handle: keys() is its API, no __iter__)
            tensors[k] = f.get_tensor(k)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ModelError(f"{path}: tensors do not match architecture {arch!r}: {first}") from None
    return model.to(device).eval()
