"""A small, deterministic job that writes an activation store through the store API, for the safety tests.

Input ``i`` yields ``i % 3 + 1`` rows (one per "token" ``pos``), computed row by row so that the values do not
depend on batching. Run as a script under torchrun it writes one store from every rank:

    torchrun --standalone --nproc-per-node 2 tests/_store_job.py STORE [CRASH]

``CRASH`` (``rank:point:nth``) SIGKILLs that rank at ``point`` after ``nth`` appends (see :func:`kill_at`).
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np

N_INPUTS = 30
FINGERPRINT = {"inputs": f"synthetic {N_INPUTS}", "model": "sin", "sites": ["a", "b"], "positions": "tokens"}


def rows_of(ids: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values, sample_index and pos of the rows of inputs ``ids``."""
    vals, sample, pos = [], [], []
    for i in ids:
        k = np.arange(i % 3 + 1)
        vals.append(np.sin(np.float32(i) * np.float32(0.37) + k[:, None].astype(np.float32) * np.float32(0.11)
                           + np.arange(6, dtype=np.float32)[None, :] * np.float32(0.05)).astype(np.float32))
        sample.append(np.full(k.size, i))
        pos.append(k)
    return np.concatenate(vals), np.concatenate(sample), np.concatenate(pos)


def run_job(path, *, rank=None, world_size=None, job_id=None, batch_size=4, n=N_INPUTS, timeout=60.0, flush=False):
    """Write (or resume) the store at ``path``; rank and world size from torch.distributed unless given;
    ``flush`` makes every append durable before the next (else commits are grouped as the disk allows)."""
    from interp.store import ActivationStore, rank_range

    store = ActivationStore.create(path, fingerprint=FINGERPRINT, rank=rank, world_size=world_size, job_id=job_id,
                                   timeout=timeout)
    if store.complete:
        return store
    mine = list(rank_range(n, store.rank, store.world_size))
    done = store.inputs_done
    todo = mine[done:]
    for start in range(0, len(todo), batch_size):
        ids = todo[start : start + batch_size]
        vals, sample, pos = rows_of(ids)
        if not store.arrays or start == 0:
            store.define({"a": (6,), "b": (2, 3)}, dims={"a": ("sample", "unit"), "b": ("sample", "x", "unit")})
        store.append({"a": vals, "b": 2 * vals.reshape(-1, 2, 3)}, {"sample_index": sample, "pos": pos},
                     inputs_done=done + start + len(ids))
        if flush:
            store.flush()
    store.finish()
    return store


def kill_at(point: str, nth: int) -> None:
    """Make this process SIGKILL itself the first time the store passes ``point`` after ``nth`` appends wrote
    their files (``shard``: inside append ``nth + 1``; ``synced``/``manifest``/``committed``: in the commit that
    follows, which may group several appends)."""
    import interp.store.activation_store

    seen = {"appends": 0}

    def crash(where: str) -> None:
        if where == point and seen["appends"] >= nth:
            os.kill(os.getpid(), signal.SIGKILL)
        seen["appends"] += where == "shards"

    interp.store.activation_store._crash = crash


if __name__ == "__main__":
    import torch.distributed as dist

    dist.init_process_group("gloo")
    if len(sys.argv) > 2:
        rank, point, nth = sys.argv[2].split(":")
        if dist.get_rank() == int(rank):
            kill_at(point, int(nth))
    run_job(sys.argv[1])
    dist.destroy_process_group()
