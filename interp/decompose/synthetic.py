"""Synthetic data with planted sparse features, and how well a decomposition recovers them."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..tensor import Activations


@dataclass
class PlantedFeatures:
    """Data ``X = codes @ features`` (plus noise) with known ``features`` ``(n_features, n_units)``."""

    X: Activations
    features: torch.Tensor
    codes: torch.Tensor


def planted_features(n_samples: int = 4000, n_units: int = 64, n_features: int = 16, active: int = 3,
                     unit_fraction: float = 0.25, noise: float = 0.01, seed: int = 0) -> PlantedFeatures:
    """Sparse non-negative codes over unit-norm, mixed-sign features that each touch a fraction of the units.

    Each sample activates about ``active`` features with exponential magnitudes; each feature has
    ``ceil(unit_fraction * n_units)`` non-zero weights (the neuron groups SNMF assumes), so every SAE
    variant and SNMF should find them.
    """
    gen = torch.Generator().manual_seed(seed)
    support = max(1, int(round(unit_fraction * n_units)))
    features = torch.zeros(n_features, n_units)
    for i in range(n_features):
        units = torch.randperm(n_units, generator=gen)[:support]
        features[i, units] = torch.randn(support, generator=gen)
    features = features / features.norm(dim=1, keepdim=True)
    on = torch.rand(n_samples, n_features, generator=gen) < active / n_features
    magnitude = -torch.log(torch.rand(n_samples, n_features, generator=gen).clamp_min(1e-12)) + 0.5
    codes = on * magnitude
    X = codes @ features + noise * torch.randn(n_samples, n_units, generator=gen)
    acts = Activations(X, ("sample", "unit"), {"unit": {"name": [f"u{i}" for i in range(n_units)]}},
                       {"source": "planted_features", "kind": "synthetic"})
    return PlantedFeatures(acts, features, codes)


def best_match_cosine(true: torch.Tensor, learned: torch.Tensor) -> torch.Tensor:
    """For each true direction (rows), the largest |cosine| with any learned direction (rows)."""
    a = torch.nn.functional.normalize(true.double(), dim=1)
    b = torch.nn.functional.normalize(learned.detach().double().cpu(), dim=1)
    return (a @ b.T).abs().max(dim=1).values
