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

Example
-------
>>> sae = TopKSAE(n_components=4096, k=32).fit(acts)           # doctest: +SKIP
>>> codes = sae.transform(acts)                                 # Activations (sample, unit=latent)
>>> sae.evaluate(acts).fvu                                      # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import ConfigError, DimensionError
from ..tensor import Activations
from ._base import Decomposition, check_int, resolve_device
from ._data import as_matrix, feature_names, is_store, minibatches, store_array, store_rows, unwrap_like, wrap_like
from .metrics import ReconstructionMetrics, reconstruction_metrics

__all__ = ["ReLUSAE", "TopKSAE", "BatchTopKSAE", "JumpReLUSAE", "SparseAutoencoder"]


def _n_rows(X: Any) -> int | None:
    if isinstance(X, Activations):
        return as_matrix(X).shape[0]
    if isinstance(X, (torch.Tensor, np.ndarray)):
        return int(X.shape[0])
    if is_store(X):
        return store_rows(X)
    return None


class SparseAutoencoder(Decomposition):
    """Base class of the SAEs (see the module docstring); subclasses define ``_activate``."""

    _tensor_attrs = ("W_enc_", "b_enc_", "components_", "b_dec_", "input_scale_")
    _meta_attrs = ("n_features_in_", "n_steps_", "n_samples_seen_", "feature_names_in_", "history_")

    def __init__(self, n_components: int = 1024, *, lr: float = 3e-4, batch_size: int = 4096, n_epochs: int = 1,
                 max_samples: int | None = None, max_seconds: float | None = None, warmup_steps: int | None = None,
                 decay_fraction: float = 0.0, normalize: bool = True, dead_after: int = 1_000_000,
                 random_state: int | None = 0, device: str | None = None, dtype: torch.dtype = torch.float32,
                 verbose: bool = True) -> None:
        self.n_components = n_components
        self.lr = lr
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.max_samples = max_samples
        self.max_seconds = max_seconds
        self.warmup_steps = warmup_steps
        self.decay_fraction = decay_fraction
        self.normalize = normalize
        self.dead_after = dead_after
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.verbose = verbose

    # ------------------------------------------------------------ subclass API
    def _check_params(self, n_features: int) -> None:
        check_int("n_components", self.n_components)
        check_int("batch_size", self.batch_size)
        check_int("n_epochs", self.n_epochs)
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr!r}")

    def _activate(self, pre: torch.Tensor, training: bool) -> torch.Tensor:
        raise NotImplementedError

    def _aux_loss(self, x: torch.Tensor, x_hat: torch.Tensor, pre: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(())

    def _sparsity_loss(self, pre: torch.Tensor, codes: torch.Tensor, progress: float) -> torch.Tensor:
        return pre.new_zeros(())

    def _extra_params(self) -> list[torch.Tensor]:
        return []

    def _after_step(self, x: torch.Tensor, x_hat: torch.Tensor, stats: dict) -> None:
        """Hook run after each optimiser step (dead-latent handling, threshold updates)."""

    # ------------------------------------------------------------------ state
    def _init_state(self, first: torch.Tensor) -> None:
        d = first.shape[1]
        self._check_params(d)
        m = self.n_components
        device = resolve_device(self.device)
        gen = torch.Generator().manual_seed(0 if self.random_state is None else int(self.random_state))
        scale = math.sqrt(d / float((first.double() ** 2).sum(1).mean())) if self.normalize else 1.0
        if not math.isfinite(scale) or scale <= 0:
            scale = 1.0
        W_dec = torch.randn(m, d, generator=gen, dtype=torch.float64)
        W_dec = (W_dec / W_dec.norm(dim=1, keepdim=True)).to(self.dtype)
        self.components_ = W_dec.clone().to(device).requires_grad_(True)
        self.W_enc_ = W_dec.T.detach().clone().to(device).requires_grad_(True)
        self.b_enc_ = torch.zeros(m, dtype=self.dtype, device=device, requires_grad=True)
        self.b_dec_ = (first.double().mean(0) * scale).to(self.dtype).to(device).requires_grad_(True)
        self.input_scale_ = torch.tensor(scale, dtype=self.dtype, device=device)
        self.n_features_in_ = d
        self.n_steps_ = 0
        self.n_samples_seen_ = 0
        self.history_ = []
        self._samples_since_fired = torch.zeros(m, dtype=torch.long, device=device)
        self._init_extra(first * scale)
        self._optimizer = torch.optim.Adam(self._parameters(), lr=self.lr)

    def _init_extra(self, x_scaled: torch.Tensor) -> None:
        """Subclass hook to create extra parameters (thresholds) from the first (scaled) batch."""

    def _parameters(self) -> list[torch.Tensor]:
        return [self.W_enc_, self.b_enc_, self.components_, self.b_dec_, *self._extra_params()]

    @property
    def dead_latents_(self) -> torch.Tensor:
        """Boolean mask of latents that have not fired in the last ``dead_after`` training samples."""
        return self._samples_since_fired >= self.dead_after

    # ------------------------------------------------------------- forward
    def _pre(self, x_scaled: torch.Tensor) -> torch.Tensor:
        return (x_scaled - self.b_dec_) @ self.W_enc_ + self.b_enc_

    def _forward(self, x: torch.Tensor, training: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        xs = x * self.input_scale_
        pre = self._pre(xs)
        codes = self._activate(pre, training)
        x_hat = codes @ self.components_ + self.b_dec_
        return xs, pre, codes, x_hat

    # ------------------------------------------------------------ training
    def _lr_at(self, step: int, total: int | None) -> float:
        warm = self.warmup_steps
        if warm is None:
            warm = min(1000, max(1, (total or 20_000) // 20))
        factor = min(1.0, (step + 1) / max(warm, 1))
        if total and self.decay_fraction > 0:
            start = int(total * (1 - self.decay_fraction))
            if step >= start:
                factor *= max(0.0, (total - step) / max(total - start, 1))
        return self.lr * factor

    def _train_forward(self, x: torch.Tensor, progress: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """Training forward pass: ``(scaled x, x_hat, sparsity + auxiliary loss, stats)``.

        ``stats`` holds ``fired`` (bool per latent), ``l0`` (mean active latents per row) and
        ``min_active`` (smallest positive code). Dense here; TopK-style SAEs override it with a
        sparse pass whose backward costs O(batch x k x n_features) instead of O(batch x latents x n_features).
        """
        xs, pre, codes, x_hat = self._forward(x, training=True)
        extra = self._sparsity_loss(pre, codes, progress) + self._aux_loss(xs, x_hat, pre, codes)
        active = codes.detach() != 0
        positive = codes.detach()[codes.detach() > 0]
        stats = {"fired": active.any(0), "l0": float(active.sum(1).float().mean()),
                 "min_active": positive.min() if positive.numel() else None}
        return xs, x_hat, extra, stats

    def _train_step(self, x: torch.Tensor, total_steps: int | None) -> tuple[float, float]:
        for group in self._optimizer.param_groups:
            group["lr"] = self._lr_at(self.n_steps_, total_steps)
        progress = self.n_steps_ / total_steps if total_steps else 1.0
        xs, x_hat, extra, stats = self._train_forward(x, progress)
        mse = ((x_hat - xs) ** 2).sum(1).mean()
        loss = mse + extra
        self._optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            W, g = self.components_, self.components_.grad
            if g is not None:  # keep the update tangent to the unit sphere of each decoder row
                g -= (g * W).sum(1, keepdim=True) * W
        self._optimizer.step()
        with torch.no_grad():
            self.components_ /= self.components_.norm(dim=1, keepdim=True).clamp_min(1e-12)
            self._samples_since_fired += x.shape[0]
            self._samples_since_fired[stats["fired"]] = 0
            self.n_steps_ += 1
            self.n_samples_seen_ += x.shape[0]
            self._after_step(xs, x_hat.detach(), stats)
            total_var = float(((xs - xs.mean(0)) ** 2).sum(1).mean())
            fvu = float(mse) / total_var if total_var > 0 else float("nan")
        return stats["l0"], fvu

    def fit(self, X: Any, y: Any = None, *, site: str | None = None) -> SparseAutoencoder:
        """Train on ``X``: Activations, tensor/array, an ActivationStore, or an iterable of minibatches.

        A store with several arrays needs ``site`` (or pass ``(store, name)``). Trains for ``n_epochs``
        passes, stopping early after ``max_samples`` rows or ``max_seconds``.
        """
        if site is not None or is_store(X):
            X = store_array(X, site)
        check_int("batch_size", self.batch_size)
        check_int("n_epochs", self.n_epochs)
        device = resolve_device(self.device)
        n_rows = _n_rows(X)
        total_rows = n_rows * self.n_epochs if n_rows is not None else None
        if self.max_samples is not None:
            total_rows = min(total_rows, self.max_samples) if total_rows else self.max_samples
        total_steps = math.ceil(total_rows / self.batch_size) if total_rows else None
        names = feature_names(X)
        if isinstance(X, Activations):
            X = as_matrix(X).to(device)  # validate and flatten once
        started = time.perf_counter()
        bar = tqdm(total=total_rows, desc=type(self).__name__, unit="row", unit_scale=True, disable=not self.verbose,
                   leave=False)
        ema_l0 = ema_fvu = None
        self.__dict__.pop("components_", None)
        self.__dict__.pop("_optimizer", None)
        for x in minibatches(X, self.batch_size, self.n_epochs, seed=self.random_state or 0, device=device):
            x = x.to(self.dtype)
            if not hasattr(self, "components_"):
                self._init_state(x)
            elif x.shape[1] != self.n_features_in_:
                raise DimensionError(f"minibatch has {x.shape[1]} features, expected {self.n_features_in_}")
            l0, fvu = self._train_step(x, total_steps)
            ema_l0 = l0 if ema_l0 is None else 0.95 * ema_l0 + 0.05 * l0
            ema_fvu = fvu if ema_fvu is None else 0.95 * ema_fvu + 0.05 * fvu
            bar.update(x.shape[0])
            if self.n_steps_ % 10 == 0:
                bar.set_postfix(L0=f"{ema_l0:.1f}", FVU=f"{ema_fvu:.3f}", dead=int(self.dead_latents_.sum()))
                self.history_.append({"step": self.n_steps_, "samples": self.n_samples_seen_, "l0": ema_l0,
                                      "fvu": ema_fvu})
            if self.max_samples is not None and self.n_samples_seen_ >= self.max_samples:
                break
            if self.max_seconds is not None and time.perf_counter() - started > self.max_seconds:
                break
        bar.close()
        if not hasattr(self, "components_"):
            raise DimensionError("no training rows: the input yielded no minibatches")
        self.fit_seconds_ = time.perf_counter() - started
        self.feature_names_in_ = names
        self._finish()
        return self

    def partial_fit(self, X: Any, y: Any = None) -> SparseAutoencoder:
        """One optimiser step per minibatch of ``X`` (initialises on the first call)."""
        device = resolve_device(self.device)
        for x in minibatches(X, self.batch_size, 1, seed=self.random_state or 0, device=device):
            x = x.to(self.dtype)
            if not hasattr(self, "_optimizer"):
                self._init_state(x)
            self._train_step(x, None)
        return self

    def _finish(self) -> None:
        for name in self._tensor_attrs + tuple(getattr(self, "_extra_tensor_attrs", ())):
            t = getattr(self, name, None)
            if isinstance(t, torch.Tensor):
                t.requires_grad_(False)

    def _after_load(self) -> None:
        self._samples_since_fired = torch.zeros(self.components_.shape[0], dtype=torch.long)

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """``fit(X).transform(X)``."""
        return self.fit(X).transform(X)

    # --------------------------------------------------------- inference
    def _check_input(self, X: Any) -> torch.Tensor:
        self._check_fitted()
        x = as_matrix(X, dtype=self.components_.dtype, device=self.components_.device)
        if x.shape[1] != self.n_features_in_:
            raise DimensionError(f"X has {x.shape[1]} features; this {type(self).__name__} was trained on "
                                 f"{self.n_features_in_}")
        return x

    @torch.no_grad()
    def transform(self, X: Any) -> Any:
        """Sparse codes ``(n_samples, n_components)`` (an Activations with dims (sample, unit) for Activations input)."""
        x = self._check_input(X)
        codes = self._activate(self._pre(x * self.input_scale_), training=False)
        return wrap_like(X, codes, "latent_")

    @torch.no_grad()
    def inverse_transform(self, codes: Any) -> Any:
        """Reconstruction in input units from codes."""
        self._check_fitted()
        c = as_matrix(codes, dtype=self.components_.dtype, device=self.components_.device, what="codes")
        if c.shape[1] != self.components_.shape[0]:
            raise DimensionError(f"codes have {c.shape[1]} columns; this SAE has {self.components_.shape[0]} latents")
        out = (c @ self.components_ + self.b_dec_) / self.input_scale_
        return unwrap_like(codes, out, getattr(self, "feature_names_in_", None))

    def reconstruct(self, X: Any) -> Any:
        """``inverse_transform(transform(X))``."""
        return self.inverse_transform(self.transform(X))

    def evaluate(self, X: Any, batch_size: int = 4096, dense_threshold: float = 0.1) -> ReconstructionMetrics:
        """L0, FVU, MSE, cosine, dead and dense latent fractions on ``X``."""
        return reconstruction_metrics(self, X, batch_size=batch_size, dense_threshold=dense_threshold)

    def score(self, X: Any, y: Any = None) -> float:
        """Explained variance ``1 - FVU`` (higher is better, scikit-learn convention)."""
        return self.evaluate(X).explained_variance

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_optimizer", None)
        return state


# ======================================================================= variants


class ReLUSAE(SparseAutoencoder):
    """ReLU SAE with an L1 penalty ``l1_coefficient * sum(codes)`` (decoder rows have unit norm).

    The penalty is warmed up linearly over the first ``l1_warmup_fraction`` of training; every
    ``resample_every`` steps (until ``resample_until`` of training) latents that have not fired for
    ``dead_after`` samples are re-initialised towards inputs that are badly reconstructed (Bricken et
    al. 2023), and their Adam state is reset.
    """

    def __init__(self, n_components: int = 1024, *, l1_coefficient: float = 5.0, l1_warmup_fraction: float = 0.05,
                 resample_every: int = 2500, resample_until: float = 0.5, lr: float = 3e-4, batch_size: int = 4096,
                 n_epochs: int = 1, max_samples: int | None = None, max_seconds: float | None = None,
                 warmup_steps: int | None = None, decay_fraction: float = 0.0, normalize: bool = True,
                 dead_after: int = 1_000_000, random_state: int | None = 0, device: str | None = None,
                 dtype: torch.dtype = torch.float32, verbose: bool = True) -> None:
        super().__init__(n_components, lr=lr, batch_size=batch_size, n_epochs=n_epochs, max_samples=max_samples,
                         max_seconds=max_seconds, warmup_steps=warmup_steps, decay_fraction=decay_fraction,
                         normalize=normalize, dead_after=dead_after, random_state=random_state, device=device,
                         dtype=dtype, verbose=verbose)
        self.l1_coefficient = l1_coefficient
        self.l1_warmup_fraction = l1_warmup_fraction
        self.resample_every = resample_every
        self.resample_until = resample_until

    def _activate(self, pre: torch.Tensor, training: bool) -> torch.Tensor:
        return torch.relu(pre)

    def _sparsity_loss(self, pre: torch.Tensor, codes: torch.Tensor, progress: float) -> torch.Tensor:
        warm = min(1.0, progress / self.l1_warmup_fraction) if self.l1_warmup_fraction > 0 else 1.0
        return self.l1_coefficient * warm * codes.sum(1).mean()

    def _after_step(self, x, x_hat, stats) -> None:
        self._last_batch = (x, x_hat)
        if self.resample_every and self.n_steps_ % self.resample_every == 0:
            total = getattr(self, "_total_steps", None)
            if total is None or self.n_steps_ <= self.resample_until * total:
                self.resample_dead()

    def _train_step(self, x, total_steps):
        self._total_steps = total_steps
        return super()._train_step(x, total_steps)

    @torch.no_grad()
    def resample_dead(self) -> int:
        """Re-initialise dead latents from badly reconstructed inputs; returns how many were resampled."""
        dead = torch.nonzero(self.dead_latents_).flatten()
        if dead.numel() == 0 or not hasattr(self, "_last_batch"):
            return 0
        x, x_hat = self._last_batch
        loss = ((x - x_hat) ** 2).sum(1)
        gen = torch.Generator().manual_seed(int(self.n_steps_))
        pick = torch.multinomial((loss**2).cpu().double() + 1e-12, dead.numel(), replacement=True, generator=gen)
        direction = x[pick.to(x.device)] - self.b_dec_
        direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
        alive = ~self.dead_latents_
        enc_norm = self.W_enc_[:, alive].norm(dim=0).mean() if alive.any() else torch.tensor(1.0)
        self.components_[dead] = direction
        self.W_enc_[:, dead] = direction.T * enc_norm * 0.2
        self.b_enc_[dead] = 0
        for param, index in ((self.components_, (dead,)), (self.W_enc_, (slice(None), dead)), (self.b_enc_, (dead,))):
            state = self._optimizer.state.get(param, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key][index] = 0
        self._samples_since_fired[dead] = 0
        return int(dead.numel())


class _GatherEncode(torch.autograd.Function):
    """Selected pre-activations ``pre[rows, lats]`` of ``(xs - b_dec) @ W_enc + b_enc`` with a sparse backward.

    The forward takes the values already computed (without grad) by the dense selection pass; the
    backward gives ``W_enc``, ``b_enc`` and ``b_dec`` their exact gradients in O(pairs x n_features).
    """

    @staticmethod
    def forward(ctx, values, W_enc, b_enc, b_dec, xc, rows, lats):
        ctx.save_for_backward(W_enc, xc, rows, lats)
        return values.clone()

    @staticmethod
    def backward(ctx, grad):
        W_enc, xc, rows, lats = ctx.saved_tensors
        m = W_enc.shape[1]
        G = torch.sparse_coo_tensor(torch.stack([lats, rows]), grad, (m, xc.shape[0]), check_invariants=False)
        grad_W_enc = torch.sparse.mm(G, xc).T
        grad_b_enc = torch.zeros(m, dtype=grad.dtype, device=grad.device).index_add_(0, lats, grad)
        grad_b_dec = -(W_enc @ grad_b_enc)
        return None, grad_W_enc, grad_b_enc, grad_b_dec, None, None, None


def _decode_pairs(W_dec: torch.Tensor, rows: torch.Tensor, lats: torch.Tensor, values: torch.Tensor,
                  n_rows: int) -> torch.Tensor:
    """``sum_p values[p] * W_dec[lats[p]]`` into row ``rows[p]`` (pairs sorted by row)."""
    counts = torch.bincount(rows, minlength=n_rows)
    offsets = torch.cumsum(counts, 0) - counts
    return torch.nn.functional.embedding_bag(lats, W_dec, offsets, mode="sum", per_sample_weights=values)


class _AuxKMixin:
    """AuxK loss (Gao et al. 2024): the top ``k_aux`` dead latents reconstruct the residual."""

    def _aux_loss(self, x, x_hat, pre, codes):
        dead = self.dead_latents_
        n_dead = int(dead.sum())
        if n_dead == 0 or self.aux_coefficient == 0:
            return x.new_zeros(())
        k_aux = self.aux_k if self.aux_k is not None else x.shape[1] // 2
        scale = min(n_dead / k_aux, 1.0)
        k_aux = min(k_aux, n_dead)
        masked = torch.where(dead, pre, torch.full_like(pre, -torch.inf))
        vals, idx = masked.topk(k_aux, dim=1)
        aux_codes = torch.zeros_like(pre).scatter(1, idx, torch.relu(vals))
        residual = (x - x_hat).detach()
        recon = aux_codes @ self.components_
        return self.aux_coefficient * scale * ((recon - residual) ** 2).sum(1).mean()


class TopKSAE(_AuxKMixin, SparseAutoencoder):
    """TopK SAE: keep the ``k`` largest (positive) pre-activations of each row (Gao et al. 2024)."""

    def __init__(self, n_components: int = 1024, *, k: int = 32, aux_k: int | None = None,
                 aux_coefficient: float = 1 / 32, lr: float = 3e-4, batch_size: int = 4096, n_epochs: int = 1,
                 max_samples: int | None = None, max_seconds: float | None = None, warmup_steps: int | None = None,
                 decay_fraction: float = 0.0, normalize: bool = True, dead_after: int = 1_000_000,
                 random_state: int | None = 0, device: str | None = None, dtype: torch.dtype = torch.float32,
                 verbose: bool = True) -> None:
        super().__init__(n_components, lr=lr, batch_size=batch_size, n_epochs=n_epochs, max_samples=max_samples,
                         max_seconds=max_seconds, warmup_steps=warmup_steps, decay_fraction=decay_fraction,
                         normalize=normalize, dead_after=dead_after, random_state=random_state, device=device,
                         dtype=dtype, verbose=verbose)
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

    def _select(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rows, latents, values) of the active pairs, sorted by row."""
        vals, idx = pre.topk(self.k, dim=1)
        rows = torch.arange(pre.shape[0], device=pre.device).repeat_interleave(self.k)
        return rows, idx.reshape(-1), vals.reshape(-1)

    def _train_forward(self, x, progress):
        xs = x * self.input_scale_
        xc = (xs - self.b_dec_).detach()
        with torch.no_grad():
            pre = xc @ self.W_enc_ + self.b_enc_
        rows, lats, values = self._select(pre)
        codes = torch.relu(_GatherEncode.apply(values, self.W_enc_, self.b_enc_, self.b_dec_, xc, rows, lats))
        x_hat = _decode_pairs(self.components_, rows, lats, codes, x.shape[0]) + self.b_dec_
        aux = self._sparse_aux_loss(xs, x_hat, pre, xc)
        active = codes.detach() > 0
        fired = torch.zeros(pre.shape[1], dtype=torch.bool, device=pre.device)
        fired[lats[active]] = True
        stats = {"fired": fired, "l0": float(active.sum()) / x.shape[0],
                 "min_active": codes.detach()[active].min() if bool(active.any()) else None}
        return xs, x_hat, aux, stats

    def _sparse_aux_loss(self, xs, x_hat, pre, xc):
        dead = self.dead_latents_
        n_dead = int(dead.sum())
        if n_dead == 0 or self.aux_coefficient == 0:
            return xs.new_zeros(())
        k_aux = self.aux_k if self.aux_k is not None else xs.shape[1] // 2
        scale = min(n_dead / k_aux, 1.0)
        k_aux = min(k_aux, n_dead)
        masked = torch.where(dead, pre, torch.full_like(pre, -torch.inf))
        vals, idx = masked.topk(k_aux, dim=1)
        rows = torch.arange(pre.shape[0], device=pre.device).repeat_interleave(k_aux)
        lats = idx.reshape(-1)
        codes = torch.relu(_GatherEncode.apply(vals.reshape(-1), self.W_enc_, self.b_enc_, self.b_dec_, xc, rows, lats))
        recon = _decode_pairs(self.components_, rows, lats, codes, xs.shape[0])
        residual = (xs - x_hat).detach()
        return self.aux_coefficient * scale * ((recon - residual) ** 2).sum(1).mean()


class BatchTopKSAE(TopKSAE):
    """BatchTopK SAE (Bussmann et al. 2024): the ``k * batch`` largest activations over a batch.

    At inference a single threshold (``threshold_``, a running mean of the smallest activation kept
    in training batches) replaces the batch-level top-k, so codes of a row do not depend on its batch.
    """

    _extra_tensor_attrs = ("threshold_",)
    _tensor_attrs = SparseAutoencoder._tensor_attrs + ("threshold_",)

    def _init_extra(self, x_scaled: torch.Tensor) -> None:
        self.threshold_ = torch.zeros((), dtype=self.dtype, device=x_scaled.device)
        self._threshold_updates = 0

    def _activate(self, pre: torch.Tensor, training: bool) -> torch.Tensor:
        acts = torch.relu(pre)
        if not training:
            return acts * (acts > self.threshold_)
        flat = acts.flatten()
        n_keep = min(self.k * pre.shape[0], flat.numel())
        vals, idx = flat.topk(n_keep)
        return torch.zeros_like(flat).scatter(0, idx, vals).reshape(pre.shape)

    def _select(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        flat = torch.relu(pre).flatten()
        n_keep = min(self.k * pre.shape[0], flat.numel())
        idx = flat.topk(n_keep).indices.sort().values  # sorted flat index = sorted by row
        m = pre.shape[1]
        return idx // m, idx % m, pre.flatten()[idx]

    def _after_step(self, x, x_hat, stats) -> None:
        smallest = stats["min_active"]
        if smallest is not None:
            self._threshold_updates = getattr(self, "_threshold_updates", 0) + 1
            rate = max(0.01, 1.0 / self._threshold_updates)
            self.threshold_ = (1 - rate) * self.threshold_ + rate * smallest


class _Step(torch.autograd.Function):
    """Heaviside step ``H(z - theta)`` with a rectangle-kernel pseudo-derivative for ``theta``."""

    @staticmethod
    def forward(ctx, z, theta, bandwidth):
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return (z > theta).to(z)

    @staticmethod
    def backward(ctx, grad):
        z, theta = ctx.saved_tensors
        bw = ctx.bandwidth
        kernel = ((z - theta).abs() < bw / 2).to(z) / bw
        return torch.zeros_like(z), (-kernel * grad).sum(0), None


class _JumpReLU(torch.autograd.Function):
    """``z * H(z - theta)``: gradient to ``z`` where active, pseudo-derivative to ``theta``."""

    @staticmethod
    def forward(ctx, z, theta, bandwidth):
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return z * (z > theta)

    @staticmethod
    def backward(ctx, grad):
        z, theta = ctx.saved_tensors
        bw = ctx.bandwidth
        kernel = ((z - theta).abs() < bw / 2).to(z) / bw
        return (z > theta).to(z) * grad, (-(theta * kernel) * grad).sum(0), None


class JumpReLUSAE(SparseAutoencoder):
    """JumpReLU SAE (Rajamanoharan et al. 2024): per-latent thresholds and an L0 penalty.

    ``codes = z * H(z - theta)`` with ``theta = exp(log_threshold_)``; loss = MSE +
    ``sparsity_coefficient * L0`` (warmed up linearly over ``sparsity_warmup_fraction``), with
    straight-through estimators of bandwidth ``bandwidth`` for the threshold gradients.
    """

    _extra_tensor_attrs = ("log_threshold_",)
    _tensor_attrs = SparseAutoencoder._tensor_attrs + ("log_threshold_",)

    def __init__(self, n_components: int = 1024, *, sparsity_coefficient: float = 1.0,
                 sparsity_warmup_fraction: float = 0.1, bandwidth: float = 0.5, initial_threshold: float = 1.0,
                 lr: float = 3e-4, batch_size: int = 4096, n_epochs: int = 1, max_samples: int | None = None,
                 max_seconds: float | None = None, warmup_steps: int | None = None, decay_fraction: float = 0.0,
                 normalize: bool = True, dead_after: int = 1_000_000, random_state: int | None = 0,
                 device: str | None = None, dtype: torch.dtype = torch.float32, verbose: bool = True) -> None:
        super().__init__(n_components, lr=lr, batch_size=batch_size, n_epochs=n_epochs, max_samples=max_samples,
                         max_seconds=max_seconds, warmup_steps=warmup_steps, decay_fraction=decay_fraction,
                         normalize=normalize, dead_after=dead_after, random_state=random_state, device=device,
                         dtype=dtype, verbose=verbose)
        self.sparsity_coefficient = sparsity_coefficient
        self.sparsity_warmup_fraction = sparsity_warmup_fraction
        self.bandwidth = bandwidth
        self.initial_threshold = initial_threshold

    def _check_params(self, n_features: int) -> None:
        super()._check_params(n_features)
        if not self.bandwidth > 0 or not self.initial_threshold > 0:
            raise ConfigError("bandwidth and initial_threshold must be > 0")

    def _init_extra(self, x_scaled: torch.Tensor) -> None:
        self.log_threshold_ = torch.full((self.n_components,), math.log(self.initial_threshold), dtype=self.dtype,
                                         device=x_scaled.device, requires_grad=True)

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
        return _JumpReLU.apply(z, theta, self.bandwidth)

    def _sparsity_loss(self, pre: torch.Tensor, codes: torch.Tensor, progress: float) -> torch.Tensor:
        warm = min(1.0, progress / self.sparsity_warmup_fraction) if self.sparsity_warmup_fraction > 0 else 1.0
        l0 = _Step.apply(torch.relu(pre), self.log_threshold_.exp(), self.bandwidth).sum(1).mean()
        return self.sparsity_coefficient * warm * l0
