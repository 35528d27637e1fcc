"""Time-resolved model-brain similarity for recordings shaped ``(sample, time, channel)`` (EEG, MEG, or any
time series of response patterns): sliding-window RSA, cross-temporal (time-generalisation) RSA, and the
result types that time-resolved encoding (:mod:`probes.temporal`) returns too.

* :func:`sliding_rsa`: in every time window, the RDM of the recording's patterns (trials averaged per
  condition when ``conditions`` is given; mean over the window's time points, or their concatenation) is
  compared with each model RDM (Cichy, Pantazis & Oliva 2014, Nat Neurosci 17:455, "Resolving human object
  recognition in space and time"). Statistics: stimulus-label permutations of the model RDMs (the same
  permutation at every time, so the temporal autocorrelation of the recording is kept) and a cluster test over
  time; or, with ``groups`` (subjects, sessions), one time course per group and a sign-flip cluster test over
  groups (Maris & Oostenveld 2007).
* :func:`cross_temporal_rsa`: the RDM at time t of one recording against the RDM at time t' of another (or of
  itself, e.g. two halves of the trials): a time x time matrix (King & Dehaene 2014, TICS 18:203), with a 2-D
  cluster test under stimulus-label permutations.

Windows hold ``window`` time points and start every ``step`` points; a window's time is the mean of its
time coordinates (the ``time`` coordinate of the ``time`` dim, else the index).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> layer = rng.normal(size=(20, 30))                          # a model layer: 20 stimuli x 30 units
>>> eeg = rng.normal(size=(20, 40, 16))                         # 20 stimuli x 40 times x 16 channels
>>> eeg[:, 20:25] += (layer @ rng.normal(size=(30, 16)))[:, None] * 0.5   # the layer's geometry at 20-24
>>> tc = sliding_rsa({"layer": layer}, eeg, window=5, step=5)
>>> float(tc.peaks().loc[0, "peak_time"])
22.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp._progress import tqdm

from ..errors import ConfigError, DimensionError, InputTypeError, MismatchError
from ..results import Result, themed
from ..stats.clusters import ClusterResult, cluster_permutation_test, cluster_test
from ..tensor import Activations
from .rdm import RDMs, as_rdm_vectors, rdm, upper_tri
from .rsa import canonical_method, compare_vectors, rankdata

__all__ = ["sliding_rsa", "cross_temporal_rsa", "TimeCourse", "TimeGeneralization", "time_windows",
           "recording_array"]


# ---------------------------------------------------------------------------------------------- results
@dataclass
class TimeCourse(Result):
    """Scores over time, one row of ``scores`` ``(n_names, n_times)`` per model (layer, feature space).

    ``per_group``: ``(n_groups, n_names, n_times)`` when computed per subject/session; ``clusters``: a
    :class:`~interp.stats.clusters.ClusterResult` per name when a test was run; ``measure`` names the score.

    Parameters
    ----------
    scores : numpy.ndarray
        ``(n_names, n_times)`` scores.
    times : numpy.ndarray
        The time of each column.
    names : list
        One name per row (layer, feature space).
    measure : str
        What the score is.
    clusters : dict
        A cluster test per name, when one was run.
    per_group : numpy.ndarray, optional
        ``(n_groups, n_names, n_times)`` per subject/session.
    groups : list
        The groups' names.
    attrs : dict
        Provenance.
    """

    scores: np.ndarray
    times: np.ndarray
    names: list
    measure: str = "similarity"
    clusters: dict = field(default_factory=dict, repr=False)
    per_group: np.ndarray | None = field(default=None, repr=False)
    groups: list = field(default_factory=list, repr=False)
    attrs: dict = field(default_factory=dict, repr=False)

    def to_frame(self) -> pd.DataFrame:
        """One row per (name, time): ``score``, ``sem`` over groups (if any), ``significant`` (in a cluster with
        p < alpha) and that cluster's ``p_value``."""
        rows = []
        for i, name in enumerate(self.names):
            res = self.clusters.get(name)
            pval = np.full(len(self.times), np.nan)
            if res is not None:
                for c in res.clusters:
                    pval[c.mask] = c.p_value
            sig = res.mask if res is not None else np.zeros(len(self.times), dtype=bool)
            for j, t in enumerate(self.times):
                row = {"name": name, "time": t, "score": self.scores[i, j]}
                if self.per_group is not None:
                    g = self.per_group[:, i, j]
                    row["sem"] = float(np.std(g, ddof=1) / np.sqrt(len(g))) if len(g) > 1 else np.nan
                row["significant"], row["p_value"] = bool(sig[j]), pval[j]
                rows.append(row)
        return pd.DataFrame(rows)

    def peaks(self) -> pd.DataFrame:
        """Peak time and score of each name."""
        idx = np.argmax(self.scores, axis=1)
        return pd.DataFrame({"name": self.names, "peak_index": idx, "peak_time": np.asarray(self.times)[idx],
                             "peak_score": self.scores[np.arange(len(self.names)), idx]})

    def best(self) -> pd.Series:
        """The best-scoring name at each time (indexed by time)."""
        return pd.Series(np.asarray(self.names, dtype=object)[np.argmax(self.scores, axis=0)], index=self.times,
                         name="best")

    def summary(self) -> str:
        lines = [f"TimeCourse: {self.measure} of {len(self.names)} model(s) over {len(self.times)} time points"
                 + (f", {len(self.groups)} groups" if self.groups else "")]
        for row in self.peaks().itertuples():
            res = self.clusters.get(row.name)
            extra = ""
            if res is not None:
                sig = res.significant
                extra = f"; {len(sig)} significant cluster(s)" + (
                    f", first {res.to_frame().query('significant').iloc[0]['time_start']:.4g}.."
                    f"{res.to_frame().query('significant').iloc[0]['time_stop']:.4g}" if sig else "")
            lines.append(f"  {row.name}: peak {row.peak_score:.3f} at {row.peak_time:.4g}{extra}")
        return "\n".join(lines[:12])

    def plot(self, **kwargs: Any) -> Any:
        """One line per name (shaded SEM over groups when present); significant clusters as bars below."""
        import plotly.graph_objects as go

        fig = go.Figure()
        t = np.asarray(self.times, dtype=float)
        colors = ["#2f6fdf", "#e4572e", "#17a398", "#f3a712", "#6c4bb4", "#7a7a7a", "#c03f87", "#4caf50"]
        low = float(np.nanmin(self.scores)) if self.scores.size else 0.0
        span = float(np.nanmax(self.scores) - low) if self.scores.size else 1.0
        for i, name in enumerate(self.names):
            color = colors[i % len(colors)]
            if self.per_group is not None and self.per_group.shape[0] > 1:
                g = self.per_group[:, i]
                sem = g.std(0, ddof=1) / np.sqrt(g.shape[0])
                fig.add_trace(go.Scatter(x=np.r_[t, t[::-1]], y=np.r_[self.scores[i] + sem, (self.scores[i] - sem)[::-1]],
                                         fill="toself", fillcolor=color, opacity=0.2, line=dict(width=0),
                                         showlegend=False, hoverinfo="skip"))
            fig.add_trace(go.Scatter(x=t, y=self.scores[i], mode="lines", name=str(name), line=dict(color=color)))
            res = self.clusters.get(name)
            if res is not None and res.significant:
                y = low - (0.04 + 0.03 * i) * (span or 1.0)
                fig.add_trace(go.Scatter(x=t, y=np.where(res.mask, y, np.nan), mode="lines", showlegend=False,
                                         line=dict(color=color, width=5), hoverinfo="skip"))
        fig.add_hline(y=0, line_color="lightgray")
        fig.update_layout(xaxis_title=self.attrs.get("time_label", "time"), yaxis_title=self.measure)
        return themed(fig, title=kwargs.get("title", f"{self.measure} over time (bars: clusters with p < "
                                                     f"{self.attrs.get('alpha', 0.05)})"))


