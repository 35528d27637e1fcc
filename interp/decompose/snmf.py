"""Semi-nonnegative matrix factorisation (:class:`SNMF`) after Shafran, Geiger & Geva (2025).

"Decomposing MLP Activations into Interpretable Features via Semi-Nonnegative Matrix Factorization"
(arXiv 2506.10920; code ``ordavid-s/snmf-mlp-decomposition`` at commit ab58c78, ``factorization/seminmf.py``),
which builds on Ding, Li & Jordan, "Convex and Semi-Nonnegative Matrix Factorizations" (TPAMI 2010).
:meth:`SNMF.paper` equals their current ``NMFSemiNMF.fit`` to 1e-12 in float64 from the same start
(``tests/test_decompose_fidelity.py``). Where it differs: ``torch.linalg.solve`` for their ``inv``; NaN/inf
raise :class:`~interp.errors.NaNError` instead of being kept silently; defaults of the plain class (SVD start,
relative tolerance) are ours, the preset's are theirs. The hierarchical variant is
:class:`~interp.decompose.HierarchicalSNMF`; their steering evaluation :mod:`interp.decompose.steering`.

Orientation: data are ``X`` of shape ``(n_samples, n_features)`` (rows = tokens/time points). The
paper's ``A`` (features x samples) is ``X.T``; its ``F`` (features x k, mixed sign) is
``components_.T`` and its ``G`` (samples x k, non-negative) is what :meth:`SNMF.transform` returns.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from interp._progress import tqdm

from ..errors import ConfigError, DimensionError, NaNError
from ..tensor import Activations
from ._base import Decomposition, check_int, resolve_device, rng
from ._data import as_activations, as_matrix, feature_names, is_store, minibatches, store_array, unwrap_like, wrap_like

__all__ = ["SNMF", "snmf_step", "winner_take_all"]

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
    """Keep the entries of each column of ``F`` whose magnitude reaches the column's ``keep``-th largest; zero the rest.

    As ``wta_features`` in Shafran et al.'s ``factorization/seminmf.py`` (a threshold, so exact ties
    at the threshold are all kept).

    Parameters
    ----------
    F : torch.Tensor
        Features ``(d, k)``, one per column.
    keep : int
        Entries kept per column (``keep >= d`` keeps everything).
    """
    if keep >= F.shape[0]:
        return F
    threshold = F.abs().topk(keep, dim=0).values[-1]
    return F * (F.abs() >= threshold)


def snmf_step(A: torch.Tensor, F: torch.Tensor, G: torch.Tensor, keep: int, reg: float = 1e-6,
              eps: float = _EPS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One SNMF iteration on ``A`` (features x samples); returns ``(F, G, P, Q)`` with ``P = A'F``, ``Q = F'F``.

    Source: Shafran, Geiger & Geva 2025 (arXiv 2506.10920; ACL 2026); code ``ordavid-s/snmf-mlp-decomposition``
    at commit ab58c78. Differences: ``F`` by ``torch.linalg.solve``, not ``torch.linalg.inv`` (equal to 1e-12 in
    float64); ``eps`` is a parameter (theirs: 1e-6 now, none at first).

    The update equations of ``NMFSemiNMF.fit`` in ``ordavid-s/snmf-mlp-decomposition``
    (``factorization/seminmf.py``): closed-form ``F``, winner-take-all, unit-norm columns of ``G``
    (``fix_hoyer_scale``), then Ding et al.'s multiplicative ``G`` update (``eps`` is added to its
    denominator: 1e-6 in the authors' current code, none (``eps=0``) in their first commit). ``F`` is
    ``G``'s previous value's least-squares fit.

    Parameters
    ----------
    A : torch.Tensor
        The data, features x samples ``(d, n)``.
    F : torch.Tensor
        The features ``(d, k)`` (not read: recomputed from ``G``; kept for the loop's signature).
    G : torch.Tensor
        The non-negative coefficients ``(n, k)``.
    keep : int
        Entries kept per feature column by :func:`winner_take_all`.
    reg : float
        Ridge added to ``G'G`` in the least-squares fit of ``F``.
    eps : float
        Added to the denominator of the ``G`` update.
    """
    k = G.shape[1]
    eye = torch.eye(k, dtype=A.dtype, device=A.device)
    F = torch.linalg.solve(G.T @ G + reg * eye, (A @ G).T).T
    F = winner_take_all(F, keep)
    scale = G.norm(dim=0).clamp_min(1e-8)
    G, F = G / scale, F * scale
    P, Q = A.T @ F, F.T @ F
    G = G * torch.sqrt((_pos(P) + G @ _neg(Q)) / (_neg(P) + G @ _pos(Q) + eps))
    return F, G, P, Q


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

    Source: Shafran, Geiger & Geva 2025 (arXiv 2506.10920; ACL 2026); code ``ordavid-s/snmf-mlp-decomposition``
    at commit ab58c78 (``factorization/seminmf.py``, ``NMFSemiNMF.fit``). Differences: the constructor's
    defaults are this library's (SVD start, relative tolerance, 1,000 iterations); :meth:`SNMF.paper` gives the
    authors' settings; ``F`` comes from ``torch.linalg.solve`` instead of a multiplication by
    ``torch.linalg.inv`` (the iterates agree to 1e-12 in float64 from the same start); an update that divides 0
    by 0 raises :class:`~interp.errors.NaNError` where their loop keeps its last finite iterate.

    Each iteration (Shafran et al. 2025, ``factorization/seminmf.py``): (1) closed-form
    ``F = A G (G'G + reg I)^-1``; (2) winner-take-all: keep the ``ceil(sparsity * n_features)``
    largest-magnitude entries of each column of ``F``; (3) rescale each column of ``G`` to unit norm,
    compensating in ``F``; (4) Ding et al.'s multiplicative update
    ``G <- G * sqrt(([A'F]+ + G[F'F]-) / ([A'F]- + G[F'F]+ + eps))`` (:func:`snmf_step`); (5) track
    ``||A - F G'||_F^2``, keep the best pair, stop after ``patience`` iterations without improvement.

    :meth:`SNMF.paper` gives the authors' settings (random start, 2,000 iterations, patience 1,500,
    absolute tolerance 1e-4, ``eps`` 1e-6 as in their current code (``version="first_commit"``: none),
    BOS/padding tokens dropped, fitted codes kept for reading).

    Parameters
    ----------
    n_components: number of features k (the paper's scripts use 50).
    sparsity: fraction of each feature's neuron weights kept (paper: 0.01); ``None`` or 1 disables it.
    init: ``"svd"``, ``"kmeans"`` or ``"random"`` (``G ~ U(0, 1)`` clamped at 1e-6, ``F ~ N(0, 1)``, drawn
        in that order from ``torch.Generator().manual_seed(seed)`` as the authors draw them after
        ``torch.manual_seed``).
    max_iter, patience: iteration budget; stop after ``patience`` iterations without improvement.
    tol, tol_mode: what counts as an improvement. ``"relative"`` (default): the loss fell below
        ``(1 - tol)`` times the last reference; the best iterate is the lowest loss seen.
        ``"absolute"`` (the authors' rule): ``loss < best - tol``, and only such an improvement updates
        the kept best pair.
    eps: added to the denominator of the multiplicative update (the authors' current code adds 1e-6,
        their first commit none).
    keep_codes: keep the fitted ``G`` as ``codes_`` (and the rows it came from as ``fitted_rows_``), so
        that :func:`~interp.decompose.top_activating` can rank contexts by the fitted coefficients
        (``codes="fitted"``), as the authors do.
    drop_tokens: token ids whose rows are left out of the fit (e.g. BOS and padding); needs an
        Activations with a ``token`` sample coordinate (``interp.capture(..., positions="tokens")``).
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

    _tensor_attrs = ("components_", "codes_", "fitted_rows_")
    _per_sample_attrs = ("codes_", "fitted_rows_")
    _meta_attrs = ("n_features_in_", "n_iter_", "reconstruction_err_", "loss_curve_", "feature_names_in_",
                   "n_samples_in_")

    def __init__(self, n_components: int = 50, sparsity: float | None = 0.01, init: str = "svd",
                 max_iter: int = 1000, patience: int = 100, tol: float = 1e-6, reg: float = 1e-6,
                 max_samples: int | None = None, seed: int | None = 0, device: str | None = None,
                 dtype: torch.dtype = torch.float32, progress: bool = False, tol_mode: str = "relative",
                 eps: float = _EPS, keep_codes: bool = False, drop_tokens: list[int] | None = None) -> None:
        self.n_components = n_components
        self.sparsity = sparsity
        self.init = init
        self.max_iter = max_iter
        self.patience = patience
        self.tol = tol
        self.reg = reg
        self.tol_mode = tol_mode
        self.eps = eps
        self.keep_codes = keep_codes
        self.drop_tokens = drop_tokens
        self.max_samples = max_samples
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self.progress = progress

    #: the authors' code versions :meth:`paper` can follow (``ordavid-s/snmf-mlp-decomposition``)
    PAPER_VERSIONS = {
        # 3db345d "fixed nan issue" (2025-10-04) adds 1e-6 to the G-update's denominator; HEAD ab58c78 keeps it
        "current": dict(commit="ab58c781a66289c70bcf4f1fc5eda969d92e2ef5", eps=1e-6),
        # f1f7a5b "initial commit" (2025-09-30): no eps; a sample whose coefficients all reach 0 gives 0/0
        "first_commit": dict(commit="f1f7a5b3ce51322154d2a7733991480aae20eab8", eps=0.0),
    }

    @classmethod
    def paper(cls, tokenizer: Any = None, version: str = "current", **overrides: Any) -> SNMF:
        """SNMF with the settings of Shafran, Geiger & Geva's code (``ordavid-s/snmf-mlp-decomposition``).

        Paper: arXiv 2506.10920 (ACL 2026). Code followed: ``version="current"`` (default) is commit
        ``ab58c78`` (HEAD), whose ``factorization/seminmf.py`` divides the multiplicative update by
        ``denom + 1e-6`` since ``3db345d`` ("fixed nan issue"): ``eps=1e-6``. ``version="first_commit"``
        is ``f1f7a5b``, with no ``eps`` (``eps=0``): on activations where a sample's coefficients all
        reach 0 the update divides 0 by 0; their loop then silently keeps its last finite best iterate,
        this one raises :class:`~interp.errors.NaNError` (never a silent wrong number).

        From ``experiments/run_snmf_steering.sh`` and ``experiments/train/train.py``: rank 50, sparsity
        0.01, ``init="random"``, 2,000 iterations, patience 1,500; from ``factorization/seminmf.py``:
        absolute tolerance 1e-4 (``loss < best - tol``), reg 1e-6; from
        ``llm_utils/activation_generator.py``: BOS and padding tokens left out of the fitted activations
        (pass the ``tokenizer`` to take their ids; without it no rows are dropped); from
        ``experiments/snmf_interp/generate_concept_context.py``: top contexts ranked by the fitted ``G``
        (``keep_codes=True``; read them with ``top_activating(snmf, acts, codes="fitted")``). Any
        parameter can be overridden.

        Where it differs: ``F`` comes from ``torch.linalg.solve`` where theirs multiplies by
        ``torch.linalg.inv`` (the iterates agree to ~1e-14 in float64 from the same start); the loss is
        tracked from the expanded Frobenius norm; the random start is drawn from a seeded
        ``torch.Generator`` (the same numbers as their ``torch.manual_seed(seed)`` then ``rand``/``randn``).

        >>> snmf = SNMF.paper(tokenizer, n_components=20).fit(acts)      # doctest: +SKIP
        >>> top_activating(snmf, acts, n=25, codes="fitted")            # doctest: +SKIP
        """
        if version not in cls.PAPER_VERSIONS:
            raise ConfigError(f"version must be one of {sorted(cls.PAPER_VERSIONS)}, got {version!r}")
        drop = None
        if tokenizer is not None:
            ids = {getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "pad_token_id", None)} - {None}
            drop = sorted(int(i) for i in ids) or None
        params: dict[str, Any] = dict(n_components=50, sparsity=0.01, init="random", max_iter=2000, patience=1500,
                                      tol=1e-4, tol_mode="absolute", reg=1e-6, eps=cls.PAPER_VERSIONS[version]["eps"],
                                      keep_codes=True, drop_tokens=drop)
        unknown = set(overrides) - set(cls._param_names())
        if unknown:
            raise ConfigError(f"SNMF has no parameters {sorted(unknown)}; parameters are {cls._param_names()}")
        params.update(overrides)
        return cls(**params)

    # ---------------------------------------------------------------- checks
    def _validate(self, n_samples: int, n_features: int) -> int:
        if self.tol_mode not in ("relative", "absolute"):
            raise ConfigError(f"tol_mode must be 'relative' or 'absolute', got {self.tol_mode!r}")
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
        gen = rng(self.seed)
        d, n = A.shape
        if self.init == "random":
            G = torch.rand(n, k, generator=gen).clamp_min(1e-6).to(A)
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
        """Factorise ``X`` (Activations, tensor, array, store or iterable of minibatches).

        Parameters
        ----------
        X : Activations, torch.Tensor, numpy.ndarray, store or iterable
            Data ``(n_samples, n_features)`` of any sign; a store or iterable of minibatches is read into
            memory (up to ``max_samples`` rows).
        y : None
            Ignored (scikit-learn convention).
        site : str, optional
            The site (array) to read when ``X`` is an activation store.
        """
        self.fit_transform(X, site=site)
        return self

    def fit_transform(self, X: Any, y: Any = None, *, site: str | None = None) -> Any:
        """Fit and return the non-negative coefficients ``G`` of the training rows (best iterate).

        With ``drop_tokens`` the rows of those tokens are left out, and the returned codes cover the
        other rows only (their sample coordinates travel with them).

        Parameters
        ----------
        X : Activations, torch.Tensor, numpy.ndarray, store or iterable
            Data ``(n_samples, n_features)`` of any sign; a store or iterable of minibatches is read into
            memory (up to ``max_samples`` rows).
        y : None
            Ignored (scikit-learn convention).
        site : str, optional
            The site (array) to read when ``X`` is an activation store.
        """
        if site is not None or is_store(X):
            X = store_array(X, site)
        X, rows, n_rows = self._drop_rows(X)
        device = resolve_device(self.device)
        data = _collect(X, self.max_samples, device, self.dtype)
        n, d = data.shape
        k = self._validate(n, d)
        keep = self._keep(d)
        A = data.T
        F, G = self._initial(A, k)
        sq_norm_A = float((A.double() ** 2).sum())
        absolute = self.tol_mode == "absolute"
        best, best_F, best_G, wait, curve, reference = math.inf, F, G, 0, [], math.inf
        bar = tqdm(range(self.max_iter), desc="SNMF", disable=not self.progress, leave=False)
        it = 0
        for it in bar:
            F, G, P, Q = snmf_step(A, F, G, keep, self.reg, self.eps)
            Gd = G.double()
            loss = sq_norm_A - 2 * float((P.double() * Gd).sum()) + float(((Gd.T @ Gd) * Q.double()).sum())
            if not math.isfinite(loss):
                raise NaNError(
                    f"SNMF's multiplicative update gave NaN/inf at iteration {it + 1} (eps={self.eps}): a sample whose "
                    "coefficients all reached 0 makes the update divide 0 by 0. The authors' first commit (eps=0) silently "
                    "keeps its last finite iterate here; pass eps=1e-6 (the default, and SNMF.paper()'s since the authors' "
                    "'fixed nan issue' commit 3db345d) to avoid it")
            curve.append(loss)
            if absolute:  # the authors' rule: only an improvement by more than tol counts, and is kept
                improved = loss < best - self.tol
                if improved:
                    best, best_F, best_G = loss, F, G
            else:
                if loss < best:
                    best, best_F, best_G = loss, F, G
                improved = loss < reference * (1 - self.tol)
                if improved:
                    reference = loss
            wait = 0 if improved else wait + 1
            if wait >= self.patience:
                break
            if self.progress and it % 10 == 0:
                bar.set_postfix(loss=f"{loss:.4g}", rel=f"{loss / max(sq_norm_A, 1e-30):.4f}")
        bar.close()
        self.components_ = best_F.T.contiguous()
        self.n_features_in_ = d
        self.feature_names_in_ = feature_names(X)
        self.n_iter_ = it + 1
        self.reconstruction_err_ = math.sqrt(max(best, 0.0))
        self.loss_curve_ = curve
        self.n_samples_in_ = n_rows if n_rows is not None else n
        if self.keep_codes:
            self.codes_ = best_G.contiguous()
            self.fitted_rows_ = rows[:n] if rows is not None else torch.arange(n)
        return wrap_like(X, best_G, "snmf_") if isinstance(X, Activations) else best_G

    def _drop_rows(self, X: Any) -> tuple[Any, torch.Tensor | None, int | None]:
        """Leave out the rows of ``drop_tokens``; returns the kept data, kept row indices and the row count."""
        if not self.drop_tokens:
            return X, None, None
        if not isinstance(X, Activations):
            raise ConfigError("drop_tokens needs an interp.Activations with a 'token' sample coordinate "
                              f"(capture with positions='tokens'); got {type(X).__name__}")
        flat = as_activations(X)
        if "token" not in flat.coords["sample"].columns:
            raise ConfigError("drop_tokens needs a 'token' sample coordinate; capture with positions='tokens' "
                              f"(sample coordinates: {list(flat.coords['sample'].columns)})")
        tokens = flat.coords["sample"]["token"].to_numpy()
        keep = ~np.isin(tokens, np.asarray(list(self.drop_tokens)))
        if not keep.any():
            raise ConfigError(f"every row holds one of drop_tokens={list(self.drop_tokens)}; nothing left to fit")
        return flat.isel(sample=keep), torch.from_numpy(np.flatnonzero(keep)), len(keep)

    # ------------------------------------------------------------- transform
    def transform(self, X: Any, n_iter: int = 200) -> Any:
        """Non-negative coefficients of new rows with the features held fixed (Ding's G-update only).

        Parameters
        ----------
        X : Activations, torch.Tensor or numpy.ndarray
            New rows ``(n, n_features)``.
        n_iter : int
            Multiplicative updates after the non-negative least-squares start.

        Returns
        -------
        Activations, torch.Tensor or numpy.ndarray
            ``(n, n_components)``, the same kind as ``X``.
        """
        self._check_fitted()
        data = as_matrix(X, dtype=self.components_.dtype, device=self.components_.device)
        if data.shape[1] != self.n_features_in_:
            raise DimensionError(f"X has {data.shape[1]} features, but SNMF is expecting {self.n_features_in_} features as input")
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
        """Reconstruction ``G F'`` in the input space.

        Parameters
        ----------
        codes : Activations, torch.Tensor or numpy.ndarray
            Coefficients ``(n, n_components)`` (from :meth:`transform`).
        """
        self._check_fitted()
        G = as_matrix(codes, dtype=self.components_.dtype, device=self.components_.device, what="codes")
        return unwrap_like(codes, G @ self.components_, getattr(self, "feature_names_in_", None))


