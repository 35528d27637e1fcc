"""Tests of association between two autocorrelated series: the effective-sample-size Wald test.

When the activity and the tested values are both autocorrelated and no exchangeable unit (a trial
whose values were assigned at random) is known, no permutation of the samples is exact, and circular
shifts give p-values that are only valid near 0.05: their null has only about ``n / tau`` independent
values (``tau``: the autocorrelation time), so a p-value of 0.001 from a shift null is wrong by an
order of magnitude, and BH-FDR over many units, which works at those p-values, labels one or more units
of an untuned recording in a quarter to a third of the data sets (``benchmarks/results/calibration.md``).

:func:`autocorrelated_wald` tests instead, for each unit ``x`` and design columns ``Y`` (one centred
annotation; centred category indicators; ``cos, sin`` of a direction), the statistic ``s = Y' x`` against
its exact null covariance given ``Y`` and the autocovariance of ``x``:

``Var(s) = sum_d gamma_x(d) C_Y(d)``, ``C_Y(d) = sum_i Y_i Y_{i+d}'`` (both lags),

the generalisation of Bartlett's (1935) variance of a correlation of two autocorrelated series
(Pyper & Peterman 1998; Dutilleul 1993; Afyouni, Smith & Nichols 2019's xDF). ``gamma_x`` is estimated
from the data, separately for pairs of samples inside one trial and pairs that straddle a trial
boundary (so activity that restarts every trial and activity that runs on across trials are both
handled), truncated at the first lag where the autocorrelation falls below ``2 / sqrt(n)``. The Wald
statistic ``W = s' Var(s)^-1 s`` is referred to ``F(k, 2 n_eff - k)``, ``k`` the rank of ``Y`` and
``n_eff = gamma(0) / Var(mean of x)`` the effective number of independent samples of ``x``. The
reference was chosen on null data (AR(1) units, rho 0.95, 48 trials of 30 samples, 4,800 tests
each): ``F(k, 2 n_eff - k)`` without a correction of the mean-centring bias rejects 4.9% / 0.8% /
0.02% at 0.05 / 0.01 / 0.001 with activity continuous across trials, 4.8% / 0.75% / 0.06% with
activity restarting every trial; the t reference ``F(k, n_eff - k)`` with a bias correction was
conservative (3.9% at 0.05), ``F(k, inf)`` slightly liberal with few effective samples (5.7% at
``n_eff`` 19). Estimating the autocovariance from the activity's residuals after regressing out ``Y``
was liberal (5.8% / 1.5% / 0.13%): it removes the very component that is tested. A tuned unit's own
response to slow values therefore counts in its autocovariance, which costs power, not validity. Only the activity's autocovariance is estimated:
the annotation enters as it is, so binary, categorical and heavy-tailed annotations need no model.

Lags are counted in time where the samples' times are known (``positions``: their places on the
recording's regular time grid, :func:`interp.stats.time_positions`): the series are laid on the grid
with zeros in the gaps and the pairs of recorded samples at each lag are counted, so samples on
either side of a gap enter at their true distance. Without ``groups``, the label statistics take the
segments and positions from the recording itself (:func:`interp.stats.sample_layout`: its ``trial``
and ``time`` coordinates). :func:`weighted_mean_variance` uses the same autocovariance for the
variance of a weighted mean (the interval of a tuning-curve bin).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(500, 3)); y = rng.normal(size=(500, 1))
>>> W, p, n_eff = autocorrelated_wald(x, y)
>>> bool((p > 0.01).all()), bool((n_eff > 400).all())
(True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats as sps

from ..errors import DimensionError

#: The estimated variance counts as ``DF_SCALE * n_eff`` degrees of freedom (chosen on null data, see above).
DF_SCALE = 2.0

__all__ = ["lagged_products", "autocorrelated_moments", "wald_p_value", "autocorrelated_wald", "weighted_mean_variance",
           "hac_moments"]


def _activity_and_values(X: Any, Y: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(n, U)`` activity and ``(n, K)`` values as float arrays (a 1-D input is one column); the same ``n``."""
    X = np.asarray(X, dtype=float)
    Y = np.asarray(Y, dtype=float)
    X = X[:, None] if X.ndim == 1 else X
    Y = Y[:, None] if Y.ndim == 1 else Y
    if Y.shape[0] != X.shape[0]:
        raise DimensionError(f"the values have {Y.shape[0]} samples, the activity {X.shape[0]}")
    return X, Y

