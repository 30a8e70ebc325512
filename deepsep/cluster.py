"""Batch separation on a Ray cluster (``deepsep separate --cluster ray[://ADDRESS]``; the optional
extra ``deepsep[cluster]``). Imported only when ``--cluster`` is given, and Ray only inside.

One actor per worker keeps its models loaded (a :class:`~deepsep.modelcache.ModelCache`, on a GPU
where the cluster has GPUs) and separates one file per call with
:func:`~deepsep.separation.separate_batch_file`, so that every file is written (atomically, by
the existing-output policy) exactly as the local command writes it. The driver sends the files
largest first, one at a time to each free worker; a file whose worker dies goes to another one
(and a new worker takes the dead one's place), at most :data:`MAX_ATTEMPTS` times. Files whose
outputs all exist are skipped before any worker starts (the cluster's default is
--skip-existing), so that an interrupted run over many files resumes where it stopped.
Inputs, outputs and the models must lie at the same paths on every node (a shared folder).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import signal
import threading
import warnings
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import DeepsepError, UsageError
from .interrupts import INTERRUPTS
from .modelcache import ModelCache
from .options import EngineOptions, OutputOptions, ProgressFn, default_batch_size, set_threads
from .outputs import FileResult, known_sources
from .separation import finished_result, separate_batch_file, stoppable
from .weights import MANIFEST_ENV, is_model_path, load_manifest

#: how `--cluster` is installed
RAY_INSTALL = "pip install 'deepsep[cluster]'"
#: times a file is sent to a worker before a worker that dies on it fails it
MAX_ATTEMPTS = 3
#: seconds that workers stopped early (SIGINT/SIGTERM of the driver) get to remove their hidden files
STOP_WAIT_S = 30.0

#: the Ray errors that say a worker is gone (not that its file failed); some are missing from older Rays
_WORKER_LOST = ("RayActorError", "WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError")

_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:\d{1,5})?$")


def cluster_address(value: str) -> str | None:
    """--cluster's value as ``ray.init``'s address: 'ray' -> None (the cluster in $RAY_ADDRESS, one
    started with ``ray start`` on this machine, or else a new one on this machine), 'ray://HOST[:PORT]'
    -> itself (Ray Client); a UsageError for anything else."""
    if value == "ray":
        return None
    if value.startswith("ray://") and _ADDRESS.match(value.removeprefix("ray://")):
        return value
    raise UsageError(f"--cluster {value!r}: give 'ray' (the cluster in RAY_ADDRESS, one started with `ray start` here, "
                     "or a new one on this machine) or 'ray://HOST[:PORT]' (a remote cluster's Ray Client address)")


def import_ray() -> ModuleType:
    """The ``ray`` module; a UsageError that says how to install it when it is missing."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--cluster needs Ray, which is not installed: {RAY_INSTALL}") from None
    return ray