@dataclass
class TimeGeneralization(Result):
    """A time x time matrix of scores (rows: ``dims[0]``, e.g. the time of recording x or the training time;
    columns: ``dims[1]``) with an optional 2-D cluster test.

    Parameters
    ----------
    scores : numpy.ndarray
        The time x time matrix.
    times_x, times_y : numpy.ndarray
        Times of the rows and of the columns.
    measure : str
        What the score is.
    dims : tuple
        Names of the two time axes.
    cluster : ClusterResult, optional
        A 2-D cluster test, when one was run.
    attrs : dict
        Provenance.
    """

    scores: np.ndarray
    times_x: np.ndarray
    times_y: np.ndarray
    measure: str = "similarity"
    dims: tuple = ("time_x", "time_y")
    cluster: ClusterResult | None = field(default=None, repr=False)
    attrs: dict = field(default_factory=dict, repr=False)

    def to_frame(self) -> pd.DataFrame:
        """One row per cell: the two times, ``score`` and ``significant``."""
        tx, ty = np.meshgrid(self.times_x, self.times_y, indexing="ij")
        sig = self.cluster.mask if self.cluster is not None else np.zeros(self.scores.shape, dtype=bool)
        return pd.DataFrame({self.dims[0]: tx.ravel(), self.dims[1]: ty.ravel(), "score": self.scores.ravel(),
                             "significant": sig.ravel()})

    def diagonal(self) -> np.ndarray:
        """The scores at equal times (the matrix must be square)."""
        if self.scores.shape[0] != self.scores.shape[1]:
            raise DimensionError(f"the matrix is {self.scores.shape}, not square: there is no diagonal")
        return np.diagonal(self.scores).copy()

    def summary(self) -> str:
        i, j = np.unravel_index(np.argmax(self.scores), self.scores.shape)
        lines = [f"TimeGeneralization: {self.measure}, {self.scores.shape[0]} x {self.scores.shape[1]} times; peak "
                 f"{self.scores[i, j]:.3f} at {self.dims[0]} {self.times_x[i]:.4g}, {self.dims[1]} {self.times_y[j]:.4g}"]
        if self.scores.shape[0] == self.scores.shape[1]:
            off = self.scores[~np.eye(len(self.scores), dtype=bool)]
            lines.append(f"  diagonal mean {self.diagonal().mean():.3f}, off-diagonal mean {off.mean():.3f}")
        if self.cluster is not None:
            lines.append(f"  {len(self.cluster.significant)} significant cluster(s) (p < {self.cluster.alpha})")
        return "\n".join(lines)

    def plot(self, **kwargs: Any) -> Any:
        """Heatmap (rows ``dims[0]``, columns ``dims[1]``) with significant clusters outlined."""
        import plotly.graph_objects as go

        fig = go.Figure(go.Heatmap(z=self.scores, x=self.times_y, y=self.times_x, colorscale="RdBu_r", zmid=0,
                                   colorbar=dict(title=self.measure)))
        if self.cluster is not None and self.cluster.significant:
            fig.add_trace(go.Contour(z=self.cluster.mask.astype(float), x=self.times_y, y=self.times_x,
                                     showscale=False, contours=dict(start=0.5, end=0.5, coloring="lines"),
                                     line=dict(color="black"), hoverinfo="skip"))
        fig.update_layout(xaxis_title=self.dims[1], yaxis_title=self.dims[0])
        return themed(fig, title=kwargs.get("title", f"time generalisation: {self.measure}"))


