"""Statistics for similarity scores: stimulus-label permutation tests and bootstrap confidence intervals.

Built on :mod:`interp.stats` (the one home of nulls and intervals):

* :func:`permutation_test`: the null distribution of a similarity when the stimulus labels of one side
  are shuffled (rows of a pattern matrix, or rows *and* columns of an RDM; Kriegeskorte et al. 2008).
  With ``groups`` (a label per stimulus/sample: trials, sessions) whole groups swap; on a time series
  (an ``Activations`` of time points) the default null shifts one side circularly instead of permuting
  single samples. p = (1 + #{null >= observed}) / (1 + n_permutations).
* :func:`bootstrap_ci`: percentile CI from resampling stimuli (rows) with replacement, or whole groups.
* :func:`rdm_bootstrap`: model-vs-brain RDM scores (mean over subject RDMs of the comparator) bootstrapped
  over stimuli and/or subjects, as in rsatoolbox's ``bootstrap_sample``. When stimuli are resampled, the
  pairs of a stimulus with its own copy are dropped (rsatoolbox sets them to NaN) for vector comparators;
  whitened comparators use the full resampled matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from interp._progress import tqdm

from ..errors import ConfigError, DimensionError, MismatchError
from ..stats import (
    BootstrapResult,
    PermutationResult,
    bootstrap_indices,
    choose_null,
    null_indices,
    p_value,
    percentile_interval,
    resolve_groups,
)
from ._backend import as_pair
from .rdm import RDMs, as_rdm_vectors, check_rdm, square, upper_tri
from .rsa import canonical_method, compare_vectors

__all__ = ["permutation_test", "bootstrap_ci", "rdm_bootstrap", "PermutationResult", "BootstrapResult",
           "pattern_statistic"]


def pattern_statistic(name: str | Callable[[torch.Tensor, torch.Tensor], float]) -> Callable:
    """A callable f(X, Y) -> float for a measure name: ``"rsa[:comparator]"``, ``"cka[:estimator]"``,
    ``"rbf_cka[:estimator]"``, ``"cca"``, ``"svcca"``, ``"pwcca"``, ``"procrustes"`` (NBS = cos angular).

    Parameters
    ----------
    name : str or Callable
        A measure name, or a callable returned as it is.
    """
    if callable(name):
        return name
    from .cca import cca, pwcca, svcca
    from .cka import cka
    from .rsa import rsa
    from .shape import shape_distance

    base, _, arg = name.partition(":")
    table: dict[str, Callable] = {
        "rsa": lambda X, Y: rsa(X, Y, method=arg or "spearman"),
        "cka": lambda X, Y: cka(X, Y, estimator=arg or "biased"),
        "rbf_cka": lambda X, Y: cka(X, Y, kernel="rbf", estimator=arg or "biased"),
        "cca": lambda X, Y: cca(X, Y),
        "svcca": lambda X, Y: svcca(X, Y),
        "pwcca": lambda X, Y: pwcca(X, Y),
        "procrustes": lambda X, Y: shape_distance(X, Y, "nbs"),
    }
    if base not in table:
        raise ConfigError(f"unknown statistic {name!r}; use one of {sorted(table)} (optionally ':option')")
    return table[base]


def _is_rdm_input(a: Any) -> bool:
    if isinstance(a, RDMs):
        return True
    shape = getattr(a, "shape", None)
    return shape is not None and len(shape) == 2 and shape[0] == shape[1] and _symmetric_zero_diag(a)


def _symmetric_zero_diag(a: Any) -> bool:
    t = a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a, dtype=float))
    return bool(torch.allclose(t, t.T) and torch.all(torch.diagonal(t) == 0))


def _null_for(n: int, null: str, groups: Any, sources: Sequence[Any], n_permutations: int, seed: int) -> tuple[np.ndarray, str]:
    from ..tensor import Activations

    source = next((s for s in sources if isinstance(s, Activations)), None)
    codes = resolve_groups(groups, n, source)
    kind, _ = choose_null(null, groups=codes, source=source)
    return null_indices(n, kind, groups=codes, n_permutations=n_permutations, seed=seed), kind


def permutation_test(x: Any, y: Any, statistic: str | Callable = "rsa:spearman", *, n_permutations: int = 1000,
                     seed: int = 0, alternative: str = "greater", rdms: bool | None = None, groups: Any = None,
                     null: str = "auto", progress: bool = False) -> PermutationResult:
    """Stimulus-label permutation test of the similarity between ``x`` and ``y``.

    If both inputs are RDMs (``RDMs`` or square symmetric zero-diagonal matrices, or ``rdms=True``),
    ``statistic`` is a comparator name and the rows and columns of ``y`` are permuted together.
    Otherwise ``x`` and ``y`` are patterns (samples x features), ``statistic`` is a measure name (see
    :func:`pattern_statistic`) or a callable, and the rows of ``y`` are permuted. ``groups`` (a label per
    stimulus, or a sample-coordinate name of an Activations input) swaps whole groups; ``null`` is
    ``"auto"`` (groups -> whole groups; a time-series Activations -> circular shifts; else a
    permutation) or a name from :data:`interp.stats.NULLS`. ``alternative="two-sided"`` doubles the
    smaller one-sided p, as :func:`scipy.stats.permutation_test`.

    Parameters
    ----------
    x, y : array-like
        Patterns ``(samples, features)``, or RDMs.
    statistic : str or Callable
        A comparator name (RDMs) or a measure name / callable (patterns).
    n_permutations : int
        Size of the null.
    seed : int
        Random seed.
    alternative : {"greater", "less", "two-sided"}
        The alternative hypothesis.
    rdms : bool, optional
        Treat the inputs as RDMs (default: detected).
    groups : array-like or str, optional
        A label per stimulus, or a sample-coordinate name: swap whole groups.
    null : str
        ``"auto"`` or a name from :data:`interp.stats.NULLS`.
    progress : bool
        Show a progress bar.

    >>> import torch
    >>> from interp.similarity import permutation_test
    >>> X = torch.randn(40, 5, dtype=torch.float64)
    >>> permutation_test(X, X + 0.1 * torch.randn(40, 5, dtype=torch.float64), "cka", n_permutations=99).p_value
    0.01
    """
    if n_permutations < 1:
        raise ConfigError(f"n_permutations must be >= 1, got {n_permutations}")
    use_rdms = rdms if rdms is not None else (_is_rdm_input(x) and _is_rdm_input(y))
    if use_rdms:
        method = canonical_method(statistic if isinstance(statistic, str) else "spearman")
        va = as_rdm_vectors(x)
        Db = square(as_rdm_vectors(y, device=va.device))[0]
        n = Db.shape[0]
        observed = float(compare_vectors(va[:1], upper_tri(Db)[None], method)[0, 0])
        idx, kind = _null_for(n, null, groups, (), n_permutations, seed)
        null_stats = np.empty(n_permutations)
        for start in tqdm(range(0, n_permutations, 256), disable=not progress, desc="permutations"):
            perms = torch.as_tensor(idx[start:start + 256], device=Db.device)
            permuted = Db[perms[:, :, None], perms[:, None, :]]
            null_stats[start:start + len(perms)] = compare_vectors(upper_tri(permuted), va[:1], method)[:, 0].cpu().numpy()
        name = method
    else:
        fn = pattern_statistic(statistic)
        X, Y = as_pair(x, y)
        observed = float(fn(X, Y))
        idx, kind = _null_for(X.shape[0], null, groups, (x, y), n_permutations, seed)
        null_stats = np.empty(n_permutations)
        for k in tqdm(range(n_permutations), disable=not progress, desc="permutations"):
            null_stats[k] = float(fn(X, Y[torch.as_tensor(idx[k], device=Y.device)]))
        name = statistic if isinstance(statistic, str) else getattr(statistic, "__name__", "statistic")
    return PermutationResult(observed, p_value(observed, null_stats, alternative), null_stats, name, alternative, kind)


def _level(level: float) -> float:
    if not 0 < level < 1:
        raise ConfigError(f"level must be in (0, 1), got {level}")
    return 1 - level


def bootstrap_ci(x: Any, y: Any, statistic: str | Callable = "cka", *, n_bootstraps: int = 1000, level: float = 0.95,
                 seed: int = 0, groups: Any = None, progress: bool = False) -> BootstrapResult:
    """Percentile bootstrap CI of a pattern similarity, resampling stimuli (rows of both) with replacement.

    ``groups`` (a label per row, or a sample-coordinate name of an Activations input) resamples whole
    groups (trials, sessions) instead of single rows.

    Parameters
    ----------
    x, y : array-like
        ``(samples, features)`` patterns with the same samples in the same order (arrays, tensors or
        Activations).
    statistic : str or Callable
        A measure name (:func:`pattern_statistic`) or ``f(X, Y) -> float``.
    n_bootstraps : int
        Bootstrap resamples.
    level : float
        Confidence level.
    seed : int
        Random seed.
    groups : array-like or str, optional
        A label per row, or a sample-coordinate name: resample whole groups.
    progress : bool
        Show a progress bar.
    """
    from ..tensor import Activations

    alpha = _level(level)
    fn = pattern_statistic(statistic)
    X, Y = as_pair(x, y)
    if X.shape[0] != Y.shape[0]:
        raise MismatchError(f"x has {X.shape[0]} rows and y {Y.shape[0]}; bootstrapping needs paired rows")
    source = x if isinstance(x, Activations) else (y if isinstance(y, Activations) else None)
    codes = resolve_groups(groups, X.shape[0], source)
    estimate = float(fn(X, Y))
    draws = bootstrap_indices(X.shape[0], n_bootstraps, seed, groups=codes)
    samples = np.empty(n_bootstraps)
    for b in tqdm(range(n_bootstraps), disable=not progress, desc="bootstrap"):
        idx = torch.as_tensor(draws[b], device=X.device)
        samples[b] = float(fn(X[idx], Y[idx]))
    low, high = percentile_interval(samples, alpha)
    return BootstrapResult(estimate, float(low), float(high), level, samples, "groups" if codes is not None else "stimuli")


def _rdm_stack(a: Any) -> torch.Tensor:
    if isinstance(a, RDMs):
        return a.data
    t = a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a, dtype=float))
    t = check_rdm(t.to(torch.float64) if not t.is_floating_point() else t)
    return t[None] if t.ndim == 2 else t


def rdm_scores(models: torch.Tensor, data: torch.Tensor, method: str, stim_idx: np.ndarray | None = None,
               subj_idx: np.ndarray | None = None) -> np.ndarray:
    """Mean over data RDMs of compare(model_k, data_s) for each model (optionally on resampled stimuli/subjects).

    Parameters
    ----------
    models : torch.Tensor
        ``(k, m)`` model RDM vectors.
    data : torch.Tensor
        ``(s, m)`` data RDM vectors.
    method : str
        The comparator.
    stim_idx, subj_idx : numpy.ndarray, optional
        Resampled stimulus and subject indices.
    """
    if subj_idx is not None:
        data = data[torch.as_tensor(subj_idx, device=data.device)]
    if stim_idx is None:
        vm, vd = upper_tri(models), upper_tri(data)
    else:
        idx = torch.as_tensor(stim_idx, device=models.device)
        Mm = models[:, idx][:, :, idx]
        Md = data[:, idx][:, :, idx]
        if method in ("whitened_cosine", "whitened_pearson"):
            vm, vd = upper_tri(Mm), upper_tri(Md)
        else:
            n = len(stim_idx)
            i, j = torch.triu_indices(n, n, offset=1)
            keep = torch.as_tensor(stim_idx)[i] != torch.as_tensor(stim_idx)[j]
            i, j = i[keep].to(models.device), j[keep].to(models.device)
            vm, vd = Mm[:, i, j], Md[:, i, j]
    return compare_vectors(vm, vd.to(vm.dtype), method).mean(1).cpu().numpy()


def rdm_bootstrap(models: Any, data: Any, method: str = "spearman", *, over: str | Sequence[str] = "stimuli",
                  n_bootstraps: int = 1000, level: float = 0.95, seed: int = 0, groups: Any = None,
                  progress: bool = False) -> BootstrapResult:
    """Bootstrap the score of each model RDM against a stack of data RDMs (one per subject/session).

    ``over``: ``"stimuli"``, ``"subjects"`` or ``("stimuli", "subjects")``. ``groups`` (one label per
    stimulus) resamples whole groups of stimuli. ``samples`` has shape ``(n_bootstraps, n_models)`` and is
    paired across models (same resamples), so differences between models can be bootstrapped from it
    directly.

    Parameters
    ----------
    models : RDMs or array-like
        Model RDMs.
    data : RDMs or array-like
        Data RDMs, one per subject/session.
    method : str
        The RDM comparator.
    over : str or Sequence[str]
        ``"stimuli"``, ``"subjects"`` or both.
    n_bootstraps : int
        Bootstrap resamples.
    level : float
        Confidence level.
    seed : int
        Random seed.
    groups : array-like, optional
        One label per stimulus: resample whole groups of stimuli.
    progress : bool
        Show a progress bar.
    """
    alpha = _level(level)
    method = canonical_method(method)
    over = (over,) if isinstance(over, str) else tuple(over)
    unknown = set(over) - {"stimuli", "subjects"}
    if unknown or not over:
        raise ConfigError(f"over must be 'stimuli' and/or 'subjects', got {over}")
    M = _rdm_stack(models).to(torch.float64)
    D = _rdm_stack(data).to(device=M.device, dtype=M.dtype)
    if M.shape[-1] != D.shape[-1]:
        raise DimensionError(f"model RDMs are {M.shape[-1]}x{M.shape[-1]} but data RDMs {D.shape[-1]}x{D.shape[-1]}")
    if "subjects" in over and D.shape[0] < 2:
        raise DimensionError("bootstrapping over subjects needs at least 2 data RDMs")
    rng = np.random.default_rng(seed)
    n, s = M.shape[-1], D.shape[0]
    codes = resolve_groups(groups, n)
    estimate = rdm_scores(M, D, method)
    stim = bootstrap_indices(n, n_bootstraps, rng, groups=codes) if "stimuli" in over else None
    subj = bootstrap_indices(s, n_bootstraps, rng) if "subjects" in over else None
    samples = np.empty((n_bootstraps, M.shape[0]))
    for b in tqdm(range(n_bootstraps), disable=not progress, desc="bootstrap"):
        samples[b] = rdm_scores(M, D, method, None if stim is None else np.asarray(stim[b]),
                                None if subj is None else subj[b])
    low, high = percentile_interval(samples, alpha)
    single = M.shape[0] == 1
    return BootstrapResult(float(estimate[0]) if single else estimate, float(low[0]) if single else low,
                           float(high[0]) if single else high, level, samples, "+".join(over))
