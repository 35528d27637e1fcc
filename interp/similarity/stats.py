"""Statistics for similarity scores: stimulus-label permutation tests and bootstrap confidence intervals.

* :func:`permutation_test`: the null distribution of a similarity when the stimulus labels of one side
  are shuffled (rows of a pattern matrix, or rows *and* columns of an RDM; Kriegeskorte et al. 2008).
  p = (1 + #{null >= observed}) / (1 + n_permutations).
* :func:`bootstrap_ci`: percentile CI from resampling stimuli (rows) with replacement.
* :func:`rdm_bootstrap`: model-vs-brain RDM scores (mean over subject RDMs of the comparator) bootstrapped
  over stimuli and/or subjects, as in rsatoolbox's ``bootstrap_sample``. When stimuli are resampled, the
  pairs of a stimulus with its own copy are dropped (rsatoolbox sets them to NaN) for vector comparators;
  whitened comparators use the full resampled matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..errors import ConfigError, DimensionError
from ._backend import as_pair
from .rdm import RDMs, as_rdm_vectors, check_rdm, square, upper_tri
from .rsa import canonical_method, compare_vectors

__all__ = ["permutation_test", "bootstrap_ci", "rdm_bootstrap", "PermutationResult", "BootstrapResult",
           "pattern_statistic"]


@dataclass
class PermutationResult:
    observed: float
    p_value: float
    null: np.ndarray = field(repr=False)
    statistic: str
    alternative: str = "greater"

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"observed": self.observed, "p_value": self.p_value, "n_permutations": len(self.null),
                              "null_mean": float(np.mean(self.null)), "null_sd": float(np.std(self.null)),
                              "statistic": self.statistic}])

    def plot(self):
        import plotly.graph_objects as go

        fig = go.Figure(go.Histogram(x=self.null, name="null"))
        fig.add_vline(x=self.observed, line_color="red", annotation_text=f"observed (p={self.p_value:.3g})")
        fig.update_layout(title=f"Permutation test: {self.statistic}", xaxis_title=self.statistic)
        return fig


@dataclass
class BootstrapResult:
    estimate: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    level: float
    samples: np.ndarray = field(repr=False)
    over: str

    def to_frame(self) -> pd.DataFrame:
        est = np.atleast_1d(self.estimate)
        return pd.DataFrame({"estimate": est, "low": np.atleast_1d(self.low), "high": np.atleast_1d(self.high),
                             "level": self.level, "n_boot": len(self.samples), "over": self.over})


def pattern_statistic(name: str | Callable[[torch.Tensor, torch.Tensor], float]) -> Callable:
    """A callable f(X, Y) -> float for a measure name: ``"rsa[:comparator]"``, ``"cka[:estimator]"``,
    ``"rbf_cka[:estimator]"``, ``"cca"``, ``"svcca"``, ``"pwcca"``, ``"procrustes"`` (NBS = cos angular)."""
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


def permutation_test(x: Any, y: Any, statistic: str | Callable = "rsa:spearman", *, n_permutations: int = 1000,
                     seed: int = 0, alternative: str = "greater", rdms: bool | None = None,
                     progress: bool = False) -> PermutationResult:
    """Stimulus-label permutation test of the similarity between ``x`` and ``y``.

    If both inputs are RDMs (``RDMs`` or square symmetric zero-diagonal matrices, or ``rdms=True``),
    ``statistic`` is a comparator name and the rows and columns of ``y`` are permuted together.
    Otherwise ``x`` and ``y`` are patterns (samples x features), ``statistic`` is a measure name (see
    :func:`pattern_statistic`) or a callable, and the rows of ``y`` are permuted.

    >>> import torch
    >>> from interp.similarity import permutation_test
    >>> X = torch.randn(40, 5, dtype=torch.float64)
    >>> permutation_test(X, X + 0.1 * torch.randn(40, 5, dtype=torch.float64), "cka", n_permutations=99).p_value
    0.01
    """
    if alternative not in ("greater", "less", "two-sided"):
        raise ConfigError(f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")
    if n_permutations < 1:
        raise ConfigError(f"n_permutations must be >= 1, got {n_permutations}")
    rng = np.random.default_rng(seed)
    use_rdms = rdms if rdms is not None else (_is_rdm_input(x) and _is_rdm_input(y))
    if use_rdms:
        method = canonical_method(statistic if isinstance(statistic, str) else "spearman")
        va = as_rdm_vectors(x)
        Db = square(as_rdm_vectors(y, device=va.device))[0]
        n = Db.shape[0]
        observed = float(compare_vectors(va[:1], upper_tri(Db)[None], method)[0, 0])
        null = np.empty(n_permutations)
        batch = 256
        it = range(0, n_permutations, batch)
        for start in tqdm(it, disable=not progress, desc="permutations"):
            stop = min(start + batch, n_permutations)
            perms = torch.as_tensor(np.stack([rng.permutation(n) for _ in range(stop - start)]), device=Db.device)
            permuted = Db[perms[:, :, None], perms[:, None, :]]
            null[start:stop] = compare_vectors(upper_tri(permuted), va[:1], method)[:, 0].cpu().numpy()
        name = method
    else:
        fn = pattern_statistic(statistic)
        X, Y = as_pair(x, y)
        observed = float(fn(X, Y))
        null = np.empty(n_permutations)
        for k in tqdm(range(n_permutations), disable=not progress, desc="permutations"):
            perm = torch.as_tensor(rng.permutation(X.shape[0]), device=Y.device)
            null[k] = float(fn(X, Y[perm]))
        name = statistic if isinstance(statistic, str) else getattr(statistic, "__name__", "statistic")
    if alternative == "greater":
        hits = np.sum(null >= observed)
    elif alternative == "less":
        hits = np.sum(null <= observed)
    else:
        hits = np.sum(np.abs(null - null.mean()) >= abs(observed - null.mean()))
    return PermutationResult(observed, float((1 + hits) / (1 + n_permutations)), null, name, alternative)


def _percentile(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < level < 1:
        raise ConfigError(f"level must be in (0, 1), got {level}")
    alpha = (1 - level) / 2
    return np.nanquantile(samples, alpha, axis=0), np.nanquantile(samples, 1 - alpha, axis=0)


def bootstrap_ci(x: Any, y: Any, statistic: str | Callable = "cka", *, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0, progress: bool = False) -> BootstrapResult:
    """Percentile bootstrap CI of a pattern similarity, resampling stimuli (rows of both) with replacement."""
    fn = pattern_statistic(statistic)
    X, Y = as_pair(x, y)
    rng = np.random.default_rng(seed)
    estimate = float(fn(X, Y))
    samples = np.empty(n_boot)
    for b in tqdm(range(n_boot), disable=not progress, desc="bootstrap"):
        idx = torch.as_tensor(rng.integers(0, X.shape[0], X.shape[0]), device=X.device)
        samples[b] = float(fn(X[idx], Y[idx]))
    low, high = _percentile(samples, level)
    return BootstrapResult(estimate, float(low), float(high), level, samples, "stimuli")


def _rdm_stack(a: Any) -> torch.Tensor:
    if isinstance(a, RDMs):
        return a.data
    t = a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a, dtype=float))
    t = check_rdm(t.to(torch.float64) if not t.is_floating_point() else t)
    return t[None] if t.ndim == 2 else t


def rdm_scores(models: torch.Tensor, data: torch.Tensor, method: str, stim_idx: np.ndarray | None = None,
               subj_idx: np.ndarray | None = None) -> np.ndarray:
    """Mean over data RDMs of compare(model_k, data_s) for each model (optionally on resampled stimuli/subjects)."""
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
                  n_boot: int = 1000, level: float = 0.95, seed: int = 0, progress: bool = False) -> BootstrapResult:
    """Bootstrap the score of each model RDM against a stack of data RDMs (one per subject/session).

    ``over``: ``"stimuli"``, ``"subjects"`` or ``("stimuli", "subjects")``. ``samples`` has shape
    ``(n_boot, n_models)`` and is paired across models (same resamples), so differences between models
    can be bootstrapped from it directly.
    """
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
    estimate = rdm_scores(M, D, method)
    samples = np.empty((n_boot, M.shape[0]))
    for b in tqdm(range(n_boot), disable=not progress, desc="bootstrap"):
        stim = rng.integers(0, n, n) if "stimuli" in over else None
        subj = rng.integers(0, s, s) if "subjects" in over else None
        samples[b] = rdm_scores(M, D, method, stim, subj)
    low, high = _percentile(samples, level)
    single = M.shape[0] == 1
    return BootstrapResult(float(estimate[0]) if single else estimate, float(low[0]) if single else low,
                           float(high[0]) if single else high, level, samples, "+".join(over))
