"""`deepsep separate --cluster`: a real local Ray cluster (2 CPUs, one per module) separating
small generated files with the tiny random-weights model, against the local command's outputs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import tone

from deepsep.cli import main
from deepsep.cluster import SeparationWorker, cluster_address, largest_first, plan_workers, separate_on_cluster
from deepsep.errors import UsageError
from deepsep.inputs import input_files, plan_inputs
from deepsep.modelcache import ModelCache
from deepsep.options import EngineOptions, OutputOptions
from deepsep.weights import load_manifest

try:
    import ray  # noqa: F401  (the cluster tests need it; without it they are skipped, and the others run)

    HAVE_RAY = True
except ImportError:
    HAVE_RAY = False
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed: pip install 'deepsep[cluster]' (CI installs it)")

#: the inputs: (name, seconds, rate, channels); 7 s gives the file that kills its worker two blocks
FILES = [("a.wav", 0.6, 8000, 1), ("b.flac", 1.0, 16000, 2), ("c.wav", 7.0, 8000, 1), ("d.ogg", 0.8, 22050, 1),
         ("sub/e.wav", 1.2, 11025, 1)]


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def words(text: str) -> str:
    """``text`` with its line breaks and runs of spaces as one space (the summary's title wraps)."""
    return " ".join(text.split())


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) -> its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """The input folder and what the local command writes for it."""
    root = tmp_path_factory.mktemp("batch")
    for i, (name, seconds, rate, channels) in enumerate(FILES):
        (root / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(root / "in" / name), tone(seconds, rate, channels, seed=i), rate)
    res = run("separate", "--input", str(root / "in"), "-m", "tiny-test", "-o", str(root / "local"), "-q")
    assert res.exit_code == 0, res.output
    return root / "in", outputs(root / "local")


@needs_ray
def test_cluster_writes_what_the_local_command_writes_and_resumes(ray_cluster, inputs, tmp_path):
    folder, local = inputs
    out = tmp_path / "out"
    res = run("separate", "--input", str(folder), "-m", "tiny-test", "-o", str(out), "--cluster", "ray")
    assert res.exit_code == 0, res.output
    assert outputs(out) == local  # the same files, byte for byte, and no hidden files left
    assert f"{len(FILES)} of {len(FILES)} separated" in words(res.output) and "up to 2 worker(s) on cpu" in res.output
    again = run("separate", "--input", str(folder), "-m", "tiny-test", "-o", str(out), "--cluster", "ray")
    assert again.exit_code == 0 and f"0 of {len(FILES)} separated" in words(again.output)
    assert f"{len(FILES)} skipped (outputs exist)" in words(again.output) and outputs(out) == local
    refused = run("separate", "--input", str(folder), "-m", "tiny-test", "-o", str(out), "-q")  # locally: refused
    assert refused.exit_code == 1


