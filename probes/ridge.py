"""Ridge regression with a per-target regularisation chosen by cross-validation, and banded ridge.

The solver follows himalaya (Dupré la Tour et al. 2022, NeuroImage 264:119728):

* **primal** (n_train >= n_features): one SVD per fold, X = U S Vᵀ; for every α,
  Ŷ_test = X_test V diag(s/(s²+α)) Uᵀ Y_train.
* **dual** (n_train < n_features): one eigendecomposition of the linear kernel per fold, K = U Λ Uᵀ;
  Ŷ_test = K_test U diag(1/(λ+α)) Uᵀ Y_train.

Uᵀ Y_train is computed once per fold and shared by every α and target; targets are processed in
batches. The α of each target maximises the validation score averaged over folds (default: negative
mean squared error, himalaya's ``l2_neg_loss``), ties broken toward larger α (+1e-10·log α). The final
model is refit on all samples with each target's α.

With ``fit_intercept=True`` (scikit-learn's default; himalaya's is False) X and Y are centred with the
training-fold means inside every fold and for the refit.

>>> import numpy as np
>>> from probes import RidgeCV
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(100, 5)); Y = X @ rng.normal(size=(5, 3)) + 0.1 * rng.normal(size=(100, 3))
>>> RidgeCV(alphas=[0.1, 1, 10]).fit(X, Y).best_alphas_.shape
(3,)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin

from interp.errors import ConfigError, DimensionError

from ._cv import check_alphas, check_nan_policy, check_y_given, group_labels, make_splits, validate_X

__all__ = ["RidgeCV", "BandedRidgeCV", "ridge_cv_scores"]

DEFAULT_ALPHAS = tuple(np.logspace(-3, 7, 11))


class _Decomposition:
    """The per-fold factorisation shared by every α: predictions = T diag(f(α)) (Uᵀ Y)."""

    def __init__(self, Xtr: torch.Tensor, Xte: torch.Tensor | None, solver: str) -> None:
        self.solver = solver
        if solver == "primal":
            U, s, Vh = torch.linalg.svd(Xtr, full_matrices=False)
            self.U, self.s = U, s
            self.V = Vh.T
            self.T = None if Xte is None else Xte @ self.V
        else:
            K = Xtr @ Xtr.T
            lam, U = torch.linalg.eigh(K)
            self.U, self.s = U, lam.clamp_min(0)
            self.V = None
            self.T = None if Xte is None else (Xte @ Xtr.T) @ U

    def factors(self, alphas: torch.Tensor) -> torch.Tensor:
        """(n_alphas, k) diagonal factors f(α)."""
        if self.solver == "primal":
            return self.s[None, :] / (self.s[None, :] ** 2 + alphas[:, None])
        return 1.0 / (self.s[None, :] + alphas[:, None])


def _choose_solver(solver: str, n_train: int, n_features: int) -> str:
    if solver == "auto":
        return "primal" if n_train >= n_features else "dual"
    if solver not in ("primal", "dual"):
        raise ConfigError(f"solver must be 'auto', 'primal' or 'dual', got {solver!r}")
    return solver


def _score(Ytrue: torch.Tensor, Ypred: torch.Tensor, scoring: str) -> torch.Tensor:
    """(n_alphas, n_targets) scores of predictions (n_alphas, n, t)."""
    err = (Ypred - Ytrue[None]).square().sum(1)
    if scoring == "neg_mse":
        return -err / Ytrue.shape[0]
    if scoring == "r2":
        ss = (Ytrue - Ytrue.mean(0, keepdim=True)).square().sum(0)
        return 1 - err / ss
    if scoring == "pearson":
        yc = Ytrue - Ytrue.mean(0, keepdim=True)
        pc = Ypred - Ypred.mean(1, keepdim=True)
        return (pc * yc[None]).sum(1) / (torch.linalg.vector_norm(pc, dim=1) * torch.linalg.vector_norm(yc, dim=0))
    raise ConfigError(f"scoring must be 'neg_mse', 'r2' or 'pearson', got {scoring!r}")


def ridge_cv_scores(X: torch.Tensor, Y: torch.Tensor, splits: Sequence, alphas: torch.Tensor, *,
                    fit_intercept: bool = True, solver: str = "auto", scoring: str = "neg_mse",
                    n_targets_batch: int | None = None) -> torch.Tensor:
    """Validation scores ``(n_splits, n_alphas, n_targets)`` from one decomposition per fold.

    Parameters
    ----------
    X : torch.Tensor
        Features ``(n_samples, n_features)``.
    Y : torch.Tensor
        Targets ``(n_samples, n_targets)``, same dtype and device as ``X``.
    splits : sequence of (train, test) index pairs
        The folds.
    alphas : torch.Tensor
        Candidate penalties, 1-D.
    fit_intercept : bool, optional
        Centre X and Y on each fold's training means (default True).
    solver : str, optional
        ``"auto"`` (default: primal when n_train >= n_features, else dual), ``"primal"`` or ``"dual"``.
    scoring : str, optional
        ``"neg_mse"`` (default), ``"r2"`` or ``"pearson"``.
    n_targets_batch : int, optional
        Targets per batch (memory); None: all at once.
    """
    n_targets = Y.shape[1]
    batch = n_targets_batch or n_targets
    scores = torch.empty(len(splits), len(alphas), n_targets, dtype=X.dtype, device=X.device)
    for f, (tr, te) in enumerate(splits):
        tr_t = torch.as_tensor(tr, device=X.device)
        te_t = torch.as_tensor(te, device=X.device)
        Xtr, Xte = X[tr_t], X[te_t]
        if fit_intercept:
            mx = Xtr.mean(0, keepdim=True)
            Xtr, Xte = Xtr - mx, Xte - mx
        dec = _Decomposition(Xtr, Xte, _choose_solver(solver, Xtr.shape[0], Xtr.shape[1]))
        fac = dec.factors(alphas)
        resolution = (dec.T[None] * fac[:, None, :]).reshape(-1, dec.T.shape[1])
        for start in range(0, n_targets, batch):
            sl = slice(start, start + batch)
            Ytr, Yte = Y[tr_t, sl], Y[te_t, sl]
            if fit_intercept:
                my = Ytr.mean(0, keepdim=True)
                Ytr, Yte = Ytr - my, Yte - my
            UtY = dec.U.T @ Ytr
            # every α in one GEMM: (n_alphas * n_test, k) @ (k, t)
            pred = (resolution @ UtY).reshape(len(alphas), Yte.shape[0], -1)
            scores[f, :, sl] = _score(Yte, pred, scoring)
    return scores


def _select(scores: torch.Tensor, alphas: torch.Tensor, per_target: bool) -> tuple[torch.Tensor, torch.Tensor]:
    mean = scores.mean(0).to(torch.float64)
    mean = torch.nan_to_num(mean, nan=-1e5) + (torch.log(alphas.to(torch.float64)) * 1e-10)[:, None]
    if per_target:
        idx = mean.argmax(0)
    else:
        idx = mean.mean(1).argmax().repeat(mean.shape[1])
    return idx, mean.gather(0, idx[None])[0]


def _refit(X: torch.Tensor, Y: torch.Tensor, alphas: torch.Tensor, alpha_idx: torch.Tensor, solver: str,
           n_targets_batch: int | None) -> torch.Tensor:
    """Primal coefficients (n_features, n_targets) refit on all rows with each target's α."""
    dec = _Decomposition(X, None, _choose_solver(solver, X.shape[0], X.shape[1]))
    fac = dec.factors(alphas)  # (n_alphas, k)
    coef = torch.empty(X.shape[1], Y.shape[1], dtype=X.dtype, device=X.device)
    batch = n_targets_batch or Y.shape[1]
    for start in range(0, Y.shape[1], batch):
        sl = slice(start, start + batch)
        F = fac[alpha_idx[sl]].T  # (k, t)
        W = F * (dec.U.T @ Y[:, sl])
        coef[:, sl] = dec.V @ W if dec.solver == "primal" else X.T @ (dec.U @ W)
    return coef


