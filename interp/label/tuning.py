"""Tuning: tuning curves with confidence intervals, and cosine (direction) tuning with circular statistics.

* :func:`tuning_curves`: the mean activity of every unit in bins of a continuous variable (speed,
  position, angle) or per level of a categorical one (reach target, stimulus class), with bootstrap
  confidence intervals that resample whole trials when ``groups`` is given (Field & Welsh 2007; runs
  of consecutive trials when the activity runs on across trial boundaries), blocks of consecutive
  samples on a time series, or samples otherwise (percentile intervals; with independent trials, the
  bootstrap standard error with a t quantile on the Kish (1965) effective number of trials in the bin,
  ``(sum n_g)^2 / sum n_g^2`` less one, ``n_g`` a trial's samples in the bin). Where the
  activity is autocorrelated across trials or blocks, the interval is the bin mean -/+ t sd with the
  variance from the activity's autocovariance (:func:`interp.stats.weighted_mean_variance`): the
  bootstrap over a few runs of trials missed the true mean in 7-8% of bins instead of 5%.
* :func:`direction_tuning`: the cosine model of Georgopoulos et al. (1982),
  ``rate = b0 + b1 cos(theta) + b2 sin(theta)``, fit by least squares on the direction of a 2-D
  variable (``x``, ``y``: hand velocity) or on an angle (``angle``: head direction). Per unit: the
  preferred direction ``atan2(b2, b1)`` in degrees [0, 360), the amplitude ``hypot(b1, b2)``, the
  modulation depth ``amplitude / b0`` (for non-negative activity such as rates and counts; NaN for
  signed activity such as model units or z-scored traces, whose labels give the amplitude), ``r2``, and a
  p-value of ``r2`` from the test :func:`interp.stats.select_null` picks for the design (a direction
  constant within trials: the trials' directions are permuted, trials of any length; equal trials
  that restart: whole trials swap; otherwise the autocorrelation-corrected Wald test on ``cos, sin``;
  independent samples: a permutation), with BH-FDR ``q_value``. Circular
  statistics of the occupancy-normalised binned tuning curve (mean direction, resultant length) sit
  next to the fit, as a head-direction analysis reports them (Taube et al. 1990). ``per="trial"`` fits
  trial averages against each trial's direction (the classical centre-out analysis); bootstrap
  intervals (``n_bootstraps``, over trials) bound the preferred direction and the modulation depth. The Rayleigh test
  is not applied to a unit's spikes (their angles follow the animal's occupancy and are not
  independent); :meth:`DirectionTuning.pd_uniformity` applies it where it is valid, to the preferred
  directions of the tuned units (are they spread uniformly around the circle?).

Both work on any ``(sample, unit)`` :class:`~interp.Activations` or array: recorded neurons and model units.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> theta = rng.uniform(0, 2 * np.pi, 2000)
>>> rate = 10 + 4 * np.cos(theta - np.deg2rad(135))[:, None] + rng.normal(size=(2000, 1))
>>> res = direction_tuning(rate, angle=theta, n_permutations=199)
>>> res.labels()[0]
'cosine-tuned, PD 135°, depth 0.40'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DimensionError, InputTypeError, MismatchError, NaNError
from ..results import Result, themed
from ..stats import (
    EFFECTIVE_N,
    autocorrelated_wald,
    benjamini_hochberg,
    blocks,
    bootstrap_counts,
    boundary_correlation,
    circular_mean,
    is_time_series,
    lag1_autocorrelation,
    null_indices,
    p_value,
    percentile_interval,
    rayleigh_test,
    resolve_groups,
    resultant_length,
    sample_layout,
    select_null,
    weighted_mean_variance,
    wrap_degrees,
)
from ..tensor import Activations

__all__ = ["TuningCurves", "DirectionTuning", "tuning_curves", "direction_tuning"]


def _activity(acts: Any) -> tuple[np.ndarray, list[str], Activations | None]:
    if isinstance(acts, Activations):
        if acts.data.ndim != 2:
            raise DimensionError(f"tuning needs (sample, unit) activity, got dims {acts.dims}; flatten first")
        X = acts.data.detach().cpu().double().numpy()
        units = acts.coords[acts.dims[1]]
        names = [str(v) for v in units["name"]] if "name" in units.columns else [str(i) for i in range(X.shape[1])]
        return X, names, acts
    X = np.asarray(acts.detach().cpu() if hasattr(acts, "detach") else acts, dtype=float)
    X = X[:, None] if X.ndim == 1 else X
    if X.ndim != 2:
        raise DimensionError(f"activity must be (sample, unit), got shape {X.shape}")
    return X, [str(i) for i in range(X.shape[1])], None


def _values(v: Any, source: Activations | None, n: int, what: str) -> np.ndarray:
    if isinstance(v, str):
        if source is None:
            raise InputTypeError(f"{what}={v!r} names a coordinate, which needs an Activations; pass an array instead")
        v = source.coord(v, source.dims[0])
    arr = np.asarray(v)
    if arr.ndim != 1 or len(arr) != n:
        raise MismatchError(f"{what} has shape {arr.shape} but there are {n} samples; give one value per sample")
    return arr


def _resampling(n: int, codes: np.ndarray | None, source: Any, X: np.ndarray,
                block_size: int | None) -> tuple[np.ndarray | None, str]:
    """Groups for the bootstrap: trials, blocks of a time series, or none (single samples)."""
    if codes is not None:
        G = int(codes.max()) + 1
        cross = boundary_correlation(X, codes)
        if not cross >= 0.1 or G < 10:
            return codes, f"{G} trials"
        # the activity runs on across trials: trials are not independent, resample runs of consecutive trials
        # covering twice the activity's autocorrelation time
        r = min(max(float(np.median(lag1_autocorrelation(X, codes))), 0.0), 0.99)
        tau = (1 + r) / (1 - r)
        per = int(np.clip(np.ceil(4 * tau * G / n) + 1, 2, max(2, G // 5)))
        first = pd.unique(codes)
        rank = np.empty(G, dtype=np.int64)
        rank[first] = np.arange(G)
        return rank[codes] // per, (f"runs of {per} consecutive trials ({G} trials; the activity runs on across trial "
                                    f"boundaries, r {cross:.2f})")
    r = float(np.median(lag1_autocorrelation(X)))
    if is_time_series(source) or r > max(0.1, 3 / np.sqrt(n)):
        if block_size is None:
            r = min(max(r, 0.0), 0.99)
            block_size = int(np.clip(np.ceil(2 * (1 + r) / (1 - r)), 2, max(2, n // 10)))
        return blocks(n, block_size), f"blocks of {block_size} samples (autocorrelated samples)"
    return None, "samples"


def _corrected_interval(X: np.ndarray, code: np.ndarray, K: int, mean: np.ndarray, codes: np.ndarray | None,
                        source: Any, ok: np.ndarray, alpha: float, resampled: str) -> tuple[np.ndarray, np.ndarray, str]:
    """``mean -/+ t * sd``: the variance of each bin mean from the activity's autocovariance (within and across
    trials or segments, lags in time, centring bias corrected; :func:`interp.stats.weighted_mean_variance`), ``t``
    from ``t(n_eff * n / span)``: gaps raise ``n_eff`` but not the pairs behind the autocovariance (``span``: samples
    of the time grid). 300 null data sets per design missed 5.4% (gaps) with ``t(n_eff)``, 5.1% now; bootstrap over
    runs of trials 7-8% (``benchmarks/results/calibration.md``)."""
    from scipy import stats as sps

    counts = np.bincount(code, minlength=K).astype(float)
    W = (code[:, None] == np.arange(K)[None, :]) / np.where(counts > 0, counts, 1.0)[None, :]
    segments, positions, note = sample_layout(source, len(ok), keep=ok, groups=codes)
    var, n_eff = weighted_mean_variance(X, W, codes if codes is not None else segments, positions)
    df = n_eff * (len(X) / (int(positions[-1]) + 1) if positions is not None else 1.0)
    half = sps.t.ppf(1 - alpha / 2, np.maximum(df, 1.0))[:, None] * np.sqrt(var)
    half = np.where(counts[None, :] > 0, half, np.nan)
    what = ("autocorrelation-corrected interval of each bin mean (effective n "
            f"{np.median(n_eff):.0f} of {len(X)} samples; {resampled} were resampled for the bootstrap samples"
            + (f"; {note}" if note else "") + ")")
    return mean - half, mean + half, what


@dataclass
class TuningCurves(Result):
    """Mean activity per bin (or category) of a variable, with bootstrap confidence intervals.

    Parameters
    ----------
    mean, low, high, samples : numpy.ndarray
        ``(unit, bin)`` means and interval bounds; ``samples``: the bootstrap means ``(n_bootstraps, unit, bin)``.
    counts, bins : numpy.ndarray
        Samples per bin; the bin centres (continuous) or the category labels.
    names : list of str
        The units' names.
    variable, resampled : str
        The variable's name; what the bootstrap resampled (samples, trials, blocks).
    categorical : bool
        Categories rather than bins of a continuous variable.
    level : float
        The intervals' confidence level.
    """

    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    counts: np.ndarray
    bins: np.ndarray
    names: list[str]
    variable: str
    categorical: bool
    level: float
    resampled: str
    samples: np.ndarray = field(repr=False)

    def to_frame(self) -> pd.DataFrame:
        """One row per (unit, bin): unit, name, bin, mean, low, high, n_samples."""
        U, K = self.mean.shape
        return pd.DataFrame({"unit": np.repeat(np.arange(U), K), "name": np.repeat(self.names, K),
                             "bin": np.tile(self.bins, U), "mean": self.mean.ravel(), "low": self.low.ravel(),
                             "high": self.high.ravel(), "n_samples": np.tile(self.counts, U)})

    def preferred(self) -> pd.DataFrame:
        """Per unit: the bin of the largest mean, and the curve's range (max - min)."""
        best = np.nanargmax(np.where(np.isnan(self.mean), -np.inf, self.mean), axis=1)
        return pd.DataFrame({"unit": np.arange(len(self.names)), "name": self.names, "preferred": self.bins[best],
                             "range": np.nanmax(self.mean, 1) - np.nanmin(self.mean, 1)})

    def summary(self) -> str:
        """What was binned and how the intervals were made."""
        kind = "categories" if self.categorical else "bins"
        how = self.resampled if self.resampled.startswith("autocorr") else f"from a bootstrap over {self.resampled}"
        return (f"tuning curves of {len(self.names)} units over {len(self.bins)} {kind} of {self.variable}; "
                f"{self.level:.0%} CIs: {how}")

    def plot(self, units: Any = None, **kwargs: Any):
        """Curves with CI bands for up to 6 units (default: the widest ranges).

        Parameters
        ----------
        units : Sequence[int], optional
            Unit indices to draw; ``title=`` in ``kwargs`` sets the title.
        """
        import plotly.graph_objects as go

        if units is None:
            units = self.preferred().sort_values("range", ascending=False)["unit"].head(6).tolist()
        fig = go.Figure()
        x = [str(b) for b in self.bins] if self.categorical else self.bins
        for i, u in enumerate(units):
            color = f"hsl({(i * 67) % 360},60%,45%)"
            fig.add_trace(go.Scatter(x=x, y=self.mean[u], mode="lines+markers", name=self.names[u],
                                     line=dict(color=color),
                                     error_y=dict(type="data", symmetric=False, array=self.high[u] - self.mean[u],
                                                  arrayminus=self.mean[u] - self.low[u])))
        return themed(fig, title=kwargs.get("title", f"tuning to {self.variable} ({self.level:.0%} CI over "
                                                     f"{self.resampled})"),
                      xaxis_title=self.variable, yaxis_title="mean activity")


