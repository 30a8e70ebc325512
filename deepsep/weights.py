"""Pretrained models: the manifest, where each model's weights come from, and their checks.

A model name resolves, in this order, to
1. a local ``.safetensors`` file (a path the user gives),
2. a test model (random weights, fixed seed; for tests and for trying the pipeline),
3. a manifest entry (or alias): its file bundled in the package, else its Hugging Face Hub
   file through ``huggingface_hub`` (its cache and offline mode, ``HF_HUB_OFFLINE=1``),
4. a manifest bag (``bags``): an ensemble of manifest models whose stems are averaged with fixed
   weights (:class:`~deepsep.models.bag.ModelBag`), each member resolved and checked as above.
An alias is a model name, or a list of rules that picks a model by the input's sample rate,
e.g. ``[{"max_rate": 8000, "model": "voice-convtasnet"}, {"model": "voice16-unet"}]``: the first
rule whose ``max_rate`` is absent or at least the rate wins (see :meth:`Manifest.alias_for_rate`).
For an input, the rate is the one its content fills (:func:`deepsep.dsp.content_rate`) where that
picks a model of a lower sample rate (telephone-band speech stored at 48 kHz counts as 8 kHz), else its
file's (see :meth:`Manifest.pick_rate`). Every manifest file is checked against its sha256 before it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import modelfile
from .errors import ModelError
from .models.bag import ModelBag
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
    #: training stages in order, each {"command", "minutes", "steps", "init"}; the last trained this file
    stages: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ManifestEntry:
        known = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in known}
        kw["sources"] = tuple(kw.get("sources", ()))
        kw["stages"] = tuple(kw.get("stages", ()))
        return cls(**kw)


@dataclass(frozen=True)
class BagEntry:
    """An ensemble as ``weights_manifest.json`` lists it under ``bags``: manifest models (``members``,
    of one sample rate, channel count and sources) whose stems are averaged with ``weights``."""

    name: str
    members: tuple[str, ...]
    weights: tuple[float, ...]
    description: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


def _bag_entry(name: str, value: Any, entries: dict[str, ManifestEntry]) -> BagEntry:
    """A manifest's bag, checked: {"members": [{"model": NAME, "weight": W}, ...]} with two or more
    of its models (no alias, no bag), positive weights, and one rate, channel count and set of sources."""
    members = value.get("members") if isinstance(value, dict) else None
    if not (isinstance(members, list) and len(members) >= 2 and all(
            isinstance(m, dict) and isinstance(m.get("model"), str) and isinstance(m.get("weight"), (int, float))
            and not isinstance(m.get("weight"), bool) and m["weight"] > 0 for m in members)):
        raise ModelError(f"weights manifest: bag {name!r} must have two or more members "
                         f'{{"model": NAME, "weight": W > 0}}, not {json.dumps(value)}')
    unknown = [m["model"] for m in members if m["model"] not in entries]
    if unknown:
        raise ModelError(f"weights manifest: bag {name!r}: {', '.join(unknown)} is not a model of the manifest")
    kinds = {(entries[m["model"]].sample_rate, entries[m["model"]].channels, entries[m["model"]].sources) for m in members}
    if len(kinds) > 1:
        raise ModelError(f"weights manifest: bag {name!r}: its members differ in sample rate, channels or sources")
    return BagEntry(name, tuple(m["model"] for m in members), tuple(float(m["weight"]) for m in members),
                    value.get("description", ""), dict(value.get("metrics", {})))


@dataclass(frozen=True)
class AliasRule:
    """One rule of a rate-dependent alias: ``model`` serves inputs up to ``max_rate`` Hz (None: any)."""

    model: str
    max_rate: int | None = None

    def matches(self, rate: int | None) -> bool:
        """Whether the rule takes an input at ``rate`` (None, rate unknown: only a rule without a limit)."""
        return self.max_rate is None or (rate is not None and rate <= self.max_rate)


def _alias_rules(alias: str, value: Any) -> tuple[AliasRule, ...]:
    """A manifest's rule list, checked: dicts with a model name and an optional positive max_rate,
    the last one without max_rate, so that every rate finds a model."""

    def valid(rule: Any) -> bool:
        limit = rule.get("max_rate") if isinstance(rule, dict) else None
        return isinstance(rule, dict) and isinstance(rule.get("model"), str) and (
            limit is None or (type(limit) is int and limit > 0))

    if not (isinstance(value, list) and value and all(map(valid, value))):
        raise ModelError(f"weights manifest: alias {alias!r} must be a model name or a list of "
                         f'{{"max_rate": HZ, "model": NAME}} rules, not {json.dumps(value)}')
    rules = tuple(AliasRule(rule["model"], rule.get("max_rate")) for rule in value)
    if rules[-1].max_rate is not None:
        raise ModelError(f"weights manifest: the last rule of alias {alias!r} must have no max_rate")
    return rules


@dataclass(frozen=True)
class Manifest:
    entries: dict[str, ManifestEntry]
    aliases: dict[str, str]  # plain aliases: name -> model name
    default: str
    path: Path | None
    rate_aliases: dict[str, tuple[AliasRule, ...]] = field(default_factory=dict)  # picked by sample rate
    bags: dict[str, BagEntry] = field(default_factory=dict)  # ensembles of entries

    def alias_for_rate(self, name: str, rate: int | None = None) -> str:
        """The model name that ``name`` stands for at an input sample rate; other names as they are.

        A rate-dependent alias takes the first rule that accepts ``rate``; without a rate (a model
        loaded for no particular input) it takes the rule without a limit.
        """
        rules = self.rate_aliases.get(name)
        if rules is not None:
            return next(r.model for r in rules if r.matches(rate))
        return self.aliases.get(name, name)

    def pick_rate(self, name: str, rate: int, content_rate: Callable[[], int]) -> int:
        """The rate that picks ``name``'s model for an input at ``rate``.

        ``content_rate()`` (the band its content fills; read only where ``name`` is a rate-dependent
        alias with a rule for rates below ``rate``) where it picks a model of a lower sample rate
        than ``rate`` would (telephone-band speech in a 48 kHz file gets the 8 kHz model); else
        ``rate``: between models of one sample rate the file's rate decides, since the file is
        resampled by it (a 48 kHz file gets the 16 kHz model trained on 48 kHz files' band edge,
        whatever band its content fills).
        """
        if not any(r.max_rate is not None and r.max_rate < rate for r in self.rate_aliases.get(name, ())):
            return rate
        content = content_rate()
        return content if self._model_rate(name, content) < self._model_rate(name, rate) else rate

    def _model_rate(self, name: str, rate: int) -> int:
        """The sample rate of the model that ``name`` picks at ``rate`` (the rate itself where that
        model is not in the manifest, so that the finer choice wins)."""
        return self.sample_rate_of(self.alias_for_rate(name, rate)) or rate

    def sample_rate_of(self, name: str) -> int | None:
        """The sample rate of a manifest model or bag (None for other names)."""
        if name in self.bags:
            name = self.bags[name].members[0]
        entry = self.entries.get(name)
        return entry.sample_rate if entry is not None else None

    def describe_alias(self, name: str) -> str:
        """'voice-convtasnet (<= 8000 Hz or content below 4000 Hz), voice16-unet (above)'."""
        rules = self.rate_aliases[name]
        top = self._model_rate(name, 1 << 30)

        def limit(rule: AliasRule) -> str:  # content picks the rule only for a model of a lower rate (pick_rate)
            if rule.max_rate is None:
                return "above"
            lower = (self.sample_rate_of(rule.model) or rule.max_rate) < top
            return f"<= {rule.max_rate} Hz" + (f" or content below {rule.max_rate // 2} Hz" if lower else "")
        return ", ".join(f"{r.model} ({limit(r)})" for r in rules)

    def targets(self, name: str) -> tuple[str, ...]:
        """Every model name that ``name`` can stand for (one, unless it is a rate-dependent alias)."""
        if name in self.rate_aliases:
            return tuple(dict.fromkeys(r.model for r in self.rate_aliases[name]))
        return (self.aliases.get(name, name),)

    def lookup(self, name: str, rate: int | None = None) -> ManifestEntry | None:
        return self.entries.get(self.alias_for_rate(name, rate))

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
    aliases = dict(raw.get("aliases", {}))
    plain = {a: v for a, v in aliases.items() if isinstance(v, str)}
    rules = {a: _alias_rules(a, v) for a, v in aliases.items() if not isinstance(v, str)}
    bags = {name: _bag_entry(name, v, entries) for name, v in raw.get("bags", {}).items()}
    return Manifest(entries, plain, raw.get("default", ""), path, rules, bags)


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
    origin: str  # "file" (checked), "unchecked file" (--trust-local), "test", "bundled", "hub"
    path: Path | None
    entry: ManifestEntry | None


def is_model_path(name: str) -> bool:
    """Whether a model name is a file's path (a ``.safetensors`` name, or one with a folder)."""
    return name.endswith(".safetensors") or os.sep in name


