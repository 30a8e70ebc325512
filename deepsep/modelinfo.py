"""What `deepsep models` shows: each model, where it comes from, and whether it is present and verified."""

from __future__ import annotations

from typing import Any

from .weights import TEST_MODELS, Manifest, ManifestEntry, sha256_file


def _hub_cached(entry: ManifestEntry) -> str | None:
    """The entry's file in the local Hugging Face cache, if it is there (never downloads)."""
    from huggingface_hub import try_to_load_from_cache

    assert entry.hub is not None
    path = try_to_load_from_cache(entry.hub["repo_id"], entry.hub.get("filename", entry.file), revision=entry.hub.get("revision"))
    return path if isinstance(path, str) else None


def entry_status(manifest: Manifest, entry: ManifestEntry) -> tuple[str, str]:
    """(origin, status) of a manifest entry, checking the sha256 of the file that would be used."""
    bundled = manifest.bundled_path(entry)
    path: str | None
    if bundled.is_file():
        origin, path = "bundled", str(bundled)
    elif entry.hub:
        origin, path = f"hub: {entry.hub['repo_id']}", _hub_cached(entry)
        if path is None:
            return origin, "not downloaded"
    else:
        return "bundled", "missing"
    return origin, "verified" if sha256_file(path) == entry.sha256 else "SHA256 MISMATCH"


#: headline metrics, in order of preference: (manifest key, label)
HEADLINE = (("si_sdri", "SI-SDRi"), ("sdr_avg", "SDR"), ("sdr", "SDR"), ("pesq", "PESQ"))


def _metrics_text(metrics: dict[str, Any]) -> str:
    """The model's headline validation numbers, e.g. 'SI-SDRi 9.0 dB, SDR 12.0 dB'."""
    parts, labels = [], set()
    for key, label in HEADLINE:
        value = metrics.get(key)
        if isinstance(value, dict):  # per-stem values: show their average
            value = value.get("avg")
        if isinstance(value, (int, float)) and label not in labels:
            labels.add(label)
            parts.append(f"{label} {value:.1f}" + ("" if label == "PESQ" else " dB"))
    return ", ".join(parts[:2])


def model_rows(manifest: Manifest) -> list[dict[str, Any]]:
    rows = []
    checked = {name: entry_status(manifest, entry) for name, entry in manifest.entries.items()}
    for entry in manifest.entries.values():
        origin, status = checked[entry.name]
        rows.append({
            "name": entry.name, "task": entry.task, "arch": entry.arch, "sources": list(entry.sources),
            "sample_rate": entry.sample_rate, "channels": entry.channels, "size": entry.size,
            "origin": origin, "status": status, "metrics": _metrics_text(entry.metrics),
            "default": entry.name in manifest.targets(manifest.default),
            "aliases": sorted(a for a in [*manifest.aliases, *manifest.rate_aliases] if entry.name in manifest.targets(a)),
        })
    for bag in manifest.bags.values():
        first = manifest.entries[bag.members[0]]
        statuses = {checked[m][1] for m in bag.members}
        rows.append({
            "name": bag.name, "task": first.task, "arch": "bag", "sources": list(first.sources),
            "sample_rate": first.sample_rate, "channels": first.channels, "size": 0,
            "origin": "ensemble of " + " + ".join(f"{w:g} x {m}" for m, w in zip(bag.members, bag.weights)),
            "status": ", ".join(sorted(statuses)), "metrics": _metrics_text(bag.metrics),
            "default": bag.name in manifest.targets(manifest.default),
            "aliases": sorted(a for a in [*manifest.aliases, *manifest.rate_aliases] if bag.name in manifest.targets(a)),
        })
    for name, (arch, config, _) in TEST_MODELS.items():
        rows.append({
            "name": name, "task": "test", "arch": arch, "sources": list(config["sources"]),
            "sample_rate": config["sample_rate"], "channels": config["audio_channels"], "size": 0,
            "origin": "built in", "status": "random weights, for tests", "metrics": "",
            "default": False, "aliases": [],
        })
    return rows
