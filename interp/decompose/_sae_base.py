"""The shared machinery of the sparse autoencoders in :mod:`interp.decompose.sae`: state, forward, inference.

The training loop (one process or several ranks, one SAE or several from one pass) is in
:mod:`interp.decompose._training`; the four kinds are in :mod:`interp.decompose.sae`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DimensionError
from ._base import Decomposition, check_int, resolve_device
from ._data import as_matrix, unwrap_like, wrap_like
from ._distributed import Parallel
from ._training import fit_saes, partial_fit_steps
from .metrics import ReconstructionMetrics, reconstruction_metrics

__all__ = ["SparseAutoencoder"]

_INIT_BLOCK = 4096  # decoder rows are drawn in blocks of this many, so that a rank can draw only its own latents


def decoder_init(n_components: int, n_features: int, seed: int, lo: int = 0, hi: int | None = None) -> torch.Tensor:
    """Rows ``[lo, hi)`` of the random unit-norm initial decoder (float64), the same whichever rank draws them.

    Block ``b`` of :data:`_INIT_BLOCK` rows comes from its own generator (seed ``seed`` for block 0, a
    ``numpy.random.SeedSequence([seed, b])`` draw after it), so a rank holding latents ``[lo, hi)`` draws only
    the blocks that overlap them.
    """
    hi = n_components if hi is None else hi
    parts = []
    for b in range(lo // _INIT_BLOCK, -(-hi // _INIT_BLOCK)):
        start = b * _INIT_BLOCK
        block_seed = seed if b == 0 else int(np.random.SeedSequence([seed, b]).generate_state(1)[0])
        gen = torch.Generator().manual_seed(block_seed)
        block = torch.randn(min(_INIT_BLOCK, n_components - start), n_features, generator=gen, dtype=torch.float64)
        parts.append(block[max(lo, start) - start:min(hi, start + _INIT_BLOCK) - start])
    W = torch.cat(parts) if parts else torch.zeros(0, n_features, dtype=torch.float64)
    return W / W.norm(dim=1, keepdim=True)


class SAEAdam(torch.optim.Adam):
    """Adam (Kingma & Ba 2015) on torch's fused one-pass kernel where it serves the tensors, else the default.

    Same update as ``torch.optim.Adam(params, lr=lr)`` to float rounding; the fused kernel reads and writes
    each parameter, gradient and moment once per step instead of once per element-wise op (about 3x less
    optimiser time on one CPU thread for a 3,072 x 576 SAE). The fused CPU kernel copies a non-contiguous
    parameter's gradient every step, so a column-major 2-D parameter (``W_enc_``, stored as the transpose
    of the decoder) is stepped through its contiguous transpose, a view of the same storage; its moments
    are then held transposed (:meth:`state_of` says so). :meth:`zero_grad` clears the parameters' own
    gradients too.

    Parameters
    ----------
    params : list of torch.Tensor
        The parameters to optimise.
    lr : float
        The learning rate (the training loop sets it per step).
    """

    def __init__(self, params: list[torch.Tensor], lr: float) -> None:
        self.owned = list(params)
        self.aliases: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        stepped = []
        for p in self.owned:
            if p.dim() == 2 and not p.is_contiguous() and p.T.is_contiguous():
                alias = p.detach().T  # a leaf view of the same storage, row-major
                self.aliases[id(p)] = (p, alias)
                stepped.append(alias)
            else:
                stepped.append(p)
        try:
            super().__init__(stepped, lr=lr, fused=True)
        except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
            super().__init__(stepped, lr=lr)

    def state_of(self, p: torch.Tensor) -> tuple[dict, bool]:
        """(Adam state of parameter ``p``, whether its tensors are transposed against ``p``).

        Parameters
        ----------
        p : torch.Tensor
            One of the optimised parameters.
        """
        pair = self.aliases.get(id(p))
        return (self.state.get(pair[1], {}), True) if pair is not None else (self.state.get(p, {}), False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.owned:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()
        super().zero_grad(set_to_none)

    def step(self, closure: Any = None) -> Any:
        for p, alias in self.aliases.values():
            g = p.grad
            alias.grad = None if g is None else (g.T if g.T.is_contiguous() else g.T.contiguous())
        return super().step(closure)


def make_adam(params: list[torch.Tensor], lr: float) -> SAEAdam:
    """The SAEs' Adam (:class:`SAEAdam`).

    Parameters
    ----------
    params : list of torch.Tensor
        The parameters to optimise.
    lr : float
        The learning rate.
    """
    return SAEAdam(params, lr)


class SparseAutoencoder(Decomposition):
    """Base class of the SAEs (see :mod:`interp.decompose.sae`); subclasses define ``_activate``."""

    _tensor_attrs = ("W_enc_", "b_enc_", "components_", "b_dec_", "input_scale_")
    _meta_attrs = ("n_features_in_", "n_steps_", "n_samples_seen_", "feature_names_in_", "history_", "distributed_")
    _latent_attrs = {"W_enc_": 1, "b_enc_": 0, "components_": 0, "_samples_since_fired": 0}  # the dim that indexes latents

    def __init__(self, n_components: int = 1024, *, lr: float = 3e-4, batch_size: int = 4096, n_epochs: int = 1,
                 max_samples: int | None = None, max_seconds: float | None = None, warmup_steps: int | None = None,
                 decay_fraction: float = 0.0, normalize: bool = True, dead_after: int = 1_000_000,
                 seed: int | None = 0, device: str | None = None, dtype: torch.dtype = torch.float32,
                 progress: bool = True) -> None:
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
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self.progress = progress

    # ------------------------------------------------------------ subclass API
    def _check_params(self, n_features: int) -> None:
        check_int("n_components", self.n_components)
        check_int("batch_size", self.batch_size)
        check_int("n_epochs", self.n_epochs)
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr!r}")

    def _activate(self, pre: torch.Tensor, training: bool) -> torch.Tensor:
        raise NotImplementedError

    def _sparsity_loss(self, pre: torch.Tensor, codes: torch.Tensor, fraction: float) -> torch.Tensor:
        """The sparsity penalty summed over the rows of this batch (the loop divides by the global batch)."""
        return pre.new_zeros(())

    def _extra_params(self) -> list[torch.Tensor]:
        return []

    def _init_extra(self, n_latents: int, device: torch.device) -> None:
        """Subclass hook to create extra state (thresholds) for this process's ``n_latents`` latents."""

    def _after_step(self, x: torch.Tensor, x_hat: torch.Tensor, stats: dict, par: Parallel) -> None:
        """Hook run after each optimiser step (dead-latent handling, threshold updates)."""

    # ------------------------------------------------------------------ state
    def _init_state(self, moments: tuple[float, torch.Tensor, float], par: Parallel = Parallel(),
                    device: torch.device | None = None) -> None:
        """Fresh parameters from the first global batch's ``(rows, sum of rows, sum of squared norms)``.

        ``input_scale_`` makes ``E||s*x||^2 = n_features``; ``b_dec_`` starts at the scaled mean; the decoder
        at random unit rows (:func:`decoder_init`) and ``W_enc_`` at its transpose. With latents sharded this
        process creates only its own latents.
        """
        n, total, sumsq = moments
        d = int(total.shape[0])
        self._check_params(d)
        lo, hi = par.latent_range(self.n_components)
        device = device if device is not None else resolve_device(self.device)
        scale = math.sqrt(d / (sumsq / n)) if self.normalize and sumsq > 0 else 1.0
        if not math.isfinite(scale) or scale <= 0:
            scale = 1.0
        seed = 0 if self.seed is None else int(self.seed)
        W_dec = decoder_init(self.n_components, d, seed, lo, hi).to(self.dtype)
        self.components_ = W_dec.clone().to(device).requires_grad_(True)
        self.W_enc_ = W_dec.T.detach().clone().to(device).requires_grad_(True)
        self.b_enc_ = torch.zeros(hi - lo, dtype=self.dtype, device=device, requires_grad=True)
        self.b_dec_ = (total.double().cpu() / n * scale).to(self.dtype).to(device).requires_grad_(True)
        self.input_scale_ = torch.tensor(scale, dtype=self.dtype, device=device)
        self.n_features_in_ = d
        self.n_steps_ = 0
        self.n_samples_seen_ = 0
        self.history_ = []
        self._samples_since_fired = torch.zeros(hi - lo, dtype=torch.long, device=device)
        self._init_extra(hi - lo, device)
        self._optimizer = make_adam(self._parameters(), self.lr)

    def _resume_training(self) -> None:
        """Make a fitted (loaded, or gathered after a sharded fit) SAE trainable again, with a fresh Adam."""
        for p in self._parameters():
            p.requires_grad_(True)
        self._optimizer = make_adam(self._parameters(), self.lr)

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

    def _train_forward(self, x: torch.Tensor, fraction: float, n: int,
                       par: Parallel) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """Training forward pass on this process's rows: ``(scaled x, x_hat, sparsity + auxiliary loss, stats)``.

        ``n`` is the number of rows of the global batch (losses are sums over rows divided by ``n``);
        ``stats`` holds ``fired`` (bool per latent held here) and ``active`` (count of non-zero codes).
        Dense here; TopK-style SAEs override it with a sparse pass whose backward costs
        O(batch x k x n_features) instead of O(batch x latents x n_features).
        """
        xs = x * self.input_scale_
        pre = self._pre(xs)
        codes = self._activate(pre, training=True)
        x_hat = par.decode(codes @ self.components_, self.b_dec_)
        extra = self._sparsity_loss(pre, codes, fraction) / n
        active = codes.detach() != 0
        return xs, x_hat, extra, {"fired": active.any(0), "active": active.sum()}

    # ------------------------------------------------------------ training
    def fit(self, X: Any, y: Any = None, *, site: str | None = None, distributed: bool | None = None,
            shard_latents: bool = False) -> SparseAutoencoder:
        """Train on ``X``: Activations, tensor/array, an ActivationStore, or an iterable of minibatches.

        A store with several arrays needs ``site`` (or pass ``(store, name)``). Trains for ``n_epochs``
        passes, stopping early after ``max_samples`` rows or ``max_seconds``.

        Under ``torchrun --nproc-per-node N`` (or an initialised ``torch.distributed`` process group of
        several ranks) the fit is distributed; ``distributed=False`` keeps it on this process. Every rank draws the
        same global minibatch order from ``seed`` and trains on its own slice of each global batch,
        and the result equals one process's fit on the same global batches, to float rounding.
        ``shard_latents=True`` splits the latents across ranks instead (for SAEs too wide for one device;
        ``n_components`` must be divisible by the number of ranks); the fitted SAE is gathered whole on
        every rank at the end. ``distributed_`` records the layout and the parameter + Adam bytes per rank
        against one process. See :func:`interp.decompose.train` to train several SAEs from one pass.

        >>> sae = TopKSAE(4096, k=32).fit(store, site="blocks.3.hook_resid_post")   # doctest: +SKIP
        """
        fit_saes([(self, site)], X, distributed=distributed, shard_latents=shard_latents)
        return self

    def partial_fit(self, X: Any, y: Any = None) -> SparseAutoencoder:
        """One optimiser step per minibatch of ``X`` on this process (initialises on the first call)."""
        partial_fit_steps(self, X)
        return self

    def _finish(self) -> None:
        for name in self._tensor_attrs + tuple(getattr(self, "_extra_tensor_attrs", ())):
            t = getattr(self, name, None)
            if isinstance(t, torch.Tensor):
                t.requires_grad_(False)

    def _after_load(self) -> None:
        self._samples_since_fired = torch.zeros(self.components_.shape[0], dtype=torch.long,
                                                device=self.components_.device)

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """``fit(X).transform(X)``."""
        return self.fit(X).transform(X)

    # --------------------------------------------------------- inference
    def _check_input(self, X: Any) -> torch.Tensor:
        self._check_fitted()
        x = as_matrix(X, dtype=self.components_.dtype, device=self.components_.device)
        if x.shape[1] != self.n_features_in_:
            raise DimensionError(f"X has {x.shape[1]} features, but {type(self).__name__} is expecting "
                                 f"{self.n_features_in_} features as input (the number it was trained on)")
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
