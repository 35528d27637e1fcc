"""Matrix factorisations: non-negative (:class:`NMF`) here, semi-nonnegative (:class:`SNMF`) in :mod:`.snmf`.

NMF uses hierarchical alternating least squares (Cichocki & Phan 2009; the same coordinate-descent
updates and stopping rule as scikit-learn's ``solver="cd"``) from an NNDSVD start (Boutsidis &
Gallopoulos 2008).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from interp._progress import tqdm

from ..errors import ConfigError, DimensionError
from ..tensor import Activations
from ._base import Decomposition, NegativeValueError, check_int, resolve_device, rng
from ._data import as_matrix, feature_names, is_store, store_array, unwrap_like, wrap_like
from .snmf import SNMF, _collect, _neg, _pos, snmf_step, winner_take_all

__all__ = ["SNMF", "NMF", "snmf_step", "winner_take_all"]


class NMF(Decomposition):
    """Non-negative matrix factorisation ``X ~ W H`` (``W, H >= 0``) for non-negative recordings.

    Hierarchical alternating least squares (the same updates as scikit-learn's coordinate-descent
    solver, ``solver="cd"``, with the Frobenius loss and no regularisation) from an NNDSVD(a) start
    (Boutsidis & Gallopoulos 2008). It stops as scikit-learn's solver does: after the first iteration
    whose projected-gradient violation (summed over every coordinate of ``W`` and ``H``) is at most
    ``tol`` times that of the first iteration; from the same start and ``tol`` it takes the same number
    of iterations (``n_iter_``) and reaches the same loss.

    ``components_`` is ``H`` ``(n_components, n_features)``; :meth:`transform` returns ``W``.

    Parameters
    ----------
    n_components : int, optional
        Number of components k (default 10); above ``min(n_samples, n_features)`` only with ``init="random"``.
    init : str, optional
        ``"nndsvda"`` (default: NNDSVD with zeros filled by the data mean), ``"nndsvd"`` or ``"random"``.
    max_iter : int, optional
        Most HALS iterations (default 500).
    tol : float, optional
        Stop when the projected-gradient violation falls to ``tol`` times the first iteration's (default 1e-4).
    max_samples : int, optional
        Use at most the first this many rows; None: all.
    seed : int or None, optional
        Seed of the ``"random"`` start (default 0; None also means 0).
    device : str, optional
        Torch device; None: CUDA when available, else CPU.
    dtype : torch.dtype, optional
        Dtype of the computation (default ``torch.float64``).
    progress : bool, optional
        Show a progress bar over iterations (default False).

    Example
    -------
    >>> nmf = NMF(n_components=8).fit(calcium)            # doctest: +SKIP
    >>> w = nmf.transform(calcium)   # (sample=time, unit=component)   # doctest: +SKIP
    """

    _tensor_attrs = ("components_",)
    _meta_attrs = ("n_features_in_", "n_iter_", "reconstruction_err_", "feature_names_in_")

    def __init__(self, n_components: int = 10, init: str = "nndsvda", max_iter: int = 500, tol: float = 1e-4,
                 max_samples: int | None = None, seed: int | None = 0, device: str | None = None,
                 dtype: torch.dtype = torch.float64, progress: bool = False) -> None:
        self.n_components = n_components
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.max_samples = max_samples
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self.progress = progress

    def __sklearn_tags__(self) -> Any:
        """scikit-learn tags: non-negative input only."""
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        return tags

    def _check_nonnegative(self, data: torch.Tensor, what: str = "X") -> None:
        low = float(data.min())
        if low < 0:
            raise NegativeValueError(
                f"Negative values in data passed to NMF: it needs non-negative data but {what} has "
                f"{int((data < 0).sum())} negative values (min {low:.4g}); "
                "shift or rescale it (e.g. subtract each unit's minimum), or use SNMF for mixed-sign data"
            )

    def _initial(self, X: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        n, d = X.shape
        gen = rng(self.seed)
        if self.init == "random":
            avg = math.sqrt(float(X.mean()) / k)
            W = avg * torch.randn(n, k, generator=gen).to(X).abs()
            H = avg * torch.randn(k, d, generator=gen).to(X).abs()
            return W, H
        U, S, Vh = torch.linalg.svd(X, full_matrices=False)
        W = torch.zeros(n, k, dtype=X.dtype, device=X.device)
        H = torch.zeros(k, d, dtype=X.dtype, device=X.device)
        W[:, 0] = S[0].sqrt() * U[:, 0].abs()
        H[0] = S[0].sqrt() * Vh[0].abs()
        for j in range(1, k):
            x, y = U[:, j], Vh[j]
            xp, yp, xn, yn = _pos(x), _pos(y), _neg(x), _neg(y)
            mp = xp.norm() * yp.norm()
            mn = xn.norm() * yn.norm()
            if mp > mn:
                u, v, sigma = xp / xp.norm(), yp / yp.norm(), mp
            else:
                u, v, sigma = xn / xn.norm(), yn / yn.norm(), mn
            lam = (S[j] * sigma).sqrt()
            W[:, j], H[j] = lam * u, lam * v
        W[W < 1e-6] = 0
        H[H < 1e-6] = 0
        if self.init == "nndsvda":
            avg = X.mean()
            W[W == 0] = avg
            H[H == 0] = avg
        return W, H

    @staticmethod
    def _hals(W: torch.Tensor, XHt: torch.Tensor, HHt: torch.Tensor) -> tuple[torch.Tensor, float]:
        """One sweep of HALS on ``W`` for ``min ||X - W H||`` (given ``X H'`` and ``H H'``), in place.

        Also returns the sweep's projected-gradient violation, summed as scikit-learn's
        ``_update_cdnmf_fast`` does (the gradient of each coordinate just before its update; at a zero
        coordinate only its negative part counts).
        """
        violation = 0.0
        for j in range(W.shape[1]):
            grad = W @ HHt[:, j] - XHt[:, j]
            violation += float(torch.where(W[:, j] == 0, grad.clamp_max(0), grad).abs().sum())
            denom = HHt[j, j]
            if denom != 0:
                W[:, j] = (W[:, j] - grad / denom).clamp_min(0)
        return W, violation

    def fit(self, X: Any, y: Any = None, *, site: str | None = None) -> NMF:
        """Factorise non-negative ``X`` (anything :meth:`SNMF.fit` accepts).

        Parameters
        ----------
        X : Activations, torch.Tensor, numpy.ndarray, store or iterable
            Non-negative data ``(n_samples, n_features)``; a store or iterable of batches is read into memory.
        y : None
            Ignored (scikit-learn convention).
        site : str, optional
            The site (array) to read when ``X`` is an activation store.
        """
        self.fit_transform(X, site=site)
        return self

    def fit_transform(self, X: Any, y: Any = None, *, site: str | None = None) -> Any:
        """Fit and return ``W`` (the per-sample coefficients).

        Parameters
        ----------
        X : Activations, torch.Tensor, numpy.ndarray, store or iterable
            Non-negative data ``(n_samples, n_features)``.
        y : None
            Ignored (scikit-learn convention).
        site : str, optional
            The site (array) to read when ``X`` is an activation store.
        """
        if site is not None or is_store(X):
            X = store_array(X, site)
        device = resolve_device(self.device)
        data = _collect(X, self.max_samples, device, self.dtype)
        self._check_nonnegative(data)
        n, d = data.shape
        k = check_int("n_components", self.n_components)
        if self.init not in ("nndsvd", "nndsvda", "random"):
            raise ConfigError(f"init must be 'nndsvd', 'nndsvda' or 'random', got {self.init!r}")
        if k > min(n, d) and self.init != "random":
            raise ConfigError(f"n_components={k} exceeds min(n_samples, n_features)={min(n, d)}; use init='random'")
        W, H = self._initial(data, k)
        sq_norm = float((data * data).sum())

        def error() -> float:
            return max(sq_norm - 2 * float(((data @ H.T) * W).sum()) + float(((W.T @ W) * (H @ H.T)).sum()), 0.0)

        first = None
        it = 0
        for it in tqdm(range(self.max_iter), desc="NMF", disable=not self.progress, leave=False):  # noqa: B007
            W, violation = self._hals(W, data @ H.T, H @ H.T)
            Ht, violation_h = self._hals(H.T.contiguous(), data.T @ W, W.T @ W)
            H = Ht.T.contiguous()
            violation += violation_h
            first = violation if first is None else first
            if first == 0 or violation / first <= self.tol:  # scikit-learn's _fit_coordinate_descent rule
                break
        self.components_ = H
        self.n_features_in_ = d
        self.feature_names_in_ = feature_names(X)
        self.n_iter_ = it + 1
        self.reconstruction_err_ = math.sqrt(error())
        return wrap_like(X, W, "nmf_") if isinstance(X, Activations) else W

    def transform(self, X: Any, n_iter: int = 200) -> Any:
        """Non-negative coefficients ``W`` of new rows with ``H`` fixed.

        Parameters
        ----------
        X : Activations, torch.Tensor or numpy.ndarray
            Non-negative rows with the fitted number of features.
        n_iter : int, optional
            HALS sweeps on ``W`` after the clipped least-squares start (default 200).
        """
        self._check_fitted()
        data = as_matrix(X, dtype=self.components_.dtype, device=self.components_.device)
        if data.shape[1] != self.n_features_in_:
            raise DimensionError(f"X has {data.shape[1]} features, but NMF is expecting {self.n_features_in_} features "
                                 "as input (the number it was fitted on)")
        self._check_nonnegative(data)
        H = self.components_
        XHt, HHt = data @ H.T, H @ H.T
        W = torch.linalg.lstsq(HHt, XHt.T).solution.T.clamp_min(0)
        for _ in range(n_iter):
            W, _ = self._hals(W, XHt, HHt)
        return wrap_like(X, W, "nmf_")

    def inverse_transform(self, codes: Any) -> Any:
        """Reconstruction ``W H``.

        Parameters
        ----------
        codes : Activations, torch.Tensor or numpy.ndarray
            Coefficients ``W`` ``(n_samples, n_components)``.
        """
        self._check_fitted()
        W = as_matrix(codes, dtype=self.components_.dtype, device=self.components_.device, what="codes")
        return unwrap_like(codes, W @ self.components_, getattr(self, "feature_names_in_", None))
