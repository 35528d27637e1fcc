"""Matrix factorisations: semi-nonnegative (:class:`SNMF`) and non-negative (:class:`NMF`).

SNMF follows Shafran, Geiger & Geva, "Decomposing MLP Activations into Interpretable Features via
Semi-Nonnegative Matrix Factorization" (arXiv 2506.10920; code ``ordavid-s/snmf-mlp-decomposition``),
which builds on Ding, Li & Jordan, "Convex and Semi-Nonnegative Matrix Factorizations" (TPAMI 2010).
NMF uses hierarchical alternating least squares (Cichocki & Phan 2009; the same coordinate-descent
updates as scikit-learn's ``solver="cd"``) from an NNDSVD start (Boutsidis & Gallopoulos 2008).

Orientation: data are ``X`` of shape ``(n_samples, n_features)`` (rows = tokens/time points). The
paper's ``A`` (features x samples) is ``X.T``; its ``F`` (features x k, mixed sign) is
``components_.T`` and its ``G`` (samples x k, non-negative) is what :meth:`SNMF.transform` returns.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import ConfigError, DimensionError
from ..tensor import Activations
from ._base import Decomposition, NegativeValueError, check_int, resolve_device, rng
from ._data import as_matrix, feature_names, is_store, minibatches, store_array, unwrap_like, wrap_like

__all__ = ["SNMF", "NMF"]

_EPS = 1e-6


def _collect(X: Any, max_samples: int | None, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """All rows of ``X`` in memory (a store or iterable is concatenated up to ``max_samples`` rows)."""
    if isinstance(X, (torch.Tensor, np.ndarray, Activations)):
        data = as_matrix(X, dtype=dtype, device=device)
    else:
        parts, n = [], 0
        for batch in minibatches(X, batch_size=8192, n_epochs=1):
            parts.append(batch)
            n += batch.shape[0]
            if max_samples is not None and n >= max_samples:
                break
        if not parts:
            raise DimensionError("the store/iterable yielded no minibatches")
        data = torch.cat(parts).to(device=device, dtype=dtype)
    if max_samples is not None:
        data = data[:max_samples]
    return data


def _pos(x: torch.Tensor) -> torch.Tensor:
    return (x.abs() + x) / 2


def _neg(x: torch.Tensor) -> torch.Tensor:
    return (x.abs() - x) / 2


def winner_take_all(F: torch.Tensor, keep: int) -> torch.Tensor:
    """Keep the ``keep`` entries of largest magnitude in each column of ``F``; zero the rest."""
    if keep >= F.shape[0]:
        return F
    idx = F.abs().topk(keep, dim=0).indices
    return torch.zeros_like(F).scatter(0, idx, F.gather(0, idx))


def _kmeans(points: torch.Tensor, k: int, gen: torch.Generator, n_iter: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain Lloyd k-means with k-means++ seeding on the rows of ``points``; returns (centroids, labels)."""
    n = points.shape[0]
    first = int(torch.randint(n, (1,), generator=gen))
    centroids = [points[first]]
    dist = ((points - centroids[0]) ** 2).sum(1)
    for _ in range(1, k):
        prob = dist.cpu().double() / max(float(dist.sum()), 1e-30) if float(dist.sum()) > 0 else torch.full((n,), 1 / n, dtype=torch.float64)
        nxt = int(torch.multinomial(prob, 1, generator=gen))
        centroids.append(points[nxt])
        dist = torch.minimum(dist, ((points - points[nxt]) ** 2).sum(1))
    C = torch.stack(centroids)
    labels = torch.zeros(n, dtype=torch.long, device=points.device)
    for _ in range(n_iter):
        labels = torch.cdist(points, C).argmin(1)
        newC = torch.zeros_like(C).index_add_(0, labels, points)
        counts = torch.bincount(labels, minlength=k).clamp_min(1).unsqueeze(1).to(points.dtype)
        newC = newC / counts
        empty = torch.bincount(labels, minlength=k) == 0
        newC[empty] = C[empty]
        if torch.allclose(newC, C):
            break
        C = newC
    return C, labels


