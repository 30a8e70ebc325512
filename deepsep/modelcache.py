"""The models of a run, each loaded once: a name, or a rate-dependent alias (``-m voice``) that picks
a model for each file (or signal) by the rate its content fills: its sample rate, or a lower one
when the band above that one's Nyquist is empty (telephone-band speech stored at 48 kHz: 8 kHz)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

import torch

from .dsp import content_rate
from .inputs import input_content_rate, input_rate
from .models.base import SeparationModel
from .weights import Manifest, alias_for_rate, load_bag, load_resolved, resolve


class ModelCache:
    """The models of one run, each loaded once and reused across files. ``name`` may be a
    rate-dependent alias (``-m voice``), which picks a model for each file (or signal) by the rate
    its content fills (see the module's docstring)."""

    def __init__(self, name: str, device: str, manifest: Manifest, trust_local: bool = False):
        self.name, self.device, self.manifest = name, device, manifest
        self.trust_local = trust_local  # load a local file that no sha256 vouches for (see weights.check_local_file)
        self.unchecked: list[Path] = []  # such files, loaded
        self.loaded: dict[str, SeparationModel] = {}  # concrete model name -> model
        self._lock = threading.Lock()  # files separated in threads (jobs) load a model once
        self._picked: dict[Path, str] = {}  # input file -> concrete model name

    def name_for(self, path: Path | None = None) -> str:
        """The concrete model name for a file: reads its header when the alias needs its rate, and its
        first 30 s when the alias has a model for a lower rate (the content may fill that one's band)."""
        if path is None or self.name not in self.manifest.rate_aliases:
            return alias_for_rate(self.name, None, self.manifest)
        if path not in self._picked:
            rate = self.manifest.pick_rate(self.name, input_rate(path), lambda: input_content_rate(path))
            self._picked[path] = alias_for_rate(self.name, rate, self.manifest)
        return self._picked[path]

    def model(self, name: str) -> SeparationModel:
        """The concrete model ``name``, loaded on first use."""
        with self._lock:
            if name not in self.loaded and name in self.manifest.bags:
                self.loaded[name] = load_bag(self.manifest.bags[name], self.manifest, self.device)
            if name not in self.loaded:
                res = resolve(name, self.manifest, trust_local=self.trust_local)
                if res.origin == "unchecked file" and res.path is not None:
                    self.unchecked.append(res.path)
                self.loaded[name] = load_resolved(res, self.device)
            return self.loaded[name]

    def for_file(self, path: Path | None = None) -> tuple[str, SeparationModel]:
        """(concrete name, model) for a file."""
        name = self.name_for(path)
        return name, self.model(name)

    def for_rate(self, rate: int | None) -> tuple[str, SeparationModel]:
        """(concrete name, model) for a signal at ``rate`` Hz (None: the alias's model without a rate limit)."""
        name = alias_for_rate(self.name, rate, self.manifest)
        return name, self.model(name)

    def for_signal(self, audio: torch.Tensor, rate: int) -> tuple[str, SeparationModel]:
        """(concrete name, model) for a signal (..., time) at ``rate`` Hz, picked as for a file (its
        first 30 s judge the band its content fills)."""
        return self.for_rate(self.manifest.pick_rate(self.name, rate, lambda: content_rate(audio, rate)))

    def preload(self, paths: Iterable[Path]) -> dict[str, SeparationModel]:
        """Load every model that ``paths`` need, so that a model error comes before any file is
        separated; a file whose header cannot be read is left to fail on its own."""
        names = set()
        for path in paths:
            with suppress(Exception):  # reported with the file when it is separated
                names.add(self.name_for(path))
        for name in sorted(names):
            self.model(name)
        return self.loaded
