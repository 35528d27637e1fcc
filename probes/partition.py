"""Feature-space encoding with variance partitioning: which feature space (a model layer, SAE or NMF
latents, hand-made annotations) explains which part of a recording, uniquely or shared with the others.

For every non-empty subset V of the spaces, a banded ridge model (:class:`probes.BandedRidgeCV`, one
regularisation per space, himalaya's random search; Nunez-Elizalde et al. 2019, Dupré la Tour et al. 2022)
is fitted in an outer cross-validation and scored by the held-out R² of its out-of-fold predictions, R²(V).
Variance partitioning (Lescroart et al. 2015, Front Comput Neurosci 9:135; de Heer et al. 2017, J Neurosci
37:6539) then splits the joint R² into the regions of a Venn diagram by inclusion-exclusion:

* unique_i = R²(all) - R²(all without i) (fit the joint model and the leave-one-space-out models);
* two spaces: shared = R²(A) + R²(B) - R²(A+B);
* three spaces: shared_AB = R²(A+C) + R²(B+C) - R²(C) - R²(A+B+C), shared_ABC = R²(A) + R²(B) + R²(C)
  - R²(A+B) - R²(A+C) - R²(B+C) + R²(A+B+C).

The regions sum to R²(all). Held-out estimates are noisy, so a region can come out slightly negative.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> A, B = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
>>> Y = A @ rng.normal(size=(4, 3)) + 2.0 * rng.normal(size=(300, 3))       # only A matters
>>> vp = variance_partitioning({"A": A, "B": B}, Y, alphas=[0.1, 1, 10], n_iter=5)
>>> [abs(round(float(v), 1)) for v in vp.to_frame()[["unique_A", "unique_B", "shared_A&B"]].mean()]
[0.5, 0.0, 0.0]
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp._progress import tqdm
from interp.errors import ConfigError, DimensionError
from interp.results import Result, themed

from ._cv import as_array2d, group_labels, make_splits
from .ridge import DEFAULT_ALPHAS, BandedRidgeCV, _as_targets, _sample_gammas

__all__ = ["variance_partitioning", "VariancePartition", "partition_regions"]


def _key(subset: tuple[str, ...]) -> str:
    return "+".join(subset)


def partition_regions(r2: Mapping[str, np.ndarray], spaces: list[str]) -> dict[str, np.ndarray]:
    """Venn regions from the R² of every non-empty subset (keys ``"A"``, ``"A+B"``, ...): ``unique_<i>`` and
    ``shared_<i>&<j>...`` by Möbius inversion of g(W) = R²(all) - R²(all without W).

    Parameters
    ----------
    r2 : mapping of str to numpy.ndarray
        Held-out R² per target of every non-empty subset of ``spaces``, keyed by the space names joined with
        ``"+"`` in the order of ``spaces`` (``"A"``, ``"B"``, ``"A+B"``).
    spaces : list of str
        The space names, in the order used in the keys.
    """
    full = np.asarray(r2[_key(tuple(spaces))])

    def R(subset: tuple[str, ...]) -> np.ndarray:
        return np.zeros_like(full) if not subset else np.asarray(r2[_key(subset)])

    def g(W: tuple[str, ...]) -> np.ndarray:
        return full - R(tuple(s for s in spaces if s not in W))

    out: dict[str, np.ndarray] = {}
    for size in range(1, len(spaces) + 1):
        for T in itertools.combinations(spaces, size):
            region = np.zeros_like(full)
            for k in range(1, size + 1):
                for W in itertools.combinations(T, k):
                    region = region + (-1) ** (size - k) * g(W)
            out[("unique_" if size == 1 else "shared_") + "&".join(T)] = region
    return out


@dataclass
class VariancePartition(Result):
    """Held-out R² of every subset of feature spaces (``r2``, keys ``"A"``, ``"A+B"``, ...) and the Venn
    regions (``regions``: ``unique_A``, ``shared_A&B``, ...), one value per target.

    Parameters
    ----------
    spaces : list of str
        The feature-space names.
    r2 : dict
        Held-out R² per target of every subset (keys ``"A"``, ``"A+B"``, ...).
    regions : dict
        The Venn regions per target (``unique_A``, ``shared_A&B``, ...), from :func:`partition_regions`.
    target_names : list, optional
        Target names (empty: indices).
    attrs : dict, optional
        Settings of the fit (free-form metadata).
    """

    spaces: list
    r2: dict = field(repr=False)
    regions: dict = field(repr=False)
    target_names: list = field(default_factory=list)
    attrs: dict = field(default_factory=dict, repr=False)

    @property
    def joint(self) -> np.ndarray:
        """R² of the model with every space."""
        return self.r2[_key(tuple(self.spaces))]

    def to_frame(self) -> pd.DataFrame:
        """One row per target: ``r2_joint``, ``r2_<subset>`` for every subset, then every region."""
        names = self.target_names or list(range(len(self.joint)))
        frame = pd.DataFrame({"target": names, "r2_joint": self.joint})
        for key, value in self.r2.items():
            frame[f"r2_{key}"] = value
        for key, value in self.regions.items():
            frame[key] = value
        return frame

    def summary(self) -> str:
        joint = float(np.mean(self.joint))
        lines = [f"VariancePartition: {len(self.spaces)} spaces ({', '.join(self.spaces)}), {len(self.joint)} targets; "
                 f"mean held-out R² of the joint model {joint:.3f}"]
        for key, value in self.regions.items():
            share = f" ({100 * np.mean(value) / joint:.0f}% of the joint)" if joint > 0 else ""
            lines.append(f"  {key}: {np.mean(value):.3f}{share}")
        return "\n".join(lines)

    def plot(self, **kwargs: Any) -> Any:
        """Stacked bars of the regions: the mean over targets, then the best-explained targets (up to 30)."""
        import plotly.graph_objects as go

        names = self.target_names or list(range(len(self.joint)))
        order = np.argsort(-self.joint)[:30]
        labels = ["mean"] + [str(names[i]) for i in order]
        fig = go.Figure()
        for key, value in self.regions.items():
            fig.add_trace(go.Bar(x=labels, y=[float(np.mean(value))] + [float(value[i]) for i in order], name=key))
        fig.update_layout(barmode="relative", xaxis_title="target", yaxis_title="held-out R²")
        return themed(fig, title=kwargs.get("title", "Variance partitioning (unique and shared held-out R²)"))


def variance_partitioning(spaces: Mapping[str, Any], Y: Any, *, alphas: Any = DEFAULT_ALPHAS, cv: Any = 5,
                          inner_cv: Any = 5, n_iter: int = 20, concentration: Any = (0.1, 1.0), seed: int = 0,
                          groups: Any = None, fit_intercept: bool = True, progress: bool = False) -> VariancePartition:
    """Unique and shared held-out variance of ``Y`` (samples x targets) explained by 2 or 3 feature spaces.

    Parameters
    ----------
    spaces: ``{name: features (n, f)}``; Activations (a layer's activations, ``sae.transform(acts)``,
        ``nmf.transform(acts)``), tensors or arrays with the same samples as ``Y``.
    Y: the recording (voxels, neurons, channels) ``(n, targets)``.
    alphas, n_iter, concentration, seed: the banded-ridge search (:class:`probes.BandedRidgeCV`): ``n_iter``
        draws of the per-space weights (uniform first, then Dirichlet), the same draws for every subset size;
        one space alone is plain ridge over ``alphas``.
    cv, inner_cv: outer folds (held-out R²) and inner folds (hyperparameters); ``groups`` (a sample coordinate
        name or labels) keeps subjects/sessions/runs within one fold in both.
    """
    if not isinstance(spaces, Mapping) or not 2 <= len(spaces) <= 3:
        raise ConfigError(f"variance partitioning takes a mapping of 2 or 3 feature spaces, got "
                          f"{len(spaces) if isinstance(spaces, Mapping) else type(spaces).__name__}")
    names = [str(k) for k in spaces]
    feats = {str(k): as_array2d(v, f"space {k!r}", dtype=torch.float64) for k, v in spaces.items()}
    Yt = _as_targets(Y, next(iter(feats.values())))
    n = Yt.shape[0]
    bad = [k for k, v in feats.items() if v.shape[0] != n]
    if bad:
        raise DimensionError(f"spaces {bad} do not have {n} samples like Y")
    if not torch.isfinite(Yt).all():
        from interp.errors import NaNError

        raise NaNError("Y holds NaN/inf; drop those targets first")
    grp = group_labels(groups, n, Y, *spaces.values())
    splits = make_splits(n, cv, grp)
    rng_draws = {k: _sample_gammas(n_iter, k, tuple(concentration), np.random.default_rng(seed))
                 for k in range(2, len(names) + 1)}
    sst = (Yt - Yt.mean(0)).square().sum(0)
    r2: dict[str, np.ndarray] = {}
    subsets = [s for k in range(1, len(names) + 1) for s in itertools.combinations(names, k)]
    for subset in tqdm(subsets, disable=not progress, desc="subsets"):
        X = torch.cat([feats[s] for s in subset], 1)
        bands = [feats[s].shape[1] for s in subset]
        gammas = np.ones((1, 1)) if len(subset) == 1 else rng_draws[len(subset)]
        pred = torch.empty_like(Yt)
        for tr, te in splits:
            tr_t, te_t = torch.as_tensor(tr), torch.as_tensor(te)
            model = BandedRidgeCV(bands=bands, gammas=gammas, alphas=alphas, cv=inner_cv, fit_intercept=fit_intercept)
            model.fit(X[tr_t], Yt[tr_t], groups=None if grp is None else grp[tr])
            pred[te_t] = model.predict(X[te_t])
        r2[_key(subset)] = (1 - (Yt - pred).square().sum(0) / sst).numpy()
    target_names: list = []
    from interp.tensor import Activations

    if isinstance(Y, Activations) and "unit" in Y.coords and "name" in Y.coords["unit"].columns:
        target_names = Y.coords["unit"]["name"].tolist()
    attrs = {"n_iter": n_iter, "seed": seed, "alphas": list(np.asarray(alphas, dtype=float).ravel()),
             "grouped": grp is not None, "n_features": {k: v.shape[1] for k, v in feats.items()}}
    return VariancePartition(names, r2, partition_regions(r2, names), target_names, attrs)
