"""Cluster-based permutation tests over time, or over a time x time grid (Maris & Oostenveld 2007,
J Neurosci Methods 164:177-190).

A statistic is computed at every time point (or cell of a time-generalisation matrix); neighbouring
points that pass a cluster-forming ``threshold`` form clusters; a cluster's *mass* is the sum of the
statistic over its points. Under the null (sign flips of per-subject time courses, label permutations
of trials, or stimulus-label permutations of an RSA time course) the same is done to every permuted map
and the most extreme cluster mass of each map is kept. A cluster's p-value is
``(1 + #{null extremes >= its mass}) / (1 + n_permutations)``, which controls the family-wise error over
the whole time axis without a correction per time point. Neighbours are the adjacent time points (in 2-D:
the four adjacent cells, ``scipy.ndimage.label``'s default), as in MNE-Python's
``permutation_cluster_1samp_test`` with ``adjacency=None``.

* :func:`cluster_permutation_test`: one-sample (sign flips, exact when ``2**n - 1 <= n_permutations``) or
  two-sample (label permutations) t-test over observations, with MNE's default threshold (t at p = 0.05,
  one-sided; 0.025 per side for two-sided). Agrees with MNE's ``permutation_cluster_1samp_test`` (same
  statistic, clusters and, for the exact test, p-values; ``tests/test_stats_clusters.py``).
* :func:`cluster_test`: the same cluster step on an observed map and null maps you computed yourself
  (e.g. :func:`interp.similarity.temporal.sliding_rsa` with stimulus-label permutations).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(12, 50)); x[:, 20:30] += 1.5          # 12 subjects, 50 time points, effect at 20-29
>>> res = cluster_permutation_test(x, n_permutations=500, seed=0)
>>> res.to_frame().loc[0, ["time_start", "time_stop"]].tolist(), bool(res.to_frame().loc[0, "p_value"] < 0.05)
([20, 29], True)
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.ndimage
import scipy.stats

from interp._progress import tqdm

from ..errors import ConfigError, DimensionError, InputTypeError, NaNError
from ..results import Result, themed
from .inference import ALTERNATIVES, p_value

__all__ = ["cluster_test", "cluster_permutation_test", "find_clusters", "Cluster", "ClusterResult"]


@dataclass
class Cluster:
    """One cluster: the boolean ``mask`` of its points, its ``mass`` (sum of the statistic), ``sign`` and p-value.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean, the shape of the statistic map: the cluster's points.
    mass : float
        Sum of the statistic over the cluster.
    sign : int
        ``1`` above the threshold, ``-1`` below it.
    p_value : float
        Cluster-level permutation p-value (NaN until tested).
    """

    mask: np.ndarray = field(repr=False)
    mass: float
    sign: int
    p_value: float = float("nan")

    @property
    def n_points(self) -> int:
        return int(self.mask.sum())


@dataclass
class ClusterResult(Result):
    """Clusters of a statistic map with their permutation p-values.

    ``statistic``: the observed map (1-D over time or 2-D time x time); ``clusters``: every cluster that
    passed the threshold, most significant first; ``null``: the most extreme cluster mass of each null map;
    ``coords``: one coordinate array per axis (e.g. seconds), ``dims`` their names.

    Parameters
    ----------
    statistic : numpy.ndarray
        The observed map.
    clusters : list of Cluster
        The clusters, most significant first.
    null : numpy.ndarray
        ``(n_permutations,)`` the most extreme cluster mass of each null map.
    threshold : float, array_like or tuple, optional
        The cluster-forming threshold.
    alternative : {"greater", "less", "two-sided"}
        The direction of the test.
    alpha : float
        The significance level for reporting.
    coords : list
        One coordinate array per axis.
    dims : tuple of str
        The axes' names.
    name : str
        The statistic's name.
    """

    statistic: np.ndarray
    clusters: list[Cluster]
    null: np.ndarray = field(repr=False)
    threshold: Any = None
    alternative: str = "greater"
    alpha: float = 0.05
    coords: list = field(default_factory=list, repr=False)
    dims: tuple = ("time",)
    name: str = "statistic"
    exact: bool = False

    @property
    def n_permutations(self) -> int:
        return int(len(self.null))

    @property
    def significant(self) -> list[Cluster]:
        """Clusters with ``p_value < alpha``."""
        return [c for c in self.clusters if c.p_value < self.alpha]

    @property
    def mask(self) -> np.ndarray:
        """Boolean map of the points that belong to a significant cluster."""
        out = np.zeros(self.statistic.shape, dtype=bool)
        for c in self.significant:
            out |= c.mask
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per cluster: sign, mass, p_value, significant, n_points and the first/last coordinate per axis."""
        rows = []
        for i, c in enumerate(self.clusters):
            row: dict[str, Any] = {"cluster": i, "sign": c.sign, "mass": c.mass, "p_value": c.p_value,
                                   "significant": bool(c.p_value < self.alpha), "n_points": c.n_points}
            idx = np.nonzero(c.mask)
            for axis, (dim, values) in enumerate(zip(self.dims, self.coords)):
                where = np.asarray(values)[idx[axis]]
                row[f"{dim}_start"], row[f"{dim}_stop"] = where.min(), where.max()
            rows.append(row)
        columns = ["cluster", "sign", "mass", "p_value", "significant", "n_points"] + \
            [f"{d}_{s}" for d in self.dims for s in ("start", "stop")]
        return pd.DataFrame(rows, columns=columns)

    def summary(self) -> str:
        sig = self.significant
        head = (f"ClusterResult: {len(self.clusters)} cluster(s) of {self.name} ({self.alternative}, "
                f"{self.n_permutations} {'exact ' if self.exact else ''}permutations), {len(sig)} with p < {self.alpha}")
        lines = [head]
        for c in sig[:5]:
            idx = np.nonzero(c.mask)
            span = ", ".join(f"{d} {np.asarray(v)[idx[a]].min():.4g}..{np.asarray(v)[idx[a]].max():.4g}"
                             for a, (d, v) in enumerate(zip(self.dims, self.coords)))
            lines.append(f"  {span}: mass {c.mass:.4g}, p = {c.p_value:.3g}")
        return "\n".join(lines)

    def plot(self, **kwargs: Any) -> Any:
        """1-D: the statistic over time, the threshold and the significant clusters shaded; 2-D: a heatmap
        with the significant clusters outlined."""
        import plotly.graph_objects as go

        title = kwargs.get("title", f"{self.name}: cluster permutation test ({self.alternative})")
        if self.statistic.ndim == 1:
            t = np.asarray(self.coords[0])
            fig = go.Figure(go.Scatter(x=t, y=self.statistic, mode="lines", name=self.name))
            for thr in _threshold_lines(self.threshold, self.alternative, len(t)):
                fig.add_trace(go.Scatter(x=t, y=thr, mode="lines", line=dict(dash="dot", color="gray"),
                                         name="threshold", showlegend=False))
            for c in self.significant:
                where = t[c.mask]
                fig.add_vrect(x0=where.min(), x1=where.max(), fillcolor="#e4572e", opacity=0.15, line_width=0,
                              annotation_text=f"p={c.p_value:.3g}", annotation_position="top left")
            fig.update_layout(xaxis_title=self.dims[0], yaxis_title=self.name)
            return themed(fig, title=title)
        fig = go.Figure(go.Heatmap(z=self.statistic, x=self.coords[1], y=self.coords[0], colorscale="RdBu_r",
                                   zmid=0, colorbar=dict(title=self.name)))
        if self.significant:
            fig.add_trace(go.Contour(z=self.mask.astype(float), x=self.coords[1], y=self.coords[0], showscale=False,
                                     contours=dict(start=0.5, end=0.5, coloring="lines"), line=dict(color="black"),
                                     name="p < alpha", hoverinfo="skip"))
        fig.update_layout(xaxis_title=self.dims[1], yaxis_title=self.dims[0])
        return themed(fig, title=title)

    def _repr_html_(self) -> str:
        return super()._repr_html_() if self.clusters else f"<p>{html.escape(self.summary())}</p>"


