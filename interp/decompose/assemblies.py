"""Neural assemblies: groups of units that are active together, found in a recording (or in model units).

The recipe of Lopes-dos-Santos, Ribeiro & Tort (2013), "Detecting cell assemblies in large neuronal
populations" (J Neurosci Methods 220:149-166):

1. z-score each unit over time; the eigenvalues of the units' correlation matrix above the noise bound
   count the assemblies. The bound is the Marchenko-Pastur edge ``(1 + sqrt(n_units / n_samples))**2``
   (``n_assemblies="marchenko-pastur"``), which assumes independent samples, or the ``1 - alpha``
   quantile of the largest eigenvalue when every unit is circularly shifted in time
   (``"circular-shift"``, the default: calcium traces are autocorrelated, which pushes noise
   eigenvalues past the Marchenko-Pastur edge).
2. Extract that many patterns: NMF of the (non-negative) activity (``method="nmf"``; the standard for
   calcium imaging, e.g. Mölter, Avitan & Goodhill 2018, BMC Biology 16:143), or ICA of the data
   projected on the leading principal components (``method="ica"``, Lopes-dos-Santos et al. 2013).
3. Members: units whose loading stands out (Otsu's threshold on each pattern's loadings by default).
4. Significance: each pattern's strength ``w' C w`` (unit-norm ``w``, ``C`` the correlation matrix)
   against the largest eigenvalue of circularly shifted surrogates. ``w' C w <= lambda_max(C)`` for
   every ``w``, so the test is valid (conservative) however ``w`` was chosen; the shifts keep each
   unit's autocorrelation (Harris 2020, "Nonsense correlations in neuroscience").

Negative dF/F (``method="nmf"``): ``negative="clip"`` (default) and ``"shift"`` accept it, ``"raise"``
refuses. NMF factorises each unit's excursions of more than one noise SD above its baseline (median),
in units of its robust noise level (1.4826 MAD), so that neither bright cells nor baselines dominate:
on raw shifted or clipped traces scaled by their SD the first component was the baselines, loading
most on the non-members (it returned a planted assembly's complement).

Example
-------
>>> from interp.decompose import find_assemblies, match_assemblies, planted_assemblies
>>> planted = planted_assemblies(seed=0)
>>> found = find_assemblies(planted.recording, n_permutations=99)
>>> len(found.members)
4
>>> bool(match_assemblies(found, planted.members).to_frame()["auc"].min() > 0.95)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp._progress import tqdm

from ..errors import ConfigError, DimensionError, InputTypeError, MismatchError
from ..results import Result, themed
from ..stats import benjamini_hochberg, circular_shifts
from ..stats import p_value as stats_p_value
from ..tensor import Activations
from ._base import NegativeValueError
from ._data import as_activations, as_matrix

__all__ = ["find_assemblies", "Assemblies", "match_assemblies", "AssemblyMatch", "marchenko_pastur_bound"]

_N_CHOICES = ("circular-shift", "marchenko-pastur")


def marchenko_pastur_bound(n_units: int, n_samples: int) -> float:
    """Upper edge ``(1 + sqrt(n_units / n_samples))**2`` of the eigenvalues of a correlation matrix of independent units.

    Parameters
    ----------
    n_units : int
        Number of units (columns).
    n_samples : int
        Number of samples (rows).
    """
    return float((1.0 + np.sqrt(n_units / n_samples)) ** 2)


def _zscore(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0)
    sd = x.std(0)
    return x / np.where(sd > 0, sd, 1.0)


def _largest_eigenvalue(z: np.ndarray) -> float:
    """Largest eigenvalue of the correlation matrix ``z'z / t`` of z-scored columns."""
    t, n = z.shape
    if min(t, n) <= 1000:
        gram = z.T @ z if n <= t else z @ z.T
        return float(np.linalg.eigvalsh(gram)[-1]) / t
    from scipy.sparse.linalg import svds

    top = svds(z, k=1, return_singular_vectors=False, random_state=0)
    return float(top[0]) ** 2 / t


