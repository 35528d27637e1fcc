"""Concept labels from sample annotations, with permutation p-values and FDR control.

For each unit and each annotation (a behaviour, a stimulus category, a position...) a statistic says
how strongly the unit tracks the annotation:

* ``"correlation"``: Pearson r with a continuous annotation (two-sided test on |r|);
* ``"auroc"``: how well the unit's activity separates samples where a binary annotation is true
  (Mann-Whitney AUROC; two-sided test on |AUROC - 0.5|);
* ``"mi"``: mutual information (bits) between the unit's activity (quantile bins) and a categorical
  annotation (one-sided).

p-values come from a test chosen for the design (``null=``; :func:`interp.stats.select_null` reads
it from the data and the result names it, per annotation in the ``null`` column): an annotation
constant within trials (``groups=``: a trial coordinate or one label per sample) is tested by
permuting the trials' values (``"group"``; exact, trials of any length); an annotation that varies
within equal trials whose activity restarts every trial by swapping whole trials; single samples
are permuted (``"permutation"``) only when the activity or the annotation is not autocorrelated.
Everywhere else (activity running on across trials, ragged trials, a time series without trials)
no resampling is exact, and circular shifts give p-values that are valid near 0.05 but not at the
0.001 where BH-FDR over many units works (on untuned AR(1) recordings they put a false label on
25-70% of data sets), so the test is the autocorrelation-corrected Wald test ``"effective_n"``
(:mod:`interp.stats.autocorr`: the statistic's exact null variance given the annotation and the
activity's autocovariance; for AUROC and MI on the ranks, MI through the category indicators).
``"circular"`` and ``"block"`` remain available by name; a shift within trials of a trial-constant
annotation is refused. Permutation p-values are ``(1 + #{null >= observed}) / (1 + n_permutations)``;
all are corrected across units (and annotations) with Benjamini-Hochberg FDR
(``benchmarks/results/calibration.md``: false-positive rates on null recordings of every design).

:func:`pooled_concept_test` pools recordings of different individuals by unit name (e.g. NeuroPAL
identities across worms): the statistic is averaged over the recordings where the name occurs and the
null reorders every recording independently (or the corrected test sums their statistics and
variances). :func:`enrichment_test` asks whether a labeled set of
names is enriched for a class of neurons (hypergeometric test).

>>> tests = concept_test(worm, {"reversal": worm.coord("reversal")})                      # doctest: +SKIP
>>> tests.significant().head()                                                            # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from .._matrix import as_matrix
from ..errors import ConfigError, DimensionError, InputTypeError, MismatchError
from ..results import Result, themed
from ..stats import (
    EFFECTIVE_N,
    autocorrelated_moments,
    benjamini_hochberg,
    hac_moments,
    null_indices,
    resolve_groups,
    sample_layout,
    select_null,
    wald_p_value,
)
from ..stats.autocorr import HAC_NOTE
from ..stats.design import STATIONARY_NOTE
from ..tensor import Activations
from .enrichment import Enrichment, enrichment_test, neuron_class
from .kinds import MissingAnnotationError, as_binary
from .kinds import missing as _missing

__all__ = ["ConceptTests", "concept_test", "pooled_concept_test", "enrichment_test", "neuron_class", "Enrichment"]

KINDS = ("correlation", "auroc", "mi")


def _matrix(acts: Activations | np.ndarray | Any) -> tuple[np.ndarray, pd.DataFrame]:
    if isinstance(acts, Activations) and acts.data.ndim != 2:
        raise DimensionError(f"concept tests need (sample, unit) activations, got dims {acts.dims}; "
                             "flatten positions or time into samples first")
    # units are the 'unit' dim wherever it stands; a 2-D recording that names no 'unit' dim has its units second
    unit_dim = ("unit" if "unit" in acts.dims else acts.dims[1]) if isinstance(acts, Activations) else None
    X = as_matrix(acts, what="activity", features="unit" if unit_dim == "unit" else "rest",
                  dtype=torch.float64).cpu().numpy()  # 1-D: one unit
    unit_frame = (acts.coords[unit_dim].copy() if unit_dim is not None
                  else pd.DataFrame(index=pd.RangeIndex(X.shape[1])))
    return X, unit_frame.reset_index(drop=True)


def _kind_of(values: np.ndarray, kind: str) -> str:
    if kind != "auto":
        if kind not in KINDS:
            raise ConfigError(f"kind must be 'auto' or one of {KINDS}, got {kind!r}")
        return kind
    if values.dtype == bool or len(pd.unique(values[~pd.isna(values)])) == 2:  # two levels: the larger is true
        return "auroc"
    if values.dtype.kind in "OUS" or (values.dtype.kind in "iu" and len(np.unique(values)) <= 12):
        return "mi"
    return "correlation"


def _rankdata(X: np.ndarray) -> np.ndarray:
    return sps.rankdata(X, axis=0)


def _prepare(kind: str, X: np.ndarray) -> np.ndarray:
    """What the statistic needs of the activity, computed once: z-scores (correlation) or ranks (AUROC)."""
    if kind == "correlation":
        return (X - X.mean(0)) / X.std(0)
    if kind == "auroc":
        return _rankdata(X)
    return X


def _statistic(kind: str, X: np.ndarray, ann: np.ndarray, idx: np.ndarray | None, n_bins: int = 8,
               prepared: np.ndarray | None = None) -> np.ndarray:
    """Statistic per unit for the annotation permuted by each row of ``idx`` (or unpermuted)."""
    A = ann[None, :] if idx is None else ann[idx]  # (P, n)
    if kind == "correlation":
        Z = _prepare(kind, X) if prepared is None else prepared
        a = (A - A.mean(1, keepdims=True)) / A.std(1, keepdims=True)
        return a @ Z / X.shape[0]
    if kind == "auroc":
        R = _prepare(kind, X) if prepared is None else prepared
        pos = A.astype(float)
        n1 = pos.sum(1, keepdims=True)
        n0 = X.shape[0] - n1
        return (pos @ R - n1 * (n1 + 1) / 2) / (n1 * n0)
    # mutual information between quantile-binned activity and categories: joint counts by one bincount
    cats, codes = np.unique(ann, return_inverse=True)
    n, U = X.shape
    K, B = len(cats), n_bins
    q = np.empty_like(X, dtype=np.int64)
    for u in range(U):
        edges = np.unique(np.quantile(X[:, u], np.linspace(0, 1, n_bins + 1)[1:-1]))
        q[:, u] = np.searchsorted(edges, X[:, u], side="right")
    p_act = np.stack([np.bincount(q[:, u], minlength=B) for u in range(U)]) / n  # (U, B)
    p_cat = np.bincount(codes, minlength=K) / n  # a permutation keeps the category frequencies
    expected = p_cat[None, :, None] * p_act[:, None, :]  # (U, K, B)
    onehot_act = np.zeros((n, U * B))
    onehot_act[np.arange(n)[:, None], np.arange(U)[None, :] * B + q] = 1
    perm_codes = codes[None, :] if idx is None else codes[idx]
    rows = []
    for start in range(0, len(perm_codes), 64):  # one large matrix product per 64 permutations
        pc = perm_codes[start:start + 64]
        P = len(pc)
        C = np.zeros((P, K, n))
        C[np.arange(P)[:, None], pc, np.arange(n)[None, :]] = 1
        joint = (C.reshape(P * K, n) @ onehot_act).reshape(P, K, U, B).transpose(0, 2, 1, 3) / n  # (P, U, K, B)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(joint > 0, joint * np.log2(joint / expected[None]), 0.0)
        rows.append(terms.sum((2, 3)))
    return np.concatenate(rows)


@dataclass
class ConceptTests(Result):
    """Per-unit, per-annotation statistics with permutation p-values and FDR q-values.

    ``frame`` has one row per (unit, concept): ``unit``, unit coordinates (e.g. ``name``), ``concept``,
    ``kind``, ``statistic``, ``effect`` (signed r or AUROC-0.5; MI in bits, which has no sign),
    ``p_value``, ``q_value``, ``significant`` (q < alpha) and ``direction`` ("+" / "-"; empty for MI,
    which says that activity depends on the categories, not in which direction). ``null`` names the
    null (``"group"``, ``"circular"``, ``"block"``, ``"permutation"``) and ``reason`` why it was used.

    Parameters
    ----------
    frame : pandas.DataFrame
        The rows described above.
    alpha : float
        The FDR level of ``significant``.
    null : str
        The null (or test) used.
    n_permutations : int
        Null draws per test.
    reason : str
        Why the null was chosen.
    """

    frame: pd.DataFrame
    alpha: float
    null: str
    n_permutations: int
    reason: str = ""

    def to_frame(self) -> pd.DataFrame:
        """The per-(unit, concept) table (a copy)."""
        return self.frame.copy()

    def significant(self, concept: str | None = None, direction: str | None = None) -> pd.DataFrame:
        """Rows with q < alpha (optionally one concept and one direction), strongest first.

        Parameters
        ----------
        concept : str, optional
            Keep one concept's rows.
        direction : {"+", "-"}, optional
            Keep one direction (MI rows have none).
        """
        f = self.frame[self.frame["significant"]]
        if concept is not None:
            f = f[f["concept"] == concept]
        if direction is not None:
            f = f[f["direction"] == direction]
        return f.reindex(f["effect"].abs().sort_values(ascending=False).index)

    def labels(self) -> dict[int, list[str]]:
        """``{unit: ["reversal (+, q=0.001)", "target (q=0.01)", ...]}`` for significant rows."""
        out: dict[int, list[str]] = {}
        for row in self.significant().itertuples():
            sign = f"{row.direction}, " if row.direction else ""
            out.setdefault(int(row.unit), []).append(f"{row.concept} ({sign}q={row.q_value:.2g})")
        return out

    def summary(self) -> str:
        """How many units are significant per concept, and the null used."""
        f = self.frame
        per = f.groupby("concept", sort=False)["significant"].sum()
        lines = [f"concept tests: {f['unit'].nunique()} units x {len(per)} concepts, {int(f['significant'].sum())} "
                 f"significant at q < {self.alpha} ({self.null} null, {self.n_permutations} draws"
                 + (f": {self.reason})" if self.reason else ")")]
        lines += [f"  {c}: {int(k)} units" for c, k in per.items()]
        return "\n".join(lines)

    def plot(self, concept: str | None = None, **kwargs: Any):
        """Effect vs -log10 p per unit (a volcano plot), significant units highlighted.

        Parameters
        ----------
        concept : str, optional
            Plot one concept's rows (default all); ``title=`` in ``kwargs`` sets the title.
        """
        import plotly.express as px

        f = self.frame if concept is None else self.frame[self.frame["concept"] == concept]
        f = f.assign(neg_log10_p=-np.log10(f["p_value"]))
        hover = [c for c in ("name", "unit") if c in f.columns]
        fig = px.scatter(f, x="effect", y="neg_log10_p", color="significant", symbol="concept", hover_data=hover)
        return themed(fig, title=kwargs.get("title", f"concept tests ({self.null} null, n={self.n_permutations})"),
                      height=380)


def _annotations(annotations: Mapping[str, Any] | Sequence[Any] | np.ndarray, n: int, source: Activations | None) -> dict[str, np.ndarray]:
    if isinstance(annotations, str):
        if source is None:
            raise InputTypeError("annotation names need an Activations with those sample coordinates")
        annotations = [annotations]
    if isinstance(annotations, (list, tuple)) and annotations and all(isinstance(a, str) for a in annotations):
        if source is None:
            raise InputTypeError("annotation names need an Activations with those sample coordinates")
        annotations = {a: source.coord(a, source.dims[0]) for a in annotations}
    elif not isinstance(annotations, Mapping):
        annotations = {"annotation": annotations}
    out = {}
    for name, values in annotations.items():
        v = np.asarray(values)
        if v.ndim != 1 or len(v) != n:
            raise MismatchError(f"annotation {name!r} has {len(v) if v.ndim else 0} values but there are {n} samples; "
                                "give one value per sample (time point, stimulus or token)")
        if _missing(v).any():  # NaN or None: never a category of its own
            raise MissingAnnotationError(f"annotation {name!r} is missing (NaN/None) for {int(_missing(v).sum())} of "
                                         f"{len(v)} samples; drop those samples first (label_recordings: nan_policy='drop')")
        out[str(name)] = v
    if not out:
        raise InputTypeError("no annotations given")
    return out


def _checked(kind: str, ann: np.ndarray) -> np.ndarray:
    if kind == "auroc":
        ann = as_binary(ann)
        if ann.all() or not ann.any():
            raise ConfigError("a binary annotation must have both true and false samples")
    if kind == "correlation" and np.std(ann.astype(float)) == 0:
        raise ConfigError("a continuous annotation is constant; nothing to correlate with")
    return ann


def _observed_and_null(X: np.ndarray, ann: np.ndarray, kind: str, idx: np.ndarray | None,
                       n_bins: int) -> tuple[np.ndarray, np.ndarray | None]:
    ann = _checked(kind, ann)
    prepared = _prepare(kind, X)
    obs = _statistic(kind, X, ann, None, n_bins, prepared)[0]
    if idx is None:
        return obs, None
    if kind == "mi":  # one call: the binning is done once and the products are batched inside
        return obs, _statistic(kind, X, ann, idx, n_bins)
    null = np.concatenate([_statistic(kind, X, ann, idx[i:i + 200], n_bins, prepared) for i in range(0, len(idx), 200)])
    return obs, null


def _columns(kind: str, ann: np.ndarray, categories: Any = None) -> np.ndarray:
    """Design columns of the corrected test: the annotation, the binary flag, or indicators of all categories
    but the first (``categories``: the levels, shared by pooled recordings)."""
    if kind == "correlation":
        return ann.astype(float)[:, None]
    if kind == "auroc":
        return as_binary(ann).astype(float)[:, None]
    cats = np.unique(ann) if categories is None else np.asarray(categories)
    return (ann[:, None] == cats[None, 1:]).astype(float)


def _corrected(X: np.ndarray, ann: np.ndarray, kind: str, codes: np.ndarray | None, categories: Any = None,
               layout: tuple = (None, None, "")) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Moments of the autocorrelation-corrected Wald test: the activity (ranks for AUROC and MI, whose
    statistics are rank-based) against the annotation's design columns. ``layout``: the recording's
    own segments and time positions (:func:`interp.stats.sample_layout`); its segments stand in for
    missing ``codes``."""
    act = X if kind == "correlation" else _rankdata(X)
    segments, positions, _ = layout
    cols = _columns(kind, _checked(kind, ann), categories)
    if codes is None and segments is None and positions is None:  # nothing marks restarts: HAC (issue 19)
        return hac_moments(act, cols)
    return autocorrelated_moments(act, cols, codes if codes is not None else segments, positions=positions)