class _DieOnce:
    """A stop flag that ends the worker's process the first time a block is written (the marker
    file, removed then, makes it once across workers)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def is_set(self) -> bool:
        with suppress(FileNotFoundError):
            self.marker.unlink()
            os._exit(1)  # a worker killed in the middle of a file, its hidden files written
        return False


class DyingWorker(SeparationWorker):
    """A worker that dies in the middle of a file that has a ``<file>.die`` marker beside it."""

    def separate(self, path: Path, track: str, rescan: bool = False):
        marker = path.with_name(path.name + ".die")
        if marker.exists():
            self.stopping = _DieOnce(marker)  # type: ignore[assignment]
        return super().separate(path, track, rescan)


@needs_ray
def test_a_worker_that_dies_loses_only_its_file(ray_cluster, inputs, tmp_path):
    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this module
    folder, local = inputs
    marker = folder / "c.wav.die"
    marker.touch()
    output = OutputOptions(existing="skip")
    batch, _ = plan_inputs(input_files([], str(folder)), output)
    models = ModelCache("tiny-test", "cpu", load_manifest())
    models.preload(p for p, _ in batch)
    plan = plan_workers(ray_cluster.cluster_resources(), "cpu")
    results = list(separate_on_cluster(models, batch, tmp_path / "out", output, EngineOptions(), plan, 1,
                                       worker_class=DyingWorker))
    assert not marker.exists()  # a worker died in the middle of c.wav
    assert sorted((r.path, r.track) for r in results) == sorted(batch)  # every file once
    assert not [r.error for r in results if r.error] and not any(r.skipped for r in results)
    assert outputs(tmp_path / "out") == local  # and what the dead worker left is gone


def test_cluster_usage_errors_come_first(tmp_path, write_audio, monkeypatch):
    src = str(write_audio("song.wav"))
    out = tmp_path / "o"
    for value in ("spark", "ray:/x", "ray://", "ray://host:port", "ray://a/b"):
        res = run("separate", src, "-m", "tiny-test", "-o", str(out), "--cluster", value)
        assert res.exit_code == 2 and "ray://HOST[:PORT]" in res.output and len(res.output.strip().splitlines()) == 1
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    res = run("separate", src, "-m", "tiny-test", "-o", str(out), "--cluster", "ray")
    assert res.exit_code == 2 and "pip install 'deepsep[cluster]'" in res.output, res.output
    assert not out.exists()


@needs_ray
def test_cluster_that_cannot_work_is_a_usage_error(ray_cluster, tmp_path, write_audio, monkeypatch):
    src = str(write_audio("song.wav"))
    out = tmp_path / "o"
    for args, words in [(("--device", "cuda"), "has no GPU"), (("-j", "3"), "room for 2 worker(s)"),
                        (("--threads", "3"), "room for 0 worker(s)"), (("--threads", "0"), "threads of each worker")]:
        res = run("separate", src, "-m", "tiny-test", "-o", str(out), "--cluster", "ray", *args)
        assert res.exit_code == 2 and words in res.output, (args, res.output)
    monkeypatch.setattr(ray_cluster, "is_initialized", lambda: False)  # as if to connect anew, to no cluster

    def unreachable(**kwargs):
        raise ConnectionError("ray client connection timeout")

    monkeypatch.setattr(ray_cluster, "init", unreachable)
    res = run("separate", src, "-m", "tiny-test", "-o", str(out), "--cluster", "ray://nowhere:10001")
    assert res.exit_code == 2 and "cannot connect to the Ray cluster: ray client connection timeout" in res.output
    assert not out.exists()


def test_plain_separate_does_not_import_ray(tmp_path, write_audio):
    src, out = write_audio("song.wav"), tmp_path / "o"
    code = ("import sys; from deepsep.cli import main; "
            f"main(['separate', {str(src)!r}, '-m', 'tiny-test', '-o', {str(out)!r}, '-q'], standalone_mode=False); "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith(('ray.', 'deepsep.cluster'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
    assert (out / "song" / "voice.wav").exists()


def test_worker_plan_and_order(tmp_path):
    assert cluster_address("ray") is None and cluster_address("ray://head:10001") == "ray://head:10001"
    with pytest.raises(UsageError):
        cluster_address("ray://head:10001/x")
    gpus = {"CPU": 16.0, "GPU": 2.0}
    assert plan_workers(gpus) == plan_workers(gpus, "cuda") and plan_workers(gpus).count == 2
    assert (plan_workers(gpus).device, plan_workers(gpus).batch_size, plan_workers(gpus).gpus) == ("cuda", 16, 1)
    assert plan_workers(gpus, "cuda", batch_size=4).batch_size == 4
    cpu = plan_workers(gpus, "cpu", threads=3)
    assert (cpu.count, cpu.cpus, cpu.gpus, cpu.device, cpu.batch_size) == (5, 3, 0, "cpu", 1)
    assert plan_workers({"CPU": 4.0}, jobs=2).count == 2
    files = []
    for name, size in [("s", 10), ("l", 300), ("m", 100), ("m2", 100)]:
        (tmp_path / name).write_bytes(b"x" * size)
        files.append((tmp_path / name, name))
    files.append((tmp_path / "missing", "missing"))
    assert [t for _, t in largest_first(files)] == ["l", "m", "m2", "s", "missing"]
