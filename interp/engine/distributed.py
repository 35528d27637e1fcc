"""Ranks of a ``torch.distributed`` job (``torchrun``): who am I, my share of a list, gather everyone's part.

Every analysis that shares work out among ranks (capture into one store, attribution sweeps, label passes,
SAE training) uses these three, so one process and N ranks give the same result. Without an initialised
process group they are the identity (rank 0 of 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

__all__ = ["rank_and_world", "share", "gather"]

T = TypeVar("T")


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, or ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def share(items: Sequence[T]) -> list[T]:
    """This rank's part of ``items`` (every ``world``-th item, starting at ``rank``)."""
    rank, world = rank_and_world()
    return list(items[rank::world])


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order, on every rank (``all_gather_object``); ``[obj]`` in one process."""
    import torch.distributed as dist

    _, world = rank_and_world()
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out
