"""Model files, the manifest, sha256 checks and the Hugging Face Hub path (offline, pre-filled cache)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deepsep.errors import ModelError
from deepsep.modelfile import load_model, read_header, save_model
from deepsep.weights import get_model, load_manifest, resolve, sha256_file


def _entry(name: str, file: Path, hub: dict | None = None) -> dict:
    arch, config, _ = read_header(file)
    return {
        "name": name, "task": "speech", "arch": arch, "config": config, "sample_rate": config["sample_rate"],
        "channels": config["audio_channels"], "sources": config["sources"], "file": file.name,
        "sha256": sha256_file(file), "size": file.stat().st_size, "license": "test", "hub": hub,
    }


def _manifest(tmp: Path, entries: list[dict], aliases: dict | None = None) -> Path:
    path = tmp / "manifest.json"
    path.write_text(json.dumps({"version": 1, "default": entries[0]["name"], "aliases": aliases or {}, "models": entries}))
    return path


def test_save_load_gives_identical_outputs(tmp_path):
    model = get_model("tiny-test-music")
    path = save_model(model, tmp_path / "m.safetensors", {"note": "hello"})
    again = load_model(path)
    x = torch.randn(1, 2, 4000)
    assert torch.equal(model(x), again(x))
    arch, config, meta = read_header(path)
    assert arch == "tiny" and config["sources"] == ["vocals", "drums", "bass", "other"] and meta["note"] == "hello"
    assert not list(tmp_path.glob("*.partial"))


def test_the_same_weights_always_make_the_same_file(tmp_path):
    """safetensors writes its metadata in hash-map order; save_model sorts it, so that an export of
    the same weights has the same sha256 (metadata given in any order, and in other processes)."""
    from safetensors import safe_open

    model = get_model("tiny-test")
    meta = {f"deepsep.k{i}": str(i) for i in range(12)}
    paths = [save_model(model, tmp_path / f"{i}.safetensors", dict(items))
             for i, items in enumerate([meta.items(), reversed(meta.items()), sorted(meta.items(), key=hash)])]
    assert len({p.read_bytes() for p in paths}) == 1
    head = paths[0].read_bytes()
    assert (8 + int.from_bytes(head[:8], "little")) % 8 == 0  # tensors start aligned, as safetensors writes them
    with safe_open(str(paths[0]), framework="pt") as f:
        assert {k: v for k, v in (f.metadata() or {}).items() if k in meta} == meta
    loaded = load_model(paths[0])
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_bundled_model_is_verified_and_tampering_refused(tmp_path, monkeypatch):
    path = save_model(get_model("tiny-test"), tmp_path / "voice-x.safetensors")
    monkeypatch.setenv("DEEPSEP_MANIFEST", str(_manifest(tmp_path, [_entry("voice-x", path)], {"vx": "voice-x"})))
    assert resolve("voice-x").origin == "bundled"
    assert resolve("vx").name == "voice-x"  # alias
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # flip bits in the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        get_model("voice-x")


def test_unknown_model_and_bad_files(tmp_path):
    with pytest.raises(ModelError, match="unknown model"):
        resolve("no-such-model")
    with pytest.raises(ModelError, match="not found"):
        resolve(str(tmp_path / "missing.safetensors"))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="safetensors"):
        get_model(str(junk), trust_local=True)


def test_local_file_needs_a_sha256_that_vouches_for_it(tmp_path, monkeypatch):
    """-m FILE: loaded when its sha256 is a manifest entry's or the one in FILE.sha256 beside it;
    a mismatch is refused; a file with neither only with trust_local (--trust-local)."""
    path = save_model(get_model("tiny-test"), tmp_path / "mine.safetensors")
    with pytest.raises(ModelError, match="unknown model file.*--trust-local"):
        get_model(str(path))
    assert resolve(str(path), trust_local=True).origin == "unchecked file"
    assert get_model(str(path), trust_local=True).sources == ("voice", "noise")
    sidecar = tmp_path / "mine.safetensors.sha256"
    sidecar.write_text(f"{sha256_file(path)}  mine.safetensors\n")  # as sha256sum writes it
    assert resolve(str(path)).origin == "file" and get_model(str(path)).sources == ("voice", "noise")
    sidecar.write_text("0" * 64 + "\n")
    for trust in (False, True):  # a file that fails its own checksum is never loaded
        with pytest.raises(ModelError, match="fails its sha256 check against mine.safetensors.sha256"):
            get_model(str(path), trust_local=trust)
    sidecar.unlink()
    monkeypatch.setenv("DEEPSEP_MANIFEST", str(_manifest(tmp_path, [_entry("voice-x", path)])))
    res = resolve(str(path))
    assert res.origin == "file" and res.entry is not None and res.entry.name == "voice-x"


def _fill_hub_cache(cache: Path, repo: str, filename: str, src: Path) -> None:
    """Lay out a Hugging Face cache as huggingface_hub writes it (refs/main -> snapshot)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / filename).write_bytes(src.read_bytes())


