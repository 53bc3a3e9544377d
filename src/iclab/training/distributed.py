"""Data-parallel training of one run: ``torchrun --nproc_per_node N -m iclab train CONFIG``.

torchrun starts N copies of ``iclab train`` and tells each its rank through the environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``). Each copy builds the step's whole batch
from ``(seed, step)``, as a single process would, and trains on its own contiguous slice of it
(``batch_size / N`` prompts); DistributedDataParallel averages the gradients (NCCL between GPUs, one GPU per
rank; gloo on CPU). The loss of each slice is weighted by its share of the batch's loss terms (scored tokens,
for token tasks), so the averaged gradient is the gradient of the whole batch's loss: the run is the same
run as on one process, up to the order of floating-point reductions. Rank 0 alone writes the run folder
(config, metrics, checkpoints, evaluation, report); every rank resumes from the same checkpoint.

Nothing here runs unless ``WORLD_SIZE`` is above 1.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Context", "context", "on_main"]


@dataclass
class Context:
    rank: int
    world: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0

    def agree(self, ok: bool) -> bool:
        """True on every rank only when ``ok`` is true on every rank."""
        import torch.distributed as dist

        flag = torch.tensor([1 if ok else 0], dtype=torch.int64, device=self.comm_device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    @property
    def comm_device(self) -> torch.device:
        import torch.distributed as dist

        return (
            torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
        )


def context(device_name: str = "auto") -> Context | None:
    """The data-parallel context when launched by torchrun (``WORLD_SIZE`` > 1), the process group initialised on
    first call (NCCL for CUDA devices, gloo otherwise); None for an ordinary single process."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        from iclab.utils import resolve_device

        cuda = resolve_device(device_name).type == "cuda"
        if cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if cuda else "gloo")
    return Context(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local_rank)


def on_main(ctx: Context | None, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 only (making or replacing the run folder), then let every rank go on together; when
    it raises, rank 0 raises it and the others stop quietly with the same outcome."""
    if ctx is None:
        return fn()
    result, error = None, None
    if ctx.main:
        try:
            result = fn()
        except BaseException as e:  # re-raised below, after the other ranks know
            error = e
    if not ctx.agree(error is None):
        if error is not None:
            raise error
        raise SystemExit(2)
    return result


def finish(ctx: Context | None) -> None:
    if ctx is not None:
        import gc

        import torch.distributed as dist

        gc.collect()  # the DDP wrapper (in reference cycles) must go before its process group, or gloo aborts at exit
        dist.barrier()
        dist.destroy_process_group()