def tuning_curves(acts: Any, variable: Any, bins: int | Any = 8, *, groups: Any = None, categorical: bool | None = None,
                  n_bootstraps: int = 1000, block_size: int | None = None, alpha: float = 0.05,
                  seed: int = 0) -> TuningCurves:
    """Tuning curves of every unit to ``variable``, with ``1 - alpha`` bootstrap confidence intervals.

    Parameters
    ----------
    acts:
        ``(sample, unit)`` activity (:class:`~interp.Activations` or array).
    variable:
        A sample-coordinate name of ``acts`` or one value per sample (NaN: sample ignored).
    bins:
        For a continuous variable: the number of equal-width bins over its range, or the bin edges.
    groups:
        Trials (a coordinate name or a label per sample): the bootstrap resamples whole trials. Without
        groups, a time series (or autocorrelated samples) is resampled in blocks of ``block_size``
        consecutive samples (default: twice the AR(1) correlation time of the activity).
    categorical:
        ``None``: strings, booleans and integers with at most 20 levels are categories.

    >>> import numpy as np
    >>> target = np.repeat(np.arange(4), 50); rate = target[:, None] + np.random.default_rng(0).normal(size=(200, 2))
    >>> tuning_curves(rate, target, n_bootstraps=200).mean.shape
    (2, 4)
    """
    X, names, source = _activity(acts)
    n = X.shape[0]
    v = _values(variable, source, n, "variable")
    if categorical is None:
        categorical = v.dtype.kind in "OUSb" or (v.dtype.kind in "iu" and len(np.unique(v)) <= 20)
    if categorical:
        ok = ~pd.isna(v)
        labels, code = np.unique(v[ok].astype(str) if v.dtype.kind == "O" else v[ok], return_inverse=True)
        centres = labels
    else:
        vf = v.astype(float)
        ok = np.isfinite(vf)
        if ok.sum() < 2:
            raise ConfigError("the variable has fewer than 2 finite values")
        edges = (np.linspace(vf[ok].min(), vf[ok].max(), int(bins) + 1) if np.isscalar(bins)
                 else np.asarray(bins, dtype=float))
        if edges.ndim != 1 or len(edges) < 2 or (np.diff(edges) <= 0).any():
            raise ConfigError("bins must be a number of bins (>= 1) or increasing bin edges")
        ok &= (vf >= edges[0]) & (vf <= edges[-1])
        code = np.clip(np.searchsorted(edges, vf[ok], side="right") - 1, 0, len(edges) - 2)
        centres = (edges[:-1] + edges[1:]) / 2
    if not np.isfinite(X).all():
        raise NaNError("activity contains NaN or infinite values")
    K = len(centres)
    Xo = X[ok]
    codes = resolve_groups(groups, n, source)
    kept = None if codes is None else pd.factorize(codes[ok])[0].astype(np.int64)
    resample_groups, resampled = _resampling(int(ok.sum()), kept, source, Xo, block_size)
    W = bootstrap_counts(len(Xo), n_bootstraps, seed, groups=resample_groups).astype(float)  # (B, n_ok)
    counts = np.bincount(code, minlength=K)
    mean = np.full((X.shape[1], K), np.nan)
    samples = np.full((n_bootstraps, X.shape[1], K), np.nan)
    for k in range(K):
        sel = code == k
        if not sel.any():
            continue
        mean[:, k] = Xo[sel].mean(0)
        w = W[:, sel]
        tot = w.sum(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            samples[:, :, k] = np.where(tot > 0, (w @ Xo[sel]) / tot, np.nan)
    if resample_groups is None:
        low, high = percentile_interval(samples, alpha)
    elif resample_groups is not kept:  # autocorrelated: runs of trials or blocks resampled; the corrected interval
        low, high, resampled = _corrected_interval(Xo, code, K, mean, kept, source, ok, alpha, resampled)
    else:  # independent trials: bootstrap SE, small-sample corrected, t(Kish effective trials - 1): trials reaching a
        from scipy import stats as sps  # bin with few samples count little (t(G - 1): 5.9% missed on 300 null sets)

        per = [np.bincount(resample_groups[code == k]).astype(float) for k in range(K)]
        G = np.maximum([(q > 0).sum() for q in per], 2.0)[None, :]  # trials per bin
        G_eff = np.maximum([q.sum() ** 2 / max((q ** 2).sum(), 1.0) for q in per], 2.0)[None, :]
        with np.errstate(invalid="ignore"):
            half = sps.t.ppf(1 - alpha / 2, G_eff - 1) * np.nanstd(samples, 0) * np.sqrt(G / (G - 1))
        low, high = mean - half, mean + half
    return TuningCurves(mean, np.asarray(low), np.asarray(high), counts, np.asarray(centres), names,
                        variable if isinstance(variable, str) else "variable", bool(categorical), 1 - alpha,
                        resampled, samples)


@dataclass
class DirectionTuning(Result):
    """Cosine tuning of every unit to a direction (see the module docstring).

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per unit: ``unit``, ``name``, ``preferred_direction_deg``, ``modulation_depth``,
        ``amplitude``, ``baseline``, ``r2``, ``p_value``, ``q_value``, ``tuned``, ``mean_direction_deg``,
        ``resultant_length``, ``label``.
    curves, bin_centres_deg : numpy.ndarray
        ``(unit, n_bins)`` binned mean activity, at these directions (degrees).
    null, reason, per, resampled : str
        The null (or test) and why it was used; what was fitted (``"sample"``, ``"trial"``); what the
        bootstrap resampled.
    n_permutations, n_bootstraps : int
        Null draws; bootstrap resamples of the intervals (0: none).
    alpha : float
        The FDR level of ``tuned`` (and 1 - the intervals' level).
    null_r2 : numpy.ndarray
        The fits' r² under the null.
    """

    frame: pd.DataFrame
    curves: np.ndarray
    bin_centres_deg: np.ndarray
    null: str
    reason: str
    n_permutations: int
    alpha: float
    null_r2: np.ndarray = field(repr=False)
    per: str = "sample"
    n_bootstraps: int = 0
    resampled: str = ""

    def to_frame(self) -> pd.DataFrame:
        """The per-unit table (a copy)."""
        return self.frame.copy()

    def labels(self) -> dict[int, str]:
        """``{unit: "cosine-tuned, PD 135°, depth 0.42"}`` for the tuned units."""
        return {int(r.unit): r.label for r in self.frame.itertuples() if r.tuned}

    def pd_uniformity(self) -> tuple[float, float]:
        """Rayleigh test of the tuned units' preferred directions: ``(z, p)``; small p: they cluster."""
        pds = self.frame.loc[self.frame["tuned"], "preferred_direction_deg"].to_numpy()
        if len(pds) < 2:
            return float("nan"), float("nan")
        return rayleigh_test(pds, degrees=True)

    def summary(self) -> str:
        """How many units are tuned, and the null used."""
        f = self.frame
        tuned = f[f["tuned"]]
        draws = "" if self.null == EFFECTIVE_N else f"{self.n_permutations} draws: "
        line = (f"{len(tuned)} of {len(f)} units cosine-tuned at q < {self.alpha} ({self.null} null, {draws}"
                f"{self.reason}; fit per {self.per})")
        if self.n_bootstraps:
            line += (f"\n  {1 - self.alpha:.0%} CIs of preferred direction and depth from {self.n_bootstraps} "
                     f"bootstraps over {self.resampled}")
        if len(tuned) >= 2:
            z, p = self.pd_uniformity()
            line += (f"\n  preferred directions: circular mean "
                     f"{circular_mean(tuned['preferred_direction_deg'], degrees=True):.0f}°, resultant length "
                     f"{resultant_length(tuned['preferred_direction_deg'], degrees=True):.2f} (Rayleigh p = {p:.3g}); "
                     f"median r2 {tuned['r2'].median():.2f}")
        return line

    def plot(self, units: Any = None, **kwargs: Any):
        """Polar tuning plots: binned mean activity (markers) and the cosine fit (line), up to 6 units.

        Parameters
        ----------
        units : Sequence[int], optional
            Unit indices (default the six best fits); ``title=`` in ``kwargs`` sets the title.
        """
        import plotly.graph_objects as go

        f = self.frame
        if units is None:
            units = f.sort_values(["tuned", "r2"], ascending=False)["unit"].head(6).tolist()
        grid = np.linspace(0, 360, 73)
        fig = go.Figure()
        for i, u in enumerate(units):
            r = f.loc[f["unit"] == u].iloc[0]
            color = f"hsl({(i * 67) % 360},60%,45%)"
            fit = r["baseline"] + r["amplitude"] * np.cos(np.deg2rad(grid - r["preferred_direction_deg"]))
            fig.add_trace(go.Scatterpolar(r=fit, theta=grid, mode="lines", line=dict(color=color),
                                          name=f"{r['name']}: {r['label']}"))
            fig.add_trace(go.Scatterpolar(r=np.r_[self.curves[u], self.curves[u][:1]],
                                          theta=np.r_[self.bin_centres_deg, self.bin_centres_deg[:1]], mode="markers",
                                          marker=dict(color=color), showlegend=False))
        return themed(fig, title=kwargs.get("title", "direction tuning (markers: binned mean; lines: cosine fit)"),
                      height=460)


def _direction(X: np.ndarray, source: Activations | None, x: Any, y: Any, angle: Any, degrees: bool,
               min_speed: float) -> tuple[np.ndarray, np.ndarray]:
    n = X.shape[0]
    if (angle is None) == (x is None and y is None):
        raise ConfigError("give either x= and y= (a 2-D variable such as hand velocity) or angle=")
    if angle is not None:
        theta = _values(angle, source, n, "angle").astype(float)
        theta = np.deg2rad(theta) if degrees else theta
        return theta, np.isfinite(theta)
    if x is None or y is None:
        raise ConfigError("give both x= and y=")
    vx, vy = _values(x, source, n, "x").astype(float), _values(y, source, n, "y").astype(float)
    speed = np.hypot(vx, vy)
    keep = np.isfinite(speed) & (speed > min_speed)
    return np.arctan2(vy, vx), keep


def _null_r2(D: np.ndarray, Yc: np.ndarray, Ginv: np.ndarray, tss: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """r2 of the cosine fit with the design rows reordered by each row of ``idx`` (the Gram matrix is unchanged)."""
    n, U = Yc.shape
    step = max(1, 2_000_000 // (3 * n))
    out = []
    for start in range(0, len(idx), step):
        Dp = D[idx[start:start + step]]  # (P, n, 3)
        DtY = np.einsum("pnk,nu->pku", Dp, Yc)
        out.append(np.einsum("pku,kl,plu->pu", DtY, Ginv, DtY) / tss)
    return np.concatenate(out)


def _label(depth: float, amplitude: float, pd_deg: float) -> str:
    size = f"depth {depth:.2f}" if np.isfinite(depth) else f"amplitude {amplitude:.2g}"
    return f"cosine-tuned, PD {pd_deg:.0f}°, {size}"


def _per_trial(Y: np.ndarray, th: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trial means of the activity and circular means of the direction (the classical centre-out analysis)."""
    G = int(codes.max()) + 1
    count = np.bincount(codes, minlength=G).astype(float)
    means = np.stack([np.bincount(codes, Y[:, u], G) for u in range(Y.shape[1])], 1) / count[:, None]
    angle = np.arctan2(np.bincount(codes, np.sin(th), G), np.bincount(codes, np.cos(th), G))
    return means, angle


def _bootstrap_fits(D: np.ndarray, Y: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``(B, 3, U)`` least-squares coefficients with the rows weighted by each bootstrap's multiplicities."""
    out = []
    step = max(1, 4_000_000 // max(1, D.shape[0] * 3))
    for a in range(0, len(W), step):
        Wd = W[a:a + step, :, None] * D[None]  # (b, n, 3)
        out.append(np.linalg.pinv(np.einsum("bnk,nl->bkl", Wd, D)) @ np.einsum("bnk,nu->bku", Wd, Y))
    return np.concatenate(out)


def _intervals(beta: np.ndarray, boot: np.ndarray, rates: np.ndarray, alpha: float) -> dict[str, np.ndarray]:
    """Percentile intervals of the preferred direction (deviations from the estimate, wrapped) and depth."""
    pd_hat = np.rad2deg(np.arctan2(beta[2], beta[1]))
    dev = (np.rad2deg(np.arctan2(boot[:, 2], boot[:, 1])) - pd_hat + 180) % 360 - 180  # (B, U)
    lo, hi = percentile_interval(dev, alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(boot[:, 0] > 0, np.hypot(boot[:, 1], boot[:, 2]) / boot[:, 0], np.nan)
    dlo, dhi = percentile_interval(depth, alpha)
    nan = np.where(rates, 1.0, np.nan)
    return {"preferred_direction_low_deg": wrap_degrees(pd_hat + np.asarray(lo)),
            "preferred_direction_high_deg": wrap_degrees(pd_hat + np.asarray(hi)),
            "modulation_depth_low": np.asarray(dlo) * nan, "modulation_depth_high": np.asarray(dhi) * nan}


def direction_tuning(recording: Any, x: Any = None, y: Any = None, *, angle: Any = None, degrees: bool = False,
                     groups: Any = None, null: str = "auto", per: str = "sample", n_permutations: int = 1000,
                     n_bootstraps: int = 1000, min_shift: int | None = None, min_speed: float = 0.0,
                     n_bins: int = 8, alpha: float = 0.05, seed: int = 0) -> DirectionTuning:
    """Cosine tuning of every unit to the direction of ``(x, y)`` or to ``angle`` (see the module docstring).

    Parameters
    ----------
    recording:
        ``(sample, unit)`` activity: a recording or model activations (Activations or array).
    x, y:
        The two components of a 2-D variable (coordinate names or arrays), e.g. hand velocity; samples
        with speed ``<= min_speed`` are dropped (their direction is undefined or noise).
    angle:
        An angle per sample instead (radians, or degrees with ``degrees=True``), e.g. head direction.
    groups:
        Trials (a coordinate name or a label per sample; trials of any lengths). A direction constant
        within each trial (the reach target) is tested by permuting the trials' directions (exact);
        a direction that varies within trials by swapping whole trials when they have equal lengths
        and the activity restarts every trial, else by the autocorrelation-corrected Wald test.
    null:
        ``"auto"`` (chosen from the data by :func:`interp.stats.select_null`, named in the result) or
        one of :data:`interp.stats.TESTS`; a shift within trials of a trial-constant direction is
        refused (:class:`~interp.errors.InvalidNullError`).
    per:
        ``"sample"`` (fit every sample) or ``"trial"`` (the classical centre-out analysis: fit the
        trial-averaged activity against each trial's mean direction; needs ``groups``; the null
        permutes the trials' directions).
    n_bootstraps:
        Resamples for the ``1 - alpha`` percentile intervals of the preferred direction and the
        modulation depth (whole trials with ``groups`` or ``per="trial"``; blocks of an autocorrelated
        series; samples otherwise); 0 skips them.
    n_bins:
        Direction sectors of the binned tuning curve (plots and circular statistics).
    """
    X, names, source = _activity(recording)
    if not np.isfinite(X).all():
        raise NaNError("activity contains NaN or infinite values")
    if per not in ("sample", "trial"):
        raise ConfigError(f"per must be 'sample' or 'trial', got {per!r}")
    n, U = X.shape
    theta, keep = _direction(X, source, x, y, angle, degrees, min_speed)
    codes = resolve_groups(groups, n, source)
    Y, th = X[keep], theta[keep]
    kcodes = None if codes is None else pd.factorize(codes[keep])[0].astype(np.int64)
    if per == "trial":
        if kcodes is None:
            raise ConfigError("per='trial' fits trial averages: give groups= (the trial of each sample)")
        Y, th = _per_trial(Y, th, kcodes)
        if null not in ("auto", "permutation"):
            raise ConfigError(f"per='trial' has one row per trial, whose directions are permuted; null={null!r} "
                              "does not apply (use null='auto')")
        kcodes = None
    if len(Y) < (8 if per == "trial" else 10):
        raise DimensionError(f"only {len(Y)} {'trials' if per == 'trial' else 'samples'} have a direction "
                             f"(speed > {min_speed}); need more")
    D = np.stack([np.ones(len(th)), np.cos(th), np.sin(th)], 1)
    G = D.T @ D
    if np.linalg.cond(G) > 1e10:
        raise ConfigError("the directions do not span the circle (all samples point the same way); the cosine "
                          "fit is undefined")
    Ginv = np.linalg.inv(G)
    beta = Ginv @ D.T @ Y  # (3, U)
    Yc = Y - Y.mean(0)
    tss = (Yc ** 2).sum(0)
    const = tss == 0
    tss_safe = np.where(const, 1.0, tss)
    DtY = D.T @ Yc
    r2 = np.einsum("ku,kl,lu->u", DtY, Ginv, DtY) / tss_safe
    if per == "trial":
        kind, constant, reason = "permutation", False, "one row per trial: the trials' directions are permuted"
    else:
        kind, constant, reason = select_null(null, groups=kcodes, activity=Y[:, ~const] if (~const).any() else Y,
                                             values=th)
    if kind == EFFECTIVE_N:
        segments, positions, note = sample_layout(source, n, keep=keep, groups=kcodes)
        reason = f"{reason} ({note})" if note else reason
        _, p, _ = autocorrelated_wald(Y, D[:, 1:], kcodes if kcodes is not None else segments, positions=positions)
        null_r2 = np.zeros((0, U))
    else:
        idx = null_indices(len(Y), kind, groups=kcodes, n_permutations=n_permutations, seed=seed, min_shift=min_shift,
                           constant=constant)
        null_r2 = _null_r2(D, Yc, Ginv, tss_safe, idx)
        p = p_value(r2, null_r2)
    p = np.where(const, np.nan, p)
    q = benjamini_hochberg(p)
    pd_deg = wrap_degrees(np.rad2deg(np.arctan2(beta[2], beta[1])))
    amplitude = np.hypot(beta[1], beta[2])
    rates = (Y >= 0).all(0)  # a depth relative to the baseline needs activity on a ratio scale (rates, counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.where(rates & (beta[0] > 0), amplitude / beta[0], np.nan)
    resampled = ""
    if n_bootstraps:
        rgroups, resampled = (None, "trials") if per == "trial" else _resampling(len(Y), kcodes, source, Y, None)
        W = bootstrap_counts(len(Y), n_bootstraps, seed + 1, groups=rgroups).astype(float)
        cis = _intervals(beta, _bootstrap_fits(D, Y, W), rates & (beta[0] > 0), alpha)
    else:
        cis = {k: np.full(U, np.nan) for k in ("preferred_direction_low_deg", "preferred_direction_high_deg",
                                              "modulation_depth_low", "modulation_depth_high")}
    # binned tuning curve and its circular statistics
    edges = np.linspace(0, 2 * np.pi, n_bins + 1)
    sector = np.clip(np.searchsorted(edges, np.mod(th, 2 * np.pi), side="right") - 1, 0, n_bins - 1)
    curves = np.stack([Y[sector == k].mean(0) if (sector == k).any() else np.full(U, np.nan)
                       for k in range(n_bins)], 1)  # (U, bins)
    centres = (edges[:-1] + edges[1:]) / 2
    nonneg = rates & np.isfinite(curves).all(1)
    w = np.where(nonneg[:, None], np.nan_to_num(curves), np.nan)
    mean_dir = np.array([circular_mean(centres, wu, degrees=False) if nonneg[u] else np.nan for u, wu in enumerate(w)])
    rlen = np.array([resultant_length(centres, wu) if nonneg[u] else np.nan for u, wu in enumerate(w)])
    tuned = (q < alpha) & ~const
    frame = pd.DataFrame({
        "unit": np.arange(U), "name": names, "preferred_direction_deg": pd_deg, **{k: v for k, v in cis.items()
                                                                               if k.startswith("preferred")},
        "modulation_depth": depth, **{k: v for k, v in cis.items() if k.startswith("modulation")},
        "amplitude": amplitude, "baseline": beta[0], "r2": np.where(const, np.nan, r2), "p_value": p, "q_value": q,
        "tuned": tuned, "mean_direction_deg": wrap_degrees(np.rad2deg(mean_dir)), "resultant_length": rlen,
    })
    frame["label"] = [(_label(d, a, pdd) if t else "not direction-tuned")
                      for d, a, pdd, t in zip(depth, amplitude, pd_deg, tuned)]
    return DirectionTuning(frame, curves, np.rad2deg(centres), kind, reason, n_permutations, alpha, null_r2, per,
                           int(n_bootstraps), resampled)