# ---------------------------------------------------------------------------------------------- inputs
def _coord(acts: Activations, value: Any, dim: str, what: str) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, str):
        if acts is None or value not in acts.coords.get(dim, pd.DataFrame()).columns:
            have = list(acts.coords.get(dim, pd.DataFrame()).columns) if acts is not None else []
            raise DimensionError(f"{what}={value!r} names no {dim} coordinate of the recording; coordinates: {have}")
        return acts.coords[dim][value].to_numpy()
    return np.asarray(value)


def recording_array(recording: Any, *, conditions: Any = None, groups: Any = None, folds: Any = None
                    ) -> tuple[torch.Tensor, np.ndarray, dict[str, np.ndarray | None]]:
    """A ``(sample, time, feature)`` float64 tensor, the time coordinate, and the per-sample labels
    (``conditions``, ``groups``, ``folds``: coordinate names or arrays).

    Parameters
    ----------
    recording : Activations or array-like
        ``(sample, time, feature)`` data.
    conditions, groups, folds : optional
        Coordinate names or arrays of per-sample labels.
    """
    acts = recording if isinstance(recording, Activations) else None
    if acts is not None:
        if "time" not in acts.dims:
            raise DimensionError(f"the recording needs a 'time' dim, it has {acts.dims}")
        first = "sample" if "sample" in acts.dims else [d for d in acts.dims if d != "time"][0]
        rest = [d for d in acts.dims if d not in (first, "time")]
        data = acts.transpose(first, "time", *rest).data
        frame = acts.coords["time"]
        times = frame["time"].to_numpy() if "time" in frame.columns else np.arange(acts.sizes["time"])
    else:
        if isinstance(recording, torch.Tensor):
            data = recording.detach()
        elif isinstance(recording, np.ndarray):
            data = torch.from_numpy(np.ascontiguousarray(recording))
        else:
            raise InputTypeError(f"the recording must be Activations or a (sample, time, channel) array, got "
                                 f"{type(recording).__name__}")
        times = np.arange(data.shape[1]) if data.ndim >= 2 else None
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim < 3:
        raise DimensionError(f"the recording must be (sample, time, channel), got shape {tuple(data.shape)}")
    data = data.reshape(data.shape[0], data.shape[1], -1).to(torch.float64)
    if not torch.isfinite(data).all():
        from ..errors import NaNError

        raise NaNError("the recording holds NaN/inf values; drop those channels first")
    labels = {}
    for what, value in (("conditions", conditions), ("groups", groups), ("folds", folds)):
        arr = _coord(acts, value, "sample", what)
        if arr is not None and len(arr) != data.shape[0]:
            raise DimensionError(f"{what} has {len(arr)} entries for {data.shape[0]} samples")
        labels[what] = arr
    return data, np.asarray(times), labels