def _cli(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepsep", *args], env={**os.environ, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_hub_model_from_offline_cache(tmp_path, write_audio):
    """A model not bundled comes from the Hub cache with HF_HUB_OFFLINE=1; a missing one is a clear error."""
    src = save_model(get_model("tiny-test"), tmp_path / "src" / "voice-hub.safetensors")
    hub = {"repo_id": "deepsep/voice-hub", "filename": "voice-hub.safetensors"}
    missing = {"repo_id": "deepsep/not-cached", "filename": "voice-hub.safetensors"}
    mdir = tmp_path / "manifest"
    mdir.mkdir()
    manifest = _manifest(mdir, [_entry("voice-hub", src, hub), {**_entry("voice-gone", src, missing), "name": "voice-gone"}])
    cache = tmp_path / "hf"
    _fill_hub_cache(cache, hub["repo_id"], hub["filename"], src)
    env = {"DEEPSEP_MANIFEST": str(manifest), "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    wav = write_audio("call.wav", seconds=0.5)

    listed = _cli(["models", "--json"], env, tmp_path)
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["voice-hub"]["status"] == "verified" and rows["voice-gone"]["status"] == "not downloaded"

    ok = _cli(["separate", str(wav), "-m", "voice-hub", "-o", "out", "-q"], env, tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "out" / "call" / "voice.wav").is_file()

    gone = _cli(["separate", str(wav), "-m", "voice-gone", "-o", "out2", "-q"], env, tmp_path)
    assert gone.returncode == 1
    assert "huggingface-cli download deepsep/not-cached" in gone.stderr
    assert not (tmp_path / "out2").exists()  # never writes unseparated copies


def test_shipped_manifest_is_consistent():
    """Every entry of the repository's manifest has its file, with the recorded sha256 and size."""
    manifest = load_manifest(Path(__file__).resolve().parents[1] / "weights_manifest.json")
    for name, entry in manifest.entries.items():
        path = manifest.bundled_path(entry)
        assert path.is_file(), name
        assert sha256_file(path) == entry.sha256 and path.stat().st_size == entry.size, name
        model = load_model(path)
        assert model.sources == entry.sources and model.sample_rate == entry.sample_rate
    for alias, target in manifest.aliases.items():
        assert target in manifest.entries, alias
    for alias, rules in manifest.rate_aliases.items():  # rate-dependent aliases: every rule's model
        assert all(rule.model in manifest.entries or rule.model in manifest.bags for rule in rules), alias
    for name, bag in manifest.bags.items():  # ensembles of the entries above, their weights summing to one
        assert all(m in manifest.entries for m in bag.members) and abs(sum(bag.weights) - 1) < 1e-9, name


def test_shipped_voice_picks_an_ensemble_and_voice_fast_a_single_model_of_its_rate():
    """voice-fast gives the best single model where voice gives an ensemble (whose members may be
    specialists trained for it, worse alone: the *-member models)."""
    manifest = load_manifest(Path(__file__).resolve().parents[1] / "weights_manifest.json")
    for rate in (8000, 16000, 44100, 48000):
        bag = manifest.bags[manifest.alias_for_rate("voice", rate)]
        fast = manifest.alias_for_rate("voice-fast", rate)
        assert fast in manifest.entries and not fast.endswith("-member"), rate
        assert manifest.sample_rate_of(fast) == manifest.sample_rate_of(bag.members[0]), rate
    assert manifest.sample_rate_of(manifest.alias_for_rate("voice", 8000)) == 8000