def _circular_shift_null(z: np.ndarray, n_permutations: int, seed: int, progress: bool) -> np.ndarray:
    """Largest correlation eigenvalue after shifting every unit by its own random circular shift.

    Each draw rotates every unit independently (:func:`interp.stats.circular_shifts` with one row per
    unit, shifts in ``[1, t - 1]``), which keeps each unit's autocorrelation and breaks the alignment
    between units.
    """
    t, n = z.shape
    rng = np.random.default_rng(seed)
    cols = np.arange(n)[None, :]
    out = np.empty(n_permutations)
    for b in tqdm(range(n_permutations), desc="circular shifts", disable=not progress, leave=False):
        rows = circular_shifts(t, n, rng, min_shift=1).T  # (t, n): sample of unit j at time i
        out[b] = _largest_eigenvalue(z[rows, cols])
    return out


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold on a 1-D sample: the cut maximising the between-class variance."""
    v = np.sort(values)
    n = len(v)
    if n < 2 or v[0] == v[-1]:
        return float(v[-1])
    csum = np.cumsum(v)
    k = np.arange(1, n)
    w0, w1 = k / n, 1 - k / n
    m0 = csum[:-1] / k
    m1 = (csum[-1] - csum[:-1]) / (n - k)
    between = w0 * w1 * (m0 - m1) ** 2
    between[v[1:] == v[:-1]] = -1  # cut only between distinct values
    i = int(np.argmax(between))
    return float((v[i] + v[i + 1]) / 2)


def _members(loadings: np.ndarray, rule: str | float) -> list[list[int]]:
    out = []
    for w in loadings:
        if isinstance(rule, str):
            threshold = _otsu(w)
            chosen = np.flatnonzero(w > threshold)
        else:
            chosen = np.flatnonzero(w > w.mean() + float(rule) * w.std())
        out.append([int(i) for i in chosen])
    return out


def _nonnegative(x: np.ndarray, negative: str) -> np.ndarray:
    low = float(x.min())
    if low >= 0:
        return x
    if negative == "raise":
        raise NegativeValueError(f"the recording has {int((x < 0).sum())} negative values (min {low:.4g}); NMF needs "
                                 "non-negative activity: pass negative='clip' (below baseline = silent) or 'shift'")
    if negative == "clip":
        return np.clip(x, 0, None)
    return x - x.min(0)


def _excursions(data: np.ndarray) -> np.ndarray:
    """What NMF factorises: each unit's activity above its baseline (median), in units of its noise (MAD).

    NMF on the raw (shifted or clipped) traces spends its first component on the units' baselines, and
    scaling by the standard deviation, which a member's events inflate, gives members the smallest
    baselines: with one assembly the component's largest loadings were the non-members (the planted
    assembly's complement). Excursions of more than one noise SD above the baseline, in units of a
    robust noise level (1.4826 MAD), leave the co-active events as the non-negative structure (the
    noise's positive half would otherwise form a component loading on every unit). ``negative``
    then only decides whether negative values are accepted: both ``clip`` and ``shift`` give these
    excursions.
    """
    base = np.median(data, axis=0)
    noise = 1.4826 * np.median(np.abs(data - base), axis=0)
    sd = data.std(0)
    scale = np.where(noise > 0, noise, np.where(sd > 0, sd, 1.0))
    above = np.clip((data - base) / scale - 1.0, 0, None)  # more than one noise SD above baseline
    return above


def _ica_patterns(z: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import FastICA

    t, n = z.shape
    _, vectors = np.linalg.eigh(z.T @ z / t)
    top = vectors[:, ::-1][:, :k]
    ica = FastICA(n_components=k, whiten="unit-variance", random_state=seed, max_iter=2000, tol=1e-6)
    ica.fit(z @ top)
    return (top @ ica.components_.T).T  # (k, n_units)


def _spatial(positions: np.ndarray, members: list[list[int]], n_permutations: int, seed: int) -> pd.DataFrame:
    from scipy.spatial.distance import pdist

    rng = np.random.default_rng(seed + 1)
    valid = np.flatnonzero(np.isfinite(positions).all(1))
    valid_set = set(valid.tolist())
    rows = []
    for group in members:
        group = [g for g in group if g in valid_set]
        if len(group) < 2:
            rows.append({"spatial_extent": np.nan, "spatial_ratio": np.nan, "spatial_p": np.nan})
            continue
        extent = float(pdist(positions[group]).mean())
        null = np.array([pdist(positions[rng.choice(valid, len(group), replace=False)]).mean()
                         for _ in range(n_permutations)])
        rows.append({"spatial_extent": extent, "spatial_ratio": extent / float(null.mean()),
                     "spatial_p": (1 + int((null <= extent).sum())) / (1 + n_permutations)})
    return pd.DataFrame(rows)


def find_assemblies(recording: Any, n_assemblies: int | str | None = None, method: str = "nmf", seed: int = 0, *,
                    negative: str = "clip", members: str | float = "otsu", n_permutations: int = 200,
                    alpha: float = 0.05, coords: Sequence[str] = ("x", "y", "z"), progress: bool = False) -> Assemblies:
    """Find groups of co-active units (see the module docstring for the method and its references).

    Parameters
    ----------
    recording:
        ``(sample=time, unit)`` Activations (other sample dims are flattened into time) or a
        ``(time, unit)`` array: dF/F, spike counts or model activations.
    n_assemblies:
        How many to extract: an int, ``"circular-shift"`` (default for ``None``: eigenvalues above the
        ``1 - alpha`` quantile of the shifted surrogates' largest eigenvalue) or ``"marchenko-pastur"``.
    method:
        ``"nmf"`` (loadings >= 0; activations are NMF's time courses) or ``"ica"`` (signed loadings,
        sign set so that the largest is positive; activations are the projection strength
        ``R(t) = (z(t)'w)**2 - sum_i w_i**2 z_i(t)**2`` of Lopes-dos-Santos et al.).
    seed:
        Seed of the surrogates, of ICA and of the spatial null.
    negative:
        ``"clip"`` (default), ``"shift"`` or ``"raise"``: how ``method="nmf"`` treats negative values.
    members:
        ``"otsu"`` (default: Otsu's threshold on each pattern's loadings) or a number ``z``: loadings
        above their mean plus ``z`` standard deviations (``2`` is a common choice for ICA weights).
    n_permutations:
        Circular-shift surrogates for the eigenvalue null (and random unit sets for the spatial null).
    alpha:
        Significance level: for the ``"circular-shift"`` count and the ``significant`` column (``q < alpha``,
        Benjamini-Hochberg across assemblies).
    coords:
        Unit coordinates holding positions; when present, each assembly's ``spatial_extent`` (mean
        pairwise distance of its members), ``spatial_ratio`` (over random unit sets of the same size) and
        ``spatial_p`` (fraction of random sets at least as compact) are reported.
    progress:
        A progress bar over the surrogates.

    Cost: one largest-eigenvalue computation per surrogate (``n_units`` x ``n_units`` up to 1,000 units,
    a sparse SVD beyond), plus one NMF or ICA fit.

    Returns
    -------
    Assemblies
        ``members``, ``loadings`` ``(n_assemblies, n_units)``, ``activations`` (Activations
        ``(sample, unit=assembly)``), ``strength``, ``p_value``, ``q_value`` per assembly.

    Example
    -------
    >>> res = find_assemblies(interp.data.load_mat("fish.mat", "dff", dims=("unit", "time")))  # doctest: +SKIP
    >>> res.to_frame()                                                                        # doctest: +SKIP
    """
    if method not in ("nmf", "ica"):
        raise ConfigError(f"method must be 'nmf' or 'ica', got {method!r}")
    if negative not in ("clip", "shift", "raise"):
        raise ConfigError(f"negative must be 'clip', 'shift' or 'raise', got {negative!r}")
    if not (isinstance(members, str) and members == "otsu") and not isinstance(members, (int, float)):
        raise ConfigError(f"members must be 'otsu' or a number of standard deviations, got {members!r}")
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, int) or n_permutations < 1:
        raise ConfigError(f"n_permutations must be a positive integer, got {n_permutations!r}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha!r}")
    if isinstance(recording, Activations):
        flat = as_activations(recording)
    elif isinstance(recording, (np.ndarray, torch.Tensor)):
        flat = Activations(as_matrix(recording, dtype=torch.float64), ("sample", "unit"))
    else:
        raise InputTypeError(f"find_assemblies takes an interp.Activations or a (time, unit) array, got {type(recording).__name__}")
    x = flat.data.detach().cpu().double().numpy()
    if not np.isfinite(x).all():
        raise ConfigError("the recording holds NaN/inf; clean it first (e.g. Activations.check_finite(nan_policy='drop'))")
    t, n = x.shape
    if t < 3 or n < 2:
        raise DimensionError(f"need at least 3 time points and 2 units, got {t} x {n}")
    choice = "circular-shift" if n_assemblies is None else n_assemblies
    if isinstance(choice, str):
        if choice not in _N_CHOICES:
            raise ConfigError(f"n_assemblies must be an int, None, or one of {_N_CHOICES}; got {choice!r}")
    elif not (isinstance(choice, (int, np.integer)) and not isinstance(choice, bool) and 0 <= choice <= min(t, n)):
        raise ConfigError(f"n_assemblies must be an int in [0, {min(t, n)}], None, or one of {_N_CHOICES}; got {choice!r}")
    z = _zscore(x)
    eigenvalues = np.clip(np.linalg.svd(z, compute_uv=False) ** 2 / t, 0, None)
    null = _circular_shift_null(z, n_permutations, seed, progress)
    mp = marchenko_pastur_bound(n, t)
    shift_bound = float(np.quantile(null, 1 - alpha))
    if isinstance(choice, str):
        k = int((eigenvalues > (shift_bound if choice == "circular-shift" else mp)).sum())
    else:
        k = int(choice)
    if k == 0:
        loadings, codes = np.zeros((0, n)), np.zeros((t, 0))
    elif method == "nmf":
        from .nmf import NMF

        _nonnegative(x, negative)  # raises for negative="raise"
        data = _excursions(x)
        nmf = NMF(n_components=k, init="nndsvda", max_iter=1000, seed=seed)
        codes = nmf.fit_transform(data)
        codes = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
        H = nmf.components_.detach().cpu().double().numpy()
        norms = np.linalg.norm(H, axis=1)
        norms[norms == 0] = 1.0
        loadings, codes = H / norms[:, None], codes * norms[None, :]
    else:
        W = _ica_patterns(z, k, seed)
        W = W / np.linalg.norm(W, axis=1, keepdims=True)
        W *= np.where(np.abs(W.max(1)) >= np.abs(W.min(1)), 1.0, -1.0)[:, None]
        loadings = W
        projection = z @ W.T
        codes = projection ** 2 - (z ** 2) @ (W ** 2).T
    unit_w = loadings / np.where(np.linalg.norm(loadings, axis=1, keepdims=True) > 0,
                                 np.linalg.norm(loadings, axis=1, keepdims=True), 1.0)
    strength = np.einsum("kt,kt->k", unit_w @ z.T, unit_w @ z.T) / t if k else np.zeros(0)
    p_value = np.atleast_1d(stats_p_value(strength, np.broadcast_to(null[:, None], (len(null), k)))) if k else np.zeros(0)
    q_value = benjamini_hochberg(p_value) if k else np.zeros(0)
    groups = _members(loadings, members)
    unit_frame = flat.coords["unit"]
    position_columns = [c for c in coords if c in unit_frame.columns]
    spatial = None
    if position_columns and k:
        positions = unit_frame[position_columns].to_numpy(dtype=np.float64)
        spatial = _spatial(positions, groups, n_permutations, seed)
    names = [str(v) for v in unit_frame["name"]] if "name" in unit_frame.columns else None
    activations = Activations(torch.from_numpy(np.ascontiguousarray(codes)), ("sample", "unit"),
                              {"sample": flat.coords["sample"],
                               "unit": {"name": [f"assembly{j}" for j in range(k)], "index": list(range(k))}},
                              {**flat.attrs, "decomposition": f"assemblies-{method}"})
    return Assemblies(members=groups, loadings=loadings, activations=activations, strength=strength, p_value=p_value,
                      q_value=q_value, eigenvalues=eigenvalues, null_max=null, bounds={"marchenko-pastur": mp,
                      "circular-shift": shift_bound}, n_method=choice if isinstance(choice, str) else "given",
                      method=method, alpha=alpha, unit_names=names, spatial=spatial,
                      options={"negative": negative, "members": members, "n_permutations": n_permutations, "seed": seed})


class Assemblies(Result):
    """Assemblies found by :func:`find_assemblies`: one row per assembly in :meth:`to_frame`.

    Attributes: ``members`` (lists of 0-based unit indices), ``loadings`` ``(n_assemblies, n_units)``,
    ``activations`` (``(sample, unit=assembly)`` time courses), ``strength`` (``w' C w``), ``p_value``,
    ``q_value``, ``eigenvalues`` (of the correlation matrix), ``null_max`` (the surrogates' largest
    eigenvalues), ``bounds`` (``"marchenko-pastur"`` and ``"circular-shift"`` thresholds), ``spatial``.
    """

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    @property
    def n_assemblies(self) -> int:
        """How many assemblies were extracted."""
        return len(self.members)

    def to_frame(self) -> pd.DataFrame:
        """One row per assembly: size, member indices and names, strength, p/q values and spatial columns."""
        frame = pd.DataFrame({
            "assembly": np.arange(self.n_assemblies),
            "n_members": [len(m) for m in self.members],
            "members": [list(m) for m in self.members],
            "strength": self.strength,
            "p_value": self.p_value,
            "q_value": self.q_value,
            "significant": np.asarray(self.q_value) < self.alpha,
        })
        if self.unit_names is not None:
            frame.insert(3, "member_names", [", ".join(self.unit_names[i] for i in m[:12]) + (" ..." if len(m) > 12 else "")
                                             for m in self.members])
        if self.spatial is not None:
            frame = pd.concat([frame, self.spatial.reset_index(drop=True)], axis=1)
        return frame

    def summary(self) -> str:
        """What was found, how the number was chosen, and how many are significant."""
        bound = self.bounds.get(self.n_method)
        how = f"chosen by {self.n_method} (eigenvalues above {bound:.3g})" if bound is not None else "given"
        lines = [f"Assemblies ({self.method}): {self.n_assemblies} extracted, {how}; "
                 f"{int((np.asarray(self.q_value) < self.alpha).sum())} significant at q < {self.alpha} against "
                 f"{self.options['n_permutations']} circular-shift surrogates"]
        if self.n_assemblies:
            sizes = [len(m) for m in self.members]
            lines.append(f"  sizes {min(sizes)}-{max(sizes)} units; strength {np.min(self.strength):.3g}-"
                         f"{np.max(self.strength):.3g} (null 95%: {np.quantile(self.null_max, 0.95):.3g})")
        if self.spatial is not None and self.n_assemblies:
            compact = int((self.spatial["spatial_p"] < self.alpha).sum())
            lines.append(f"  {compact} spatially compact at p < {self.alpha} (median extent ratio "
                         f"{np.nanmedian(self.spatial['spatial_ratio']):.2f})")
        return "\n".join(lines)

    def plot(self, **kwargs: Any) -> Any:
        """Eigenvalue spectrum with both noise bounds, and the loadings (units ordered by assembly)."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=2, column_widths=[0.35, 0.65],
                            subplot_titles=("correlation eigenvalues", "loadings"))
        top = self.eigenvalues[: max(20, self.n_assemblies + 5)]
        fig.add_trace(go.Scatter(x=np.arange(1, len(top) + 1), y=top, mode="markers+lines", name="eigenvalue"), 1, 1)
        for name, value in self.bounds.items():
            fig.add_hline(y=value, line_dash="dash", annotation_text=name, row=1, col=1)
        order = [u for m in self.members for u in m]
        order += [u for u in range(self.loadings.shape[1]) if u not in set(order)]
        if self.n_assemblies:
            labels = [self.unit_names[u] if self.unit_names is not None else str(u) for u in order]
            fig.add_trace(go.Heatmap(z=self.loadings[:, order], x=labels,
                                     y=[f"assembly{j}" for j in range(self.n_assemblies)],
                                     colorscale="RdBu_r", zmid=0, showscale=False), 1, 2)
        fig.update_xaxes(showticklabels=False, row=1, col=2)
        return themed(fig, title=kwargs.get("title", f"Assemblies ({self.method})"))


# ----------------------------------------------------------------------------------- matching
def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the boolean labels ``positive`` (Mann-Whitney U, ties halved)."""
    from scipy.stats import rankdata

    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _as_sets(groups: Any, what: str) -> tuple[list[set[int]], np.ndarray | None]:
    if isinstance(groups, Assemblies):
        return [set(m) for m in groups.members], groups.loadings
    if isinstance(groups, np.ndarray) and groups.dtype == bool and groups.ndim == 2:
        return [set(np.flatnonzero(row).tolist()) for row in groups], None
    try:
        sets = [{int(i) for i in group} for group in groups]
    except TypeError as exc:
        raise InputTypeError(f"{what} must be an Assemblies, a list of lists of unit indices or a boolean "
                             f"(n_assemblies, n_units) matrix") from exc
    return sets, None


def match_assemblies(found: Any, reference: Any, *, by: str = "auc", n_units: int | None = None) -> AssemblyMatch:
    """Match found assemblies one-to-one to reference ones (Hungarian algorithm) and score every pair.

    ``found``: an :class:`Assemblies` (its loadings give the AUC) or lists of unit indices;
    ``reference``: lists of 0-based unit indices (e.g. published assemblies), a boolean matrix, or an
    :class:`Assemblies`. Pairs are chosen by :func:`scipy.optimize.linear_sum_assignment` maximising the
    summed ``by`` score: ``"auc"`` (how well a found assembly's loadings separate the reference's members
    from the other units; needs loadings) or ``"jaccard"`` (overlap of member sets). Each reference is
    matched at most once, so two references never share a component.

    Parameters
    ----------
    found : Assemblies or sequence of sequence of int
        The found assemblies; an :class:`Assemblies` also gives the loadings that ``by="auc"`` needs.
    reference : Assemblies, sequence of sequence of int or array-like of bool
        The reference assemblies: lists of 0-based unit indices, or a boolean matrix (assemblies x units).
    by : str, optional
        Score that the matching maximises: ``"auc"`` (default) or ``"jaccard"``.
    n_units : int, optional
        Number of units when neither side carries loadings; None: one more than the largest index.

    >>> match_assemblies(found, [[0, 4, 9], [12, 13, 20]]).to_frame()   # doctest: +SKIP
    """
    if by not in ("auc", "jaccard"):
        raise ConfigError(f"by must be 'auc' or 'jaccard', got {by!r}")
    from scipy.optimize import linear_sum_assignment

    found_sets, loadings = _as_sets(found, "found")
    ref_sets, _ = _as_sets(reference, "reference")
    if loadings is not None:
        size = loadings.shape[1]
    else:
        size = n_units if n_units is not None else max([max(s) for s in found_sets + ref_sets if s] + [-1]) + 1
    if by == "auc" and loadings is None:
        raise ConfigError("by='auc' needs the found assemblies' loadings: pass an Assemblies, or use by='jaccard'")
    biggest = max([max(s) for s in found_sets + ref_sets if s] + [-1])
    if biggest >= size:
        raise MismatchError(f"unit index {biggest} is out of range for {size} units")
    jaccard = np.array([[len(r & f) / len(r | f) if r | f else np.nan for f in found_sets] for r in ref_sets]).reshape(
        len(ref_sets), len(found_sets))
    auc = np.full_like(jaccard, np.nan)
    if loadings is not None:
        for i, r in enumerate(ref_sets):
            label = np.zeros(size, dtype=bool)
            label[list(r)] = True
            for j in range(len(found_sets)):
                auc[i, j] = _auc(loadings[j], label)
    score = np.nan_to_num(auc if by == "auc" else jaccard, nan=-1.0)
    pairs: list[tuple[int, int]] = []
    if score.size:
        rows, cols = linear_sum_assignment(score, maximize=True)
        pairs = [(int(i), int(j)) for i, j in zip(rows, cols)]
    return AssemblyMatch(pairs=pairs, jaccard=jaccard, auc=auc, by=by, reference_sizes=[len(r) for r in ref_sets],
                         found_sizes=[len(f) for f in found_sets])


class AssemblyMatch(Result):
    """One-to-one matching of found to reference assemblies: one row per reference assembly.

    ``pairs`` lists ``(reference, found)``; ``jaccard`` and ``auc`` hold every (reference, found) score.
    """

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def to_frame(self) -> pd.DataFrame:
        """Reference, matched found assembly (``-1`` if none), Jaccard, AUC and both sizes."""
        matched = dict(self.pairs)
        rows = []
        for i, size in enumerate(self.reference_sizes):
            j = matched.get(i, -1)
            rows.append({"reference": i, "found": j, "jaccard": self.jaccard[i, j] if j >= 0 else np.nan,
                         "auc": self.auc[i, j] if j >= 0 else np.nan, "n_reference": size,
                         "n_found": self.found_sizes[j] if j >= 0 else 0})
        return pd.DataFrame(rows, columns=["reference", "found", "jaccard", "auc", "n_reference", "n_found"])

    def summary(self) -> str:
        """How many references were matched and how well."""
        frame = self.to_frame()
        ok = frame[frame["found"] >= 0]
        line = f"AssemblyMatch (by {self.by}): {len(ok)} of {len(frame)} reference assemblies matched one-to-one"
        if len(ok):
            line += f"; median Jaccard {ok['jaccard'].median():.3f}"
            if ok["auc"].notna().any():
                line += f", median AUC {ok['auc'].median():.3f} (min {ok['auc'].min():.3f})"
        extra = len(self.found_sizes) - len(ok)
        return line + (f"; {extra} found assemblies unmatched" if extra > 0 else "")

    def plot(self, **kwargs: Any) -> Any:
        """Heatmap of the pair scores with the chosen pairs marked."""
        import plotly.graph_objects as go

        values = self.auc if self.by == "auc" else self.jaccard
        fig = go.Figure(go.Heatmap(z=values, colorscale="Viridis", colorbar=dict(title=self.by),
                                   x=[f"found {j}" for j in range(values.shape[1])],
                                   y=[f"reference {i}" for i in range(values.shape[0])]))
        fig.add_trace(go.Scatter(x=[f"found {j}" for _, j in self.pairs], y=[f"reference {i}" for i, _ in self.pairs],
                                 mode="markers", marker=dict(symbol="x", color="white", size=10), name="matched"))
        return themed(fig, title=kwargs.get("title", "Assembly matching"))