def time_windows(n_times: int, window: int = 1, step: int = 1) -> list[tuple[int, int]]:
    """``(start, stop)`` index pairs of windows of ``window`` points every ``step`` points.

    Parameters
    ----------
    n_times : int
        Number of time points.
    window : int
        Points per window.
    step : int
        Points between window starts.
    """
    if window < 1 or step < 1:
        raise ConfigError(f"window and step must be >= 1, got {window} and {step}")
    if window > n_times:
        raise ConfigError(f"window ({window}) is longer than the recording ({n_times} time points)")
    return [(s, s + window) for s in range(0, n_times - window + 1, step)]


def _window_patterns(data: torch.Tensor, win: tuple[int, int], pool: str) -> torch.Tensor:
    chunk = data[:, win[0]:win[1]]
    if pool == "mean":
        return chunk.mean(1)
    if pool == "concat":
        return chunk.reshape(chunk.shape[0], -1)
    raise ConfigError(f"pool must be 'mean' or 'concat', got {pool!r}")


def _time_rdm_vectors(data: torch.Tensor, wins: list, *, rdm_method: str, pool: str, conditions: np.ndarray | None,
                      folds: np.ndarray | None) -> tuple[torch.Tensor, list | None]:
    """``(n_windows, m)`` RDM vectors of the recording, and the condition order of their rows."""
    if rdm_method == "crossnobis" and (conditions is None or folds is None):
        raise ConfigError("rdm_method='crossnobis' needs conditions=... and folds=... (e.g. runs)")
    vecs = []
    for w in wins:
        P = _window_patterns(data, w, pool)
        kwargs = {"conditions": conditions} if conditions is not None else {}
        if rdm_method == "crossnobis":
            kwargs["folds"] = folds
        vecs.append(upper_tri(rdm(P, rdm_method, **kwargs)))
    order = sorted(np.unique(conditions).tolist()) if conditions is not None else None
    return torch.stack(vecs), order