def _runs(codes: np.ndarray | None, n: int) -> list[tuple[int, int]] | None:
    """``[(start, stop)]`` of the groups when each is one contiguous run of samples; None otherwise."""
    if codes is None:
        return [(0, n)]
    change = np.flatnonzero(np.diff(codes) != 0) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [n]])
    if len(np.unique(codes[starts])) != len(starts):
        return None
    return list(zip(starts.tolist(), stops.tolist()))


def _xcorr(A: np.ndarray, B: np.ndarray, max_lag: int) -> np.ndarray:
    """``out[d, k, l] = sum_i A[i, k] B[i + d, l]`` for ``d = 0..max_lag`` (FFT; A, B: ``(m, K)``, ``(m, L)``)."""
    m = A.shape[0]
    size = 1 << int(np.ceil(np.log2(max(2 * m, 2))))
    fa = np.fft.rfft(A, size, axis=0)
    fb = np.fft.rfft(B, size, axis=0)
    out = np.fft.irfft(np.conj(fa)[:, :, None] * fb[:, None, :], size, axis=0)[: max_lag + 1]
    return out


def _acov(X: np.ndarray, max_lag: int) -> np.ndarray:
    """``out[d, u] = sum_i X[i, u] X[i + d, u]`` for ``d = 0..max_lag`` (FFT)."""
    m = X.shape[0]
    size = 1 << int(np.ceil(np.log2(max(2 * m, 2))))
    f = np.fft.rfft(X, size, axis=0)
    return np.fft.irfft(np.abs(f) ** 2, size, axis=0)[: max_lag + 1]


