"""Labels of recorded units: behaviour concept tests scored on held-out data, and place cells.

* :func:`label_recordings`: recorded units (C. elegans neurons, motor cortex units, ...) by concept
  tests against behaviour annotations pooled across individuals by name, labeled on the first part of
  each recording (or of its trials) and scored on the rest;
* :func:`label_place_cells`: hippocampal place cells with their fields;
* :func:`recording_title`: a recording's name from its own attributes (for report cards).

>>> res = label_recordings(rec, ["target", "speed"], groups="trial")        # doctest: +SKIP
>>> res.to_frame()[["name", "label", "score", "score_kind", "chance"]]     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputTypeError
from ..tensor import Activations
from .concepts import pooled_concept_test
from .pipeline import LabelResult
from .scoring import auroc
from .spatial import place_fields

__all__ = ["label_recordings", "label_place_cells", "recording_title"]


def _split(rec: Activations, fit_fraction: float, codes: np.ndarray | None) -> tuple[Activations, Activations, Any, Any]:
    """Fit and held-out parts of a recording: the first ``fit_fraction`` of its time, or of its trials."""
    n = rec.shape[0]
    if codes is None:
        cut = int(n * fit_fraction)
        if cut < 2 or n - cut < 2:
            raise ConfigError(f"fit_fraction={fit_fraction} leaves fewer than 2 samples on one side of {n}")
        mask = np.arange(n) < cut
    else:
        n_groups = int(codes.max()) + 1
        cut = int(round(n_groups * fit_fraction))
        if cut < 2 or n_groups - cut < 1:
            raise ConfigError(f"{n_groups} trials cannot be split {fit_fraction:.0%} / {1 - fit_fraction:.0%} into "
                              "labeling (at least 2 trials) and scoring (at least 1) parts; give more trials")
        mask = codes < cut
    fit, held = rec.isel(**{rec.dims[0]: np.flatnonzero(mask)}), rec.isel(**{rec.dims[0]: np.flatnonzero(~mask)})
    return fit, held, None if codes is None else codes[mask], None if codes is None else codes[~mask]


def _heldout_score(kind: str, direction: str, x_fit: np.ndarray, a_fit: np.ndarray, x: np.ndarray,
                   a: np.ndarray) -> tuple[float, float]:
    """``(score, chance)`` of one unit on held-out samples: AUROC, signed r, or decoding accuracy."""
    if x.std() == 0:
        return float("nan"), float("nan")
    if kind == "auroc":
        v = auroc(x, a.astype(bool))
        return (v if direction == "+" else 1 - v), 0.5
    if kind == "correlation":
        if a.astype(float).std() == 0:
            return float("nan"), float("nan")
        r = float(np.corrcoef(x, a.astype(float))[0, 1])
        return (r if direction == "+" else -r), 0.0
    import warnings

    from sklearn.metrics import balanced_accuracy_score
    from sklearn.naive_bayes import GaussianNB

    classes = np.unique(a_fit)
    if len(classes) < 2:
        return float("nan"), float("nan")
    clf = GaussianNB(priors=np.full(len(classes), 1 / len(classes))).fit(x_fit[:, None], a_fit)
    with warnings.catch_warnings():  # held-out data may lack a category the classifier predicts
        warnings.simplefilter("ignore")
        score = balanced_accuracy_score(a, clf.predict(x[:, None]))
    return float(score), 1 / len(classes)


def label_recordings(recordings: Activations | Sequence[Activations], annotations: Sequence[str],
                     by: str = "name", fit_fraction: float = 0.6, *, groups: Any = None, null: str = "auto",
                     n_permutations: int = 1000, min_recordings: int = 1, alpha: float = 0.05,
                     title: str = "recorded units", seed: int = 0) -> LabelResult:
    """Label recorded units by behaviour: pooled concept tests, scored on held-out data.

    Units are matched across recordings by the unit coordinate ``by`` (a single recording without it
    is labeled by unit position). Each recording is split: the first ``fit_fraction`` of its time (or of its trials, with
    ``groups``) gives the labels (concept tests pooled across recordings by the unit coordinate
    ``by``, BH-FDR across units and annotations), the rest gives the score. The test follows
    :func:`~interp.label.concepts.concept_test` (chosen from the design and named in the notes):
    with ``groups`` (a sample coordinate such as ``"trial"``, or one label array per recording) a
    trial-constant annotation has its trials' values permuted; otherwise, and without groups on an
    autocorrelated time series, the autocorrelation-corrected Wald test keeps the family-wise error
    at alpha (circular shifts put a false label on most untuned recordings). Scores are the mean over recordings of the held-out AUROC (binary annotation),
    the signed correlation matched to the label's direction (continuous), or, for a categorical
    annotation tested by mutual information, the held-out balanced accuracy (mean recall per category)
    of decoding the category from the unit (Gaussian naive Bayes with equal priors, fit on the labeling
    part) next to its ``chance`` level, one over the number of categories. Categorical labels carry no
    direction.
    """
    recs = [recordings] if isinstance(recordings, Activations) else list(recordings)
    if not recs:
        raise InputTypeError("no recordings given")
    if not 0 < fit_fraction < 1:
        raise ConfigError(f"fit_fraction must be between 0 and 1, got {fit_fraction}")
    if len(recs) == 1 and by not in recs[0].coords[recs[0].dims[1]].columns:  # one recording: units by position
        rec = recs[0]
        units = rec.coords[rec.dims[1]].assign(**{by: [str(i) for i in range(rec.shape[1])]})
        recs = [rec.replace(coords={**rec.coords, rec.dims[1]: units})]
    if groups is not None and not isinstance(groups, str) and len(groups) != len(recs):
        raise ConfigError(f"give groups as a sample coordinate name or one label array per recording ({len(recs)})")
    from ..stats import resolve_groups

    codes = [resolve_groups(groups if groups is None or isinstance(groups, str) else groups[i], r.shape[0], r)
             for i, r in enumerate(recs)]
    parts = [_split(r, fit_fraction, c) for r, c in zip(recs, codes)]
    fit, held = [p[0] for p in parts], [p[1] for p in parts]
    fit_groups = None if groups is None else [p[2] for p in parts]
    frames, nulls, reasons = [], [], []
    for a in annotations:
        t = pooled_concept_test(fit, a, by=by, null=null, groups=fit_groups, n_permutations=n_permutations,
                                min_recordings=min_recordings, alpha=alpha, seed=seed)
        frames.append(t.frame.assign(concept=a))
        nulls.append(t.null)
        reasons.append(t.reason)
    from .concepts import _finish

    used = "+".join(dict.fromkeys("+".join(nulls).split("+")))
    tests = _finish(pd.concat(frames, ignore_index=True).drop(columns=["q_value", "significant", "direction"]),
                    alpha, used, n_permutations, "; ".join(dict.fromkeys(reasons)))
    names = sorted(tests.frame[by].unique())
    rows = []
    best_trace: dict[str, Any] = {}
    for i, nm in enumerate(names):
        sub = tests.frame[tests.frame[by] == nm]
        sig = sub[sub["significant"]].sort_values("q_value")
        label = "; ".join(_concept_label(r.concept, r.direction, r.q_value) for r in sig.itertuples())
        top = sig.iloc[0] if len(sig) else sub.sort_values("p_value").iloc[0]
        vals, chances = [], []
        for rf, rh in zip(fit, held):
            col_f = rf.coords[rf.dims[1]][by].astype(str).to_numpy()
            col_h = rh.coords[rh.dims[1]][by].astype(str).to_numpy()
            a_fit = np.asarray(rf.coord(top.concept, rf.dims[0]))
            a_held = np.asarray(rh.coord(top.concept, rh.dims[0]))
            for jf, jh in zip(np.flatnonzero(col_f == nm), np.flatnonzero(col_h == nm)):
                v, c = _heldout_score(top.kind, top.direction, rf.data[:, jf].double().numpy(), a_fit,
                                      rh.data[:, jh].double().numpy(), a_held)
                vals.append(v)
                chances.append(c)
        score = float(np.nanmean(vals)) if vals and not np.isnan(vals).all() else float("nan")
        kind_used = {"auroc": "held-out AUROC", "correlation": "held-out r", "mi": "held-out balanced decoding accuracy"}[top.kind]
        chance = float(np.nanmean(chances)) if chances and not np.isnan(chances).all() else float("nan")
        rows.append({"unit": i, "name": nm, "layer": None, "label": label or "no significant behaviour tuning",
                     "score": score if label else float("nan"), "score_kind": kind_used if label else "",
                     "chance": chance if label else float("nan"), "simulation": float("nan"),
                     "phenomena": ", ".join(sorted(set(sig["concept"]))), "explainer": "concept tests", "error": "",
                     "n_recordings": int(sub["n_recordings"].iloc[0])})
        best_trace[nm] = _trace_for(recs, by, nm, top.concept)
    split = "trials" if groups is not None else "time"
    return LabelResult(title, "recording", by, pd.DataFrame(rows), concepts=tests, traces=best_trace,
                       notes=[f"{len(recs)} recordings; labels from the first {fit_fraction:.0%} of each one's {split} "
                              f"({used} null: {tests.reason}; {n_permutations} draws; BH-FDR over {len(tests.frame)} "
                              "tests), scores on the rest"])


def _concept_label(concept: str, direction: str, q: float) -> str:
    """``"reversal ↑ (q=0.001)"`` for a signed effect; ``"target-selective (q=0.01)"`` for a categorical one."""
    if not direction:
        return f"{concept}-selective (q={q:.2g})"
    return f"{concept} {'↑' if direction == '+' else '↓'} (q={q:.2g})"


def recording_title(rec: Activations, index: int | None = None) -> str:
    """A short name of a recording from its own attributes: ``title``/``name``, else ``source`` with the
    identifiers it has (subject, session, worm, animal, environment...), else ``recording <index>``."""
    attrs = rec.attrs
    for key in ("title", "name"):
        if attrs.get(key):
            return str(attrs[key])
    parts = [str(attrs["source"])] if attrs.get("source") else []
    for key in ("subject", "animal", "worm", "session", "environment", "task", "date"):
        if attrs.get(key) not in (None, ""):
            parts.append(f"{key} {attrs[key]}")
    if parts:
        return ", ".join(parts)
    return f"recording {index + 1}" if index is not None else "recording"


def _trace_for(recs: list[Activations], by: str, name: str, concept: str, n: int = 400) -> dict[str, Any]:
    """The trace of unit ``name`` in the first recording that has it, with the annotation."""
    for i, rec in enumerate(recs):
        col = rec.coords[rec.dims[1]][by].astype(str).to_numpy()
        hits = np.flatnonzero(col == name)
        if len(hits):
            x = rec.data[:n, hits[0]].double().numpy()
            ann = np.asarray(rec.coord(concept, rec.dims[0]))[:n]
            if ann.dtype.kind not in "biuf":
                ann = pd.factorize(ann)[0]
            dt = rec.attrs.get("dt")
            span = f"first {len(x)} samples" + (f" ({len(x) * float(dt):.4g} s)" if dt else "")
            return {"trace": x, "annotation": ann.astype(float), "concept": concept,
                    "recording": recording_title(rec, i), "span": span}
    return {}


def label_place_cells(recording: Activations, position: str = "linear_position", title: str = "place cells",
                      **kwargs: Any) -> LabelResult:
    """Label hippocampal units as place cells (see :func:`interp.label.spatial.place_fields`).

    The score is the split-half stability of the rate map (correlation of the maps from the two halves
    of the session): a held-out check that the field is real.
    """
    pf = place_fields(recording, position=position, **kwargs)
    labels = pf.labels()
    rows = []
    for u, nm in enumerate(pf.names):
        rows.append({"unit": u, "name": nm, "layer": None, "label": labels.get(u, "not a place cell"),
                     "score": float(pf.stability[u]) if u in labels else float("nan"),
                     "score_kind": "split-half rate-map r" if u in labels else "", "simulation": float("nan"),
                     "phenomena": "place cell" if u in labels else "", "explainer": "place fields", "error": "",
                     "spatial_info": float(pf.spatial_info[u]), "p_value": float(pf.p_value[u])})
    return LabelResult(title, "place", position, pd.DataFrame(rows), place=pf,
                       notes=[f"{pf.n_permutations} circular shifts of the position against each spike train; "
                              f"alpha {pf.alpha}"])
