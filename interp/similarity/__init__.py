"""Similarity between representations: RSA, CKA, the CCA family, Procrustes shape metrics, noise
ceilings, permutation tests and bootstrap CIs, time-resolved (sliding-window and cross-temporal) RSA, and the
model-vs-brain pipeline :func:`compare`.

Every measure takes :class:`interp.Activations`, torch tensors or NumPy arrays (samples x features),
computes in torch (float64 by default, any device) and returns floats or small result dataclasses.

>>> import torch
>>> from interp import similarity as sim
>>> X = torch.randn(40, 20, dtype=torch.float64)
>>> round(sim.cka(X, X), 6), round(sim.rsa(X, X), 6)
(1.0, 1.0)
"""

from __future__ import annotations

from .cca import canonical_correlations, cca, pwcca, svcca
from .ceiling import NoiseCeiling, pool_rdms, rsa_noise_ceiling
from .cka import CKA_ESTIMATORS, CKAResult, cka, cka_details, hsic
from .compare import compare  # binds the function over the submodule of the same name
from .profile import SimilarityProfile, SimilarityProfiles
from .rdm import RDM_METHODS, RDMs, crossnobis, rdm, square, upper_tri
from .rsa import COMPARATORS, compare_rdms, rsa
from .shape import ProcrustesResult, procrustes, shape_distance
from .stats import BootstrapResult, PermutationResult, bootstrap_ci, permutation_test, rdm_bootstrap
from .temporal import TimeCourse, TimeGeneralization, cross_temporal_rsa, sliding_rsa

__all__ = [
    "rdm", "crossnobis", "RDMs", "upper_tri", "square", "RDM_METHODS",
    "compare_rdms", "rsa", "COMPARATORS",
    "cka", "cka_details", "CKAResult", "hsic", "CKA_ESTIMATORS",
    "cca", "svcca", "pwcca", "canonical_correlations",
    "procrustes", "shape_distance", "ProcrustesResult",
    "rsa_noise_ceiling", "pool_rdms", "NoiseCeiling",
    "permutation_test", "bootstrap_ci", "rdm_bootstrap", "PermutationResult", "BootstrapResult",
    "sliding_rsa", "cross_temporal_rsa", "TimeCourse", "TimeGeneralization",
    "compare", "SimilarityProfile", "SimilarityProfiles",
]
