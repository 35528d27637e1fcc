"""Null distributions as index arrays: permutations, whole-group permutations, circular shifts, blocks.

Every generator returns an integer array ``idx`` of shape ``(n_permutations, n)``: under null draw
``p`` the value at sample ``i`` is ``values[idx[p, i]]``. Each row is a bijection of ``0..n-1``, so a
statistic's null is the statistic of ``values[idx]`` against the unpermuted other side, computed for
all rows at once. Samples of one group (a trial, a subject, a recording) need not be contiguous:
"within a group" means in the order of the samples' positions.

* :func:`permutations`: plain sample permutations (exchangeable samples: independent stimuli), or
  permutations within ``strata``;
* :func:`group_permutations`: whole groups swap places (trials, subjects): the unit of exchange is
  the trial, so within-trial autocorrelation cannot make a false positive;
* :func:`circular_shifts`: each group (or the whole series) is rotated by a random offset of at
  least ``min_shift`` samples, which keeps both autocorrelations and breaks only their alignment
  (Harris 2020, "Nonsense correlations in neuroscience"; Kato et al. 2015). It is exact only when the
  series is much longer than its autocorrelation time: on AR(1) data with rho 0.95 the rejection
  rate at alpha 0.05 is 8.5% for 300 samples, 6% for 1,000 (tests/test_stats.py);
* :func:`block_permutations`: consecutive blocks of ``block_size`` samples are permuted (Künsch
  1989's blocks, used as a permutation null for time series);
* :func:`bootstrap_indices` / :func:`bootstrap_counts`: resampling with replacement, of samples or
  of whole groups (the cluster bootstrap; Field & Welsh 2007).

:func:`null_indices` dispatches on a name (``"permutation"``, ``"group"``, ``"circular"``,
``"block"``); :func:`choose_null` resolves ``"auto"``; :func:`resolve_groups` turns ``groups=`` (a
coordinate name of an :class:`~interp.Activations` or an array) into integer codes.

>>> idx = circular_shifts(6, n_permutations=2, seed=0, groups=[0, 0, 0, 1, 1, 1], min_shift=1)
>>> sorted(idx[0, :3].tolist()), sorted(idx[0, 3:].tolist())      # shifts stay inside each group
([0, 1, 2], [3, 4, 5])
"""

from __future__ import annotations

import math
from itertools import islice
from itertools import permutations as _all_permutations
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DimensionError, GroupsError, MismatchError

__all__ = ["NULLS", "resolve_groups", "permutations", "group_permutations", "circular_shifts", "block_permutations",
           "blocks", "null_indices", "bootstrap_indices", "bootstrap_counts", "is_time_series", "lag1_autocorrelation",
           "choose_null"]

#: Names of the nulls :func:`null_indices` knows.
NULLS = ("permutation", "group", "circular", "block")


def _rng(seed: Any) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check_count(n_permutations: int, name: str = "n_permutations") -> int:
    if int(n_permutations) < 1:
        raise ConfigError(f"{name} must be at least 1, got {n_permutations}")
    return int(n_permutations)


def resolve_groups(groups: Any, n: int | None = None, source: Any = None) -> np.ndarray | None:
    """Integer group codes ``0..G-1`` (in order of first appearance) from ``groups=``.

    ``groups`` is None (no groups), a sample-coordinate name of ``source`` (an
    :class:`~interp.Activations`; e.g. ``"trial"``) or one label per sample. ``n`` is the number of
    samples the codes must cover.

    Parameters
    ----------
    groups : str or array_like, optional
        None, a sample-coordinate name of ``source``, or one label per sample.
    n : int, optional
        The number of samples the codes must cover (a :class:`MismatchError` otherwise).
    source : Activations, optional
        The data whose sample coordinate a string ``groups`` names.

    >>> resolve_groups(["b", "b", "a", "c"]).tolist()
    [0, 0, 1, 2]
    """
    if groups is None:
        return None
    if isinstance(groups, str):
        from ..tensor import Activations

        if not isinstance(source, Activations):
            raise ConfigError(f"groups={groups!r} names a coordinate, which needs an Activations with that sample "
                              "coordinate; pass one group label per sample instead")
        values = source.coord(groups, source.dims[0])
    else:
        values = np.asarray(groups)
    if values.ndim != 1:
        raise DimensionError(f"groups must be one label per sample (1-D), got shape {values.shape}")
    missing = pd.isna(values)
    if missing.any():
        raise GroupsError(f"groups are missing (None/NaN) for {int(missing.sum())} of {len(values)} samples; give every "
                          "sample a trial (or subject, recording), or drop the samples outside every trial first")
    if values.dtype.kind in "iuf" or (values.dtype.kind == "O" and all(isinstance(v, (int, float, np.integer,
                                                                                      np.floating)) for v in values)):
        negative = values.astype(float) < 0
        if negative.any():
            raise GroupsError(f"groups have negative labels ({int(negative.sum())} samples, e.g. "
                              f"{values[negative][0]!r}); a negative trial code usually marks samples outside every "
                              "trial: drop those samples before the test (they are not one more trial)")
    codes = pd.factorize(values)[0].astype(np.int64)
    if n is not None and len(codes) != n:
        raise MismatchError(f"groups has {len(codes)} labels but there are {n} samples; give one group per sample")
    return codes


