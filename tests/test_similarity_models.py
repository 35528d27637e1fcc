"""Acceptance on real models: efficientnet-lite0 (trained vs random weights) against human IT (Kriegeskorte 2008)."""

from __future__ import annotations

import pytest

import interp
from interp.similarity.compare import random_weights


@pytest.mark.slow
def test_trained_efficientnet_beats_random_weights_on_human_it():
    k92 = interp.data.load("kriegeskorte92")
    human = k92.rdms.sel(name="human_IT_s*")  # 4 subjects x 2 sessions
    model, preprocess = interp.models.load("efficientnet-lite0")
    kwargs = dict(sites="_blocks.*", preprocess=preprocess, method="rsa:spearman", n_bootstraps=200, seed=0, progress=False)
    trained = interp.compare(model, k92.images, human, **kwargs)
    random = interp.compare(random_weights(model, seed=0), k92.images, human, **kwargs)
    assert len(trained.frame) == 16
    diff = trained.difference(random)  # best trained block - best random block, paired bootstrap over stimuli+subjects
    assert diff.low > 0, f"trained best block does not beat random weights: {diff.estimate:.3f} [{diff.low:.3f}, {diff.high:.3f}]"
    best = trained.best()
    assert best["score"] < trained.ceiling.upper  # below the noise ceiling's upper bound (0.525)
    assert trained.ceiling.lower == pytest.approx(0.3280, abs=1e-4)
