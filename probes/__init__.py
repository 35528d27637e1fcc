"""Fitted read-outs on top of :mod:`interp`: ridge regression with per-target α (primal/dual, banded),
linear and logistic probes with control tasks, encoding models scored by held-out Pearson r (also over time,
with lagged/FIR and HRF-convolved features, and with variance partitioning across feature spaces), noise
ceilings and ceiling-normalized scores. Every cross-validation takes ``groups=`` (subjects, sessions, runs:
labels or a sample coordinate name). Estimators follow scikit-learn conventions.

>>> import numpy as np
>>> from probes import RidgeCV
>>> X, Y = np.random.default_rng(0).normal(size=(50, 4)), np.random.default_rng(1).normal(size=(50, 2))
>>> RidgeCV(alphas=[1.0, 10.0]).fit(X, Y).coef_.shape
torch.Size([2, 4])
"""

from __future__ import annotations

from .ceiling import (
    CONVENTIONS,
    NoiseCeiling,
    NormalizedScore,
    SplitHalfCeiling,
    normalize,
    rsa_noise_ceiling,
    spearman_brown,
    split_half_ceiling,
)
from .convergence import ConvergenceScore, spatial_score, temporal_score
from .encoding import EncodingResult, encoding_scores, pearson_per_target
from .lagged import LaggedEncoding, canonical_hrf, hrf_features, lag_features, lagged_encoding
from .linear import LinearProbe, LogisticProbe, SelectivityResult, control_labels, cross_val_probe, probe_selectivity
from .partition import VariancePartition, variance_partitioning
from .ridge import BandedRidgeCV, RidgeCV
from .temporal import temporal_encoding, temporal_generalization_encoding

__all__ = [
    "RidgeCV", "BandedRidgeCV",
    "LinearProbe", "LogisticProbe", "cross_val_probe", "probe_selectivity", "control_labels", "SelectivityResult",
    "encoding_scores", "EncodingResult", "pearson_per_target",
    "temporal_score", "spatial_score", "ConvergenceScore",
    "temporal_encoding", "temporal_generalization_encoding",
    "lag_features", "canonical_hrf", "hrf_features", "lagged_encoding", "LaggedEncoding",
    "variance_partitioning", "VariancePartition",
    "spearman_brown", "split_half_ceiling", "SplitHalfCeiling", "rsa_noise_ceiling", "NoiseCeiling", "normalize",
    "NormalizedScore", "CONVENTIONS",
]
