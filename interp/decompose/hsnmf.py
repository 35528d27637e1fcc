"""Hierarchical SNMF (:class:`HierarchicalSNMF`) as in Shafran, Geiger & Geva's ``hierchichal_snmf.py``.

Paper: arXiv 2506.10920 (ACL 2026, "Constructing Interpretable Features from Compositional Neuron Groups").
Code followed: ``factorization/hierchichal_snmf.py`` (``train_hierarchical_nmf``, ``HierarchicalNMFModule``)
of ``ordavid-s/snmf-mlp-decomposition`` at commit ab58c78. Greedy pre-training: level 1 factors the data
``X ~ W1 H1``; level ``i`` factors the previous level's features (rows of ``H_{i-1}``, one "sample" per
feature) as ``H_{i-1} ~ W_i H_i``. Then the product ``W1 W2 ... WL HL`` is fine-tuned end to end with Adam
(lr 1e-3, 500 steps, mean squared error), all factors free (the fine-tuning does not keep the ``W_i``
non-negative; neither does theirs).

Where it differs: each level draws its random start from ``seed + level`` (theirs continue one global
torch stream); the SNMF of each level is :class:`~interp.decompose.SNMF` (the authors' current numerics,
``SNMF.paper`` settings unless overridden). Level ``i``'s features in neuron space are
``W_{i+1} ... W_L H_L``; :meth:`HierarchicalSNMF.tree` links each feature to the coarser feature that
weighs it most.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch

from ..errors import ConfigError
from ._base import NotFittedError, check_int
from ._data import as_matrix
from .snmf import SNMF

__all__ = ["HierarchicalSNMF"]


class HierarchicalSNMF:
    """Greedy multi-level SNMF with end-to-end fine-tuning (``train_hierarchical_nmf``).

    Source: Shafran, Geiger & Geva 2025 (arXiv 2506.10920; ACL 2026); code ``ordavid-s/snmf-mlp-decomposition``
    at commit ab58c78 (``factorization/hierchichal_snmf.py``). Differences: level ``i`` draws its start from
    ``seed + i`` (theirs: one global stream); each level is :class:`SNMF` with the authors' current numerics
    (``eps`` 1e-6).

    Parameters
    ----------
    ranks: the ranks ``[r1, r2, ..., rL]``, finest first (each at most the previous one).
    fine_tune: fine-tune the product end to end after the greedy pass (theirs: True).
    learning_rate, n_fine_tune_steps: Adam's learning rate and steps (``train_hierarchical_nmf``'s
        defaults 1e-3 and 500; their tutorial runs 2,500 steps).
    seed: level ``i`` (from 0) starts from ``seed + i``.
    snmf_params: parameters of each level's :class:`SNMF` on top of ``SNMF.paper()``'s and the
        authors' tutorial's (``hierarchial_nmf_tutorial.ipynb``: ``max_iter=3000``, ``tol=1e-6``, and
        ``NMFSemiNMF.fit``'s default ``patience=100``); e.g. ``sparsity``, ``dtype``.

    Attributes
    ----------
    levels_: the fitted :class:`SNMF` of each level (before fine-tuning).
    weights_: ``[W1 (n_samples, r1), W2 (r1, r2), ..., WL]`` after fine-tuning.
    components_: ``H_L`` (``(r_L, n_features)``), the coarsest features.
    loss_curve_: the fine-tuning loss per step.

    >>> h = HierarchicalSNMF([40, 10], snmf_params=dict(sparsity=0.05)).fit(acts)   # doctest: +SKIP
    >>> h.tree()                                                                    # doctest: +SKIP
    """

    def __init__(self, ranks: Sequence[int], fine_tune: bool = True, learning_rate: float = 1e-3,
                 n_fine_tune_steps: int = 500, seed: int = 0, snmf_params: dict[str, Any] | None = None) -> None:
        self.ranks = list(ranks)
        self.fine_tune = fine_tune
        self.learning_rate = learning_rate
        self.n_fine_tune_steps = n_fine_tune_steps
        self.seed = seed
        self.snmf_params = dict(snmf_params or {})

    def _check(self) -> None:
        if not self.ranks:
            raise ConfigError("ranks must list at least one rank, finest first, e.g. [40, 10]")
        for r in self.ranks:
            check_int("each rank", r)
        if any(b > a for a, b in zip(self.ranks, self.ranks[1:])):
            raise ConfigError(f"each level factors the previous level's features, so ranks must not grow; got {self.ranks}")
        check_int("n_fine_tune_steps", self.n_fine_tune_steps, low=0)
        if "n_components" in self.snmf_params or "seed" in self.snmf_params:
            raise ConfigError("set the ranks with ranks= and the seed with seed=, not in snmf_params")

    def fit(self, X: Any, y: Any = None) -> HierarchicalSNMF:
        """Greedy SNMF level by level, then (``fine_tune``) Adam on ``||W1...WL HL - X||^2 / size``.

        Parameters
        ----------
        X : Activations, torch.Tensor or numpy.ndarray
            Data ``(n_samples, n_features)`` of any sign.
        y : None
            Ignored (scikit-learn convention).
        """
        self._check()
        params = {"keep_codes": True, "max_iter": 3000, "tol": 1e-6, "patience": 100, **self.snmf_params}
        data = as_matrix(X, dtype=params.get("dtype", torch.float32))
        current, levels = data, []
        for i, rank in enumerate(self.ranks):
            level = SNMF.paper(n_components=rank, seed=self.seed + i, **params).fit(current)
            levels.append(level)
            current = level.components_.detach()
        weights = [lv.codes_.detach().clone() for lv in levels]
        H = levels[-1].components_.detach().clone()
        self.levels_ = levels
        self.loss_curve_: list[float] = []
        if self.fine_tune and self.n_fine_tune_steps:
            params_ = [torch.nn.Parameter(w) for w in weights] + [torch.nn.Parameter(H)]
            optimizer = torch.optim.Adam(params_, lr=self.learning_rate)
            target = data.to(H)
            for _ in range(self.n_fine_tune_steps):
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(self._product(params_), target)
                loss.backward()
                optimizer.step()
                self.loss_curve_.append(float(loss.detach()))
            weights, H = [p.detach() for p in params_[:-1]], params_[-1].detach()
        self.weights_, self.components_ = weights, H
        self.n_features_in_ = data.shape[1]
        return self

    @staticmethod
    def _product(factors: Sequence[torch.Tensor]) -> torch.Tensor:
        M = factors[0]
        for f in factors[1:]:
            M = M @ f
        return M

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise NotFittedError("HierarchicalSNMF is not fitted; call fit(X) first")

    def level_components(self, level: int) -> torch.Tensor:
        """The features of ``level`` (0 = finest) in neuron space: ``W_{level+2} ... W_L H_L``.

        Parameters
        ----------
        level : int
            In ``0 .. len(ranks) - 1``.

        Returns
        -------
        torch.Tensor
            ``(ranks[level], n_features)``.
        """
        self._check_fitted()
        if not 0 <= level < len(self.ranks):
            raise ConfigError(f"level must be in [0, {len(self.ranks) - 1}], got {level}")
        return self._product([*self.weights_[level + 1:], self.components_])

    def reconstruct(self) -> torch.Tensor:
        """``W1 W2 ... WL HL``: the fitted data's reconstruction."""
        self._check_fitted()
        return self._product([*self.weights_, self.components_])

    def tree(self) -> pd.DataFrame:
        """One row per feature below the top level: its ``parent`` at the next level and the ``weight``
        (the largest entry of its row of ``W_{level+1}``) and that weight's share of the row."""
        self._check_fitted()
        rows = []
        for level in range(len(self.ranks) - 1):
            W = self.weights_[level + 1]
            for feature in range(W.shape[0]):
                row = W[feature]
                parent = int(row.argmax())
                total = float(row.clamp_min(0).sum())
                rows.append({"level": level, "feature": feature, "parent": parent, "weight": float(row[parent]),
                             "share": float(row[parent]) / total if total > 0 else float("nan")})
        return pd.DataFrame(rows, columns=["level", "feature", "parent", "weight", "share"])