def _threshold_lines(threshold: Any, alternative: str, n: int) -> list[np.ndarray]:
    lo, hi = _bounds(threshold, alternative)
    out = []
    for b in (lo, hi):
        if b is not None:
            arr = np.broadcast_to(np.asarray(b, dtype=float), (n,)) if np.ndim(b) <= 1 else None
            if arr is not None:
                out.append(arr)
    return out


def _bounds(threshold: Any, alternative: str) -> tuple[Any, Any]:
    """(low, high) cluster-forming bounds: points below low (negative clusters) or above high (positive)."""
    if alternative not in ALTERNATIVES:
        raise ConfigError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    if threshold is None:
        raise ConfigError("a cluster-forming threshold is needed (a number, or one per point)")
    if alternative == "greater":
        return None, threshold
    if alternative == "less":
        return threshold, None
    if isinstance(threshold, tuple):
        if len(threshold) != 2:
            raise ConfigError("a two-sided threshold is a number t (bounds -t, t) or a tuple (low, high)")
        return threshold
    t = np.abs(np.asarray(threshold, dtype=float))
    return -t, t


def find_clusters(statistic: np.ndarray, threshold: Any, alternative: str = "greater") -> list[Cluster]:
    """Clusters of adjacent points beyond ``threshold`` (a number or one value per point); masses are the
    sum of the statistic over each cluster. Two-sided: positive and negative clusters are found separately.

    Parameters
    ----------
    statistic : numpy.ndarray
        The map (any number of axes; adjacency along the axes).
    threshold : float, array_like or tuple
        A number or one value per point; for ``"two-sided"`` t means (-t, t), a tuple gives (low, high).
    alternative : {"greater", "less", "two-sided"}
        Which side(s) of the threshold form clusters.
    """
    stat = np.asarray(statistic, dtype=float)
    lo, hi = _bounds(threshold, alternative)
    out: list[Cluster] = []
    for sign, supra in ((1, None if hi is None else stat > hi), (-1, None if lo is None else stat < lo)):
        if supra is None or not supra.any():
            continue
        labels, n = scipy.ndimage.label(supra)
        masses = scipy.ndimage.sum(stat, labels, index=np.arange(1, n + 1))
        out.extend(Cluster(labels == k + 1, float(m), sign) for k, m in enumerate(np.atleast_1d(masses)))
    return out


