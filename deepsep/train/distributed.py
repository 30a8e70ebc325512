"""Training on several processes started by ``torchrun`` (one per CPU share or GPU).

``torchrun --nproc-per-node N -m deepsep train ...`` sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``
and ``MASTER_ADDR``/``MASTER_PORT`` in each process; :func:`setup` then joins the process group
(``gloo`` on the CPU, ``nccl`` on GPUs, one GPU per ``LOCAL_RANK``). Without them (or with
``WORLD_SIZE`` 1) every function here is the identity and a run is the single process it always was.

The semantics: every rank holds the same model and optimizer and draws the same *global* batch
(``--batch-size``) from the same seeded stream, keeping its own slice (:func:`shard`); the
gradients are averaged over the ranks after each backward pass (:func:`average_gradients`, what
DistributedDataParallel does, done by hand because the tasks call model methods other than
``forward``, which DDP's hooks would miss). With losses that are means over equal slices, N ranks
take the step one process takes on the whole batch. Batch norm uses each rank's own slice.
Only rank 0 (:func:`is_main`) validates, logs, checkpoints and exports; the others learn its
decisions through :func:`broadcast`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist

from ..engine import resolve_device
from ..errors import UsageError

#: how long a rank waits for the others (rank 0 validates and saves while they wait)
TIMEOUT = timedelta(hours=2)


def world_size() -> int:
    """The number of training processes (``WORLD_SIZE``; 1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (``RANK``; 0 without torchrun)."""
    return int(os.environ.get("RANK", "0")) if world_size() > 1 else 0


def is_main() -> bool:
    """Whether this process validates, logs, checkpoints and exports (rank 0, or the only one)."""
    return rank() == 0


def active() -> bool:
    """Whether this process trains in a process group of several."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def setup(device: str = "auto") -> torch.device:
    """The training device of this process (``cuda:LOCAL_RANK`` under torchrun on GPUs); joins
    the process group first when torchrun started several processes (idempotent)."""
    name = resolve_device(device)
    if world_size() <= 1:
        return torch.device(name)
    if name.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=TIMEOUT,
                                device_id=dev if dev.type == "cuda" else None)
    return dev


def local_batch(size: int) -> int:
    """Each rank's share of the global batch ``size`` (UsageError unless it divides evenly)."""
    n = world_size()
    if size % n:
        raise UsageError(f"--batch-size {size} is the total over {n} processes: give a multiple of {n}")
    return size // n


def shard(x: torch.Tensor) -> torch.Tensor:
    """This rank's equal slice of ``x`` along its first dimension (``x`` itself in one process)."""
    n = world_size()
    if n <= 1:
        return x
    k = local_batch(len(x))
    return x[rank() * k:(rank() + 1) * k]


def _device() -> torch.device:
    """Where collective buffers live: the current GPU under nccl, else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def average_gradients(params: Iterable[torch.nn.Parameter], loss: torch.Tensor) -> torch.Tensor:
    """Average the gradients of ``params`` over the ranks in one all-reduce, and with them ``loss``
    (the scalar they are the gradient of): returns the mean loss (``loss`` itself in one process)."""
    if not active():
        return loss
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1).to(grads[0].dtype if grads else loss.dtype)])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    i = 0
    for g in grads:
        g.copy_(flat[i:i + g.numel()].view_as(g))
        i += g.numel()
    return flat[-1]


def average(values: dict[str, float]) -> dict[str, float]:
    """The means over the ranks of numbers with the same keys on every rank."""
    if not active() or not values:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=_device())
    dist.all_reduce(t)
    return dict(zip(values, (t / dist.get_world_size()).tolist(), strict=True))


def broadcast(values: list[float]) -> list[float]:
    """Rank 0's ``values`` on every rank (all must pass as many)."""
    if not active():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_device())
    dist.broadcast(t, 0)
    return t.tolist()


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers into every rank's ``module``."""
    if active():
        for t in module.state_dict().values():
            dist.broadcast(t, 0)


@contextmanager
def main_first(device: str = "auto") -> Iterator[None]:
    """Rank 0 runs the block first (e.g. writing a cache or a split file), then the others (reading
    it); joins the process group if needed. Just the block in one process."""
    setup(device)
    if active() and not is_main():
        dist.barrier()
    yield
    if active() and is_main():
        dist.barrier()


def finish() -> None:
    """Wait for every rank, then leave the process group (nothing in one process)."""
    if active():
        dist.barrier()
        dist.destroy_process_group()