def alias_for_rate(name: str, rate: int | None, manifest: Manifest | None = None) -> str:
    """The concrete model name for an input at ``rate`` Hz: a rate-dependent alias picks by its
    rules; any other name (a file, a test model, a model, a plain alias) resolves as always."""
    if is_model_path(name) or name in TEST_MODELS:
        return name
    return (manifest or load_manifest()).alias_for_rate(name, rate)


def check_name(name: str, manifest: Manifest) -> None:
    """A ModelError (the one :func:`resolve` gives) where no model answers to ``name`` or to one of
    an alias's models: an unknown name, or a model file that is not there. Nothing is read, hashed
    or downloaded: the weights are found, checked and loaded on first use."""
    for target in manifest.targets(name):
        known = target in TEST_MODELS or target in manifest.entries or target in manifest.bags
        if not known and not (is_model_path(target) and Path(target).expanduser().is_file()):
            resolve(target, manifest, download=False)


def check_local_file(path: Path, manifest: Manifest, trust_local: bool = False) -> tuple[str, ManifestEntry | None]:
    """(origin, entry) of a model file given by path, or ModelError. It must have the sha256 of a
    manifest entry (that entry is returned), or the one written in ``FILE.sha256`` beside it (the
    first word, as ``sha256sum`` writes it); a mismatch with that file is always refused, and a
    file with neither is refused unless ``trust_local`` (origin "unchecked file")."""
    digest = sha256_file(path)
    entry = next((e for e in manifest.entries.values() if e.sha256 == digest), None)
    if entry is not None:
        return "file", entry
    sidecar = path.with_name(path.name + ".sha256")
    if sidecar.is_file():
        words = sidecar.read_text(errors="replace").split()
        if not words or words[0].lower() != digest:
            raise ModelError(f"{path} fails its sha256 check against {sidecar.name} (expected "
                             f"{(words[0][:12] if words else 'nothing')}…, got {digest[:12]}…): refusing to load it")
        return "file", None
    if not trust_local:
        raise ModelError(f"{path}: an unknown model file: its sha256 ({digest[:12]}…) is no model's in the manifest "
                         f"and there is no {sidecar.name} beside it; write one (sha256sum {path.name} > "
                         f"{sidecar.name}) or pass --trust-local to load it unchecked")
    return "unchecked file", None