def _model_vectors(model: Any, n: int, labels: list | None, rdm_method: str) -> tuple[list, torch.Tensor]:
    """Names and ``(k, m)`` RDM vectors of the model(s): RDMs, patterns, or a mapping of either."""
    from .compare import rdms_from_recording

    if isinstance(model, RDMs) or (isinstance(model, Activations) and "rdm" in model.dims):
        stack = rdms_from_recording(model)
        names = stack.descriptors["name"].tolist() if "name" in stack.descriptors.columns else \
            [f"rdm {i}" for i in range(len(stack))]
        if labels is not None and stack.stimuli != list(range(stack.n_stimuli)):
            stack = stack.subset_stimuli(labels)
        return names, stack.vectors().to(torch.float64)
    items = model.items() if isinstance(model, Mapping) else [("model", model)]
    names, vecs = [], []
    for name, value in items:
        if isinstance(value, Activations):
            value = _aligned_rows(value, labels, name)
        t = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value, dtype=float))
        t = t.detach().to(torch.float64)
        if t.ndim == 2 and t.shape[0] == t.shape[1] == n and torch.allclose(t, t.T) and bool((t.diagonal() == 0).all()):
            v = as_rdm_vectors(t)[0]
        else:
            t = t.reshape(t.shape[0], -1)
            if t.shape[0] != n:
                raise MismatchError(f"model {name!r} has {t.shape[0]} stimuli but the recording has {n} "
                                    f"{'conditions' if labels is not None else 'samples'}")
            v = upper_tri(rdm(t, rdm_method))
        names.append(name)
        vecs.append(v)
    return names, torch.stack(vecs)


def _aligned_rows(acts: Activations, labels: list | None, name: str) -> torch.Tensor:
    X = acts.matrix("sample") if "sample" in acts.dims else acts.data.reshape(acts.shape[0], -1)
    frame = acts.coords.get("sample", pd.DataFrame())
    key = next((k for k in ("stimulus", "condition", "id") if k in frame.columns), None)
    if labels is None or key is None:
        return X
    ids = frame[key].tolist()
    pos = {v: i for i, v in enumerate(ids)}
    missing = [c for c in labels if c not in pos]
    if missing:
        raise MismatchError(f"model {name!r} has no rows for conditions {missing[:10]} (matched on its {key!r} coord)")
    return X[torch.as_tensor([pos[c] for c in labels])]


def _prepare(v: torch.Tensor, method: str) -> torch.Tensor | None:
    """Vectors whose dot products are the comparator (pearson, spearman, cosine); None for the others.
    Permuting stimuli permutes entries, which commutes with ranking, centring and normalising."""
    if method == "spearman":
        v = rankdata(v).to(torch.float64)
    if method in ("pearson", "spearman"):
        v = v - v.mean(-1, keepdim=True)
    if method in ("pearson", "spearman", "cosine"):
        return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(1e-300)
    return None


def _pair_index(n: int) -> torch.Tensor:
    iu, ju = torch.triu_indices(n, n, offset=1)
    idx = torch.zeros(n, n, dtype=torch.long)
    idx[iu, ju] = torch.arange(len(iu))
    idx[ju, iu] = torch.arange(len(iu))
    return idx


def _permuted_scores(a: torch.Tensor, b: torch.Tensor, n: int, method: str, n_permutations: int, seed: int,
                     progress: bool) -> np.ndarray:
    """Null scores ``(n_permutations, k, W)``: stimulus labels of ``a`` (k, m) permuted, ``b`` (W, m) fixed."""
    rng = np.random.default_rng(seed)
    idx = _pair_index(n)
    iu, ju = torch.triu_indices(n, n, offset=1)
    pa, pb = _prepare(a, method), _prepare(b, method)
    out = np.empty((n_permutations, a.shape[0], b.shape[0]))
    batch = 64
    for start in tqdm(range(0, n_permutations, batch), disable=not progress, desc="permutations"):
        stop = min(start + batch, n_permutations)
        perms = torch.as_tensor(np.stack([rng.permutation(n) for _ in range(stop - start)]))
        sel = idx[perms[:, iu], perms[:, ju]]  # (B, m): where each entry of a permuted RDM comes from
        if pa is not None:
            out[start:stop] = (pa[:, sel] @ pb.T).permute(1, 0, 2).numpy()
        else:
            for r in range(stop - start):
                out[start + r] = compare_vectors(a[:, sel[r]], b, method).numpy()
    return out


def _null_threshold(null: np.ndarray, threshold: Any, alpha: float) -> Any:
    return np.quantile(null, 1 - alpha, axis=0) if threshold is None else threshold


