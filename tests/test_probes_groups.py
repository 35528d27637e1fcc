"""probes take groups= as a sample-coordinate name too (the library's one calling style)."""

from __future__ import annotations

import numpy as np
import torch

from interp import Activations
from probes import cross_val_probe, encoding_scores


def test_groups_by_coordinate_name_equal_groups_by_array():
    rng = np.random.default_rng(0)
    trial = np.repeat(np.arange(10), 12)
    X = rng.normal(size=(120, 6))
    Y = X @ rng.normal(size=(6, 3)) + rng.normal(size=(120, 3))
    acts = Activations(torch.tensor(X), ("sample", "unit"), {"sample": {"trial": [f"t{k}" for k in trial]}})
    by_name = encoding_scores(acts, Y, groups="trial", cv=5)
    by_array = encoding_scores(X, Y, groups=trial, cv=5)
    np.testing.assert_allclose(by_name.scores, by_array.scores, rtol=1e-10)
    y = (X[:, 0] > 0).astype(int)
    np.testing.assert_allclose(cross_val_probe(acts, y, groups="trial", cv=5), cross_val_probe(X, y, groups=trial, cv=5))
