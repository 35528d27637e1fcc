"""Process-group plumbing for SAE training on several ranks (``torch.distributed``: gloo on CPU, NCCL on CUDA).

Two layouts, chosen by ``shard_latents``:

* **data parallel** (default): every rank holds the whole SAE and trains on its own slice of each global
  minibatch; losses are sums over rows divided by the *global* batch size and gradients are summed across
  ranks, so every rank takes the optimiser step one process would take on the global batch. Everything
  computed from batch statistics is reduced across ranks first (dead-latent counters, BatchTopK's
  batch-wide top-k and threshold, the input scale and ``b_dec`` init, resampling inputs).
* **latent sharded** (``shard_latents=True``, after EleutherAI sparsify's ``--distribute_latents``): rank
  ``r`` holds latents ``[r*m/W, (r+1)*m/W)`` (encoder columns, decoder rows, biases, thresholds, Adam state)
  and sees the whole global batch; TopK picks are a global top-k over the ranks' local candidates, partial
  reconstructions are summed (:class:`_AllReduceSum`, whose backward is the identity because every rank
  computes the same loss from the summed output), and only the replicated ``b_dec`` has its gradient summed.

Launch with ``torchrun --nproc-per-node N ...``; a fit under an initialised process group detects it. Who is
which rank comes from :mod:`interp.engine.distributed` (the one home of rank logic); the tensor collectives of
SAE training are here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..engine.distributed import init_from_environment, launched, rank_and_world
from ..errors import ConfigError

__all__ = ["Parallel", "resolve_parallel"]



def _dist():
    import torch.distributed as dist

    return dist


def resolve_parallel(distributed: bool | None, shard_latents: bool = False) -> Parallel:
    """The layout for a fit: ``distributed=None`` is distributed under an initialised process group of 2+
    ranks, or in a process that ``torchrun`` launched as one of several ranks (the default group is then
    initialised from its environment variables, gloo for CPU tensors and NCCL for CUDA ones).

    ``distributed=True`` outside both raises :class:`ConfigError`; ``distributed=False`` trains on this
    process alone (for instance a different SAE on each rank).
    """
    dist = _dist()
    if distributed is False:
        if shard_latents:
            raise ConfigError("shard_latents=True needs distributed training; drop distributed=False")
        return Parallel()
    if not (dist.is_available() and dist.is_initialized()):
        if launched():
            init_from_environment()
        elif distributed or shard_latents:
            raise ConfigError(
                "distributed training needs a torch.distributed process group: launch with "
                "`torchrun --nproc-per-node N ...` (or call torch.distributed.init_process_group first)")
        else:
            return Parallel()
    rank, world = rank_and_world()
    if world == 1:
        return Parallel()
    return Parallel(rank=rank, world_size=world, shard_latents=shard_latents)


@dataclass(frozen=True)
class Parallel:
    """Where this process stands: its rank, the number of ranks and whether latents are sharded."""

    rank: int = 0
    world_size: int = 1
    shard_latents: bool = False

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def data_parallel(self) -> bool:
        """Ranks hold whole SAEs and split the rows of each batch."""
        return self.active and not self.shard_latents

    @property
    def sharded(self) -> bool:
        """Ranks split the latents and see every row."""
        return self.active and self.shard_latents

    def device(self, device: str | torch.device | None) -> torch.device:
        """``device`` or, when not given, CUDA if there is one, else the CPU; ranks use CUDA device ``LOCAL_RANK``."""
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) if self.active else torch.cuda.current_device())
        return device

    def latent_range(self, n_components: int) -> tuple[int, int]:
        """The latents ``[lo, hi)`` this rank holds (all of them unless sharded)."""
        if not self.sharded:
            return 0, n_components
        if n_components % self.world_size:
            raise ConfigError(f"shard_latents needs n_components ({n_components}) divisible by the number of ranks "
                              f"({self.world_size}); choose a width that is a multiple of {self.world_size}")
        size = n_components // self.world_size
        return self.rank * size, (self.rank + 1) * size

    # ------------------------------------------------------------ collectives
    def all_reduce_(self, t: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Reduce ``t`` in place across ranks (``"sum"``, ``"min"`` or ``"max"``); a no-op on one rank."""
        if self.active:
            dist = _dist()
            dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}[op])
        return t

    def all_gather(self, t: torch.Tensor, same_size: bool = False) -> list[torch.Tensor]:
        """Every rank's ``t`` in rank order; sizes along dim 0 may differ between ranks unless ``same_size``."""
        if not self.active:
            return [t]
        dist = _dist()
        t = t.contiguous()
        if same_size:
            out = [torch.empty_like(t) for _ in range(self.world_size)]
            dist.all_gather(out, t)
            return out
        sizes = torch.tensor([t.shape[0]], dtype=torch.long, device=t.device)
        all_sizes = [torch.zeros_like(sizes) for _ in range(self.world_size)]
        dist.all_gather(all_sizes, sizes)
        n = [int(s) for s in all_sizes]
        pad = max(n)
        if t.shape[0] < pad:
            t = torch.cat([t, t.new_zeros(pad - t.shape[0], *t.shape[1:])])
        out = [torch.empty_like(t) for _ in range(self.world_size)]
        dist.all_gather(out, t)
        return [o[:k] for o, k in zip(out, n)]

    def gather_cat(self, t: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """Concatenate every rank's ``t`` (the same shape on every rank) along ``dim`` in rank order."""
        if not self.active:
            return t
        return torch.cat([o.movedim(0, dim) for o in self.all_gather(t.movedim(dim, 0), same_size=True)], dim=dim)

    def decode(self, partial: torch.Tensor, b_dec: torch.Tensor | None) -> torch.Tensor:
        """Reconstruction from this rank's partial decode: summed over ranks when latents are sharded.

        The replicated ``b_dec`` enters each rank's share divided by the number of ranks, so that summing its
        gradient across ranks (as for the encoder's share) gives exactly one process's gradient.
        """
        if not self.sharded:
            return partial if b_dec is None else partial + b_dec
        if b_dec is not None:
            partial = partial + b_dec / self.world_size
        return _AllReduceSum.apply(partial)

    def row_topk(self, values: torch.Tensor, k: int) -> torch.Tensor | None:
        """Which of this rank's candidates ``values`` (rows x c, each row's local top-c) are in their row's global top-k.

        ``None`` when latents are not sharded (the local top-k is the global one). A row's global top-k
        draws at most ``k`` entries from one rank, so local top-k candidates suffice; every rank runs the
        same ``topk`` on the same gathered tensor, so all agree.
        """
        if not self.sharded:
            return None
        n, c = values.shape
        gathered = torch.stack(self.all_gather(values.detach(), same_size=True))  # (W, n, c) on every rank
        candidates = gathered.permute(1, 0, 2).reshape(n, self.world_size * c)
        winners = candidates.topk(k, dim=1).indices
        mine = winners.div(c, rounding_mode="floor") == self.rank
        mask = torch.zeros(n, c, dtype=torch.bool, device=values.device)
        rows = torch.arange(n, device=values.device).unsqueeze(1).expand_as(winners)
        mask[rows[mine], (winners % c)[mine]] = True
        return mask

    def flat_topk(self, values: torch.Tensor, k: int) -> torch.Tensor | None:
        """Which of this rank's 1-D candidates are among the ``k`` largest over all ranks (``None`` on one rank).

        Used by BatchTopK's batch-wide selection: over the ranks' rows (data parallel) or latents (sharded).
        Candidate lists may differ in length; padding is ``-inf`` and never wins while ``k`` does not exceed
        the number of real candidates.
        """
        if not self.active:
            return None
        parts = self.all_gather(values.detach())
        width = max(p.shape[0] for p in parts)
        padded = torch.full((self.world_size, width), -torch.inf, dtype=values.dtype, device=values.device)
        for r, p in enumerate(parts):
            padded[r, :p.shape[0]] = p
        winners = padded.reshape(-1).topk(k).indices
        mine = winners[winners.div(width, rounding_mode="floor") == self.rank] % width
        mask = torch.zeros(values.shape[0], dtype=torch.bool, device=values.device)
        mask[mine] = True
        return mask


class _AllReduceSum(torch.autograd.Function):
    """Sum across ranks; the backward is the identity (every rank computes the same loss from the sum)."""

    @staticmethod
    def forward(ctx, x):
        out = x.contiguous().clone()
        _dist().all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad
