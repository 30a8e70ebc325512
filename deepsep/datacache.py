"""Housekeeping of what deepsep caches for itself (under :func:`deepsep.paths.cache_root`).

The decoded-track cache (``musdb``; :func:`deepsep.musdb.default_cache_dir`) keeps one float16
array per track, source version (a key of its files' contents: :meth:`deepsep.musdb.TrackRef.key`)
and sample rate, as ``<name>.<key>.<rate>.npy``, and marks each file's last use in its mtime. When a
track's source files change, a new decode is written and the old one is never read again: it is
*stale* (two different tracks of one name count as versions of one: the one not used last is
decoded again when a run next needs it, a cost, never a wrong result). Nothing
else in the cache root is ever superseded (simulated rooms, drum renders, Debian packages are
built by an explicit command and kept until their folder is removed).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

#: a decoded track's file name: track name, source key, sample rate
DECODED = re.compile(r"^(?P<name>.+)\.(?P<key>[0-9a-f]{16})\.(?P<rate>\d+)\.npy$")
#: a decode being written (or left behind by a run that was killed while writing it)
PARTIAL = re.compile(r"\.partial-\d+\.npy$")


@dataclass(frozen=True)
class Usage:
    """What one folder of the cache root holds."""

    name: str
    files: int
    bytes: int


def usage(root: Path) -> list[Usage]:
    """Files and bytes of each folder under ``root`` (sorted by name; none if ``root`` is missing)."""
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        files = [f for f in d.rglob("*") if f.is_file()]
        out.append(Usage(d.name, len(files), sum(f.stat().st_size for f in files)))
    return out


def stale_decodes(folder: Path, now: float | None = None, partial_age: float = 3600.0) -> list[Path]:
    """The decoded-track files of ``folder`` that no run will read again: of the decodes of one track
    at one rate, all but the one used last (the others were decoded from earlier versions of its
    files), and unfinished decodes older than ``partial_age`` seconds (their run was killed)."""
    now = time.time() if now is None else now
    groups: dict[tuple[str, str], list[tuple[float, Path]]] = defaultdict(list)
    stale = []
    for f in folder.iterdir() if folder.is_dir() else []:
        if PARTIAL.search(f.name):
            if now - f.stat().st_mtime > partial_age:
                stale.append(f)
        elif m := DECODED.match(f.name):
            groups[(m["name"], m["rate"])].append((f.stat().st_mtime, f))
    for versions in groups.values():
        stale += [f for _, f in sorted(versions)[:-1]]
    return sorted(stale)


def least_recently_used(folder: Path, max_bytes: int, skip: Collection[Path] = ()) -> list[Path]:
    """The decoded-track files of ``folder`` (other than ``skip``) to remove, least recently used
    first, so that what stays (``skip`` left out) takes at most ``max_bytes``."""
    found, skipped = (folder.iterdir() if folder.is_dir() else iter(())), set(skip)
    files = sorted((f.stat().st_mtime, f) for f in found if DECODED.match(f.name) and f not in skipped)
    total = sum(f.stat().st_size for _, f in files)
    out = []
    for _, f in files:
        if total <= max_bytes:
            break
        total -= f.stat().st_size
        out.append(f)
    return out