# --------------------------------------------------------------------------------------------- analyses
def sliding_rsa(model: Any, recording: Any, *, window: int = 1, step: int = 1, pool: str = "mean",
                conditions: Any = None, groups: Any = None, folds: Any = None, rdm_method: str = "correlation",
                method: str = "spearman", n_permutations: int = 0, threshold: Any = None, alpha: float = 0.05,
                seed: int = 0, progress: bool = False) -> TimeCourse:
    """RSA between model RDM(s) and the recording's RDM in every time window.

    Parameters
    ----------
    model: model patterns ``(n, features)``, an RDM, ``RDMs`` / an RDM stack ``Activations``, or a mapping
        ``{name: patterns or RDM}`` (e.g. one entry per layer). Rows follow the recording's samples, or the
        sorted unique ``conditions`` (``Activations`` with a ``stimulus``/``condition`` coord are matched by it).
    recording: ``Activations`` with ``sample`` and ``time`` dims (others are features) or an array
        ``(sample, time, channel)``.
    window, step: window length and hop, in time points. pool: ``"mean"`` over the window or ``"concat"``
        (spatio-temporal patterns).
    conditions: per-sample condition (coordinate name or array): trials are averaged per condition first.
    groups: per-sample subject/session (name or array): one time course per group, each from its own trials;
        the reported score is their mean and the test is a sign-flip cluster test over groups.
    folds: per-sample fold (e.g. run) for ``rdm_method="crossnobis"``.
    method: RDM comparator (:data:`interp.similarity.COMPARATORS`).
    n_permutations: 0 (no test) or the number of permutations; without groups, stimulus-label permutations of
        the model RDMs with clusters formed at the pointwise ``1 - alpha`` quantile of the null (or
        ``threshold``); with groups, sign flips of the per-group time courses (t threshold as MNE's).
    """
    method = canonical_method(method)
    data, times, labels = recording_array(recording, conditions=conditions, groups=groups, folds=folds)
    wins = time_windows(data.shape[1], window, step)
    wtimes = np.array([np.mean(times[a:b]) for a, b in wins])
    group_ids = [None] if labels["groups"] is None else sorted(np.unique(labels["groups"]).tolist())
    per_group, names = [], None
    for g in group_ids:
        keep = np.ones(data.shape[0], dtype=bool) if g is None else labels["groups"] == g
        cond = None if labels["conditions"] is None else labels["conditions"][keep]
        fold = None if labels["folds"] is None else labels["folds"][keep]
        tv, order = _time_rdm_vectors(data[torch.as_tensor(keep)], wins, rdm_method=rdm_method, pool=pool,
                                      conditions=cond, folds=fold)
        n = len(order) if order is not None else int(keep.sum())
        if g is not None and labels["conditions"] is not None and \
                order != sorted(np.unique(labels["conditions"]).tolist()):
            raise MismatchError(f"group {g!r} lacks some conditions; every group must have trials of every condition")
        names, mv = _model_vectors(model, n, order, rdm_method)
        per_group.append(compare_vectors(mv, tv, method).numpy())
    scores = np.mean(per_group, axis=0)
    clusters: dict[str, ClusterResult] = {}
    if n_permutations > 0:
        if labels["groups"] is None:
            null = _permuted_scores(mv, tv, n, method, n_permutations, seed, progress)
            for i, name in enumerate(names):
                clusters[name] = cluster_test(scores[i], null[:, i], threshold=_null_threshold(null[:, i], threshold,
                                              alpha), alpha=alpha, coords=[wtimes], name=f"RSA ({method})")
        else:
            if len(group_ids) < 3:
                raise ConfigError(f"a test over groups needs at least 3 groups, got {len(group_ids)}")
            stack = np.stack(per_group)
            for i, name in enumerate(names):
                clusters[name] = cluster_permutation_test(stack[:, i], n_permutations=n_permutations, alpha=alpha,
                                                          threshold=threshold, seed=seed, coords=[wtimes])
    attrs = {"method": method, "rdm_method": rdm_method, "window": window, "step": step, "pool": pool,
             "alpha": alpha, "n_permutations": n_permutations, "seed": seed}
    return TimeCourse(scores, wtimes, list(names), f"RSA ({method})", clusters,
                      np.stack(per_group) if labels["groups"] is not None else None,
                      group_ids if labels["groups"] is not None else [], attrs)


