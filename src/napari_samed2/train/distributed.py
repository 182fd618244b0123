"""Running one training on several processes (``torchrun --nproc_per_node N``).

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address; `join` starts
the process group from them (NCCL on CUDA, gloo otherwise), gradients are averaged by
`torch.nn.parallel.DistributedDataParallel`, and `agree` makes a decision (stop now) that every
rank takes together, so no rank waits for ever on a step the others skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass
class Workers:
    """This process's place in a run: ``rank`` of ``world_size``, its device, and whether it
    started the process group (and so ends it)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """The rank that evaluates and writes files."""
        return self.rank == 0


def join(device: torch.device) -> Workers:
    """This process's `Workers`: one alone, or a rank of the group torchrun describes.

    Parameters
    ----------
    device : torch.device
        The device asked for; under torchrun a CUDA device becomes ``cuda:LOCAL_RANK``.
    """
    if not dist.is_available():
        return Workers(device=device)
    owns = False
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return Workers(device=device)
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns = True
    return Workers(dist.get_rank(), dist.get_world_size(), device, owns)


def wrap(model: nn.Module, workers: Workers) -> nn.Module:
    """``model`` for the training step: in DistributedDataParallel when there are several
    ranks (parameters a step leaves unused, e.g. memory on a one-frame clip, are allowed)."""
    if not workers.distributed:
        return model
    ids = [workers.device.index] if workers.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def agree(flag: bool, workers: Workers) -> bool:
    """True on every rank when ``flag`` is True on any rank."""
    if not workers.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=_collective_device(workers))
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def barrier(workers: Workers) -> None:
    if workers.distributed:
        dist.barrier()


def leave(workers: Workers) -> None:
    """End the process group if `join` started it."""
    if workers.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def _collective_device(workers: Workers) -> torch.device:
    return workers.device if dist.get_backend() == "nccl" else torch.device("cpu")