def _layout(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``order`` (samples sorted by group, stable), ``start`` and ``size`` per group, within-group rank."""
    order = np.argsort(codes, kind="stable")
    size = np.bincount(codes)
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    rank = np.empty(len(codes), dtype=np.int64)
    rank[order] = np.arange(len(codes)) - start[codes[order]]
    return order, start, size, rank


def _codes(n: int, groups: Any) -> np.ndarray:
    codes = resolve_groups(groups, n)
    return np.zeros(n, dtype=np.int64) if codes is None else codes


def permutations(n: int, n_permutations: int = 1000, seed: Any = 0, strata: Any = None,
                 exact: bool = False) -> np.ndarray:
    """``(n_permutations, n)`` random permutations of ``n`` samples (within ``strata`` if given).

    A plain sample permutation assumes exchangeable samples (independent stimuli). Do not use it on
    time series: see :func:`circular_shifts`, :func:`group_permutations`. With ``exact=True`` and
    ``n! <= n_permutations`` every permutation is returned once (identity first), for an exact test
    (then use :func:`~interp.stats.p_value` with ``exact=True``).

    Parameters
    ----------
    n : int
        Number of samples.
    n_permutations : int
        Number of null draws (rows of the result).
    seed : int or numpy.random.Generator
        Seed of the draws (or a generator, used as is).
    strata : array_like, optional
        One label per sample; samples are permuted only within their stratum.
    exact : bool
        Return every permutation once when there are no more than ``n_permutations`` (and no strata).

    >>> permutations(3, 10, exact=True).shape
    (6, 3)
    """
    n_permutations = _check_count(n_permutations)
    if n < 1:
        raise DimensionError("no samples to permute")
    if exact and strata is None and n <= 12 and math.factorial(n) <= n_permutations:
        return np.array(list(islice(_all_permutations(range(n)), math.factorial(n))), dtype=np.int64)
    rng = _rng(seed)
    if strata is None:
        return rng.permuted(np.broadcast_to(np.arange(n), (n_permutations, n)), axis=1)
    codes = _codes(n, strata)
    order, _, _, _ = _layout(codes)
    keys = codes[order][None, :] + rng.random((n_permutations, n))  # sort by stratum, randomly within it
    idx = np.empty((n_permutations, n), dtype=np.int64)
    idx[:, order] = order[np.argsort(keys, axis=1, kind="stable")]
    return idx


def group_permutations(groups: Any, n_permutations: int = 1000, seed: Any = 0, constant: bool = False) -> np.ndarray:
    """``(n_permutations, n)`` indices that swap whole groups (trials, subjects).

    Group ``g`` takes the samples of group ``pi(g)`` in order, so the k-th sample of a trial takes
    the k-th sample of another trial: the groups must have equal sizes. With ``constant=True`` the
    values to permute are constant within each group (e.g. the reach target of a trial) and groups
    of any size can swap (every sample of ``g`` takes the first sample of ``pi(g)``).

    Parameters
    ----------
    groups : array_like
        One group label per sample (required).
    n_permutations : int
        Number of null draws (rows of the result).
    seed : int or numpy.random.Generator
        Seed of the draws (or a generator, used as is).
    constant : bool
        The permuted values are constant within each group, so groups of different sizes may swap.

    >>> idx = group_permutations([0, 0, 1, 1, 2, 2], n_permutations=1, seed=1)
    >>> idx[0].reshape(3, 2)[:, 1].tolist() == (idx[0].reshape(3, 2)[:, 0] + 1).tolist()
    True
    """
    n_permutations = _check_count(n_permutations)
    codes = resolve_groups(groups)
    if codes is None:
        raise ConfigError("group permutations need groups (one trial/subject label per sample)")
    order, start, size, rank = _layout(codes)
    G = len(size)
    if G < 2:
        raise ConfigError("group permutations need at least two groups; with one trial, use null='circular'")
    if not constant and len(set(size.tolist())) > 1:
        raise MismatchError(
            f"the groups have different sizes ({size.min()} to {size.max()} samples), so time-varying values cannot "
            "be swapped between them sample by sample; use null='auto' (the autocorrelation-corrected test for this "
            "design), cut trials to a common length, or pass values that are constant within each group")
    perm = _rng(seed).permuted(np.broadcast_to(np.arange(G), (n_permutations, G)), axis=1)  # (P, G)
    target = perm[:, codes]  # (P, n): group whose samples sample i takes
    k = np.zeros_like(rank) if constant else rank
    return order[start[target] + k[None, :]]


def circular_shifts(n: int, n_permutations: int = 1000, seed: Any = 0, groups: Any = None,
                    min_shift: int | None = None) -> np.ndarray:
    """``(n_permutations, n)`` circular shifts, within each group, by at least ``min_shift`` samples.

    The shift of a group of ``m`` samples is uniform on ``[min_shift, m - min_shift]`` (default
    ``min_shift``: a tenth of the shortest group, at least 1), so the shifted series is never close
    to the original alignment.

    Parameters
    ----------
    n : int
        Number of samples.
    n_permutations : int
        Number of null draws (rows of the result).
    seed : int or numpy.random.Generator
        Seed of the draws (or a generator, used as is).
    groups : array_like, optional
        One group label (trial, subject) per sample; default one series.
    min_shift : int, optional
        The smallest shift, in samples (>= 1; each group needs at least ``2 * min_shift`` samples).
    """
    n_permutations = _check_count(n_permutations)
    codes = _codes(n, groups)
    order, start, size, rank = _layout(codes)
    lo = max(1, int(size.min()) // 10) if min_shift is None else int(min_shift)
    if lo < 1:
        raise ConfigError(f"min_shift must be at least 1, got {min_shift}")
    bad = size - lo < lo
    if bad.any():
        raise ConfigError(f"a group of {int(size[bad].min())} samples is too short for circular shifts of at least "
                          f"{lo} samples; lower min_shift or merge short trials")
    shift = _rng(seed).integers(lo, size - lo + 1, size=(n_permutations, len(size)))  # (P, G)
    k = (rank[None, :] + shift[:, codes]) % size[codes][None, :]
    return order[start[codes][None, :] + k]


def blocks(n: int, block_size: int, groups: Any = None) -> np.ndarray:
    """Block id of every sample: consecutive runs of ``block_size`` samples that never cross a group.

    Parameters
    ----------
    n : int
        Number of samples.
    block_size : int
        Samples per block (>= 1; the last block of a group may be shorter).
    groups : array_like, optional
        One group label (trial, subject) per sample; default none.
    """
    if int(block_size) < 1:
        raise ConfigError(f"block_size must be at least 1, got {block_size}")
    codes = _codes(n, groups)
    order, _, size, rank = _layout(codes)
    per_group = -(-size // int(block_size))  # blocks in each group (ceil)
    first = np.concatenate([[0], np.cumsum(per_group)[:-1]])
    return first[codes] + rank // int(block_size)


def block_permutations(n: int, n_permutations: int = 1000, seed: Any = 0, block_size: int | None = None,
                       groups: Any = None) -> np.ndarray:
    """``(n_permutations, n)`` permutations of blocks of ``block_size`` consecutive samples.

    Blocks never cross a group boundary (the last block of a group may be shorter); the blocks are
    permuted across the whole series. ``block_size`` should be several times the autocorrelation time
    (default: ``n // 20``, i.e. 20 blocks).

    Parameters
    ----------
    n : int
        Number of samples.
    n_permutations : int
        Number of null draws (rows of the result).
    seed : int or numpy.random.Generator
        Seed of the draws (or a generator, used as is).
    block_size : int, optional
        Samples per block (default ``n // 20``); at least two blocks are needed.
    groups : array_like, optional
        One group label (trial, subject) per sample; default none.
    """
    n_permutations = _check_count(n_permutations)
    block_size = max(1, n // 20) if block_size is None else int(block_size)
    ids = blocks(n, block_size, groups)
    B = int(ids.max()) + 1
    if B < 2:
        raise ConfigError(f"a block size of {block_size} leaves one block of {n} samples; lower block_size")
    order, bstart, bsize, _ = _layout(ids)
    perm = _rng(seed).permuted(np.broadcast_to(np.arange(B), (n_permutations, B)), axis=1)  # (P, B)
    sizes = bsize[perm]
    out_start = np.cumsum(sizes, axis=1) - sizes
    offset = np.repeat((bstart[perm] - out_start).ravel(), sizes.ravel()).reshape(n_permutations, n)
    sorted_idx = order[offset + np.arange(n)[None, :]]  # position j of the output series in sorted order
    idx = np.empty_like(sorted_idx)
    idx[:, order] = sorted_idx
    return idx


def null_indices(n: int, null: str = "permutation", *, groups: Any = None, n_permutations: int = 1000,
                 seed: Any = 0, min_shift: int | None = None, block_size: int | None = None,
                 constant: bool = False) -> np.ndarray:
    """``(n_permutations, n)`` index arrays of the null named ``null`` (one of :data:`NULLS`).

    ``groups`` means: whole groups swap (``"group"``), shifts stay within groups (``"circular"``),
    blocks stop at group boundaries (``"block"``), permutations stay within groups
    (``"permutation"``).

    Parameters
    ----------
    n : int
        Number of samples.
    null : str
        One of :data:`NULLS`: ``"permutation"``, ``"group"``, ``"circular"``, ``"block"``.
    groups : array_like, optional
        One group label (trial, subject) per sample; default none.
    n_permutations : int
        Number of null draws (rows of the result).
    seed : int or numpy.random.Generator
        Seed of the draws (or a generator, used as is).
    min_shift : int, optional
        The smallest shift of ``"circular"``.
    block_size : int, optional
        The block length of ``"block"``.
    constant : bool
        For ``"group"``: the permuted values are constant within each group.
    """
    if null == "permutation":
        return permutations(n, n_permutations, seed, strata=groups)
    if null == "group":
        codes = resolve_groups(groups, n)
        if codes is None:
            raise ConfigError("null='group' needs groups= (a trial or subject label per sample)")
        return group_permutations(codes, n_permutations, seed, constant=constant)
    if null == "circular":
        return circular_shifts(n, n_permutations, seed, groups=groups, min_shift=min_shift)
    if null == "block":
        return block_permutations(n, n_permutations, seed, block_size=block_size, groups=groups)
    raise ConfigError(f"null must be 'auto' or one of {NULLS}, got {null!r}")


def bootstrap_indices(n: int, n_bootstraps: int = 1000, seed: Any = 0, groups: Any = None) -> np.ndarray | list[np.ndarray]:
    """Resamples with replacement: a ``(n_bootstraps, n)`` array of sample indices.

    With ``groups``, whole groups are drawn with replacement (cluster bootstrap) and a resample
    holds all samples of the drawn groups; when the groups differ in size the resamples differ in
    length and a list of arrays is returned. Without groups the draws are those of
    :func:`scipy.stats.bootstrap` for the same seed.

    Parameters
    ----------
    n : int
        Number of samples.
    n_bootstraps : int
        Number of resamples.
    seed : int or numpy.random.Generator
        Seed of the draws (or a generator, used as is).
    groups : array_like, optional
        One group label (trial, subject) per sample; whole groups are drawn (at least two).
    """
    n_bootstraps = _check_count(n_bootstraps, "n_bootstraps")
    rng = _rng(seed)
    codes = resolve_groups(groups, n)
    if codes is None:
        return rng.integers(0, n, (n_bootstraps, n))
    order, start, size, _ = _layout(codes)
    G = len(size)
    if G < 2:
        raise ConfigError("a grouped bootstrap needs at least two groups")
    draws = rng.integers(0, G, (n_bootstraps, G))
    if len(set(size.tolist())) == 1:
        m = int(size[0])
        return order[(start[draws][:, :, None] + np.arange(m)).reshape(n_bootstraps, -1)]
    members = [order[s:s + z] for s, z in zip(start, size)]
    return [np.concatenate([members[g] for g in row]) for row in draws]


def bootstrap_counts(n: int, n_bootstraps: int = 1000, seed: Any = 0, groups: Any = None) -> np.ndarray:
    """``(n_bootstraps, n)`` multiplicity of each sample in each resample (grouped if ``groups``).

    Weighted statistics (means, tuning curves) use these as weights, which handles groups of any size
    without building the resampled data.

    Parameters
    ----------
    n : int
        Number of samples.
    n_bootstraps : int
        Number of resamples.
    seed : int or numpy.random.Generator
        Seed of the draws (or a generator, used as is).
    groups : array_like, optional
        One group label (trial, subject) per sample; whole groups are drawn (at least two).
    """
    n_bootstraps = _check_count(n_bootstraps, "n_bootstraps")
    rng = _rng(seed)
    codes = resolve_groups(groups, n)
    if codes is None:
        draws, G, codes = rng.integers(0, n, (n_bootstraps, n)), n, np.arange(n)
    else:
        G = int(codes.max()) + 1
        if G < 2:
            raise ConfigError("a grouped bootstrap needs at least two groups")
        draws = rng.integers(0, G, (n_bootstraps, G))
    counts = np.zeros((n_bootstraps, G), dtype=np.int64)
    np.add.at(counts, (np.arange(n_bootstraps)[:, None], draws), 1)
    return counts[:, codes]


def is_time_series(source: Any) -> bool:
    """True when ``source`` is an :class:`~interp.Activations` whose samples are time points.

    The signs: a first dim named ``time``/``frame``, ``attrs`` holding ``dt``, ``sfreq`` or
    ``sampling_rate``, or a sample coordinate named ``time``, ``frame`` or ``timestamp``.

    Parameters
    ----------
    source : Any
        The data (anything but an Activations gives False).
    """
    from ..tensor import Activations

    if not isinstance(source, Activations):
        return False
    if source.dims[0] in ("time", "frame"):
        return True
    if any(source.attrs.get(k) for k in ("dt", "sfreq", "sampling_rate")):
        return True
    return any(c in source.coords[source.dims[0]].columns for c in ("time", "frame", "timestamp"))


def lag1_autocorrelation(x: np.ndarray, groups: Any = None) -> np.ndarray:
    """Lag-1 autocorrelation of each column of ``x`` (pairs that cross a group boundary are skipped).

    Parameters
    ----------
    x : numpy.ndarray
        ``(n,)`` or ``(n, columns)``, samples in time order; fewer than 3 samples give zeros.
    groups : array_like, optional
        One group label (trial, subject) per sample; default none.
    """
    x = np.asarray(x, dtype=float)
    x = x[:, None] if x.ndim == 1 else x
    n = len(x)
    if n < 3:
        return np.zeros(x.shape[1])
    codes = _codes(n, groups)
    order = np.argsort(codes, kind="stable")
    xs, cs = x[order], codes[order]
    same = cs[1:] == cs[:-1]
    z = xs - xs.mean(0)
    den = (z ** 2).sum(0)
    num = (z[1:][same] * z[:-1][same]).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(den > 0, num / den, 0.0)
    return r


def choose_null(null: str = "auto", *, groups: Any = None, source: Any = None, activity: np.ndarray | None = None,
                values: list[np.ndarray] | None = None) -> tuple[str, str]:
    """Resolve ``null="auto"``: ``(name, reason)``.

    * ``groups`` given: ``"group"`` (whole trials/subjects swap);
    * a time series (:func:`is_time_series`): ``"circular"``;
    * otherwise, when both the activity (median lag-1 autocorrelation over units) and one of the
      ``values`` being tested are autocorrelated beyond ``max(0.1, 3/sqrt(n))``, the samples are not
      exchangeable and the null is ``"circular"``; else ``"permutation"``.

    A named null is returned as is (checked). ``reason`` says why, for the result's summary.

    Parameters
    ----------
    null : str
        ``"auto"`` or one of :data:`NULLS`.
    groups : array_like, optional
        One group label (trial, subject) per sample; default none.
    source : Any, optional
        The data, checked with :func:`is_time_series`.
    activity : numpy.ndarray, optional
        ``(n, units)`` the activity, for its autocorrelation.
    values : list of numpy.ndarray, optional
        The variables being tested against the activity (only non-binary numeric ones count).
    """
    if null != "auto":
        if null not in NULLS:
            raise ConfigError(f"null must be 'auto' or one of {NULLS}, got {null!r}")
        if null == "group" and groups is None:
            raise ConfigError("null='group' needs groups= (a trial or subject label per sample)")
        return null, "chosen by the caller"
    if groups is not None:
        return "group", "whole groups (trials) are exchanged"
    if is_time_series(source):
        return "circular", "the samples are a time series"
    if activity is None:
        return "permutation", "samples are treated as exchangeable"
    X = np.asarray(activity, dtype=float)
    n = len(X)
    threshold = max(0.1, 3 / math.sqrt(max(n, 1)))
    r_act = float(np.median(lag1_autocorrelation(X)))
    r_val = 0.0
    for v in values or []:
        v = np.asarray(v)
        if v.dtype.kind in "fiu" and len(np.unique(v)) > 2:
            cols = v.astype(float)
        else:
            cols = (v[:, None] == pd.unique(v)[None, :]).astype(float)
        r_val = max(r_val, float(np.max(lag1_autocorrelation(cols))))
    if r_act > threshold and r_val > threshold:
        return "circular", (f"the samples are autocorrelated (median lag-1 r of the activity {r_act:.2f}, of the "
                            f"tested values {r_val:.2f}), so single samples are not exchangeable")
    return "permutation", "samples are treated as exchangeable (no autocorrelation found)"