def _layout(source: Any, n: int, codes: np.ndarray | None) -> tuple:
    """The recording's layout (:func:`interp.stats.sample_layout`); where nothing marks its trials or gaps,
    the corrected test uses :func:`interp.stats.hac_moments` and the note says so."""
    layout = sample_layout(source, n, groups=codes)
    return (None, None, HAC_NOTE) if layout[2] == STATIONARY_NOTE else layout


def _with_layout(reason: str, layout: tuple) -> str:
    return f"{reason} ({layout[2]})" if layout[2] else reason


def _pvalues(kind: str, obs: np.ndarray, null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed effect and p-value (two-sided on |r| and |AUROC - 0.5|, one-sided on MI)."""
    from ..stats import p_value

    centre = 0.5 if kind == "auroc" else 0.0
    effect = obs - centre
    if kind == "mi":
        return effect, p_value(obs, null)
    return effect, p_value(np.abs(effect), np.abs(null - centre))


def _constant_within(values: np.ndarray, codes: np.ndarray) -> bool:
    first = pd.Series(values).groupby(codes).transform("first").to_numpy()
    return bool((first == values).all())


class _Nulls:
    """Index arrays of the resampling nulls of one recording, built once per (null, constant within groups)."""

    def __init__(self, n: int, codes: np.ndarray | None, n_permutations: int, seed: Any,
                 min_shift: int | None, block_size: int | None) -> None:
        self.args = dict(groups=codes, n_permutations=n_permutations, min_shift=min_shift, block_size=block_size)
        self.n, self.codes, self.seed = n, codes, seed
        self.cache: dict[tuple[str, bool], np.ndarray] = {}

    def __call__(self, values: np.ndarray, kind: str, constant: bool) -> np.ndarray:
        if kind == "group" and not constant:
            sizes = np.bincount(self.codes)
            if len(set(sizes.tolist())) == 1:
                order = np.argsort(self.codes, kind="stable")
                per_trial = np.asarray(values)[order].reshape(len(sizes), -1)
                if (per_trial == per_trial[:1]).all():
                    raise ConfigError("the annotation is the same in every trial (time-locked), so swapping whole "
                                      "trials cannot test it; use null='circular' (shifts within each trial)")
        key = (kind, constant)
        if key not in self.cache:
            seed = self.seed if isinstance(self.seed, np.random.Generator) else np.random.default_rng(self.seed)
            self.cache[key] = null_indices(self.n, kind, seed=seed, constant=constant, **self.args)
        return self.cache[key]


def concept_test(acts: Activations | np.ndarray, annotations: Mapping[str, Any] | Sequence[Any] | np.ndarray | str,
                 kind: str | Mapping[str, str] = "auto", *, null: str = "auto", groups: Any = None,
                 n_permutations: int = 1000, min_shift: int | None = None, block_size: int | None = None,
                 alpha: float = 0.05, n_bins: int = 8, seed: int = 0) -> ConceptTests:
    """Test every unit against every annotation (see the module docstring).

    Parameters
    ----------
    acts:
        ``(sample, unit)`` activity (an :class:`Activations` or an array).
    annotations:
        ``{name: values}`` with one value per sample, one array, or sample-coordinate names of ``acts``.
    kind:
        ``"auto"`` (binary -> AUROC, few categories/strings -> MI, else correlation), one kind, or one
        per annotation.
    null:
        ``"auto"`` (from the design, see the module docstring), ``"group"``, ``"circular"``, ``"block"``,
        ``"permutation"`` or ``"effective_n"`` (see :mod:`interp.stats`).
    groups:
        Trial (or recording, subject) of each sample: a sample-coordinate name of ``acts`` or one
        label per sample. ``"group"`` swaps whole trials (they must have equal length unless the
        annotation is constant within trials); ``"circular"``/``"block"`` stay within trials.
        Without ``groups``, an autocorrelated recording gets the ``"effective_n"`` test, which reads
        the recording's own ``trial`` and ``time`` coordinates; a bare array carries neither, and its
        samples taken as one stationary series would be liberal if the activity restarts at
        each trial. Such a series gets a HAC variance instead (:func:`interp.stats.hac_moments`:
        valid when trials restart, somewhat less powerful), and the result's ``reason`` says so.
    min_shift:
        Smallest circular shift (default: a tenth of the shortest segment).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> trial = np.repeat(np.arange(20), 10); X = rng.normal(size=(200, 3))
    >>> rewarded = np.repeat(rng.random(20) < 0.5, 10)          # one value per trial
    >>> concept_test(X, {"rewarded": rewarded}, groups=trial, n_permutations=99).null
    'group'
    >>> slow = np.cumsum(rng.normal(size=(200, 3)), 0)          # autocorrelated, no trials given
    >>> res = concept_test(slow, {"speed": np.cumsum(rng.normal(size=200))})
    >>> res.null, "HAC" in res.reason
    ('effective_n', True)
    """
    X, unit_frame = _matrix(acts)
    n, U = X.shape
    source = acts if isinstance(acts, Activations) else None
    anns = _annotations(annotations, n, source)
    constant = X.std(0) == 0
    if constant.all():
        raise ConfigError("every unit is constant over the samples; there is nothing to test")
    codes = resolve_groups(groups, n, source)
    nulls = _Nulls(n, codes, n_permutations, seed, min_shift, block_size)
    layout = _layout(source, n, codes)
    Xv = X[:, ~constant]
    rows, used = [], {}
    for name, values in anns.items():
        k = _kind_of(values, kind.get(name, "auto") if isinstance(kind, Mapping) else kind)
        chosen, const, reason = select_null(null, groups=codes, activity=Xv, values=values)
        if chosen == EFFECTIVE_N:
            reason = _with_layout(reason, layout)
        used.setdefault(chosen, reason)
        if chosen == EFFECTIVE_N:
            obs, _ = _observed_and_null(Xv, values, k, None, n_bins)
            _, p = wald_p_value(*_corrected(Xv, values, k, codes, layout=layout))
            effect = obs - (0.5 if k == "auroc" else 0.0)
        else:
            obs, null_stats = _observed_and_null(Xv, values, k, nulls(values, chosen, const), n_bins)
            effect, p = _pvalues(k, obs, null_stats)
        full_stat, full_eff, full_p = (np.full(U, np.nan) for _ in range(3))
        full_stat[~constant], full_eff[~constant], full_p[~constant] = obs, effect, p
        f = unit_frame.copy()
        f.insert(0, "unit", np.arange(U))
        f["concept"], f["kind"], f["statistic"], f["effect"], f["p_value"] = name, k, full_stat, full_eff, full_p
        f["constant"] = constant
        f["null"] = chosen
        rows.append(f)
    return _finish(pd.concat(rows, ignore_index=True), alpha, "+".join(used), n_permutations,
                   "; ".join(f"{k}: {r}" if len(used) > 1 else r for k, r in used.items()))


def _finish(frame: pd.DataFrame, alpha: float, null: str, n_permutations: int, reason: str = "") -> ConceptTests:
    frame["q_value"] = benjamini_hochberg(frame["p_value"].to_numpy())
    frame["significant"] = frame["q_value"] < alpha
    frame["direction"] = np.where(frame["effect"] >= 0, "+", "-")
    frame.loc[frame["kind"] == "mi", "direction"] = ""
    return ConceptTests(frame, alpha, null, n_permutations, reason)


def pooled_concept_test(recordings: Sequence[Activations], annotation: str | Sequence[np.ndarray],
                        by: str = "name", kind: str = "auto", *, null: str = "auto", groups: Any = None,
                        n_permutations: int = 1000, min_shift: int | None = None, block_size: int | None = None,
                        min_recordings: int = 1, alpha: float = 0.05, seed: int = 0) -> ConceptTests:
    """Pool recordings of different individuals by unit name, with a null drawn per recording.

    The pooled statistic of a name is the mean of its per-recording statistics (over the recordings
    where it was identified); the null reorders each recording's annotation independently (circular
    shifts by default for these time series; whole trials with ``groups``) and averages the same way,
    so a name seen in 5 worms is tested against a 5-worm null; unidentified units are skipped.

    Parameters
    ----------
    recordings : Sequence[Activations]
        The recordings (individuals) pooled.
    annotation : str or Sequence[numpy.ndarray]
        A sample-coordinate name of every recording, or one array per recording.
    by : str
        The unit coordinate that identifies a unit across recordings.
    kind : str
        As for :func:`concept_test` (one kind for the pool).
    null, n_permutations, min_shift, block_size
        As for :func:`concept_test`, applied per recording.
    groups : str or Sequence, optional
        A sample-coordinate name (``"trial"``) or one label array per recording.
    min_recordings : int
        Names seen in fewer recordings are dropped.
    alpha : float
        The FDR level.
    seed : int
        Seed of the null draws.
    """
    if not recordings:
        raise InputTypeError("no recordings to pool")
    if groups is not None and not isinstance(groups, str) and len(groups) != len(recordings):
        raise MismatchError(f"give groups as a coordinate name or one label array per recording ({len(recordings)}), "
                            f"got {len(groups)} arrays")
    rng = np.random.default_rng(seed)
    prepared = []
    chosen_kind = None
    for i, rec in enumerate(recordings):
        X, units = _matrix(rec)
        if by not in units.columns:
            raise DimensionError(f"recording {i} has no unit coordinate {by!r} (has {list(units.columns)})")
        values = np.asarray(rec.coord(annotation, rec.dims[0]) if isinstance(annotation, str) else annotation[i])
        if len(values) != X.shape[0]:
            raise MismatchError(f"recording {i}: the annotation has {len(values)} values but there are {X.shape[0]} samples")
        if _missing(np.asarray(values)).any():
            raise MissingAnnotationError(f"recording {i}: the annotation is missing (NaN/None) for "
                                         f"{int(_missing(np.asarray(values)).sum())} samples; drop them first "
                                         "(label_recordings: nan_policy='drop')")
        k = _kind_of(values, kind)
        chosen_kind = chosen_kind or k
        if k != chosen_kind:
            raise ConfigError(f"the annotation is {chosen_kind} in one recording and {k} in another; pass kind=")
        names = units[by].astype(str).to_numpy()
        keep = (X.std(0) > 0) & np.array([bool(nm) and nm.lower() not in {"nan", "none", ""} for nm in names])
        codes = resolve_groups(groups if groups is None or isinstance(groups, str) else groups[i], X.shape[0], rec)
        choice = select_null(null, groups=codes, activity=X[:, keep], values=values)
        layout = _layout(rec, X.shape[0], codes)
        prepared.append((X[:, keep], names[keep], values, codes, choice, layout))
    # one test for the pool: where any recording needs the corrected test, every recording uses it
    corrected = any(c[0] == EFFECTIVE_N for *_, c, _ in prepared)
    used: dict[str, str] = {}
    per_name_obs: dict[str, list[float]] = {}
    per_name_null: dict[str, list[Any]] = {}
    categories = (np.unique(np.concatenate([p[2] for p in prepared])) if chosen_kind == "mi" else None)
    for X, names, values, codes, (chosen, const, reason), layout in prepared:
        if corrected:
            if chosen != EFFECTIVE_N:
                chosen, reason = EFFECTIVE_N, "another recording of the pool needs it (" + reason + ")"
            reason = _with_layout(reason, layout)
            obs, _ = _observed_and_null(X, values, chosen_kind, None, 8)
            s_, V, n_eff, _ = _corrected(X, values, chosen_kind, codes, categories, layout)
            parts = [(s_[j], V[j], n_eff[j]) for j in range(len(names))]
        else:
            idx = _Nulls(X.shape[0], codes, n_permutations, rng, min_shift, block_size)(values, chosen, const)
            obs, null_stats = _observed_and_null(X, values, chosen_kind, idx, 8)
            parts = [null_stats[:, j] for j in range(len(names))]
        used.setdefault(chosen, reason)
        for j, nm in enumerate(names):
            per_name_obs.setdefault(nm, []).append(obs[j])
            per_name_null.setdefault(nm, []).append(parts[j])
    rows = []
    for nm, obs_list in per_name_obs.items():
        if len(obs_list) < min_recordings:
            continue
        obs = np.array([np.mean(obs_list)])
        if corrected:
            s_sum = np.sum([q[0] for q in per_name_null[nm]], axis=0)[None]
            V_sum = np.sum([q[1] for q in per_name_null[nm]], axis=0)[None]
            n_sum = np.array([np.sum([q[2] for q in per_name_null[nm]])])
            _, p = wald_p_value(s_sum, V_sum, n_sum)
            effect = obs - (0.5 if chosen_kind == "auroc" else 0.0)
        else:
            null_mean = np.mean(per_name_null[nm], axis=0)[:, None]
            effect, p = _pvalues(chosen_kind, obs, null_mean)
        rows.append({"unit": len(rows), by: nm, "n_recordings": len(obs_list), "concept": str(annotation) if
                     isinstance(annotation, str) else "annotation", "kind": chosen_kind, "statistic": obs[0],
                     "effect": effect[0], "p_value": p[0]})
    if not rows:
        raise InputTypeError("no unit names were found in enough recordings to pool")
    return _finish(pd.DataFrame(rows), alpha, "+".join(used), n_permutations, "; ".join(dict.fromkeys(used.values())))
