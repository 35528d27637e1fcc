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

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, DimensionError, InputTypeError
from ..tensor import Activations
from .concepts import pooled_concept_test
from .kinds import TEST_OF, annotation_kind, annotation_values, as_binary, check_missing, parse_kinds
from .pipeline import LabelResult
from .scoring import auroc
from .spatial import place_fields

__all__ = ["label_recordings", "label_place_cells", "recording_title", "DuplicateUnitError"]


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
                     kinds: Mapping[str, str] | None = None, unit_names: str | Sequence[str] = "error",
                     nan_policy: str = "raise", title: str = "recorded units", seed: int = 0) -> LabelResult:
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
    direction. A circular annotation (an angle, or a 2-column variable such as velocity: its direction) is
    tested by cosine tuning (one recording) and scored by the held-out correlation with the fitted cosine.

    Parameters
    ----------
    kinds:
        ``{annotation: "binary" | "categorical" | "continuous" | "circular"}``; the others are inferred
        (:func:`interp.label.kinds.annotation_kind`: integer-valued floats with few levels are
        categories). The notes and the concept table (``annotation_kind``, ``kind_reason``) say which
        kind each annotation got and why.
    unit_names:
        Unit identity when names repeat within a recording (ten units named ``mua``): ``"error"``
        (default: :class:`DuplicateUnitError`), ``"index"`` (units are their positions; with several
        recordings, position j is the same unit in each) or ``"suffix"`` (``mua#1``, ``mua#2``...). A
        sequence gives one name per unit of a single recording.
    nan_policy:
        Missing annotation values (NaN/None, e.g. between trials): ``"raise"`` (default,
        :class:`~interp.label.kinds.MissingAnnotationError`) or ``"drop"`` those samples from that
        annotation's test and score.

    Returns
    -------
    LabelResult
        One row per unit in recording order: ``unit`` (its index in the first recording that has it),
        ``name`` (its name there), ``label``, ``score``... and, for several recordings, ``units``
        (``recording:index`` of every occurrence).
    """
    recs = [recordings] if isinstance(recordings, Activations) else list(recordings)
    if not recs:
        raise InputTypeError("no recordings given")
    if isinstance(annotations, str):
        annotations = [annotations]
    if not 0 < fit_fraction < 1:
        raise ConfigError(f"fit_fraction must be between 0 and 1, got {fit_fraction}")
    declared = parse_kinds(kinds)
    unknown = sorted(set(declared) - set(annotations))
    if unknown:
        raise ConfigError(f"kinds given for {unknown}, which are not among the annotations {list(annotations)}")
    recs, units = _identify(recs, by, unit_names)
    if groups is not None and not isinstance(groups, str) and len(groups) != len(recs):
        raise ConfigError(f"give groups as a sample coordinate name or one label array per recording ({len(recs)})")
    from ..stats import resolve_groups

    codes = [resolve_groups(groups if groups is None or isinstance(groups, str) else groups[i], r.shape[0], r)
             for i, r in enumerate(recs)]
    masks = [_split_mask(r.shape[0], fit_fraction, c) for r, c in zip(recs, codes)]
    frames, nulls, reasons, parts, kind_notes = [], [], [], {}, []
    for a in annotations:
        raw = [annotation_values(r.coord(a, r.dims[0])) for r in recs]
        kind, why = annotation_kind(np.concatenate(raw), declared.get(a))
        kind_notes.append(f"{a}: {kind} ({why})")
        fit, held, vf, vh, cf = [], [], [], [], []
        for i, (r, v, m, c) in enumerate(zip(recs, raw, masks, codes)):
            where = f" of recording {i}" if len(recs) > 1 else ""
            keep = check_missing(a, v, nan_policy, where)
            v = _as_kind(v, kind)
            for part, vals, mask in ((fit, vf, m & keep), (held, vh, ~m & keep)):
                part.append(r.isel(**{r.dims[0]: np.flatnonzero(mask)}))
                vals.append(v[mask])
            cf.append(None if c is None else c[m & keep])
        if min(len(v) for v in vf) < 2 or min(len(v) for v in vh) < 1:
            raise ConfigError(f"annotation {a!r} is defined on too few samples to split {fit_fraction:.0%} / "
                              f"{1 - fit_fraction:.0%} into labeling and scoring parts")
        parts[a] = (fit, held, vf, vh, kind)
        fit_groups = None if groups is None else cf
        if kind == "circular":
            t = _circular_test(fit, vf, fit_groups, null, n_permutations, seed, a)
        else:
            t = pooled_concept_test(fit, vf, by=_KEY, kind=TEST_OF[kind], null=null, groups=fit_groups,
                                    n_permutations=n_permutations, min_recordings=min_recordings, alpha=alpha, seed=seed)
            t.frame["preferred_direction_deg"] = np.nan
        frames.append(t.frame.assign(concept=a, annotation_kind=kind, kind_reason=why))
        nulls.append(t.null)
        reasons.append(t.reason)
    from .concepts import _finish

    used = "+".join(dict.fromkeys("+".join(nulls).split("+")))
    tests = _finish(pd.concat(frames, ignore_index=True).drop(columns=["q_value", "significant", "direction", "unit"],
                                                               errors="ignore"),
                    alpha, used, n_permutations, "; ".join(dict.fromkeys(reasons)))
    tests.frame.loc[tests.frame["kind"] == "circular", "direction"] = ""
    tests.frame.insert(0, "unit", tests.frame[_KEY].map(lambda k: units[k]["unit"]).to_numpy())
    tests.frame.insert(1, "name", tests.frame[_KEY].map(lambda k: units[k]["name"]).to_numpy())
    rows, best_trace = _rows(units, tests, parts, recs)
    tests.frame = tests.frame.drop(columns=[_KEY])
    split = "trials" if groups is not None else "time"
    notes = [f"{len(recs)} recordings; labels from the first {fit_fraction:.0%} of each one's {split} "
             f"({used} null: {tests.reason}; {n_permutations} draws; BH-FDR over {len(tests.frame)} tests), scores on "
             "the rest", "annotation kinds: " + "; ".join(kind_notes)]
    excluded = [r.attrs["intervals"] for r in recs if isinstance(r.attrs.get("intervals"), dict)]
    if excluded:
        notes.append(f"{sum(e.get('excluded', 0) for e in excluded)} samples outside the trials/epochs were excluded")
    return LabelResult(title, "recording", by, pd.DataFrame(rows), concepts=tests, traces=best_trace, notes=notes)


class DuplicateUnitError(ConfigError):
    """Several units of one recording share a name, so a name does not say which unit a label belongs to."""


_KEY = "_unit_key"


def _identify(recs: list[Activations], by: str, unit_names: Any) -> tuple[list[Activations], dict[str, dict]]:
    """Give every unit a key (``_unit_key`` unit coordinate) and return ``{key: {unit, name, units}}`` in
    order of first appearance."""
    policy = unit_names if isinstance(unit_names, str) else None
    if policy is not None and policy not in ("error", "index", "suffix"):
        raise ConfigError(f"unit_names must be 'error', 'index', 'suffix' or one name per unit, got {unit_names!r}")
    out, units = [], {}
    for i, rec in enumerate(recs):
        frame = rec.coords[rec.dims[1]].reset_index(drop=True).copy()
        n = rec.shape[1]
        if policy is None:
            if len(recs) != 1 or len(unit_names) != n:
                raise ConfigError(f"unit_names as a list gives one name per unit of a single recording ({n} units)")
            names = np.asarray([str(x) for x in unit_names], dtype=object)
        elif by in frame.columns:
            names = frame[by].to_numpy(dtype=object)
        elif len(recs) == 1 or policy == "index":  # unnamed units: their index (kept through dropped units)
            index = frame["index"].to_numpy() if "index" in frame.columns else np.arange(n)
            names = np.asarray([str(j) for j in index], dtype=object)
        else:
            raise DimensionError(f"recording {i} has no unit coordinate {by!r} (has {list(frame.columns)}); name the "
                                 "coordinate that identifies units across recordings with by=...")
        named = np.array([not pd.isna(x) and str(x).strip().lower() not in ("", "nan", "none") for x in names])
        text = np.array([str(x) if ok else "" for x, ok in zip(names, named)], dtype=object)
        if policy == "index":
            keys = np.array([str(j) for j in range(n)], dtype=object)
        else:
            counts = pd.Series(text[named]).value_counts()
            dup = counts[counts > 1]
            if len(dup) and policy != "suffix":
                listed = ", ".join(f"{k!r} x{v}" for k, v in dup.head(5).items())
                raise DuplicateUnitError(
                    f"recording {i}: {int(dup.sum())} units share {len(dup)} name(s) in unit coordinate {by!r} ({listed}); "
                    "a label must say which unit it belongs to. Pass unit_names='index' (units are their positions), "
                    "unit_names='suffix' (mua#1, mua#2, ...), or name units uniquely (CLI: --unit-names index|suffix)")
            seen: dict[str, int] = {}
            keys = text.copy()
            for j in range(n):
                if named[j] and text[j] in dup.index:
                    seen[text[j]] = seen.get(text[j], 0) + 1
                    keys[j] = f"{text[j]}#{seen[text[j]]}"
            keys = np.where(named, keys, "")
        for j, key in enumerate(keys):
            if not key:
                continue
            entry = units.setdefault(key, {"unit": j, "name": text[j] if policy != "suffix" else key, "units": [],
                                          "recording": i})
            entry["units"].append(f"{i}:{j}")
        frame[_KEY] = keys
        out.append(rec.replace(coords={**rec.coords, rec.dims[1]: frame}))
    return out, units


def _split_mask(n: int, fit_fraction: float, codes: np.ndarray | None) -> np.ndarray:
    """True for the labeling part of a recording: the first ``fit_fraction`` of its time, or of its trials."""
    if codes is None:
        cut = int(n * fit_fraction)
        if cut < 2 or n - cut < 2:
            raise ConfigError(f"fit_fraction={fit_fraction} leaves fewer than 2 samples on one side of {n}")
        return np.arange(n) < cut
    n_groups = int(codes.max()) + 1
    cut = int(round(n_groups * fit_fraction))
    if cut < 2 or n_groups - cut < 1:
        raise ConfigError(f"{n_groups} trials cannot be split {fit_fraction:.0%} / {1 - fit_fraction:.0%} into "
                          "labeling (at least 2 trials) and scoring (at least 1) parts; give more trials")
    return codes < cut


def _as_kind(values: np.ndarray, kind: str) -> np.ndarray:
    """Values as the test of ``kind`` reads them: booleans (binary: the larger level is true), floats
    (continuous, circular) or the category labels."""
    if kind == "binary":
        return as_binary(values)
    if kind in ("continuous", "circular"):
        return values.astype(np.float64)
    return values


def _circular_test(fit: list[Activations], values: list[np.ndarray], groups: Any, null: str, n_permutations: int,
                   seed: int, name: str) -> Any:
    """Cosine tuning of the units of one recording to a direction (an angle, or the direction of (x, y))."""
    from .concepts import ConceptTests
    from .tuning import direction_tuning

    if len(fit) != 1:
        raise ConfigError(f"annotation {name!r} is circular (a direction); direction tuning labels one recording at a "
                          "time: label each recording separately")
    rec, v = fit[0], values[0]
    g = None if groups is None else groups[0]
    if v.ndim == 2:
        res = direction_tuning(rec.data.double().numpy(), x=v[:, 0], y=v[:, 1], groups=g, null=null,
                               n_permutations=n_permutations, seed=seed)
    else:
        res = direction_tuning(rec.data.double().numpy(), angle=v, degrees=bool(np.nanmax(np.abs(v)) > 2 * np.pi + 1e-6),
                               groups=g, null=null, n_permutations=n_permutations, seed=seed)
    f = res.frame
    keys = rec.coords[rec.dims[1]][_KEY].to_numpy()
    ok = f["p_value"].notna().to_numpy() & (keys != "")
    frame = pd.DataFrame({_KEY: keys[ok], "n_recordings": 1, "concept": name, "kind": "circular",
                          "statistic": f["r2"].to_numpy()[ok], "effect": f["r2"].to_numpy()[ok],
                          "p_value": f["p_value"].to_numpy()[ok],
                          "preferred_direction_deg": f["preferred_direction_deg"].to_numpy()[ok]})
    return ConceptTests(frame, res.alpha, res.null, n_permutations, res.reason)


def _direction(v: np.ndarray) -> np.ndarray:
    if v.ndim == 2:
        return np.arctan2(v[:, 1], v[:, 0])
    return np.deg2rad(v) if np.nanmax(np.abs(v)) > 2 * np.pi + 1e-6 else v


def _rows(units: dict[str, dict], tests: Any, parts: dict, recs: list[Activations]) -> tuple[list[dict], dict]:
    """One row per unit (in order of first appearance) and the trace shown on its card."""
    rows, best_trace = [], {}
    frame = tests.frame
    single = len(recs) == 1
    extra = recs[0].coords[recs[0].dims[1]] if single else None
    for key, info in units.items():
        sub = frame[frame[_KEY] == key]
        row = {"unit": info["unit"], "name": info["name"], "layer": None}
        if not len(sub):
            row.update(label="not tested (constant in the labeling part)", score=float("nan"), score_kind="",
                       chance=float("nan"), simulation=float("nan"), phenomena="", explainer="concept tests", error="",
                       n_recordings=0)
        else:
            sig = sub[sub["significant"]].sort_values("q_value")
            label = "; ".join(_concept_label(r.concept, r.direction, r.q_value, r.kind, r.preferred_direction_deg)
                              for r in sig.itertuples())
            top = sig.iloc[0] if len(sig) else sub.sort_values("p_value").iloc[0]
            score, chance = _score(key, top, parts[top.concept])
            kind_used = {"auroc": "held-out AUROC", "correlation": "held-out r", "circular": "held-out r (cosine fit)",
                         "mi": "held-out balanced decoding accuracy"}[top.kind]
            row.update(label=label or "no significant behaviour tuning", score=score if label else float("nan"),
                       score_kind=kind_used if label else "", chance=chance if label else float("nan"),
                       simulation=float("nan"), phenomena=", ".join(sorted(set(sig["concept"]))),
                       explainer="concept tests", error="", n_recordings=int(sub["n_recordings"].iloc[0]))
            best_trace[info["unit"] if single else key] = _trace_for(recs, key, top.concept)
        if single:
            for col in extra.columns:
                if col not in row and col != _KEY and extra[col].map(np.ndim).eq(0).all():
                    row[col] = extra[col].iloc[info["unit"]]
        else:
            row["units"] = " ".join(info["units"])
        rows.append(row)
    return rows, best_trace


def _score(key: str, top: Any, part: tuple) -> tuple[float, float]:
    fit, held, vf, vh, _ = part
    vals, chances = [], []
    for rf, rh, af, ah in zip(fit, held, vf, vh):
        jf = np.flatnonzero(rf.coords[rf.dims[1]][_KEY].to_numpy() == key)
        jh = np.flatnonzero(rh.coords[rh.dims[1]][_KEY].to_numpy() == key)
        for a, b in zip(jf, jh):
            x_fit, x = rf.data[:, a].double().numpy(), rh.data[:, b].double().numpy()
            if top.kind == "circular":
                model = np.cos(_direction(ah) - np.deg2rad(top.preferred_direction_deg))
                v, c = _heldout_score("correlation", "+", x_fit, af, x, model)
            else:
                v, c = _heldout_score(top.kind, top.direction, x_fit, af, x, ah)
            vals.append(v)
            chances.append(c)
    score = float(np.nanmean(vals)) if vals and not np.isnan(vals).all() else float("nan")
    chance = float(np.nanmean(chances)) if chances and not np.isnan(chances).all() else float("nan")
    return score, chance


def _concept_label(concept: str, direction: str, q: float, kind: str = "", pd_deg: float = float("nan")) -> str:
    """``"reversal ↑ (q=0.001)"`` for a signed effect; ``"target-selective (q=0.01)"`` for a categorical one;
    ``"velocity direction-tuned (PD 45°, q=0.001)"`` for a circular one."""
    if kind == "circular":
        return f"{concept} direction-tuned (PD {pd_deg:.0f}°, q={q:.2g})"
    if not direction:
        return f"{concept}-selective (q={q:.2g})"
    return f"{concept} {'↑' if direction == '+' else '↓'} (q={q:.2g})"


def recording_title(rec: Activations, index: int | None = None) -> str:
    """A short name of a recording from its own attributes: ``title``/``name``, else ``source`` with the
    identifiers it has (subject, session, worm, animal, environment...), else ``recording <index>``.

    Parameters
    ----------
    rec : Activations
        The recording.
    index : int, optional
        Its index in a list (0-based; the fallback name counts from 1).
    """
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


def _trace_for(recs: list[Activations], key: str, concept: str, n: int = 400) -> dict[str, Any]:
    """The trace of the unit with key ``key`` in the first recording that has it, with the annotation
    (a 2-column annotation as its direction; missing values as gaps)."""
    for i, rec in enumerate(recs):
        hits = np.flatnonzero(rec.coords[rec.dims[1]][_KEY].to_numpy() == key)
        if len(hits):
            x = rec.data[:n, hits[0]].double().numpy()
            ann = annotation_values(rec.coord(concept, rec.dims[0]))[:n]
            if ann.ndim == 2:
                ann = _direction(ann.astype(float))
            elif ann.dtype.kind not in "biuf":
                codes = pd.factorize(ann)[0].astype(float)
                ann = np.where(codes < 0, np.nan, codes)
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

    Parameters
    ----------
    recording : Activations
        Spike trains or rates of hippocampal units with a position variable.
    position : str
        The name of the position variable.
    title : str
        The result's title.
    **kwargs
        Passed to :func:`interp.label.spatial.place_fields` (``n_bins``, ``n_permutations``, ``alpha`` ...).
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