def cross_temporal_rsa(x: Any, y: Any = None, *, window: int = 1, step: int = 1, pool: str = "mean",
                       conditions: Any = None, y_conditions: Any = None, rdm_method: str = "correlation",
                       method: str = "spearman", n_permutations: int = 0, threshold: Any = None,
                       alpha: float = 0.05, seed: int = 0, progress: bool = False) -> TimeGeneralization:
    """Time-generalisation RSA: the RDM of ``x`` at each time against the RDM of ``y`` at each time.

    ``y`` defaults to ``x`` (then the diagonal is 1 by construction: pass two independent halves of the trials,
    e.g. odd and even repetitions, to read it). Both must cover the same stimuli (or the same sorted
    ``conditions`` / ``y_conditions``). With ``n_permutations``, the stimulus labels of ``y`` are permuted (the
    same permutation at every time) and clusters are formed at the pointwise ``1 - alpha`` quantile of the null.

    Parameters
    ----------
    x : array-like
        ``(stimulus, time, feature)`` patterns or a recording.
    y : array-like, optional
        The same for the other side (default: ``x``).
    window, step : int
        Time points per window and between windows.
    pool : str
        How a window's points are pooled (``"mean"`` or ``"concat"``).
    conditions, y_conditions : optional
        Condition labels (or coordinate names) to average stimuli over.
    rdm_method, method : str
        The RDM dissimilarity and comparator.
    n_permutations : int
        Size of the stimulus-permutation null (0: no test).
    threshold : optional
        Cluster-forming threshold (default: the pointwise ``1 - alpha`` quantile of the null).
    alpha : float
        Significance level.
    seed : int
        Random seed.
    progress : bool
        Show a progress bar.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=(15, 10, 40)); b = a + rng.normal(size=a.shape)   # y: x plus as much noise
    >>> tg = cross_temporal_rsa(a, b)
    >>> tg.scores.shape, bool(tg.diagonal().mean() > 0.4 > tg.scores[0, 1:].mean())
    ((10, 10), True)
    """
    method = canonical_method(method)
    dx, tx, lx = recording_array(x, conditions=conditions)
    if y is None:
        dy, ty, ly = dx, tx, lx
    else:
        dy, ty, ly = recording_array(y, conditions=y_conditions if y_conditions is not None else
                                     (conditions if isinstance(conditions, str) else None))
    wx, wy = time_windows(dx.shape[1], window, step), time_windows(dy.shape[1], window, step)
    vx, ox = _time_rdm_vectors(dx, wx, rdm_method=rdm_method, pool=pool, conditions=lx["conditions"], folds=None)
    vy, oy = _time_rdm_vectors(dy, wy, rdm_method=rdm_method, pool=pool, conditions=ly["conditions"], folds=None)
    if ox != oy or vx.shape[1] != vy.shape[1]:
        raise MismatchError("x and y must cover the same stimuli/conditions in the same order "
                            f"({vx.shape[1]} vs {vy.shape[1]} RDM entries)")
    scores = compare_vectors(vx, vy, method).numpy()
    times_x = np.array([np.mean(tx[a:b]) for a, b in wx])
    times_y = np.array([np.mean(ty[a:b]) for a, b in wy])
    cluster = None
    if n_permutations > 0:
        n = len(ox) if ox is not None else dx.shape[0]
        null = _permuted_scores(vy, vx, n, method, n_permutations, seed, progress).transpose(0, 2, 1)
        cluster = cluster_test(scores, null, threshold=_null_threshold(null, threshold, alpha), alpha=alpha,
                               coords=[times_x, times_y], dims=("time_x", "time_y"), name=f"RSA ({method})")
    attrs = {"method": method, "rdm_method": rdm_method, "window": window, "step": step, "pool": pool,
             "n_permutations": n_permutations, "seed": seed, "same_recording": y is None}
    return TimeGeneralization(scores, times_x, times_y, f"RSA ({method})", ("time_x", "time_y"), cluster, attrs)
