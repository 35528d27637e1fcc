"""Sparse autoencoders: :class:`ReLUSAE`, :class:`TopKSAE`, :class:`BatchTopKSAE`, :class:`JumpReLUSAE`.

All share one parametrisation, ``codes = act((s*x - b_dec) @ W_enc + b_enc)`` and
``x_hat = (codes @ W_dec + b_dec) / s``, where ``s`` (``input_scale_``) rescales inputs so that
``E||s*x||^2 = n_features`` when ``normalize=True`` (as SAELens's ``expected_average_only_in``), and
differ in the activation and the sparsity pressure:

* ReLU + L1 penalty on the codes (Bricken et al. 2023, "Towards Monosemanticity"; the penalty is
  warmed up linearly), with Anthropic-style resampling of dead latents;
* TopK: keep the k largest pre-activations per row (Gao et al. 2024, "Scaling and evaluating sparse
  autoencoders"), with the AuxK loss on dead latents (``k_aux = n_features // 2``, coefficient 1/32);
* BatchTopK: keep the ``k * batch`` largest over the whole batch during training and a learned global
  threshold at inference (Bussmann et al. 2024), with AuxK;
* JumpReLU: ``z * H(z - theta)`` with a per-latent threshold trained by straight-through estimators
  and an L0 penalty (Rajamanoharan et al. 2024, "Jumping Ahead").

Training: Adam, linear LR warm-up (and optional linear decay at the end), decoder rows kept at unit
norm (the gradient component parallel to each row is removed before the step, then rows are
renormalised), ``b_dec`` initialised to the data mean, ``W_enc`` to ``W_dec.T``; a tqdm bar shows
the running L0 and FVU.

Distributed: under a ``torch.distributed`` process group (``torchrun --nproc-per-node N``) ``fit``
trains data parallel with the same result as one process on the same global batches, or with
``shard_latents=True`` splits the latents across ranks; :func:`interp.decompose.train` trains several
SAEs (sites, widths) from one pass over the data.

Example
-------
>>> sae = TopKSAE(n_components=4096, k=32).fit(acts)           # doctest: +SKIP
>>> codes = sae.transform(acts)                                 # Activations (sample, unit=latent)
>>> sae.evaluate(acts).fvu                                      # doctest: +SKIP
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from ._autograd import GatherEncode, JumpReLU, Pairs, Step, decode_pairs
from ._base import check_int
from ._distributed import Parallel
from ._sae_base import SparseAutoencoder

__all__ = ["ReLUSAE", "TopKSAE", "BatchTopKSAE", "JumpReLUSAE", "SparseAutoencoder"]


class ReLUSAE(SparseAutoencoder):
    """ReLU SAE with an L1 penalty ``l1_coefficient * sum(codes)`` (decoder rows have unit norm).

    The penalty is warmed up linearly over the first ``l1_warmup_fraction`` of training; every
    ``resample_every`` steps (until ``resample_until`` of training) latents that have not fired for
    ``dead_after`` samples are re-initialised towards inputs that are badly reconstructed (Bricken et
    al. 2023), and their Adam state is reset.

    Parameters
    ----------
    n_components : int, optional
        Number of latents (default 1024).
    l1_coefficient : float, optional
        Weight of the L1 penalty on the codes (default 5).
    l1_warmup_fraction : float, optional
        Fraction of training over which the penalty ramps up linearly (default 0.05; 0: none).
    resample_every : int, optional
        Steps between dead-latent resamplings (default 2500; 0 disables them).
    resample_until : float, optional
        Fraction of training after which no more resampling happens (default 0.5).
    lr : float, optional
        Peak Adam learning rate (default 3e-4); linear warm-up, then constant (or decayed, see ``decay_fraction``).
    batch_size : int, optional
        Rows per optimiser step (default 4096; the global batch when distributed).
    n_epochs : int, optional
        Passes over the data (default 1).
    max_samples : int, optional
        Stop after this many training rows; None: no limit.
    max_seconds : float, optional
        Stop after this much wall time; None: no limit.
    warmup_steps : int, optional
        Steps of linear learning-rate warm-up; None: ``min(1000, total_steps // 20)`` (at least 1).
    decay_fraction : float, optional
        Final fraction of training over which the learning rate decays linearly to 0 (default 0: none).
    normalize : bool, optional
        Scale the inputs so that their mean squared norm equals the number of features (default True).
    dead_after : int, optional
        A latent that has not fired for this many training samples counts as dead (default 1 000 000).
    seed : int or None, optional
        Seed of the decoder initialisation and of the minibatch order (default 0; None also means 0).
    device : str, optional
        Torch device; None: CUDA when available, else CPU.
    dtype : torch.dtype, optional
        Dtype of the parameters (default ``torch.float32``).
    progress : bool, optional
        Show a progress bar (default True).
    """

    def __init__(self, n_components: int = 1024, *, l1_coefficient: float = 5.0, l1_warmup_fraction: float = 0.05,
                 resample_every: int = 2500, resample_until: float = 0.5, lr: float = 3e-4, batch_size: int = 4096,
                 n_epochs: int = 1, max_samples: int | None = None, max_seconds: float | None = None,
                 warmup_steps: int | None = None, decay_fraction: float = 0.0, normalize: bool = True,
                 dead_after: int = 1_000_000, seed: int | None = 0, device: str | None = None,
                 dtype: torch.dtype = torch.float32, progress: bool = True) -> None:
        super().__init__(n_components, lr=lr, batch_size=batch_size, n_epochs=n_epochs, max_samples=max_samples,
                         max_seconds=max_seconds, warmup_steps=warmup_steps, decay_fraction=decay_fraction,
                         normalize=normalize, dead_after=dead_after, seed=seed, device=device,
                         dtype=dtype, progress=progress)
        self.l1_coefficient = l1_coefficient
        self.l1_warmup_fraction = l1_warmup_fraction
        self.resample_every = resample_every
        self.resample_until = resample_until

    def _activate(self, pre: torch.Tensor, training: bool) -> torch.Tensor:
        return torch.relu(pre)

    def _sparsity_loss(self, pre: torch.Tensor, codes: torch.Tensor, fraction: float) -> torch.Tensor:
        warm = min(1.0, fraction / self.l1_warmup_fraction) if self.l1_warmup_fraction > 0 else 1.0
        return self.l1_coefficient * warm * codes.sum()

    def _after_step(self, x, x_hat, stats, par) -> None:
        self._last_batch = (x, x_hat)
        if self.resample_every and self.n_steps_ % self.resample_every == 0:
            total = getattr(self, "_total_steps", None)
            if total is None or self.n_steps_ <= self.resample_until * total:
                self._resample(x, x_hat, par)

    @torch.no_grad()
    def resample_dead(self) -> int:
        """Re-initialise dead latents from badly reconstructed inputs of the last training batch; returns how many."""
        if not hasattr(self, "_last_batch"):
            return 0
        return self._resample(*self._last_batch, Parallel())

    @torch.no_grad()
    def _resample(self, x: torch.Tensor, x_hat: torch.Tensor, par: Parallel) -> int:
        """Resampling on the global batch: rows are gathered (data parallel) and dead latents numbered across
        ranks (sharded), so every rank draws the same inputs one process would."""
        dead = torch.nonzero(self.dead_latents_).flatten()
        counts = [dead.numel()]
        if par.sharded:
            counts = [int(c) for c in torch.cat(par.all_gather(dead.new_tensor([dead.numel()]), same_size=True))]
        n_dead, offset = sum(counts), sum(counts[:par.rank]) if par.sharded else 0
        if n_dead == 0:
            return 0
        if par.data_parallel:
            x, x_hat = torch.cat(par.all_gather(x)), torch.cat(par.all_gather(x_hat))
        loss = ((x - x_hat) ** 2).sum(1)
        gen = torch.Generator().manual_seed(int(self.n_steps_))
        pick = torch.multinomial((loss**2).cpu().double() + 1e-12, n_dead, replacement=True, generator=gen)
        pick = pick[offset:offset + dead.numel()]
        alive = ~self.dead_latents_
        norms = torch.stack([self.W_enc_[:, alive].norm(dim=0).sum(), alive.sum().to(self.W_enc_.dtype)])
        if par.sharded:
            par.all_reduce_(norms)
        enc_norm = norms[0] / norms[1] if norms[1] > 0 else torch.tensor(1.0)
        if dead.numel() == 0:
            return n_dead
        direction = x[pick.to(x.device)] - self.b_dec_
        direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
        self.components_[dead] = direction
        self.W_enc_[:, dead] = direction.T * enc_norm * 0.2
        self.b_enc_[dead] = 0
        for param, index in ((self.components_, (dead,)), (self.W_enc_, (slice(None), dead)), (self.b_enc_, (dead,))):
            state, transposed = self._optimizer.state_of(param)
            index = index[::-1] if transposed else index
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key][index] = 0
        self._samples_since_fired[dead] = 0
        return n_dead


class TopKSAE(SparseAutoencoder):
    """TopK SAE: keep the ``k`` largest (positive) pre-activations of each row (Gao et al. 2024).

    Dead latents (no activation for ``dead_after`` samples) are trained by the AuxK loss: the top
    ``aux_k`` (default ``n_features // 2``) dead latents of each row reconstruct the residual, weighted by
    ``aux_coefficient`` and by ``min(n_dead / aux_k, 1)``.

    Parameters
    ----------
    n_components : int, optional
        Number of latents (default 1024).
    k : int, optional
        Active latents per row (default 32; at most ``n_components``).
    aux_k : int, optional
        Dead latents used by the AuxK loss per row; None: ``n_features // 2``.
    aux_coefficient : float, optional
        Weight of the AuxK loss (default 1/32).
    lr : float, optional
        Peak Adam learning rate (default 3e-4); linear warm-up, then constant (or decayed, see ``decay_fraction``).
    batch_size : int, optional
        Rows per optimiser step (default 4096; the global batch when distributed).
    n_epochs : int, optional
        Passes over the data (default 1).
    max_samples : int, optional
        Stop after this many training rows; None: no limit.
    max_seconds : float, optional
        Stop after this much wall time; None: no limit.
    warmup_steps : int, optional
        Steps of linear learning-rate warm-up; None: ``min(1000, total_steps // 20)`` (at least 1).
    decay_fraction : float, optional
        Final fraction of training over which the learning rate decays linearly to 0 (default 0: none).
    normalize : bool, optional
        Scale the inputs so that their mean squared norm equals the number of features (default True).
    dead_after : int, optional
        A latent that has not fired for this many training samples counts as dead (default 1 000 000).
    seed : int or None, optional
        Seed of the decoder initialisation and of the minibatch order (default 0; None also means 0).
    device : str, optional
        Torch device; None: CUDA when available, else CPU.
    dtype : torch.dtype, optional
        Dtype of the parameters (default ``torch.float32``).
    progress : bool, optional
        Show a progress bar (default True).
    """

    def __init__(self, n_components: int = 1024, *, k: int = 32, aux_k: int | None = None,
                 aux_coefficient: float = 1 / 32, lr: float = 3e-4, batch_size: int = 4096, n_epochs: int = 1,
                 max_samples: int | None = None, max_seconds: float | None = None, warmup_steps: int | None = None,
                 decay_fraction: float = 0.0, normalize: bool = True, dead_after: int = 1_000_000,
                 seed: int | None = 0, device: str | None = None, dtype: torch.dtype = torch.float32,
                 progress: bool = True) -> None:
        super().__init__(n_components, lr=lr, batch_size=batch_size, n_epochs=n_epochs, max_samples=max_samples,
                         max_seconds=max_seconds, warmup_steps=warmup_steps, decay_fraction=decay_fraction,
                         normalize=normalize, dead_after=dead_after, seed=seed, device=device,
                         dtype=dtype, progress=progress)
        self.k = k
        self.aux_k = aux_k
        self.aux_coefficient = aux_coefficient

    def _check_params(self, n_features: int) -> None:
        super()._check_params(n_features)
        check_int("k", self.k)
        if self.k > self.n_components:
            raise ConfigError(f"k={self.k} is larger than the number of latents n_components={self.n_components}; "
                              "k is how many latents stay active per sample, so it must be <= n_components")

    def _activate(self, pre: torch.Tensor, training: bool) -> torch.Tensor:
        vals, idx = pre.topk(self.k, dim=1)
        return torch.zeros_like(pre).scatter(1, idx, torch.relu(vals))

    @staticmethod
    def _row_topk(values: torch.Tensor, k: int, par: Parallel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rows, latents, values) of each row's top ``k`` (over all ranks' latents when sharded), sorted by row
        and, within a row, by latent (the CSR layout of :class:`Pairs`)."""
        vals, idx = values.topk(min(k, values.shape[1]), dim=1, sorted=False)
        idx, perm = idx.sort(dim=1)
        vals = vals.gather(1, perm)
        rows = torch.arange(values.shape[0], device=values.device).unsqueeze(1).expand_as(idx)
        mask = par.row_topk(vals, k)
        if mask is None:
            return rows.reshape(-1), idx.reshape(-1), vals.reshape(-1)
        return rows[mask], idx[mask], vals[mask]

    def _select(self, pre: torch.Tensor, n: int, par: Parallel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rows, latents, values) of the active pairs, sorted by row."""
        return self._row_topk(pre, self.k, par)

    def _train_forward(self, x, fraction, n, par):
        xs = x * self.input_scale_
        xc = (xs - self.b_dec_).detach()
        with torch.no_grad():
            pre = (xc @ self.W_enc_).add_(self.b_enc_)
        rows, lats, values = self._select(pre, n, par)
        pairs = Pairs(rows, lats, x.shape[0], pre.shape[1])
        codes = torch.relu(GatherEncode.apply(values, self.W_enc_, self.b_enc_, self.b_dec_, xc, pairs))
        x_hat = par.decode(decode_pairs(self.components_, pairs, codes), self.b_dec_)
        aux = self._aux_loss(xs, x_hat, pre, xc, n, par)
        active = codes.detach() > 0
        fired = torch.zeros(pre.shape[1], dtype=torch.bool, device=pre.device)
        fired[lats[active]] = True
        stats = {"fired": fired, "active": active.sum(),
                 "min_active": codes.detach()[active].min() if bool(active.any()) else None}
        return xs, x_hat, aux, stats

    def _aux_loss(self, xs, x_hat, pre, xc, n, par):
        """AuxK (Gao et al. 2024) on the sparse path: the top ``k_aux`` dead latents reconstruct the residual."""
        if self.aux_coefficient == 0:
            return xs.new_zeros(())
        dead = self.dead_latents_
        count = dead.sum().reshape(1)
        n_dead = int(par.all_reduce_(count) if par.sharded else count)
        if n_dead == 0:
            return xs.new_zeros(())
        k_aux = self.aux_k if self.aux_k is not None else xs.shape[1] // 2
        scale = min(n_dead / k_aux, 1.0)
        k_aux = min(k_aux, n_dead)
        rows, lats, values = self._row_topk(torch.where(dead, pre, torch.full_like(pre, -torch.inf)), k_aux, par)
        pairs = Pairs(rows, lats, xs.shape[0], pre.shape[1])
        codes = torch.relu(GatherEncode.apply(values, self.W_enc_, self.b_enc_, self.b_dec_, xc, pairs))
        recon = par.decode(decode_pairs(self.components_, pairs, codes), None)
        residual = (xs - x_hat).detach()
        return self.aux_coefficient * scale * ((recon - residual) ** 2).sum() / n


class BatchTopKSAE(TopKSAE):
    """BatchTopK SAE (Bussmann et al. 2024): the ``k * batch`` largest activations over a batch.

    At inference a single threshold (``threshold_``, a running mean of the smallest activation kept
    in training batches) replaces the batch-level top-k, so codes of a row do not depend on its batch.
    Distributed, the selection is over the whole global batch (all ranks' rows, or all ranks' latents).

    Parameters
    ----------
    n_components : int, optional
        Number of latents (default 1024).
    k : int, optional
        Mean active latents per row: the batch keeps its ``k * batch`` largest activations (default 32).
    aux_k : int, optional
        Dead latents used by the AuxK loss per row; None: ``n_features // 2``.
    aux_coefficient : float, optional
        Weight of the AuxK loss (default 1/32).
    lr : float, optional
        Peak Adam learning rate (default 3e-4); linear warm-up, then constant (or decayed, see ``decay_fraction``).
    batch_size : int, optional
        Rows per optimiser step (default 4096; the global batch when distributed).
    n_epochs : int, optional
        Passes over the data (default 1).
    max_samples : int, optional
        Stop after this many training rows; None: no limit.
    max_seconds : float, optional
        Stop after this much wall time; None: no limit.
    warmup_steps : int, optional
        Steps of linear learning-rate warm-up; None: ``min(1000, total_steps // 20)`` (at least 1).
    decay_fraction : float, optional
        Final fraction of training over which the learning rate decays linearly to 0 (default 0: none).
    normalize : bool, optional
        Scale the inputs so that their mean squared norm equals the number of features (default True).
    dead_after : int, optional
        A latent that has not fired for this many training samples counts as dead (default 1 000 000).
    seed : int or None, optional
        Seed of the decoder initialisation and of the minibatch order (default 0; None also means 0).
    device : str, optional
        Torch device; None: CUDA when available, else CPU.
    dtype : torch.dtype, optional
        Dtype of the parameters (default ``torch.float32``).
    progress : bool, optional
        Show a progress bar (default True).
    """

    _extra_tensor_attrs = ("threshold_",)
    _tensor_attrs = SparseAutoencoder._tensor_attrs + ("threshold_",)

    def _init_extra(self, n_latents: int, device: torch.device) -> None:
        self.threshold_ = torch.zeros((), dtype=self.dtype, device=device)
        self._threshold_updates = 0

    def _activate(self, pre: torch.Tensor, training: bool) -> torch.Tensor:
        acts = torch.relu(pre)
        if not training:
            return acts * (acts > self.threshold_)
        flat = acts.flatten()
        n_keep = min(self.k * pre.shape[0], flat.numel())
        vals, idx = flat.topk(n_keep)
        return torch.zeros_like(flat).scatter(0, idx, vals).reshape(pre.shape)

    def _select(self, pre: torch.Tensor, n: int, par: Parallel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        flat = torch.relu(pre).flatten()
        vals, idx = flat.topk(min(self.k * n, flat.numel()))
        mask = par.flat_topk(vals, self.k * n)
        if mask is not None:
            idx = idx[mask]
        idx = idx.sort().values  # sorted flat index = sorted by row
        m = pre.shape[1]
        return idx // m, idx % m, pre.flatten()[idx]

    def _after_step(self, x, x_hat, stats, par) -> None:
        smallest = stats["min_active"]
        if par.active:
            t = self.threshold_.new_tensor([torch.inf if smallest is None else float(smallest)])
            smallest = par.all_reduce_(t, "min")[0]
            smallest = None if torch.isinf(smallest) else smallest
        if smallest is not None:
            self._threshold_updates = getattr(self, "_threshold_updates", 0) + 1
            rate = max(0.01, 1.0 / self._threshold_updates)
            self.threshold_ = (1 - rate) * self.threshold_ + rate * smallest


class JumpReLUSAE(SparseAutoencoder):
    """JumpReLU SAE (Rajamanoharan et al. 2024): per-latent thresholds and an L0 penalty.

    ``codes = z * H(z - theta)`` with ``theta = exp(log_threshold_)``; loss = MSE +
    ``sparsity_coefficient * L0`` (warmed up linearly over ``sparsity_warmup_fraction``), with
    straight-through estimators of bandwidth ``bandwidth`` for the threshold gradients.

    Parameters
    ----------
    n_components : int, optional
        Number of latents (default 1024).
    sparsity_coefficient : float, optional
        Weight of the L0 penalty (default 1).
    sparsity_warmup_fraction : float, optional
        Fraction of training over which the penalty ramps up linearly (default 0.1; 0: none).
    bandwidth : float, optional
        Bandwidth of the straight-through estimators (default 0.5; must be > 0).
    initial_threshold : float, optional
        Starting threshold of every latent (default 1; must be > 0).
    lr : float, optional
        Peak Adam learning rate (default 3e-4); linear warm-up, then constant (or decayed, see ``decay_fraction``).
    batch_size : int, optional
        Rows per optimiser step (default 4096; the global batch when distributed).
    n_epochs : int, optional
        Passes over the data (default 1).
    max_samples : int, optional
        Stop after this many training rows; None: no limit.
    max_seconds : float, optional
        Stop after this much wall time; None: no limit.
    warmup_steps : int, optional
        Steps of linear learning-rate warm-up; None: ``min(1000, total_steps // 20)`` (at least 1).
    decay_fraction : float, optional
        Final fraction of training over which the learning rate decays linearly to 0 (default 0: none).
    normalize : bool, optional
        Scale the inputs so that their mean squared norm equals the number of features (default True).
    dead_after : int, optional
        A latent that has not fired for this many training samples counts as dead (default 1 000 000).
    seed : int or None, optional
        Seed of the decoder initialisation and of the minibatch order (default 0; None also means 0).
    device : str, optional
        Torch device; None: CUDA when available, else CPU.
    dtype : torch.dtype, optional
        Dtype of the parameters (default ``torch.float32``).
    progress : bool, optional
        Show a progress bar (default True).
    """

    _extra_tensor_attrs = ("log_threshold_",)
    _tensor_attrs = SparseAutoencoder._tensor_attrs + ("log_threshold_",)
    _latent_attrs = {**SparseAutoencoder._latent_attrs, "log_threshold_": 0}

    def __init__(self, n_components: int = 1024, *, sparsity_coefficient: float = 1.0,
                 sparsity_warmup_fraction: float = 0.1, bandwidth: float = 0.5, initial_threshold: float = 1.0,
                 lr: float = 3e-4, batch_size: int = 4096, n_epochs: int = 1, max_samples: int | None = None,
                 max_seconds: float | None = None, warmup_steps: int | None = None, decay_fraction: float = 0.0,
                 normalize: bool = True, dead_after: int = 1_000_000, seed: int | None = 0,
                 device: str | None = None, dtype: torch.dtype = torch.float32, progress: bool = True) -> None:
        super().__init__(n_components, lr=lr, batch_size=batch_size, n_epochs=n_epochs, max_samples=max_samples,
                         max_seconds=max_seconds, warmup_steps=warmup_steps, decay_fraction=decay_fraction,
                         normalize=normalize, dead_after=dead_after, seed=seed, device=device,
                         dtype=dtype, progress=progress)
        self.sparsity_coefficient = sparsity_coefficient
        self.sparsity_warmup_fraction = sparsity_warmup_fraction
        self.bandwidth = bandwidth
        self.initial_threshold = initial_threshold

    def _check_params(self, n_features: int) -> None:
        super()._check_params(n_features)
        if not self.bandwidth > 0 or not self.initial_threshold > 0:
            raise ConfigError("bandwidth and initial_threshold must be > 0")

    def _init_extra(self, n_latents: int, device: torch.device) -> None:
        self.log_threshold_ = torch.full((n_latents,), math.log(self.initial_threshold), dtype=self.dtype,
                                         device=device, requires_grad=True)

    def _extra_params(self) -> list[torch.Tensor]:
        return [self.log_threshold_]

    @property
    def threshold_(self) -> torch.Tensor:
        """Per-latent thresholds ``exp(log_threshold_)``."""
        return self.log_threshold_.exp()

    def _activate(self, pre: torch.Tensor, training: bool) -> torch.Tensor:
        z = torch.relu(pre)
        theta = self.log_threshold_.exp()
        if not training:
            return z * (z > theta)
        return JumpReLU.apply(z, theta, self.bandwidth)

    def _sparsity_loss(self, pre: torch.Tensor, codes: torch.Tensor, fraction: float) -> torch.Tensor:
        warm = min(1.0, fraction / self.sparsity_warmup_fraction) if self.sparsity_warmup_fraction > 0 else 1.0
        return self.sparsity_coefficient * warm * Step.apply(torch.relu(pre), self.log_threshold_.exp(),
                                                             self.bandwidth).sum()
