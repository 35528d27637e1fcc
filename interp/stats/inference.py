"""p-values from a null, FDR, intervals, and the two generic resampling tests.

* :func:`p_value`: ``(1 + #{null at least as extreme}) / (1 + n)`` (Phipson & Smyth 2010; the
  estimator and the tolerance of :func:`scipy.stats.permutation_test`), or ``#/n`` for an exact
  (exhaustive) null;
* :func:`benjamini_hochberg`: BH-FDR q-values (= :func:`scipy.stats.false_discovery_control`),
  NaN-aware;
* :func:`t_interval` (Student t), :func:`percentile_interval` (bootstrap percentiles);
* :func:`permutation_test`: any statistic of ``(x, y)`` against a null that reorders ``y``'s samples
  (plain, whole-group, circular-shift or block permutation; see :mod:`interp.stats.nulls`);
* :func:`bootstrap`: percentile CI of any statistic, resampling samples or whole groups.

>>> import numpy as np
>>> x = np.arange(20.0); y = x + np.random.default_rng(0).normal(size=20)
>>> res = permutation_test(lambda a, b: np.corrcoef(a, b)[0, 1], x, y, null="permutation", n_permutations=199)
>>> res.p_value
0.005
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DimensionError, MismatchError, NaNError
from ..results import Result, themed
from .nulls import bootstrap_indices, choose_null, null_indices, resolve_groups

__all__ = ["ALTERNATIVES", "p_value", "benjamini_hochberg", "t_interval", "percentile_interval", "PermutationResult",
           "BootstrapResult", "permutation_test", "bootstrap"]

ALTERNATIVES = ("greater", "less", "two-sided")


def p_value(observed: Any, null: Any, alternative: str = "greater", exact: bool = False) -> np.ndarray | float:
    """p-value of ``observed`` (any shape) against ``null`` (``(n_draws, *observed.shape)``).

    ``"greater"``: ``(1 + #{null >= observed}) / (1 + n)``; ``"less"``: the same with ``<=``;
    ``"two-sided"``: twice the smaller one-sided p, at most 1 (as scipy). Ties within a relative
    ``100 * eps`` count as "at least as extreme", as in :func:`scipy.stats.permutation_test`. With
    ``exact=True`` the null is the full set of permutations (identity included) and p is
    ``#{...} / n``. An entry whose observation is NaN (a statistic undefined for that unit) gives NaN; a NaN
    null draw beside a finite observation, or no finite observation at all, raises :class:`NaNError`.

    Parameters
    ----------
    observed : float or array_like
        The observed statistic.
    null : array_like
        ``(n_draws, *observed.shape)`` the statistic under the null.
    alternative : {"greater", "less", "two-sided"}
        The direction of the test.
    exact : bool
        ``null`` is every permutation, identity included (no ``1 +``).

    >>> p_value(3.0, np.array([1.0, 2.0, 3.0, 4.0]))
    0.6
    """
    if alternative not in ALTERNATIVES:
        raise ConfigError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    obs = np.asarray(observed, dtype=float)
    nul = np.asarray(null, dtype=float)
    if nul.ndim != obs.ndim + 1 or nul.shape[1:] != obs.shape:
        raise DimensionError(f"null must have shape (n_draws, *{obs.shape}), got {nul.shape}")
    n = nul.shape[0]
    if n == 0:
        raise ConfigError("the null distribution is empty")
    finite = ~np.isnan(obs)
    if obs.size and not finite.any():
        raise NaNError("the observed statistic is NaN everywhere: there is nothing to test (is the statistic defined "
                       "for these data, e.g. not constant?)")
    if np.isnan(nul[:, finite] if obs.ndim else (nul if finite else nul[:0])).any():
        raise NaNError(f"the null holds {int(np.isnan(nul).sum())} NaN draw value(s) beside finite observations: they "
                       "would count as never extreme and make p too small. Fix the statistic or drop those draws.")
    adj = 0 if exact else 1
    gamma = np.abs(np.finfo(float).eps * 100 * obs)
    with np.errstate(invalid="ignore"):
        greater = ((nul >= obs - gamma).sum(0) + adj) / (n + adj)
        less = ((nul <= obs + gamma).sum(0) + adj) / (n + adj)
    p = {"greater": greater, "less": less}.get(alternative)
    if p is None:
        p = np.minimum(greater, less) * 2
    p = np.where(np.isnan(obs), np.nan, np.clip(p, 0.0, 1.0))
    return float(p) if p.ndim == 0 else p


def benjamini_hochberg(p: Any) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) of any shape; NaNs stay NaN and are not counted.

    Equals :func:`scipy.stats.false_discovery_control` (``method="bh"``) on the finite values
    (Benjamini & Hochberg 1995). A test is a discovery at FDR ``alpha`` when ``q < alpha``.

    Parameters
    ----------
    p : array_like
        p-values in [0, 1], any shape; NaN for no test.

    >>> benjamini_hochberg([0.01, 0.04, 0.03, np.nan]).round(3).tolist()
    [0.03, 0.04, 0.04, nan]
    """
    p = np.asarray(p, dtype=float)
    flat = p.ravel()
    q = np.full_like(flat, np.nan)
    ok = ~np.isnan(flat)
    m = int(ok.sum())
    if m:
        if (flat[ok] < 0).any() or (flat[ok] > 1).any():
            raise ConfigError("p-values must lie in [0, 1]")
        order = np.argsort(flat[ok], kind="stable")
        ranked = flat[ok][order] * m / np.arange(1, m + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
        out = np.empty(m)
        out[order] = ranked
        q[ok] = out
    return q.reshape(p.shape)


def t_interval(x: Any, alpha: float = 0.05, axis: int = 0) -> tuple[Any, Any, Any]:
    """``(mean, low, high)``: the Student-t ``1 - alpha`` confidence interval of the mean along ``axis``.

    NaN bounds where there is one value (no spread to estimate); ``low == high == mean`` where the values do not
    vary. Equals ``scipy.stats.t.interval(1 - alpha, n - 1, mean, sem)``. No values, or NaN / infinite ones,
    raise :class:`DimensionError` / :class:`NaNError`.

    Parameters
    ----------
    x : array_like
        The values.
    alpha : float
        1 - the confidence level, in (0, 1).
    axis : int
        The axis the mean is taken over.

    >>> [round(v, 3) for v in t_interval([1.0, 2.0, 3.0, 4.0])]
    [2.5, 0.446, 4.554]
    """
    from scipy import stats as sps

    _check_alpha(alpha)
    a = np.asarray(x, dtype=float)
    if not -a.ndim <= axis < a.ndim:
        raise DimensionError(f"t_interval: axis {axis} does not exist in values of shape {a.shape} (give an array of "
                             "values, e.g. [1.0, 2.0, 3.0])")
    n = a.shape[axis]
    if n == 0 or a.size == 0:
        raise DimensionError(f"t_interval needs at least one value along axis {axis}, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise NaNError(f"t_interval got {int((~np.isfinite(a)).sum())} NaN or infinite value(s); drop them first")
    mean = a.mean(axis=axis)
    if n < 2:
        nan = np.full_like(np.asarray(mean, dtype=float), np.nan)
        return _scalar(mean), _scalar(nan), _scalar(nan)
    half = sps.t.ppf(1 - alpha / 2, n - 1) * a.std(axis=axis, ddof=1) / np.sqrt(n)
    return _scalar(mean), _scalar(mean - half), _scalar(mean + half)


def percentile_interval(samples: Any, alpha: float = 0.05, axis: int = 0) -> tuple[Any, Any]:
    """``(low, high)``: the ``alpha/2`` and ``1 - alpha/2`` quantiles of ``samples`` along ``axis`` (NaN-aware).

    Parameters
    ----------
    samples : array_like
        Bootstrap (or other) draws.
    alpha : float
        1 - the confidence level, in (0, 1).
    axis : int
        The draws' axis.
    """
    _check_alpha(alpha)
    s = np.asarray(samples, dtype=float)
    with np.errstate(invalid="ignore"):
        low = np.nanquantile(s, alpha / 2, axis=axis)
        high = np.nanquantile(s, 1 - alpha / 2, axis=axis)
    return _scalar(low), _scalar(high)


def _scalar(v: Any) -> Any:
    v = np.asarray(v)
    return float(v) if v.ndim == 0 else v


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")


@dataclass
class PermutationResult(Result):
    """A statistic, its null distribution and p-value.

    ``observed`` and ``p_value`` are floats, or arrays when the statistic returns one value per unit;
    ``null`` has shape ``(n_permutations, *observed.shape)``; ``method`` names the null
    (``"permutation"``, ``"group"``, ``"circular"``, ``"block"``).

    Parameters
    ----------
    observed, p_value : float or numpy.ndarray
        The statistic and its p-value.
    null : numpy.ndarray
        ``(n_permutations, *observed.shape)`` the statistic under the null.
    statistic : str
        The statistic's name.
    alternative : {"greater", "less", "two-sided"}
        The direction of the test.
    method : str
        The null: ``"permutation"``, ``"group"``, ``"circular"`` or ``"block"``.
    """

    observed: Any
    p_value: Any
    null: np.ndarray = field(repr=False)
    statistic: str
    alternative: str = "greater"
    method: str = "permutation"

    def to_frame(self) -> pd.DataFrame:
        """One row per statistic value: observed, p-value, null mean and sd, number of draws."""
        obs = np.atleast_1d(np.asarray(self.observed, dtype=float))
        null = np.asarray(self.null, dtype=float).reshape(len(self.null), -1)
        return pd.DataFrame({"observed": obs.ravel(), "p_value": np.atleast_1d(self.p_value).ravel(),
                             "n_permutations": len(self.null), "null_mean": null.mean(0), "null_sd": null.std(0),
                             "statistic": self.statistic, "method": self.method, "alternative": self.alternative})

    def plot(self, **kwargs: Any):
        """Histogram of the null with the observed value (the first one, for array statistics)."""
        import plotly.graph_objects as go

        null = np.asarray(self.null, dtype=float).reshape(len(self.null), -1)[:, 0]
        obs = float(np.atleast_1d(np.asarray(self.observed, dtype=float)).ravel()[0])
        p = float(np.atleast_1d(self.p_value).ravel()[0])
        fig = go.Figure(go.Histogram(x=null, name=f"null ({self.method})"))
        fig.add_vline(x=obs, line_color="#e4572e", annotation_text=f"observed (p={p:.3g})")
        return themed(fig, title=kwargs.get("title", f"Permutation test: {self.statistic}"), xaxis_title=self.statistic)

    def summary(self) -> str:
        """Observed value(s), p-value(s) and the null used."""
        obs, p = np.atleast_1d(self.observed), np.atleast_1d(self.p_value)
        head = (f"{self.statistic} = {float(obs[0]):.4g}, p = {float(p[0]):.3g}" if obs.size == 1 else
                f"{self.statistic}: {obs.size} values, {int(np.sum(p < 0.05))} with p < 0.05")
        return f"{head} ({self.alternative}; {len(self.null)} draws of a {self.method} null)"


@dataclass
class BootstrapResult(Result):
    """A bootstrap estimate with its percentile confidence interval.

    ``estimate``/``low``/``high`` are floats or arrays; ``samples`` has shape ``(n_bootstraps, ...)``;
    ``level`` is the confidence level (``1 - alpha``); ``over`` says what was resampled.

    Parameters
    ----------
    estimate, low, high : float or numpy.ndarray
        The statistic on the data and its interval.
    level : float
        The confidence level.
    samples : numpy.ndarray
        ``(n_bootstraps, ...)`` the statistic on each resample.
    over : str
        ``"samples"`` or ``"groups"``.
    """

    estimate: Any
    low: Any
    high: Any
    level: float
    samples: np.ndarray = field(repr=False)
    over: str

    def to_frame(self) -> pd.DataFrame:
        """One row per estimate: estimate, low, high, level, number of resamples, what was resampled."""
        est = np.atleast_1d(self.estimate)
        return pd.DataFrame({"estimate": est, "low": np.atleast_1d(self.low), "high": np.atleast_1d(self.high),
                             "level": self.level, "n_bootstraps": len(self.samples), "over": self.over})

    def plot(self, **kwargs: Any):
        """The estimates with their intervals as error bars."""
        import plotly.graph_objects as go

        f = self.to_frame()
        fig = go.Figure(go.Scatter(x=list(range(len(f))), y=f["estimate"], mode="markers",
                                   error_y=dict(type="data", symmetric=False, array=f["high"] - f["estimate"],
                                                arrayminus=f["estimate"] - f["low"])))
        return themed(fig, title=kwargs.get("title", f"bootstrap {self.level:.0%} CI over {self.over}"),
                      yaxis_title="estimate")

    def summary(self) -> str:
        """The estimate and interval (or how many estimates there are)."""
        est = np.atleast_1d(self.estimate)
        if est.size == 1:
            return (f"estimate {float(est[0]):.4g}, {self.level:.0%} CI [{float(np.atleast_1d(self.low)[0]):.4g}, "
                    f"{float(np.atleast_1d(self.high)[0]):.4g}] ({len(self.samples)} resamples of {self.over})")
        return f"{est.size} estimates with {self.level:.0%} CIs ({len(self.samples)} resamples of {self.over})"


def _take(a: Any, idx: np.ndarray) -> Any:
    import torch

    if isinstance(a, torch.Tensor):
        return a[torch.as_tensor(idx, device=a.device)]
    return np.asarray(a)[idx]


def _samples(a: Any) -> int:
    from ..tensor import Activations

    if isinstance(a, Activations):
        raise ConfigError("pass the data as arrays or tensors (a.data); a coordinate name in groups= is resolved "
                          "against the Activations given as source=")
    try:
        return len(a)
    except TypeError:
        raise DimensionError(f"bootstrap data must be arrays with a sample axis (rows), got {type(a).__name__} "
                             f"of shape {np.shape(a)}") from None


def permutation_test(statistic: Callable[..., Any], x: Any, y: Any, *, null: str = "auto", groups: Any = None,
                     n_permutations: int = 1000, seed: Any = 0, alternative: str = "greater",
                     min_shift: int | None = None, block_size: int | None = None, exact: bool = False,
                     vectorized: bool = False, batch_size: int = 256, source: Any = None,
                     progress: bool = False) -> PermutationResult:
    """Test ``statistic(x, y)`` against a null that reorders the samples (first axis) of ``y``.

    Parameters
    ----------
    statistic:
        ``f(x, y) -> float or array``; with ``vectorized=True``, ``f(x, y_batch)`` gets ``y`` with a
        leading batch axis and returns one value (or array) per batch row.
    null:
        ``"auto"`` (see :func:`~interp.stats.nulls.choose_null`), ``"permutation"``, ``"group"``,
        ``"circular"`` or ``"block"``.
    groups:
        A trial/subject label per sample, or a sample-coordinate name of ``source``.
    exact:
        With a plain permutation null and ``n! <= n_permutations``, use every permutation once
        (an exact test, equal to scipy's exact ``permutation_test``).
    """
    n = _samples(y)
    if _samples(x) != n:
        raise MismatchError(f"x has {_samples(x)} samples and y has {n}; they must be paired")
    codes = resolve_groups(groups, n, source)
    kind, _ = choose_null(null, groups=codes, source=source, activity=_2d(x), values=[np.asarray(y)]
                          if np.asarray(y).ndim == 1 else None)
    if exact:
        import math

        if kind != "permutation" or codes is not None or n > 12 or math.factorial(n) > n_permutations:
            raise ConfigError(f"exact=True enumerates every permutation of the samples, which needs a plain "
                              f"permutation null without groups and n! <= n_permutations (n = {n})")
        from .nulls import permutations

        idx = permutations(n, n_permutations, seed, exact=True)
    else:
        idx = null_indices(n, kind, groups=codes, n_permutations=n_permutations, seed=seed, min_shift=min_shift,
                           block_size=block_size)
    observed = np.asarray(statistic(x, y), dtype=float)
    rows = range(0, len(idx), batch_size)
    if progress:
        from interp._progress import tqdm

        rows = tqdm(rows, desc="permutations", unit="batch")
    parts = []
    for start in rows:
        chunk = idx[start:start + batch_size]
        if vectorized:
            parts.append(np.asarray(statistic(x, _take(y, chunk)), dtype=float))
        else:
            parts.append(np.stack([np.asarray(statistic(x, _take(y, r)), dtype=float) for r in chunk]))
    nul = np.concatenate(parts)
    name = getattr(statistic, "__name__", "statistic")
    p = p_value(observed, nul, alternative, exact=exact)
    return PermutationResult(_scalar(observed), p, nul, "statistic" if name == "<lambda>" else name, alternative, kind)


def _2d(x: Any) -> np.ndarray | None:
    try:
        a = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=float)
    except (TypeError, ValueError):
        return None
    return a.reshape(len(a), -1) if a.ndim >= 1 else None


def bootstrap(statistic: Callable[..., Any], *data: Any, groups: Any = None, n_bootstraps: int = 1000, seed: Any = 0,
              alpha: float = 0.05, vectorized: bool = False, source: Any = None,
              progress: bool = False) -> BootstrapResult:
    """Percentile bootstrap CI of ``statistic(*data)``, resampling the samples (rows) of all ``data`` together.

    With ``groups`` (a label per sample, or a sample-coordinate name of ``source``) whole groups are
    resampled (cluster bootstrap), the right choice for trials or subjects. Without groups the
    resamples equal :func:`scipy.stats.bootstrap`'s (``method="percentile"``) for the same seed.
    ``vectorized=True``: the statistic takes arrays with a leading resample axis (only without
    groups, or with groups of equal size).

    Parameters
    ----------
    statistic : Callable
        ``statistic(*data) -> float or array``.
    *data : array_like
        Arrays with the same number of samples (rows), resampled together.
    groups : array_like, optional
        One group label (trial, subject) per sample; or a sample-coordinate name of ``source``; default none.
    n_bootstraps : int
        Number of resamples.
    seed : int or numpy.random.Generator
        Seed of the draws (or a generator, used as is).
    alpha : float
        1 - the confidence level, in (0, 1).
    vectorized : bool
        The statistic takes arrays with a leading resample axis.
    source : Activations, optional
        The data a string ``groups`` names a coordinate of.
    progress : bool
        Show a progress bar over the resamples.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=50)
    >>> r = bootstrap(np.mean, x, n_bootstraps=2000)
    >>> bool(r.low < x.mean() < r.high)
    True
    """
    _check_alpha(alpha)
    if not data:
        raise ConfigError("give at least one data array to bootstrap")
    n = _samples(data[0])
    for d in data[1:]:
        if _samples(d) != n:
            raise MismatchError(f"every data array must have the same number of samples (rows) to resample together; "
                                f"got {[_samples(d) for d in data]}")
    if n < 2:
        raise DimensionError(f"a bootstrap needs at least 2 samples to resample, got {n}")
    codes = resolve_groups(groups, n, source)
    draws = bootstrap_indices(n, n_bootstraps, seed, groups=codes)
    estimate = np.asarray(statistic(*data), dtype=float)
    if not np.isfinite(estimate).all():
        raise NaNError(f"the statistic is {estimate} on the data (NaN or infinite values, or a statistic undefined for "
                       "them); its interval is undefined. Drop those values or use a NaN-aware statistic.")
    it = draws
    if progress:
        from interp._progress import tqdm

        it = tqdm(draws, desc="bootstrap", unit="resample")
    if vectorized and isinstance(draws, np.ndarray):
        samples = np.asarray(statistic(*[_take(d, draws) for d in data]), dtype=float)
    else:
        samples = np.stack([np.asarray(statistic(*[_take(d, r) for d in data]), dtype=float) for r in it])
    low, high = percentile_interval(samples, alpha)
    if np.isnan(low).any() or np.isnan(high).any():
        raise NaNError("the statistic was NaN or infinite on the resamples, so the interval is undefined; drop the NaN "
                       "or infinite values (or use a NaN-aware statistic)")
    return BootstrapResult(_scalar(estimate), low, high, 1 - alpha, samples, "groups" if codes is not None else "samples")