def lagged_products(Y: np.ndarray, runs: list[tuple[int, int]], max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Lagged cross-products of the columns of ``Y``: within runs and straddling runs, ``(max_lag + 1, K, K)`` each.

    Parameters
    ----------
    Y : numpy.ndarray
        ``(n, K)`` columns, samples in time order.
    runs : list of tuple of (int, int)
        ``(start, stop)`` row ranges of the runs (trials); products within one run count as "within".
    max_lag : int
        The largest lag.
    """
    total = _xcorr(Y, Y, max_lag)
    within = np.zeros_like(total)
    for a, b in runs:
        lag = min(max_lag, b - a - 1)
        within[: lag + 1] += _xcorr(Y[a:b], Y[a:b], lag)
    return within, total - within


def _grid(A: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """Rows of ``A`` at ``positions`` of a zero-filled ``(size, ...)`` array (samples on the time grid)."""
    out = np.zeros((size,) + A.shape[1:])
    out[positions] = A
    return out


def _positions(positions: Any, n: int) -> np.ndarray:
    if positions is None:
        return np.arange(n)
    pos = np.asarray(positions)
    if pos.shape != (n,) or pos.dtype.kind not in "iu" or (n and pos[0] != 0) or (np.diff(pos) <= 0).any():
        raise DimensionError(f"positions must be {n} strictly increasing integers from 0 (sample times on a regular "
                             "grid, see interp.stats.time_positions)")
    return pos.astype(np.int64)


def _activity_autocovariance(X: np.ndarray, groups: Any, max_lag: int | None, positions: Any) -> tuple:
    """The centred activity on the time grid, the runs and lags, and its truncated autocovariance:
    ``(Xc, runs, L, positions, (t0, tw, tc, var_mean))`` (lag-0 variance, within- and across-run
    autocovariances at lags ``1..L`` (zero past the truncation), variance of the mean)."""
    n = X.shape[0]
    pos = _positions(positions, n)
    P = int(pos[-1]) + 1 if n else 0
    codes = None if groups is None else np.asarray(groups)
    runs = _runs(codes, n)
    if runs is None:  # groups interleaved: no within/between split, one series
        runs = [(0, n)]
    runs = [(int(pos[a]), int(pos[b - 1]) + 1) for a, b in runs]  # on the time grid
    L = int(min(P - 2, max(2, n // 2) if max_lag is None else max_lag))
    Xc = _grid(X - X.mean(0), pos, P)
    M = _grid(np.ones((n, 1)), pos, P)
    # autocovariances of the activity: all pairs, pairs within one run, pairs across runs
    S_all = _acov(Xc, L)  # (L+1, U)
    N_all = np.rint(_acov(M, L)[:, 0])  # pairs of recorded samples at each lag
    S_w = np.zeros_like(S_all)
    N_w = np.zeros(L + 1)
    for a, b in runs:
        lag = min(L, b - a - 1)
        S_w[: lag + 1] += _acov(Xc[a:b], lag)
        N_w[: lag + 1] += np.rint(_acov(M[a:b], lag)[:, 0])
    S_c = S_all - S_w
    d = np.arange(L + 1)
    N_c = N_all - N_w
    with np.errstate(invalid="ignore", divide="ignore"):
        g_w = np.where(N_w[:, None] > 0, S_w / N_w[:, None], np.nan)
        g_c = np.where(N_c[:, None] > 0, S_c / N_c[:, None], np.nan)
        g_all = np.where(N_all[:, None] > 0, S_all / N_all[:, None], np.nan)
    g0 = g_all[0]
    safe0 = np.where(g0 > 0, g0, 1.0)
    # truncation: the first lag where the autocorrelation (within runs, or over all pairs) drops below 2/sqrt(n);
    # lags without any pair of recorded samples (inside a gap) neither count nor truncate
    thr = 2.0 / np.sqrt(n)
    rho = np.fmax(g_w, g_all) / safe0
    below = rho[1:] < thr  # (L, U); NaN (no pairs) is not below
    first = np.where(below.any(0), below.argmax(0) + 1, L)  # lag index of the first small value
    keep = (d[1:, None] <= first[None, :])  # (L, U): lags 1..first
    gw, gc = np.nan_to_num(g_w[1:]), np.nan_to_num(g_c[1:])
    t0 = g0
    tw = np.where(keep, gw, 0.0) * (N_w[1:, None] > 0)
    tc = np.where(keep, gc, 0.0) * (N_c[1:, None] > 0)
    var_mean = np.maximum((n * t0 + 2 * (tw * N_w[1:, None] + tc * N_c[1:, None]).sum(0)) / n ** 2, t0 / n)
    return Xc, runs, L, pos, (t0, tw, tc, var_mean)


def autocorrelated_moments(X: np.ndarray, Y: np.ndarray, groups: Any = None,
                           max_lag: int | None = None, positions: Any = None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(s, V, n_eff, rank)``: ``s = Y_c' X_c`` ``(U, K)``, its null covariance ``V`` ``(U, K, K)``, the
    effective sample size of each unit and the rank of ``Y`` (see the module docstring).

    Parameters
    ----------
    X, Y:
        ``(n, U)`` activity and ``(n, K)`` design columns.
    groups:
        Integer trial (segment) codes, contiguous runs of samples, or None (one series): the
        autocovariance is estimated separately within and across segments.
    max_lag:
        Largest lag (default: half the number of samples).
    positions:
        Each sample's place on a regular time grid (strictly increasing integers from 0, from
        :func:`interp.stats.time_positions`): lags are then counted in time, and pairs of samples
        across a gap in the recording enter at their true distance. None: samples are consecutive.
    """
    X, Y = _activity_and_values(X, Y)
    n, U = X.shape
    Xc, runs, L, pos, (t0, tw, tc, var_mean) = _activity_autocovariance(X, groups, max_lag, positions)
    Yc = _grid(Y - Y.mean(0), pos, Xc.shape[0])
    s = Xc.T @ Yc  # (U, K)
    C_w, C_c = lagged_products(Yc, runs, L)
    C0 = C_w[0]
    sym_w = C_w[1:] + np.transpose(C_w[1:], (0, 2, 1))
    sym_c = C_c[1:] + np.transpose(C_c[1:], (0, 2, 1))
    V = (t0[:, None, None] * C0[None] + np.einsum("du,dkl->ukl", tw, sym_w) + np.einsum("du,dkl->ukl", tc, sym_c))
    n_eff = np.where(var_mean > 0, t0 / np.where(var_mean > 0, var_mean, 1.0), n)
    n_eff = np.clip(n_eff, 1.0, n)
    rank = int(np.linalg.matrix_rank(C0)) if C0.size else 0
    return s, V, n_eff, rank


def weighted_mean_variance(X: Any, W: Any, groups: Any = None, positions: Any = None,
                           bias_correction: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(var, n_eff)``: the variance of ``W[:, k]' x`` ``(U, K)`` for each unit ``x`` of autocorrelated
    activity ``X``, e.g. the mean of a unit over the samples of one bin of a tuning curve (``W``: the
    bin's indicator over its count), and each unit's effective number of independent samples ``(U,)``
    (of the whole series: the autocovariance behind ``var`` is estimated from all of it).

    ``Var = sum_ij W_i W_j gamma(i - j)`` with the truncated autocovariance of the activity (within and
    across trials or segments, lags in time; module docstring). Autocovariances of a series centred
    on its own mean are biased low by about the variance of that mean (Bartlett 1946; Priestley
    1981, §5.3); ``bias_correction`` adds it back to every lag in the window, the lag-0 term included.

    Parameters
    ----------
    X:
        ``(n, U)`` activity.
    W:
        ``(n, K)`` weights (each column, e.g., a bin's indicator divided by its count).
    groups, positions:
        Trials or segments, and the samples' places on the time grid (see :func:`autocorrelated_moments`).
    bias_correction:
        Add the variance of the overall mean back to the estimated autocovariances.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(400, 2)); w = np.full((400, 1), 1 / 400)
    >>> var, n_eff = weighted_mean_variance(x, w)
    >>> bool(np.allclose(var, 1 / 400, rtol=0.3))
    True
    """
    X = np.asarray(X, dtype=float)
    X = X[:, None] if X.ndim == 1 else X
    W = np.asarray(W, dtype=float)
    W = W[:, None] if W.ndim == 1 else W
    if W.shape[0] != X.shape[0]:
        raise DimensionError(f"the weights have {W.shape[0]} samples, the activity {X.shape[0]}")
    _, runs, L, pos, (t0, tw, tc, var_mean) = _activity_autocovariance(X, groups, None, positions)
    Wg = _grid(W, pos, int(pos[-1]) + 1)
    C_w, C_c = lagged_products(Wg, runs, L)
    dw = np.einsum("dkk->dk", C_w)  # (L+1, K): sum_i W_ik W_(i+d)k within runs
    dc = np.einsum("dkk->dk", C_c)
    if bias_correction:
        inside = tw != 0  # the lags in the window
        t0 = t0 + var_mean
        tw = tw + np.where(inside, var_mean[None, :], 0.0)
        tc = tc + np.where(tc != 0, var_mean[None, :], 0.0)
    var = t0[:, None] * dw[0][None, :] + 2 * (tw.T @ dw[1:] + tc.T @ dc[1:])
    var = np.maximum(var, 0.0)
    n_eff = np.clip(np.where(var_mean > 0, t0 / np.where(var_mean > 0, var_mean, 1.0), X.shape[0]), 1.0, X.shape[0])
    return var, n_eff


def wald_p_value(s: np.ndarray, V: np.ndarray, n_eff: np.ndarray, rank: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(W, p)``: ``W = s' V^+ s`` per unit and its p-value from ``F(k, DF_SCALE * n_eff - k)``.

    ``k`` is ``rank`` or, when None, the rank of each unit's ``V`` (pooled recordings that lack a category).

    Parameters
    ----------
    s : numpy.ndarray
        ``(U, K)`` the statistic per unit.
    V : numpy.ndarray
        ``(U, K, K)`` its null covariance (pseudo-inverted; a unit whose ``V`` is zero gets NaN).
    n_eff : numpy.ndarray
        ``(U,)`` effective sample sizes (the F test's denominator degrees of freedom follow them).
    rank : int, optional
        The test's degrees of freedom ``k`` (default each unit's rank of ``V``).
    """
    s = np.asarray(s, dtype=float)
    V = np.asarray(V, dtype=float)
    U = s.shape[0]
    W = np.full(U, np.nan)
    k = np.ones(U)
    for u in range(U):
        vals, vecs = np.linalg.eigh(V[u])
        top = vals.max() if vals.size else 0.0
        ok = vals > max(top, 0.0) * 1e-10
        if not ok.any() or top <= 0:
            continue
        proj = vecs[:, ok].T @ s[u]
        W[u] = float((proj ** 2 / vals[ok]).sum())
        k[u] = max(int(rank), 1) if rank is not None else int(ok.sum())
    df2 = np.maximum(np.asarray(n_eff, dtype=float) * DF_SCALE - k, 1.0)
    with np.errstate(invalid="ignore"):
        p = sps.f.sf(W / k, k, df2)
    return W, np.where(np.isnan(W), np.nan, p)


def autocorrelated_wald(X: Any, Y: Any, groups: Any = None, max_lag: int | None = None, positions: Any = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(W, p, n_eff)`` per column of ``X``: is it associated with the design columns ``Y``?

    ``X``: ``(n, U)`` activity; ``Y``: ``(n, K)`` values (centred here), e.g. one annotation, the
    indicators of all but one category, or ``cos, sin`` of an angle; ``groups``: trial codes of
    contiguous trials (or None); ``positions``: the samples' places on a regular time grid (gaps), see
    :func:`autocorrelated_moments`. See the module docstring.

    Parameters
    ----------
    X : array_like
        ``(n, U)`` activity.
    Y : array_like
        ``(n, K)`` design columns (centred here).
    groups : array_like, optional
        Integer codes of contiguous trials, or None (one series).
    max_lag : int, optional
        Largest lag (default: half the number of samples).
    positions : array_like, optional
        The samples' places on a regular time grid (:func:`interp.stats.time_positions`); None: consecutive.
    """
    s, V, n_eff, rank = autocorrelated_moments(X, Y, groups, max_lag, positions)
    W, p = wald_p_value(s, V, n_eff, rank)
    return W, p, n_eff


#: What a labeller's reason says when it used :func:`hac_moments` (a series whose trials nothing marks, issue 19).
HAC_NOTE = ("no trial or time coordinate: nothing marks where the activity may restart, so the statistic's variance "
            "is a HAC estimate from its own lagged products (Newey-West, Bartlett kernel, Andrews bandwidth, fixed-b "
            "reference), valid when trials restart, somewhat less powerful; give groups= or a 'trial' sample "
            "coordinate")


def _fixed_b_scale(b: float) -> float:
    """Kiefer & Vogelsang (2005) fixed-b 97.5% quantile of the Bartlett-kernel t statistic over the normal's."""
    return (1.9600 + 2.9694 * b + 0.4160 * b ** 2 - 0.5324 * b ** 3) / 1.9600


def hac_moments(X: Any, Y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(s, V, n_eff, rank)`` as :func:`autocorrelated_moments`, for a series whose layout is unknown.

    ``V`` is the heteroskedasticity-and-autocorrelation-consistent covariance of ``s = Y_c' X_c`` from the
    lagged products of ``z_i = x_i Y_i`` themselves (Newey & West 1987), Bartlett kernel with Andrews'
    (1991) AR(1) plug-in bandwidth. Those products need no stationarity of ``x``: activity that restarts at
    trial starts nothing marks is covered, which the stationary autocovariance of
    :func:`autocorrelated_moments` is not. ``V`` is scaled by the square of the fixed-b critical value of
    Kiefer & Vogelsang (2005) over the normal's and ``n_eff`` is ``n``, so :func:`wald_p_value`'s
    ``F(k, 2 n - k)`` reference is about that of fixed-b asymptotics.

    Parameters
    ----------
    X : array-like
        ``(n, U)`` activity.
    Y : array-like
        ``(n, K)`` design columns (centred here).
    """
    X, Y = _activity_and_values(X, Y)
    n, U = X.shape
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    s = Xc.T @ Yc
    K = Yc.shape[1]
    z = Xc[:, :, None] * Yc[:, None, :]  # (n, U, K)
    zz = z.reshape(n, U * K)
    den = (zz * zz).sum(0)
    lag1 = np.where(den > 0, (zz[1:] * zz[:-1]).sum(0) / np.where(den > 0, den, 1.0), 0.0)
    r = float(np.clip(np.median(lag1), 0.0, 0.97))
    a = 4 * r ** 2 / ((1 - r) ** 2 * (1 + r) ** 2)
    L = int(min(max(n - 2, 0), np.ceil(1.1447 * (a * n) ** (1 / 3))))
    w = 1 - np.arange(L + 1) / (L + 1)
    V = np.empty((U, K, K))
    for u in range(U):
        G = _xcorr(z[:, u], z[:, u], L)  # (L+1, K, K)
        V[u] = G[0] + np.einsum("d,dkl->kl", w[1:], G[1:] + np.transpose(G[1:], (0, 2, 1)))
    V *= _fixed_b_scale((L + 1) / n) ** 2
    rank = int(np.linalg.matrix_rank(Yc.T @ Yc)) if Yc.size else 0
    return s, V, np.full(U, float(n)), rank
