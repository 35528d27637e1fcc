"""Ranks of a ``torch.distributed`` job (``torchrun``): who am I, my share of a list, gather everyone's part.

Every analysis that shares work out among ranks (capture into one store, attribution sweeps, label passes,
SAE training) uses these three, so one process and N ranks give the same result. Without an initialised
process group they are the identity (rank 0 of 1).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TypeVar

__all__ = ["rank_and_world", "share", "gather", "launched", "init_from_environment"]

T = TypeVar("T")


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, or ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def share(items: Sequence[T]) -> list[T]:
    """This rank's part of ``items`` (every ``world``-th item, starting at ``rank``).

    Parameters
    ----------
    items : Sequence
        The whole work list, the same on every rank; all of it in one process.
    """
    rank, world = rank_and_world()
    return list(items[rank::world])


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order, on every rank (``all_gather_object``); ``[obj]`` in one process.

    Parameters
    ----------
    obj : Any
        This rank's picklable result.
    """
    import torch.distributed as dist

    _, world = rank_and_world()
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def launched() -> bool:
    """True in a process that ``torchrun`` started as one of several ranks."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_environment() -> bool:
    """Initialise the default process group from torchrun's environment (gloo for CPU tensors, NCCL for CUDA
    ones; each rank on its ``LOCAL_RANK`` GPU) when launched as one of several ranks; True if a group is up."""
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        return False
    if dist.is_initialized():
        return True
    if not launched():
        return False
    if torch.cuda.is_available() and dist.is_nccl_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group("gloo")
    return True