class SNMF(Decomposition):
    """Semi-nonnegative matrix factorisation ``X.T ~ F G.T`` with ``G >= 0`` and sparse ``F``.

    Each iteration (Shafran et al. 2025, ``factorization/seminmf.py``): (1) closed-form
    ``F = A G (G'G + reg I)^-1``; (2) winner-take-all: keep the ``ceil(sparsity * n_features)``
    largest-magnitude entries of each column of ``F``; (3) rescale each column of ``G`` to unit norm,
    compensating in ``F``; (4) Ding et al.'s multiplicative update
    ``G <- G * sqrt(([A'F]+ + G[F'F]-) / ([A'F]- + G[F'F]+ + eps))``; (5) track ``||A - F G'||_F^2``,
    keep the best pair, stop after ``patience`` iterations without a relative improvement ``> tol``.

    Parameters
    ----------
    n_components: number of features k (the paper's scripts use 50).
    sparsity: fraction of each feature's neuron weights kept (paper: 0.01); ``None`` or 1 disables it.
    init: ``"svd"``, ``"kmeans"`` or ``"random"``.
    max_iter, patience, tol: iteration budget and early stopping.
    max_samples: when fitting on a store/iterable, how many rows to load (SNMF is a batch method).

    Attributes
    ----------
    components_: ``(n_components, n_features)`` feature directions (the paper's ``F`` transposed).
    reconstruction_err_: Frobenius norm ``||X - G F'||`` of the best iterate; ``loss_curve_``: squared errors.

    Example
    -------
    >>> snmf = SNMF(n_components=50, sparsity=0.01).fit(mlp_acts)   # doctest: +SKIP
    >>> codes = snmf.transform(mlp_acts)                             # (sample, unit=component) >= 0
    """

    _tensor_attrs = ("components_",)
    _meta_attrs = ("n_features_in_", "n_iter_", "reconstruction_err_", "loss_curve_", "feature_names_in_")

    def __init__(self, n_components: int = 50, sparsity: float | None = 0.01, init: str = "svd",
                 max_iter: int = 1000, patience: int = 100, tol: float = 1e-6, reg: float = 1e-6,
                 max_samples: int | None = None, random_state: int | None = 0, device: str | None = None,
                 dtype: torch.dtype = torch.float32, verbose: bool = False) -> None:
        self.n_components = n_components
        self.sparsity = sparsity
        self.init = init
        self.max_iter = max_iter
        self.patience = patience
        self.tol = tol
        self.reg = reg
        self.max_samples = max_samples
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.verbose = verbose

    # ---------------------------------------------------------------- checks
    def _validate(self, n_samples: int, n_features: int) -> int:
        k = check_int("n_components", self.n_components)
        check_int("max_iter", self.max_iter)
        check_int("patience", self.patience)
        if k > min(n_samples, n_features) and self.init == "svd":
            raise ConfigError(f"n_components={k} exceeds min(n_samples, n_features)={min(n_samples, n_features)}; "
                              "use fewer components or init='random'/'kmeans'")
        if k > n_samples:
            raise ConfigError(f"n_components={k} exceeds the number of samples {n_samples}")
        if self.init not in ("svd", "kmeans", "random"):
            raise ConfigError(f"init must be 'svd', 'kmeans' or 'random', got {self.init!r}")
        if self.sparsity is not None and not 0 < float(self.sparsity) <= 1:
            raise ConfigError(f"sparsity is the fraction of weights kept per feature, in (0, 1]; got {self.sparsity!r}")
        return k

    def _keep(self, n_features: int) -> int:
        if self.sparsity is None:
            return n_features
        return max(1, math.ceil(float(self.sparsity) * n_features))

    # ------------------------------------------------------------------ init
    def _initial(self, A: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = rng(self.random_state)
        d, n = A.shape
        if self.init == "random":
            G = torch.rand(n, k, generator=gen).to(A)
            F = torch.randn(d, k, generator=gen).to(A)
            return F, G
        if self.init == "svd":
            U, S, Vh = torch.linalg.svd(A, full_matrices=False)
            U, S, V = U[:, :k], S[:k], Vh[:k].T
            # fix the sign of each singular pair so that the non-negative coefficients keep most mass
            flip = (_neg(V).norm(dim=0) > _pos(V).norm(dim=0)).to(A.dtype) * -2 + 1
            U, V = U * flip, V * flip
            F = U * S.sqrt()
            G = (V * S.sqrt()).clamp_min(0)
            G = G + 0.01 * G.mean().clamp_min(_EPS)  # multiplicative updates cannot revive exact zeros
            return F, G
        C, labels = _kmeans(A.T.contiguous(), k, gen)
        G = torch.nn.functional.one_hot(labels, k).to(A) + 0.2  # Ding et al. 2010
        return C.T.contiguous(), G

    # ------------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any = None, *, site: str | None = None) -> SNMF:
        """Factorise ``X`` (Activations, tensor, array, store or iterable of minibatches)."""
        self.fit_transform(X, site=site)
        return self

    def fit_transform(self, X: Any, y: Any = None, *, site: str | None = None) -> Any:
        """Fit and return the non-negative coefficients ``G`` of the training rows (best iterate)."""
        if site is not None or is_store(X):
            X = store_array(X, site)
        device = resolve_device(self.device)
        data = _collect(X, self.max_samples, device, self.dtype)
        n, d = data.shape
        k = self._validate(n, d)
        keep = self._keep(d)
        A = data.T
        F, G = self._initial(A, k)
        eye = torch.eye(k, dtype=A.dtype, device=A.device)
        sq_norm_A = float((A.double() ** 2).sum())
        best, best_F, best_G, wait, curve, reference = math.inf, F, G, 0, [], math.inf
        bar = tqdm(range(self.max_iter), desc="SNMF", disable=not self.verbose, leave=False)
        it = 0
        for it in bar:
            F = torch.linalg.solve(G.T @ G + self.reg * eye, (A @ G).T).T
            F = winner_take_all(F, keep)
            scale = G.norm(dim=0).clamp_min(_EPS)
            G, F = G / scale, F * scale
            P, Q = A.T @ F, F.T @ F
            G = G * torch.sqrt((_pos(P) + G @ _neg(Q)) / (_neg(P) + G @ _pos(Q) + _EPS))
            Gd = G.double()
            loss = sq_norm_A - 2 * float((P.double() * Gd).sum()) + float(((Gd.T @ Gd) * Q.double()).sum())
            curve.append(loss)
            if loss < best:
                best, best_F, best_G = loss, F, G
            if loss < reference * (1 - self.tol):
                reference, wait = loss, 0
            else:
                wait += 1
                if wait >= self.patience:
                    break
            if self.verbose and it % 10 == 0:
                bar.set_postfix(loss=f"{loss:.4g}", rel=f"{loss / max(sq_norm_A, 1e-30):.4f}")
        bar.close()
        self.components_ = best_F.T.contiguous()
        self.n_features_in_ = d
        self.feature_names_in_ = feature_names(X)
        self.n_iter_ = it + 1
        self.reconstruction_err_ = math.sqrt(max(best, 0.0))
        self.loss_curve_ = curve
        return wrap_like(X, best_G, "snmf_") if isinstance(X, Activations) else best_G

    # ------------------------------------------------------------- transform
    def transform(self, X: Any, n_iter: int = 200) -> Any:
        """Non-negative coefficients of new rows with the features held fixed (Ding's G-update only)."""
        self._check_fitted()
        data = as_matrix(X, dtype=self.components_.dtype, device=self.components_.device)
        if data.shape[1] != self.n_features_in_:
            raise DimensionError(f"X has {data.shape[1]} features; this SNMF was fitted on {self.n_features_in_}")
        F = self.components_.T
        Q = F.T @ F
        P = data @ F
        eye = torch.eye(F.shape[1], dtype=F.dtype, device=F.device)
        G = torch.linalg.solve(Q + self.reg * eye, P.T).T.clamp_min(0) + _EPS
        Qp, Qn, Pp, Pn = _pos(Q), _neg(Q), _pos(P), _neg(P)
        for _ in range(n_iter):
            G = G * torch.sqrt((Pp + G @ Qn) / (Pn + G @ Qp + _EPS))
        return wrap_like(X, G, "snmf_")

    def inverse_transform(self, codes: Any) -> Any:
        """Reconstruction ``G F'`` in the input space."""
        self._check_fitted()
        G = as_matrix(codes, dtype=self.components_.dtype, device=self.components_.device, what="codes")
        return unwrap_like(codes, G @ self.components_, getattr(self, "feature_names_in_", None))


class NMF(Decomposition):
    """Non-negative matrix factorisation ``X ~ W H`` (``W, H >= 0``) for non-negative recordings.

    Hierarchical alternating least squares (equivalent to scikit-learn's coordinate-descent solver
    with the Frobenius loss and no regularisation) from an NNDSVD(a) start (Boutsidis & Gallopoulos
    2008); stops when the relative decrease of the error over 10 iterations falls below ``tol``.

    ``components_`` is ``H`` ``(n_components, n_features)``; :meth:`transform` returns ``W``.

    Example
    -------
    >>> nmf = NMF(n_components=8).fit(calcium)            # doctest: +SKIP
    >>> w = nmf.transform(calcium)                         # (sample=time, unit=component)
    """

    _tensor_attrs = ("components_",)
    _meta_attrs = ("n_features_in_", "n_iter_", "reconstruction_err_", "feature_names_in_")

    def __init__(self, n_components: int = 10, init: str = "nndsvda", max_iter: int = 500, tol: float = 1e-4,
                 max_samples: int | None = None, random_state: int | None = 0, device: str | None = None,
                 dtype: torch.dtype = torch.float64, verbose: bool = False) -> None:
        self.n_components = n_components
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.max_samples = max_samples
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.verbose = verbose

    def _check_nonnegative(self, data: torch.Tensor, what: str = "X") -> None:
        low = float(data.min())
        if low < 0:
            raise NegativeValueError(
                f"NMF needs non-negative data but {what} has {int((data < 0).sum())} negative values (min {low:.4g}); "
                "shift or rescale it (e.g. subtract each unit's minimum), or use SNMF for mixed-sign data"
            )

    def _initial(self, X: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        n, d = X.shape
        gen = rng(self.random_state)
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
    def _hals(W: torch.Tensor, XHt: torch.Tensor, HHt: torch.Tensor) -> torch.Tensor:
        """One sweep of HALS on ``W`` for ``min ||X - W H||`` (given ``X H'`` and ``H H'``)."""
        for j in range(W.shape[1]):
            denom = HHt[j, j]
            if denom <= 0:
                continue
            W[:, j] = (W[:, j] + (XHt[:, j] - W @ HHt[:, j]) / denom).clamp_min(0)
        return W

    def fit(self, X: Any, y: Any = None, *, site: str | None = None) -> NMF:
        """Factorise non-negative ``X`` (anything :meth:`SNMF.fit` accepts)."""
        self.fit_transform(X, site=site)
        return self

    def fit_transform(self, X: Any, y: Any = None, *, site: str | None = None) -> Any:
        """Fit and return ``W`` (the per-sample coefficients)."""
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

        previous = error()
        it = 0
        for it in tqdm(range(self.max_iter), desc="NMF", disable=not self.verbose, leave=False):
            W = self._hals(W, data @ H.T, H @ H.T)
            H = self._hals(H.T.contiguous(), data.T @ W, W.T @ W).T.contiguous()
            if (it + 1) % 10 == 0:
                current = error()
                if (previous - current) / max(previous, 1e-30) < self.tol:
                    break
                previous = current
        self.components_ = H
        self.n_features_in_ = d
        self.feature_names_in_ = feature_names(X)
        self.n_iter_ = it + 1
        self.reconstruction_err_ = math.sqrt(error())
        return wrap_like(X, W, "nmf_") if isinstance(X, Activations) else W

    def transform(self, X: Any, n_iter: int = 200) -> Any:
        """Non-negative coefficients ``W`` of new rows with ``H`` fixed."""
        self._check_fitted()
        data = as_matrix(X, dtype=self.components_.dtype, device=self.components_.device)
        if data.shape[1] != self.n_features_in_:
            raise DimensionError(f"X has {data.shape[1]} features; this NMF was fitted on {self.n_features_in_}")
        self._check_nonnegative(data)
        H = self.components_
        XHt, HHt = data @ H.T, H @ H.T
        W = torch.linalg.lstsq(HHt, XHt.T).solution.T.clamp_min(0)
        for _ in range(n_iter):
            W = self._hals(W, XHt, HHt)
        return wrap_like(X, W, "nmf_")

    def inverse_transform(self, codes: Any) -> Any:
        """Reconstruction ``W H``."""
        self._check_fitted()
        W = as_matrix(codes, dtype=self.components_.dtype, device=self.components_.device, what="codes")
        return unwrap_like(codes, W @ self.components_, getattr(self, "feature_names_in_", None))