class RidgeCV(RegressorMixin, BaseEstimator):
    """Ridge regression with α chosen per target by K-fold cross-validation (himalaya's scheme).

    Parameters
    ----------
    alphas: candidate regularisation strengths.
    cv: int (``KFold`` without shuffling, ``GroupKFold`` when ``fit`` gets ``groups``), a splitter, or
        ``(train, test)`` pairs. ``fit(X, Y, groups=...)`` keeps subjects/sessions/runs within one fold.
    fit_intercept: centre X and Y with training means (per fold and for the refit).
    alpha_per_target: one α per target (True) or one shared α (False).
    solver: ``"auto"`` (primal SVD when n_train >= n_features, else dual eigendecomposition),
        ``"primal"`` or ``"dual"``.
    scoring: validation score used to choose α: ``"neg_mse"`` (himalaya's ``l2_neg_loss``), ``"r2"``
        or ``"pearson"``.
    n_targets_batch: targets per batch (memory).
    dtype: ``"float32"``/``"float64"``; None keeps the input's float dtype (float64 for other dtypes).
    device: torch device (None: the input's; CUDA is used automatically for NumPy input when present).
    nan_policy: ``"raise"`` or ``"drop"`` (drop targets, e.g. voxels, that hold NaN; ``targets_kept_``
        records which).

    Attributes
    ----------
    coef_ (n_targets, n_features), intercept_ (n_targets,), best_alphas_ (n_targets,),
    cv_scores_ (n_alphas, n_targets) mean validation score, solver_, targets_kept_, n_features_in_.

    A scikit-learn estimator (``parametrize_with_checks`` passes): :meth:`predict` returns NumPy for NumPy input
    and a tensor on the fitted device for tensor or Activations input.
    """

    def __init__(self, alphas: Sequence[float] = DEFAULT_ALPHAS, cv: Any = 5, fit_intercept: bool = True,
                 alpha_per_target: bool = True, solver: str = "auto", scoring: str = "neg_mse",
                 n_targets_batch: int | None = None, dtype: str | None = None, device: str | None = None,
                 nan_policy: str = "raise") -> None:
        self.alphas = alphas
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.alpha_per_target = alpha_per_target
        self.solver = solver
        self.scoring = scoring
        self.n_targets_batch = n_targets_batch
        self.dtype = dtype
        self.device = device
        self.nan_policy = nan_policy

    def __sklearn_tags__(self) -> Any:
        """scikit-learn tags: several targets at once (``Y`` may be 2-D)."""
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _inputs(self, X: Any, Y: Any) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        dtype = getattr(torch, self.dtype) if isinstance(self.dtype, str) else self.dtype
        device = self.device
        if device is None and not isinstance(X, torch.Tensor) and torch.cuda.is_available():
            device = "cuda"
        check_nan_policy(self.nan_policy)
        Xt = validate_X(self, X, reset=True, dtype=dtype, device=device)
        check_y_given(self, Y)
        Ycand = _as_targets(Y, Xt)
        bad = ~torch.isfinite(Ycand).all(0)
        if bad.any():
            if self.nan_policy != "drop":
                from interp.errors import NaNError

                raise NaNError(f"Y has NaN/inf in {int(bad.sum())} of {Ycand.shape[1]} targets; pass "
                               "nan_policy='drop' to drop those targets")
            Ycand = Ycand[:, ~bad]
        if Xt.shape[0] != Ycand.shape[0]:
            raise DimensionError(f"X has {Xt.shape[0]} samples but Y has {Ycand.shape[0]}")
        return Xt, Ycand, (~bad).cpu().numpy()

    def fit(self, X: Any, Y: Any, groups: Any = None) -> RidgeCV:
        """Choose α per target by cross-validation and refit on all samples; returns self.

        ``groups``: one label per sample (subject, session, run, trial) or the name of a sample coordinate
        of ``X``/``Y``; folds then hold whole groups (``GroupKFold`` for an int ``cv``).

        Parameters
        ----------
        X : array-like, torch.Tensor or Activations
            Features ``(n_samples, n_features)``.
        Y : array-like, torch.Tensor or Activations
            Targets ``(n_samples, n_targets)`` (1-D: one target).
        groups : array-like or str, optional
            Group label per sample or a sample-coordinate name; None: no groups.
        """
        Xt, Yt, kept = self._inputs(X, Y)
        self._fit_tensors(Xt, Yt, group_labels(groups, Xt.shape[0], X, Y))
        self.targets_kept_ = kept
        self._y_was_1d = (Y.ndim if hasattr(Y, "ndim") else np.asarray(Y).ndim) == 1
        return self

    def _fit_tensors(self, Xt: torch.Tensor, Yt: torch.Tensor, groups: Any) -> None:
        alphas = torch.as_tensor(check_alphas(self.alphas), dtype=Xt.dtype, device=Xt.device)
        splits = make_splits(Xt.shape[0], self.cv, groups)
        scores = ridge_cv_scores(Xt, Yt, splits, alphas, fit_intercept=self.fit_intercept, solver=self.solver,
                                 scoring=self.scoring, n_targets_batch=self.n_targets_batch)
        idx, _ = _select(scores, alphas, self.alpha_per_target)
        mx = Xt.mean(0, keepdim=True) if self.fit_intercept else torch.zeros_like(Xt[:1])
        my = Yt.mean(0, keepdim=True) if self.fit_intercept else torch.zeros_like(Yt[:1])
        coef = _refit(Xt - mx, Yt - my, alphas, idx, self.solver, self.n_targets_batch)
        self.coef_ = coef.T.contiguous()
        self.intercept_ = (my - mx @ coef)[0]
        self.best_alphas_ = alphas[idx]
        self.cv_scores_ = scores.mean(0)
        self.solver_ = _choose_solver(self.solver, splits[0][0].shape[0], Xt.shape[1])
        self.n_features_in_ = Xt.shape[1]

    def predict(self, X: Any) -> np.ndarray | torch.Tensor:
        """Predictions ``(n_samples, n_targets)`` (``(n_samples,)`` after a fit on 1-D ``Y``).

        A NumPy array for NumPy (or other array-like) input, as scikit-learn estimators return; a tensor on the
        fitted device for tensor or :class:`~interp.Activations` input, so torch pipelines stay on it.

        Parameters
        ----------
        X : array-like, torch.Tensor or Activations
            Features ``(n_samples, n_features)`` with the fitted number of features.
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "coef_")
        Xt = validate_X(self, X, reset=False, dtype=self.coef_.dtype, device=self.coef_.device)
        pred = Xt @ self.coef_.T + self.intercept_
        if getattr(self, "_y_was_1d", False) and pred.shape[1] == 1:
            pred = pred[:, 0]
        from interp.tensor import Activations

        return pred if isinstance(X, (torch.Tensor, Activations)) else pred.cpu().numpy()

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean R² over targets (scikit-learn's ``RegressorMixin.score`` convention).

        Parameters
        ----------
        X : array-like, torch.Tensor or Activations
            Features ``(n_samples, n_features)``.
        y : array-like or torch.Tensor
            True targets (all of them: the ones dropped at fit time are dropped here too).
        sample_weight : array-like, optional
            Per-sample weights passed to ``sklearn.metrics.r2_score``.
        """
        from sklearn.metrics import r2_score

        pred = self.predict(X)
        pred = np.asarray(pred.cpu() if isinstance(pred, torch.Tensor) else pred)
        pred = pred[:, None] if pred.ndim == 1 else pred
        Y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
        Y = Y[:, None] if Y.ndim == 1 else Y
        return float(r2_score(Y[:, self.targets_kept_], pred, sample_weight=sample_weight))