@contextmanager
def connected(value: str) -> Iterator[dict[str, float]]:
    """Ray connected to the --cluster ``value`` inside (or as the caller had it already): the
    cluster's resources ('CPU', 'GPU', ...). A cluster that cannot be reached is a UsageError; a
    Ray that this started is shut down on the way out."""
    address = cluster_address(value)
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        main = threading.current_thread() is threading.main_thread()
        handlers = {s: signal.getsignal(s) for s in INTERRUPTS} if main else {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Ray Client's timeout warning: the error says it
                ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
            raise UsageError(f"--cluster {value}: cannot connect to the Ray cluster: {_reason(e)}") from None
        finally:  # ray.init's SIGTERM handler exits at once: the hidden files of the files under way must go first
            for s, h in handlers.items():
                signal.signal(s, h if h is not None else signal.SIG_DFL)
    try:
        yield dict(ray.cluster_resources())
    finally:
        if started:
            ray.shutdown()


@dataclass(frozen=True)
class WorkerPlan:
    """The workers of a run: how many, their device and batch size, what each reserves."""

    count: int
    device: str  # 'cpu' or 'cuda' (each GPU worker sees its own GPU as cuda)
    batch_size: int  # segments per forward pass, per worker
    cpus: int  # CPUs each worker reserves (its --threads)
    gpus: int  # GPUs each worker reserves


def plan_workers(resources: Mapping[str, float], device: str = "auto", jobs: int | None = None,
                 threads: int | None = None, batch_size: int | None = None) -> WorkerPlan:
    """One worker per GPU of the cluster (--device auto or cuda), or one per --threads CPUs
    (default 1; --device cpu, or no GPU); ``jobs`` (-j) asks for fewer. UsageErrors for what the
    cluster cannot give."""
    cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise UsageError(f"unknown device {device!r} (choose auto, cpu or cuda)")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads {threads} with --cluster: give the threads of each worker (1 or more)")
    gpu = device.startswith("cuda") or (device == "auto" and gpus > 0)
    if gpu and gpus < 1:
        raise UsageError(f"--device {device}: the Ray cluster has no GPU (--device auto or cpu uses its {cpus} CPUs)")
    per_worker = threads or 1
    room = gpus if gpu else cpus // per_worker
    what = f"{gpus} GPUs" if gpu else f"{cpus} CPUs, --threads {per_worker} each"
    if room < 1 or (jobs is not None and jobs > room):
        raise UsageError(f"{f'-j {jobs}' if jobs else f'--threads {per_worker}'}: the Ray cluster has room for "
                         f"{room} worker(s) ({what})")
    worker_device = "cuda" if gpu else "cpu"
    return WorkerPlan(jobs or room, worker_device, batch_size or default_batch_size(worker_device),
                      1 if gpu else per_worker, 1 if gpu else 0)


@dataclass(frozen=True)
class ClusterJob:
    """What every worker separates with: the options of the local command, with paths made absolute."""

    model: str  # -m (a model file: its absolute path)
    models: tuple[str, ...]  # the concrete models the files need, loaded as a worker starts
    out_dir: Path  # absolute
    output: OutputOptions
    engine: EngineOptions
    threads: int | None
    known: frozenset[str]  # the source names of every model (stems of another model in a track folder)
    trust_local: bool = False


class SeparationWorker:
    """The state of one Ray actor: the job's models, loaded once on its device, and the folders it
    has cleaned of killed runs' hidden files; one file per call, as ``deepsep separate`` does it."""

    def __init__(self, job: ClusterJob):
        set_threads(job.threads, job.engine.device)
        self.job = job
        self.models = ModelCache(job.model, job.engine.device, load_manifest(), job.trust_local)
        for name in job.models:
            self.models.model(name)
        self.cleaned: set[Path] = set()
        self.stopping = threading.Event()

    def ready(self) -> int:
        """The worker's PID, once its models are loaded."""
        return os.getpid()

    def separate(self, path: Path, track: str, rescan: bool = False) -> FileResult:
        """Separate one file (``rescan``: a worker died on it, so look again for the hidden files it left)."""
        if rescan:
            self.cleaned.clear()
        job = self.job
        return separate_batch_file(self.models, path, track, job.out_dir, job.output, job.engine,
                                   stoppable(None, self.stopping), job.known, self.cleaned)

    def stop(self) -> None:
        """Stop the file under way at its next block (its hidden files are removed)."""
        self.stopping.set()


def largest_first(files: Sequence[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """The batch ordered by file size, largest first (the long files start early and the batch ends
    together); unreadable sizes count as 0, equal sizes keep their order."""

    def size(item: tuple[Path, str]) -> int:
        try:
            return os.path.getsize(item[0])
        except OSError:
            return 0

    return sorted(files, key=size, reverse=True)


def separate_on_cluster(models: ModelCache, files: Sequence[tuple[Path, str]], out_dir: Path, output: OutputOptions,
                        engine: EngineOptions, plan: WorkerPlan, threads: int | None = None,
                        progress_for: Callable[[Path, str], ProgressFn | None] | None = None,
                        worker_class: type[SeparationWorker] = SeparationWorker) -> Generator[FileResult, None, None]:
    """Separate a batch of (file, track) pairs on the connected Ray cluster (see :func:`connected`)
    with ``plan``'s workers and the options of a local run (``models``: the run's, loaded by the
    driver to check them; ``engine``'s device and batch size are ``plan``'s). Yields each file's
    result in the form :func:`~deepsep.separation.separate_files` gives it, in the order they end:
    first the files skipped because their outputs all exist (--skip-existing, checked here, so that
    no worker starts when all are done), then the others as workers finish them.
    ``progress_for(file, track)`` is called as a file is sent to a worker."""
    known = known_sources(models.manifest, models.loaded.values())
    todo = []
    for path, track in files:
        done = finished_result(models, path, track, out_dir, output, known)
        if done is not None:
            yield done
        else:
            todo.append((path, track))
    if todo:
        job = ClusterJob(_worker_name(models.name), tuple(sorted(map(_worker_name, models.loaded))), _absolute(out_dir), output,
                         dataclasses.replace(engine, device=plan.device, batch_size=plan.batch_size),
                         threads, known, models.trust_local)
        yield from ClusterBatch(job, plan, todo, out_dir, progress_for, worker_class, given_model=models.name).results()


class ClusterBatch:
    """The driver's side of a cluster run: workers started, files sent largest first, one at a time
    to each free worker, the file of a worker that died sent again to another (and the worker
    replaced), and the workers stopped and removed at the end."""

    def __init__(self, job: ClusterJob, plan: WorkerPlan, files: Sequence[tuple[Path, str]], out_dir: Path,
                 progress_for: Callable[[Path, str], ProgressFn | None] | None = None,
                 worker_class: type[SeparationWorker] = SeparationWorker, given_model: str | None = None):
        self.ray = import_ray()
        self.job, self.plan, self.out_dir, self.progress_for = job, plan, out_dir, progress_for
        self.given_model = given_model or job.model
        self.queue: deque[tuple[Path, str, int]] = deque((p, t, 0) for p, t in largest_first(files))
        env = {MANIFEST_ENV: os.path.abspath(os.environ[MANIFEST_ENV])} if os.environ.get(MANIFEST_ENV) else {}
        self.actor_class = self.ray.remote(worker_class).options(
            num_cpus=plan.cpus, num_gpus=plan.gpus, max_concurrency=2,  # a second thread for stop()
            **({"runtime_env": {"env_vars": env}} if env else {}))
        self.workers: list[Any] = []  # the live actors
        self.idle: deque[Any] = deque()
        self.busy: dict[Any, tuple[Any, Path, str, int]] = {}  # result ref -> (actor, file, track, attempts before)
        self.replacements = plan.count * MAX_ATTEMPTS  # workers started in place of dead ones, at most

    def results(self) -> Generator[FileResult, None, None]:
        """Each file's result as its worker finishes it (see :func:`separate_on_cluster`)."""
        try:
            for _ in range(min(self.plan.count, len(self.queue))):
                self.idle.append(self._spawn())
            self._wait_ready()
            while self.queue or self.busy:
                self._submit()
                if not self.busy:  # every worker died and none could take its place
                    while self.queue:
                        path, track, _ = self.queue.popleft()
                        yield FileResult(path, track, error=f"{path}: no Ray worker is left to separate it")
                    return
                ready, _ = self.ray.wait(list(self.busy), num_returns=1, timeout=1.0)  # 1 s: signals get through
                for ref in ready:
                    result = self._collect(ref)
                    if result is not None:
                        yield result
        finally:
            self._close()

    def _spawn(self) -> Any:
        actor = self.actor_class.remote(self.job)
        self.workers.append(actor)
        return actor

    def _wait_ready(self) -> None:
        """Wait until the workers have loaded their models; a DeepsepError with the reason when they cannot."""
        try:
            self.ray.get([actor.ready.remote() for actor in self.idle])
        except self.ray.exceptions.RayError as e:
            raise DeepsepError(f"the Ray workers could not start: {_reason(e)}") from None

    def _submit(self) -> None:
        while self.queue and self.idle:
            path, track, attempts = self.queue.popleft()
            if attempts == 0 and self.progress_for is not None:
                self.progress_for(path, track)
            actor = self.idle.popleft()
            self.busy[actor.separate.remote(_absolute(path), track, attempts > 0)] = (actor, path, track, attempts)

    def _collect(self, ref: Any) -> FileResult | None:
        """The result of a finished call, as the local command gives it; None when the worker died
        and the file went back to the front of the queue."""
        actor, path, track, attempts = self.busy.pop(ref)
        exceptions = self.ray.exceptions
        lost = tuple(getattr(exceptions, name) for name in _WORKER_LOST if hasattr(exceptions, name))
        try:
            result = self.ray.get(ref)
        except lost as e:
            self._replace(actor)
            if attempts + 1 < MAX_ATTEMPTS:
                self.queue.appendleft((path, track, attempts + 1))
                return None
            return FileResult(path, track, error=f"{path}: the Ray worker separating it died {MAX_ATTEMPTS} times "
                                                 f"(last: {_reason(e)})")
        except exceptions.RayError as e:
            result = FileResult(path, track, error=f"{path}: {_reason(e)}")
        self.idle.append(actor)
        return self._as_given(result, path)

    def _replace(self, dead: Any) -> None:
        with suppress(Exception):
            self.ray.kill(dead)
        self.workers.remove(dead)
        if self.replacements > 0:
            self.replacements -= 1
            self.idle.append(self._spawn())

    def _as_given(self, result: FileResult, path: Path) -> FileResult:
        """A worker's result (of the absolute path) with the input, outputs and model named as the
        local command names them: outputs relative to here when the folder was given so."""
        root = path if self.job.output.suffix is not None else self.out_dir
        outputs = {k: p if root.is_absolute() else Path(os.path.relpath(p)) for k, p in result.outputs.items()}
        model = self.given_model if result.model == self.job.model else result.model
        return dataclasses.replace(result, path=path, outputs=outputs, model=model)

    def _close(self) -> None:
        """Stop the files under way (stopped early: they remove their hidden files), then the workers."""
        if self.busy:
            for actor, *_ in self.busy.values():
                with suppress(Exception):
                    actor.stop.remote()
            with suppress(Exception):
                self.ray.wait(list(self.busy), num_returns=len(self.busy), timeout=STOP_WAIT_S)
        for actor in self.workers:
            with suppress(Exception):
                self.ray.kill(actor)
        self.workers.clear()


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


def _worker_name(model: str) -> str:
    """A model name as the workers get it: a model file's absolute path (they may run elsewhere)."""
    return str(_absolute(Path(model).expanduser())) if is_model_path(model) else model


def _reason(e: BaseException) -> str:
    """The last meaningful line of an error (Ray's carry a traceback and advice before it)."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(e).__name__
