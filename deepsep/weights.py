"""Pretrained models: the manifest, where each model's weights come from, and their checks.

A model name resolves, in this order, to
1. a local ``.safetensors`` file (a path the user gives),
2. a test model (random weights, fixed seed; for tests and for trying the pipeline),
3. a manifest entry (or alias): its file bundled in the package, else its Hugging Face Hub
   file through ``huggingface_hub`` (its cache and offline mode, ``HF_HUB_OFFLINE=1``).
Every manifest file is checked against its sha256 before it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoint import load_model
from .errors import ModelError
from .models.base import SeparationModel
from .registry import build_model

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_DIR = PACKAGE_DIR / "pretrained"
MANIFEST_ENV = "DEEPSEP_MANIFEST"

#: random-weights models that need no file: name -> (architecture, config, seed)
TEST_MODELS: dict[str, tuple[str, dict[str, Any], int]] = {
    "tiny-test": ("tiny", {"sample_rate": 8000, "audio_channels": 1, "sources": ["voice", "noise"]}, 0),
    "tiny-test-music": (
        "tiny",
        {"sample_rate": 44100, "audio_channels": 2, "sources": ["vocals", "drums", "bass", "other"]},
        0,
    ),
}


@dataclass(frozen=True)
class ManifestEntry:
    """One pretrained model as ``weights_manifest.json`` lists it."""

    name: str
    task: str
    arch: str
    config: dict[str, Any]
    sample_rate: int
    channels: int
    sources: tuple[str, ...]
    file: str
    sha256: str
    size: int
    license: str = ""
    trained_on: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    hub: dict[str, str] | None = None  # {"repo_id": ..., "filename": ..., "revision": ...}
    training_command: str = ""
    description: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ManifestEntry":
        known = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in known}
        kw["sources"] = tuple(kw.get("sources", ()))
        return cls(**kw)


@dataclass(frozen=True)
class Manifest:
    entries: dict[str, ManifestEntry]
    aliases: dict[str, str]
    default: str
    path: Path | None

    def lookup(self, name: str) -> ManifestEntry | None:
        name = self.aliases.get(name, name)
        return self.entries.get(name)

    def bundled_path(self, entry: ManifestEntry) -> Path:
        """Where the entry's file lies when it ships with the package (or beside a custom manifest)."""
        if self.path is not None and os.environ.get(MANIFEST_ENV):
            return self.path.parent / entry.file
        return BUNDLED_DIR / entry.file


def default_manifest_path() -> Path:
    """The manifest in force: ``$DEEPSEP_MANIFEST``, the packaged copy, or the repository's."""
    env = os.environ.get(MANIFEST_ENV)
    if env:
        return Path(env)
    packaged = PACKAGE_DIR / "weights_manifest.json"  # present in wheels
    return packaged if packaged.exists() else PACKAGE_DIR.parent / "weights_manifest.json"


def load_manifest(path: str | Path | None = None) -> Manifest:
    path = Path(path) if path else default_manifest_path()
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"weights manifest not found: {path}") from None
    except json.JSONDecodeError as e:
        raise ModelError(f"weights manifest {path} is not valid JSON: {e}") from None
    entries = {d["name"]: ManifestEntry.from_dict(d) for d in raw.get("models", [])}
    return Manifest(entries, dict(raw.get("aliases", {})), raw.get("default", ""), path)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: Path, entry: ManifestEntry) -> None:
    """Raise unless ``path`` has the entry's sha256: a mismatch is never loaded."""
    got = sha256_file(path)
    if got != entry.sha256:
        raise ModelError(
            f"{path} fails its sha256 check for model {entry.name!r} (expected {entry.sha256[:12]}…, "
            f"got {got[:12]}…): refusing to load it; delete the file and install or download it again"
        )


def _hub_download(entry: ManifestEntry) -> Path:
    """The entry's file from the Hugging Face Hub cache, downloading it if allowed."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    assert entry.hub is not None
    repo, filename = entry.hub["repo_id"], entry.hub.get("filename", entry.file)
    revision = entry.hub.get("revision")
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename, revision=revision))
    except LocalEntryNotFoundError:
        raise ModelError(
            f"model {entry.name!r} is not installed and cannot be downloaded (offline or Hub unreachable): "
            f"it needs {filename} from huggingface.co/{repo}; on a machine with network run "
            f"`huggingface-cli download {repo} {filename}` (or pass a local file with -m PATH)"
        ) from None
    except (HfHubHTTPError, OSError) as e:
        raise ModelError(f"model {entry.name!r}: download of {filename} from {repo} failed: {e}") from None


@dataclass(frozen=True)
class Resolved:
    """Where a model name led: the file (if any), its origin, and the manifest entry (if any)."""

    name: str
    origin: str  # "file", "test", "bundled", "hub"
    path: Path | None
    entry: ManifestEntry | None


def resolve(name: str, manifest: Manifest | None = None, download: bool = True) -> Resolved:
    """Find the weights of ``name`` (a path, a test model, a manifest name or alias), verified."""
    if name.endswith(".safetensors") or os.sep in name:
        path = Path(name).expanduser()
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        return Resolved(name, "file", path, None)
    if name in TEST_MODELS:
        return Resolved(name, "test", None, None)
    manifest = manifest or load_manifest()
    entry = manifest.lookup(name)
    if entry is None:
        known = sorted([*manifest.entries, *manifest.aliases, *TEST_MODELS])
        raise ModelError(f"unknown model {name!r} (available: {', '.join(known) or 'none'}; see `deepsep models`)")
    bundled = manifest.bundled_path(entry)
    if bundled.is_file():
        verify_file(bundled, entry)
        return Resolved(entry.name, "bundled", bundled, entry)
    if entry.hub is None:
        raise ModelError(
            f"model {entry.name!r}: its weights {entry.file} are not installed and it has no download "
            f"source; reinstall deepsep"
        )
    if not download:
        raise ModelError(f"model {entry.name!r} is not downloaded yet")
    path = _hub_download(entry)
    verify_file(path, entry)
    return Resolved(entry.name, "hub", path, entry)


def get_model(name: str, device: str | torch.device = "cpu", manifest: Manifest | None = None) -> SeparationModel:
    """A ready model (eval mode, on ``device``) from a name or path; see :func:`resolve`."""
    res = resolve(name, manifest)
    if res.origin == "test":
        arch, config, seed = TEST_MODELS[name]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(arch, config)
        return model.to(device).eval()
    assert res.path is not None
    return load_model(res.path, device)