def _extreme(stat: np.ndarray, lo: Any, hi: Any, alternative: str) -> float:
    """The most extreme cluster mass of one map (0 when it has no cluster)."""
    best = 0.0
    if hi is not None:
        supra = stat > hi
        if supra.any():
            labels, n = scipy.ndimage.label(supra)
            best = max(best, float(np.max(scipy.ndimage.sum(stat, labels, index=np.arange(1, n + 1)))))
    if lo is not None:
        supra = stat < lo
        if supra.any():
            labels, n = scipy.ndimage.label(supra)
            low = float(np.min(scipy.ndimage.sum(stat, labels, index=np.arange(1, n + 1))))
            best = min(best, low) if alternative == "less" else max(best, -low)
    return best


def _run_masses(stats: np.ndarray, supra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masses of the runs of True in each row of ``supra`` ``(B, T)`` and the row of each run (vectorised)."""
    B, T = supra.shape
    padded = np.zeros((B, T + 1), dtype=bool)
    padded[:, :T] = supra
    starts = padded & ~np.concatenate([np.zeros((B, 1), dtype=bool), padded[:, :-1]], axis=1)
    labels = np.cumsum(starts.ravel()) * padded.ravel()
    values = np.zeros((B, T + 1))
    values[:, :T] = stats
    n = int(starts.sum())
    masses = np.bincount(labels, weights=values.ravel(), minlength=n + 1)[1:]
    rows = np.nonzero(starts)[0]
    return masses, rows


def _extremes(stats: np.ndarray, lo: Any, hi: Any, alternative: str) -> np.ndarray:
    """The most extreme cluster mass of each map of ``stats`` ``(B, *shape)`` (0 for a map without clusters)."""
    if stats.ndim != 2:
        return np.array([_extreme(m, lo, hi, alternative) for m in stats])
    best = np.zeros(stats.shape[0])
    if hi is not None:
        masses, rows = _run_masses(stats, stats > hi)
        np.maximum.at(best, rows, masses)
    if lo is not None:
        masses, rows = _run_masses(stats, stats < lo)
        if alternative == "less":
            np.minimum.at(best, rows, masses)
        else:
            np.maximum.at(best, rows, -masses)
    return best


def _p_values(clusters: list[Cluster], null: np.ndarray, alternative: str) -> None:
    """Cluster p-values from the null's extreme masses (:func:`interp.stats.p_value`, with its +1 and tie rule)."""
    for c in clusters:
        if alternative == "two-sided":
            c.p_value = float(p_value(abs(c.mass), null, "greater"))
        else:
            c.p_value = float(p_value(c.mass, null, alternative))


def _check_map(stat: np.ndarray, name: str) -> np.ndarray:
    if stat.ndim not in (1, 2):
        raise DimensionError(f"{name} must be 1-D (time) or 2-D (time x time), got shape {stat.shape}")
    if not np.isfinite(stat).all():
        raise NaNError(f"{name} holds {int((~np.isfinite(stat)).sum())} NaN/inf values")
    return stat


def _axes(shape: tuple, coords: Sequence | None, dims: Sequence[str] | None) -> tuple[list, tuple]:
    dims = tuple(dims) if dims is not None else (("time",) if len(shape) == 1 else ("time", "time2"))
    coords = list(coords) if coords is not None else [np.arange(n) for n in shape]
    if len(dims) != len(shape) or len(coords) != len(shape) or any(len(c) != n for c, n in zip(coords, shape)):
        raise DimensionError(f"coords/dims must give one axis per dimension of the map {shape}: got dims {dims} and "
                             f"coordinate lengths {[len(c) for c in coords]}")
    return coords, dims


def cluster_test(observed: Any, null: Any, *, threshold: Any, alternative: str = "greater", alpha: float = 0.05,
                 coords: Sequence | None = None, dims: Sequence[str] | None = None, name: str = "statistic",
                 exact: bool = False) -> ClusterResult:
    """Cluster-level p-values of an ``observed`` map against ``null`` maps ``(n_permutations, *observed.shape)``.

    ``threshold`` forms the clusters (a number, or one value per point such as the pointwise 95th percentile
    of the null; for ``"two-sided"`` a number t means (-t, t), a tuple gives (low, high)). The null maps must
    not include the observed (identity) permutation: it is counted once by the ``1 +`` of the p-value.

    Parameters
    ----------
    observed : array_like
        The statistic map (1-D over time or 2-D time x time).
    null : array_like
        ``(n_permutations, *observed.shape)`` null maps.
    threshold : float, array_like or tuple
        The cluster-forming threshold: a number or one value per point; for ``"two-sided"`` a number t means
        (-t, t), a tuple gives (low, high).
    alternative : {"greater", "less", "two-sided"}
        The direction of the test.
    alpha : float
        The significance level for reporting.
    coords : Sequence, optional
        One coordinate array per axis (e.g. seconds).
    dims : Sequence[str], optional
        The axes' names (default ``("time",)``, or ``("time", "time2")`` for a 2-D map).
    name : str
        The statistic's name.
    exact : bool
        ``null`` is every permutation (no ``1 +`` in the p-value).

    >>> import numpy as np
    >>> obs = np.zeros(20); obs[5:9] = 3.0
    >>> null = np.random.default_rng(0).normal(size=(199, 20))
    >>> cluster_test(obs, null, threshold=2.0).clusters[0].p_value
    0.005
    """
    obs = _check_map(np.asarray(observed, dtype=float), "observed")
    nul = np.asarray(null, dtype=float)
    if nul.ndim != obs.ndim + 1 or nul.shape[1:] != obs.shape:
        raise DimensionError(f"null must be (n_permutations, *{obs.shape}), got shape {nul.shape}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    coords, dims = _axes(obs.shape, coords, dims)
    lo, hi = _bounds(threshold, alternative)
    clusters = find_clusters(obs, threshold, alternative)
    extremes = _extremes(nul, lo, hi, alternative)
    _p_values(clusters, extremes, alternative)
    clusters.sort(key=lambda c: (c.p_value, -abs(c.mass)))
    return ClusterResult(obs, clusters, extremes, threshold, alternative, alpha, coords, dims, name, exact)


def _as_observations(x: Any, name: str) -> tuple[np.ndarray, list | None, tuple | None]:
    """``(n_obs, *map_shape)`` float64 array (+ coords and dims when ``x`` is an Activations)."""
    from ..tensor import Activations

    coords = dims = None
    if isinstance(x, Activations):
        rest = [d for d in x.dims if d != "sample"]
        order = (["sample"] if "sample" in x.dims else []) + rest
        arr = x.transpose(*order).data.detach().cpu().double().numpy() if "sample" in x.dims else \
            x.data.detach().cpu().double().numpy()
        dims = tuple(rest if "sample" in x.dims else x.dims[1:])
        coords = []
        for d in dims:
            frame = x.coords[d]
            coords.append(frame[d].to_numpy() if d in frame.columns else
                          (frame.iloc[:, 0].to_numpy() if frame.shape[1] else np.arange(x.sizes[d])))
    elif hasattr(x, "detach"):
        arr = x.detach().cpu().double().numpy()
    else:
        arr = np.asarray(x)
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
            raise InputTypeError(f"{name} must be numeric (observations x time[ x time]), got dtype {arr.dtype}")
        arr = arr.astype(float)
    if arr.ndim not in (2, 3):
        raise DimensionError(f"{name} must be (observations, time) or (observations, time, time), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise NaNError(f"{name} holds {int((~np.isfinite(arr)).sum())} NaN/inf values")
    return arr, coords, dims


def _t_one_sample(signs: np.ndarray, X: np.ndarray, sumsq: np.ndarray) -> np.ndarray:
    n = X.shape[0]
    mean = signs @ X / n
    var = np.maximum(sumsq - n * mean**2, 0) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num(mean / np.sqrt(var / n))


def _t_two_sample(member: np.ndarray, Z: np.ndarray, Z2: np.ndarray, n1: int) -> np.ndarray:
    n = Z.shape[0]
    n2 = n - n1
    s1, q1 = member @ Z, member @ Z2
    s2, q2 = Z.sum(0) - s1, Z2.sum(0) - q1
    m1, m2 = s1 / n1, s2 / n2
    pooled = (q1 - n1 * m1**2 + q2 - n2 * m2**2) / (n - 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num((m1 - m2) / np.sqrt(np.maximum(pooled, 0) * (1 / n1 + 1 / n2)))


def cluster_permutation_test(x: Any, y: Any = None, *, threshold: Any = None, n_permutations: int = 1000,
                             alternative: str = "greater", alpha: float = 0.05, seed: int = 0,
                             coords: Sequence | None = None, dims: Sequence[str] | None = None,
                             batch_size: int = 256, progress: bool = False) -> ClusterResult:
    """Cluster-based permutation t-test over time (Maris & Oostenveld 2007).

    Parameters
    ----------
    x: ``(n_observations, n_times)`` or ``(n_observations, n_times, n_times2)``: one map per subject (or
        session, trial); an ``Activations`` with a ``sample`` dim (its other dims' coords label the axes).
    y: optional second group ``(m_observations, ...)``: then a two-sample t-test (pooled variance) with the
        group labels permuted. Without ``y``: a one-sample t-test against 0 with random sign flips (for paired
        data pass ``x - y`` as ``x``).
    threshold: cluster-forming t value (default: MNE's, t at p = 0.05 one-sided, 0.025 per side two-sided).
    n_permutations: random permutations; a one-sample test with ``2**n - 1 <= n_permutations`` enumerates
        every sign flip instead (exact test).
    alternative: ``"greater"`` (default: positive effects), ``"less"`` or ``"two-sided"``.

    >>> import numpy as np
    >>> x = np.random.default_rng(1).normal(size=(10, 30))       # no effect
    >>> cluster_permutation_test(x, n_permutations=200).significant
    []
    """
    if alternative not in ALTERNATIVES:
        raise ConfigError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    if n_permutations < 1:
        raise ConfigError(f"n_permutations must be >= 1, got {n_permutations}")
    X, c0, d0 = _as_observations(x, "x")
    coords = coords if coords is not None else c0
    dims = dims if dims is not None else d0
    rng = np.random.default_rng(seed)
    shape = X.shape[1:]
    flat = X.reshape(X.shape[0], -1)
    exact = False
    if y is None:
        n = X.shape[0]
        if n < 2:
            raise DimensionError(f"a one-sample test needs at least 2 observations, got {n}")
        df = n - 1
        sumsq = (flat**2).sum(0)
        observed = _t_one_sample(np.ones((1, n)), flat, sumsq)[0]
        if 2**n - 1 <= n_permutations:
            exact = True
            codes = np.arange(1, 2**n)
            draws = lambda start, stop: 1 - 2 * ((codes[start:stop, None] >> np.arange(n)[None]) & 1)  # noqa: E731
            total = len(codes)
        else:
            draws = lambda start, stop: rng.choice([-1.0, 1.0], size=(stop - start, n))  # noqa: E731
            total = n_permutations
        stat_fn = lambda s: _t_one_sample(s.astype(float), flat, sumsq)  # noqa: E731
    else:
        Y, _, _ = _as_observations(y, "y")
        if Y.shape[1:] != shape:
            raise DimensionError(f"x maps are {shape} but y maps are {Y.shape[1:]}")
        n1, n2 = X.shape[0], Y.shape[0]
        if n1 < 2 or n2 < 2:
            raise DimensionError(f"a two-sample test needs at least 2 observations per group, got {n1} and {n2}")
        df = n1 + n2 - 2
        Z = np.concatenate([flat, Y.reshape(n2, -1)])
        Z2 = Z**2
        first = np.zeros((1, n1 + n2))
        first[0, :n1] = 1
        observed = _t_two_sample(first, Z, Z2, n1)[0]

        def draws(start: int, stop: int) -> np.ndarray:
            member = np.zeros((stop - start, n1 + n2))
            for row in range(stop - start):
                member[row, rng.permutation(n1 + n2)[:n1]] = 1
            return member

        total = n_permutations
        stat_fn = lambda m: _t_two_sample(m, Z, Z2, n1)  # noqa: E731
    if threshold is None:
        p = 0.05 / (2 if alternative == "two-sided" else 1)
        threshold = float(scipy.stats.t.ppf(1 - p, df))
        if alternative == "less":
            threshold = -threshold
    lo, hi = _bounds(threshold, alternative)
    null = np.empty(total)
    for start in tqdm(range(0, total, batch_size), disable=not progress, desc="permutations"):
        stop = min(start + batch_size, total)
        stats = stat_fn(draws(start, stop)).reshape(stop - start, *shape)
        null[start:stop] = _extremes(stats, lo, hi, alternative)
    obs = observed.reshape(shape)
    coords, dims = _axes(obs.shape, coords, dims)
    clusters = find_clusters(obs, threshold, alternative)
    _p_values(clusters, null, alternative)
    clusters.sort(key=lambda c: (c.p_value, -abs(c.mass)))
    return ClusterResult(obs, clusters, null, threshold, alternative, alpha, coords, dims, "t", exact)