def resolve(name: str, manifest: Manifest | None = None, download: bool = True, rate: int | None = None,
            trust_local: bool = False) -> Resolved:
    """Find the weights of ``name`` (a path, a test model, a manifest name or alias), verified (a
    path: see :func:`check_local_file`); ``rate``, the input's sample rate, decides a
    rate-dependent alias (see :func:`alias_for_rate`)."""
    if is_model_path(name):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        origin, entry = check_local_file(path, manifest or load_manifest(), trust_local)
        return Resolved(name, origin, path, entry)
    if name in TEST_MODELS:
        return Resolved(name, "test", None, None)
    manifest = manifest or load_manifest()
    entry = manifest.lookup(name, rate)
    if entry is None and manifest.alias_for_rate(name, rate) in manifest.bags:
        raise ModelError(f"{name!r} is an ensemble of several models' files, not one file: load it with get_model")
    if entry is None:
        known = sorted([*manifest.entries, *manifest.aliases, *manifest.rate_aliases, *manifest.bags, *TEST_MODELS])
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


def get_model(
    name: str, device: str | torch.device = "cpu", manifest: Manifest | None = None, rate: int | None = None,
    trust_local: bool = False,
) -> SeparationModel:
    """A ready model (eval mode, on ``device``) from a name or path; see :func:`resolve` (a bag: a
    :class:`~deepsep.models.bag.ModelBag` of its members, each resolved so)."""
    if not (is_model_path(name) or name in TEST_MODELS):
        manifest = manifest or load_manifest()
        bag = manifest.bags.get(manifest.alias_for_rate(name, rate))
        if bag is not None:
            return load_bag(bag, manifest, device)
    return load_resolved(resolve(name, manifest, rate=rate, trust_local=trust_local), device)


def load_bag(bag: BagEntry, manifest: Manifest, device: str | torch.device = "cpu") -> ModelBag:
    """A manifest bag as a ready :class:`~deepsep.models.bag.ModelBag` (eval mode, on ``device``)."""
    members = [load_resolved(resolve(m, manifest), device) for m in bag.members]
    return ModelBag(members, bag.weights).to(device).eval()


def load_model(name: str, device: str | torch.device = "cpu", sample_rate: int | None = None,
               trust_local: bool = False) -> SeparationModel:
    """The public way to get a model (``deepsep.load_model``): a name, alias or ``.safetensors``
    file; ``sample_rate``, that of the audio to come, picks among a rate-dependent alias's models
    (``voice``: the 8 kHz one up to 8 kHz, the 16 kHz one above); a file must have a sha256 that
    vouches for it unless ``trust_local`` (see :func:`check_local_file`)."""
    return get_model(name, device, rate=sample_rate, trust_local=trust_local)


def load_resolved(res: Resolved, device: str | torch.device = "cpu") -> SeparationModel:
    """The model that :func:`resolve` found, ready (eval mode, on ``device``)."""
    if res.origin == "test":
        arch, config, seed = TEST_MODELS[res.name]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(arch, config)
        return model.to(device).eval()
    assert res.path is not None
    return modelfile.load_model(res.path, device)