def _as_targets(Y: Any, Xt: torch.Tensor) -> torch.Tensor:
    from interp.tensor import Activations

    if isinstance(Y, Activations):
        t = Y.matrix("sample") if "sample" in Y.dims else Y.data.reshape(Y.shape[0], -1)
    elif isinstance(Y, torch.Tensor):
        t = Y.detach()
    else:
        t = torch.from_numpy(np.ascontiguousarray(np.asarray(Y, dtype=np.float64)))
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2:
        raise DimensionError(f"Y must be 1-D or 2-D (samples x targets), got shape {tuple(t.shape)}")
    return t.to(device=Xt.device, dtype=Xt.dtype)


def _sample_gammas(n_iter: int, n_spaces: int, concentration: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """Band weights on the simplex: first uniform, then Dirichlet draws cycling ``concentration`` (himalaya)."""
    gammas = np.empty((n_iter, n_spaces))
    gammas[0] = 1.0 / n_spaces
    for i in range(1, n_iter):
        c = concentration[(i - 1) % len(concentration)]
        gammas[i] = rng.dirichlet([c] * n_spaces)
    return gammas


class BandedRidgeCV(RidgeCV):
    """Banded ridge (Nunez-Elizalde et al. 2019): one regularisation per feature band and per target,
    found by random search over band weights γ on the simplex and a grid of α (himalaya's
    ``solve_group_ridge_random_search``). Band b is regularised by α/γ_b; ``deltas_ = log(γ/α)``.

    ``bands``: sizes of consecutive feature bands (e.g. ``[512, 256]``); ``gammas``: explicit
    ``(n_iter, n_bands)`` weights (else ``n_iter`` draws: uniform first, then Dirichlet with concentration
    cycling through ``concentration``).

    Parameters
    ----------
    bands : sequence of int
        Sizes of the consecutive feature bands; must sum to the number of features.
    alphas : sequence of float, optional
        Grid of α (default ``logspace(-3, 7, 11)``).
    cv : int, splitter or list of (train, test) pairs, optional
        Cross-validation (default 5).
    n_iter : int, optional
        Number of band-weight draws when ``gammas`` is None (default 20).
    concentration : sequence of float, optional
        Dirichlet concentrations cycled through after the first, uniform draw (default ``(0.1, 1.0)``).
    gammas : array-like, optional
        Explicit band weights ``(n_iter, n_bands)``; None: drawn.
    seed : int, optional
        Seed of the draws (default 0).
    fit_intercept, solver, scoring, n_targets_batch, dtype, device, nan_policy : optional
        As in :class:`RidgeCV` (α is always chosen per target).
    """

    def __init__(self, bands: Sequence[int] = (), alphas: Sequence[float] = DEFAULT_ALPHAS, cv: Any = 5,
                 n_iter: int = 20, concentration: Sequence[float] = (0.1, 1.0), gammas: Any = None,
                 seed: int = 0, fit_intercept: bool = True, solver: str = "auto", scoring: str = "neg_mse",
                 n_targets_batch: int | None = None, dtype: str | None = None, device: str | None = None,
                 nan_policy: str = "raise") -> None:
        super().__init__(alphas=alphas, cv=cv, fit_intercept=fit_intercept, alpha_per_target=True, solver=solver,
                         scoring=scoring, n_targets_batch=n_targets_batch, dtype=dtype, device=device,
                         nan_policy=nan_policy)
        self.bands = bands
        self.n_iter = n_iter
        self.concentration = concentration
        self.gammas = gammas
        self.seed = seed

    def _fit_tensors(self, Xt: torch.Tensor, Yt: torch.Tensor, groups: Any) -> None:
        bands = list(self.bands)
        if (not bands or any(not isinstance(b, (int, np.integer)) or isinstance(b, bool) or b <= 0 for b in bands)
                or sum(bands) != Xt.shape[1]):
            raise ConfigError(f"bands {bands} must be positive integer sizes summing to the {Xt.shape[1]} features")
        edges = np.concatenate([[0], np.cumsum(bands)])
        gammas = (np.asarray(self.gammas, dtype=float) if self.gammas is not None
                  else _sample_gammas(self.n_iter, len(bands), self.concentration,
                                      np.random.default_rng(self.seed)))
        if gammas.ndim != 2 or gammas.shape[1] != len(bands):
            raise ConfigError(f"gammas must have shape (n_iter, {len(bands)}), got {gammas.shape}")
        alphas = torch.as_tensor(check_alphas(self.alphas), dtype=Xt.dtype, device=Xt.device)
        splits = make_splits(Xt.shape[0], self.cv, groups)
        t = Yt.shape[1]
        best = torch.full((t,), -torch.inf, dtype=torch.float64, device=Xt.device)
        best_g = torch.zeros(t, dtype=torch.long, device=Xt.device)
        best_a = torch.zeros(t, dtype=torch.long, device=Xt.device)
        eps = float(torch.finfo(Xt.dtype).eps)

        def scaled(g: np.ndarray) -> torch.Tensor:
            w = torch.cat([torch.full((b,), float(np.sqrt(gi)), dtype=Xt.dtype, device=Xt.device)
                           for b, gi in zip(bands, g)])
            return Xt * w, w

        for gi, g in enumerate(gammas):
            Xg, _ = scaled(g)
            scores = ridge_cv_scores(Xg, Yt, splits, alphas, fit_intercept=self.fit_intercept, solver=self.solver,
                                     scoring=self.scoring, n_targets_batch=self.n_targets_batch)
            idx, sc = _select(scores, alphas, True)
            better = sc > best + eps
            best = torch.where(better, sc, best)
            best_g = torch.where(better, torch.full_like(best_g, gi), best_g)
            best_a = torch.where(better, idx, best_a)
        mx = Xt.mean(0, keepdim=True) if self.fit_intercept else torch.zeros_like(Xt[:1])
        my = Yt.mean(0, keepdim=True) if self.fit_intercept else torch.zeros_like(Yt[:1])
        coef = torch.zeros(Xt.shape[1], t, dtype=Xt.dtype, device=Xt.device)
        for gi in torch.unique(best_g).tolist():
            cols = (best_g == gi).nonzero()[:, 0]
            Xg, w = scaled(gammas[gi])
            c = _refit(Xg - Xg.mean(0, keepdim=True) if self.fit_intercept else Xg, (Yt - my)[:, cols], alphas,
                       best_a[cols], self.solver, self.n_targets_batch)
            coef[:, cols] = c * w[:, None]
        self.coef_ = coef.T.contiguous()
        self.intercept_ = (my - mx @ coef)[0]
        self.best_alphas_ = alphas[best_a]
        self.best_gammas_ = torch.as_tensor(gammas, dtype=Xt.dtype, device=Xt.device)[best_g].T  # (n_bands, t)
        self.deltas_ = torch.log(self.best_gammas_ / self.best_alphas_[None])
        self.cv_scores_ = best
        self.band_edges_ = edges
        self.solver_ = _choose_solver(self.solver, splits[0][0].shape[0], Xt.shape[1])
        self.n_features_in_ = Xt.shape[1]
